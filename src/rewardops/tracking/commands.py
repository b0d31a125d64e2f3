"""CLI of the tracking area: `rewardops data push|pull|status|remote|source`, `rewardops registry
promote|register`, and `rewardops compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from rewardops.errors import RewardOpsError

console = Console(stderr=True)
out_console = Console()
wide_console = Console(width=None if Console().is_terminal else 160)  # tables stay readable in CI logs

app = typer.Typer()  # `rewardops ui|serve|compare` (help lists them in definition order); mounts the groups
data_app = typer.Typer(help="Versioned data: the DVC S3 remote and the pipeline's source stage.", no_args_is_help=True)
registry_app = typer.Typer(help="The MLflow model registry: aliases candidate / champion.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")


# ------------------------------------------------------------------------------------ data


@data_app.command("push")
def data_push(
    targets: Annotated[Optional[list[str]], typer.Argument(help="Outputs or .dvc files to push (default: all).")] = None,
    repo: Annotated[Path, typer.Option("--repo", help="The DVC repository.")] = Path("."),
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Parallel uploads.")] = None,
    create_bucket: Annotated[bool, typer.Option("--create-bucket", help="Create the bucket if it does not exist.")] = False,
    all_commits: Annotated[bool, typer.Option("--all-commits", help="Every data version in the git history.")] = False,
) -> None:
    """Upload cached data to the S3 remote (REWARDOPS_DVC_REMOTE, REWARDOPS_S3_ENDPOINT, AWS_* credentials).

    Rerunning an interrupted push sends only what is still missing.
    """
    from rewardops.tracking.dvc_remote import RemoteError, push

    try:
        count = push(repo, targets, jobs=jobs, create_bucket=create_bucket, all_commits=all_commits)
    except RemoteError as exc:
        raise RewardOpsError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - DVC errors: say it was the push
        raise RewardOpsError(f"dvc push failed: {exc}") from None
    out_console.print(f"{count} files pushed")


@data_app.command("pull")
def data_pull(
    targets: Annotated[Optional[list[str]], typer.Argument(help="Outputs to pull (default: all).")] = None,
    repo: Annotated[Path, typer.Option("--repo", help="The DVC repository.")] = Path("."),
    rev: Annotated[Optional[str], typer.Option("--rev", help="Git revision (commit, tag, branch) of an older data version.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Where an older version goes (default <target>@<rev>).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1)] = None,
) -> None:
    """Download data from the S3 remote; with --rev, the version of that git revision."""
    from rewardops.tracking.dvc_remote import RemoteError, pull

    try:
        result = pull(repo, targets, rev=rev, out=out, jobs=jobs)
    except RemoteError as exc:
        raise RewardOpsError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001
        raise RewardOpsError(f"dvc pull failed: {exc}") from None
    out_console.print_json(json.dumps(result))


@data_app.command("status")
def data_status(repo: Annotated[Path, typer.Option("--repo")] = Path(".")) -> None:
    """What is not yet in the remote, not committed, or not in the local cache."""
    from rewardops.tracking.dvc_remote import RemoteError, status

    try:
        result = status(repo)
    except RemoteError as exc:
        raise RewardOpsError(str(exc)) from None
    out_console.print_json(json.dumps(result))


@data_app.command("get")
def data_get(
    path: Annotated[Optional[str], typer.Argument(help="Dataset path inside the registry (with --registry).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the dataset goes (a new or empty folder).")] = Path("data-get"),
    model: Annotated[Optional[str], typer.Option("--model", help="models:/NAME@ALIAS or models:/NAME/VERSION: the data it was trained on.")] = None,
    registry: Annotated[Optional[str], typer.Option("--registry", help="The DVC data registry (git URL or folder); default: the model's.")] = None,
    rev: Annotated[Optional[str], typer.Option("--rev", help="Registry revision (commit, tag, branch); default: the model's, else HEAD.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri")] = None,
) -> None:
    """Bring back a versioned dataset: the exact training data of a registered model
    (`--model models:/rewardops-rm-demo-tiny-qwen3@champion`), or PATH of --registry at --rev."""
    from rewardops.tracking.dvc_remote import RemoteError, RemoteSettings, _s3_configured, get_dataset
    from rewardops.tracking.lineage import DataVersion

    expected = None
    if model:
        from rewardops.tracking.registry import RegistryLookupError, resolve_version

        found = re.match(r"models:/([^/@]+)(?:@([\w.-]+)|/(\d+))$", model)
        if not found:
            raise RewardOpsError(f"--model {model!r}: use models:/NAME@ALIAS or models:/NAME/VERSION")
        name, alias, number = found.groups()
        try:
            mv = resolve_version(_client(tracking_uri), name, number, alias)
        except RegistryLookupError as exc:
            raise RewardOpsError(str(exc)) from None
        expected = DataVersion.from_tags(mv.tags or {})
        if expected is None:
            raise RewardOpsError(f"{model} (version {mv.version}) carries no DVC data lineage (tags rewardops.data.registry, "
                        ".rev, .path, .md5): it was trained on data that was not versioned in a DVC registry")
    if registry is None and expected is not None:
        registry = locate_registry(expected.registry, tracking_uri)
    path = path or (expected.path if expected else None)
    rev = rev or (expected.rev if expected else None)
    if not registry or not path:
        raise RewardOpsError("say which data: --model models:/NAME@ALIAS, or PATH with --registry")
    try:
        settings = RemoteSettings.from_env() if _s3_configured() else None
        dest = get_dataset(registry, path, out, rev=rev, settings=settings)
    except RemoteError as exc:
        raise RewardOpsError(str(exc)) from None
    result: dict[str, Any] = {"registry": registry, "path": path, "rev": rev or "HEAD", "out": str(dest)}
    if expected is not None:
        from rewardops.tracking.lineage import dvc_md5

        result["md5"] = dvc_md5(dest)
        if result["md5"] != expected.md5:
            raise RewardOpsError(f"{dest}: DVC md5 {result['md5']} differs from the {expected.md5} the model was trained on")
        result["verified"] = True
    out_console.print_json(json.dumps(result))


def locate_registry(recorded: str, tracking_uri: str | None) -> str:
    """The model's DVC registry: the recorded folder, or, when that folder has moved (the demo's
    `demo-out/` renamed or copied), the folder of the same name next to the SQLite MLflow store
    that recorded it. A git URL is used as it is."""
    if "://" in recorded or recorded.startswith("git@") or Path(recorded).exists():
        return recorded
    from rewardops.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        moved = Path(uri.removeprefix("sqlite:///")).parent / Path(recorded).name
        if (moved / ".dvc").is_dir():
            console.print(f"note: the model's registry {recorded} has moved; using {moved} (next to the MLflow store)")
            return str(moved)
    raise RewardOpsError(f"the model's DVC registry {recorded} does not exist (moved?); give its new place with --registry DIR")


@data_app.command("remote")
def data_remote(
    repo: Annotated[Path, typer.Option("--repo")] = Path("."),
    check: Annotated[bool, typer.Option("--check/--no-check", help="Verify bucket and credentials.")] = True,
) -> None:
    """Write the S3 remote from the environment into .dvc/config.local (for plain `dvc push/pull`)."""
    from rewardops.tracking.dvc_remote import RemoteError, RemoteSettings, check_remote, configure_remote

    try:
        settings = RemoteSettings.from_env()
        if check:
            check_remote(settings)
        configure_remote(repo, settings)
    except RemoteError as exc:
        raise RewardOpsError(str(exc)) from None
    out_console.print(f"remote {settings.name} -> {settings.url} ({settings.endpoint_url or 'AWS S3'})")


def source_settings(section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("generate"|"ingest", keyword arguments) for params.yaml's `data:` section."""
    kind = section.get("source", "generate")
    shard_size = int(section.get("shard_size", 100_000))
    if kind == "generate":
        g = section.get("generate") or {}
        return "generate", {"n": int(g.get("n", 1000)), "noise": float(g.get("noise", 0.1)),
                            "seed": int(g.get("seed", 0)), "shard_size": shard_size}
    if kind == "ingest":
        i = section.get("ingest") or {}
        paths = [str(p) for p in (i.get("paths") or [])]
        if not paths:
            raise ValueError("params.yaml data.source is 'ingest' but data.ingest.paths is empty")
        return "ingest", {"paths": paths, "format": i.get("format") or None, "shard_size": shard_size}
    raise ValueError(f"params.yaml data.source must be 'generate' or 'ingest', got {kind!r}")


@data_app.command("source")
def data_source(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    params: Annotated[Path, typer.Option("--params", help="The params file with a `data:` section.")] = Path("params.yaml"),
) -> None:
    """The pipeline's first stage: generate the world or ingest files, as params.yaml says."""
    import yaml

    try:
        section = (yaml.safe_load(params.read_text()) or {}).get("data") or {}
        kind, settings = source_settings(section)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RewardOpsError(f"{params}: {exc}") from None
    console.print(f"[bold]data source: {kind} {settings}[/bold]")
    try:
        counts = _run_source(kind, settings, out)
    except (OSError, ValueError) as exc:
        raise RewardOpsError(f"data source ({kind}) failed: {exc}") from None
    out_console.print_json(json.dumps(counts, default=str))


def _run_source(kind: str, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """The library calls behind `rewardops generate` / `rewardops ingest` (no subprocess)."""
    if kind == "generate":
        from rewardops.data.commands import generate_to

        report = generate_to(out, settings["n"], settings["noise"], settings["seed"], settings["shard_size"],
                             show_progress=False)
    else:
        from rewardops.data.ingest import ingest

        report = ingest(settings["paths"], out, fmt=settings["format"], shard_size=settings["shard_size"])
    from dataclasses import asdict

    return {"kind": kind, "out": str(out), **asdict(report.totals())}


# ------------------------------------------------------------------------------------ registry


def existing_store(tracking_uri: str | None) -> str:
    """The resolved tracking URI of a command that only reads: a SQLite file that does not exist
    is refused (MLflow would create an empty one and the command would report "nothing yet")."""
    from rewardops.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            near = sorted(p.name for p in path.parent.glob("*.db")) if path.parent.is_dir() else []
            hint = f"; {path.parent} holds {', '.join(near)}" if near else ""
            raise RewardOpsError(f"--tracking-uri {uri}: no MLflow store at {path}{hint} (after `make demo` it is "
                        "sqlite:///$PWD/demo-out/mlflow.db)")
    return uri


def _client(tracking_uri: str | None) -> Any:
    from rewardops.tracking.uri import client

    return client(existing_store(tracking_uri))


@registry_app.command("promote")
def registry_promote(
    name: Annotated[str, typer.Argument(help="Registered model, e.g. rewardops-rm-qwen3-0.6b.")],
    version: Annotated[Optional[int], typer.Option("--version", help="Default: the 'candidate' alias.")] = None,
    min_delta: Annotated[float, typer.Option("--min-delta", help="Points (percent) the candidate must gain over the champion.")] = 0.0,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", hidden=True, help="Ignored: one promotion rule.")] = None,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", hidden=True, help="Ignored: one promotion rule.")] = False,
) -> None:
    """Point 'champion' at the candidate when its registry score beats the champion's.

    The score (percent) is the average of the seven paper benchmarks, over those both versions
    have when some are missing, or over the generated world when no paper benchmark ran.
    """
    from rewardops.tracking.registry import promote_champion

    if metric or allow_partial:
        console.print("note: --metric/--allow-partial are ignored; promotion has one rule (see --help)")
    try:
        decision = promote_champion(_client(tracking_uri), name, version=version, min_delta=min_delta)
    except LookupError as exc:
        raise RewardOpsError(str(exc)) from None
    verb = "[green]promoted[/green]" if decision.promoted else "[yellow]kept[/yellow]"
    out_console.print(f"{name} v{decision.candidate}: {verb} ({decision.reason}); champion = v{decision.champion}")


@registry_app.command("register")
def registry_register(
    model_dir: Annotated[Path, typer.Argument(help="A saved transformers checkpoint folder.")],
    name: Annotated[str, typer.Option("--name")],
    run_id: Annotated[str, typer.Option("--run-id", help="The MLflow run the model belongs to.")],
    alias: Annotated[str, typer.Option("--alias")] = "candidate",
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri")] = None,
) -> None:
    """Register a checkpoint after the fact (e.g. one an outage kept from being registered)."""
    from rewardops.tracking.registry import register_checkpoint

    try:
        version = register_checkpoint(model_dir, name, run_id=run_id, tracking_uri=tracking_uri, alias=alias)
    except FileNotFoundError as exc:
        raise RewardOpsError(str(exc)) from None
    out_console.print(f"{name} v{version} registered, alias {alias}")


# ------------------------------------------------------------------------------------ ui, serve


def _exec_mlflow(args: list[str], env: dict[str, str] | None = None) -> None:
    """Replace this process with `python -m mlflow ARGS` from this environment, its bin folder first
    on PATH: MLflow starts `uvicorn` by name, which a plain shell (venv not activated) lacks."""
    import os
    import sys

    environ = {**os.environ, **(env or {})}
    environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")])
    argv = [sys.executable, "-m", "mlflow", *args]
    console.print("running: mlflow " + " ".join(args))
    os.execve(sys.executable, argv, environ)


TrackingUriOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", "--backend-store-uri", help="The MLflow store (default: MLFLOW_TRACKING_URI, else ./mlruns.db).")]


@app.command("ui")
def ui(
    tracking_uri: TrackingUriOpt = None,
    host: Annotated[str, typer.Option("--host", "-h")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p")] = 5000,
) -> None:
    """MLflow's UI on a store: `rewardops ui --tracking-uri sqlite:///$PWD/demo-out/mlflow.db`;
    prints the link that opens experiment rewardops-training in model-training mode on its runs."""
    uri = existing_store(tracking_uri)
    out_console.print(f"MLflow UI: {ui_link(uri, host, port)}", soft_wrap=True)
    _exec_mlflow(["ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)])


TRAINING_EXPERIMENT = "rewardops-training"


def ui_link(tracking_uri: str, host: str, port: int) -> str:
    """The page a person wants first: the training experiment's runs in MLflow's model-training
    mode (MLflow 3's UI opens experiments in GenAI mode unless the link says `workflowType`)."""
    base = f"http://{host}:{port}/"
    try:
        found = _client(tracking_uri).get_experiment_by_name(TRAINING_EXPERIMENT)
    except Exception:  # noqa: BLE001 - the server will say what is wrong with the store
        found = None
    if found is None:
        return base + "#/experiments?workflowType=machine_learning"
    return base + f"#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


@app.command("serve")
def serve(
    model: Annotated[str, typer.Argument(help="models:/NAME@ALIAS or models:/NAME/VERSION, e.g. models:/rewardops-rm-demo-tiny-qwen3@champion.")],
    tracking_uri: TrackingUriOpt = None,
    host: Annotated[str, typer.Option("--host", "-h")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p")] = 5001,
) -> None:
    """Serve a registered reward model over HTTP (MLflow's scoring server, this environment):
    POST /invocations {"dataframe_records": [{"prompt": ..., "response": ...}]} -> rewards."""
    uri = existing_store(tracking_uri)
    _exec_mlflow(["models", "serve", "-m", model, "--env-manager", "local", "-h", host, "-p", str(port)],
                 env={"MLFLOW_TRACKING_URI": uri})


# ------------------------------------------------------------------------------------ compare


@app.command("compare")
def compare(
    suite: Annotated[Optional[str], typer.Argument(help="Suite name (or parent run id); default: the newest suite.")] = None,
    other: Annotated[Optional[str], typer.Argument(help="A second suite to set side by side.")] = None,
    experiment: Annotated[Optional[str], typer.Option("--experiment", help="Default: search all experiments.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for compare.md/.csv/.png.")] = Path("compare"),
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri")] = None,
) -> None:
    """Table 1 of the paper for a suite: one row per size, the benchmarks it has (the seven, or
    those present, the world included) and the registry score, in percent, from MLflow."""
    from rewardops.tracking.compare import latest_suite, load_suite, rich_table, write_outputs

    client = _client(tracking_uri)
    try:
        suite = suite or latest_suite(client, experiment)
        a = load_suite(client, suite, experiment)
        b = load_suite(client, other, experiment) if other else None
    except LookupError as exc:
        raise RewardOpsError(str(exc)) from None
    wide_console.print(rich_table(a, b))
    paths = write_outputs(out, a, b)
    if "ablation" in paths:  # the suite ran the data ablation: the same table the run printed
        wide_console.print(paths["ablation"].read_text(encoding="utf-8"))
    console.print("written: " + ", ".join(str(p) for p in paths.values()), soft_wrap=True)
