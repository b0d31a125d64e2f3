from __future__ import annotations

from rewardops.curation.adapters import EngineScorer
from rewardops.curation.cheap_rm import HashedBTTrainer
from rewardops.curation.protocols import PairScorer
from rewardops.data.shards import write_pairs

from .conftest import toy_pairs


def test_engine_scorer_reads_a_transformer_rm_through_the_scoring_engine():
    """tiny-qwen3: a 2-layer random-init seq-cls model with SmolLM2's tokenizer (fast, real)."""
    scorer = EngineScorer("tiny-qwen3", device="cpu")
    assert isinstance(scorer, PairScorer)
    pairs = toy_pairs(4)
    p = scorer.score_pairs(pairs)
    q = scorer.score_pairs([x.flipped() for x in pairs])
    assert all(0.0 < a < 1.0 for a in p) and all(abs(a + b - 1.0) < 1e-5 for a, b in zip(p, q))
    assert len(set(round(a, 6) for a in p)) > 1  # the model reads the texts


def test_load_scorer_reads_rm_json_and_refuses_unknown_folders(tmp_path):
    import pytest

    from rewardops.curation.rms import load_scorer, train_rm
    from rewardops.curation.settings import CurationSettings

    write_pairs(toy_pairs(50, noise=0.2), tmp_path / "silver")
    write_pairs(toy_pairs(12, seed=3, prefix="g"), tmp_path / "gold")
    trained = train_rm(CurationSettings(), tmp_path / "silver", tmp_path / "gold", tmp_path / "rm")
    loaded = load_scorer(tmp_path / "rm")
    assert loaded.name == trained.name and loaded.score_pairs(toy_pairs(3)) == trained.score_pairs(toy_pairs(3))
    with pytest.raises(FileNotFoundError, match="no reward model here"):
        load_scorer(tmp_path / "silver")


def test_a_transformer_rm_by_settings_is_selected_calibrated_and_reloaded(tmp_path):
    """rm=transformer:SIZE in the loop: candidates of 1..N epochs, the best on gold kept, its
    temperature fitted on gold, and rm.json pointing at the export so stage 2 reloads the same model."""
    from rewardops.curation.rms import load_scorer, train_rm
    from rewardops.curation.settings import CurationSettings

    write_pairs(toy_pairs(16, seed=1, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(8, noise=0.0, seed=2, prefix="g"), tmp_path / "gold")
    settings = CurationSettings(rm="transformer:demo-tiny-qwen3", rm_max_steps=2, rm_select_epochs=2)
    trained = train_rm(settings, tmp_path / "silver", tmp_path / "gold", tmp_path / "rm")
    info = __import__("json").loads((tmp_path / "rm" / "rm.json").read_text())
    assert info["kind"] == "transformer" and len(info["selection_history"]) == 2 and info["calibration_pairs"] == 8
    assert (tmp_path / "rm" / info["export"] / "config.json").is_file()
    again = load_scorer(tmp_path / "rm")
    probe = toy_pairs(3, seed=5)
    assert again.temperature == trained.temperature
    assert again.score_pairs(probe) == trained.score_pairs(probe)
    assert all(0.0 < p < 1.0 for p in again.score_pairs(probe))
    assert (tmp_path / "rm" / "selection.json").exists()  # the adapter's record of the candidates
