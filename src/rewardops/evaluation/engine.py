"""Batched, deterministic reward inference with a score cache.

How a response is scored (the same way training reads it; the model card's usage):
  rendering.render_messages(tokenizer, prompt + [assistant response]) -> token ids
  -> (left-truncated to max_length, counted) -> the backbone -> hidden state of the LAST REAL
  token (explicit gather, right padding) -> the `score` head.

Why it is fast: each prompt is encoded once for all of its responses (shared prefix, below);
sequences are sorted by length and cut into batches under a token budget, so almost no compute
goes to padding; identical sequences are scored once; and every score is cached by (model
fingerprint, example id), so a re-run does no forward pass at all.

Shared prefix (on by default where the backbone supports it, `rewardops.attention`): the responses
of one item (RB2's 4-way rows, RM-Bench's 6, RMB and PPE best-of-N lists, BoN curves) share their
rendered prompt tokens, so an item is one block `[prompt | response_0 | ... | response_N-1]` of a
packed row (no padding), each response seeing the prompt and itself with positions continuing from
the prompt's end: the score of every response is the one of `[prompt | response]` alone. An item
larger than the batch limits is split into blocks that each repeat the prompt; an item whose
responses share no token is scored in the plain layout. `shared_prefix=False` is the padded path.

Why it is deterministic: right padding under the causal mask never changes what the real tokens
attend to (so no padding mask is needed at all), and the reward is gathered at the known last position rather than found by searching
for pad ids, so a score does not depend on what it was batched with (fp32 on CPU; bf16 on GPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rewardops.attention import (
    Block, RowLayout, common_prefix, packed_hidden, register_packed_attention,
    supports_shared_prefix,
)
from rewardops.evaluation.cache import ScoreCache, token_digest
from rewardops.evaluation.items import EvalItem
from rewardops.evaluation.modelref import ModelRef, model_fingerprint, resolve_model
from rewardops.rendering import render_messages
from rewardops.errors import ConfigError, DataError

log = logging.getLogger("rewardops.evaluation")

DEFAULT_MAX_LENGTH = 16_384
# Encoder classifiers pool a [CLS] token and attend both ways; the last-token, causal reading
# below is only right for decoder-only reward models (every SRv2 backbone is one).
BIDIRECTIONAL = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "modernbert"}


class RewardScorer(Protocol):
    """Anything that turns token-id sequences into one scalar reward each."""

    fingerprint: str

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> list[float]: ...


@dataclass
class EngineStats:
    sequences: int = 0  # sequences requested
    cached: int = 0  # served from the cache
    deduplicated: int = 0  # identical to another sequence of the same call
    forward_batches: int = 0
    forwarded_sequences: int = 0
    real_tokens: int = 0  # tokens of forwarded sequences
    padded_tokens: int = 0  # batch slots actually computed (real + padding - shared)
    shared_tokens: int = 0  # prompt tokens not encoded again thanks to the shared-prefix layout
    shared_items: int = 0  # item blocks forwarded in the shared-prefix layout
    truncated: int = 0  # sequences longer than max_length, left-truncated
    forward_seconds: float = 0.0
    tokenize_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["real_tokens_per_second"] = self.real_tokens / self.forward_seconds if self.forward_seconds else None
        computed = self.real_tokens - self.shared_tokens
        d["padding_fraction"] = 1 - computed / self.padded_tokens if self.padded_tokens else 0.0
        return d


def plan_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest-first into batches of at most `batch_size` sequences and at most
    `max_batch_tokens` padded tokens (a single longer sequence still gets its own batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= batch_size or (len(current) + 1) * width > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class HFRewardModel:
    """A Hugging Face `*ForSequenceClassification` reward model (num_labels=1)."""

    def __init__(
        self,
        ref: ModelRef,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        shared_prefix: bool | str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.ref = ref
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        on_gpu = self.device.startswith("cuda")
        self.dtype_name = dtype or ("bfloat16" if on_gpu else "float32")
        torch_dtype = getattr(torch, self.dtype_name)
        self.tokenizer = AutoTokenizer.from_pretrained(ref.tokenizer_dir)
        kwargs: dict[str, Any] = {"dtype": torch_dtype, "num_labels": 1}
        if on_gpu:
            kwargs["attn_implementation"] = "sdpa"
        self.model = AutoModelForSequenceClassification.from_pretrained(ref.model_dir, **kwargs).to(self.device).eval()
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens or (131_072 if on_gpu else 16_384)
        self.max_length = max_length
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.fingerprint = model_fingerprint(ref, dtype=self.dtype_name, max_length=max_length)
        self.stats = EngineStats()
        if self.model.config.model_type in BIDIRECTIONAL:
            raise DataError(f"{ref.model_dir}: {self.model.config.model_type} is an encoder; only decoder-only reward models are supported")
        self._base = getattr(self.model, self.model.base_model_prefix)
        self._head = getattr(self.model, "score", None)
        if self._head is None:
            raise DataError(f"{ref.model_dir}: {type(self.model).__name__} has no `score` head; not a reward model")
        reason = supports_shared_prefix(self.model.config)
        if shared_prefix is True and reason is not None:
            raise ConfigError(f"{ref.model_dir}: shared_prefix=True but the model cannot encode a prompt once ({reason})")
        self.shared_prefix = shared_prefix is True or (shared_prefix == "auto" and reason is None)
        # FlexAttention's fused kernel on CUDA; per-block sdpa on CPU (rewardops.attention)
        self.packed_backend = "flex" if on_gpu else "segments"

    def render(self, messages: list[dict[str, str]]) -> list[int]:
        ids = render_messages(self.tokenizer, messages)
        if len(ids) > self.max_length:
            # keep the end: the reward is read at the last token of the response
            self.stats.truncated += 1
            ids = ids[-self.max_length :]
        return ids

    def score_ids(self, sequences: Sequence[Sequence[int]], on_batch: Any = None) -> list[float]:
        import torch

        out = [0.0] * len(sequences)
        lengths = [len(s) for s in sequences]
        if any(n == 0 for n in lengths):
            raise ValueError("cannot score an empty token sequence")
        for batch in plan_batches(lengths, self.batch_size, self.max_batch_tokens):
            width = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.tensor(sequences[i], dtype=torch.long)
            last = torch.tensor([lengths[i] - 1 for i in batch])
            start = time.perf_counter()
            with torch.inference_mode():
                # No attention mask on purpose: padding sits to the right, and under the causal mask
                # a real token never attends to a later position, so pads cannot change any real
                # token's state; only the pads' own (discarded) outputs differ. Leaving the mask
                # out lets SDPA take its fused causal kernel instead of materialising a T x T mask.
                hidden = self._base(input_ids=ids.to(self.device)).last_hidden_state
                picked = hidden[torch.arange(len(batch), device=hidden.device), last.to(hidden.device)]
                rewards = self._head(picked).float()[:, 0].cpu().tolist()
            self.stats.forward_seconds += time.perf_counter() - start
            self.stats.forward_batches += 1
            self.stats.forwarded_sequences += len(batch)
            self.stats.real_tokens += sum(lengths[i] for i in batch)
            self.stats.padded_tokens += len(batch) * width
            for row, i in enumerate(batch):
                out[i] = rewards[row]
            if on_batch is not None:
                on_batch(batch, [rewards[r] for r in range(len(batch))])
        return out

    def plan_blocks(self, sequences: Sequence[Sequence[int]], groups: Sequence[Sequence[int]]) -> list[tuple[int, list[int]]]:
        """(prefix length, sequence indices) per block: each group (the responses of one prompt) is
        one block, split where it would pass `batch_size` responses or `max_batch_tokens` tokens (each
        part repeating the prefix); the prefix is the group's, so a block never depends on batching."""
        blocks: list[tuple[int, list[int]]] = []
        for group in groups:
            prefix = common_prefix([sequences[i] for i in group])
            if not prefix:
                blocks += [(0, [i]) for i in group]
                continue
            current: list[int] = []
            tokens = prefix
            # longest first: a block's responses run as one padded batch, so alike lengths waste least
            for i in sorted(group, key=lambda i: (-len(sequences[i]), i)):
                n = len(sequences[i]) - prefix
                if current and (len(current) >= self.batch_size or tokens + n > self.max_batch_tokens):
                    blocks.append((prefix, current))
                    current, tokens = [], prefix
                current.append(i)
                tokens += n
            blocks.append((prefix, current))
        return blocks

    def score_groups(self, sequences: Sequence[Sequence[int]], groups: Sequence[Sequence[int]],
                     on_batch: Any = None) -> list[float]:
        """Scores of `sequences`, each group of indices (one prompt's responses) encoded with its
        prompt once, in packed rows of blocks; `on_batch(indices, rewards)` as `score_ids`."""
        if not self.shared_prefix:
            return self.score_ids(sequences, on_batch)
        lengths = [len(s) for s in sequences]
        if any(n == 0 for n in lengths):
            raise ValueError("cannot score an empty token sequence")
        out = [0.0] * len(sequences)
        blocks = self.plan_blocks(sequences, groups)
        sizes = [p + sum(lengths[i] - p for i in idx) for p, idx in blocks]
        # rows: blocks longest first under the token budget and `batch_size` responses (a single
        # larger block still gets its own row)
        rows: list[list[int]] = []
        current: list[int] = []
        tokens = count = 0
        for b in sorted(range(len(blocks)), key=lambda b: (-sizes[b], b)):
            n_resp = len(blocks[b][1])
            if current and (tokens + sizes[b] > self.max_batch_tokens or count + n_resp > self.batch_size):
                rows.append(current)
                current, tokens, count = [], 0, 0
            current.append(b)
            tokens += sizes[b]
            count += n_resp
        if current:
            rows.append(current)
        # the packed kernel only while packed rows run: the model stays a plain HF model otherwise
        plain_attention = self.model.config._attn_implementation
        self.model.set_attn_implementation(register_packed_attention())
        try:
            self._forward_rows(sequences, lengths, blocks, rows, out, on_batch)
        finally:
            self.model.set_attn_implementation(plain_attention)
        return out

    def _forward_rows(self, sequences, lengths, blocks, rows, out, on_batch) -> None:  # noqa: ANN001
        import torch

        for row in rows:
            ids: list[int] = []
            layout_blocks = []
            order: list[int] = []
            for b in row:
                prefix, idx = blocks[b]
                ids += sequences[idx[0]][:prefix]
                for i in idx:
                    ids += sequences[i][prefix:]
                layout_blocks.append(Block(prefix, tuple(lengths[i] - prefix for i in idx)))
                order += idx
                self.stats.shared_tokens += prefix * (len(idx) - 1)
                self.stats.shared_items += 1 if prefix else 0
            layout = RowLayout(layout_blocks)
            start = time.perf_counter()
            with torch.inference_mode():
                input_ids = torch.tensor(ids, dtype=torch.long, device=self.device)
                hidden = packed_hidden(self._base, input_ids, layout, self.packed_backend)
                picked = hidden.index_select(0, layout.last_index().to(hidden.device))
                rewards = self._head(picked).float()[:, 0].cpu().tolist()
            self.stats.forward_seconds += time.perf_counter() - start
            self.stats.forward_batches += 1
            self.stats.forwarded_sequences += len(order)
            self.stats.real_tokens += sum(lengths[i] for i in order)
            self.stats.padded_tokens += layout.length
            for i, r in zip(order, rewards):
                out[i] = r
            if on_batch is not None:
                on_batch(order, rewards)


@dataclass
class ScoreEngine:
    """Scores benchmark items through a reward model, the cache and the progress display.

    Items are processed in chunks of about `chunk_sequences` responses, so memory holds one
    chunk's token ids, never a whole benchmark's (PPE-Correctness alone is ~80k responses)."""

    scorer: HFRewardModel
    cache: ScoreCache | None = None
    show_progress: bool = True
    chunk_sequences: int = 8192
    stats: EngineStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = self.scorer.stats

    @property
    def fingerprint(self) -> str:
        return self.scorer.fingerprint

    def score_items(self, items: Sequence[EvalItem], label: str = "scoring") -> dict[str, list[float]]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress = None
        task = None
        if self.show_progress:
            progress = Progress(
                TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("responses"),
                TimeRemainingColumn(), transient=True,
            )
            task = progress.add_task(label, total=sum(len(it.responses) for it in items))
            progress.start()

        def advance(n: int) -> None:
            if progress is not None:
                progress.update(task, advance=n)

        by_item: dict[str, list[float]] = {}
        try:
            chunk: list[EvalItem] = []
            size = 0
            for item in items:
                chunk.append(item)
                size += len(item.responses)
                if size >= self.chunk_sequences:
                    by_item.update(self._score_chunk(chunk, advance))
                    chunk, size = [], 0
            if chunk:
                by_item.update(self._score_chunk(chunk, advance))
        finally:
            if progress is not None:
                progress.stop()
        return by_item

    def _score_chunk(self, items: list[EvalItem], advance) -> dict[str, list[float]]:
        keys: list[str] = []
        seqs: list[list[int]] = []
        start = time.perf_counter()
        for item in items:
            for i in range(len(item.responses)):
                keys.append(item.key(i))
                seqs.append(self.scorer.render(item.messages(i)))
        self.stats.tokenize_seconds += time.perf_counter() - start
        self.stats.sequences += len(seqs)
        digests = [token_digest(s) for s in seqs]
        results: dict[str, float] = self.cache.get_many(self.fingerprint, keys, digests) if self.cache else {}
        self.stats.cached += len(results)
        advance(len(results))

        # identical sequences (same digest) are forwarded once
        todo: dict[str, list[int]] = {}
        for idx, key in enumerate(keys):
            if key not in results:
                todo.setdefault(digests[idx], []).append(idx)
        self.stats.deduplicated += sum(len(v) - 1 for v in todo.values())
        unique = list(todo.items())

        def store(batch: list[int], rewards: list[float]) -> None:
            rows = []
            for j, reward in zip(batch, rewards):
                digest, idxs = unique[j]
                for idx in idxs:
                    results[keys[idx]] = reward
                    rows.append((keys[idx], digest, reward))
            if self.cache is not None:
                self.cache.put_many(self.fingerprint, rows)
            advance(len(rows))

        if unique:
            # the unique sequences of one item form a group: its prompt is encoded once
            item_of = [k for k, item in enumerate(items) for _ in item.responses]
            groups: dict[int, list[int]] = {}
            for j, (_, idxs) in enumerate(unique):
                groups.setdefault(item_of[idxs[0]], []).append(j)
            self.scorer.score_groups([seqs[idxs[0]] for _, idxs in unique], list(groups.values()), on_batch=store)
        by_item: dict[str, list[float]] = {}
        pos = 0
        for item in items:
            n = len(item.responses)
            by_item[item.id] = [results[k] for k in keys[pos : pos + n]]
            pos += n
        return by_item


def open_engine(
    model: str | Path,
    *,
    cache_path: Path | None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 32,
    max_batch_tokens: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    download_dir: Path | None = None,
    show_progress: bool = True,
    shared_prefix: bool | str = "auto",
) -> tuple[ScoreEngine, ModelRef]:
    ref = resolve_model(model, download_dir)
    scorer = HFRewardModel(
        ref, device=device, dtype=dtype, batch_size=batch_size, max_batch_tokens=max_batch_tokens, max_length=max_length,
        shared_prefix=shared_prefix,
    )
    cache = ScoreCache(cache_path) if cache_path is not None else None
    log.info("model %s (fingerprint %s) on %s in %s", ref.model_dir, scorer.fingerprint, scorer.device, scorer.dtype_name)
    return ScoreEngine(scorer, cache, show_progress), ref
