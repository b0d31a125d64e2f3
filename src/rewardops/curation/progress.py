"""Progress lines for long curation work (embedding, retrieval, judging, people): through the
`rewardops.curation` logger, at the start, at least once per `every_s` seconds while work goes
on, and at the end, so a long step is never silent for more than a minute."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("rewardops.curation")
EVERY_S = 30.0


def ensure_handler() -> None:
    """A plain stderr handler when nobody configured logging (the CLI, a KFP pod), so the lines show."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class Ticker:
    """`what`: done/total lines, rate-limited to one per `every_s` seconds (plus the first and last)."""

    def __init__(self, what: str, total: int | None = None, unit: str = "pairs", every_s: float = EVERY_S) -> None:
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done = 0
        self.start = self._last = time.monotonic()
        of = f" of {total:,}" if total is not None else ""
        log.info("%s: starting (%s%s)", what, f"0{of}", f" {unit}" if unit else "")

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info("%s: %s", self.what, self._status(now))

    def _status(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.done:,}{of} {self.unit} in {elapsed:.0f} s ({self.done / elapsed:,.0f}/s)"

    def finish(self, note: str = "") -> None:
        log.info("%s: done, %s%s", self.what, self._status(time.monotonic()), f"; {note}" if note else "")
