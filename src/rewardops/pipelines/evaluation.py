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
        imported = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
        with_gpu(sized(evaluate(model=imported.output, data_version=data_version, benchmarks=benchmarks,
                                sources=sources, data_dir=data_dir), "data"))

    return evaluation_pipeline
