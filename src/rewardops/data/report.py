"""report.json: what happened to every input row of a run, per source.

Conservation: for every source and in total, rows_in == kept + duplicates + contaminated +
sum(quarantined.values()). `RunReport.check()` asserts it before the report is written.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SourceCounts:
    rows_in: int = 0
    kept: int = 0
    duplicates: int = 0
    contaminated: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

    def add(self, other: "SourceCounts") -> None:
        self.rows_in += other.rows_in
        self.kept += other.kept
        self.duplicates += other.duplicates
        self.contaminated += other.contaminated
        self.quarantined.update(other.quarantined)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def balanced(self) -> bool:
        return self.rows_in == self.kept + self.duplicates + self.contaminated + self.quarantined_total

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "kept": self.kept,
            "duplicates": self.duplicates,
            "contaminated": self.contaminated,
            "quarantined": dict(sorted(self.quarantined.items())),
        }


@dataclass
class RunReport:
    stage: str
    per_source: dict[str, SourceCounts] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> SourceCounts:
        return self.per_source.setdefault(name, SourceCounts())

    def totals(self) -> SourceCounts:
        total = SourceCounts()
        for counts in self.per_source.values():
            total.add(counts)
        return total

    def check(self) -> None:
        for name, counts in [*self.per_source.items(), ("total", self.totals())]:
            if not counts.balanced():
                raise AssertionError(f"report for {name!r} does not add up: {counts.to_dict()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            **self.totals().to_dict(),
            "per_source": {name: c.to_dict() for name, c in sorted(self.per_source.items())},
            **self.info,
        }

    def write(self, out_dir: str | Path) -> Path:
        """report.json, written atomically (temp file, fsync, rename), after checking the sums."""
        from rewardops.outputs import write_json_atomic

        self.check()
        return write_json_atomic(Path(out_dir) / "report.json", self.to_dict())


def read_report(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    return json.loads((p / "report.json" if p.is_dir() else p).read_text(encoding="utf-8"))
