"""Curation: the two-stage human-AI pipeline of Skywork-Reward-V2 (paper §3.2, §3.3).

- `settings`: the one `CurationSettings` object (every default, profiles `default` and `demo`).
- `steps`: the one step layer every route calls (KFP components, DVC stages via the CLI, the CLI);
  it also defines the published sets (curated, recycled, no_verdict, discarded).
- `builders`: the registries of part kinds (annotators, judges, attribute generators, RMs).
- `attributes`: the five preference attributes, filled by an LLM through a validated JSON schema
  (or offline rules, `heuristic`, for tests and the demo).
- `llm`: chat backends (an OpenAI-compatible HTTP client, a local Hugging Face causal LM).
- `judges`: preference-aware pairwise judging, self-consistency, cross-model merge, statistics.
- `retrieval`: (attributes + conversation) embeddings, a FAISS index, the error-driven k rule.
- `human`: terminal review, Label Studio export/import, and a *simulated* annotator;
  `labelstudio`: people labelling in a live Label Studio project.
- `rms`: training RMs by settings, temperature calibration on gold, loading an RM folder.
- `cheap_rm`: small, honest reward models (embedding MLP, hashed bag of words);
  `adapters`: a transformer RM through `rewardops.training` and the scoring engine.
- `stage1`, `stage2`: the iterative human-in-the-loop loop and the large-scale consistency filter;
  `shardrun`: per-shard, crash-safe processing for stage 2.
- `fencing`, `injection`: prompts that data cannot steer, and measuring that.
"""
