"""One error path: a bad invocation in any area exits 2 with an `error:` line (and at most a hint
line), never a traceback; anything else that escapes a command is a bug and keeps its traceback.

The bad invocations run the real `rewardops` command line in a subprocess, as a user runs it.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rewardops.cli import RootGroup
from rewardops.data.commands import generate_to
from rewardops.errors import ConfigError, DataError, NotFoundError, RewardOpsError, ServiceError


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-errors")
    generate_to(root / "dataset", n=20, noise=0.1, seed=0, show_progress=False)
    (root / "not-a-dataset").mkdir()
    (root / "not-a-dataset" / "notes.txt").write_text("not pairs\n")
    (root / "truncated.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 50)[:-20])
    return root


# (area, argv with {root} for the fixture folder, what the error line must name)
BAD = [
    ("training: unknown size", ["train", "--size", "qwen3-9b", "--data", "{root}/dataset", "--out", "{root}/o"], "unknown size 'qwen3-9b'"),
    ("training: bad override value", ["train", "--size", "demo-tiny-qwen3", "--data", "{root}/dataset", "--out", "{root}/o",
                                      "--set", "lr=fast"], "lr='fast'"),
    ("training: bad override name", ["train", "--size", "demo-tiny-qwen3", "--data", "{root}/dataset", "--out", "{root}/o",
                                     "--set", "learning_rate=1e-5"], "unknown training setting 'learning_rate'"),
    ("training: not a dataset", ["train", "--size", "demo-tiny-qwen3", "--data", "{root}/not-a-dataset", "--out", "{root}/o"],
     "not-a-dataset: not a complete output"),
    ("data: missing input", ["ingest", "{root}/absent.jsonl", "--out", "{root}/o"], "absent.jsonl: no such file"),
    ("data: damaged input", ["ingest", "{root}/truncated.jsonl.gz", "--out", "{root}/o"], "truncated.jsonl.gz"),
    ("data: not a dataset", ["preprocess", "{root}/not-a-dataset", "--out", "{root}/o"], "not-a-dataset: not a complete output"),
    ("data: unknown format", ["ingest", "{root}/absent.jsonl", "--out", "{root}/o", "--format", "xml"], "--format 'xml'"),
    ("data: unknown benchmark", ["preprocess", "{root}/dataset", "--out", "{root}/o", "--decontaminate-benchmarks", "rewardbench3"],
     "unknown benchmark 'rewardbench3'"),
    ("curation: bad settings text", ["curate", "seed", "{root}/dataset", "--out", "{root}/o", "--settings", "{gold_n: 5"],
     "--settings"),
    ("curation: unknown setting", ["curate", "seed", "{root}/dataset", "--out", "{root}/o", "--settings", '{"gold": 5}'],
     "unknown curation settings"),
    ("evaluation: unknown benchmark", ["eval", "--model", "{root}/absent-model", "--out", "{root}/o", "--benchmarks", "rewardbench3"],
     "unknown benchmark 'rewardbench3'"),
    ("evaluation: unknown model", ["eval", "--model", "{root}/absent-model", "--out", "{root}/o", "--benchmarks", "world"],
     "absent-model"),
    ("pipelines: unknown pipeline", ["run", "no-such-pipeline", "--local"], "unknown pipeline 'no-such-pipeline'"),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_COLOR="1", COLUMNS="200", MLFLOW_TRACKING_URI="file:///nonexistent-never-used")
    return env


@pytest.mark.parametrize(("argv", "names"), [pytest.param(argv, names, id=case) for case, argv, names in BAD])
def test_bad_invocation_is_one_error_line_and_exit_2(places: Path, argv: list[str], names: str):
    args = [a.replace("{root}", str(places)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "rewardops.cli", *args], capture_output=True, text=True,
                          env=_env(), cwd=places, timeout=300)
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "╭" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert names in errors[0], errors[0]
    assert len(lines) <= 3, err  # the error, at most a hint, at most one progress line
    assert not (places / "o").exists()  # nothing half-written


def test_a_damaged_input_says_what_to_do(places: Path):
    proc = subprocess.run([sys.executable, "-m", "rewardops.cli", "ingest", str(places / "truncated.jsonl.gz"),
                           "--out", str(places / "o")], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 2
    (hint,) = [line for line in proc.stderr.splitlines() if line.startswith("hint: ")]
    assert "--keep-partial" in hint and "nothing was written" in hint


def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=RootGroup)

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("ok")

    return app


def test_a_rewardops_error_is_reported_once_with_its_exit_code_and_hint():
    result = CliRunner().invoke(_app(DataError("shard-3.parquet: row 7: empty prompt").with_hint("repair row 7")), ["boom"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == ["error: shard-3.parquet: row 7: empty prompt", "hint: repair row 7"]


def test_people_not_done_is_exit_3_with_its_own_label():
    from rewardops.curation.labelstudio import AnnotationsPending

    pending = AnnotationsPending("3 of 10 pairs decided", batch="b", project=1, url="http://ls", done=3, total=10)
    result = CliRunner().invoke(_app(pending), ["boom"])
    assert result.exit_code == 3
    assert result.output.splitlines() == ["waiting for people: 3 of 10 pairs decided"]


def test_anything_else_is_a_bug_and_keeps_its_traceback():
    result = CliRunner().invoke(_app(KeyError("a bug")), ["boom"])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)  # not swallowed: the traceback is shown
    assert "error:" not in result.output


def test_every_family_is_a_rewardops_error_and_keeps_its_builtin():
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(NotFoundError, FileNotFoundError) and issubclass(ServiceError, RuntimeError)
    for family in (ConfigError, DataError, NotFoundError, ServiceError):
        assert issubclass(family, RewardOpsError) and family.exit_code == 2


def test_every_domain_error_class_is_under_the_root():
    """Each area's error classes sit under `RewardOpsError` (internal control-flow exceptions that
    never leave their module are listed here by name)."""
    import ast

    internal = {"RewardOpsError", "_Garbage", "RowError", "MathError"}  # the root; caught where raised
    src = Path(__file__).resolve().parents[1] / "src" / "rewardops"
    loose = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name not in internal:
                bases = {ast.unparse(b) for b in node.bases}
                if bases & {"Exception", "ValueError", "RuntimeError", "LookupError", "FileNotFoundError", "OSError",
                            "KeyError", "TypeError"}:
                    if not bases & {"RewardOpsError", "ConfigError", "DataError", "ServiceError", "NotFoundError"}:
                        loose.append(f"{path.relative_to(src)}: {node.name}({', '.join(sorted(bases))})")
    assert not loose, "error classes outside the RewardOpsError family:\n" + "\n".join(loose)
