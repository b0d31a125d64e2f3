"""`output_root` is confined to the cluster's storage root (REWARDOPS_STORAGE_ROOT, set by the
chart's client ConfigMap to its checkpoint bucket): a pipeline parameter pointing anywhere else is
refused before any write or request, naming the parameter and the allowed root. Unset (a laptop,
kfp.local) nothing changes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from rewardops.errors import EXIT_CODE, RewardOpsError
from rewardops.k8s.trainjob import STORAGE_ROOT_ENV, OutputRootError, confine_output_root

ROOT = {STORAGE_ROOT_ENV: "s3://rewardops-checkpoints"}
PREFIXED = {STORAGE_ROOT_ENV: "s3://rewardops-checkpoints/teams/a/"}


@pytest.mark.parametrize("value", ["s3://rewardops-checkpoints", "s3://rewardops-checkpoints/runs",
                                   "s3://rewardops-checkpoints/runs/2026/", "S3://rewardops-checkpoints/x"])
def test_under_the_root_is_accepted(value: str) -> None:
    assert confine_output_root(value, ROOT) == value


@pytest.mark.parametrize(("value", "why"), [
    ("s3://other-bucket/runs", "bucket 'other-bucket' is not 'rewardops-checkpoints'"),
    ("s3://rewardops-checkpoints-evil/runs", "bucket 'rewardops-checkpoints-evil'"),
    ("gs://rewardops-checkpoints/runs", "scheme gs:// is not s3://"),
    ("file:///rewardops-checkpoints/runs", "scheme file://"),
    ("/tmp/runs", "a local path"),
    ("runs", "a local path"),
    ("s3://rewardops-checkpoints/runs/../../other", "'.', '..'"),
    ("s3://rewardops-checkpoints/runs/%2e%2e/x", "'.', '..'"),
    ("s3://rewardops-checkpoints/a%2F..%2Fb", "encoded separators"),
    ("s3://key:secret@rewardops-checkpoints/runs", "credentials"),
    ("s3://rewardops-checkpoints/runs?x=1", "query or fragment"),
])
def test_outside_the_root_is_refused_naming_the_parameter_and_the_root(value: str, why: str) -> None:
    with pytest.raises(OutputRootError) as refused:
        confine_output_root(value, ROOT)
    text = str(refused.value)
    assert text.startswith(f"output_root={value!r} is outside") and "'s3://rewardops-checkpoints'" in text
    assert why in text and STORAGE_ROOT_ENV in text
    assert isinstance(refused.value, RewardOpsError) and refused.value.exit_code == EXIT_CODE


def test_a_prefixed_root_confines_the_path_too() -> None:
    assert confine_output_root("s3://rewardops-checkpoints/teams/a/runs", PREFIXED)
    for value in ("s3://rewardops-checkpoints/teams/b/runs", "s3://rewardops-checkpoints/teams/ab",
                  "s3://rewardops-checkpoints/teams/a/../b", "s3://rewardops-checkpoints"):
        with pytest.raises(OutputRootError, match="the path is not under /teams/a|'.', '..'"):
            confine_output_root(value, PREFIXED)


def test_unset_changes_nothing() -> None:
    for value in ("/tmp/runs", "s3://anything/at/all", "../x"):
        assert confine_output_root(value, {}) == value
        assert confine_output_root(value, {STORAGE_ROOT_ENV: ""}) == value


def test_the_launch_step_refuses_before_any_request(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Through the train_launcher step (a pipeline can be submitted without the CLI's checks):
    refused before the Kubernetes client is even made, and nothing is written to the output."""
    from rewardops.k8s import launcher
    from rewardops.pipelines.components.train_launcher import train_launcher

    def no_request(*args, **kwargs):
        raise AssertionError("a Kubernetes client was made")

    monkeypatch.setattr(launcher, "api_client", no_request)
    monkeypatch.setenv(STORAGE_ROOT_ENV, "s3://rewardops-checkpoints")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.rewardops:5000")
    model = SimpleNamespace(path=str(tmp_path / "model"), uri="s3://b/m", metadata={})
    artifact = SimpleNamespace(path=str(tmp_path / "data"), uri="s3://rewardops-dvc/d", metadata={})
    with pytest.raises(OutputRootError, match=r"output_root='s3://other-bucket/runs' is outside .*'s3://rewardops-checkpoints'"):
        train_launcher.python_func(dataset=artifact, size="qwen3-0.6b", data_version="sha256:abc",
                                   output_root="s3://other-bucket/runs", model=model, metrics=artifact)
    assert not (tmp_path / "model").exists()
    # the same step with an output_root under the root gets as far as the cluster
    with pytest.raises(AssertionError, match="a Kubernetes client was made"):
        train_launcher.python_func(dataset=artifact, size="qwen3-0.6b", data_version="sha256:abc",
                                   output_root="s3://rewardops-checkpoints/runs", model=model, metrics=artifact)


def test_submit_refuses_with_exit_2_where_the_root_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit from inside the cluster (the chart's env present) is refused at once; no server is
    needed since the checks run before any request."""
    from rewardops.cli import app

    argv = ["submit", "training-suite", "--host", "http://127.0.0.1:9", "--param", "data_version=sha256:abc",
            "--param", "dataset_uri=s3://rewardops-dvc/d", "--sizes", "qwen3-0.6b"]
    monkeypatch.setenv(STORAGE_ROOT_ENV, "s3://rewardops-checkpoints")
    result = CliRunner().invoke(app, [*argv, "--param", "output_root=s3://other-bucket/runs"])
    assert result.exit_code == 2, result.output
    assert "output_root='s3://other-bucket/runs' is outside this cluster's storage root 's3://rewardops-checkpoints'" \
        in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
