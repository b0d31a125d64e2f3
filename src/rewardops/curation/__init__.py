"""Curation: the two-stage human-AI pipeline of Skywork-Reward-V2 (spec §3, §4).

- `attributes`: the five preference attributes, filled by an LLM through a validated JSON schema.
- `llm`: chat backends (an OpenAI-compatible HTTP client, a local Hugging Face causal LM).
- `judges`: preference-aware pairwise judging, self-consistency, cross-model merge, statistics.
- `retrieval`: (conversation + attributes) embeddings, a FAISS index, the error-driven k rule.
- `human`: Label Studio export/import, terminal review, and a *simulated* annotator.
- `stage1`, `stage2`: the iterative human-in-the-loop loop and the large-scale consistency filter.
- `cheap_rm`: small, honest reward models (embedding MLP, hashed bag of words) for tests and demos.
- `quality`: measuring a curation run against a generated world's known truth.
"""
