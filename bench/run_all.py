"""Run every benchmark against its named peer, each in its own process, as RESULTS.md records them.

    python bench/run_all.py            # all of them (the 1M-pair runs take a while)
    python bench/run_all.py training   # only those whose name contains "training"

Each script measures ours and the peer in the same run and prints the ratio; none is a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RUNS = {
    "preprocess (dedup + decontamination vs RewardBench CountVectorizer)": ["bench_preprocess.py"],
    "training (packed trainer vs TRL RewardTrainer matched and defaults)": ["bench_training.py", "--pairs", "48", "--steps", "6", "--threads", "1",
                                                                            "--warmup", "2", "--rounds", "2"],
    "scoring (engine vs reward-bench padded batches of 8)": ["bench_scoring.py", "--rmbench", "60", "--judgebench", "40"],
    "stage-2 scan (streaming shards vs in-memory script)": ["bench_stage2.py"],
    "curation at scale (peak RSS and time per step at 80k and 320k pairs; recall@k vs FAISS exact)": [
        "bench_scale.py", "--sizes", "80000,320000"],
    "curation quality (noisy / curated / curated+flipped / clean; vs cleanlab)": [
        "curation_quality.py", "--gold", "100", "--silver", "500", "--pool", "600", "--wild", "2000",
        "--test", "600", "--iterations", "2", "--human-per-iteration", "30"],
    "prompt injection flip rates": ["injection_flips.py", "--local-pairs", "4"],
    "hostile ingest memory (0.4 MB .json.gz bomb vs a normal file of the same size)": ["bench_hostile_ingest.py"],
}


def main(argv: list[str]) -> int:
    wanted = [w.lower() for w in argv]
    failed = []
    for name, cmd in RUNS.items():
        if wanted and not any(w in name.lower() for w in wanted):
            continue
        print(f"\n=== {name}\n$ python bench/{' '.join(cmd)}", flush=True)
        if subprocess.run([sys.executable, str(BENCH / cmd[0]), *cmd[1:]]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
