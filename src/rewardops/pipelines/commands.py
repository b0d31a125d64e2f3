"""`rewardops pipelines {list,compile,run,submit}` and the top-level `run` / `submit` shortcuts.

- `compile --out DIR`: every pipeline's KFP IR YAML (`<name>.yaml`).
- `run PIPELINE --local`: runs it on this machine with kfp.local's SubprocessRunner (the current
  Python environment, no containers), with task caching on under `--workdir`.
- `submit PIPELINE --host URL`: compiles it and starts a run on a KFP cluster with `kfp.Client`.

Both `run` and `submit` check the parameters first (pipelines/checks.py) and stop with every
problem listed. `--data PATH` (repeatable) computes `data_version` (DVC hash or content hash,
`rewardops.tracking.dataversion`) and, for pipelines that read `sources`, sets those too.

The pipeline and component definitions live beside this module (`rewardops.pipelines` and
`rewardops.pipelines.components`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rewardops.errors import ConfigError, RewardOpsError

app = typer.Typer()  # `rewardops run|submit` (shortcuts of `pipelines run|submit`); mounts `pipelines`
pipelines_app = typer.Typer(help="Kubeflow Pipelines: compile, run locally, submit to a cluster.", no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")


class PipelineParamError(ConfigError):
    """Parameters a pipeline cannot run with; the message lists every problem."""


def load_pipelines():  # noqa: ANN201 - the registry module
    from rewardops.pipelines import registry

    return registry


# -- parameters --------------------------------------------------------------------------------
def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs; a value that parses as JSON is taken as JSON (numbers, lists, objects)."""
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise PipelineParamError(f"--param {item!r}: write key=value")
        key, value = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def pipeline_inputs(func: Any) -> dict[str, Any]:
    """Input name -> InputSpec of a compiled `@dsl.pipeline` function."""
    return dict(func.component_spec.inputs or {})


def prepare_params(name: str, func: Any, params: dict[str, Any], data: Sequence[str], sizes: Sequence[str],
                   local: bool) -> dict[str, Any]:
    """Fill `data_version` / `sources` from `--data`, `plan` from `--sizes`, then check everything."""
    from rewardops.tracking.dataversion import data_version
    from rewardops.k8s.trainjob import TrainJobConfigError, size_plan

    inputs = pipeline_inputs(func)
    params = dict(params)
    problems: list[str] = []
    if data:
        missing = [d for d in data if not Path(d).exists()]
        if missing:
            problems.append(f"--data {', '.join(missing)}: no such file or folder")
        else:
            versions = [data_version(d) for d in data]
            params.setdefault("data_version", versions[0] if len(versions) == 1 else "multi:" + ",".join(versions))
            if "sources" in inputs:
                params.setdefault("sources", [str(Path(d).resolve()) for d in data])
    if name == "demo" and "data_version" not in params:
        # the generated world is a pure function of its parameters: that is its version
        world = {k: params.get(k, inputs[k].default) for k in ("world_n", "world_noise", "world_seed")}
        params["data_version"] = "world:n={world_n},noise={world_noise},seed={world_seed}".format(**world)
    if sizes:
        try:
            params["plan"] = size_plan(list(sizes))
        except TrainJobConfigError as exc:
            problems.append(str(exc))
    for key, value in list(params.items()):
        # `--param settings={"a": 1}` parses as JSON; a STRING input gets the text back
        if key in inputs and inputs[key].type == "String" and not isinstance(value, str):
            params[key] = json.dumps(value)
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}; {name} takes: {', '.join(sorted(inputs))}")
    from rewardops.pipelines import checks
    merged = {k: spec.default for k, spec in inputs.items() if spec.default is not None}
    merged.update(params)
    checked = checks.check(name, merged, local=local)
    required = sorted(k for k, spec in inputs.items() if spec.default is None and not spec.optional and k not in params)
    # a missing input the checks already explain is not listed twice
    problems += [f"{k} is required" for k in required if not any(p.startswith(k) for p in checked)]
    problems += checked
    if problems:
        raise PipelineParamError(f"pipeline {name!r} cannot run with these parameters:\n  - " + "\n  - ".join(problems))
    return params


def build_pipeline(name: str, iterations: int | None = None) -> Any:
    pipelines = load_pipelines()
    options = {} if iterations is None else {"iterations": iterations}
    entry = pipelines.get(name)
    options = {k: v for k, v in options.items() if k in entry.options}
    return pipelines.build(name, **options)


# -- actions -----------------------------------------------------------------------------------
def compile_all(out: Path, names: Sequence[str] | None = None, iterations: int | None = None) -> list[Path]:
    from kfp import compiler

    pipelines = load_pipelines()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(pipelines.PIPELINES):
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(build_pipeline(name, iterations), str(path))
        written.append(path)
    return written


def run_local(name: str, params: dict[str, Any], workdir: Path, cache: bool = True,
              iterations: int | None = None, verbose: bool = False) -> dict[str, Any]:
    """Run pipeline `name` with kfp.local (SubprocessRunner, this Python environment).

    The run is one MLflow suite (`rewardops.pipelines.local_run.Suite`): RUNNING while it runs,
    FINISHED with its summary, KILLED on an interrupt, FAILED on an error. Returns the pipeline's
    outputs plus `cached_tasks`, `suite` and `recorder` (every task's outputs, cached ones too).
    Without `verbose`, kfp.local's executor_input / outputs dumps are left out of the log."""
    import contextlib
    import sys

    from kfp import local

    from rewardops.pipelines.local_run import QuietOutput, Suite, TaskRecorder

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # One MLflow store for every step of the run (steps are separate processes).
    from rewardops.tracking.uri import resolve_tracking_uri

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "REWARDOPS_PIPELINE_RUN_ID", "REWARDOPS_SUITE",
                                            "REWARDOPS_PARENT_RUN_ID")}
    os.environ["MLFLOW_TRACKING_URI"] = resolve_tracking_uri(home=workdir)
    prepare_tracking_store(os.environ["MLFLOW_TRACKING_URI"], artifact_root=workdir / "mlartifacts")
    run_id = saved["REWARDOPS_PIPELINE_RUN_ID"] or f"local-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    os.environ["REWARDOPS_PIPELINE_RUN_ID"] = run_id
    # every size's training run becomes a child of one parent run per pipeline run (`rewardops compare`)
    suite_name = saved["REWARDOPS_SUITE"] or run_id
    os.environ["REWARDOPS_SUITE"] = suite_name
    suite = Suite(os.environ["MLFLOW_TRACKING_URI"], suite_name, workdir, TRACKED_EXPERIMENTS[0],
                  {"rewardops.pipeline": name, "rewardops.data.version": str(params.get("data_version", ""))})
    os.environ["REWARDOPS_PARENT_RUN_ID"] = suite.run_id
    # the demo versions its curated subset in a DVC registry inside the workdir before training
    inputs = pipeline_inputs(build_pipeline(name, iterations))
    if "data_registry" in inputs and not params.get("data_registry"):
        params = {**params, "data_registry": str(workdir / "data-registry"), "data_remote": str(workdir / "dvc-remote")}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(workdir / "kfp"),
               enable_caching=cache, cache_root=str(workdir / "kfp-cache"), raise_on_error=True)
    func = build_pipeline(name, iterations)
    hits = _CacheHits()
    root = logging.getLogger()
    level = root.level
    root.addHandler(hits)
    root.setLevel(min(level, logging.INFO))
    filtered = None if verbose else QuietOutput(sys.stdout)
    quiet = contextlib.nullcontext() if filtered is None else contextlib.redirect_stdout(filtered)
    restore_sigint = _quiet_on_interrupt(filtered)
    status = "FAILED"
    try:
        with warnings.catch_warnings(), TaskRecorder() as recorder, quiet:
            # kfp.local says, per task, that images and resource requests do not apply here: we know.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            task = func(**params)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if restore_sigint is not None:
            signal.signal(signal.SIGINT, restore_sigint)
        if filtered is not None:
            filtered.drain()
        root.removeHandler(hits)
        root.setLevel(level)
        if status != "FINISHED":
            suite.end(status)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs: dict[str, Any] = {"cached_tasks": sorted(hits.tasks), "suite": suite, "recorder": recorder}
    for key, value in (getattr(task, "outputs", None) or {}).items():
        outputs[key] = getattr(value, "uri", value)
    try:
        outputs["summary"] = finish_suite(name, suite, recorder, workdir)
    except BaseException:
        suite.end("FAILED")
        raise
    return outputs


def _quiet_on_interrupt(filtered: Any) -> Any:
    """On Ctrl-C, tell the output filter (the steps' KeyboardInterrupt tracebacks that follow are
    dropped), then interrupt as Python does. Returns the previous handler (None: not installed)."""
    if filtered is None or threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        filtered.interrupted = True
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    return previous


TRACKED_EXPERIMENTS = ("rewardops-training",)


def prepare_tracking_store(uri: str, artifact_root: Path | None = None) -> None:
    """Create a SQLite MLflow store's tables now: parallel steps (one per size) would otherwise
    race to run the schema migration on a fresh file and fail with `duplicate column name`.
    With `artifact_root`, the experiments the steps log to are created with their artifacts
    there (otherwise the first step to log would put every later run's artifacts in its own
    output folder)."""
    if not uri.startswith("sqlite:"):
        return
    from mlflow.tracking import MlflowClient

    from rewardops.tracking.mlflow_tracker import EXPERIMENT_KIND

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)
    if artifact_root is not None:
        for name in TRACKED_EXPERIMENTS:
            if client.get_experiment_by_name(name) is None:
                try:  # tagged model-training: MLflow's UI opens it on the runs table
                    client.create_experiment(name, artifact_location=(artifact_root / name).resolve().as_uri(),
                                             tags=dict([EXPERIMENT_KIND]))
                except Exception:  # noqa: BLE001 - another process created it first
                    if client.get_experiment_by_name(name) is None:
                        raise


class _CacheHits(logging.Handler):
    """Collects the names of tasks kfp.local served from its cache ("Task X cache hit ...")."""

    PATTERN = re.compile(r"^Task (\S+) cache hit")

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.tasks: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if match:
            self.tasks.add(match.group(1))


def submit(name: str, params: dict[str, Any], host: str, *, experiment: str, run_name: str | None,
           namespace: str | None, token: str | None, iterations: int | None = None,
           enable_caching: bool | None = None, service_account: str | None = None,
           upload: bool = True) -> Any:
    """Compile pipeline `name`, upload it to the KFP API at `host` as a new version of the pipeline
    `rewardops-<name>` (created on first use), and start a run of that version; returns the run.
    With `upload=False` the compiled spec travels inline with the run instead."""
    import kfp
    from kfp import compiler

    func = build_pipeline(name, iterations)
    run_name = run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / f"{name}.yaml"
        compiler.Compiler().compile(func, str(package))
        client = kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")
        if not upload:
            return client.create_run_from_pipeline_package(
                str(package), arguments=params, run_name=run_name, experiment_name=experiment, namespace=namespace,
                enable_caching=enable_caching, service_account=service_account).run_info
        exp = client.create_experiment(experiment, namespace=namespace)
        pipeline_id, version_id = _upload_version(client, package, f"rewardops-{name}", func.description or name,
                                                  namespace)
        return client.run_pipeline(experiment_id=exp.experiment_id, job_name=run_name, params=params,
                                   pipeline_id=pipeline_id, version_id=version_id, enable_caching=enable_caching,
                                   service_account=service_account)


def _pipeline_id(client: Any, pipeline_name: str, namespace: str | None) -> str | None:
    """The id of pipeline `pipeline_name` in `namespace` (multi-user KFP lists a namespace's pipelines
    only when asked for it; without one, only the shared ones), or None."""
    predicate = {"operation": 1, "key": "display_name", "stringValue": pipeline_name}  # 1: EQUALS (filter.proto)
    found = client.list_pipelines(filter=json.dumps({"predicates": [predicate]}), namespace=namespace).pipelines or []
    if len(found) > 1:
        raise RuntimeError(f"{len(found)} pipelines are named {pipeline_name} in namespace {namespace or '(shared)'}")
    return found[0].pipeline_id if found else None


def _upload_version(client: Any, package: Path, pipeline_name: str, description: str, namespace: str | None,
                    attempts: int = 3) -> tuple[str, str]:
    """(pipeline id, version id) of a new version of `pipeline_name` in `namespace` holding `package`,
    creating the pipeline on first use. A 409 (another submit created the pipeline, or a version of
    the same name, meanwhile) looks again instead of failing."""
    from kfp_server_api.exceptions import ApiException

    from rewardops.k8s.images import package_version

    for attempt in range(attempts):
        version_name = f"{package_version()}-{time.strftime('%Y%m%d-%H%M%S')}" + (f"-{attempt}" if attempt else "")
        pipeline_id = _pipeline_id(client, pipeline_name, namespace)
        try:
            if pipeline_id is None:
                created = client.upload_pipeline(str(package), pipeline_name=pipeline_name, description=description,
                                                 namespace=namespace)
                versions = client.list_pipeline_versions(created.pipeline_id).pipeline_versions or []
                if not versions:
                    raise RuntimeError(f"uploaded pipeline {pipeline_name} ({created.pipeline_id}) has no version")
                return created.pipeline_id, versions[0].pipeline_version_id
            version = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                                     pipeline_id=pipeline_id)
            return pipeline_id, version.pipeline_version_id
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# -- commands ----------------------------------------------------------------------------------
ParamOpt = Annotated[list[str], typer.Option("--param", "-p", help="Pipeline parameter key=value (JSON values allowed). Repeatable.")]
DataOpt = Annotated[list[str], typer.Option("--data", help="Input data file/folder: sets data_version (DVC or content hash) and sources. Repeatable.")]
SizesOpt = Annotated[Optional[str], typer.Option("--sizes", help="Comma list of catalog sizes for the training plan (default: the pipeline's).")]
IterOpt = Annotated[Optional[int], typer.Option("--iterations", min=1, help="Stage-1 iterations (build option; default 2).")]


def _sizes(value: str | None) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()] if value else []


@pipelines_app.command("list")
def list_cmd() -> None:
    """The pipelines and what they do."""
    pipelines = load_pipelines()
    for name, entry in pipelines.PIPELINES.items():
        typer.echo(f"{name:16s} {entry.description}")


@pipelines_app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the IR YAML files.")],
    name: Annotated[Optional[list[str]], typer.Option("--name", help="Only these pipelines (repeatable).")] = None,
    iterations: IterOpt = None,
) -> None:
    """Compile every pipeline (or --name ones) to KFP IR YAML in --out."""
    try:
        for path in compile_all(out, name, iterations):
            typer.echo(f"wrote {path}")
    except KeyError as exc:
        raise RewardOpsError(str(exc.args[0])) from None


@pipelines_app.command("plan")
def plan_cmd(
    pairs: Annotated[int, typer.Option("--pairs", min=1, help="Pool size in pairs (the paper's: 40000000).")],
    settings: Annotated[str, typer.Option("--settings", help="Curation settings (profile, JSON/YAML or file).")] = "",
    pods: Annotated[int, typer.Option("--pods", min=0, help="Most pods a fan-out runs at once (0: one per shard).")] = 0,
    gpu_embedding: Annotated[bool, typer.Option("--gpu-embedding", help="The pool-preparation pods embed on a GPU.")] = False,
) -> None:
    """Dry run of the curation pipeline for a pool size: shards, pods, memory per pod, estimated time."""
    from rewardops.curation.settings import CurationSettings, SettingsError
    from rewardops.pipelines.resources import curation_plan, format_plan

    try:
        s = CurationSettings.parse(settings)
    except SettingsError as exc:
        raise RewardOpsError(str(exc)) from None
    typer.echo(format_plan(curation_plan(pairs, s, pods=pods, gpu_embedding=gpu_embedding,
                                         neural_embedder=s.embedder != "hashed")))


@app.command("run")
@pipelines_app.command("run")
def run_cmd(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (rewardops pipelines list).")],
    local: Annotated[bool, typer.Option("--local", help="Run on this machine with kfp.local (required: cluster runs use submit).")] = False,
    param: ParamOpt = [],  # noqa: B006
    data: DataOpt = [],  # noqa: B006
    sizes: SizesOpt = None,
    iterations: IterOpt = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Outputs, the task cache and the MLflow store.")] = Path("runs/local"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every task even when a cached result exists.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show kfp.local's executor_input and outputs dumps per task.")] = False,
) -> None:
    """Run a pipeline locally with kfp.local (SubprocessRunner): `rewardops run data --local --data FILE`."""
    if not local:
        raise RewardOpsError("only local runs start from `run`; add --local, or use `rewardops submit PIPELINE --host URL`")
    try:
        func = build_pipeline(pipeline, iterations)
        params = prepare_params(pipeline, func, parse_params(param), data, _sizes(sizes), local=True)
    except (KeyError, PipelineParamError, FileNotFoundError) as exc:
        raise RewardOpsError(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    typer.echo(f"running {pipeline} locally (data version {params.get('data_version')}); outputs under {workdir}/kfp"
               + ("" if verbose else " (--verbose shows kfp.local's own task dumps)"))
    started = time.perf_counter()
    try:
        outputs = run_local(pipeline, params, workdir, cache=not no_cache, iterations=iterations, verbose=verbose)
    except RuntimeError as exc:
        raise RewardOpsError(f"pipeline {pipeline} failed: {exc}; the suite is marked FAILED in MLflow, and a rerun "
                    "reuses every step that finished") from None
    except KeyboardInterrupt:
        typer.secho("interrupted: the suite is marked KILLED in MLflow; rerun the same command to finish "
                    "(steps that finished are reused)", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    cached = outputs.pop("cached_tasks")
    summary = outputs.pop("summary")
    outputs.pop("suite"), outputs.pop("recorder")
    typer.echo(f"{pipeline} finished in {time.perf_counter() - started:.1f}s"
               + (f"; reused from cache: {', '.join(cached)}" if cached else ""))
    for key, uri in outputs.items():
        typer.echo(f"  {key}: {uri}")
    for line in summary:
        typer.echo(line)
    from rewardops.pipelines.ablation import print_ablation

    print_ablation(workdir, echo=typer.echo)  # the data ablation's table, last (runs that had one)


def finish_suite(pipeline: str, suite: Any, recorder: Any, workdir: Path) -> list[str]:
    """Version the demo's subsets, close the MLflow suite with its summary; the run's story."""
    from rewardops.pipelines.local_run import (ablation_runs, curated_version, curation_counts, size_results,
                                               summary_lines)

    sizes, counts, version = size_results(recorder), curation_counts(recorder), curated_version(recorder)
    registry = rev = None
    if pipeline == "demo":
        versions = _version_demo_subsets(workdir, recorder, suite.name)
        registry, rev = workdir / "data-registry", versions.get("rev")
    lines = summary_lines(sizes, counts, tracking_uri=suite.client.tracking_uri, workdir=workdir,
                          suite=suite.name, registry=registry, data_rev=version.rev if version else rev)
    suite.finish(sizes, counts, version, note="```\n" + "\n".join(lines) + "\n```", arms=ablation_runs(recorder))
    return lines


# The demo's dataset subsets, as (registry name, (task's component, output)).
DEMO_SUBSETS = {
    "world": ("generate", "dataset"),
    "preprocessed": ("preprocess", "dataset"),
    "curated": ("merge-shards", "curated"),
    "flipped": ("merge-shards", "recycled"),  # the recycled set (published as `flipped`, as in dvc.yaml)
}


def _version_demo_subsets(workdir: Path, recorder: Any, run_name: str) -> dict[str, str]:
    """Version this run's subsets with DVC in `<workdir>/data-registry` (remote `<workdir>/dvc-remote`);
    a cached task's subset is the folder the cache serves."""
    from rewardops.tracking.data_registry import version_datasets

    found: dict[str, Path] = {}
    for name, (component, output) in DEMO_SUBSETS.items():
        for rec in recorder.of(component):
            path = getattr(rec.outputs.get(output), "path", None)
            if path and Path(path).exists():
                found[name] = Path(path)
    missing = sorted(set(DEMO_SUBSETS) - set(found))
    if missing:
        raise RewardOpsError(f"demo finished without the subsets {', '.join(missing)} under {workdir}/kfp")
    versions = version_datasets(workdir / "data-registry", found, workdir / "dvc-remote",
                                message=f"demo subsets from {run_name}")
    typer.echo(f"DVC-versioned subsets in {workdir / 'data-registry'} (git {versions['rev'][:12]}): "
               + ", ".join(f"{k} {v[:8]}" for k, v in versions.items() if k != "rev"))
    return versions


@app.command("submit")
@pipelines_app.command("submit")
def submit_cmd(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (rewardops pipelines list).")],
    host: Annotated[str, typer.Option("--host", help="KFP API endpoint, e.g. http://localhost:8888 or https://kubeflow.example.com/pipeline.")],
    param: ParamOpt = [],  # noqa: B006
    data: DataOpt = [],  # noqa: B006
    sizes: SizesOpt = None,
    iterations: IterOpt = None,
    experiment: Annotated[str, typer.Option("--experiment", help="KFP experiment name.")] = "rewardops",
    run_name: Annotated[Optional[str], typer.Option("--run-name")] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", help="Kubeflow profile namespace (multi-user).")] = None,
    token: Annotated[Optional[str], typer.Option("--token", envvar="KFP_TOKEN", help="Bearer token (or KFP_TOKEN).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Disable KFP caching for this run.")] = False,
    service_account: Annotated[Optional[str], typer.Option("--service-account", envvar="REWARDOPS_PIPELINE_SERVICE_ACCOUNT", help="Run the pipeline pods as this service account (the chart's pipeline account; the TrainJob step mounts the launcher account's token itself).")] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload as a new version of the pipeline rewardops-PIPELINE (default), or send the spec inline with the run.")] = True,
) -> None:
    """Compile a pipeline and start it on a KFP cluster: `rewardops submit end-to-end --host URL ...`."""
    try:
        func = build_pipeline(pipeline, iterations)
        params = prepare_params(pipeline, func, parse_params(param), data, _sizes(sizes), local=False)
    except (KeyError, PipelineParamError, FileNotFoundError) as exc:
        raise RewardOpsError(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    try:
        result = submit(pipeline, params, host, experiment=experiment, run_name=run_name, namespace=namespace,
                        token=token, iterations=iterations, enable_caching=False if no_cache else None,
                        service_account=service_account, upload=upload)
    except Exception as exc:  # connection refused, 401, 500...: say where and why
        raise RewardOpsError(f"could not start {pipeline} on {host}: {type(exc).__name__}: {str(exc)[:500]}") from None
    typer.echo(f"started run {result.run_id} of {pipeline} (data version {params['data_version']})")
    typer.echo(f"  {host.rstrip('/')}/#/runs/details/{result.run_id}")
