"""evaluation: score a trained model on the benchmarks (GPU on a cluster)."""

from typing import List

from kfp import dsl
from kfp.dsl import Model

from rewardops.pipelines.components.evaluate import evaluate
from rewardops.pipelines.resources import sized, with_gpu


def build():
    @dsl.pipeline(name="rewardops-evaluation", description="Seven RM benchmarks plus the generated world.")
    def evaluation_pipeline(model_uri: str, data_version: str, benchmarks: str = "all+world",
                            sources: List[str] = [], data_dir: str = ""):
        """Score one reward model; the report shows as Markdown and HTML with its plots in the KFP UI.

        Args:
            model_uri: URI of a Model artifact to evaluate (an exported Hugging Face folder, or one whose metadata names a registered models:/ version).
            data_version: Version of the data the model was trained on; part of the cache key.
            benchmarks: all (the seven of the paper), all+world, or a comma list of benchmark names.
            sources: NAME=PATH entries giving a benchmark's files, folder or Hugging Face id.
            data_dir: Folder with one sub-folder per benchmark.
        """
        imported = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
        imported.set_display_name("import model")
        scored = with_gpu(sized(evaluate(model=imported.output, data_version=data_version, benchmarks=benchmarks,
                                         sources=sources, data_dir=data_dir), "data"))
        scored.set_display_name("evaluate on the benchmarks")

    return evaluation_pipeline
