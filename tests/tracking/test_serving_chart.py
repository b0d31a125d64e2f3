"""The chart option that serves a registered reward model: schema- and render-tested
with the real `helm` binary (rewardops.k8s.tools), objects checked against the Kubernetes OpenAPI
schemas; no API server can run here, so nothing is deployed."""

from __future__ import annotations

from support.chart_support import PRODUCTION_VALUES, kubernetes_errors, render, template

MODEL = "serving.model=rewardops-rm-qwen3-0.6b"


def _serving(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "serving"}


def test_off_by_default() -> None:
    assert _serving(render()) == {}


def test_serves_the_champion_with_mlflow() -> None:
    found = _serving(render(set_values=("serving.enabled=true", MODEL)))
    deployment = found["Deployment/rewardops-serving"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlflow", "models", "serve"]
    # the served model is the registered model: an init container downloads this exact version
    # and checks its code/weight digests; the scoring container serves that verified copy
    (verify,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert verify["command"] == ["python", "-m", "rewardops.evaluation.modelref"]
    assert verify["args"] == ["models:/rewardops-rm-qwen3-0.6b@champion", "/tmp/model"]
    assert {e["name"]: e.get("value") for e in verify["env"]}["MLFLOW_TRACKING_URI"] == "http://rewardops-mlflow.rewardops.svc:5000"
    assert "--model-uri=/tmp/model" in container["args"]
    assert "--env-manager=local" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not any(name.startswith(("MLFLOW_", "AWS_")) for name in env)  # no credentials in the scoring container
    assert env["REWARDOPS_SERVE_DTYPE"] == "float32" and env["REWARDOPS_SERVE_DEVICE"] == "cpu"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert found["Service/rewardops-serving"]["spec"]["ports"][0]["port"] == 8080
    # the network policies let the scoring pods reach MLflow and MLflow accept them
    assert {"NetworkPolicy/rewardops-serving", "NetworkPolicy/rewardops-mlflow-from-serving"} <= set(found)
    for doc in found.values():
        assert kubernetes_errors(doc) == [], doc


def test_gpu_and_version_in_production() -> None:
    found = _serving(render(PRODUCTION_VALUES, set_values=(
        "serving.enabled=true", MODEL, "serving.alias=", "serving.version=3", "serving.gpus=1", "serving.dtype=bfloat16")))
    container = found["Deployment/rewardops-serving"]["spec"]["template"]["spec"]["containers"][0]
    (verify,) = found["Deployment/rewardops-serving"]["spec"]["template"]["spec"]["initContainers"]
    assert verify["args"][0] == "models:/rewardops-rm-qwen3-0.6b/3"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {e["name"]: e.get("value") for e in container["env"]}["REWARDOPS_SERVE_DEVICE"] == "cuda"
    for doc in found.values():
        assert kubernetes_errors(doc) == [], doc


def test_bad_values_are_refused_clearly() -> None:
    no_model = template(set_values=("serving.enabled=true",))
    assert no_model.returncode != 0 and "serving" in no_model.stderr and "model" in no_model.stderr, no_model.stderr
    no_alias = template(set_values=("serving.enabled=true", MODEL, "serving.alias="))
    assert no_alias.returncode != 0 and "serving" in no_alias.stderr, no_alias.stderr
    bad_dtype = template(set_values=("serving.enabled=true", MODEL, "serving.dtype=int4"))
    assert bad_dtype.returncode != 0 and "dtype" in bad_dtype.stderr, bad_dtype.stderr


def test_serving_reads_with_its_own_read_only_user_and_mlflow_defaults_to_read() -> None:
    found = _serving(render(set_values=("serving.enabled=true", MODEL, "serving.credentialsSecret=rewardops-mlflow-reader")))
    (verify,) = found["Deployment/rewardops-serving"]["spec"]["template"]["spec"]["initContainers"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in verify["env"] if "valueFrom" in e}
    assert secrets == {"MLFLOW_TRACKING_USERNAME": "rewardops-mlflow-reader", "MLFLOW_TRACKING_PASSWORD": "rewardops-mlflow-reader"}
    for values in ((), (PRODUCTION_VALUES,)):
        docs = render(*values)
        mlflow_server = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "rewardops-mlflow")
        env = {e["name"]: e.get("value") for c in mlflow_server["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        assert "READ" in [v for k, v in env.items() if "PERMISSION" in k.upper()], env
