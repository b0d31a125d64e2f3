"""The served model is the registered model: registration records digests of the MLflow model's
code and weights as version tags; `rewardops eval`, the library loader and the serving chart's
init step (`python -m rewardops.evaluation.modelref URI DEST`) verify them and refuse a model
whose artifacts were changed afterwards (an artifact-store writer swapping the pyfunc code or
the weights). A real MLflow store (SQLite + local artifact folder) and the real tiny checkpoint."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardops.evaluation.modelref import (
    CODE_DIGEST_TAG,
    WEIGHTS_DIGEST_TAG,
    ModelIntegrityError,
    main as fetch_main,
    resolve_model,
)
from rewardops.tracking.mlflow_tracker import start_tracker

NAME = "rewardops-rm-digest-tiny"


@pytest.fixture(scope="module")
def registered(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("digests")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        with start_tracker("digests", "tiny", tracking_uri=uri, lineage=False) as tracker:
            assert tracker.register_model(tiny_checkpoint, NAME) == 1
    return uri, root


@pytest.fixture
def store(registered: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    uri, root = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    (model,) = [p.parent for p in (root / "mlartifacts").rglob("MLmodel")]
    return model  # the logged MLflow model folder in the artifact store


def _tamper(path: Path, extra: bytes) -> bytes:
    before = path.read_bytes()
    path.write_bytes(before + extra)
    return before


def test_registration_records_digests_and_loading_checks_them(store: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version(NAME, "1").tags
    assert len(tags[CODE_DIGEST_TAG]) == 64 and len(tags[WEIGHTS_DIGEST_TAG]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified model loads without the "unverified" warning
        ref = resolve_model(f"models:/{NAME}@candidate", tmp_path / "ok")
    assert (ref.model_dir / "config.json").is_file()


@pytest.mark.parametrize("kind", ["code", "weights"])
def test_changed_code_or_weights_are_refused(store: Path, tmp_path: Path, kind: str) -> None:
    if kind == "code":
        (target,) = [p for p in store.glob("*.py")]  # the pyfunc code MLflow runs at load
        extra = b"\nimport os; os.system('echo pwned')\n"
    else:
        (target,) = list((store / "artifacts").rglob("config.json"))
        extra = b"\n"
    before = _tamper(target, extra)
    try:
        with pytest.raises(ModelIntegrityError, match=rf"downloaded {kind} differ"):
            resolve_model(f"models:/{NAME}/1", tmp_path / "bad")

        # the serving chart's init step: exit 1 with the reason, nothing left for the server to load
        assert fetch_main([f"models:/{NAME}@candidate", str(tmp_path / "serve")]) == 1

        from rewardops.cli import app

        done = CliRunner().invoke(app, ["eval", "--model", f"models:/{NAME}@candidate", "--out", str(tmp_path / "eval"),
                                        "--benchmarks", "world", "--world-n", "2", "--no-cache", "--no-mlflow"])
        assert done.exit_code == 2 and "refusing to load" in " ".join(done.output.split()), done.output
        assert not (tmp_path / "eval" / "summary.json").exists()
    finally:
        target.write_bytes(before)
    assert fetch_main([f"models:/{NAME}@candidate", str(tmp_path / "serve-ok")]) == 0
    shutil.rmtree(tmp_path / "serve-ok")
