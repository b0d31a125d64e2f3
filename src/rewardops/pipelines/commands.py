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
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

pipelines_app = typer.Typer(help="Kubeflow Pipelines: compile, run locally, submit to a cluster.", no_args_is_help=True)


class PipelineParamError(ValueError):
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
              iterations: int | None = None) -> dict[str, Any]:
    """Run pipeline `name` with kfp.local (SubprocessRunner, this Python environment)."""
    from kfp import local

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # One MLflow store for every step of the run (steps are separate processes).
    from rewardops.tracking.uri import resolve_tracking_uri

    os.environ["MLFLOW_TRACKING_URI"] = resolve_tracking_uri(home=workdir)
    prepare_tracking_store(os.environ["MLFLOW_TRACKING_URI"], artifact_root=workdir / "mlartifacts")
    os.environ.setdefault("REWARDOPS_PIPELINE_RUN_ID", f"local-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    # every size's training run becomes a child of one parent run per pipeline run (`rewardops compare`)
    os.environ.setdefault("REWARDOPS_SUITE", os.environ["REWARDOPS_PIPELINE_RUN_ID"])
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
    try:
        with warnings.catch_warnings():
            # kfp.local says, per task, that images and resource requests do not apply here: we know.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            task = func(**params)
    finally:
        root.removeHandler(hits)
        root.setLevel(level)
    outputs: dict[str, Any] = {"cached_tasks": sorted(hits.tasks)}
    for key, value in (getattr(task, "outputs", None) or {}).items():
        outputs[key] = getattr(value, "uri", value)
    return outputs


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

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)
    if artifact_root is not None:
        for name in TRACKED_EXPERIMENTS:
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(name, artifact_location=(artifact_root / name).resolve().as_uri())


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

    from rewardops.k8s.images import package_version

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
        pipeline_name = f"rewardops-{name}"
        version_name = f"{package_version()}-{time.strftime('%Y%m%d-%H%M%S')}"
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            created = client.upload_pipeline(str(package), pipeline_name=pipeline_name,
                                             description=func.description or name, namespace=namespace)
            pipeline_id = created.pipeline_id
            versions = client.list_pipeline_versions(pipeline_id).pipeline_versions or []
            if not versions:
                raise RuntimeError(f"uploaded pipeline {pipeline_name} ({pipeline_id}) has no version")
            version_id = versions[0].pipeline_version_id
        else:
            version_id = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                                        pipeline_id=pipeline_id).pipeline_version_id
        return client.run_pipeline(experiment_id=exp.experiment_id, job_name=run_name, params=params,
                                   pipeline_id=pipeline_id, version_id=version_id, enable_caching=enable_caching,
                                   service_account=service_account)


# -- commands ----------------------------------------------------------------------------------
def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


ParamOpt = Annotated[list[str], typer.Option("--param", "-p", help="Pipeline parameter key=value (JSON values allowed). Repeatable.")]
DataOpt = Annotated[list[str], typer.Option("--data", help="Input data file/folder: sets data_version (DVC or content hash) and sources. Repeatable.")]
SizesOpt = Annotated[Optional[str], typer.Option("--sizes", help="Comma list of catalog sizes for the training plan (default: the pipeline's).")]
IterOpt = Annotated[Optional[int], typer.Option("--iterations", min=1, help="Stage-1 iterations (build option; default 2).")]


def _sizes(value: str | None) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()] if value else []


def list_cmd() -> None:
    """The pipelines and what they do."""
    pipelines = load_pipelines()
    for name, entry in pipelines.PIPELINES.items():
        typer.echo(f"{name:16s} {entry.description}")


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
        raise _fail(str(exc.args[0])) from None


def run_cmd(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (rewardops pipelines list).")],
    local: Annotated[bool, typer.Option("--local", help="Run on this machine with kfp.local (required: cluster runs use submit).")] = False,
    param: ParamOpt = [],  # noqa: B006
    data: DataOpt = [],  # noqa: B006
    sizes: SizesOpt = None,
    iterations: IterOpt = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Outputs, the task cache and the MLflow store.")] = Path("runs/local"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every task even when a cached result exists.")] = False,
) -> None:
    """Run a pipeline locally with kfp.local (SubprocessRunner): `rewardops run data --local --data FILE`."""
    if not local:
        raise _fail("only local runs start from `run`; add --local, or use `rewardops submit PIPELINE --host URL`")
    try:
        func = build_pipeline(pipeline, iterations)
        params = prepare_params(pipeline, func, parse_params(param), data, _sizes(sizes), local=True)
    except (KeyError, PipelineParamError, FileNotFoundError) as exc:
        raise _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    typer.echo(f"running {pipeline} locally (data version {params.get('data_version')}); outputs under {workdir}/kfp")
    started = time.perf_counter()
    try:
        outputs = run_local(pipeline, params, workdir, cache=not no_cache, iterations=iterations)
    except RuntimeError as exc:
        raise _fail(f"pipeline {pipeline} failed: {exc}") from None
    cached = outputs.pop("cached_tasks")
    typer.echo(f"{pipeline} finished in {time.perf_counter() - started:.1f}s"
               + (f"; reused from cache: {', '.join(cached)}" if cached else ""))
    for key, uri in outputs.items():
        typer.echo(f"  {key}: {uri}")
    reports = sorted((workdir / "kfp").glob("**/report/summary.md"), key=lambda p: p.stat().st_mtime)[-8:]
    if reports:
        typer.echo("evaluation reports (newest last):")
        for path in reports:
            typer.echo(f"  {path}")
    if pipeline == "demo":
        _version_demo_subsets(workdir)
    typer.echo(f"MLflow: mlflow ui --backend-store-uri {os.environ['MLFLOW_TRACKING_URI']}")
    from rewardops.pipelines.ablation import print_ablation

    print_ablation(workdir, echo=typer.echo)  # the data ablation's table, last (runs that had one)


# The demo's dataset subsets, as (registry name, task folder/output) in the KFP output tree.
DEMO_SUBSETS = {
    "world": "generate/dataset",
    "preprocessed": "preprocess/dataset",
    "curated": "merge-shards/curated",
    "flipped": "merge-shards/recycled",  # the recycled set (published as `flipped`, as in dvc.yaml)
}


def _version_demo_subsets(workdir: Path) -> None:
    """Version the demo's subsets with DVC in `<workdir>/data-registry` (remote `<workdir>/dvc-remote`).

    Cached tasks write no new output folders, so each subset is taken from the newest run that has it.
    """
    from rewardops.tracking.data_registry import version_datasets

    found: dict[str, Path] = {}
    for name, rel in DEMO_SUBSETS.items():
        candidates = sorted((workdir / "kfp").glob(f"*/{rel}"), key=lambda p: p.stat().st_mtime)
        if candidates:
            found[name] = candidates[-1]
    missing = sorted(set(DEMO_SUBSETS) - set(found))
    if missing:
        raise _fail(f"demo finished without the subsets {', '.join(missing)} under {workdir}/kfp")
    versions = version_datasets(workdir / "data-registry", found, workdir / "dvc-remote",
                                message=f"demo subsets from {os.environ.get('REWARDOPS_PIPELINE_RUN_ID', 'a local run')}")
    typer.echo(f"DVC-versioned subsets in {workdir / 'data-registry'} (git {versions.pop('rev')[:12]}):")
    for name, md5 in versions.items():
        typer.echo(f"  {name}: {md5}")
    typer.echo(f"  an older version: dvc get {workdir / 'data-registry'} curated --rev <commit>")


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
    service_account: Annotated[Optional[str], typer.Option("--service-account", envvar="REWARDOPS_PIPELINE_SERVICE_ACCOUNT", help="Run the pipeline pods as this service account (it needs the chart's launcher Role to create TrainJobs).")] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload as a new version of the pipeline rewardops-PIPELINE (default), or send the spec inline with the run.")] = True,
) -> None:
    """Compile a pipeline and start it on a KFP cluster: `rewardops submit end-to-end --host URL ...`."""
    try:
        func = build_pipeline(pipeline, iterations)
        params = prepare_params(pipeline, func, parse_params(param), data, _sizes(sizes), local=False)
    except (KeyError, PipelineParamError, FileNotFoundError) as exc:
        raise _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    try:
        result = submit(pipeline, params, host, experiment=experiment, run_name=run_name, namespace=namespace,
                        token=token, iterations=iterations, enable_caching=False if no_cache else None,
                        service_account=service_account, upload=upload)
    except Exception as exc:  # connection refused, 401, 500...: say where and why
        raise _fail(f"could not start {pipeline} on {host}: {type(exc).__name__}: {str(exc)[:500]}") from None
    typer.echo(f"started run {result.run_id} of {pipeline} (data version {params['data_version']})")
    typer.echo(f"  {host.rstrip('/')}/#/runs/details/{result.run_id}")


def register(app: typer.Typer) -> None:
    pipelines_app.command("list")(list_cmd)
    pipelines_app.command("compile")(compile_cmd)
    pipelines_app.command("run")(run_cmd)
    pipelines_app.command("submit")(submit_cmd)
    app.add_typer(pipelines_app, name="pipelines")
    app.command("run")(run_cmd)
    app.command("submit")(submit_cmd)
