"""Stage-2 scan throughput and memory at scale (default 1M pairs).

Builds a pool by tiling generated-world pairs (new ids per copy), trains two cheap hashed
bag-of-words BT RMs (best on noisy labels, gold on true labels), and runs the stage-2 filter
(simulated judges on the uncertain band), each run in its own processes so peak RSS is its own:

  streaming-1proc   Stage2Filter.run (per shard, per 4,096-pair batch, resumable) on --n-peer pairs
  in-memory-1proc   the named peer, same pairs: read the whole pool with pyarrow.parquet.read_table,
                    filter it as one batch with the same rule and RMs, write (a one-off script)
  streaming-fanout  Stage2Filter.run on --n pairs (1M), shards split over --workers processes, the
                    way a pipeline fans out (`rewardops curate stage2 --shard i`)

The RM is deliberately cheap so the numbers are about the scan machinery (Parquet I/O, row
conversion, routing, writing, resume markers); a transformer RM's forward pass would dominate.

    .venv/bin/python bench/bench_stage2.py --n 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def build_pool(n: int, base: int, shard_size: int, out: Path, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from rewardops.data.schema import PAIR_SCHEMA, pairs_to_table
    from rewardops.data.world import generate_world

    out.mkdir(parents=True, exist_ok=True)
    table = pairs_to_table(list(generate_world(base, noise=0.25, seed=seed)))
    written, shard = 0, 0
    while written < n:
        writer = pq.ParquetWriter(out / f"part-{shard:05d}.parquet", PAIR_SCHEMA, compression="zstd")
        in_shard = 0
        while in_shard < shard_size and written < n:
            take = min(base, shard_size - in_shard, n - written)
            chunk = table.slice(0, take)
            ids = pc.binary_join_element_wise(chunk["id"], pa.scalar(f"-c{written // base}"), "")
            chunk = chunk.set_column(0, pa.field("id", pa.string(), nullable=False), ids)
            writer.write_table(chunk)
            in_shard += take
            written += take
        writer.close()
        shard += 1


def train_rms(work: Path, seed: int) -> None:
    from rewardops.curation.cheap_rm import HashedBTTrainer
    from rewardops.data.world import generate_world
    from rewardops.data.shards import write_pairs

    noisy = list(generate_world(5000, noise=0.25, seed=seed + 1))
    clean = [p if p.truth_chosen_better else p.flipped() for p in generate_world(2000, noise=0.25, seed=seed + 2)]
    write_pairs(noisy, work / "train_noisy")
    write_pairs(clean, work / "train_clean")
    HashedBTTrainer(dim=1 << 18, epochs=3).train(work / "train_noisy", work / "train_clean", work / "best_rm")
    HashedBTTrainer(dim=1 << 18, epochs=3).train(work / "train_clean", None, work / "gold_rm")


def _filter(work: Path):
    from rewardops.curation.cheap_rm import load_hashed_bt
    from rewardops.curation.judges import JudgeEnsemble, SimulatedJudge
    from rewardops.curation.stage2 import Stage2Config, Stage2Filter

    judges = JudgeEnsemble([SimulatedJudge(error_rate=0.2, seed=1, name="sim-a"), SimulatedJudge(error_rate=0.3, seed=2, name="sim-b")],
                           n_samples=3)
    return Stage2Filter(load_hashed_bt(work / "best_rm"), load_hashed_bt(work / "gold_rm"), Stage2Config(batch_size=4096),
                        judges=judges)


def peak_rss_mib() -> float:
    """This process's own high-water RSS (VmHWM; ru_maxrss would include the parent's, as Linux
    carries it across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, work: Path, pool: str, only: list[int] | None) -> None:
    out = work / f"out-{mode}-{pool}"
    f = _filter(work)
    t0 = time.perf_counter()
    if mode == "streaming":
        f.run(work / pool, out, only=only, progress=False)
        from rewardops.curation.shardrun import done_shards

        done = done_shards(out)
        n = sum(done[i]["input_rows"] for i in (only if only is not None else done))
        outputs = None
    else:
        from collections import Counter

        import pyarrow.parquet as pq

        from rewardops.data.schema import PreferencePair
        from rewardops.data.shards import write_pairs

        rows = pq.read_table(work / pool).to_pylist()
        pairs = [PreferencePair.from_row(r) for r in rows]
        del rows
        n = len(pairs)
        groups: dict[str, list] = {"kept": [], "discarded": [], "no_verdict": [], "recycled": []}
        for name, p in f.process_batch(pairs, Counter()):
            groups[name].append(p)
        for name, ps in groups.items():
            write_pairs(ps, out / name)
        outputs = {k: len(v) for k, v in groups.items()}
    elapsed = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "pairs": n, "seconds": elapsed, "peak_rss_mib": peak_rss_mib(), "outputs": outputs}))


def run_mode(mode: str, work: Path, pool: str, workers: int, n_shards: int) -> dict:
    """Run `mode` over `pool` with `workers` processes (shards split round-robin); wall-clock timed."""
    from rewardops.curation.shardrun import summarize

    shutil.rmtree(work / f"out-{mode}-{pool}", ignore_errors=True)
    t0 = time.perf_counter()
    procs = []
    for w in range(workers):
        cmd = [sys.executable, __file__, "--child", mode, "--work", str(work), "--pool", pool]
        if workers > 1:
            cmd += ["--only", ",".join(str(i) for i in range(w, n_shards, workers))]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    bad = [(p.returncode, e[-1500:]) for p, (_, e) in zip(procs, outs) if p.returncode != 0]
    if bad:
        return {"mode": mode, "error": bad}
    rows = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    n = sum(r["pairs"] for r in rows)
    res = {"mode": mode, "pool": pool, "workers": workers, "pairs": n, "seconds": wall, "pairs_per_s": n / wall,
           "peak_rss_mib_per_process": max(r["peak_rss_mib"] for r in rows)}
    res["outputs"] = summarize(work / f"out-{mode}-{pool}")["outputs"] if mode == "streaming" else rows[0]["outputs"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="pairs in the large pool (streaming, fanned out)")
    ap.add_argument("--n-peer", type=int, default=100_000, help="pairs for the single-process streaming vs in-memory comparison")
    ap.add_argument("--base", type=int, default=20_000, help="distinct world pairs, tiled to n")
    ap.add_argument("--shard-size", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "rewardops-bench-stage2")
    ap.add_argument("--child", default=None)
    ap.add_argument("--pool", default="pool")
    ap.add_argument("--only", default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_stage2.json")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.work, args.pool, [int(x) for x in args.only.split(",")] if args.only else None)
        return
    shutil.rmtree(args.work, ignore_errors=True)
    t = time.perf_counter()
    build_pool(args.n, args.base, args.shard_size, args.work / "pool", seed=0)
    build_pool(args.n_peer, args.base, args.shard_size, args.work / "pool_peer", seed=0)
    train_rms(args.work, seed=0)
    print(f"built {args.n} + {args.n_peer} pairs and trained the RMs in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    n_shards = len(list((args.work / "pool").glob("part-*.parquet")))
    results = {
        "streaming-1proc": run_mode("streaming", args.work, "pool_peer", 1, 0),
        "in-memory-1proc": run_mode("in-memory", args.work, "pool_peer", 1, 0),
        "streaming-fanout": run_mode("streaming", args.work, "pool", args.workers, n_shards),
    }
    s, m = results["streaming-1proc"], results["in-memory-1proc"]
    if "pairs_per_s" in s and "pairs_per_s" in m:
        results["ratio_vs_in_memory_peer"] = {
            "throughput_streaming_over_in_memory": s["pairs_per_s"] / m["pairs_per_s"],
            "peak_rss_in_memory_over_streaming": m["peak_rss_mib_per_process"] / s["peak_rss_mib_per_process"],
        }
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(f"{'run':<18} {'workers':>7} {'pairs':>9} {'seconds':>8} {'pairs/s':>9} {'peak RSS MiB/proc':>18}")
    for k in ("streaming-1proc", "in-memory-1proc", "streaming-fanout"):
        r = results[k]
        if "pairs_per_s" in r:
            print(f"{k:<18} {r['workers']:>7} {r['pairs']:>9} {r['seconds']:>8.1f} {r['pairs_per_s']:>9.0f} {r['peak_rss_mib_per_process']:>18.0f}")
        else:
            print(f"{k:<18} failed: {r['error']}")
    if "ratio_vs_in_memory_peer" in results:
        print("ratio vs the in-memory peer:", json.dumps(results["ratio_vs_in_memory_peer"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
