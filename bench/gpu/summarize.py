"""Print the results of a bench/gpu/run.sh output folder as Markdown (for bench/results/gpu.md).

    python bench/gpu/summarize.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(out: Path, name: str) -> dict:
    p = out / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except Exception:  # noqa: BLE001 - a missing or cut-off step is reported as such
        return {}


def fmt(x, spec=",.0f"):
    return "–" if x is None else format(x, spec)


def main() -> int:
    out = Path(sys.argv[1])
    env = load(out, "env")
    print(f"## GPU run: {env.get('device', '?')} ({env.get('nvidia_smi', '')}), {env.get('date_utc', '?')} UTC")
    print(f"torch {env.get('torch')}, transformers {env.get('transformers')}, trl {env.get('trl')}, "
          f"deepspeed {env.get('deepspeed')}; varlen: {env.get('varlen_compat')}")
    try:
        steps = json.loads((out / "run.json").read_text())
        print("\n| step | rc | seconds | limit | timed out |\n|---|---|---|---|---|")
        for s in steps:
            print(f"| {s['step']} | {s['rc']} | {s['seconds']} | {s['limit_s']} | {s['timed_out']} |")
    except Exception:  # noqa: BLE001
        print("(no run.json)")
    for name in ("correctness", "deepspeed"):
        d = load(out, name)
        print(f"\n### {name}" + (" (smoke)" if d.get("smoke") else ""))
        for check, r in d.get("checks", {}).items():
            body = r.get("cpu_dry_run", r)
            keys = {k: v for k, v in body.items() if k not in ("traceback", "log_tail", "live_scores", "exported_bf16",
                                                                "exported_fp32", "losses", "step_s")}
            print(f"- **{check}**: {r.get('status')}; " + json.dumps(keys, default=str)[:700])
            if "losses" in body:
                print(f"  losses: {[round(x, 5) for x in body['losses']]}")
    t = load(out, "training")
    print("\n### training" + (" (smoke)" if t.get("smoke") else ""))
    print("| model | run | ckpt | real tok/s | MFU | peak GiB | pad waste |\n|---|---|---|---|---|---|---|")
    for r in t.get("aggregate", []):
        if "error" in r:
            print(f"| {r.get('model')} | {r.get('impl', '?')} | {r.get('ckpt_setting')} | error: {r['error'][:120]} | | | |")
        else:
            print(f"| {r.get('model')} | {r['impl']} | {'on' if r['grad_ckpt'] else 'off'} | {fmt(r['tok_s'])} | "
                  f"{fmt(r.get('mfu'), '.3f')} | {r.get('peak_mem_gib')} | {r['padding_waste']:.1%} |")
    print("\n| model | ckpt | ours / TRL matched | ours / TRL defaults | max loss diff vs matched |\n|---|---|---|---|---|")
    for q in t.get("ratios", []):
        print(f"| {q['model']} | {'on' if q['grad_ckpt'] else 'off'} | {fmt(q.get('ratio_matched'), '.2f')}x | "
              f"{fmt(q.get('ratio_defaults'), '.2f')}x | {fmt(q.get('max_abs_loss_diff'), '.1e')} |")
    for check, r in t.get("checks", {}).items():
        if check.startswith("profile"):
            print(f"\nprofile ({check}): {r.get('status')} share {r.get('share_by_family')} busy {r.get('busy_fraction_of_wall')}")
        elif r.get("status") != "ok":
            print(f"\n{check}: {r.get('status')} {r.get('errors') or r.get('error')}")
    s = load(out, "scoring")
    print("\n### scoring" + (" (smoke)" if s.get("smoke") else ""))
    for check, r in s.get("checks", {}).items():
        body = r.get("cpu_dry_run", r)
        print(f"- {check}: {r.get('status')}; sequences {body.get('sequences')}, real tokens {body.get('real_tokens')}, "
              f"max score diff vs peer {body.get('max_abs_score_diff_vs_peer')}")
        for name, row in (body.get("rows") or {}).items():
            print(f"  - {name}: {fmt(row['tok_s'])} real tok/s ({row['ratio_vs_peer']:.2f}x), best of {row['runs_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
