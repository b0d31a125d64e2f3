"""training-suite: every catalog size in parallel, each as a TrainJob with its own nodes and GPUs."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset

from rewardops.k8s.trainjob import size_plan
from rewardops.pipelines.components.train_launcher import train_launcher
from rewardops.pipelines.resources import launcher_credentials, retry, sized


def launch_suite(dataset, data_version, plan, output_root, profile, overrides):
    with dsl.ParallelFor(items=plan, name="sizes") as item:
        task = retry(sized(train_launcher(dataset=dataset, size=item.size, nodes=item.nodes,
                                          gpus_per_node=item.gpus_per_node, data_version=data_version,
                                          output_root=output_root, profile=profile, overrides=overrides,
                                          run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER), "light"))
        launcher_credentials(task)  # the launch step alone holds the launcher's token
        task.set_display_name("train (TrainJob)")
    return task


def build(sizes: list[str] | None = None):
    # the plan fits the accelerator settings at build time (REWARDOPS_GPUS_PER_NODE): no node is asked
    # for more GPUs than it has
    default_plan = size_plan(sizes)

    @dsl.pipeline(name="rewardops-training-suite",
                  description="Train the catalog's reward-model sizes as Kubeflow Trainer TrainJobs, in parallel.")
    def training_suite_pipeline(dataset_uri: str, data_version: str, output_root: str,
                                plan: List[dict] = default_plan, profile: str = "final", overrides: dict = {}):
        """Train every size of the plan as a Kubeflow Trainer TrainJob.

        Args:
            dataset_uri: URI of the curated training set (a folder of preference-pair Parquet shards with its manifest).
            data_version: DVC hash or content hash of that data; names the TrainJobs and keys the cache.
            output_root: Object-storage prefix (s3://...) under which each size writes checkpoints and its export.
            plan: One entry per size: {"size", "nodes", "gpus_per_node"} (rewardops train-sizes lists the catalog).
            profile: final (the paper's constant LR) or dev (linear decay with warmup).
            overrides: Any training setting over the catalog for every size, e.g. {"lr": 1e-5, "zero_stage": 3}.
        """
        imported = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False,
                                metadata={"data_version": data_version})
        imported.set_display_name("import curated data")
        launch_suite(imported.output, data_version, plan, output_root, profile, overrides)

    return training_suite_pipeline
