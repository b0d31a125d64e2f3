"""Stage 2 in a process the fault tests SIGKILL: `python stage2_worker.py MODE POOL OUT DELAY [TRACE]`.

MODE `atomic`: the step function's shape (rewardops.curation.steps.stage2_shard): the filter runs
inside `rewardops.outputs.atomic_output(OUT)`. MODE `direct`: `Stage2Filter.run` straight into OUT
(per-shard markers, crash-safe resume). The RMs are deterministic hash scorers that sleep DELAY
seconds per batch so a random kill lands mid-run; each batch appends a line to TRACE.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from rewardops.curation.stage2 import Stage2Config, Stage2Filter

SHARD_KIND = "curation-stage2"


class HashScorer:
    """p(chosen better) from a hash of (name, pair id): fixed per pair, spread over (0, 1)."""

    def __init__(self, name: str, delay: float = 0.0, trace: Path | None = None) -> None:
        self.name, self.delay, self.trace = name, delay, trace

    def score_pairs(self, pairs):
        if self.trace is not None:
            with open(self.trace, "a") as f:
                f.write(f"{len(pairs)}\n")
        time.sleep(self.delay)
        return [int.from_bytes(hashlib.blake2b(f"{self.name}:{p.id}".encode(), digest_size=4).digest(), "big") / 2**32
                for p in pairs]


def make_filter(delay: float = 0.0, trace: Path | None = None) -> Stage2Filter:
    return Stage2Filter(HashScorer("best", delay, trace), HashScorer("gold"), Stage2Config(band=0.2, batch_size=4), None)


def run(mode: str, pool: Path, out: Path, delay: float = 0.0, trace: Path | None = None) -> dict:
    flt = make_filter(delay, trace)
    if mode == "atomic":
        from rewardops.outputs import atomic_output

        with atomic_output(out, inputs=[pool], kind=SHARD_KIND) as tmp:
            return flt.run(pool, tmp, progress=False)
    return flt.run(pool, out, progress=False)


if __name__ == "__main__":
    mode, pool, out, delay = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    run(mode, pool, out, delay, Path(sys.argv[5]) if len(sys.argv) > 5 else None)
