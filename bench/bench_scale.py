"""Curation at scale: the chain (seed -> stage 1 -> final RMs -> stage 2 per shard -> merge) on the
generated world at growing pool sizes, each step in its own process so its peak RSS is its own.

Settings are the offline ones the scale issue measured with: simulated people and judges, the
hashed embedder and hashed BT RM, one stage-1 iteration, heuristic attributes, pool shards of at
most `--shard-size` pairs (at least 2). Per size it reports wall time and peak RSS per step
(stage 2: the largest shard's peak, the sum of the shards' wall times), and recall@k of the
retrieval index against FAISS exact search (`IndexFlatIP` over the same vectors) for the gold
queries stage 1 issued: strict (same ids) and tie-aware (every returned score >= the exact k-th
score; the world repeats prompts, so equal scores are common and either pair is a right answer).

`--peer-src DIR` also runs the same chain with another source tree (today's code: the commit
before this change, `git archive <rev> src | tar -x -C DIR`) at the smallest size and compares
the published curated / recycled / discarded sets pair for pair.

    .venv/bin/python bench/bench_scale.py --sizes 80000,320000 --work /tmp/scale
    .venv/bin/python bench/bench_scale.py --sizes 1280000 --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Each step runs as `python -c LAUNCH <args>`: the CLI, then the process's own VmHWM (peak RSS of
# its own image, from /proc) written to the file named by the env. (getrusage/wait4's ru_maxrss is
# not usable here: Linux carries the parent's high-water mark across fork + exec into the child.)
LAUNCH = """
import atexit, os, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(os.environ['BENCH_PEAK_FILE'], 'w').write(line.split()[1])
atexit.register(_peak)
from rewardops.cli import app
sys.argv = ['rewardops', *sys.argv[1:]]
app()
"""


def settings(shard_size: int, peer: bool = False) -> dict:
    s = {"profile": "demo", "annotator": "simulated:0.05", "judges": ["simulated:0.2"], "judge_samples": 1,
         "embedder": "hashed", "rm": "hashed-bt", "attributes": "heuristic", "iterations": 1, "pool_shards": 2}
    if not peer:
        s["pool_shard_size"] = shard_size
    return s


def run_step(name: str, args: list[str], env: dict, log: Path) -> dict:
    """One CLI step in a fresh process: wall seconds and that process's peak RSS (MB)."""
    peak = log.with_name("peak.txt")
    peak.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n$ rewardops {' '.join(args)}\n")
        out.flush()
        code = subprocess.call([sys.executable, "-c", LAUNCH, *args], env={**env, "BENCH_PEAK_FILE": str(peak)},
                               stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{name} failed (exit {code}); see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(int(peak.read_text()) / 1024, 1)}


def make_world(n: int, out: Path) -> float:
    from rewardops.data.shards import write_pairs
    from rewardops.data.world import generate_world

    t0 = time.perf_counter()
    if not (out / "_manifest.json").exists():
        write_pairs(generate_world(n, noise=0.25, seed=0), out, shard_size=100_000)
    return time.perf_counter() - t0


def chain(pre: Path, work: Path, s: dict, env: dict, log: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(s))
    opt = ["--settings", str(work / "settings.json")]
    steps = {
        "seed": run_step("seed", ["curate", "seed", str(pre), "--out", str(work / "seed"), *opt], env, log),
        "stage1": run_step("stage1", ["curate", "stage1", "--state", str(work / "seed"), "--out", str(work / "s1"), *opt],
                           env, log),
        "final_rms": run_step("final-rms", ["curate", "final-rms", str(work / "s1"), str(work / "rms"), *opt], env, log),
    }
    n_shards = len(list((work / "seed" / "pool").glob("part-*.parquet")))
    per = [run_step(f"stage2-{i}", ["curate", "stage2", "--state", str(work / "s1"), "--models", str(work / "rms"),
                                    "--out", str(work / "s2"), "--shard", str(i), *opt], env, log)
           for i in range(n_shards)]
    steps["stage2"] = {"wall_s": round(sum(p["wall_s"] for p in per), 2),
                       "peak_rss_mb": max(p["peak_rss_mb"] for p in per), "shards": n_shards,
                       "per_shard_wall_s": [p["wall_s"] for p in per]}
    steps["merge"] = run_step("merge", ["curate", "merge", "--state", str(work / "s1"), "--models", str(work / "rms"),
                                        "--stage2", str(work / "s2"), "--out", str(work / "sets"), *opt], env, log)
    return steps


def recall_at_k(work: Path, k: int) -> dict:
    """The gold queries of stage-1 iteration 1 against the seed's pool: PoolIndex vs FAISS exact."""
    import faiss

    from rewardops.curation.retrieval import HashedEmbedder, PoolIndex, pair_text
    from rewardops.data.shards import read_pairs

    seed = work / "seed"
    index = PoolIndex.open(seed / "pool", seed / "pool_vectors", HashedEmbedder(), embed_missing=False)
    gold = list(read_pairs(work / "s1" / "stage1" / "iter-00" / "gold"))
    q = HashedEmbedder().embed([pair_text(p) for p in gold])
    t0 = time.perf_counter()
    ours = index.search(q, k)
    ours_s = time.perf_counter() - t0
    flat = faiss.IndexFlatIP(index.dim)
    for f in index.files:
        for start in range(0, f.rows, 65_536):
            flat.add(f.read(start, min(f.rows, start + 65_536)))
    t0 = time.perf_counter()
    scores, nums = flat.search(q, k)
    faiss_s = time.perf_counter() - t0
    strict = tied = total = 0
    for row, srow, nrow in zip(ours, scores, nums):
        exact = {int(n) for n in nrow if n >= 0}
        kth = float(srow[-1])
        for shard, r, s in row:
            total += 1
            strict += int(index.offsets[shard]) + r in exact
            tied += s >= kth - 1e-5
    del flat
    return {"k": k, "queries": len(gold), "recall_strict": round(strict / total, 4),
            "recall_tie_aware": round(tied / total, 4), "ours_search_s": round(ours_s, 2),
            "faiss_flat_search_s": round(faiss_s, 2)}


def compare_sets(a: Path, b: Path) -> dict:
    from rewardops.data.shards import read_pairs

    out = {}
    for ours, peer in (("curated", "curated"), ("flipped", "flipped"), ("discarded", "discarded")):
        left = {p.id: (p.chosen, p.label_source) for p in read_pairs(a / ours)}
        right = {p.id: (p.chosen, p.label_source) for p in read_pairs(b / peer)}
        same = sum(1 for k, v in left.items() if right.get(k) == v)
        out[ours] = {"ours": len(left), "peer": len(right), "same_pair_same_label": same,
                     "only_ours": len(set(left) - set(right)), "only_peer": len(set(right) - set(left))}
    return out


def table(results: dict, pods: int = 32) -> str:
    """Markdown: per size and step wall time / peak RSS, the RSS ratio to the smallest size, and a
    linear projection to 40M pairs (time per pair of the largest size measured; fanned-out steps
    divided over `pods` pods)."""
    sizes = sorted(results, key=int)
    steps = ("seed", "stage1", "final_rms", "stage2", "merge")
    head = "| step | " + " | ".join(f"{int(n):,} pairs" for n in sizes) + \
        f" | peak RSS {int(sizes[-1]):,} / {int(sizes[0]):,} | 40M projection ({pods} pods for fan-outs) |"
    lines = [head, "|" + "---|" * (len(sizes) + 3)]
    big = results[sizes[-1]]
    for step in steps:
        cells = [f"{results[n]['steps'][step]['wall_s']:.0f} s / {results[n]['steps'][step]['peak_rss_mb']:.0f} MB"
                 for n in sizes]
        ratio = big["steps"][step]["peak_rss_mb"] / results[sizes[0]]["steps"][step]["peak_rss_mb"]
        per_pair = big["steps"][step]["wall_s"] / big["pairs"]
        if step == "final_rms":
            proj = "flat (trains on gold/silver)"
        else:
            seconds = per_pair * 40e6 / (pods if step == "stage2" else 1)
            proj = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
            proj += f", {big['steps'][step]['peak_rss_mb']:.0f} MB"
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {ratio:.2f}x | {proj} |")
    rec = " | ".join(f"{results[n]['recall']['recall_tie_aware']:.3f} ({results[n]['recall']['recall_strict']:.3f})"
                     for n in sizes)
    lines.append(f"| recall@{big['recall']['k']} tie-aware (strict) | {rec} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="80000,320000,1280000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rewardops-scale"))
    ap.add_argument("--shard-size", type=int, default=250_000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--peer-src", type=Path, default=None, help="a source tree to run the same chain with (smallest size)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_scale.json")
    ap.add_argument("--keep", action="store_true", help="keep each size's folders")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and stop")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    env = dict(os.environ)
    for n in [int(x) for x in args.sizes.split(",")]:
        root = args.work / str(n)
        log = root / "log.txt"
        root.mkdir(parents=True, exist_ok=True)
        world_s = make_world(n, root / "pre")
        shutil.rmtree(root / "ours", ignore_errors=True)
        steps = chain(root / "pre", root / "ours", settings(args.shard_size), env, log)
        entry = {"pairs": n, "world_s": round(world_s, 1), "steps": steps, "recall": recall_at_k(root / "ours", args.k),
                 "load_avg_1m": os.getloadavg()[0], "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        report = json.loads((root / "ours" / "sets" / "subsets.json").read_text()) \
            if (root / "ours" / "sets" / "subsets.json").exists() else {}
        entry["sets"] = report.get("sets")
        if args.peer_src is not None and n == min(int(x) for x in args.sizes.split(",")):
            shutil.rmtree(root / "peer", ignore_errors=True)
            penv = {**env, "PYTHONPATH": str(args.peer_src)}
            entry["peer_steps"] = chain(root / "pre", root / "peer", settings(args.shard_size, peer=True), penv, log)
            entry["vs_peer"] = compare_sets(root / "ours" / "sets", root / "peer" / "sets")
        results[str(n)] = entry
        print(json.dumps({str(n): entry}, indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
        if not args.keep:
            for sub in ("ours", "peer"):
                shutil.rmtree(root / sub, ignore_errors=True)


if __name__ == "__main__":
    main()
