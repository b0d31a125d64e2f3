"""Rank-0-only MLflow logging for training, curation and evaluation.

    with start_tracker("rewardops-train", "qwen3-0.6b", tags=run_tags()) as tracker:
        tracker.log_params(config)                   # nested dicts are flattened: "optim.lr"
        tracker.log_metrics({"train/loss": 0.4}, step=10)
        tracker.log_figure("curve.png")
        tracker.register_model("out/model", "rewardops-rm-qwen3-0.6b")   # alias "candidate"

Where runs go: `rewardops.tracking.uri.resolve_tracking_uri` (the one place that decides).

Ranks: only the process with RANK 0 (or no RANK) talks to MLflow; other ranks, and
`enabled=False`, get a `NullTracker` with the same methods that does nothing.

Faults: MLflow does the work. Metrics, params and tags go through MLflow's own async logging
(`MlflowClient.log_batch(..., synchronous=False)`: a queue and worker threads), and every HTTP
request is retried by MLflow with backoff; this module sets `MLFLOW_HTTP_REQUEST_MAX_RETRIES=10`,
`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1` and `MLFLOW_HTTP_REQUEST_TIMEOUT=20` unless already set
(about 8 minutes of outage ride-through per request). Artifacts, the dataset input and the final
status are sent from a background thread with the same retries. So a call never blocks training.
What MLflow lacks is kept here: `flush(timeout)` says whether everything arrived (with one warning
when the server is unreachable and one when it is back); a request MLflow gives up on, and
whatever is still pending when `close()` has waited `flush_timeout` seconds
(`REWARDOPS_TRACKING_FLUSH_TIMEOUT`, default 60), is written to the on-disk spool
(`rewardops.tracking.spool`) and named in a warning. A request the server rejects for good (e.g. a
param changing value) is dropped with a warning. Starting a run needs the server:
`start_tracker` raises `TrackingUnavailable` at once, before any compute is spent.

System metrics (CPU, memory, disk, network, GPU) are MLflow's own `SystemMetricsMonitor`
(`system_metrics=True`, on for training). Experiments created here are tagged
`mlflow.experimentKind=custom_model_development` (model training, not GenAI); MLflow 3's UI also
takes the mode from its link (`?workflowType=machine_learning`, what `rewardops ui` prints).
Experiment, kind tag, suite parent run and registered model are created once when several
processes start at the same instant on a fresh store (`get_or_create_experiment`,
`suite_parent_run`, `rewardops.tracking.rewardmodel.get_or_create_registered_model`).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rewardops.tracking.lineage import strip_userinfo
from rewardops.tracking.spool import write as spool_write
from rewardops.tracking.uri import default_artifact_location, default_tracking_uri, resolve_tracking_uri
from rewardops.errors import ServiceError

__all__ = [
    "NullTracker",
    "MlflowTracker",
    "Tracker",
    "TrackingUnavailable",
    "TrackingWarning",
    "default_tracking_uri",
    "flatten_params",
    "is_rank_zero",
    "resolve_tracking_uri",
    "start_tracker",
    "suite_parent_run",
]

_MAX_PARAMS_PER_BATCH = 100
_MAX_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_VALUE = 6000  # MLflow 2.x+ limit for param values
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class TrackingUnavailable(ServiceError):
    """The tracking server could not be reached when a run had to be created."""


class TrackingWarning(UserWarning):
    """The tracking server is unreachable or rejected a request; training goes on."""


@runtime_checkable
class Tracker(Protocol):
    """What the trainer, curation and evaluation log through."""

    @property
    def run_id(self) -> str | None: ...

    @property
    def enabled(self) -> bool: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None: ...

    def log_figure(self, figure: Any, name: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def register_model(
        self, model_dir: str | os.PathLike[str], name: str, alias: str = "candidate"
    ) -> int | None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, status: str = "FINISHED") -> None: ...

    def __enter__(self) -> Tracker: ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------------------------
# helpers


def is_rank_zero() -> bool:
    """True on the process that should log: RANK unset or 0 (torchrun/DeepSpeed set RANK)."""
    rank = os.environ.get("RANK", "0").strip() or "0"
    try:
        return int(rank) == 0
    except ValueError:
        return True


def portable(text: str) -> str:
    """A param value without machine-local folders: an absolute path inside the working directory
    becomes relative to it; one in the temporary folder keeps only its last two parts."""
    if not text.startswith("/") or "\n" in text or len(text) > 4096:
        return text
    path = Path(text)
    for base, prefix in ((Path.cwd(), ""), (Path(tempfile.gettempdir()), "<tmp>/…/")):
        try:
            rel = path.relative_to(base.resolve()) if path.is_absolute() else path
        except ValueError:
            continue
        if prefix:
            return prefix + "/".join(rel.parts[-2:])
        return rel.as_posix() or "."
    return text


def flatten_params(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """`{"optim": {"lr": 1e-5}}` -> `{"optim.lr": "1e-05"}`; lists become JSON, long values are cut,
    local folders become relative (`portable`)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name, sep))
            continue
        if hasattr(value, "__dataclass_fields__"):
            from dataclasses import asdict

            flat.update(flatten_params(asdict(value), name, sep))
            continue
        text = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else portable(str(value))
        text = strip_userinfo(text)  # no credentials of a URL in stored params
        if len(text) > _MAX_PARAM_VALUE:
            text = text[: _MAX_PARAM_VALUE - 3] + "..."
        flat[name] = text
    return flat


def _stringify_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): strip_userinfo(str(v)) for k, v in (tags or {}).items() if v is not None}


def _looks_like_connection_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("connection", "max retries", "timed out", "timeout", "refused", "unreachable", "503", "502", "504")
    return any(m in text for m in markers)


def _background(fn: Any, *args: Any, **kwargs: Any) -> Future:
    """Run `fn` on a daemon thread (a stuck retry never keeps the process alive); a Future."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the Future
            future.set_exception(exc)

    threading.Thread(target=target, name="rewardops-tracking", daemon=True).start()
    return future


# --------------------------------------------------------------------------------------------
# the no-op tracker


class NullTracker:
    """Same interface, does nothing: non-zero ranks and `enabled=False`."""

    run_id: str | None = None
    enabled = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        return None

    def log_figure(self, figure: Any, name: str | None = None) -> None:
        return None

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        return None

    def log_dataset(self, version: Any, context: str = "training") -> None:
        return None

    def register_model(
        self, model_dir: str | os.PathLike[str], name: str, alias: str = "candidate"
    ) -> int | None:
        return None

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, status: str = "FINISHED") -> None:
        return None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# --------------------------------------------------------------------------------------------
# the MLflow tracker


@dataclass
class _Pending:
    op: dict[str, Any]  # what was sent, in the spool's format
    futures: list[Future] = field(default_factory=list)
    handled: bool = False

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def error(self) -> BaseException | None:
        for f in self.futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                return f.exception()
        return None


def _is_permanent(exc: BaseException) -> bool:
    """A rejection that retrying will not fix (bad value, changed param), vs. the server being away."""
    from mlflow.exceptions import MlflowException

    if _looks_like_connection_error(exc):
        return False
    if isinstance(exc, MlflowException):
        text = f"{getattr(exc, 'error_code', '')} {exc}"
        return any(code in text for code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "RESOURCE_DOES_NOT_EXIST"))
    return isinstance(exc, (FileNotFoundError, IsADirectoryError, ValueError, TypeError))


class MlflowTracker:
    """One MLflow run logged through MLflow's async logging; see the module docstring."""

    enabled = True

    def __init__(self, client: Any, run_id: str, tracking_uri: str, *, flush_timeout: float = 60.0,
                 system_metrics: bool = False) -> None:
        self._client = client
        self._run_id = run_id
        self.tracking_uri = strip_userinfo(tracking_uri)  # only shown in messages: never a password
        self.flush_timeout = flush_timeout
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._closed = False
        self._tmp = tempfile.TemporaryDirectory(prefix="rewardops-tracker-")
        self.dropped: list[dict[str, Any]] = []  # permanent rejections, for inspection
        self.spooled: list[dict[str, Any]] = []
        self._monitor = None
        if system_metrics:
            self._monitor = _start_system_metrics(run_id, tracking_uri)

    # -- public API ---------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def server_reachable(self) -> bool:
        """False from a `flush` that timed out until one that completes."""
        return self._down_since is None

    @property
    def backlog(self) -> int:
        """Operations sent to MLflow and not yet acknowledged."""
        with self._lock:
            return sum(1 for p in self._pending if not p.done())

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = list(flatten_params(params).items())
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            chunk = dict(items[i : i + _MAX_PARAMS_PER_BATCH])
            self._batch({"kind": "batch", "metrics": [], "params": chunk, "tags": {}},
                        params=[Param(k, v) for k, v in chunk.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = []
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                warnings.warn(f"metric {key!r}={value!r} is not a number; not logged", TrackingWarning, stacklevel=2)
                continue
            items.append(Metric(str(key), number, now, int(step or 0)))
        for i in range(0, len(items), _MAX_METRICS_PER_BATCH):
            chunk = items[i : i + _MAX_METRICS_PER_BATCH]
            described = [{"key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp} for m in chunk]
            self._batch({"kind": "batch", "metrics": described, "params": {}, "tags": {}}, metrics=chunk)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = list(_stringify_tags(tags).items())
        for i in range(0, len(items), _MAX_TAGS_PER_BATCH):
            chunk = dict(items[i : i + _MAX_TAGS_PER_BATCH])
            self._batch({"kind": "batch", "metrics": [], "params": {}, "tags": chunk},
                        tags=[RunTag(k, v) for k, v in chunk.items()])

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or a folder in the background. Keep it until `flush()`/`close()`."""
        local = Path(path)
        if not local.exists():
            raise FileNotFoundError(f"artifact to log does not exist: {local}")
        local = local.resolve()
        send = self._client.log_artifacts if local.is_dir() else self._client.log_artifact
        future = _background(send, self._run_id, str(local), artifact_path)
        self._track(_Pending({"kind": "artifact", "path": str(local), "artifact_path": artifact_path}, [future]))

    def log_figure(self, figure: Any, name: str | None = None) -> None:
        """Log a PNG (a path) or a matplotlib Figure (saved to PNG first) under `figures/`."""
        if isinstance(figure, (str, os.PathLike)):
            self.log_artifact(figure, "figures")
            return
        filename = name or f"figure-{int(time.time() * 1000)}.png"
        if not filename.endswith(".png"):
            filename += ".png"
        target = Path(self._tmp.name) / f"{time.monotonic_ns()}" / filename
        target.parent.mkdir(parents=True)
        figure.savefig(target, dpi=120, bbox_inches="tight")
        self.log_artifact(target, "figures")

    def log_dataset(self, version: Any, context: str = "training") -> None:
        """Record the run's MLflow dataset input and its tags: a DVC-versioned dataset
        (`rewardops.tracking.lineage.DataVersion`; source: the DVC location, digest: its md5) or a
        plain dataset folder (`FolderVersion`; source: its path, digest: its manifest digest)."""
        from mlflow.entities import DatasetInput, InputTag

        from rewardops.tracking.lineage import DataVersion, dataset_entity, dvc_get_command, mlflow_dataset

        if isinstance(version, DataVersion):  # only a DVC version can be brought back with `dvc get`
            self.set_tags({**version.tags(), "rewardops.data.get": dvc_get_command(version)})
            entity = dataset_entity(version)
        else:
            self.set_tags(version.tags())
            entity = mlflow_dataset(version)._to_mlflow_entity()
        tags = [InputTag("mlflow.data.context", context)]
        future = _background(self._client.log_inputs, self._run_id, datasets=[DatasetInput(entity, tags)])
        self._track(_Pending({"kind": "input", "dataset": version.as_dict(), "context": context}, [future]))

    def register_model(
        self, model_dir: str | os.PathLike[str], name: str, alias: str = "candidate"
    ) -> int | None:
        """Log `model_dir` (an exported reward model) as the serving pyfunc under this run, register
        it as `name` and point `alias` at the new version (`rewardops.tracking.rewardmodel`).

        Returns the version, or None (with a warning) when the server is unreachable: the export
        stays on disk and `rewardops registry register` registers it later.
        """
        from rewardops.tracking.rewardmodel import log_reward_model

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"not a saved transformers checkpoint (no config.json): {model_dir}")
        if not self.flush(self.flush_timeout):
            warnings.warn(
                f"MLflow server at {self.tracking_uri} unreachable; model {name!r} from {model_dir} "
                f"not registered (the export is still on disk: rewardops registry register {model_dir} "
                f"--name {name} --run-id {self._run_id})",
                TrackingWarning,
                stacklevel=2,
            )
            return None
        try:
            return log_reward_model(self._client, self._run_id, model_dir, name, alias=alias)
        except Exception as exc:  # noqa: BLE001 - an outage must not kill training; bugs still raise
            if not _looks_like_connection_error(exc):
                raise
            warnings.warn(f"could not register model {name!r} from {model_dir} at {self.tracking_uri}: {exc}",
                          TrackingWarning, stacklevel=2)
            return None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is acknowledged; False if `timeout` ran out first."""
        with self._lock:
            futures = [f for p in self._pending for f in p.futures]
        _, not_done = wait_futures(futures, timeout=timeout)
        self._settle()
        if not_done:
            if self._down_since is None:
                self._down_since = time.monotonic()
                warnings.warn(
                    f"MLflow tracking server {self.tracking_uri} unreachable: {self.backlog} operations "
                    "buffering in MLflow's async queue and retried with backoff; training continues",
                    TrackingWarning,
                    stacklevel=2,
                )
            return False
        if self._down_since is not None:
            outage = time.monotonic() - self._down_since
            self._down_since = None
            warnings.warn(f"MLflow tracking server {self.tracking_uri} reachable again after {outage:.0f}s; "
                          "buffered data sent", TrackingWarning, stacklevel=2)
        return True

    def close(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or FAILED/KILLED), wait for what is pending, spool what is not sent."""
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            try:
                self._monitor.finish()
            except Exception:  # noqa: BLE001 - system metrics are best effort
                pass
        drained = self.flush(self.flush_timeout)
        if drained:
            terminate = _background(self._client.set_terminated, self._run_id, status)
            self._track(_Pending({"kind": "terminate", "status": status}, [terminate]))
            drained = self.flush(self.flush_timeout)
        else:
            self._track(_Pending({"kind": "terminate", "status": status}, []))
        if not drained:
            self._spool_unsent()
        else:
            self._tmp.cleanup()

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is KeyboardInterrupt:
            self.close("KILLED")
        else:
            self.close("FAILED" if exc_type is not None else "FINISHED")

    # -- bookkeeping ------------------------------------------------------------------------------

    def _batch(self, op: dict[str, Any], **entities: Any) -> None:
        if self._closed:
            warnings.warn("tracker is closed; call ignored", TrackingWarning, stacklevel=3)
            return
        operations = self._client.log_batch(self._run_id, synchronous=False, **entities)
        futures = list(getattr(operations, "_operation_futures", None) or [])
        self._track(_Pending(op, futures))

    def _track(self, pending: _Pending) -> None:
        with self._lock:
            self._pending.append(pending)
        self._settle()

    def _settle(self) -> None:
        """Drop acknowledged operations; spool the ones MLflow gave up on; warn about rejections."""
        with self._lock:
            finished = [p for p in self._pending if p.futures and p.done() and not p.handled]
            self._pending = [p for p in self._pending if not (p.futures and p.done())]
        for pending in finished:
            pending.handled = True
            error = pending.error()
            if error is None:
                continue
            if _is_permanent(error):
                self.dropped.append({**pending.op, "error": str(error)})
                warnings.warn(f"MLflow rejected a {pending.op['kind']} for run {self._run_id}: {error}; dropped",
                              TrackingWarning, stacklevel=3)
            else:
                path = spool_write(self._run_id, [pending.op])
                self.spooled.append(pending.op)
                warnings.warn(f"MLflow gave up sending a {pending.op['kind']} for run {self._run_id} "
                              f"({str(error)[:200]}); written to {path}", TrackingWarning, stacklevel=3)

    def _spool_unsent(self) -> None:
        with self._lock:
            unsent = [p for p in self._pending if not p.done() or not p.futures]
            self._pending = []
        if not unsent:
            return
        ops = [p.op for p in unsent]
        path = spool_write(self._run_id, ops)
        self.spooled.extend(ops)
        warnings.warn(
            f"MLflow server {self.tracking_uri} still unreachable at close; {len(ops)} unsent operations "
            f"for run {self._run_id} written to {path} (MLflow keeps retrying the pending requests while "
            "this process lives; `rewardops.tracking.spool.replay` sends the file later)",
            TrackingWarning,
            stacklevel=2,
        )


def _start_system_metrics(run_id: str, tracking_uri: str) -> Any:
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        interval = float(os.environ.get("REWARDOPS_SYSTEM_METRICS_INTERVAL", "10"))
        monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, tracking_uri=tracking_uri)
        monitor.start()
        return monitor
    except Exception as exc:  # noqa: BLE001 - e.g. psutil missing: training goes on
        warnings.warn(f"MLflow system metrics not started: {exc}", TrackingWarning, stacklevel=3)
        return None


# --------------------------------------------------------------------------------------------
# entry point


def _set_http_retries() -> None:
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def get_or_create_experiment(client: Any, experiment: str, tracking_uri: str, attempts: int = 6) -> str:
    """The experiment's id, created (tagged model-training, `EXPERIMENT_KIND`) if missing.

    Safe when several processes start at the same instant on a fresh store (one per size): a
    create or tag write that loses the race (a UNIQUE constraint on SQLite/PostgreSQL, "already
    exists" from a server) is followed by reading what the winner wrote, a few times with a short
    random pause, and only an error that persists is raised."""
    # A database backend needs an artifact location; a server (http) chooses its own.
    location = None if tracking_uri.startswith(("http://", "https://", "databricks")) else default_artifact_location(tracking_uri)
    error: BaseException | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.05 + random.random() * 0.2 * attempt)
        try:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return client.create_experiment(experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            ensure_experiment_kind(client, found)
            return found.experiment_id
        except Exception as exc:  # noqa: BLE001 - another process won a race: read again
            error = exc
    raise error  # type: ignore[misc]


def ensure_experiment_kind(client: Any, experiment: Any) -> None:
    """Tag `experiment` so MLflow's UI opens it in model-training mode on the runs table; a
    concurrent writer of the same tag is not an error."""
    if (experiment.tags or {}).get(EXPERIMENT_KIND[0]) is not None:
        return
    try:
        client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    except Exception:
        again = client.get_experiment(experiment.experiment_id)
        if (again.tags or {}).get(EXPERIMENT_KIND[0]) is None:
            raise


SUITE_TAG = "rewardops.suite"
SUITE_PARENT_TAG = "rewardops.suite.parent"
SUITE_RUN_TAG = "rewardops.suite.run."  # + size, on a parent: the training run the suite uses for that size
SUITE_WORKDIR_TAG = "rewardops.suite.workdir"  # on a parent: the local run's workdir


def prepare_sqlite_store(uri: str) -> None:
    """Create a SQLite store's tables once: processes that open a fresh file at the same instant
    would each run MLflow's schema migrations and fail (`duplicate column`, `table already
    exists`). An exclusive lock on `<file>.init-lock` lets one migrate while the others wait."""
    import fcntl

    from mlflow.tracking import MlflowClient

    path = Path(uri.removeprefix("sqlite:///"))
    if ":memory:" in uri or not str(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".init-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


SUITE_SETTLE_S = 2.0  # how long a new parent run waits for parents other processes created at once


def suite_parent_run(client: Any, experiment_id: str, suite: str) -> str:
    """The id of suite `suite`'s parent run in the experiment, created (and marked FINISHED) if new.

    Processes that start at once may each create one. Each creator waits `SUITE_SETTLE_S` (longer
    than a write takes to be visible), then all see the same parents and keep the same one, the
    first by (start time, run id); the others delete theirs, so the suite has one parent."""
    query = f"tags.`{SUITE_TAG}` = '{suite}' and tags.`{SUITE_PARENT_TAG}` = 'true'"
    found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        return found[0].info.run_id
    from rewardops.tracking.lineage import run_tags as lineage_tags

    tags = {**lineage_tags(os.environ.get("REWARDOPS_DATA_PATH")), SUITE_TAG: suite, SUITE_PARENT_TAG: "true"}
    run = client.create_run(experiment_id, tags=tags, run_name=f"suite-{suite}")
    client.set_terminated(run.info.run_id, "FINISHED")
    time.sleep(SUITE_SETTLE_S)
    found = client.search_runs([experiment_id], query, max_results=1000)
    winner = min(found, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id if found else run.info.run_id
    if winner != run.info.run_id:
        client.delete_run(run.info.run_id)
    return winner


def start_tracker(
    experiment: str,
    run_name: str,
    *,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    enabled: bool = True,
    flush_timeout: float | None = None,
    lineage: bool = True,
    system_metrics: bool = False,
) -> Tracker:
    """Start an MLflow run (a child of `parent_run_id` if given); a context manager.

    Returns a `NullTracker` when `enabled` is False or this is not rank 0.
    Environment: `REWARDOPS_PARENT_RUN_ID` is the default parent; `REWARDOPS_SUITE=<name>` makes
    the run a child of that suite's parent run in this experiment (created on first use), so
    separate processes (one per size: DVC matrix stages, KFP steps) end up under one suite.
    With `lineage` (default) the `run_tags()` lineage tags are added under the given `tags`, and a
    dataset (`tags["rewardops.data.path"]` or `REWARDOPS_DATA_PATH`) is logged as the run's dataset
    input: its DVC version where there is one, else the folder's manifest digest and path.
    """
    if not enabled or not is_rank_zero():
        return NullTracker()
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        _set_http_retries()
    if uri.startswith("sqlite:///"):
        prepare_sqlite_store(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    run_tags = _stringify_tags(tags)
    version = None
    if lineage:
        from rewardops.tracking.lineage import data_version, folder_version, run_tags as lineage_tags

        data = run_tags.get("rewardops.data.path") or os.environ.get("REWARDOPS_DATA_PATH")
        version = (data_version(data) or folder_version(data)) if data else None
        run_tags = {**lineage_tags(data), **run_tags, **(version.tags() if version else {})}
        if data:
            run_tags["rewardops.data.path"] = version.path if version else portable(str(data))
    suite = os.environ.get("REWARDOPS_SUITE")
    parent_run_id = parent_run_id or os.environ.get("REWARDOPS_PARENT_RUN_ID") or None
    try:
        experiment_id = get_or_create_experiment(client, experiment, uri)
        if parent_run_id is None and suite:
            parent_run_id = suite_parent_run(client, experiment_id, suite)
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        if suite:
            run_tags.setdefault(SUITE_TAG, suite)
        run = client.create_run(experiment_id, tags=run_tags, run_name=run_name)
    except Exception as exc:  # noqa: BLE001
        raise TrackingUnavailable(
            f"could not start MLflow run {run_name!r} in experiment {experiment!r} at {strip_userinfo(uri)}: "
            f"{strip_userinfo(str(exc))}"
        ) from exc
    mlflow.set_tracking_uri(uri)  # MLflow's async queue and system metrics use the fluent URI
    timeout = flush_timeout if flush_timeout is not None else float(os.environ.get("REWARDOPS_TRACKING_FLUSH_TIMEOUT", "60"))
    tracker = MlflowTracker(client, run.info.run_id, uri, flush_timeout=timeout, system_metrics=system_metrics)
    if version is not None:
        tracker.log_dataset(version)
    return tracker
