"""Peak memory of `rewardops ingest` on a decompression bomb vs a normal file of the same size.

The peer is ingest of a normal 0.48 MB `.json.gz` (the LLaMA-Factory DPO demo, ../shared/data).
The bomb is a 0.4 MB `.json.gz` JSON list whose middle record holds a 400 MiB string. Each run
is a fresh subprocess; its peak RSS comes from ru_maxrss. The script prints the ratios to the
peer (the target is at most 1.5x): the bomb with the default decompressed-byte cap (a file fault
naming the file) and with the cap raised past it (the file is streamed and the huge record is
quarantined).

    python bench/bench_hostile_ingest.py
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(os.environ.get("REWARDOPS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
RUN = """
import json, resource, sys
from rewardops.data.ingest import ingest
report = ingest([sys.argv[1]], sys.argv[2], keep_partial=True, **json.loads(sys.argv[3]))
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "faults": len(report.info.get("file_faults", []))}))
"""


def _peak(src: Path, out: Path, **kw: object) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN, str(src), str(out), json.dumps(kw)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        normal = root / "normal.json.gz"
        normal.write_bytes(gzip.compress((SHARED / "data" / "llama-factory" / "dpo_en_demo.json").read_bytes(), 9))
        bomb = root / "bomb.json.gz"
        record = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}
        with gzip.open(bomb, "wt", encoding="utf-8", compresslevel=9) as fh:
            fh.write("[" + json.dumps(record) + ', {"prompt": "p", "rejected": "r", "chosen": "')
            for _ in range(400):
                fh.write("a" * (1 << 20))
            fh.write('"}, ' + json.dumps(record) + "]")
        peer = _peak(normal, root / "o1")
        capped = _peak(bomb, root / "o2")
        streamed = _peak(bomb, root / "o3", max_decompressed_bytes=401 << 20)
        print(f"normal  {normal.stat().st_size / 1e6:.2f} MB: peak {peer['peak_mib']:.0f} MiB (peer)")
        for name, got in (("bomb, default cap (file fault)", capped), ("bomb, cap raised (streamed)", streamed)):
            print(f"{name:32s} {bomb.stat().st_size / 1e6:.2f} MB: peak {got['peak_mib']:.0f} MiB, "
                  f"{got['peak_mib'] / peer['peak_mib']:.2f}x the peer (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
