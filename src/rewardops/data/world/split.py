"""Deterministic held-out split of the preference world.

The split unit is the pair's underlying item (`meta["group"]`: a fact, a code task, a safety
request, an arithmetic expression, an instruction topic x constraint set), hashed with a fixed
salt. All pairs about one item land on the same side, so an eval pair never asks something a
train pair already answered. The split does not depend on the seed or the noise level.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from rewardops.data.schema import PreferencePair

EVAL_FRACTION = 0.1
_SALT = "rewardops-world-split-v1"


def split_key(pair: PreferencePair) -> str:
    group = (pair.meta or {}).get("group")
    return str(group) if group else pair.id


def world_split(pair: PreferencePair, eval_fraction: float = EVAL_FRACTION) -> Literal["train", "eval"]:
    """"eval" for about `eval_fraction` of the items (and all their pairs), else "train"."""
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction!r}")
    digest = hashlib.blake2b(f"{_SALT}:{split_key(pair)}".encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < eval_fraction else "train"
