"""end-to-end: data -> curation -> training suite -> evaluation -> registry.

Two builds of one DAG:
- cluster (`local=False`): ingest from `sources`, every size trained as a TrainJob
  (`train_launcher`), evaluation on a GPU;
- local (`local=True`, what `make demo` runs under kfp.local): the generated world instead of
  ingest, the catalog's demo ladder trained in-process (`train`), CPU evaluation.

Both can add the paper's data ablation (§4.3, `rewardops.pipelines.ablation`): the `ablation_plan`
parameter's size trained on (a) the uncurated pool, (b) curated, (c) curated + recycled and, on the
generated world only, (d) its true labels, each evaluated, then one table. The demo and the
`ablation` pipeline run it by default; end-to-end with `-p ablation_plan='[{"size": ...}]'`.
"""

from typing import List

from kfp import dsl

from rewardops.pipelines.ablation import ablate
from rewardops.pipelines.components.evaluate import evaluate
from rewardops.pipelines.components.generate import generate
from rewardops.pipelines.components.ingest import ingest
from rewardops.pipelines.components.preprocess import preprocess
from rewardops.pipelines.components.register import register
from rewardops.pipelines.components.train import train
from rewardops.pipelines.components.train_launcher import train_launcher
from rewardops.pipelines.components.version_data import version_data
from rewardops.pipelines.curation import DEFAULT_ITERATIONS, curate
from rewardops.pipelines.resources import launcher_credentials, retry, sized, with_gpu
from rewardops.k8s.trainjob import size_plan
from rewardops.data.world.noise import DEMO_WORLD_NOISE


def _train_evaluate_register(dataset, data_version, item, local, output_root, profile, max_steps, benchmarks,
                             sources, world_n, overrides):
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    if local:
        trained = sized(train(dataset=dataset, size=item.size, data_version=data_version, profile=profile,
                              max_steps=max_steps, overrides=overrides, run_id=run_id), "train-cpu")
        trained.set_display_name("train (in process)")
    else:
        trained = retry(sized(train_launcher(dataset=dataset, size=item.size, nodes=item.nodes,
                                             gpus_per_node=item.gpus_per_node, data_version=data_version,
                                             output_root=output_root, profile=profile, overrides=overrides,
                                             run_id=run_id), "light"))
        launcher_credentials(trained)  # the launch step alone holds the launcher's token
        trained.set_display_name("train (TrainJob)")
    scored = sized(evaluate(model=trained.outputs["model"], data_version=data_version, benchmarks=benchmarks,
                            sources=sources, world_n=world_n), "data")
    scored.set_display_name("evaluate on the benchmarks")
    if not local:
        retry(with_gpu(scored))
    sized(register(model=trained.outputs["model"], report=scored.outputs["report"], data_version=data_version),
          "light", cache=False).set_display_name("register and promote")


def build(local: bool = False, iterations: int = DEFAULT_ITERATIONS, sizes: list[str] | None = None,
          ablation: bool | None = None):
    """`ablation`: the default of the `ablation_plan` parameter holds the smallest size of the
    default plan (None: on for the local demo, off for the cluster end-to-end)."""
    if sizes is not None:
        default_plan = size_plan(sizes)
    elif local:
        # two small backbones of the catalog's demo ladder keep `make demo` within minutes on 2 CPU
        # cores; `--sizes` adds the others (demo-smollm2-135m is a real 135M model)
        default_plan = size_plan(demo=True)[:2]
    else:
        default_plan = size_plan()
    # the demo's curation is the `demo` settings profile (compiled in as the parameter's default)
    default_settings = "demo" if local else ""
    ablation = local if ablation is None else ablation
    default_ablation_plan = default_plan[:1] if ablation else []
    name = ("rewardops-demo" if local else "rewardops-ablation" if ablation else "rewardops-end-to-end")

    @dsl.pipeline(name=name, description="Curation -> training suite -> evaluation -> registry.")
    def end_to_end_pipeline(
        data_version: str,
        sources: List[str] = [],
        world_n: int = 1000,
        world_noise: float = DEMO_WORLD_NOISE,
        world_seed: int = 0,
        settings: str = default_settings,
        plan: List[dict] = default_plan,
        profile: str = "final",
        max_steps: int = 0,
        output_root: str = "",
        benchmarks: str = "all+world",
        eval_sources: List[str] = [],
        eval_world_n: int = 256,
        overrides: dict = {},
        data_registry: str = "",
        data_remote: str = "",
        ablation_plan: List[dict] = default_ablation_plan,
    ):
        """Curation -> training suite -> evaluation -> registry.

        Args:
            data_version: The input data's version (DVC hash or content hash); part of every step's cache key.
            sources: Raw preference files or Hugging Face ids to ingest (cluster build).
            world_n: Pairs of the generated preference world (local build).
            world_noise: Share of flipped labels in the generated world.
            world_seed: Seed of the generated world; a new seed makes a new data version.
            settings: Curation settings: a profile name (default, demo), JSON or short forms.
            plan: The sizes to train, one entry per size (size, nodes, gpus_per_node).
            profile: Training profile of the catalog (final or dev).
            max_steps: Cap on optimizer steps per size (0: the profile's schedule).
            output_root: Object-storage prefix for TrainJob outputs (cluster build).
            benchmarks: Benchmarks to evaluate on: all, all+world, or a comma list; training data is decontaminated against them.
            eval_sources: NAME=PATH entries giving each benchmark's files.
            eval_world_n: Held-out generated pairs for the world benchmark.
            overrides: Any training setting over the catalog for every size, e.g. {"lr": 1e-5}.
            data_registry: Folder of the DVC data registry the curated subset is versioned in before training (local build; empty: no versioning).
            data_remote: The registry's DVC remote folder (default: dvc-remote next to the registry).
            ablation_plan: The size the data ablation trains on each arm (one entry like plan's; [] for no ablation).
        """
        if local:
            raw = sized(generate(n=world_n, noise=world_noise, seed=world_seed), "data")
            raw.set_display_name("generate the preference world")
        else:
            raw = sized(ingest(sources=sources, data_version=data_version), "data")
            raw.set_display_name("ingest sources")
        # decontaminated against the prompts of every benchmark this run evaluates on
        clean = sized(preprocess(raw=raw.outputs["dataset"], data_version=data_version, benchmarks=benchmarks,
                                 benchmark_sources=eval_sources, world_n=eval_world_n), "data")
        clean.set_display_name("preprocess (dedup, decontaminate)")
        merged = curate(clean.outputs["dataset"], data_version, iterations, settings)
        curated = merged.outputs["curated"]
        if local:
            # lineage: the subset is in the DVC registry (commit + md5) before any size trains on it
            versioned = sized(version_data(dataset=curated, name="curated", registry=data_registry,
                                           remote=data_remote, data_version=data_version), "light")
            versioned.set_display_name("version curated data (DVC)")
            curated = versioned.outputs["versioned"]
        # in-process trainings share one machine: one at a time, each with every core (two at once on 2
        # cores spin in each other's OpenMP barriers: 110 s instead of 2 x 15 s for the demo sizes)
        with dsl.ParallelFor(items=plan, name="sizes", parallelism=1 if local else None) as item:
            _train_evaluate_register(curated, data_version, item, local, output_root, profile,
                                     max_steps, benchmarks, eval_sources, eval_world_n, overrides)
        with dsl.ParallelFor(items=ablation_plan, name="ablation") as item:
            # arm (d), the true labels, only on the generated world (the one input whose truth is known)
            ablate(clean.outputs["dataset"], merged, data_version, item, local, local, output_root, profile,
                   max_steps, benchmarks, eval_sources, eval_world_n, overrides)

    return end_to_end_pipeline
