"""Entry point of a training pod: run by torchrun (or the deepspeed launcher) in every process.

    torchrun --nnodes=$PET_NNODES --nproc-per-node=$PET_NPROC_PER_NODE --node-rank=$PET_NODE_RANK \
        --master-addr=$PET_MASTER_ADDR --master-port=$PET_MASTER_PORT \
        training/launch.py --size qwen3-0.6b --data /data/train --out /out [--set key=value ...]

Inside a Kubeflow Trainer TrainJob (torch-distributed runtime) the PET_* variables are set on
every node, and torchrun reads them itself, so `torchrun training/launch.py ...` is enough. Run
directly with PET_* set and no RANK (e.g. as a PyTorchJob container command without torchrun),
this script re-executes itself under torchrun with those values. See training/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a Bradley-Terry reward model (one process of a distributed run).")
    p.add_argument("--size", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--eval-data", default=None)
    p.add_argument("--profile", default="final")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by the deepspeed launcher")
    return p.parse_args(argv)


def _reexec_under_torchrun(argv: list[str]) -> None:
    env = os.environ
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={env.get('PET_NNODES', '1')}",
        f"--nproc-per-node={env.get('PET_NPROC_PER_NODE', '1')}",
        f"--node-rank={env.get('PET_NODE_RANK', '0')}",
        f"--master-addr={env.get('PET_MASTER_ADDR', '127.0.0.1')}",
        f"--master-port={env.get('PET_MASTER_PORT', '29500')}",
        str(Path(__file__).resolve()), *argv,
    ]
    os.execv(sys.executable, cmd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "RANK" not in os.environ and "PET_NNODES" in os.environ:
        _reexec_under_torchrun(argv)
    args = _parse(argv)
    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))

    from rewardops.training.config import ConfigError, parse_overrides, resolve_config
    from rewardops.training.trainer import train

    try:
        overrides = parse_overrides(args.overrides)
        overrides.update({"data": args.data, "out": args.out})
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        if args.eval_data:
            overrides["eval_data"] = args.eval_data
        config = resolve_config(args.size, overrides, profile=args.profile)
        result = train(config, progress=not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1] if result.history else {}
        print(f"done: {result.steps} steps, loss {last.get('train/loss')}, export {result.export_dir}", flush=True)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
