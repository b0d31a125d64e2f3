"""Benchmark: dedup + 13-gram decontamination throughput and peak RSS, against RewardBench's
reference decontamination (scikit-learn CountVectorizer 13-gram vectors, nonzero overlap) on the
same pairs and the same benchmark prompts, in the same run.

    .venv/bin/python bench/bench_preprocess.py                       # 100k and 1M pairs
    .venv/bin/python bench/bench_preprocess.py --sizes 20000 --ref-sample 5000   # quick

Pairs come from the preference world (`rewardops.data.world.generate_world`) when it is
installed, otherwise from a synthetic generator below; 5% of them are re-emitted as duplicates
(with whitespace changes) and 1% get a benchmark prompt pasted into their first user turn, so
both filters have work to do. Benchmark prompts: the evaluation fixtures in ../shared/data
(RM-Bench, JudgeBench, LLMBar, RMB), loaded with `load_prompts`.

Each measurement runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.
Ours = the whole `preprocess` run (read shards, structural check, dedup, decontamination, write
shards and logs). The reference = CountVectorizer(ngram_range=(13,13)) fitted on the prompts,
`transform` of every pair's text (conversation + chosen + rejected), and a nonzero test of the
pairs x prompts product; it gets the texts already in memory (reading is not timed for it). When
`--ref-sample` is below the size, the reference runs on the first pairs only and its pairs/s is
applied to the full size; the output says so. Our decontamination alone is also timed on that
sample, and the pairs both methods flag are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REWARDOPS_SHARED", REPO.parent / "shared")) / "data"
PROMPT_SOURCES = ("rm-bench", "judgebench", "llmbar", "rmb")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------- data


def synthetic_pairs(n: int, seed: int) -> Iterator:
    from rewardops.data.schema import Message, PreferencePair

    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "sa", "ti", "vu", "ze", "qua", "bri")
             for b in ("n", "rt", "sh", "l", "m", "x", "dor", "lin", "mar", "tek", "vo", "zu", "ph", "gh")]
    for i in range(n):
        words = lambda k: " ".join(rng.choices(vocab, k=k))  # noqa: E731
        turns = [Message("user", words(rng.randint(8, 40)))]
        if rng.random() < 0.3:
            turns += [Message("assistant", words(rng.randint(10, 40))), Message("user", words(rng.randint(5, 20)))]
        yield PreferencePair(id=f"syn-{i}", source="synthetic", conversation=turns,
                             chosen=words(rng.randint(20, 80)), rejected=words(rng.randint(20, 80)))


def source_pairs(n: int, seed: int) -> tuple[Iterator, str]:
    try:
        from rewardops.data.world import generate_world
    except ImportError:
        return synthetic_pairs(n, seed), "synthetic (rewardops.data.world not installed)"
    return generate_world(n, noise=0.1, seed=seed), "rewardops.data.world.generate_world"


def with_dups_and_contamination(pairs: Iterator, prompts: list[str], seed: int,
                                dup_rate: float = 0.05, contam_rate: float = 0.01) -> Iterator:
    from rewardops.data.schema import Message, PreferencePair

    rng = random.Random(seed + 1)
    recent: list = []
    long_prompts = [p for p in prompts if len(p.split()) >= 20]
    i = 0
    for p in pairs:
        if recent and rng.random() < dup_rate:
            d = rng.choice(recent)
            yield PreferencePair(id=f"dup-{i}", source=d.source,
                                 conversation=[Message(m.role, "  " + m.content.replace(" ", "  ")) for m in d.conversation],
                                 chosen=d.chosen + "\n", rejected=d.rejected, lineage=list(d.lineage))
            i += 1
        if long_prompts and rng.random() < contam_rate:
            first = p.conversation[0] if p.conversation else None
            if first is not None and first.role == "user":
                p.conversation[0] = Message("user", first.content + "\n\n" + rng.choice(long_prompts))
        recent.append(p)
        if len(recent) > 2_000:
            recent.pop(0)
        yield p
        i += 1


def build_dataset(n: int, out: Path, prompts: list[str], seed: int = 0) -> str:
    from itertools import islice

    from rewardops.data.shards import write_pairs

    pairs, origin = source_pairs(n, seed)
    write_pairs(islice(with_dups_and_contamination(pairs, prompts, seed), n), out, shard_size=100_000)
    return origin


# --------------------------------------------------------------------------- children


def load_sample(path: Path, limit: int):  # noqa: ANN201 - a pyarrow Table
    import pyarrow as pa

    from rewardops.data.shards import iter_batches

    batches, n = [], 0
    for batch in iter_batches(path):
        batches.append(batch)
        n += batch.num_rows
        if n >= limit:
            break
    return pa.Table.from_batches(batches).slice(0, limit)


def child_ours(data: Path, prompts_file: Path, workdir: Path) -> dict:
    """The whole `preprocess` run, as a user gets it: read, check, dedup, decontaminate, write."""
    from rewardops.data.decontaminate import load_prompts
    from rewardops.data.preprocess import preprocess
    from rewardops.data.shards import count_pairs

    n = count_pairs(data)
    rss_before = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    report = preprocess(data, workdir / "out", prompts=load_prompts([prompts_file]), expected_pairs=n)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    tot = report.totals()
    return {"pairs": n, "seconds": elapsed, "pairs_per_s": n / elapsed, "cpu_seconds": cpu,
            "pairs_per_cpu_s": n / cpu, "peak_rss_mb": peak_rss_mb(),
            "rss_after_imports_mb": rss_before, "kept": tot.kept, "duplicates": tot.duplicates,
            "contaminated": tot.contaminated, "quarantined": tot.quarantined_total,
            "dedup_table_mb": report.info["dedup_table_bytes"] / 2**20,
            "prompt_index_mb": report.info["prompt_index_bytes"] / 2**20}


def child_ref(data: Path, prompts_file: Path, sample: int) -> dict:
    """Both methods on the same in-memory sample: the reference (CountVectorizer 13-grams, fitted
    on the prompts, nonzero overlap) and our dedup + decontamination (`decide_batch`, the code
    `preprocess` runs per batch, without its Parquet reading and writing)."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    from rewardops.data.decontaminate import Decontaminator, load_prompts
    from rewardops.data.dedup import DigestSet
    from rewardops.data.preprocess import decide_batch
    from rewardops.data.preprocess import warm_up
    from rewardops.data.texthash import BACKEND

    warm_up()  # numba kernels loaded before timing, as scikit-learn is imported before timing
    prompts = list(load_prompts([prompts_file]))
    table = load_sample(data, sample)
    convs, chosen, rejected = (table.column(k).to_pylist() for k in ("conversation", "chosen", "rejected"))
    docs = ["\n".join([m["content"] for m in conv] + [c, r]) for conv, c, r in zip(convs, chosen, rejected)]
    n = len(docs)

    t0, c0 = time.perf_counter(), time.process_time()
    vec = CountVectorizer(ngram_range=(13, 13))
    vec.fit(prompts)
    overlap = vec.transform(docs) @ vec.transform(prompts).T
    ref_flag = overlap.getnnz(axis=1) > 0
    ref_s, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
    ref_rss = peak_rss_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    decon = Decontaminator(prompts)
    seen = DigestSet(2 * n)
    flags, dups = [], 0
    for start in range(0, n, 4096):
        d = decide_batch(table.slice(start, 4096), decon, seen)
        flags.append(d.prompt_of >= 0)
        dups += int(d.duplicate.sum())
    ours_flag = np.concatenate(flags)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"pairs": n, "backend": BACKEND,
            "ref_seconds": ref_s, "ref_cpu_seconds": ref_cpu,
            "ref_pairs_per_s": n / ref_s, "ref_pairs_per_cpu_s": n / ref_cpu, "ref_peak_rss_mb": ref_rss,
            "core_seconds": ours_s, "core_cpu_seconds": ours_cpu,
            "core_pairs_per_s": n / ours_s, "core_pairs_per_cpu_s": n / ours_cpu, "core_duplicates": dups,
            "ref_flagged": int(ref_flag.sum()), "ours_flagged": int(ours_flag.sum()),
            "both_flagged": int((ref_flag & ours_flag).sum()), "ref_vocab_ngrams": len(vec.vocabulary_)}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def dataset_for(size: int, largest: int, data_dir: Path, prompts: list[str]) -> tuple[Path, str]:
    """The first `size` pairs of one generated stream of `largest` pairs (built once, reused).
    Shards hold 100k pairs, so a 100k prefix of a 1M dataset is its first shard."""
    full = data_dir / f"pairs-{largest}"
    stamp = full / "origin.txt"
    if not stamp.exists():
        t0 = time.perf_counter()
        origin = build_dataset(largest, full, prompts)
        stamp.write_text(origin, encoding="utf-8")
        print(f"built {largest:,} pairs in {time.perf_counter() - t0:.0f}s ({origin}) under {full}", flush=True)
    origin = stamp.read_text(encoding="utf-8")
    if size == largest:
        return full, origin
    if size % 100_000 == 0:
        sub = data_dir / f"pairs-{largest}-first-{size}"
        if not sub.exists():
            sub.mkdir(parents=True)
            for i in range(size // 100_000):
                (sub / f"part-{i:05d}.parquet").symlink_to(full / f"part-{i:05d}.parquet")
        return sub, origin
    sub = data_dir / f"pairs-{size}"
    if not (sub / "origin.txt").exists():
        build_dataset(size, sub, prompts)
        (sub / "origin.txt").write_text(origin, encoding="utf-8")
    return sub, origin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ref-sample", type=int, default=100_000, help="pairs the reference runs on per size")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="keep generated datasets here and reuse them (default: a temporary folder)")
    ap.add_argument("--build-only", action="store_true", help="only build the datasets")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "data.md")
    ap.add_argument("--child", choices=["ours", "ref"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "ours":
        print(json.dumps(child_ours(args.data, args.prompts, args.workdir)))
        return
    if args.child == "ref":
        print(json.dumps(child_ref(args.data, args.prompts, args.ref_sample)))
        return

    import shutil

    from rewardops.data.decontaminate import load_prompts

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        data_dir = args.data_dir or work / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        prompts = list(load_prompts([SHARED_DATA / s for s in PROMPT_SOURCES if (SHARED_DATA / s).exists()]))
        if not prompts:
            raise SystemExit(f"no benchmark prompts found under {SHARED_DATA} (set REWARDOPS_SHARED)")
        prompts_file = work / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
        print(f"benchmark prompts: {len(prompts):,} from {SHARED_DATA}", flush=True)

        rows = []
        origin = ""
        largest = max(args.sizes)
        for size in sorted(args.sizes):
            data, origin = dataset_for(size, largest, data_dir, prompts)
            if args.build_only:
                continue
            ours = run_child("--child", "ours", "--data", str(data), "--prompts", str(prompts_file),
                             "--workdir", str(work / f"ours-{size}"))
            print(f"[{size:,}] ours: {json.dumps(ours)}", flush=True)
            shutil.rmtree(work / f"ours-{size}", ignore_errors=True)
            sample = min(size, args.ref_sample)
            ref = run_child("--child", "ref", "--data", str(data), "--prompts", str(prompts_file),
                            "--ref-sample", str(sample))
            print(f"[{size:,}] reference on {sample:,} pairs: {json.dumps(ref)}", flush=True)
            rows.append((size, ours, ref))
    if args.build_only:
        return

    lines = report_lines(rows, len(prompts), origin)
    print("\n".join(lines))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {args.results}")


def report_lines(rows: list, n_prompts: int, origin: str) -> list[str]:
    backend = rows[0][2]["backend"] if rows else "?"
    out = [
        "# Data pre-processing benchmark (dedup + 13-gram decontamination)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs visible (shared with other jobs: wall-clock "
        f"numbers are noisy, CPU-time numbers are the stable ones), Python {platform.python_version()}, "
        f"text-hash backend: {backend}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Pairs: {origin}, +5% whitespace-varied duplicates, 1% with a benchmark prompt pasted into the first "
        f"user turn. Benchmark prompts: {n_prompts:,} (RM-Bench, JudgeBench, LLMBar, RMB fixtures).",
        "Reproduce: `.venv/bin/python bench/bench_preprocess.py` (add `--data-dir DIR` to keep the generated pairs).",
        "",
        "Reference = RewardBench's method: `CountVectorizer(ngram_range=(13, 13))` fitted on the prompts, "
        "`transform` of each pair's text (conversation + chosen + rejected), nonzero test of the pairs x prompts "
        "product; timed on texts already in memory. *Core* = our dedup + decontamination on the same in-memory "
        "sample (`decide_batch`, building the prompt index included; numba kernels loaded before timing, as "
        "scikit-learn is imported before timing). *End to end* = the whole `rewardops "
        "preprocess` on all pairs (read shards, check, dedup, decontaminate, write shards and logs), each size in "
        "a fresh process, whose peak RSS is reported.",
        "",
        "| pairs | reference ran on | reference pairs/CPU-s | core pairs/CPU-s | **core / reference** | "
        "end-to-end pairs/CPU-s | end to end / reference | end-to-end pairs/s (wall) | peak RSS MB | "
        "kept / dup / contaminated | flagged ref / ours / both |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, ours, ref in rows:
        sample_note = f"{ref['pairs']:,}" + (" (first pairs; rate applied to all)" if ref["pairs"] < size else " (all)")
        out.append(
            f"| {size:,} | {sample_note} | {ref['ref_pairs_per_cpu_s']:,.0f} | {ref['core_pairs_per_cpu_s']:,.0f} | "
            f"**{ref['core_pairs_per_cpu_s'] / ref['ref_pairs_per_cpu_s']:.1f}x** | {ours['pairs_per_cpu_s']:,.0f} | "
            f"{ours['pairs_per_cpu_s'] / ref['ref_pairs_per_cpu_s']:.1f}x | {ours['pairs_per_s']:,.0f} | "
            f"{ours['peak_rss_mb']:,.0f} | {ours['kept']:,} / {ours['duplicates']:,} / {ours['contaminated']:,} | "
            f"{ref['ref_flagged']:,} / {ref['ours_flagged']:,} / {ref['both_flagged']:,} |"
        )
    out.append("")
    if len(rows) >= 2:
        (s0, o0, _), (s1, o1, _) = rows[0], rows[-1]
        out.append(f"Peak RSS of `preprocess` at {s1:,} / at {s0:,} pairs: {o1['peak_rss_mb']:.0f} / {o0['peak_rss_mb']:.0f} MB = "
                   f"**{o1['peak_rss_mb'] / o0['peak_rss_mb']:.2f}x** (target <= 1.5x).")
    for size, ours, ref in rows:
        out.append(
            f"- {size:,}: core/reference = {ref['core_pairs_per_cpu_s'] / ref['ref_pairs_per_cpu_s']:.1f}x by CPU time, "
            f"{ref['core_pairs_per_s'] / ref['ref_pairs_per_s']:.1f}x by wall time (target >= 20x); end to end "
            f"{ours['cpu_seconds']:.1f} CPU-s / {ours['seconds']:.1f} s wall; dedup table {ours['dedup_table_mb']:.1f} MB, "
            f"prompt index {ours['prompt_index_mb']:.1f} MB, RSS after imports {ours['rss_after_imports_mb']:.0f} MB; "
            f"reference {ref['ref_cpu_seconds']:.1f} CPU-s on {ref['pairs']:,} pairs, peak RSS {ref['ref_peak_rss_mb']:.0f} MB.")
    return out


if __name__ == "__main__":
    main()
