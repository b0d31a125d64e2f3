"""The Bradley-Terry training loop, whole, in one place (in the spirit of a torchtune recipe).

    config -> validate -> distributed init -> backbone (+ distinct pad) -> packed attention
       (shared-prefix layout where the backbone supports it: each prompt encoded once per pair)
    -> DeepSpeed engine (deepspeed=true) or DDP / single process -> resume -> for each step:
       global batch (same pairs on every rank) -> encode -> token-budget micro-batches
       -> forward/backward with accumulation -> optimizer + LR schedule -> metrics -> checkpoint
    -> evaluate -> export (HF folder) -> MLflow (rank 0)

Loss scaling: each micro-batch contributes sum(per-pair loss) * world / pairs_in_global_batch,
and DDP/DeepSpeed average gradients over ranks, so the update equals one process taking the
mean over the whole global batch, whatever the micro-batching.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from rewardops.training.attention import (
    PackedRewardModel, resolve_backend, resolve_shared_prefix, use_packed_attention,
)
from rewardops.training.checkpoint import (
    CheckpointStore, Parts, harden_deepspeed, open_store, resume_checkpoint, run_fingerprint, save_checkpoint,
    trim_metrics,
)
from rewardops.training.config import ConfigError, TrainConfig, deepspeed_config, validate
from rewardops.training.data import EncodedPair, PairEncoder, PairSource, epoch_order
from rewardops.training.distributed import Launch, discover, export_torch_env, rendezvous, restore_env
from rewardops.training.export import export_model, gathered_state_dict
from rewardops.training.loss import PairStats, bradley_terry_loss
from rewardops.training.metrics import memory_metrics, non_embedding_params, peak_flops, throughput_metrics
from rewardops.training.packing import pack, plan_micro_batches


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    launch: Launch = field(default_factory=lambda: Launch("none"))
    previous_env: dict[str, str | None] = field(default_factory=dict)  # torch variables before we set them

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


@dataclass
class TrainState:
    """Where the run is: everything besides tensors that resume needs."""

    step: int = 0
    epoch: int = 0
    epoch_pos: int = 0  # pairs of the current epoch's order already consumed
    pairs_seen: int = 0
    tokens_seen: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class TrainResult:
    out: Path
    steps: int
    history: list[dict[str, float]]
    counts: dict[str, int]
    export_dir: Path | None = None
    eval: dict[str, Any] | None = None
    run_id: str | None = None
    registered_version: int | None = None
    launch: dict[str, Any] = field(default_factory=dict)  # launcher, world_size, ranks_per_node, nodes
    rank: int = 0


def init_distributed(config: TrainConfig, launch: Launch | None = None) -> DistEnv:
    """The process group for the launch `rewardops.training.distributed.discover()` found (see there)."""
    launch = rendezvous(launch or discover())
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", launch.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if config.deepspeed and not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    previous: dict[str, str | None] = {}
    if (launch.world_size > 1 or config.deepspeed) and not dist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        # env:// rendezvous from the discovered launch (DeepSpeed wants a process group even for one process)
        previous = export_torch_env(launch)
        if config.deepspeed:
            import deepspeed

            deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        else:
            dist.init_process_group(backend=backend)
    return DistEnv(launch.rank, launch.world_size, launch.local_rank, device, launch, previous)


def shutdown_distributed(env: DistEnv) -> None:
    """Leave the process group and put torch's variables back (a process may train again, as curation does)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    restore_env(env.previous_env)


def _barrier(env: DistEnv) -> None:
    if dist.is_initialized():
        dist.barrier()


def _all_sum(env: DistEnv, values: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and env.world > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def resolve_dtype(config: TrainConfig, device: torch.device) -> str:
    if config.dtype == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return config.dtype


def load_backbone(config: TrainConfig) -> tuple[Any, Any]:
    """(tokenizer, model) with one output, fp32 master weights and a pad token distinct from EOS."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardops.backbones import resolve_backbone
    from rewardops.rendering import ensure_distinct_pad

    path = resolve_backbone(config.backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    ensure_distinct_pad(tokenizer, model)
    model.config.use_cache = False
    return tokenizer, model


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Activation (gradient) checkpointing on every decoder layer, non-reentrant."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def freeze_lower_layers(model: torch.nn.Module, trainable: int) -> None:
    """Train only the top `trainable` decoder layers, the final norm and the score head."""
    from rewardops.training.attention import split_model

    base, head = split_model(model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise TypeError(f"{type(base).__name__} has no .layers; trainable_layers needs a decoder stack")
    for p in model.parameters():
        p.requires_grad_(False)
    keep = [head, *(list(layers)[len(layers) - trainable :] if trainable else [])]
    if getattr(base, "norm", None) is not None:
        keep.append(base.norm)
    for module in keep:
        for p in module.parameters():
            p.requires_grad_(True)


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    if config.schedule == "constant":
        return lambda step: 1.0
    warmup = int(round(config.warmup_ratio * total_steps))

    def linear(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

    return linear


def total_steps(config: TrainConfig, n_pairs: int) -> int:
    per_epoch = math.ceil(n_pairs / config.global_batch)
    steps = per_epoch * config.epochs
    return min(steps, config.max_steps) if config.max_steps else steps


def next_global_batch(state: TrainState, n_pairs: int, config: TrainConfig) -> np.ndarray:
    """Indices of the next global batch; advances the data position in `state`."""
    if state.epoch_pos >= n_pairs:
        state.epoch, state.epoch_pos = state.epoch + 1, 0
    order = epoch_order(n_pairs, config.seed, state.epoch)
    idx = order[state.epoch_pos : state.epoch_pos + config.global_batch]
    state.epoch_pos += len(idx)
    return idx


def require_usable_pairs(source: PairSource, encoder: PairEncoder, config: TrainConfig, chunk: int = 256) -> None:
    """ConfigError unless some pair survives the over-length / identical-pair policy: an empty or
    all-filtered dataset fails before step 1 (and registers nothing). Scans in epoch order and stops
    at the first usable pair, so a normal dataset costs one chunk."""
    n = len(source)
    if n == 0:
        raise ConfigError(
            f"data={config.data}: the dataset has no pairs, nothing to train (and nothing is registered); "
            "check the report and quarantine of the step that wrote it (ingest, preprocess or curation)"
        )
    probe = PairEncoder(encoder.tokenizer, config.max_length, config.truncation, config.drop_identical, None)
    order = epoch_order(n, config.seed, 0)
    for start in range(0, n, chunk):
        idx = [int(i) for i in order[start : start + chunk]]
        if probe.encode_many(idx, source.take(idx)):
            return
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(probe.counts.items()) if k.startswith("dropped"))
    raise ConfigError(
        f"data={config.data}: all {n} pairs are filtered out before training ({reasons}); nothing to train "
        "(and nothing is registered): set truncation=truncate or raise max_length for over-length pairs, "
        "drop_identical=false for identical responses, or fix the data"
    )


class Trainer:
    def __init__(self, config: TrainConfig, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        launch = discover()  # launcher variables missing or contradicting: a message before step 1
        validate(config, world_size=launch.world_size)  # before any process group or model: bad input fails fast
        self.env = init_distributed(config, launch)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        self.dtype = resolve_dtype(config, self.env.device)
        self.tokenizer, self.model = load_backbone(config)
        self.shared_prefix = resolve_shared_prefix(config.shared_prefix, self.model.config, config.attention)
        self.backend = resolve_backend(config.attention, self.env.device, self.shared_prefix)
        use_packed_attention(self.model)
        if config.trainable_layers is not None:
            freeze_lower_layers(self.model, config.trainable_layers)
        if config.gradient_checkpointing:
            enable_checkpointing(self.model)
        self.n_params = non_embedding_params(self.model)
        self.source = PairSource(config.data)
        self.encoder = PairEncoder(
            self.tokenizer, config.max_length, config.truncation, config.drop_identical, config.margin_key,
            shared_prefix=self.shared_prefix,
        )
        require_usable_pairs(self.source, self.encoder, config)
        self.total_steps = total_steps(config, len(self.source))
        self.fingerprint = run_fingerprint(config, total_steps=self.total_steps, world=self.env.world, dtype=self.dtype)
        self.state = TrainState()
        self.store: CheckpointStore = open_store(config.checkpoint_location, self.out / ".checkpoint-staging" / f"rank{self.env.rank}")
        self._build_engine()

    # -- setup ------------------------------------------------------------------------------

    def _build_engine(self) -> None:
        c, env = self.config, self.env
        self.module = PackedRewardModel(self.model, self.backend)
        params = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=c.lr, betas=(c.adam_beta1, c.adam_beta2), eps=c.adam_eps, weight_decay=c.weight_decay,
            **({"fused": True} if env.device.type == "cuda" and not c.deepspeed else {}),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(c, self.total_steps))
        self.engine = None
        if c.deepspeed:
            import deepspeed

            ds_config = deepspeed_config(c, env.world)
            ds_config["bf16"]["enabled"] = self.dtype == "bf16"
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=self.module, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
            )
            harden_deepspeed(self.engine)  # its checkpoints are read with weights_only=True
            self.wrapped = self.engine
        else:
            self.module.to(env.device)
            self.optimizer, self.scheduler = optimizer, scheduler
            if env.distributed:
                from torch.nn.parallel import DistributedDataParallel as DDP

                self.wrapped = DDP(self.module, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
            else:
                self.wrapped = self.module

    def _autocast(self):
        if self.dtype == "bf16" and not self.config.deepspeed:
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return nullcontext()

    # -- checkpoints ------------------------------------------------------------------------

    def _parts(self) -> Parts:
        return Parts(self.module.model, self.optimizer, self.scheduler, self.engine, self.env.rank,
                     self.env.is_main, lambda: _barrier(self.env), self.env.device)

    def save_checkpoint(self) -> str:
        """No pickle, atomic, `latest` last (rewardops.training.checkpoint)."""
        return save_checkpoint(self.store, self.state.step, self._parts(), state=json.loads(self.state.to_json()),
                               config=self.config.to_dict(), fingerprint=self.fingerprint,
                               keep=self.config.keep_checkpoints)

    def maybe_resume(self) -> str | None:
        """The newest complete checkpoint of this run (its fingerprint must match unless resume=force)."""
        if self.env.is_main:
            self.store.clean_partial()
        found = None
        if self.config.resume:
            found = resume_checkpoint(self.store, self._parts(), self.fingerprint, force=self.config.resume == "force")
        if found is not None:
            self.state = TrainState(**found[1])
            self.encoder.counts.update(self.state.counts)
        if self.env.is_main:  # lines of steps past the checkpoint are redone now: no step is logged twice
            trim_metrics(self.out / "metrics.jsonl", self.state.step)
        return found[0] if found is not None else None

    # -- one step ---------------------------------------------------------------------------

    def _micro_step(self, micro: list[EncodedPair], n_global: int, last: bool) -> tuple[PairStats, int]:
        env, c = self.env, self.config
        batch = pack(micro if micro else [EncodedPair(-1, [0], [0])]).to(env.device)
        sync = nullcontext()
        if self.engine is None and env.distributed and not last:
            sync = self.wrapped.no_sync()
        with sync:
            with self._autocast():
                rewards = self.wrapped(batch.input_ids, batch.position_ids, batch.cu_seq_lens, batch.max_seq_len,
                                       batch.layout)
            loss_sum, stats = bradley_terry_loss(rewards, batch.margins if c.margin_key else None, c.center_rewards_coef)
            scale = env.world / max(n_global, 1)
            if not micro:  # a rank with nothing to do still joins the collectives, contributing zero
                loss_sum, stats = loss_sum * 0.0, PairStats()
            loss = loss_sum * scale
            if self.engine is not None:
                self.engine.set_gradient_accumulation_boundary(last)
                self.engine.backward(loss, scale_wrt_gas=False)
            else:
                loss.backward()
        return stats, batch.tokens if micro else 0

    def train_step(self) -> dict[str, float]:
        c, env = self.config, self.env
        t0 = time.perf_counter()
        idx = next_global_batch(self.state, len(self.source), c)
        pairs = self.encoder.encode_many([int(i) for i in idx], self.source.take(idx))
        plan = plan_micro_batches(pairs, c.micro_batch_tokens, env.world, c.micro_batch_size)[env.rank]
        if not plan:
            plan = [[]]
        stats, tokens = PairStats(), 0
        self.wrapped.train()
        for i, micro in enumerate(plan):
            s, t = self._micro_step(micro, len(pairs), i == len(plan) - 1)
            stats.add(s)
            tokens += t
        lr = self.scheduler.get_last_lr()[0]
        if self.engine is not None:
            self.engine.step()
            grad_norm = float(self.engine.get_global_grad_norm() or 0.0)
        else:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), c.grad_clip))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        seconds = time.perf_counter() - t0
        totals = _all_sum(env, torch.cat([stats.as_tensor(), torch.tensor([tokens], dtype=torch.float64)]))
        global_stats, global_tokens = PairStats.from_tensor(totals[:6]), int(totals[6])
        self.state.step += 1
        self.state.pairs_seen += global_stats.pairs
        self.state.tokens_seen += global_tokens
        self.state.counts = dict(self.encoder.counts)
        metrics = {f"train/{k}": v for k, v in global_stats.summary().items()}
        metrics.update({
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "train/pairs": global_stats.pairs,
            "train/micro_batches": len(plan),
        })
        peak = peak_flops(env.device)
        metrics.update({f"perf/{k}": v for k, v in throughput_metrics(global_tokens, global_tokens, seconds, env.world, self.n_params, peak).items()})
        metrics["perf/pairs_per_s"] = global_stats.pairs / max(seconds, 1e-9)  # the shared-prefix layout's gain shows here
        metrics.update({f"data/{k}": float(v) for k, v in self.encoder.counts.items()})
        return metrics

    # -- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, path: str, limit: int | None = None) -> dict[str, Any]:
        """Pairwise accuracy (overall and per task category) on a dataset folder."""
        source = PairSource(path)
        n = len(source) if not limit else min(limit, len(source))
        indices = list(range(n))
        raw = source.take(indices)
        encoder = PairEncoder(self.tokenizer, self.config.max_length, self.config.truncation, drop_identical=False,
                              shared_prefix=self.shared_prefix)
        encoded = encoder.encode_many(indices, raw)
        category = {i: (p.task_category or "unknown") for i, p in zip(indices, raw)}
        module = self.engine.module if self.engine is not None else self.module
        module.eval()
        per_cat: dict[str, list[float]] = {}
        margins = []
        for micro in plan_micro_batches(encoded, self.config.micro_batch_tokens, 1)[0]:
            batch = pack(micro).to(self.env.device)
            with self._autocast():
                r = module(batch.input_ids, batch.position_ids, batch.cu_seq_lens, batch.max_seq_len, batch.layout)
            diff = (r[:, 0] - r[:, 1]).float().cpu()
            for p, d in zip(micro, diff.tolist()):
                per_cat.setdefault(category[p.index], []).append(1.0 if d > 0 else 0.5 if d == 0 else 0.0)
                margins.append(d)
        allv = [v for vs in per_cat.values() for v in vs]
        return {
            "accuracy": float(np.mean(allv)) if allv else float("nan"),
            "pairs": len(allv),
            "margin": float(np.mean(margins)) if margins else float("nan"),
            "per_category": {k: {"accuracy": float(np.mean(v)), "pairs": len(v)} for k, v in sorted(per_cat.items())},
            "skipped": dict(encoder.counts),
        }

    # -- the loop ---------------------------------------------------------------------------

    def fit(self, tracker: Any = None) -> TrainResult:
        c, env = self.config, self.env
        resumed = self.maybe_resume()
        history: list[dict[str, float]] = []
        log_path = self.out / "metrics.jsonl"
        progress = _progress(self.progress and env.is_main, self.total_steps, self.state.step, resumed, c.size)
        with progress as bar:
            while self.state.step < self.total_steps:
                metrics = self.train_step()
                step = self.state.step
                history.append({"step": step, **metrics})
                if env.is_main:
                    with log_path.open("a") as fh:
                        fh.write(json.dumps({"step": step, **metrics}) + "\n")
                    if tracker is not None and (step % c.log_every == 0 or step == self.total_steps):
                        tracker.log_metrics({**metrics, **memory_metrics(env.device)}, step=step)
                    bar.update(step, metrics)
                if c.checkpoint_every and step % c.checkpoint_every == 0 and step < self.total_steps:
                    self.save_checkpoint()
        self.save_checkpoint()
        result = TrainResult(self.out, self.state.step, history, dict(self.encoder.counts),
                             launch=self.env.launch.record(), rank=self.env.rank)
        if c.eval_data:
            result.eval = self.evaluate(c.eval_data, c.eval_pairs)
            if env.is_main:
                (self.out / "eval.json").write_text(json.dumps(result.eval, indent=1))
                if tracker is not None:
                    flat = {"eval/accuracy": result.eval["accuracy"], "eval/margin": result.eval["margin"]}
                    flat.update({f"eval/accuracy/{k}": v["accuracy"] for k, v in result.eval["per_category"].items()})
                    tracker.log_metrics(flat, step=self.state.step)
        if c.export:
            result.export_dir = self.export()
        return result

    def export(self) -> Path | None:
        module = self.engine.module if self.engine is not None else self.module
        sd = gathered_state_dict(module.model, self.config.zero_stage if self.config.deepspeed else 0)
        out = None
        if self.env.is_main:
            meta = {"config": self.config.to_dict(), "state": self.state.__dict__, "backend": self.backend,
                    **self.env.launch.record()}
            out = export_model(module.model, self.tokenizer, self.out / "model", sd, meta)
        _barrier(self.env)
        return out


class _NoBar:
    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def update(self, step: int, metrics: dict[str, float]) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, start: int, resumed: str | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        info = f"resumed from {resumed}" if resumed else ""
        self.task = self.progress.add_task("train", total=total, completed=start, info=info)

    def __enter__(self) -> "_RichBar":
        self.progress.start()
        return self

    def __exit__(self, *a: object) -> None:
        self.progress.stop()

    def update(self, step: int, m: dict[str, float]) -> None:
        info = (
            f"loss {m['train/loss']:.4f} acc {m['train/accuracy']:.3f} "
            f"lr {m['train/lr']:.2e} {m['perf/tokens_per_s']:.0f} tok/s"
        )
        self.progress.update(self.task, completed=step, info=info)


class _LineBar(_NoBar):
    """Progress as plain lines where no terminal redraws a bar (a KFP step, a log file): the first
    and last step, and one line at least every `every` seconds."""

    def __init__(self, total: int, start: int, resumed: str | None, label: str = "", every: float = 30.0) -> None:
        self.total, self.every, self.tag = total, every, f"[train {label}]" if label else "[train]"
        self.started = self.last = time.monotonic()
        self.start = start
        if resumed:
            print(f"{self.tag} resumed from {resumed} at step {start}/{total}", flush=True)

    def update(self, step: int, m: dict[str, float]) -> None:
        now = time.monotonic()
        if step not in (self.start + 1, self.total) and now - self.last < self.every:
            return
        self.last = now
        done = step - self.start
        eta = (now - self.started) / max(done, 1) * (self.total - step)
        print(f"{self.tag} step {step}/{self.total} loss {m['train/loss']:.4f} acc {100 * m['train/accuracy']:.1f}% "
              f"lr {m['train/lr']:.2e} {m['perf/tokens_per_s']:.0f} tok/s, about {eta:.0f}s left", flush=True)


def _progress(enabled: bool, total: int, start: int, resumed: str | None, label: str = "") -> Any:
    if not enabled:
        return _NoBar()
    import sys

    return _RichBar(total, start, resumed) if sys.stdout.isatty() else _LineBar(total, start, resumed, label)


def fit_tracked(trainer: Trainer) -> TrainResult:
    """Fit a built Trainer inside its MLflow run: parameters first, then fit (evaluation and export
    included), then the run's final tracking (model logging and registration). `rewardops.training.run`
    builds the Trainer, calls this and leaves the process group."""
    from rewardops.training.tracking import open_tracker, finish_tracking

    config = trainer.config
    with open_tracker(config, trainer.env.is_main) as tracker:
        if tracker is not None:
            tracker.log_params(config.to_dict())
            tracker.log_params({
                "resolved.world_size": trainer.env.world,
                "resolved.ranks_per_node": trainer.env.launch.local_world_size,
                "resolved.nodes": trainer.env.launch.nodes,
                "resolved.launcher": trainer.env.launch.launcher,
                "resolved.dtype": trainer.dtype,
                "resolved.attention_backend": trainer.backend,
                "resolved.shared_prefix": trainer.shared_prefix,
                "resolved.total_steps": trainer.total_steps,
                "resolved.train_pairs": len(trainer.source),
                "resolved.non_embedding_params": trainer.n_params,
            })
        result = trainer.fit(tracker)
        if tracker is not None:
            finish_tracking(tracker, config, result)
    return result
