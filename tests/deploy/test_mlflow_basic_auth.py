"""MLflow behind basic-auth, as the chart runs it, for real on loopback.

The MLflow container's start script and env come from `helm template` (external-database values;
the kubelet's Secret lookups are done here with test values, the database is a SQLite file instead
of PostgreSQL, artifacts go to a local folder, and `--host=0.0.0.0` becomes 127.0.0.1). The
`mlflow-users` hook Job's script (charts/rewardops/files/mlflow_users.py) runs against it with the
admin account, then the rewardops tracker logs a run with nothing but the clients' credentials in
the environment (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which MLflow's client reads
itself: no rewardops code handles them). A request without credentials is refused.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.chart_support import name_of, render

pytestmark = pytest.mark.slow  # real servers: ~1-2 min on 2 cores
VENV_BIN = Path(sys.executable).parent
SECRETS = {  # what the kubelet would read from the Secrets (test values)
    ("rewardops-mlflow-server", "admin-username"): "admin",
    ("rewardops-mlflow-server", "admin-password"): "admin-pw-7c1e2b",
    ("rewardops-mlflow-server", "flask-secret-key"): "flask-key-55aa",
    ("rewardops-mlflow-client", "MLFLOW_TRACKING_USERNAME"): "rewardops-pipelines",
    ("rewardops-mlflow-client", "MLFLOW_TRACKING_PASSWORD"): "client-pw-91d0",
    ("rewardops-s3", "AWS_ACCESS_KEY_ID"): "unused-here",  # artifacts go to a local folder in this test
    ("rewardops-s3", "AWS_SECRET_ACCESS_KEY"): "unused-here",
}
EXTERNAL_DB = ("postgresql.enabled=false", "mlflow.backendStore.external.existingSecret=mlflow-db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _container_env(container: dict, secrets: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    docs = render(set_values=EXTERNAL_DB)
    deployment = next(d for d in docs if name_of(d) == "Deployment/rewardops-mlflow")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    workdir = tmp_path_factory.mktemp("mlflow-auth")
    port = _free_port()
    secrets = {**SECRETS, ("mlflow-db", "dsn"): f"sqlite:///{workdir / 'mlflow.db'}"}
    env = _container_env(container, secrets)
    env.update({
        "PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(workdir),
        "MLFLOW_AUTH_CONFIG_PATH": str(workdir / "basic_auth.ini"),  # the pod's is an emptyDir
        "MLFLOW_ARTIFACTS_DESTINATION": (workdir / "artifacts").as_uri(),
    })
    argv = [*container["command"], *container["args"]]
    argv = ["--host=127.0.0.1" if a == "--host=0.0.0.0" else f"--port={port}" if a.startswith("--port=") else a
            for a in argv]
    argv = [a for a in argv if not a.startswith("--workers=")] + ["--workers=1"]
    log = workdir / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        from support.servers import wait_http_ready

        wait_http_ready(f"{uri}/health", proc, log, "mlflow server (basic-auth)", 180)
        yield {"uri": uri, "docs": docs, "workdir": workdir, "ini": Path(env["MLFLOW_AUTH_CONFIG_PATH"])}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _run_users_job(server: dict) -> subprocess.CompletedProcess:
    job = next(d for d in server["docs"] if name_of(d) == "Job/rewardops-mlflow-users")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = _container_env(container, SECRETS)
    env.update({"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(server["workdir"]), "MLFLOW_URL": server["uri"]})
    argv = [*container["command"], *container["args"]]
    assert argv[:2] == ["python", "-c"]
    argv[0] = sys.executable
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_unauthenticated_requests_are_refused(server) -> None:
    search = f"{server['uri']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, timeout=60).status_code == 401
    assert httpx.get(search, auth=("admin", "wrong"), timeout=60).status_code == 401
    assert httpx.get(search, auth=("admin", SECRETS[("rewardops-mlflow-server", "admin-password")]), timeout=60).status_code == 200
    assert httpx.get(f"{server['uri']}/health", timeout=60).status_code == 200  # probes need no credentials
    # The config file holding the database URL is private to the server process.
    assert server["ini"].stat().st_mode & 0o077 == 0


def test_users_job_then_tracker_logs_with_env_credentials(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from rewardops.tracking.mlflow_tracker import start_tracker

    first = _run_users_job(server)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created MLflow user rewardops-pipelines" in first.stdout
    again = _run_users_job(server)  # post-upgrade: idempotent
    assert again.returncode == 0 and "exists; password set" in again.stdout, again.stdout + again.stderr

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "rewardops-pipelines")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
    with pytest.raises(MlflowException):
        MlflowClient(server["uri"]).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRETS[("rewardops-mlflow-client", "MLFLOW_TRACKING_PASSWORD")])
    with start_tracker("auth-check", "client-run", lineage=False) as tracker:
        tracker.log_params({"lr": 1e-5})
        tracker.log_metrics({"train/loss": 0.25}, step=1)
    run = MlflowClient(server["uri"]).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["train/loss"] == 0.25
    # The clients' account is a plain user, not an admin.
    from mlflow.server.auth.client import AuthServiceClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRETS[("rewardops-mlflow-server", "admin-password")])
    assert AuthServiceClient(server["uri"]).get_user("rewardops-pipelines").is_admin is False


def test_helm_test_pod_script(server, tmp_path: Path) -> None:
    """The `helm test` pod's script (charts/rewardops/files/helm_test.py), with the env the chart
    gives that pod, against this MLflow and an S3 API: moto's server mode on loopback stands in for
    MinIO, which cannot be installed here. Runs after the users Job test created the clients' user."""
    from moto.server import ThreadedMotoServer

    docs = server["docs"]
    pod = next(d for d in docs if name_of(d) == "Pod/rewardops-test")
    container = pod["spec"]["containers"][0]
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    s3.start()
    try:
        host, port = s3.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = _container_env(container, SECRETS)
        env.update({"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "MLFLOW_URL": server["uri"],
                    "AWS_ENDPOINT_URL": endpoint})
        assert env["MLFLOW_AUTH_MODE"] == "basic-auth" and env["MLFLOW_TRACKING_USERNAME"] == "rewardops-pipelines"
        argv = [*container["command"], *container["args"]]
        argv[0] = sys.executable
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="unused-here", aws_secret_access_key="unused-here")
        missing = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert missing.returncode != 0 and "NoSuchBucket" in missing.stderr + missing.stdout  # buckets not there yet
        for bucket in ("rewardops-mlflow", "rewardops-dvc", "rewardops-checkpoints"):
            client.create_bucket(Bucket=bucket)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        for line in ("mlflow: ok", "a request without credentials is refused (401)", "database (through MLflow): ok",
                     "s3://rewardops-mlflow/artifacts/: list, write, read, delete ok",
                     "s3://rewardops-dvc/dvc/: list, write, read, delete ok"):
            assert line in done.stdout, done.stdout
        assert not client.list_objects_v2(Bucket="rewardops-dvc").get("Contents")  # cleaned up after itself
    finally:
        s3.stop()


def test_read_user_cannot_tag_or_alias_a_model_version(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry reader (the chart's `mlflow.auth.defaultPermission: READ`, nothing granted) gets 403
    on a model-version tag (a fabricated `eval/world=99` would otherwise steer promotion) and on an
    alias; the tag is unchanged afterwards. A user granted EDIT on the model can do both."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    admin_pw = SECRETS[("rewardops-mlflow-server", "admin-password")]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_pw)
    admin, auth = MlflowClient(server["uri"]), AuthServiceClient(server["uri"])
    name = "rm-tag-guard"
    admin.create_registered_model(name)
    run = admin.create_run(admin.create_experiment("tag-guard"))
    version = admin.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    admin.set_model_version_tag(name, version, "eval/world", "61.5")
    admin.set_registered_model_alias(name, "champion", version)
    auth.create_user("reader-tg", "reader-pw-3f1a")  # no grant: the chart's default permission applies
    auth.create_user("editor-tg", "editor-pw-8b2c")
    auth.grant_user_permission("editor-tg", "registered_model", name, "EDIT")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader-tg")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "reader-pw-3f1a")
    reader = MlflowClient(server["uri"])
    assert reader.get_model_version(name, version).tags["eval/world"] == "61.5"  # READ can read
    for write in (lambda: reader.set_model_version_tag(name, version, "eval/world", "99"),
                  lambda: reader.set_registered_model_alias(name, "champion-x", version),
                  lambda: reader.delete_registered_model_alias(name, "champion")):
        with pytest.raises(MlflowException) as refused:
            write()
        assert refused.value.get_http_status_code() == 403, refused.value
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_pw)
    after = admin.get_model_version(name, version)
    assert after.tags["eval/world"] == "61.5"
    assert admin.get_registered_model(name).aliases == {"champion": version}

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "editor-tg")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "editor-pw-8b2c")
    editor = MlflowClient(server["uri"])
    editor.set_model_version_tag(name, version, "eval/world", "99")
    editor.set_registered_model_alias(name, "challenger", version)
    assert editor.get_model_version(name, version).tags["eval/world"] == "99"
    assert editor.get_registered_model(name).aliases == {"champion": version, "challenger": version}
