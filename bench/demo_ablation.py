"""The demo's data ablation without the demo's slowest part: what curation buys on the generated world.

`make demo` runs the same arms inside the KFP pipeline (`rewardops.pipelines.ablation`); its stage 1
labels silver with the local SmolLM2 judge, which on a shared 2-core machine takes most of the run.
This script runs the demo's curation settings (the `demo` profile: 200 gold, world noise 0.25,
hashed RMs, the stage-2 decision) with a named simulated stage-1 judge (`--judge simulated:0.2`)
instead, then trains the demo size on each arm exactly as the pipeline does (`rewardops train`,
catalog entry, one epoch) and evaluates it on the same held-out world (`rewardops eval
--benchmarks world --world-n 256`), and prints the pipeline's table (`evaluation.report.ablation_markdown`).

    PYTHONPATH=src .venv/bin/python bench/demo_ablation.py --arms a,b --out bench/results/demo_ablation.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/rewardops-demo-ablation"))
    ap.add_argument("--arms", default="a,b,c,d")
    ap.add_argument("--size", default="demo-tiny-qwen3")
    ap.add_argument("--judge", default="simulated:0.2")
    ap.add_argument("--world-n", type=int, default=1000)
    ap.add_argument("--eval-world-n", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_ablation.md")
    args = ap.parse_args()

    from rewardops.curation import steps
    from rewardops.curation.ablation import build_arms, table_rows
    from rewardops.curation.settings import CurationSettings
    from rewardops.data.shards import write_pairs
    from rewardops.data.world import generate_world
    from rewardops.data.world.noise import DEMO_WORLD_NOISE
    from rewardops.evaluation.report import ablation_markdown

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    write_pairs(list(generate_world(args.world_n, noise=DEMO_WORLD_NOISE, seed=0)), work / "pre")
    s = CurationSettings.parse({"profile": "demo", "judges": [args.judge], "embedder": "hashed"})
    steps.seed_split(work / "pre", work / "seed", s)
    steps.stage1(work / "seed", work / "s1", s)
    steps.final_models(work / "s1", work / "rms", s)
    parts = steps.stage2(work / "s1", work / "rms", work / "s2", s)
    sets = {k: work / "sets" / k for k in steps.SETS}
    merged = steps.merge(work / "s1", work / "rms", parts, sets, s)
    decision = merged["stage2"]["decision"]
    estimates = {k: v["estimate"] for k, v in (decision.get("noise") or {}).items()}
    wanted = args.arms.split(",")
    outs = {arm: work / f"arm-{arm}" for arm in ("a", "c", "d") if arm in wanted}
    facts = build_arms(work / "pre", sets["curated"], sets["recycled"], outs, estimates, decision["filter"])
    data = {**outs, "b": sets["curated"]}
    curation_s = time.time() - t0
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "REWARDOPS_CACHE": str(work / "cache")}
    reports, seconds = {}, {}
    for arm in wanted:
        start = time.time()
        subprocess.run([sys.executable, "-m", "rewardops.cli", "train", "--size", args.size, "--data", str(data[arm]),
                        "--out", str(work / f"model-{arm}"), "--no-progress"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "rewardops.cli", "eval", "--model", str(work / f"model-{arm}" / "model"),
                        "--benchmarks", "world", "--world-n", str(args.eval_world_n), "--out", str(work / f"eval-{arm}")],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        reports[arm], seconds[arm] = work / f"eval-{arm}", round(time.time() - start, 1)
    rows = table_rows(facts, reports)
    text = ablation_markdown(rows, title=f"Demo ablation ({args.size}; stage-1 judge {args.judge})")
    load = os.getloadavg()
    text += (f"\nStage 2: {decision['why']}\n\nCuration {curation_s:.0f} s; per arm train + eval seconds {seconds}; "
             f"load average at the end {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (2 shared cores).\n")
    print(text)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "decision": decision, "seconds": seconds},
                                                        indent=1, default=str))


if __name__ == "__main__":
    main()
