"""Step 1b of bench/gpu/run.sh: what the machine is and whether everything imports. Writes env.json.

Records the device, versions (torch, transformers, trl, datasets, deepspeed), where each carried
package was imported from, whether each carried distribution's requirements are met by what is
installed, the varlen_attn signature (see common.varlen_compat) and that the rewardops modules the
steps use import.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MODULES = ["rewardops.training.config", "rewardops.training.trainer", "rewardops.training.attention",
           "rewardops.training.packing", "rewardops.training.export", "rewardops.evaluation.engine",
           "rewardops.evaluation.modelref", "rewardops.data.shards", "trl", "datasets", "deepspeed"]


def requirement_check(plan_file: Path) -> list[dict]:
    from packaging.requirements import Requirement

    out = []
    if not plan_file.exists():
        return out
    for line in plan_file.read_text().split():
        name = line.split("==")[0]
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            out.append({"dist": name, "problem": "not installed"})
            continue
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = md.version(req.name)
            except md.PackageNotFoundError:
                out.append({"dist": name, "needs": spec, "problem": "missing"})
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                out.append({"dist": name, "needs": spec, "problem": f"installed {have}"})
    return out


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    wheels = Path(sys.argv[2]) if len(sys.argv) > 2 else common.GPU_DIR / "wheels"
    env = common.device_info()
    env["varlen_compat"] = common.varlen_compat()
    env["imports"] = {}
    for mod in MODULES:
        try:
            m = importlib.import_module(mod)
            env["imports"][mod] = {"ok": True, "from": str(getattr(m, "__file__", ""))}
        except Exception as exc:  # noqa: BLE001
            env["imports"][mod] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    env["unmet_requirements_of_carried"] = requirement_check(wheels / "PLAN.txt")
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as exc:  # noqa: BLE001
        env["nvidia_smi"] = f"unavailable ({type(exc).__name__})"
    tdir = __import__("bench_training").tokenizer_dir()
    env["tokenizer_dir"] = str(tdir)
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tdir)
        env["tokenizer"] = {"ok": True, "vocab": len(tok), "pad": tok.pad_token, "eos": tok.eos_token}
    except Exception as exc:  # noqa: BLE001
        env["tokenizer"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    (out / "env.json").write_text(json.dumps(env, indent=1))
    bad = [m for m, v in env["imports"].items() if not v["ok"]] + ([] if env["tokenizer"]["ok"] else ["tokenizer"])
    print(json.dumps({k: env[k] for k in ("device", "torch", "transformers", "trl", "datasets", "deepspeed", "varlen_compat")}))
    print("imports failing:", bad or "none", "| unmet requirements:", env["unmet_requirements_of_carried"] or "none")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
