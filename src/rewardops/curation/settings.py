"""The one curation settings object: every curation default is declared here, once.

`CurationSettings` is frozen. Every route builds it with `CurationSettings.parse(...)` at its
edge (the CLI's `--settings`, a KFP component's `settings` string parameter, a DVC stage's
`--settings params.yaml:curation`) and passes the object on; nothing below the edge re-parses.

`parse` accepts:
- nothing / "" -> the `default` profile;
- a profile name: `default` (real people, real judges) or `demo` (the offline demo: simulated
  annotators on the generated world, the local SmolLM2 judge in stage 1);
- a JSON object or YAML mapping (text), optionally with `profile: NAME` as the base;
- a file `PATH.json|.yaml|.yml`, or `PATH.yaml:SECTION` for one section of a file (params.yaml);
- a mapping or an existing `CurationSettings`.
`with_overrides(**kw)` applies the CLI's short forms (`--annotator simulated:0.05`,
`--judge openai:MODEL`, `--rm transformer:demo-smollm2-135m`) on top.

Part specs (`kind[:ARG]`) are checked against the registries in `kinds` when the object is
made, so a typo is refused at the edge, with the known kinds listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from rewardops.curation import kinds
from rewardops.errors import ConfigError


PROFILE_NAMES = ("default", "demo")


@dataclass(frozen=True)
class CurationSettings:
    profile: str = "default"
    # -- who labels -----------------------------------------------------------------------------
    # terminal | labelstudio | simulated[:ERR]  (simulated: only on data with known truth)
    annotator: str = "terminal"
    # labelstudio: people per pair (the majority decides; agreement is reported when 2+)
    annotators_per_pair: int = 1
    labelstudio_skip_limit: int = 2  # a pair skipped by this many people is undecidable; 0: no skip button
    labelstudio_annotators: tuple[str, ...] = ()  # the only emails whose answers count; empty: everyone
    labelstudio_graded: bool = False  # the graded scale (A much / slightly better, about equal, ...)
    # openai[:MODEL] | local[:BACKBONE] | simulated[:ERR]; several = a cross-model ensemble
    judges: tuple[str, ...] = ("openai",)
    judge_samples: int = 3  # self-consistency samples per judge model
    judge_merge: str = "majority"  # cross-model merge: majority | unanimous
    local_judge_examples: int = 2  # retrieved gold examples in a local judge's prompt (small context)
    # openai[:MODEL] | local[:BACKBONE] | heuristic (offline, rule-based); used only for pairs lacking them
    attributes: str = "openai"
    # -- models ---------------------------------------------------------------------------------
    rm: str = "hashed-bt"  # hashed-bt | embedding-bt | transformer:SIZE
    rm_max_steps: int = 0  # transformer RMs: steps per training (0: the catalog's)
    rm_select_epochs: int = 2  # transformer RMs: candidates of 1..N epochs, the best on gold is kept
    embedder: str = "all-MiniLM-L6-v2"  # retrieval: a sentence-transformers model, or `hashed` (offline)
    # the gold RM is cross-fitted in round(1 / this) folds: each fold's RM, trained on the rest,
    # scores its fold (the temperature and stage 2's decision use those out-of-fold probabilities)
    calibration_fraction: float = 0.25
    # -- seed split -----------------------------------------------------------------------------
    gold_n: int = 64  # first pairs verified by the annotator: the gold seed
    silver_n: int = 256  # next pairs with their original labels: the silver seed
    # the rest is the unverified pool, cut into shards of at most `pool_shard_size` pairs (so the
    # shard count, and the fan-out of attributes, embedding and stage 2, follows the pool size)
    # and at least `pool_shards` shards
    pool_shard_size: int = 250_000
    pool_shards: int = 4
    # -- stage 1 --------------------------------------------------------------------------------
    iterations: int = 2
    human_per_iteration: int = 16
    k_max: int = 8  # the error-driven retrieval's k for a gold pair the RM gets wrong
    n_examples: int = 8  # retrieved gold examples per judge prompt
    judge_budget: int = 0  # most pairs the judges label per iteration; 0: no cap
    # -- stage 2 --------------------------------------------------------------------------------
    band: float = 0.1  # |p_best - 0.5| <= band is uncertain and goes to the judges
    gold_threshold: float = 0.5  # the gold RM agrees iff its calibrated p > this
    judge_disagreements: bool = True  # pairs the best RM rejects also go to the judges (the paper)
    stage2_judges: bool = True  # False: the best RM alone decides uncertain pairs
    recycle: bool = True  # write confidently reversed discarded pairs, flipped, to `recycled`
    recycle_confidence: float = 0.9  # flip only when BOTH calibrated RMs give p <= 1 - this
    # stage 2 filters only when kept + recycled is estimated cleaner than the pool at this one-sided
    # z (1.645: 95%), from every gold pair replayed through the rule both ways (stage2.decide);
    # otherwise it keeps every pool pair as labelled and says why (never worse than the pool).
    # `keep_all_if_rms_untrusted: false` applies the paper's rule as is, whatever the estimate says.
    rm_skill_z: float = 1.645
    keep_all_if_rms_untrusted: bool = True
    noise_gold_n: int = 0  # gold pairs replayed to estimate each set's noise (0: every gold pair)
    batch_size: int = 1024
    shard_size: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.profile not in PROFILE_NAMES:
            problems.append(f"profile {self.profile!r}: use one of {', '.join(PROFILE_NAMES)}")
        problems += kinds.spec_problems("annotator", kinds.ANNOTATORS, self.annotator)
        if not self.judges:
            problems.append("judges: at least one judge spec (e.g. openai or openai:MODEL)")
        for spec in self.judges:
            problems += kinds.spec_problems("judges", kinds.JUDGES, spec)
        problems += kinds.spec_problems("attributes", kinds.ATTRIBUTE_GENERATORS, self.attributes)
        problems += kinds.spec_problems("rm", kinds.RMS, self.rm)
        problems += self._endpoint_problems()
        if not self.embedder:
            problems.append("embedder: a sentence-transformers model name or path, or `hashed`")
        if self.judge_merge not in ("majority", "unanimous"):
            problems.append(f"judge_merge {self.judge_merge!r}: use majority or unanimous")
        if not 0.0 <= self.band < 0.5:
            problems.append(f"band={self.band}: at least 0 and below 0.5")
        if not 0.0 < self.calibration_fraction < 1.0:
            problems.append(f"calibration_fraction={self.calibration_fraction}: between 0 and 1 (exclusive)")
        for name in ("gold_threshold", "recycle_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)}: a probability between 0 and 1")
        if self.rm_skill_z < 0:
            problems.append(f"rm_skill_z={self.rm_skill_z}: 0 or more (0: filter whenever kept + recycled is "
                            "estimated cleaner than the pool at all)")
        if self.recycle_confidence < 0.5:
            problems.append(f"recycle_confidence={self.recycle_confidence}: at least 0.5 (a reversal must be confident)")
        for name in ("judge_budget", "rm_max_steps", "noise_gold_n"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)}: 0 or more")
        for name in ("judge_samples", "human_per_iteration", "k_max", "gold_n", "silver_n", "pool_shards", "pool_shard_size",
                     "iterations", "batch_size", "shard_size", "rm_select_epochs", "annotators_per_pair"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)}: at least 1")
        if self.labelstudio_skip_limit < 0:
            problems.append(f"labelstudio_skip_limit={self.labelstudio_skip_limit}: 0 (no skip button) or more")
        bad = [a for a in self.labelstudio_annotators if "@" not in a]
        if bad:
            problems.append(f"labelstudio_annotators {bad}: the people's Label Studio account emails")
        if self.n_examples < 0 or self.local_judge_examples < 0:
            problems.append("n_examples / local_judge_examples: 0 or more")
        if problems:
            raise SettingsError("curation settings: " + "; ".join(problems))

    def _endpoint_problems(self) -> list[str]:
        """Servers come from the environment (on a cluster: the chart's ConfigMap and Secrets:
        LABEL_STUDIO_URL, REWARDOPS_LLM_BASE_URL), never from settings: a setting naming a host
        would send the Label Studio token or the LLM key wherever it points."""
        problems = []
        kind, sep, arg = self.annotator.partition(":")
        if kind == "labelstudio" and sep:
            problems.append(f"annotator {self.annotator!r}: the Label Studio server is not a setting; write annotator "
                            "labelstudio and set LABEL_STUDIO_URL (on a cluster the chart's ConfigMap sets it)")
        specs = [("judges", j) for j in self.judges] + [("attributes", self.attributes), ("rm", self.rm),
                                                          ("embedder", f"embedder:{self.embedder}")]
        for what, spec in specs:
            arg = str(spec).partition(":")[2]
            if "://" in arg or arg.startswith("//"):
                problems.append(f"{what} {spec!r}: names a host; servers are not settings (an OpenAI-compatible "
                                "judge's server is REWARDOPS_LLM_BASE_URL, set by the chart's ConfigMap); write a "
                                "model name")
        return problems

    # -- reading --------------------------------------------------------------------------------
    @classmethod
    def parse(cls, value: Any = None, where: str = "settings") -> CurationSettings:
        """Settings from a profile name, JSON/YAML text, a file (`PATH[:SECTION]`), a mapping or an object."""
        if isinstance(value, CurationSettings):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return PROFILES["default"]
        if isinstance(value, Mapping):
            return cls.from_mapping(value, where)
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a profile name, JSON/YAML text or a file, got {type(value).__name__}")
        text = value.strip()
        if text in PROFILES:
            return PROFILES[text]
        source = None if text.startswith("{") or "\n" in text else _file_source(text)
        if source is not None:
            return cls.from_mapping(source[0], source[1])
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{where}: not valid JSON ({exc})") from None
        else:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise SettingsError(f"{where}: not valid YAML ({exc})") from None
        if isinstance(data, str) or data is None:
            raise SettingsError(f"{where}: {text!r} is neither a profile ({', '.join(PROFILES)}), a settings file "
                                "nor a JSON/YAML mapping of settings")
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where}: must be a JSON/YAML mapping of settings, got {type(data).__name__}")
        return cls.from_mapping(data, where)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "settings") -> CurationSettings:
        values = dict(values)
        profile = values.pop("profile", "default")
        if profile not in PROFILES:
            raise SettingsError(f"{where}: profile {profile!r}: use one of {', '.join(PROFILES)}")
        return PROFILES[profile].with_overrides(where=where, **values)

    def with_overrides(self, where: str = "settings", **values: Any) -> CurationSettings:
        """A copy with `values` applied (None values are ignored: an option left unset)."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"{where}: unknown curation settings {unknown}; known: {sorted(known)}")
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            clean[key] = _coerce(key, value, getattr(self, key), where)
        return replace(self, **clean) if clean else self

    # -- writing --------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["judges"] = list(self.judges)
        d["labelstudio_annotators"] = list(self.labelstudio_annotators)
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


class SettingsError(ConfigError):
    """Curation settings that cannot work; the message names the setting and what to use."""


def _coerce(key: str, value: Any, current: Any, where: str) -> Any:
    bad = SettingsError(f"{where}: {key}={value!r}: expected {type(current).__name__}")
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{where}: {key}={value!r}: a list of specs (or one comma-separated string)")
        return tuple(value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad
        return value
    return value


def _file_source(text: str) -> tuple[Mapping[str, Any], str] | None:
    """(mapping, where) when `text` names a settings file (`PATH` or `PATH:SECTION`), else None."""
    path_text, section = text, None
    try:
        whole = Path(text).is_file()
    except OSError:  # not a usable path (too long, ...)
        return None
    if not whole and ":" in text:
        path_text, _, section = text.rpartition(":")
    path = Path(path_text)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return None
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read settings ({exc})") from None
    where = f"{path}" + (f" [{section}]" if section else "")
    if section:
        if not isinstance(data, Mapping) or not isinstance(data.get(section), Mapping):
            raise SettingsError(f"{where}: no mapping named {section!r} in the file")
        data = data[section]
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where}: must be a mapping of settings")
    return data, where


PROFILES: dict[str, CurationSettings] = {}
PROFILES["default"] = CurationSettings()
# The offline demo (`rewardops run demo`, `make demo`, the compiled demo pipeline): simulated people
# on the generated world's known truth; the local SmolLM2 judge in stage 1 with a budget a 135M
# model on 2 CPU cores labels in minutes, one retrieved example; stage 2 keeps the gold-RM check
# and lets the best RM decide the rest; two pool shards. Attributes come with the world. A gold
# seed of 200 pairs, about what a team verifies by hand, is enough for stage 2's decision to show
# that filtering cleans the demo world (paper §3.3; `stage2.decide`).
PROFILES["demo"] = replace(
    PROFILES["default"], profile="demo", annotator="simulated:0.05", judges=("local",), judge_samples=1,
    attributes="heuristic", judge_budget=24, local_judge_examples=1, stage2_judges=False, pool_shards=2,
    gold_n=200,
)
