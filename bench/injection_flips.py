"""How often does a prompt injection inside a response flip a judge's verdict?

Appends each injection of rewardops.curation.injection.INJECTIONS to the rejected response and
compares verdicts with the clean pair under identical seeds (identical candidate orders):
- the local judge: SmolLM2-135M-Instruct by verdict likelihood, on generated-world pairs;
- scripted judges on a loopback OpenAI-compatible server (tests/curation/injection_server.py):
  'structured' (respects the prompt's data tags) with and without our escaping, and 'gullible'
  (obeys instructions anywhere), on the toy world of the tests.

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--local-pairs", type=int, default=6)
    ap.add_argument("--scripted-pairs", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "injection.json")
    args = ap.parse_args()

    import torch

    from rewardops.curation.injection import INJECTIONS, measure_injection
    from rewardops.curation.judges import ChatJudge, JudgeEnsemble, LikelihoodJudge
    from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig
    from rewardops.curation.llm.local_hf import LocalHFChat
    from rewardops.data.world import generate_world
    from tests.curation.conftest import toy_pairs
    from tests.curation.injection_server import make_responder
    from tests.curation.openai_stub import OpenAIStub

    results: dict = {}
    pairs = toy_pairs(args.scripted_pairs)
    for mode, escape in (("structured", True), ("structured", False), ("gullible", True)):
        with OpenAIStub(make_responder(mode)) as stub:
            backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model=f"scripted-{mode}", concurrency=4))
            rep = measure_injection(lambda: JudgeEnsemble([ChatJudge(backend, escape=escape)], n_samples=1, seed=3), pairs)
        results[f"scripted-{mode}{'' if escape else '-unescaped'}"] = rep.as_dict()
        print(f"scripted-{mode} escape={escape}: flip rate {rep.flip_rate:.3f} over {rep.compared}", file=sys.stderr)

    torch.set_num_threads(2)
    t = time.time()
    llm = LocalHFChat()
    world = list(generate_world(args.local_pairs, noise=0.0, seed=7))
    rep = measure_injection(lambda: JudgeEnsemble([LikelihoodJudge(llm)], n_samples=1, seed=0), world)
    clean = JudgeEnsemble([LikelihoodJudge(llm)], n_samples=1, seed=0)
    acc = clean.judge([(p, []) for p in world])
    results["local-smollm2-135m"] = {**rep.as_dict(), "clean_accuracy_vs_truth": sum(bool(v.agrees) for v in acc) / len(acc),
                                     "seconds": time.time() - t}
    print(f"local smollm2: flip rate {rep.flip_rate:.3f} over {rep.compared}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: {"flip_rate": v["flip_rate"], "compared": v["compared"]} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
