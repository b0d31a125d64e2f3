"""Rank-0-only MLflow logging for training, curation and evaluation.

    with start_tracker("rewardops-train", "qwen3-0.6b", tags=run_tags()) as tracker:
        tracker.log_params(config)                   # nested dicts are flattened: "optim.lr"
        tracker.log_metrics({"train/loss": 0.4}, step=10)
        tracker.log_figure("curve.png")
        tracker.register_model("out/final", "rm-qwen3-0.6b")   # alias "candidate"

Where runs go
    `tracking_uri` argument, else `MLFLOW_TRACKING_URI`, else the embedded default: a SQLite
    database `sqlite:///<cwd>/mlruns.db` with artifacts in `<cwd>/mlartifacts` (the layout the
    `mlflow server` defaults use, so `mlflow ui --backend-store-uri sqlite:///mlruns.db` in the
    same folder shows them). A `sqlite:///path/x.db` URI keeps its artifacts in `path/mlartifacts`.
    `REWARDOPS_MLFLOW_ARTIFACTS` overrides the artifact folder/URI used for experiments this
    module creates on a database backend.

Ranks
    Only the process with RANK 0 (or no RANK) talks to MLflow; other ranks, and `enabled=False`,
    get a `NullTracker` with the same methods that does nothing. Broadcast `tracker.run_id` from
    rank 0 if other ranks need it.

Faults
    Nothing the tracker does can stop training. Every call is queued and sent by one background
    thread, in order; metrics are batched. When the server goes away the queue is kept, one
    warning is printed, and sending is retried with backoff until it comes back (a later
    warning says so). `close()` (the end of the `with` block) waits up to `flush_timeout`
    seconds for the queue to drain; whatever is still unsent is written to a JSONL file in
    `REWARDOPS_TRACKING_SPOOL` (default `./mlruns-unsent/`) and named in a warning, so nothing
    is lost silently. Env knobs: `REWARDOPS_TRACKING_FLUSH_TIMEOUT` (s, default 60) and
    `REWARDOPS_TRACKING_RETRY_MAX` (longest pause between retries, s, default 30). Requests the server rejects for good (e.g. a param changed value) are
    dropped with a warning instead of retried forever.
    Because this module retries itself, it lowers MLflow's own HTTP retries for this process
    (`MLFLOW_HTTP_REQUEST_MAX_RETRIES=1`, `..._TIMEOUT=20`) unless they are already set; a
    retry storm inside one request would otherwise hold the queue for minutes.
    Starting a run needs the server: `start_tracker` raises `TrackingUnavailable` right away
    (before any compute is spent) if it cannot create the run.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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

_MAX_METRICS_PER_BATCH = 1000  # MLflow REST limit
_MAX_PARAMS_PER_BATCH = 100
_MAX_TAGS_PER_BATCH = 100
_MAX_PARAM_VALUE = 6000  # MLflow 2.x+ limit for param values
_MAX_BUFFERED_METRICS = 500_000  # beyond this the oldest points are spooled to disk


class TrackingUnavailable(RuntimeError):
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


def default_tracking_uri(cwd: str | os.PathLike[str] | None = None) -> str:
    """The embedded default: a SQLite file `mlruns.db` in the working directory."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    return f"sqlite:///{base.resolve() / 'mlruns.db'}"


def default_artifact_location(tracking_uri: str | None = None) -> str:
    """`REWARDOPS_MLFLOW_ARTIFACTS`, else `mlartifacts/` next to a SQLite file, else in the cwd."""
    env = os.environ.get("REWARDOPS_MLFLOW_ARTIFACTS")
    if env:
        return env if "://" in env else Path(env).resolve().as_uri()
    base = Path.cwd()
    if tracking_uri and tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        base = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent
    return (base.resolve() / "mlartifacts").as_uri()


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def flatten_params(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """`{"optim": {"lr": 1e-5}}` -> `{"optim.lr": "1e-05"}`; lists become JSON, long values are cut."""
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
        if isinstance(value, (list, tuple)):
            text = json.dumps(value, default=str)
        elif isinstance(value, Path):
            text = str(value)
        else:
            text = str(value)
        if len(text) > _MAX_PARAM_VALUE:
            text = text[: _MAX_PARAM_VALUE - 3] + "..."
        flat[name] = text
    return flat


def _stringify_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items() if v is not None}


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
class _Op:
    kind: str  # "batch" | "artifact" | "terminate"
    metrics: list[Any] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    tags: list[Any] = field(default_factory=list)
    path: str = ""
    artifact_path: str | None = None
    status: str = "FINISHED"

    def describe(self) -> dict[str, Any]:
        if self.kind == "batch":
            return {
                "kind": "batch",
                "metrics": [
                    {"key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp}
                    for m in self.metrics
                ],
                "params": {p.key: p.value for p in self.params},
                "tags": {t.key: t.value for t in self.tags},
            }
        if self.kind == "artifact":
            return {"kind": "artifact", "path": self.path, "artifact_path": self.artifact_path}
        return {"kind": self.kind, "status": self.status}


def _is_permanent(exc: BaseException) -> bool:
    """A rejection that retrying will not fix (bad value, changed param), vs. the server being away."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return isinstance(exc, (FileNotFoundError, IsADirectoryError, ValueError, TypeError))
    code = getattr(exc, "error_code", "")
    return code in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "RESOURCE_DOES_NOT_EXIST"}


class MlflowTracker:
    """Logs one MLflow run through a background sender thread; see the module docstring."""

    enabled = True

    def __init__(
        self,
        client: Any,
        run_id: str,
        tracking_uri: str,
        *,
        flush_timeout: float = 60.0,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self.tracking_uri = tracking_uri
        self.flush_timeout = flush_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._pending: list[_Op] = []  # owned by the sender thread
        self._idle = threading.Condition()
        self._outstanding = 0  # ops accepted but not yet sent or dropped
        self._down_since: float | None = None
        self._closed = False
        self._tmp = tempfile.TemporaryDirectory(prefix="rewardops-tracker-")
        self.dropped: list[dict[str, Any]] = []  # permanent rejections, for inspection
        self._thread = threading.Thread(target=self._sender, name=f"mlflow-sender-{run_id[:8]}", daemon=True)
        self._thread.start()

    # -- public API ---------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def server_reachable(self) -> bool:
        """False while the last send attempt failed (the queue is being kept)."""
        return self._down_since is None

    @property
    def backlog(self) -> int:
        with self._idle:
            return self._outstanding

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self._put(_Op("batch", params=items[i : i + _MAX_PARAMS_PER_BATCH]))

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
        if items:
            self._put(_Op("batch", metrics=items))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in _stringify_tags(tags).items()]
        for i in range(0, len(items), _MAX_TAGS_PER_BATCH):
            self._put(_Op("batch", tags=items[i : i + _MAX_TAGS_PER_BATCH]))

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or a folder. The sender reads it later: keep it until `flush()`/`close()`."""
        local = Path(path)
        if not local.exists():
            raise FileNotFoundError(f"artifact to log does not exist: {local}")
        self._put(_Op("artifact", path=str(local.resolve()), artifact_path=artifact_path))

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

    def register_model(
        self, model_dir: str | os.PathLike[str], name: str, alias: str = "candidate"
    ) -> int | None:
        """Log `model_dir` (a saved transformers checkpoint) with the transformers flavor under
        this run, register it as `name` and point `alias` at the new version.

        Returns the version, or None (with a warning) when the server is unreachable: the
        checkpoint stays on disk and `rewardops.tracking.registry.register_checkpoint` can
        register it later.
        """
        from rewardops.tracking.registry import log_and_register_checkpoint

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"not a saved transformers checkpoint (no config.json): {model_dir}")

        if not self.flush(self.flush_timeout):
            warnings.warn(
                f"MLflow server at {self.tracking_uri} unreachable; model {name!r} from {model_dir} "
                "not registered (the checkpoint is still on disk)",
                TrackingWarning,
                stacklevel=2,
            )
            return None
        try:
            return log_and_register_checkpoint(
                self._client, self._run_id, model_dir, name, alias=alias, tracking_uri=self.tracking_uri
            )
        except Exception as exc:  # noqa: BLE001 - an outage must not kill training; bugs still raise
            if not _looks_like_connection_error(exc):
                raise
            warnings.warn(
                f"could not register model {name!r} from {model_dir} at {self.tracking_uri}: {exc}",
                TrackingWarning,
                stacklevel=2,
            )
            return None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent; False if `timeout` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._outstanding:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 1.0)
        return True

    def close(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or FAILED/KILLED), drain the queue, spool what cannot be sent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_Op("terminate", status=status))
        with self._idle:
            self._outstanding += 1
        drained = self.flush(self.flush_timeout)
        self._queue.put(None)  # stop the sender
        self._thread.join(timeout=max(self._retry_max, 5.0))
        if not drained:
            self._spool_unsent()
        self._tmp.cleanup()

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is KeyboardInterrupt:
            self.close("KILLED")
        else:
            self.close("FAILED" if exc_type is not None else "FINISHED")

    # -- the sender -----------------------------------------------------------------------------

    def _put(self, op: _Op) -> None:
        if self._closed:
            warnings.warn("tracker is closed; call ignored", TrackingWarning, stacklevel=3)
            return
        with self._idle:
            self._outstanding += 1
        self._queue.put(op)

    def _done(self, count: int) -> None:
        with self._idle:
            self._outstanding -= count
            self._idle.notify_all()

    def _drain_queue(self, block_for: float | None) -> bool:
        """Move queued ops into `_pending`; False once the stop sentinel was seen."""
        try:
            item = self._queue.get(timeout=block_for) if block_for is not None else self._queue.get()
        except queue.Empty:
            return True
        while True:
            if item is None:
                return False
            self._pending.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True

    def _sender(self) -> None:
        delay = self._retry_initial
        running = True
        while running or self._pending:
            if not self._pending:
                running = self._drain_queue(None)
                continue
            if running:
                running = self._drain_queue(0.0)
            self._trim_backlog()
            try:
                sent = self._send_some()
            except Exception as exc:  # noqa: BLE001
                if _is_permanent(exc) and not _looks_like_connection_error(exc):
                    op = self._pending.pop(0)
                    self.dropped.append({**op.describe(), "error": str(exc)})
                    warnings.warn(
                        f"MLflow rejected a {op.kind} for run {self._run_id}: {exc}; dropped",
                        TrackingWarning,
                        stacklevel=1,
                    )
                    self._done(1)
                    continue
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    warnings.warn(
                        f"MLflow tracking server {self.tracking_uri} unreachable ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); buffering and retrying, training continues",
                        TrackingWarning,
                        stacklevel=1,
                    )
                if not running:
                    return  # stopped while the server is away: close() spools the rest
                running = self._drain_queue(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if self._down_since is not None:
                outage = time.monotonic() - self._down_since
                self._down_since = None
                warnings.warn(
                    f"MLflow tracking server {self.tracking_uri} reachable again after {outage:.0f}s; "
                    "sending buffered data",
                    TrackingWarning,
                    stacklevel=1,
                )
            delay = self._retry_initial
            self._done(sent)

    def _send_some(self) -> int:
        """Send the head of `_pending` (batch ops are merged); returns how many ops were sent."""
        head = self._pending[0]
        if head.kind == "artifact":
            if Path(head.path).is_dir():
                self._client.log_artifacts(self._run_id, head.path, head.artifact_path)
            else:
                self._client.log_artifact(self._run_id, head.path, head.artifact_path)
            self._pending.pop(0)
            return 1
        if head.kind == "terminate":
            self._client.set_terminated(self._run_id, head.status)
            self._pending.pop(0)
            return 1
        metrics, params, tags, count = [], [], [], 0
        for op in self._pending:
            if op.kind != "batch":
                break
            if (
                len(metrics) + len(op.metrics) > _MAX_METRICS_PER_BATCH
                or len(params) + len(op.params) > _MAX_PARAMS_PER_BATCH
                or len(tags) + len(op.tags) > _MAX_TAGS_PER_BATCH
            ) and count:
                break
            metrics += op.metrics
            params += op.params
            tags += op.tags
            count += 1
        self._client.log_batch(self._run_id, metrics=metrics, params=params, tags=tags)
        del self._pending[:count]
        return count

    def _trim_backlog(self) -> None:
        """Bound memory during a long outage: spool the oldest metric batches to disk."""
        total = sum(len(op.metrics) for op in self._pending)
        if total <= _MAX_BUFFERED_METRICS:
            return
        spill: list[_Op] = []
        keep: list[_Op] = []
        for op in self._pending:
            if total > _MAX_BUFFERED_METRICS // 2 and op.kind == "batch" and op.metrics and not op.params and not op.tags:
                spill.append(op)
                total -= len(op.metrics)
            else:
                keep.append(op)
        self._pending[:] = keep
        path = self._write_spool(spill)
        warnings.warn(
            f"MLflow outage backlog too large; {sum(len(o.metrics) for o in spill)} metric points "
            f"written to {path} instead",
            TrackingWarning,
            stacklevel=1,
        )
        self._done(len(spill))

    def _spool_unsent(self) -> None:
        unsent = list(self._pending)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unsent.append(item)
        self._pending.clear()
        if not unsent:
            return
        path = self._write_spool(unsent)
        warnings.warn(
            f"MLflow server {self.tracking_uri} still unreachable at close; {len(unsent)} unsent "
            f"items for run {self._run_id} written to {path}",
            TrackingWarning,
            stacklevel=2,
        )

    def _write_spool(self, ops: list[_Op]) -> Path:
        folder = Path(os.environ.get("REWARDOPS_TRACKING_SPOOL", "mlruns-unsent"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self._run_id}.jsonl"
        with path.open("a", encoding="utf-8") as fh:
            for op in ops:
                fh.write(json.dumps(op.describe(), default=str) + "\n")
        return path


def _looks_like_connection_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("connection", "max retries", "timed out", "timeout", "refused", "unreachable", "503", "502", "504")
    return any(m in text for m in markers)


# --------------------------------------------------------------------------------------------
# entry point


def _lower_http_retries() -> None:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def get_or_create_experiment(client: Any, experiment: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    # A database backend needs an artifact location; a server (http) chooses its own.
    location = None if tracking_uri.startswith(("http://", "https://", "databricks")) else default_artifact_location(tracking_uri)
    try:
        return client.create_experiment(experiment, artifact_location=location)
    except Exception:  # noqa: BLE001 - another rank/process created it first
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


SUITE_TAG = "rewardops.suite"
SUITE_PARENT_TAG = "rewardops.suite.parent"


def suite_parent_run(client: Any, experiment_id: str, suite: str) -> str:
    """The id of suite `suite`'s parent run in the experiment, created (and marked FINISHED) if new."""
    query = f"tags.`{SUITE_TAG}` = '{suite}' and tags.`{SUITE_PARENT_TAG}` = 'true'"
    found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        return found[0].info.run_id
    from rewardops.tracking.lineage import run_tags as lineage_tags

    tags = {**lineage_tags(os.environ.get("REWARDOPS_DATA_PATH")), SUITE_TAG: suite, SUITE_PARENT_TAG: "true"}
    run = client.create_run(experiment_id, tags=tags, run_name=f"suite-{suite}")
    client.set_terminated(run.info.run_id, "FINISHED")
    # two processes may race to create it: everyone uses the oldest
    found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    return found[0].info.run_id if found else run.info.run_id


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
) -> Tracker:
    """Start an MLflow run (a child of `parent_run_id` if given); a context manager.

    Returns a `NullTracker` when `enabled` is False or this is not rank 0.
    Environment: `REWARDOPS_PARENT_RUN_ID` is the default parent; `REWARDOPS_SUITE=<name>` makes
    the run a child of that suite's parent run in this experiment (created on first use), so
    separate processes (one per size: DVC matrix stages, KFP steps) end up under one suite.
    With `lineage` (default) the `run_tags()` lineage tags are added under the given `tags`
    (data hash of `tags["rewardops.data.path"]` or `REWARDOPS_DATA_PATH`).
    """
    if not enabled or not is_rank_zero():
        return NullTracker()
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        _lower_http_retries()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    run_tags = _stringify_tags(tags)
    if lineage:
        from rewardops.tracking.lineage import run_tags as lineage_tags

        data = run_tags.get("rewardops.data.path") or os.environ.get("REWARDOPS_DATA_PATH")
        run_tags = {**lineage_tags(data), **run_tags}
    suite = os.environ.get("REWARDOPS_SUITE")
    parent_run_id = parent_run_id or os.environ.get("REWARDOPS_PARENT_RUN_ID") or None
    try:
        experiment_id = get_or_create_experiment(client, experiment, uri)
        if parent_run_id is None and suite:
            parent_run_id = suite_parent_run(client, experiment_id, suite)
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        if suite:
            run_tags.setdefault("rewardops.suite", suite)
        run = client.create_run(experiment_id, tags=run_tags, run_name=run_name)
    except Exception as exc:  # noqa: BLE001
        raise TrackingUnavailable(
            f"could not start MLflow run {run_name!r} in experiment {experiment!r} at {uri}: {exc}"
        ) from exc
    mlflow.set_tracking_uri(uri)  # the transformers flavor logs through the fluent API
    timeout = flush_timeout if flush_timeout is not None else float(os.environ.get("REWARDOPS_TRACKING_FLUSH_TIMEOUT", "60"))
    retry_max = float(os.environ.get("REWARDOPS_TRACKING_RETRY_MAX", "30"))
    return MlflowTracker(
        client, run.info.run_id, uri, flush_timeout=timeout, retry_initial=min(1.0, retry_max), retry_max=retry_max
    )

