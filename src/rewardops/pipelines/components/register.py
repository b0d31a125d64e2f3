"""register: record a model version's evaluation scores and apply the champion promotion rule."""

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
    records the evaluation's per-benchmark scores (percent) on that version, writes the evaluation
    table into its model card, and applies the one promotion rule
    (`rewardops.tracking.registry.promote_champion`): `champion` when its registry score beats the
    current champion's by more than `min_delta` points. Returns the decision's reason."""
    from rewardops.pipelines.steps import begin_step, log_metrics
    from rewardops.tracking.registry import promote_champion, set_version_scores
    from rewardops.tracking.rewardmodel import update_card
    from rewardops.tracking.uri import client as mlflow_client

    begin_step("register", data_version)
    name = model.metadata.get("registered_model")
    version = int(model.metadata.get("registered_version") or 0)
    if not name or not version:
        raise RuntimeError(f"model {model.uri} carries no registered version (was MLflow reachable during training?)")
    scores = {k: float(v) for k, v in (report.metadata.get("scores_percent") or {}).items()}
    if not scores:
        raise RuntimeError(f"evaluation {report.uri} carries no scores to register")
    client = mlflow_client()
    score = set_version_scores(client, name, version, scores)
    update_card(client, name, version, scores)
    decision = promote_champion(client, name, version=version, min_delta=min_delta)
    log_metrics(metrics, {"score": score, "promoted": decision.promoted, "version": version})
    print(f"[register] {name} v{version}: {decision.reason}", flush=True)
    return decision.reason
