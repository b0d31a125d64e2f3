"""Which process of which world this is: rank discovery for every launcher a cluster uses.

`discover()` reads the environment once and returns a `Launch` (launcher, rank, world size,
local rank, ranks per node, rendezvous address). The launchers, checked in this order:

| launcher         | variables                                                               | started by |
|------------------|-------------------------------------------------------------------------|------------|
| `mpirun`         | `OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE` (+ optional `MASTER_ADDR/PORT`) | OpenMPI `mpirun` (the DeepSpeed TrainJob runtime) |
| `kubeflow-torch` | `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR/PORT` + torchrun's own | Kubeflow Trainer's torch runtime (`torchrun` reads `PET_*`) |
| `torchrun`       | `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR/PORT`, `TORCHELASTIC_RUN_ID` | `torchrun` |
| `env`            | `RANK`, `WORLD_SIZE` (+ `LOCAL_RANK`, `MASTER_ADDR/PORT`)                 | anything else that sets torch's variables (PyTorchJob v1) |
| `none`           | none of the above                                                        | a plain `rewardops train` |

Defaults (world of 1) apply only when no launcher variable exists at all. A missing variable of
a launcher that is present, or variables that contradict each other (an MPI world of 2 with
`WORLD_SIZE=1`, a rank outside its world), raise `LaunchError` naming the variable, before any
process group or model exists.

Under mpirun, `rendezvous()` asks MPI itself (mpi4py) whether the world really has
`OMPI_COMM_WORLD_SIZE` processes (a lone process with `OMPI_COMM_WORLD_SIZE=2` fails here instead of
waiting for a peer that never comes), and rank 0 broadcasts the torch.distributed address: loopback
when every rank is on its node, else rank 0's host name (the hostfile's names resolve in the
DeepSpeed runtime), and a free port unless `MASTER_ADDR/MASTER_PORT` are exported.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from rewardops.errors import RewardOpsError

OMPI = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE")
PET = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
TORCH_RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
LOOPBACK = "127.0.0.1"


class LaunchError(RewardOpsError, ValueError):
    """Launcher variables that are missing or contradict each other."""


@dataclass(frozen=True)
class Launch:
    launcher: str  # mpirun | kubeflow-torch | torchrun | env | none
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # ranks per node
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def nodes(self) -> int:
        return max(self.world_size // max(self.local_world_size, 1), 1)

    def record(self) -> dict[str, object]:
        """What every run writes to its outputs and MLflow params."""
        return {"launcher": self.launcher, "world_size": self.world_size,
                "ranks_per_node": self.local_world_size, "nodes": self.nodes}


def _int(env: Mapping[str, str], name: str, launcher: str) -> int:
    text = env.get(name)
    if text is None or not text.strip():
        raise LaunchError(f"{launcher}: {name} is not set; the launcher sets it for every process "
                          f"(start the run with {launcher}, or unset its other variables to train as one process)")
    try:
        return int(text)
    except ValueError as exc:
        raise LaunchError(f"{launcher}: {name}={text!r} is not an integer") from exc


def _check_range(launcher: str, rank: int, world: int, local_rank: int, local_world: int, names: tuple[str, ...]) -> None:
    if world < 1:
        raise LaunchError(f"{launcher}: {names[1]}={world}: a world needs at least one process")
    if not 0 <= rank < world:
        raise LaunchError(f"{launcher}: {names[0]}={rank} is outside a world of {names[1]}={world}")
    if local_world < 1 or not 0 <= local_rank < local_world:
        raise LaunchError(f"{launcher}: {names[2]}={local_rank} is outside {local_world} ranks on this node")


def _agree(launcher: str, env: Mapping[str, str], pairs: list[tuple[str, int]]) -> None:
    """torch's variables, where also set, must say what the launcher's say."""
    for name, value in pairs:
        if name in env and env[name].strip() and env[name].strip() != str(value):
            raise LaunchError(f"{launcher}: {name}={env[name]} contradicts the launcher's value {value}; "
                              f"unset {name} (the launcher's variables decide) or fix the launch command")


def discover(env: Mapping[str, str] | None = None) -> Launch:
    env = os.environ if env is None else env
    addr = env.get("MASTER_ADDR") or None
    port = int(env["MASTER_PORT"]) if env.get("MASTER_PORT", "").strip().isdigit() else None

    if any(k in env for k in OMPI):
        rank = _int(env, "OMPI_COMM_WORLD_RANK", "mpirun")
        world = _int(env, "OMPI_COMM_WORLD_SIZE", "mpirun")
        local_rank = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun")
        local_world = _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "mpirun")
        _check_range("mpirun", rank, world, local_rank, local_world, OMPI)
        _agree("mpirun", env, [("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local_rank),
                               ("LOCAL_WORLD_SIZE", local_world)])
        return Launch("mpirun", rank, world, local_rank, local_world, addr, port)

    if any(k in env for k in PET):
        nnodes = _int(env, "PET_NNODES", "the Kubeflow torch runtime")
        node_rank = _int(env, "PET_NODE_RANK", "the Kubeflow torch runtime")
        nproc_text = env.get("PET_NPROC_PER_NODE", "")
        if not nproc_text:
            raise LaunchError("the Kubeflow torch runtime: PET_NPROC_PER_NODE is not set (trainer.numProcPerNode)")
        for name in ("PET_MASTER_ADDR", "PET_MASTER_PORT"):
            if not env.get(name):
                raise LaunchError(f"the Kubeflow torch runtime: {name} is not set; the runtime sets it on every node")
        nproc = int(nproc_text) if nproc_text.isdigit() else None  # torchrun also takes auto / gpu / cpu
        if not 0 <= node_rank < max(nnodes, 1):
            raise LaunchError(f"the Kubeflow torch runtime: PET_NODE_RANK={node_rank} is outside PET_NNODES={nnodes}")
        if "RANK" not in env:
            if nnodes == 1 and nproc == 1:
                return Launch("kubeflow-torch", 0, 1, 0, 1, env["PET_MASTER_ADDR"], int(env["PET_MASTER_PORT"]))
            raise LaunchError(
                f"PET_NNODES={nnodes} PET_NPROC_PER_NODE={nproc_text} describe a distributed run, but this process "
                "has no RANK: it was not started by torchrun. Run `torchrun --no-python rewardops train ...` "
                "(torchrun reads the PET_* variables), as the TrainJob's command does")
        launch = _torch(env, "kubeflow-torch", addr, port)
        expected = [("WORLD_SIZE", nnodes * nproc)] if nproc is not None else []
        if nproc is not None:
            expected.append(("LOCAL_WORLD_SIZE", nproc))
        if "GROUP_RANK" in env:
            expected.append(("GROUP_RANK", node_rank))
        _agree("the Kubeflow torch runtime (PET_*)", env, expected)
        return launch

    if any(k in env for k in TORCH_RANK_VARS):
        return _torch(env, "torchrun" if "TORCHELASTIC_RUN_ID" in env else "env", addr, port)
    return Launch("none")


def _torch(env: Mapping[str, str], launcher: str, addr: str | None, port: int | None) -> Launch:
    rank = _int(env, "RANK", launcher)
    world = _int(env, "WORLD_SIZE", launcher)
    local_rank = int(env["LOCAL_RANK"]) if env.get("LOCAL_RANK", "").strip() else 0
    if "LOCAL_WORLD_SIZE" in env:
        local_world = _int(env, "LOCAL_WORLD_SIZE", launcher)
    else:  # one process per pod (PyTorchJob v1), unless LOCAL_RANK says otherwise
        local_world = local_rank + 1 if "LOCAL_RANK" in env and local_rank else 1
    _check_range(launcher, rank, world, local_rank, local_world, ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if world > 1:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(name):
                raise LaunchError(f"{launcher}: WORLD_SIZE={world} but {name} is not set; every rank needs "
                                  "rank 0's address (torchrun sets it)")
    return Launch(launcher, rank, world, local_rank, local_world, addr, port)


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rendezvous(launch: Launch) -> Launch:
    """For mpirun: check the world against MPI itself and agree on rank 0's address (see the module doc)."""
    if launch.launcher != "mpirun":
        return launch
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise LaunchError(f"mpirun started this process but mpi4py cannot be imported ({exc}); pip install mpi4py") from exc
    comm = MPI.COMM_WORLD
    if comm.Get_size() != launch.world_size or comm.Get_rank() != launch.rank:
        raise LaunchError(
            f"OMPI_COMM_WORLD_SIZE={launch.world_size} (rank {launch.rank}) but MPI reports a world of "
            f"{comm.Get_size()} (rank {comm.Get_rank()}): this process was not started by mpirun with the others. "
            f"Start every rank with `mpirun -np {launch.world_size} rewardops train ...`, or unset OMPI_COMM_WORLD_* "
            "to train as one process")
    if launch.rank == 0:
        if launch.master_addr:
            addr = launch.master_addr
        elif launch.local_world_size == launch.world_size:
            addr = LOOPBACK  # every rank on this node
        else:
            addr = socket.gethostbyname(socket.gethostname())
        port = launch.master_port or free_port("" if addr != LOOPBACK else LOOPBACK)
        chosen = (addr, port)
    else:
        chosen = None
    addr, port = comm.bcast(chosen, root=0)
    return dataclasses.replace(launch, master_addr=addr, master_port=port)


def export_torch_env(launch: Launch, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set torch.distributed's variables for `launch` (env:// rendezvous); returns the previous values."""
    environ = os.environ if environ is None else environ
    values = {"RANK": str(launch.rank), "WORLD_SIZE": str(launch.world_size), "LOCAL_RANK": str(launch.local_rank),
              "LOCAL_WORLD_SIZE": str(launch.local_world_size),
              "MASTER_ADDR": launch.master_addr or LOOPBACK,
              "MASTER_PORT": str(launch.master_port or free_port())}
    previous = {k: environ.get(k) for k in values}
    environ.update(values)
    return previous


def restore_env(previous: Mapping[str, str | None], environ: dict[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    for key, value in previous.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
