"""How often does a prompt injection inside a response flip a judge's verdict?

Appends each injection of rewardops.curation.injection.INJECTIONS (plain instructions, tag
break-outs, forged role headers, look-alike tags, zero-width characters, the judge's own
chat-template tokens) to the rejected response and compares verdicts with the clean pair under
identical seeds (identical candidate orders):
- the local judge: SmolLM2-135M-Instruct by verdict likelihood, on generated-world pairs, with our
  fencing (defended) and without it (`escape=False`: the old `[role]` lines, no escaping, no
  normalisation) on the same pairs;
- scripted judges on a loopback OpenAI-compatible server (tests/curation/injection_server.py):
  'structured' (respects the prompt's data tags) with and without our escaping, and 'gullible'
  (obeys instructions anywhere), on the toy world of the tests.

CPU only and the machine is shared, so the local part is bounded by --local-pairs (about 4 s per
judgement on 2 threads; pairs x (1 + injections) judgements per mode):

    .venv/bin/python bench/injection_flips.py --local-pairs 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback stubs import tests/support


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--local-pairs", type=int, default=6)
    ap.add_argument("--scripted-pairs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-undefended", action="store_true", help="skip the local judge without fencing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "injection.json")
    args = ap.parse_args()

    import torch

    from rewardops.curation.injection import INJECTIONS, measure_injection
    from rewardops.curation.judges import ChatJudge, JudgeEnsemble, LikelihoodJudge
    from rewardops.curation.llm.local_hf import LocalHFChat
    from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig
    from rewardops.data.world import generate_world
    from tests.curation.conftest import toy_pairs
    from tests.curation.injection_server import make_responder
    from tests.curation.openai_stub import OpenAIStub

    results: dict = {"injections": list(INJECTIONS)}
    pairs = toy_pairs(args.scripted_pairs)
    for mode, escape in (("structured", True), ("structured", False), ("gullible", True)):
        with OpenAIStub(make_responder(mode)) as stub:
            backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model=f"scripted-{mode}", concurrency=4))
            rep = measure_injection(lambda: JudgeEnsemble([ChatJudge(backend, escape=escape)], n_samples=1, seed=3), pairs)
        results[f"scripted-{mode}{'' if escape else '-unescaped'}"] = rep.as_dict()
        print(f"scripted-{mode} escape={escape}: flip rate {rep.flip_rate:.3f} over {rep.compared}", file=sys.stderr)

    torch.set_num_threads(args.threads)
    llm = LocalHFChat()
    world = list(generate_world(args.local_pairs, noise=0.0, seed=7))
    for escape in (True, False) if not args.no_undefended else (True,):
        t = time.time()
        rep = measure_injection(lambda: JudgeEnsemble([LikelihoodJudge(llm, escape=escape)], n_samples=1, seed=0), world)
        key = "local-smollm2-135m" + ("" if escape else "-unfenced")
        results[key] = {**rep.as_dict(), "pairs": len(world), "seconds": round(time.time() - t, 1), "threads": args.threads}
        # the clean verdicts' agreement with the world's truth (how good the judge is without attacks)
        results[key]["clean_accuracy_vs_truth"] = rep.clean_accuracy
        print(f"{key}: flip rate {rep.flip_rate:.3f} over {rep.compared} ({time.time() - t:.0f} s)", file=sys.stderr)
    results["machine"] = "CPU only (2 cores shared with other jobs); SmolLM2-135M-Instruct fp32, verdict by likelihood"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: {"flip_rate": v["flip_rate"], "compared": v["compared"], "toward_injection": v["toward_injection"]}
                      for k, v in results.items() if isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
