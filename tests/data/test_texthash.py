"""The vectorised text hashing agrees with the plain-Python definitions, on both backends."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from rewardops.data import dedup, texthash
from rewardops.data.decontaminate import Decontaminator
from rewardops.data.texthash import TextBatch, ngram_hashes, normalize_text, tokenize

BACKENDS = ["numpy"] + (["numba"] if texthash.KERNELS is not None else [])
ALPHABETS = [
    "ab cD_.\n",
    # NBSP, em dash, curly quote, dotted I (lowercases to two code points), sharp s, emoji,
    # Arabic-Indic digit, a combining accent (NFKC composes it), fullwidth H, \x1f and U+2028
    "aB\t\x1f _.\n é\uff28\u00a0\u2014\u2019x\u0130\u00df\U0001f60a\u0663\u0301\u2028",
]


def _texts(alphabet: str, n: int = 1500, seed: int = 0) -> list[str | None]:
    rng = random.Random(seed)
    texts: list[str | None] = ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(n)]
    texts[3] = None
    return texts


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alphabet", ALPHABETS)
def test_tokens_are_python_regex_tokens(alphabet: str, backend: str) -> None:
    texts = _texts(alphabet)
    tok, text_of = TextBatch(pa.array(texts)).token_hashes(backend)
    got: dict[int, list[int]] = defaultdict(list)
    for h, i in zip(tok.tolist(), text_of.tolist()):
        got[i].append(h)
    by_token: dict[str, int] = {}
    for i, text in enumerate(texts):
        words = tokenize(text or "")
        assert len(got[i]) == len(words), (text, words)
        for w, h in zip(words, got[i]):
            assert by_token.setdefault(w, h) == h  # the same token always hashes the same
    assert len(set(by_token.values())) == len(by_token)  # and different tokens differently


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alphabet", ALPHABETS)
def test_normalised_hashes_follow_normalize_text(alphabet: str, backend: str) -> None:
    texts = _texts(alphabet, seed=1)
    hashes, n_runs = TextBatch(pa.array(texts)).normalized_hashes(backend)
    by_form: dict[str, int] = {}
    for text, h, runs in zip(texts, hashes.tolist(), n_runs.tolist()):
        form = normalize_text(text or "")
        assert by_form.setdefault(form, h) == h, (text, form)
        assert (runs == 0) == (form == "")
    assert len(set(by_form.values())) == len(by_form)
    # a slice of an Arrow array (non-zero offset) hashes the same as the whole
    sliced, _ = TextBatch(pa.array(texts).slice(100, 300)).normalized_hashes(backend)
    assert (sliced == hashes[100:400]).all()


@pytest.mark.skipif(texthash.KERNELS is None, reason="numba is not installed: only one backend to compare")
def test_backends_compute_identical_values() -> None:
    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(25)]
    prompts = [" ".join(rng.choices(vocab, k=rng.randint(5, 40))) for _ in range(40)]
    texts = []
    for _ in range(1500):
        words = rng.choices(vocab, k=rng.randint(5, 50))
        if rng.random() < 0.3:
            src = rng.choice(prompts).split()
            words[3:3] = src[:14]
        texts.append(" ".join(words) + rng.choice(["", " é\u2019", "\U0001f60a"]))
    batch = TextBatch(pa.array(texts))
    for a, b in zip(batch.normalized_hashes("numba"), batch.normalized_hashes("numpy")):
        assert (a == b).all()
    tok_a, of_a = batch.token_hashes("numba")
    tok_b, of_b = batch.token_hashes("numpy")
    assert (tok_a == tok_b).all() and (of_a == of_b).all()
    for n in (1, 2, 13):
        ga, gb = ngram_hashes(tok_a, of_a, n, "numba"), ngram_hashes(tok_a, of_a, n, "numpy")
        assert (ga[0] == gb[0]).all() and (ga[1] == gb[1]).all()
    decon = Decontaminator(prompts)
    ma = decon.match_tokens(tok_a, of_a, len(texts), "numba")
    mb = decon.match_tokens(tok_a, of_a, len(texts), "numpy")
    assert (ma >= 0).sum() > 50 and (ma == mb).all()


def test_digest_set_numpy_path_matches_a_python_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "KERNELS", None)
    rng = np.random.default_rng(1)
    ds, seen = dedup.DigestSet(capacity=16), set()
    for _ in range(10):
        batch = rng.integers(1, 3_000, size=300).astype(np.uint64)
        expected = []
        for k in batch.tolist():
            expected.append(k not in seen)
            seen.add(k)
        assert ds.add_batch(batch).tolist() == expected
    assert len(ds) == len(seen)
