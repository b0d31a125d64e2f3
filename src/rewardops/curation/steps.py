"""The curation step layer: the one code path of every route (KFP components, DVC stages via the
CLI, the CLI itself). Folders in, folders out, one `CurationSettings` object (parsed at the edge).

State folder (`seed_split`, grown by `stage1_iteration`): `gold/ silver/ state.json`, the pool
`pool/part-NNNNN.parquet` with its vectors `pool_vectors/part-NNNNN.{npy,json}` (seed states only),
and `stage1/iter-XX/{gold,silver,added_gold,added_silver,undecidable,no_verdict}/ moved.json
metrics.json`. The pool is written once and never copied: a stage-1 state names the seed state
that holds it (`state.json` "pool"), and every step that reads the pool takes it as `pool=` (the
KFP components pass the seed's artifact) or follows that name (`pool_root`). The latest
iteration is the highest `iter-XX` with a `metrics.json` (`latest_iteration`; the one way every
step finds it).

- `seed_split`: a dataset -> a state, streamed (paper §3.2's seed at the paper's scale): the first
  `gold_n` pairs verified by the annotator (the gold seed; pairs it did not review go back to the
  pool, undecidable ones are discarded and counted), the next `silver_n` as the silver seed with
  their original labels (attributes generated where missing), the rest written straight into
  pool shards of at most `pool_shard_size` pairs (at least `pool_shards` shards). Then each pool
  shard is prepared on its own (`prepare_shard`: attributes for pairs lacking them, then the
  shard's retrieval vectors) and `assemble_pool` puts the prepared shards into the state. The KFP
  pipeline runs the same three functions, `prepare_shard` fanned out over the shards; the CLI runs
  them in one process, resuming at the first unprepared shard.
- `stage1_iteration`: state -> state with one more stage-1 iteration (`Stage1Loop.resume` +
  `run_iteration`); `stage1` runs every iteration the settings ask for (each one committed
  atomically, so a rerun resumes).
- `final_models`: state -> `best_rm/` (final silver, selected and calibrated on final gold),
  `gold_rm/` (`train_gold_rm`: every gold pair, calibrated on cross-fitted probabilities) and
  `replay.json` (every gold pair run through the stage-2 rule as labelled and flipped, scored by the
  gold RM and the best RM of its cross-fitting fold, `best_rm/folds/fold-K` selected and calibrated
  on the gold minus fold K, so neither was trained, selected or calibrated on it: what each set's
  noise and the filter-or-keep-all decision are estimated from). Trained once, for every shard. `gold_rm` is the same for imported gold
  (`rewardops curate gold-rm`).
- `stage2_shard`: one pool shard through the consistency filter (inputs' manifests verified first);
  `stage2` runs every shard (each its own atomic folder, so a rerun resumes).
- `merge`: first the decision (`stage2.decide`, paper §3.3's rule checked against the gold): stage 2
  filters only when kept + recycled is estimated cleaner than the pool at the settings' confidence
  (`rm_skill_z`, one-sided); then the published sets, the same on every route:
    curated    = stage 1's final gold + final silver + stage 2's kept pairs, deduplicated by id and
                 by content (a pair stage 1 labelled keeps its stage-1 label; uint64 digests of ids and
                 content keys, so memory is ~16 bytes per published pair, never the pairs);
    recycled   = stage 2's discarded pairs that both RMs confidently reverse, flipped (see stage2);
    no_verdict = pairs the stage-2 judges could not decide: returned for another pass, never kept;
    discarded  = every pair stage 2 discarded, as labelled;
  or, when filtering is not shown to help, curated = gold + silver + EVERY pool pair as labelled
  (lineage `stage2:kept_all`) and the other three sets empty. `report.json`: the counts, the
  decision and why (with the numbers), each set's estimated label noise with its interval, and
  (with the generated world's truth on the pairs) each set's true noise next to it.
Every output is an atomic folder with a manifest (`rewardops.outputs`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.progress import Ticker, ensure_handler, log
from rewardops.curation.settings import CurationSettings
from rewardops.curation.stage1 import latest_iteration, stage1_iterations  # noqa: F401 - the step layer's names
from rewardops.errors import ConfigError, DataError, NotFoundError
from rewardops.outputs import MANIFEST, atomic_output, is_complete, seal_output, verify_output, write_json_atomic

STATE_KIND, MODELS_KIND, SHARD_KIND = "curation-state", "curation-models", "curation-stage2"
PREPARED_KIND = "curation-pool-shard"
POOL, VECTORS = "pool", "pool_vectors"
SETS = ("curated", "recycled", "no_verdict", "discarded")
STAGE2_SETS = ("kept", "discarded", "no_verdict", "recycled")


# -- helpers ---------------------------------------------------------------------------------------
def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # files are never changed in place (every writer replaces), so sharing is safe
    except OSError:
        shutil.copy2(src, dst)


def _copy_state(src: Path, dst: Path) -> None:
    """The state's own files (hard links where possible); never the pool, which stays where it is."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == src
        return [n for n in names if (top and n in (MANIFEST, POOL, VECTORS)) or n.endswith(".lock") or ".tmp-" in n]

    shutil.copytree(src, dst, dirs_exist_ok=True, copy_function=_link_or_copy, ignore=ignore)


def stage1_config(settings: CurationSettings):  # noqa: ANN201 - stage1.Stage1Config
    from rewardops.curation.stage1 import Stage1Config

    return Stage1Config(iterations=settings.iterations, k_max=settings.k_max,
                        human_per_iteration=settings.human_per_iteration, n_examples=settings.n_examples,
                        shard_size=settings.shard_size, judge_budget=settings.judge_budget)


def stage2_config(settings: CurationSettings):  # noqa: ANN201 - stage2.Stage2Config
    from rewardops.curation.stage2 import Stage2Config

    return Stage2Config(band=settings.band, gold_threshold=settings.gold_threshold,
                        judge_disagreements=settings.judge_disagreements, recycle=settings.recycle,
                        recycle_confidence=settings.recycle_confidence, batch_size=settings.batch_size)


def _iteration_number(path: Path) -> int:
    return int(path.name.split("-")[1])


def _embedder(settings: CurationSettings):  # noqa: ANN202
    from rewardops.curation.builders import build_embedder

    return build_embedder(settings)


def _read_state(state: Path) -> dict[str, Any]:
    path = state / "state.json"
    if not path.is_file():
        raise NotFoundError(f"{state}: not a curation state (no state.json); make one with `rewardops curate seed`")
    return json.loads(path.read_text())


# -- seed ------------------------------------------------------------------------------------------
def pool_layout(pool_n: int, settings: CurationSettings) -> tuple[int, int]:
    """(shards, pairs per shard) for a pool of `pool_n` pairs: shards of at most `pool_shard_size`
    pairs, at least `pool_shards` of them, never more shards than pairs."""
    shards = max(1, min(max(settings.pool_shards, math.ceil(pool_n / settings.pool_shard_size)), pool_n))
    return shards, max(1, math.ceil(pool_n / shards))


def pool_root(state: str | Path, pool: str | Path | None = None) -> Path:
    """The seed state that holds the pool a state works on: `pool` when given, the state itself when
    it holds `pool/`, else the seed state its state.json names."""
    if pool is not None:
        return Path(pool)
    state = Path(state)
    if (state / POOL).is_dir():
        return state
    named = _read_state(state).get("pool")
    if named and (Path(named) / POOL).is_dir():
        return Path(named)
    raise FileNotFoundError(f"{state}: its pool is in the seed state {named or '(not named)'}, which is not there; "
                            "pass the seed state's folder as the pool (`--pool`)")


def split_dataset(dataset: str | Path, out: str | Path, settings: CurationSettings,
                  ledger_of: str | Path | None = None) -> dict[str, int]:
    """The seed split, streamed: gold and silver from the head, the rest straight into pool shards
    (the state has `prepared: false` until `assemble_pool`). People's answers (a Label Studio
    ledger) are kept beside `ledger_of` (default `out`): the CLI's final state, not its scratch split."""
    from rewardops.curation.attributes import fill_attributes
    from rewardops.curation.builders import build_annotator, build_attributes
    from rewardops.curation.human import apply_human_verdict
    from rewardops.data.shards import ShardWriter, count_pairs, read_pairs, write_pairs

    dataset, out = Path(dataset), Path(out)
    annotator = build_annotator(settings, output=Path(ledger_of) if ledger_of is not None else out)  # refuses early
    total = count_pairs(dataset)
    gold_n, silver_n = settings.gold_n, settings.silver_n
    if total < gold_n + silver_n + 1:
        raise DataError(f"{dataset}: {total} pairs cannot seed {gold_n} gold + {silver_n} silver and leave a pool "
                         "(lower the settings gold_n / silver_n)")
    stream = read_pairs(dataset)
    head = [next(stream) for _ in range(gold_n)]
    silver = [next(stream) for _ in range(silver_n)]
    made = fill_attributes(head + silver, lambda: build_attributes(settings))
    log.info("seed: people: %d pair(s) sent to %s for the gold seed", len(head), annotator.name)
    answers = annotator.verify(head)
    gold, undecidable = [], 0
    for pair, answer in zip(head, answers):
        if answer is None:
            undecidable += 1
            pair.lineage.append(f"human:{annotator.name}:undecidable")
        else:
            gold.append(apply_human_verdict(pair, answer, annotator.name))
    unreviewed = head[len(answers):]  # a reviewer who stopped early: those pairs stay in the pool
    pool_n = len(unreviewed) + total - gold_n - silver_n
    shards, per_shard = pool_layout(pool_n, settings)
    with atomic_output(out, inputs=[dataset], kind=STATE_KIND) as tmp:
        write_pairs(gold, tmp / "gold", shard_size=settings.shard_size)
        write_pairs(silver, tmp / "silver", shard_size=settings.shard_size)
        ticker = Ticker(f"seed: writing the pool into {shards} shard(s) of <= {per_shard:,}", pool_n)
        with ShardWriter(tmp / POOL, shard_size=per_shard, batch_size=settings.batch_size) as writer:
            writer.write_all(unreviewed)
            for pair in stream:
                writer.write(pair)
                if writer.count % settings.batch_size == 0:
                    ticker.add(settings.batch_size)
        ticker.done = writer.count
        ticker.finish()
        counts = {"gold": len(gold), "silver": len(silver), "pool": writer.count, "pool_shards": len(writer.paths),
                  "undecidable": undecidable, "unreviewed_back_in_pool": len(unreviewed), **made}
        write_json_atomic(tmp / "state.json", {"iteration": 0, "counts": counts, "annotator": annotator.name,
                                               "labelstudio_run": getattr(annotator, "run", None),
                                               "prepared": False, "settings": settings.as_dict()})
    return counts


def prepare_shard(state: str | Path, shard: int, out: str | Path, settings: CurationSettings,
                  embedder: Any = None, generator: Any = None) -> dict[str, Any]:
    """One pool shard of a split state made ready for stage 1 (a fanned-out step), in one pass,
    batch by batch: attributes for the pairs lacking them, then their retrieval vectors. `out` (atomic):
    `pool/part-NNNNN.parquet` and `pool_vectors/part-NNNNN.{npy,json}`."""
    import pyarrow.parquet as pq

    from rewardops.curation.attributes import fill_attributes
    from rewardops.curation.builders import build_attributes
    from rewardops.curation.retrieval import VectorWriter
    from rewardops.data.shards import ShardWriter, iter_batches, shard_paths
    from rewardops.data.schema import PreferencePair

    state = Path(state)
    verify_output(state, STATE_KIND)
    paths = shard_paths(state / POOL)
    if not 0 <= shard < len(paths):
        raise ConfigError(f"{state}: pool shard {shard} out of range (it has {len(paths)} shards)")
    src = paths[shard]
    made: Counter = Counter()
    cache: dict[str, Any] = {"generator": generator}

    def make_generator() -> Any:
        if cache["generator"] is None:
            cache["generator"] = build_attributes(settings)
        return cache["generator"]

    embedder = embedder if embedder is not None else _embedder(settings)
    rows = pq.ParquetFile(src).metadata.num_rows
    with atomic_output(out, inputs=[state], kind=PREPARED_KIND) as tmp:
        ticker = Ticker(f"pool shard {shard}: attributes and embedding ({getattr(embedder, 'name', '?')})", rows)
        vectors = VectorWriter(src.name, rows, tmp / VECTORS, embedder)
        with ShardWriter(tmp / POOL, shard_size=1 << 62, batch_size=settings.batch_size, first=shard) as writer:
            for batch in iter_batches(src, batch_size=settings.batch_size):
                pairs = [PreferencePair.from_row(r) for r in batch.to_pylist()]
                made.update(fill_attributes(pairs, make_generator))
                writer.write_all(pairs)
                vectors.add(pairs)  # after the attributes: the embedded text starts with them
                ticker.add(len(pairs))
        info_vectors = vectors.close()
        ticker.finish(f"attributes {made['attributes_generated']} generated, {made['attributes_failed']} failed")
        info = {"shard": shard, "input": src.name, "pairs": writer.count, "attributes_generated": made["attributes_generated"],
                "attributes_failed": made["attributes_failed"], "embedder": info_vectors["embedder"],
                "dim": info_vectors["dim"]}
        write_json_atomic(tmp / "prepared.json", info)
    return info


def assemble_pool(state: str | Path, parts: Sequence[str | Path], out: str | Path) -> dict[str, int]:
    """A split state plus its prepared pool shards -> the state stage 1 reads (files linked or
    copied, never loaded)."""
    state = Path(state)
    verify_output(state, STATE_KIND)
    infos = []
    for part in sorted(Path(p) for p in parts):
        verify_output(part, PREPARED_KIND)
        infos.append((part, json.loads((part / "prepared.json").read_text())))
    infos.sort(key=lambda x: x[1]["shard"])
    expected = len(list((state / POOL).glob("part-*.parquet")))
    if [i["shard"] for _, i in infos] != list(range(expected)):
        raise DataError(f"{state}: {expected} pool shard(s), but the prepared parts cover shards "
                         f"{[i['shard'] for _, i in infos]}; prepare every shard once")
    with atomic_output(out, inputs=[state, *(p for p, _ in infos)], kind=STATE_KIND) as tmp:
        _copy_state(state, tmp)
        (tmp / POOL).mkdir()
        (tmp / VECTORS).mkdir()
        for part, _ in infos:
            for sub in (POOL, VECTORS):
                for f in sorted((part / sub).iterdir()):
                    if f.name != MANIFEST:
                        _link_or_copy(str(f), str(tmp / sub / f.name))
        seal_output(tmp / POOL, kind="dataset")
        info = _read_state(tmp)
        generated = sum(i["attributes_generated"] for _, i in infos)
        failed = sum(i["attributes_failed"] for _, i in infos)
        counts = {**info["counts"], "pool": sum(i["pairs"] for _, i in infos), "pool_shards": len(infos),
                  "attributes_generated": info["counts"].get("attributes_generated", 0) + generated,
                  "attributes_failed": info["counts"].get("attributes_failed", 0) + failed}
        info.update({"counts": counts, "prepared": True, "embedder": infos[0][1]["embedder"] if infos else None})
        write_json_atomic(tmp / "state.json", info)
    return counts


def seed_split(dataset: str | Path, out: str | Path, settings: CurationSettings) -> dict[str, int]:
    """The whole seed in one process (the CLI and DVC route): split, prepare every pool shard,
    assemble. Intermediate folders sit beside `out` (`.NAME.split`, `.NAME.prepared/`) until the
    state is in place, so a rerun after a crash resumes at the first unprepared shard."""
    from rewardops.data.shards import shard_paths

    ensure_handler()
    out = Path(out)
    split = out.with_name(f".{out.name}.split")
    prepared = out.with_name(f".{out.name}.prepared")
    if not is_complete(split, STATE_KIND):
        split_dataset(dataset, split, settings, ledger_of=out)
    embedder = _embedder(settings)
    parts = []
    for i in range(len(shard_paths(split / POOL))):
        part = prepared / f"shard-{i:05d}"
        if not is_complete(part, PREPARED_KIND):
            prepare_shard(split, i, part, settings, embedder=embedder)
        parts.append(part)
    counts = assemble_pool(split, parts, out)
    shutil.rmtree(prepared, ignore_errors=True)
    shutil.rmtree(split, ignore_errors=True)
    return counts


# -- stage 1 ---------------------------------------------------------------------------------------
def _advance(source: Path, out: Path, iteration: int, settings: CurationSettings, inputs: Sequence[Path],
             pool: Path | None = None, tracker: Any = None) -> dict[str, float]:
    from rewardops.curation.builders import build_annotator, build_judges, build_rm_trainer
    from rewardops.curation.stage1 import Stage1Loop, iteration_figure

    root = pool_root(source, pool)
    verify_output(source, STATE_KIND, hashes=root != source)
    if root != source:
        verify_output(root, STATE_KIND, hashes=False)  # the pool: listing and sizes (hashed when written)
    done = [_iteration_number(p) for p in stage1_iterations(source)]
    following = (max(done) if done else 0) + 1
    if following != iteration:
        raise DataError(f"{source}: holds stage-1 iterations {done or 'none'}, so the next iteration is {following}, "
                         f"not {iteration}")
    if iteration > settings.iterations:
        raise ConfigError(f"stage-1 iteration {iteration} is past the settings' iterations={settings.iterations}: set "
                         f"iterations {iteration} or more in the settings (a pipeline compiled with --iterations N "
                         f"needs settings with iterations N, e.g. -p settings='{{\"profile\": \"{settings.profile}\", "
                         f"\"iterations\": N}}')")
    run = _read_state(source).get("labelstudio_run")  # one Label Studio run id from the seed on
    annotator, judges = build_annotator(settings, output=out, run=run), build_judges(settings)
    embedder = _embedder(settings)
    trainer = build_rm_trainer(settings, embedder)
    with atomic_output(out, inputs=[*inputs, root], kind=STATE_KIND) as tmp:
        _copy_state(source, tmp)
        loop = Stage1Loop(trainer, embedder, annotator, judges, stage1_config(settings), tracker=tracker)
        state = loop.resume(tmp / "gold", tmp / "silver", root / POOL, tmp / "stage1", vectors_dir=root / VECTORS,
                            embed_missing=False)
        report = loop.run_iteration(state, iteration)
        if tracker is not None:
            tracker.log_figure(iteration_figure(state.reports), "stage1_iterations.png")
        info = _read_state(tmp)
        info.update({"iteration": iteration, "settings": settings.as_dict(), "pool": str(root.resolve()),
                     "labelstudio_run": getattr(annotator, "run", None) or run})
        write_json_atomic(tmp / "state.json", info)
    return report.metrics()


def stage1_iteration(state: str | Path, out: str | Path, iteration: int, settings: CurationSettings,
                     pool: str | Path | None = None) -> dict[str, float]:
    """`state` (with iterations 1..iteration-1) -> `out` with one more (the KFP step). `pool`: the
    seed state holding the pool (default: `pool_root(state)`)."""
    if iteration < 1:
        raise ConfigError(f"iteration={iteration}: stage-1 iterations count from 1")
    ensure_handler()
    return _advance(Path(state), Path(out), iteration, settings, inputs=[Path(state)],
                    pool=Path(pool) if pool is not None else None)


def stage1(state: str | Path, out: str | Path, settings: CurationSettings, tracker: Any = None) -> list[dict[str, float]]:
    """Every stage-1 iteration of the settings into `out` (the CLI and DVC step); each iteration is
    committed atomically, and a rerun continues after the last one `out` holds. `tracker`: an
    MLflow tracker for per-iteration metrics (optional)."""
    ensure_handler()
    state, out = Path(state), Path(out)
    reports = []
    for iteration in range(1, settings.iterations + 1):
        if is_complete(out, STATE_KIND) and any(_iteration_number(p) == iteration for p in stage1_iterations(out)):
            continue
        source = out if iteration > 1 else state
        reports.append(_advance(source, out, iteration, settings, inputs=[state] if source == state else [],
                                tracker=tracker))
    return reports


# -- the stage-2 models ----------------------------------------------------------------------------
def _gold_examples(settings: CurationSettings, gold_dir: Path, embedder: Any):  # noqa: ANN202
    from rewardops.curation.retrieval import ExampleRetriever
    from rewardops.data.shards import read_pairs

    return ExampleRetriever(list(read_pairs(gold_dir)), embedder, k=settings.n_examples)


def make_filter(settings: CurationSettings, best: Any, gold: Any, gold_dir: Path | None, embedder: Any = None,
                protected: tuple[set[str], set[str]] | None = None):  # noqa: ANN201
    from rewardops.curation.builders import build_attributes, build_judges
    from rewardops.curation.stage2 import Stage2Filter

    judges = examples = None
    if settings.stage2_judges:
        judges = build_judges(settings)
        if gold_dir is not None:
            examples = _gold_examples(settings, gold_dir, embedder if embedder is not None else _embedder(settings))
    return Stage2Filter(best, gold, stage2_config(settings), judges=judges, examples=examples,
                        attributes=lambda: build_attributes(settings), protected=protected)


def gold_replay(settings: CurationSettings, flt: Any, pairs: Sequence[Any], source: str) -> dict[str, Any]:
    """Gold pairs (all, or the first `noise_gold_n` when set) through the stage-2 rule as labelled
    and flipped (`stage2.replay_outcomes`): what `stage2.decide` reads."""
    from rewardops.curation.stage2 import replay_outcomes

    pairs = list(pairs)[: settings.noise_gold_n or None]
    return {"pairs": len(pairs), "source": source, "outcomes": replay_outcomes(flt, pairs)}


def gold_rm(gold: str | Path, out: str | Path, settings: CurationSettings) -> dict[str, Any]:
    """The gold RM from (imported) gold pairs: `out` gets rm.json, the weights, train/ and calibration/."""
    from rewardops.curation.rms import train_gold_rm

    with atomic_output(out, inputs=[gold], kind="curation-rm") as tmp:
        scorer, _, pairs = train_gold_rm(settings, Path(gold), tmp)
        info = json.loads((tmp / "rm.json").read_text())
    return {"name": scorer.name, "temperature": scorer.temperature, "gold_pairs": len(pairs),
            "crossfit_folds": info.get("crossfit_folds"), "out_of_fold_accuracy": info.get("gold_accuracy")}


def final_models(state: str | Path, out: str | Path, settings: CurationSettings) -> dict[str, Any]:
    """The best RM, the gold RM and the gold replay stage 2 needs, trained once."""
    from rewardops.curation.rms import train_best_rm_crossfit, train_gold_rm, train_rm

    state = Path(state)
    verify_output(state, STATE_KIND)
    latest = latest_iteration(state)
    if _iteration_number(latest) != settings.iterations:
        raise DataError(f"{state}: its last stage-1 iteration is {_iteration_number(latest)} but the settings ask for "
                         f"{settings.iterations}; run the missing iterations (or compile the pipeline with --iterations "
                         f"{settings.iterations})")
    embedder = _embedder(settings) if settings.rm == "embedding-bt" or settings.stage2_judges else None
    with atomic_output(out, inputs=[state], kind=MODELS_KIND) as tmp:
        best = train_rm(settings, latest / "silver", latest / "gold", tmp / "best_rm", embedder)
        gold, crossfit, pairs = train_gold_rm(settings, latest / "gold", tmp / "gold_rm", embedder)
        if crossfit is None:
            replay = {"pairs": 0, "source": "too few gold pairs to cross-fit the gold RM", "outcomes": []}
        else:
            # every gold pair is replayed by models that never saw it: the gold RM of its fold (trained
            # without it) and the best RM of its fold (checkpoint selected and calibrated without it)
            best_crossfit = train_best_rm_crossfit(settings, latest / "silver", tmp / "gold_rm", crossfit.fold_of,
                                                   tmp / "best_rm" / "folds", embedder)
            replay = gold_replay(settings, make_filter(settings, best_crossfit, crossfit, latest / "gold", embedder),
                                 pairs, "every gold pair, scored by the best RM and the gold RM of its cross-fitting "
                                 "fold (neither trained, selected nor calibrated on it)")
        write_json_atomic(tmp / "replay.json", replay)
        info = {"from": latest.name, "best_rm": best.name, "gold_rm": gold.name, "best_rm_temperature": best.temperature,
                "gold_rm_temperature": gold.temperature, "replay_pairs": replay["pairs"]}
        write_json_atomic(tmp / "models.json", info)
    return info


# -- stage 2 ---------------------------------------------------------------------------------------
def protected_keys(latest: Path) -> tuple[set[str], set[str]]:
    """Ids and content keys of stage 1's final gold and silver (recycling never contradicts or repeats them)."""
    from rewardops.curation.stage2 import unordered_key
    from rewardops.data.shards import read_pairs

    ids, keys = set(), set()
    for name in ("gold", "silver"):
        for p in read_pairs(latest / name):
            ids.add(p.id)
            keys.add(unordered_key(p))
    return ids, keys


def stage2_shard(state: str | Path, models: str | Path, shard: int, out: str | Path,
                 settings: CurationSettings, pool: str | Path | None = None) -> dict[str, Any]:
    """One pool shard of `state` through the consistency filter into the atomic folder `out`.
    `pool`: the seed state holding the pool (default: `pool_root(state)`)."""
    from rewardops.curation.rms import load_scorer

    state, models = Path(state), Path(models)
    root = pool_root(state, pool)
    # the pool's listing and sizes here; this shard's content hash when it is read (never the whole pool's)
    verify_output(state, STATE_KIND, hashes=root != state)
    if root != state:
        verify_output(root, STATE_KIND, hashes=False)
    verify_output(models, MODELS_KIND)
    latest = latest_iteration(state)
    embedder = _embedder(settings) if settings.rm == "embedding-bt" or settings.stage2_judges else None
    best, gold = load_scorer(models / "best_rm", embedder), load_scorer(models / "gold_rm", embedder)
    flt = make_filter(settings, best, gold, latest / "gold", embedder, protected=protected_keys(latest))
    inputs = [state, models] if root == state else [state, root, models]
    with atomic_output(out, inputs=inputs, kind=SHARD_KIND) as tmp:
        summary = flt.run(root / POOL, tmp, only=[shard], progress=False)
    return summary


def shard_count(state: str | Path, pool: str | Path | None = None) -> int:
    """Pool shards of a state (what the fanned-out steps iterate over)."""
    from rewardops.data.shards import shard_paths

    return len(shard_paths(pool_root(state, pool) / POOL))


def stage2(state: str | Path, models: str | Path, out: str | Path, settings: CurationSettings,
           pool: str | Path | None = None) -> list[Path]:
    """Every pool shard into `out/shard-XXXXX/` (each atomic: a rerun redoes only missing shards)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(shard_count(state, pool)):
        part = out / f"shard-{i:05d}"
        if not is_complete(part, SHARD_KIND):
            stage2_shard(state, models, i, part, settings, pool=pool)
        parts.append(part)
    return parts


# -- the published sets ----------------------------------------------------------------------------
def stage2_report(parts: Sequence[Path], models: Path, settings: CurationSettings | None = None) -> dict[str, Any]:
    """Counts, the decision with each set's estimated noise (gold replay) and true noise (when truth
    is known) over shard folders."""
    from rewardops.curation.shardrun import summarize
    from rewardops.curation.stage2 import decide

    settings = settings or CurationSettings()

    outputs: Counter = Counter()
    counters: Counter = Counter()
    for part in parts:
        s = summarize(part)
        outputs.update(s["outputs"])
        counters.update(s["counters"])
    replay_path = Path(models) / "replay.json"
    replay = json.loads(replay_path.read_text()) if replay_path.is_file() else {}
    truth = {name: round(counters[f"truth_wrong:{name}"] / counters[f"truth_known:{name}"], 4)
             for name in STAGE2_SETS if counters.get(f"truth_known:{name}")}
    kr = [counters.get(f"truth_known:{n}", 0) for n in ("kept", "recycled")]
    if sum(kr):
        truth["kept+recycled"] = round((counters["truth_wrong:kept"] + counters["truth_wrong:recycled"]) / sum(kr), 4)
    known = sum(counters.get(f"truth_known:{n}", 0) for n in ("kept", "discarded", "no_verdict"))
    if known:
        truth["pool"] = round(sum(counters[f"truth_wrong:{n}"] for n in ("kept", "discarded", "no_verdict")) / known, 4)
    counts = {name: int(outputs.get(name, 0)) for name in STAGE2_SETS}
    decision = decide(counts, replay.get("outcomes", []), settings.rm_skill_z, seed=settings.seed,
                      enforce=settings.keep_all_if_rms_untrusted, counters=counters)
    if truth:  # estimated next to actual, set by set
        for name, est in (decision.get("noise") or {}).items():
            est["true"] = truth.get(name)
    return {"counts": counts, "decision": decision, "filtered": decision["filter"], "true_noise": truth or None,
            "counters": {k: int(v) for k, v in sorted(counters.items())}}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _key_digest(pair: Any) -> int:
    from rewardops.curation.stage2 import unordered_key

    return int(unordered_key(pair)[:16], 16)


def _batches(folders: Sequence[Path], size: int) -> Iterator[list[Any]]:
    from rewardops.data.shards import read_pairs

    batch: list[Any] = []
    for folder in folders:
        for pair in read_pairs(folder, batch_size=size):
            batch.append(pair)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def merge(state: str | Path, models: str | Path, parts: Sequence[str | Path], outs: Mapping[str, str | Path],
          settings: CurationSettings, report: str | Path | None = None) -> dict[str, Any]:
    """The published sets (see the module docstring) into `outs[name]` (each an atomic dataset) and
    the report (returned; also written to `report` when given)."""
    from rewardops.data.dedup import DigestSet
    from rewardops.data.shards import ShardWriter

    ensure_handler()
    state, models = Path(state), Path(models)
    verify_output(state, STATE_KIND)
    parts = sorted(Path(p) for p in parts)
    for part in parts:
        verify_output(part, SHARD_KIND)
    missing = sorted(set(SETS) - set(outs))
    if missing:
        raise ConfigError(f"merge: no output folder for {missing}")
    latest = latest_iteration(state)
    stage2_part = stage2_report(parts, models, settings)
    # filtering not shown to help: every pool pair is kept as labelled, nothing recycled or discarded
    kept_sets = ("kept",) if stage2_part["filtered"] else ("kept", "discarded", "no_verdict")
    counts = {"gold": 0, "silver": 0, "stage2_kept": 0, "stage2_already_in_stage1": 0, "recycled": 0,
              "recycled_duplicates": 0, "no_verdict": 0, "discarded": 0}
    seen_ids, seen_keys = DigestSet(), DigestSet()  # uint64 digests: ~16 bytes a pair, never the pairs
    inputs = [state, models, *parts]

    def new_pairs(folders: Sequence[Path]) -> Iterator[tuple[Any, bool]]:
        """(pair, first time its id and its content are seen), a batch at a time."""
        for batch in _batches(folders, settings.batch_size):
            fresh_id = seen_ids.add_batch(np.fromiter((_digest(p.id) for p in batch), dtype=np.uint64, count=len(batch)))
            fresh_key = seen_keys.add_batch(np.fromiter((_key_digest(p) for p in batch), dtype=np.uint64,
                                                        count=len(batch)))
            yield from zip(batch, (fresh_id & fresh_key).tolist())

    ticker = Ticker("merge", None)
    with ShardWriter(outs["curated"], shard_size=settings.shard_size, inputs=inputs) as writer:
        for name in ("gold", "silver"):
            for pair, fresh in new_pairs([latest / name]):
                if fresh:
                    writer.write(pair)
                    counts[name] += 1
        kept_all = len(kept_sets) > 1
        for pair, fresh in new_pairs([part / name for part in parts for name in kept_sets]):
            if fresh:
                if kept_all:
                    pair.lineage.append("stage2:kept_all")
                writer.write(pair)
                counts["stage2_kept"] += 1
            else:
                counts["stage2_already_in_stage1"] += 1
            ticker.add(1)
    published = parts if stage2_part["filtered"] else []  # kept all: nothing recycled, discarded or left open
    with ShardWriter(outs["recycled"], shard_size=settings.shard_size, inputs=inputs) as writer:
        for pair, fresh in new_pairs([part / "recycled" for part in published]):
            if fresh:
                writer.write(pair)
                counts["recycled"] += 1
            else:
                counts["recycled_duplicates"] += 1
            ticker.add(1)
    for name in ("no_verdict", "discarded"):
        with ShardWriter(outs[name], shard_size=settings.shard_size, inputs=inputs) as writer:
            for part in published:
                for batch in _batches([part / name], settings.batch_size):
                    writer.write_all(batch)
                    counts[name] += len(batch)
                    ticker.add(len(batch))
    ticker.finish()
    result = {"sets": counts, "curated": counts["gold"] + counts["silver"] + counts["stage2_kept"],
              "stage2": stage2_part, "settings_profile": settings.profile}
    print(f"stage 2 decision: {stage2_part['decision']['why']}", flush=True)
    if counts["no_verdict"]:
        result["no_verdict_note"] = (f"{counts['no_verdict']} pairs had no judge verdict: they are in no_verdict/, "
                                     "neither kept nor dropped; run stage 2 on them again once the judges answer")
    if report is not None:
        write_json_atomic(report, result)
    return result
