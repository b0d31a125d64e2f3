"""What a local pipeline run (`rewardops run PIPELINE --local`) shows and leaves in MLflow.

- `QuietOutput`: kfp.local prints, per task, the full `executor_input` JSON, the component-loading
  lines and an outputs dump (most of a demo's log). Without `--verbose` these are left out; the
  steps' own lines, task start/finish, cache hits and every error stay. tqdm bars printed into a
  log keep only their last (100%) line.
- `TaskRecorder`: the outputs of every task of THIS run, cached ones included (kfp.local serves
  a cached task's outputs without a new folder), so the closing summary describes this run only.
- `Suite`: the run's MLflow parent run. It is created RUNNING before any step (each size's
  training run is its child), ends FINISHED with the suite's summary metrics, its curated
  dataset and, per size, the training run the suite uses (`rewardops.suite.run.<size>`: a size
  whose training was served from the cache points at the run that trained it); an interrupt
  ends it KILLED, an error FAILED, and a suite a killed process left RUNNING in the same workdir
  is marked KILLED by the next run.
- `summary_lines`: the story of the run in its last lines: per size the scores and the registry
  decision, the curation counts with estimated (and, on the generated world, true) label noise,
  and where to look (MLflow, the reports, DVC).
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardops.tracking.mlflow_tracker import SUITE_RUN_TAG, SUITE_WORKDIR_TAG


# -- output filter ---------------------------------------------------------------------------------
class QuietOutput(io.TextIOBase):
    """A line filter in front of a text stream (see the module docstring)."""

    _DROP = re.compile(r"(Looking for component|Loading KFP component|Wrote executor output file|"
                       r"Did not write output file|Streamed logs:|Loading faiss|Successfully loaded faiss|"
                       r"Could not load library with AVX|No module named 'faiss\.swigfaiss|"
                       r"Applying expression selector|After expression selector|Downloading artifacts|"
                       r"Uploading artifacts|system_metrics_monitor|Add type hints to the .predict|color_warning\(|"
                       r"Validating input example|The new embeddings will be initialized|Setting accelerator to CPU|"
                       r"Writing model shards|Loading weights)")
    _BAR = re.compile(r"\d+%\|")

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target
        self._buffer = ""
        self._json_indent: str | None = None  # inside an executor_input dump: its closing line
        self._in_outputs = False
        self._await_json = False
        self._traceback: list[str] | None = None
        self.interrupted = False  # set on Ctrl-C (`run_local`)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def drain(self) -> None:
        """Write what is held (a traceback cut off by the end of the output)."""
        held, self._traceback = self._traceback or [], None
        for item in held:
            self._filtered(item)
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._line(line)
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def _line(self, line: str) -> None:
        """Tracebacks are held until their last line: one ending in KeyboardInterrupt (a step
        stopped by Ctrl-C, which reaches every process of the terminal) is dropped, any other
        is written in full."""
        stripped = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if self.interrupted:  # Ctrl-C: the steps' dying words are noise; kfp.local's own lines stay
            self._traceback = None
            if re.match(r"^\d\d:\d\d:\d\d\.\d+ - ", stripped):
                self._filtered(line)
            return
        if self._traceback is None and stripped == "Traceback (most recent call last):":
            self._traceback = [line]
            return
        if self._traceback is not None:
            self._traceback.append(line)
            if re.match(r"^(File |\^+$|~+|During handling|The above exception|$)", stripped) or line.startswith(
                    self._traceback[0][: len(self._traceback[0]) - len(self._traceback[0].lstrip())] + "  "):
                return  # still inside the traceback
            held, self._traceback = self._traceback, None
            if stripped == "KeyboardInterrupt":
                return
            for item in held:
                self._filtered(item)
            return
        self._filtered(line)

    def _filtered(self, line: str) -> None:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
        stripped = plain.strip()
        if self._json_indent is not None:
            if plain.rstrip() == self._json_indent + "}":
                self._json_indent = None
            return
        if "Got executor_input:" in plain:
            self._await_json = True  # the JSON starts on the next line
            return
        if self._await_json:
            self._await_json = False
            if stripped == "{":
                self._json_indent = plain[: len(plain) - len(plain.lstrip())]
                return
        if self._in_outputs:
            if plain.startswith((" ", "\t")) or not stripped:
                return
            self._in_outputs = False
        if re.search(r"Task \S+ outputs:$", stripped) or re.search(r"Task \S+ has no outputs$", stripped):
            self._in_outputs = True
            return
        if self._DROP.search(plain) or set(stripped) == {"-"}:
            return
        if self._BAR.search(plain) and "100%|" not in plain:
            return
        if not stripped:  # kfp.local's spacing between tasks
            return
        self.target.write(line + "\n")


# -- what each task of this run produced ---------------------------------------------------------
@dataclass
class TaskRecord:
    task: str
    component: str
    arguments: dict[str, Any]
    outputs: dict[str, Any]
    ok: bool
    display: str = ""  # the task's display name (`set_display_name`), e.g. "ablation (a) uncurated: train"


@dataclass
class TaskRecorder:
    """Wraps kfp.local's `execute_single_task` while installed (a context manager)."""

    records: list[TaskRecord] = field(default_factory=list)

    def __enter__(self) -> TaskRecorder:
        from kfp.local.orchestrator import task_executor

        self._module = task_executor
        self._original = task_executor.execute_single_task
        original = self._original
        records = self.records

        def recording(*args: Any, **kwargs: Any) -> Any:
            outputs, status = original(*args, **kwargs)
            try:
                spec = kwargs.get("task_spec") if "task_spec" in kwargs else args[1]
                from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

                store = kwargs.get("io_store")
                arguments = OrchestratorUtils.make_task_arguments(task_inputs_spec=spec.inputs, io_store=store) if store else {}
                records.append(TaskRecord(kwargs.get("task_name", args[0] if args else "?"), spec.component_ref.name,
                                          dict(arguments), dict(outputs or {}), str(status).endswith("SUCCESS"),
                                          str(getattr(getattr(spec, "task_info", None), "name", "") or "")))
            except Exception:  # noqa: BLE001 - the summary is best effort; the run is not
                pass
            return outputs, status

        task_executor.execute_single_task = recording
        return self

    def __exit__(self, *exc: object) -> None:
        self._module.execute_single_task = self._original

    def of(self, component_prefix: str, ablation: bool | None = None) -> list[TaskRecord]:
        """The records of one component; `ablation=False`/`True`: only those outside/inside the
        data ablation (its tasks are displayed as "ablation ...": `pipelines.ablation.ablate`)."""
        return [r for r in self.records if r.component.startswith(f"comp-{component_prefix}")
                and (ablation is None or r.display.startswith("ablation") == ablation)]


def _meta(value: Any) -> dict[str, Any]:
    return dict(getattr(value, "metadata", None) or {})


@dataclass
class SizeResult:
    size: str
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    model: str = ""
    version: int = 0
    decision: str = ""
    promoted: bool | None = None
    report: str = ""
    cached: bool = False


def size_results(recorder: TaskRecorder) -> dict[str, SizeResult]:
    """Per size: the training run, the evaluation scores (percent) and the registry decision."""
    found: dict[str, SizeResult] = {}
    for rec in recorder.of("train", ablation=False):  # the ablation's arms train the same size: not the size's result
        meta = _meta(rec.outputs.get("model"))
        size = str(meta.get("size") or "")
        if size:
            found[size] = SizeResult(size, run_id=str(meta.get("mlflow_run_id") or ""),
                                     model=str(meta.get("registered_model") or ""),
                                     version=int(meta.get("registered_version") or 0))
    for rec in recorder.of("evaluate", ablation=False):  # the ablation's arms train the same size: not the size's result
        report = rec.outputs.get("report")
        meta = _meta(report)
        size = str(meta.get("size") or _meta(rec.arguments.get("model")).get("size") or "")
        if size:
            item = found.setdefault(size, SizeResult(size))
            item.score = meta.get("score")
            item.scores = {k: float(v) for k, v in (meta.get("scores_percent") or {}).items()}
            item.report = str(Path(getattr(report, "path", "")) / "summary.md") if report is not None else ""
    for rec in recorder.of("register", ablation=False):  # the ablation's arms train the same size: not the size's result
        size = str(_meta(rec.arguments.get("model")).get("size") or "")
        if size:
            item = found.setdefault(size, SizeResult(size))
            item.decision = str(rec.outputs.get("Output") or "")
            promoted = _meta(rec.outputs.get("metrics")).get("promoted")
            item.promoted = None if promoted is None else bool(promoted)
    return found


def ablation_runs(recorder: TaskRecorder) -> dict[str, str]:
    """This run's data-ablation runs, {arm name: MLflow run id}, from the ablation table it wrote
    (a cached table included)."""
    found: dict[str, str] = {}
    for rec in recorder.of("ablation-table"):
        path = Path(getattr(rec.outputs.get("table"), "path", "") or "")
        try:
            found.update({str(k): str(v) for k, v in (json.loads(path.read_text()).get("mlflow_runs") or {}).items() if v})
        except (OSError, ValueError):
            continue
    return found


def curation_counts(recorder: TaskRecorder) -> dict[str, float]:
    """The merge step's flat metrics (sets, stage-2 counts, estimated and true noise)."""
    for rec in recorder.of("merge-shards"):
        metrics = rec.outputs.get("metrics")
        path = Path(getattr(metrics, "path", "") or "")
        if path.is_file():
            try:
                return {k: float(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError):
                pass
        return {k: float(v) for k, v in _meta(metrics).items() if isinstance(v, (int, float))}
    return {}


def curated_version(recorder: TaskRecorder) -> Any:
    """The DVC location of the curated subset this run trained on (`DataVersion`), if versioned."""
    from rewardops.tracking.lineage import DataVersion

    for rec in recorder.of("version-data"):
        meta = _meta(rec.outputs.get("versioned"))
        if all(meta.get(k) for k in ("registry", "rev", "path", "md5")):
            rows = meta.get("rows")
            return DataVersion(meta["registry"], meta["rev"], meta["path"], meta["md5"],
                               rows=int(rows) if rows is not None else None)
    return None


# -- the suite in MLflow ---------------------------------------------------------------------------
class Suite:
    """The run's parent run in MLflow (see the module docstring)."""

    def __init__(self, tracking_uri: str, name: str, workdir: Path, experiment: str, tags: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        from rewardops.tracking.mlflow_tracker import SUITE_PARENT_TAG, SUITE_TAG, get_or_create_experiment

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.name = name
        self.experiment_id = get_or_create_experiment(self.client, experiment, tracking_uri)
        self.stale = self._end_stale(str(workdir))
        run = self.client.create_run(self.experiment_id, run_name=f"suite-{name}", tags={
            SUITE_TAG: name, SUITE_PARENT_TAG: "true", SUITE_WORKDIR_TAG: str(workdir), **tags})
        self.run_id = run.info.run_id

    def _end_stale(self, workdir: str) -> list[str]:
        """Suites (and their runs) that a killed process left RUNNING in this workdir: KILLED."""
        from rewardops.tracking.mlflow_tracker import SUITE_PARENT_TAG

        query = f"tags.`{SUITE_PARENT_TAG}` = 'true' and tags.`{SUITE_WORKDIR_TAG}` = '{workdir}' and attributes.status = 'RUNNING'"
        ended = []
        for run in self.client.search_runs([self.experiment_id], query, max_results=100):
            children = self.client.search_runs(
                [self.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}' and attributes.status = 'RUNNING'")
            for child in children:
                self.client.set_terminated(child.info.run_id, "KILLED")
            self.client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
        return ended

    def finish(self, sizes: dict[str, SizeResult], counts: dict[str, float], version: Any, note: str = "",
               arms: dict[str, str] | None = None) -> None:
        """Summary metrics (eval first, percent), the per-size run pointers, the dataset; FINISHED
        (the pipeline ran: a summary MLflow refuses is a warning, not a failed run). `arms`: the
        data ablation's runs by arm name, pointed at like the sizes (a cached ablation's runs
        belong to an earlier suite; `rewardops compare` finds them through these pointers)."""
        try:
            self._record(sizes, counts, version)
            for name, run_id in (arms or {}).items():
                self.client.set_tag(self.run_id, SUITE_RUN_TAG + re.sub(r"[^\w\-. :/]", "_", name), run_id)  # no "+" in keys
            if note:  # the run's Description in MLflow's UI: the same story the command printed
                self.client.set_tag(self.run_id, "mlflow.note.content", note)
        except Exception as exc:  # noqa: BLE001
            import warnings

            warnings.warn(f"MLflow did not take suite {self.name}'s summary: {str(exc)[:300]}", stacklevel=2)
        finally:
            self.client.set_terminated(self.run_id, "FINISHED")

    def _record(self, sizes: dict[str, SizeResult], counts: dict[str, float], version: Any) -> None:
        from mlflow.entities import Metric, RunTag

        metrics, tags = [], []
        for item in sizes.values():
            if item.score is not None:
                metrics.append(Metric(f"eval/score/{item.size}", float(item.score), 0, 0))
            for bench, value in item.scores.items():
                metrics.append(Metric(f"eval/{bench}/{item.size}", value, 0, 0))
            if item.run_id:
                tags.append(RunTag(SUITE_RUN_TAG + item.size, item.run_id))
            if item.decision:
                tags.append(RunTag(f"rewardops.suite.decision.{item.size}", item.decision[:5000]))
        scored = [s.score for s in sizes.values() if s.score is not None]
        if scored:
            metrics.append(Metric("eval/score", max(scored), 0, 0))  # the suite's best size
        for key, value in counts.items():  # MLflow names: letters, digits, _ - . space : /
            if "noise/" in key and not key.endswith("/estimated"):
                value = 100.0 * value  # noise shares in percent, like the scores beside them
            metrics.append(Metric("curation/" + re.sub(r"[^\w\-. :/]", "_", key), value, 0, 0))
        if metrics or tags:
            self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        if version is not None:
            from mlflow.entities import DatasetInput, InputTag

            from rewardops.tracking.lineage import dataset_entity, dvc_get_command

            for key, value in {**version.tags(), "rewardops.data.get": dvc_get_command(version)}.items():
                self.client.set_tag(self.run_id, key, value)
            self.client.log_inputs(self.run_id, datasets=[DatasetInput(
                dataset_entity(version), [InputTag("mlflow.data.context", "training")])])

    def end(self, status: str) -> None:
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception:  # noqa: BLE001 - already failing: keep the first error
            pass


# -- the closing summary --------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_lines(sizes: dict[str, SizeResult], counts: dict[str, float], *, tracking_uri: str, workdir: Path,
                  suite: str, registry: Path | None, data_rev: str | None) -> list[str]:
    lines = [f"== suite {suite}: what this run did =="]
    if counts:
        sets = [f"{name} {int(counts.get(name, 0))}" for name in ("gold", "silver", "stage2_kept")]
        lines.append(f"curation: {int(counts.get('curated', 0))} curated pairs ({', '.join(sets)})")
        lines.append("  stage 2 (paper §3.3): kept {kept}, discarded {discarded}, recycled (label flipped) "
                     "{recycled}, no verdict {nv} of {total} pool pairs".format(
                         kept=int(counts.get("counts/kept", 0)), discarded=int(counts.get("counts/discarded", 0)),
                         recycled=int(counts.get("counts/recycled", 0)), nv=int(counts.get("counts/no_verdict", 0)),
                         total=int(sum(counts.get(f"counts/{k}", 0) for k in ("kept", "discarded", "recycled", "no_verdict")))))
        parts = ("pool", "kept", "discarded", "recycled")
        if any(k.startswith("estimated_noise/") for k in counts):
            lines.append("  label noise estimated from the gold replay: " + ", ".join(
                f"{p} {_pct(counts.get(f'estimated_noise/{p}'))}" for p in parts))
        else:
            lines.append("  label noise: not estimated (no gold pairs to replay)")

        if any(k.startswith("true_noise/") for k in counts):
            lines.append("  true label noise (known on the generated world): " + ", ".join(
                f"{p} {_pct(counts.get(f'true_noise/{p}'))}" for p in parts))
        if counts.get("counts/kept", 0) and not counts.get("counts/discarded", 0) and not counts.get("counts/recycled", 0):
            lines.append("  note: stage 2 kept every pool pair it judged (nothing discarded or recycled)")
    if sizes:
        lines.append("reward models (percent; score = the registry score):")
        for item in sizes.values():
            benches = ", ".join(f"{k} {v:.1f}" for k, v in sorted(item.scores.items()))
            score = "-" if item.score is None else f"{item.score:.1f}"
            lines.append(f"  {item.size}: score {score}" + (f" ({benches})" if benches else ""))
            model = f"{item.model} v{item.version}" if item.model else "not registered"
            verdict = {True: "now champion", False: "stays candidate"}.get(item.promoted, "no decision")
            if "already the champion" in item.decision:  # a rerun that reused the champion's own training
                verdict = "is the champion"
            lines.append(f"    registry: {model} {verdict} ({item.decision or 'no promotion step ran'})")
    home = Path.cwd()

    def show(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(home))
        except ValueError:
            return str(path)

    uri = tracking_uri
    if uri.startswith("sqlite:///"):
        where = show(Path(uri.removeprefix("sqlite:///")))
        uri = "sqlite:///" + (where if where.startswith("/") else "$PWD/" + where)  # copy-paste ready
    lines.append("where to look:")
    lines.append(f"  MLflow:  .venv/bin/rewardops ui --tracking-uri {uri}   (experiment rewardops-training, suite-{suite})")
    for item in sizes.values():
        if item.report:
            lines.append(f"  report ({item.size}): {show(Path(item.report))}")
    if registry is not None and data_rev:
        lines.append(f"  DVC:     git -C {show(registry)} log --oneline   (curated at {data_rev[:12]}; "
                     f"dvc get {show(registry)} curated --rev {data_rev[:12]} -o curated)")
    return lines
