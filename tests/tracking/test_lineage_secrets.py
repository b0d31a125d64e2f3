"""No secrets in lineage or logs: a secret marker planted in every credential variable and in the
data registry's git remote URL (`https://user:TOKEN@host/...`) appears nowhere in what a tracked
run stores (params, tags, dataset inputs, artifacts), in the model card, or in what it logs.

The route is the tracking/lineage code every training and evaluation run goes through
(`start_tracker` with lineage, a DVC-tracked dataset in a git checkout, registration of a real
tiny reward model with its model card), on a real MLflow store (SQLite) and a real git repository."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

MARKER = "SeCrEt-MaRkEr-7f3a"
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN", "LABEL_STUDIO_API_KEY", "REWARDOPS_LABELSTUDIO_TOKEN", "REWARDOPS_LLM_API_KEY",
    "OPENAI_API_KEY", "PGPASSWORD", "HF_TOKEN",
)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def registry_checkout(tmp_path: Path) -> Path:
    """A DVC data registry checkout: `curated/` tracked by a committed `curated.dvc`, its git
    remote carrying a token the way CI clones often do."""
    root = tmp_path / "registry"
    (root / "curated").mkdir(parents=True)
    (root / "curated" / "part-00000.parquet").write_bytes(b"not read")
    (root / "curated.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: curated\n")
    (root / ".gitignore").write_text("/curated\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@example", "-c", "user.name=t", "add", "curated.dvc", ".gitignore")
    _git(root, "-c", "user.email=t@example", "-c", "user.name=t", "commit", "-q", "-m", "data")
    _git(root, "remote", "add", "origin", f"https://ci-bot:{MARKER}@git.example.com/org/registry.git")
    return root / "curated"


def test_no_secret_reaches_mlflow_lineage_cards_or_logs(registry_checkout: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    from rewardops.tracking.lineage import data_version
    from rewardops.tracking.mlflow_tracker import start_tracker
    from rewardops.tracking.rewardmodel import model_card

    for var in CREDENTIAL_VARS:
        monkeypatch.setenv(var, MARKER)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REWARDOPS_DATA_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    caplog.set_level(logging.DEBUG)

    version = data_version(registry_checkout)
    assert version is not None and version.registry == "https://git.example.com/org/registry.git"

    with start_tracker("rewardops-secrets", "train", tracking_uri=uri,
                       tags={"rewardops.data.path": str(registry_checkout)}) as tracker:
        tracker.log_params({"size": "demo", "data": {"registry": f"https://u:{MARKER}@h.example/x.git"}})
        note = tmp_path / "note.txt"
        note.write_text("a run artifact\n")
        tracker.log_artifact(note)
        assert tracker.register_model(tiny_checkpoint, "rewardops-rm-secrets") == 1  # the card and the pyfunc
        run_id = tracker.run_id
        assert tracker.flush(30)

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    version = client.get_model_version("rewardops-rm-secrets", "1")
    assert "git.example.com/org/registry.git" in version.description  # the registered card names the data
    stored = {
        "params": run.data.params,
        "tags": run.data.tags,
        "version tags": version.tags,
        "version card": version.description,
        "inputs": [json.loads(d.dataset.source) | {"name": d.dataset.name} for d in run.inputs.dataset_inputs],
    }
    assert stored["inputs"], "the dataset input was logged"
    assert stored["tags"]["rewardops.data.registry"] == "https://git.example.com/org/registry.git"
    artifacts = [p for p in (tmp_path / "mlartifacts").rglob("*") if p.is_file()]
    card = model_card(tmp_path / "no-export", run.data.tags, name="rewardops-rm-demo")
    out, err = capfd.readouterr()
    places = {"mlflow params/tags/inputs": json.dumps(stored), "model card": card, "logs": caplog.text,
              "stdout": out, "stderr": err, **{f"artifact {p.name}": p.read_text(errors="replace") for p in artifacts}}
    leaks = {where: text[max(0, text.find(MARKER) - 80):text.find(MARKER) + 40]
             for where, text in places.items() if MARKER in text}
    assert not leaks

