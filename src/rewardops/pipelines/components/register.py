"""register: record a model version's evaluation score and apply the champion promotion rule."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def register(
    model: Input[Model],
    report: Input[Artifact],
    data_version: str,
    metrics: Output[Metrics],
    min_delta: float = 0.0,
) -> str:
    """The training run registered the model as `rewardops-rm-<size>` (alias `candidate`); this step
    scores that version with the evaluation's average and promotes it to `champion` when it beats
    the current champion by more than `min_delta`. Returns the decision's reason."""
    import os

    from mlflow.tracking import MlflowClient

    from rewardops.pipelines.steps import begin_step, log_metrics
    from rewardops.tracking.mlflow_tracker import resolve_tracking_uri
    from rewardops.tracking.registry import promote_champion, set_version_score

    begin_step("register", data_version)
    name = model.metadata.get("registered_model")
    version = int(model.metadata.get("registered_version") or 0)
    if not name or not version:
        raise RuntimeError(f"model {model.uri} carries no registered version (was MLflow reachable during training?)")
    # evaluate chose the metric: eval/avg7 with all seven benchmarks, else a named partial average
    metric, score = report.metadata.get("score_metric"), report.metadata.get("score")
    if not metric or score is None:
        raise RuntimeError(f"evaluation {report.uri} carries no score to register")
    uri = resolve_tracking_uri(None)
    client = MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    set_version_score(client, name, version, float(score), metric=metric)
    decision = promote_champion(client, name, version=version, metric=metric, min_delta=min_delta)
    log_metrics(metrics, {"score": float(score), "promoted": decision.promoted, "version": version})
    print(f"[register] {name} v{version}: {decision.reason}", flush=True)
    return decision.reason
