"""generate_world: the deterministic, streaming generator of the preference world.

Pair `index` of seed `seed` depends on (seed, index) alone: its content comes from a private
RNG seeded by them, and its label-noise draw from a separate hash, so the same pair has the
same content at every noise level (only the flip differs), any slice of the stream can be
produced on its own (`world_pair`, `start=`), and nothing is ever held in memory.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from random import Random

from rewardops.data.schema import LabelSource, Message, PreferencePair
from rewardops.data.world.code_tasks import build_code
from rewardops.data.world.common import OPENERS, SYSTEM_PROMPTS, Draft, FamilyBuilder, pick, weighted
from rewardops.data.world.factual import build_factual
from rewardops.data.world.instructions import build_instruction
from rewardops.data.world.math_tasks import build_math
from rewardops.data.world.noise import CONTROVERSIALITY_MIX, FAMILY_WEIGHTS, flip_rate_table
from rewardops.data.world.safety import build_safety
from rewardops.data.world.style import build_style_trap

SOURCE = "world"
BUILDERS: dict[str, FamilyBuilder] = {
    "math": build_math, "factual": build_factual, "instruction_following": build_instruction,
    "code": build_code, "safety": build_safety, "style_trap": build_style_trap,
}
_FAMILIES = list(FAMILY_WEIGHTS)
_CUM = list(itertools.accumulate(FAMILY_WEIGHTS[f] for f in _FAMILIES))


def world_id(seed: int, index: int) -> str:
    return f"{SOURCE}-s{seed}-{index:08d}"


def _unit(*parts: object) -> float:
    """A uniform [0, 1) number from a stable hash of `parts` (not Python's salted hash())."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _family(u: float) -> str:
    x = u * _CUM[-1]
    for fam, edge in zip(_FAMILIES, _CUM):
        if x < edge:
            return fam
    return _FAMILIES[-1]


def draft_at(seed: int, index: int) -> tuple[str, Draft, list[Message]]:
    """The family, noise-free draft and conversation prefix of pair `index`."""
    rng = Random(f"world:{seed}:{index}")
    family = _family(rng.random())
    controversiality = weighted(rng, CONTROVERSIALITY_MIX[family])
    draft = BUILDERS[family](rng, controversiality)
    conversation: list[Message] = []
    if rng.random() < 0.25:
        conversation.append(Message("system", pick(rng, SYSTEM_PROMPTS)))
    if rng.random() < 0.1:
        user, assistant = pick(rng, OPENERS)
        conversation += [Message("user", user), Message("assistant", assistant)]
    conversation.append(Message("user", draft.prompt))
    return family, draft, conversation


def world_pair(seed: int, index: int, noise: float = 0.1, rates: dict[str, dict[str, float]] | None = None) -> PreferencePair:
    """Pair `index` of the world with this seed; identical to the `index`-th item of generate_world."""
    family, draft, conversation = draft_at(seed, index)
    rates = rates if rates is not None else flip_rate_table(noise)
    rate = rates[family][draft.controversiality]
    flipped = _unit("noise", seed, index) < rate
    chosen, rejected = (draft.rejected, draft.chosen) if flipped else (draft.chosen, draft.rejected)
    return PreferencePair(
        id=world_id(seed, index),
        source=SOURCE,
        conversation=conversation,
        chosen=chosen,
        rejected=rejected,
        task_category=draft.task_category,
        objectivity=draft.objectivity,
        controversiality=draft.controversiality,
        desired_attributes=draft.desired_attributes,
        annotation_guideline=draft.annotation_guideline,
        label_source=LabelSource.ORIGINAL.value,
        truth_chosen_better=not flipped,
        meta={
            "family": family,
            "template": draft.template,
            "group": draft.group,
            "flip_rate": round(rate, 6),
            "verifier": draft.verifier,
        },
    )


def generate_world(n: int, noise: float = 0.1, seed: int = 0, start: int = 0) -> Iterator[PreferencePair]:
    """Stream `n` preference-world pairs (indices start .. start+n-1) for this seed.

    Each pair's correct label is known by construction (`truth_chosen_better`) and checkable
    by `verify_pair`; `noise` is the mean share of flipped labels (see `noise.flip_rate_table`).
    Deterministic: the same (seed, index) always gives the same pair and id.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be a non-negative integer, got {start!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rates = flip_rate_table(noise)  # validates noise
    return (world_pair(seed, i, noise, rates) for i in range(start, start + n))
