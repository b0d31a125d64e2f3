"""No secret reaches what the demo pipeline leaves behind (paper §5's pipeline, run as `make demo`
runs it, small). The session's one demo run (conftest.py `checkout`) has every credential variable
set to its own marker (DEMO_SECRETS); this test looks for every marker in the MLflow store (params,
tags, dataset inputs, run descriptions, registered models and versions: tags and descriptions, and
every artifact), every file under demo-out/ (KFP outputs, reports, model cards, the DVC data
registry and its git history and config) and the demo's stdout/stderr.

The demo's data registry also has a git `origin` and a second DVC remote whose URLs carry a token
(`https://user:TOKEN@host/...`, DEMO_GIT_REMOTE / DEMO_DVC_REMOTE), planted before the run as a
team's registry would have them; those markers may appear only where they were planted (the
registry's own `.git/config` and `.dvc/config.local`), nowhere the demo wrote. The DVC remote the
demo pushes to stays its folder (a hosted one would need the network).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.demo_secrets import DEMO_GIT_REMOTE, DEMO_REMOTE_PLANTED, DEMO_REMOTE_TOKENS, DEMO_SECRETS

pytestmark = pytest.mark.slow  # shares test_readme.py's small demo (several minutes on 2 cores)


MARKERS = {**DEMO_SECRETS, **DEMO_REMOTE_TOKENS}


def _leaks(places: dict[str, str | bytes]) -> dict[str, str]:
    """{place: "VAR near ..."} for every marker found (a remote's token counts outside the places it
    was planted in)."""
    found = {}
    for where, text in places.items():
        for var, marker in MARKERS.items():
            if var in DEMO_REMOTE_TOKENS and where in DEMO_REMOTE_PLANTED:
                continue
            needle = marker.encode() if isinstance(text, bytes) else marker
            at = text.find(needle)
            if at >= 0:
                near = text[max(0, at - 80):at + 40]
                found[where] = f"{var} near {near.decode(errors='replace') if isinstance(near, bytes) else near!r}"
    return found


def _mlflow_texts(db: Path) -> dict[str, str]:
    """Every string the MLflow store holds for runs and registered models, by place."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    places: dict[str, str] = {}
    experiments = client.search_experiments()
    assert experiments
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=5000)
    assert runs, "the demo logged no run"
    for run in runs:
        rid = run.info.run_id
        places[f"run {rid} params"] = repr(run.data.params)
        places[f"run {rid} tags"] = repr(run.data.tags)  # includes mlflow.note.content (the description)
        places[f"run {rid} inputs"] = repr([(d.dataset.name, d.dataset.source, d.dataset.schema, d.dataset.profile,
                                             [(t.key, t.value) for t in d.tags])
                                            for d in (run.inputs.dataset_inputs if run.inputs else [])])
        places[f"run {rid} description"] = run.data.tags.get("mlflow.note.content", "")
    models = client.search_registered_models()
    assert models, "the demo registered no model"
    for model in models:
        places[f"model {model.name}"] = repr((model.description, model.tags, model.aliases))
        for version in client.search_model_versions(f"name='{model.name}'"):
            places[f"model {model.name} v{version.version}"] = repr((version.description, version.tags,
                                                                     version.source, version.run_id))
    return places


def _files(root: Path) -> dict[str, bytes]:
    """Every regular file under root (mlflow.db and the artifact store included), as bytes, and each
    git repository's config and full history (its objects are compressed on disk)."""
    places: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            places[str(path.relative_to(root))] = path.read_bytes()
    for git in sorted(root.rglob(".git")):
        repo = git.parent
        for what in (["config", "--list"], ["log", "--all", "-p", "--format=fuller"]):
            done = subprocess.run(["git", *what], cwd=repo, capture_output=True, check=True)
            places[f"{repo.relative_to(root)}: git {' '.join(what)}"] = done.stdout
    return places


def test_no_secret_marker_in_mlflow_kfp_outputs_reports_or_logs(checkout):
    home, output = checkout
    out = home / "demo-out"
    files = _files(out)
    # the scan covers the places a credential could reach: the store, KFP outputs, reports and model cards, the registry
    assert "mlflow.db" in files
    assert any(name.startswith("kfp/") for name in files), sorted(files)[:20]
    assert any(name.endswith("summary.md") for name in files)
    assert any(name.endswith(".dvc") for name in files) and any("git config" in name for name in files)
    # the remotes' tokens are really there, where they were planted, and the lineage route reads that origin
    for planted in DEMO_REMOTE_PLANTED:
        assert any(token.encode() in files[planted] for token in DEMO_REMOTE_TOKENS.values()), planted
    from rewardops.tracking.lineage import data_version

    version = data_version(out / "data-registry" / "curated")
    assert version is not None and version.registry == "https://git.example.invalid/team/data-registry.git", version
    assert DEMO_GIT_REMOTE not in repr(version.as_dict())
    mlflow_places = _mlflow_texts(out / "mlflow.db")
    assert any(" inputs" in where and "dvc" in text for where, text in mlflow_places.items())  # lineage was logged
    leaks = {**_leaks({"demo stdout/stderr": output}), **_leaks(mlflow_places), **_leaks(files)}
    assert not leaks, leaks
