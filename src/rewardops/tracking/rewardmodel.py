"""Registering an exported reward model so MLflow can serve rewards.

`log_reward_model` saves the Hugging Face folder as an MLflow pyfunc (`serving_model.py`: input
conversations, output the raw reward per row, same rendering as training and evaluation), with
a signature, an input example and a model card (`README.md` in the export and the version's
description), logs it under the run as `model`, registers a new version of `name` carrying the
run's `rewardops.*` lineage tags and the digests of the logged code and weights
(`rewardops.digest.code`, `rewardops.digest.weights`; loading checks them, see
`rewardops.evaluation.modelref`), and points `alias` at it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rewardops.evaluation.modelref import CODE_DIGEST_TAG, WEIGHTS_DIGEST_TAG, model_digests
from rewardops.evaluation.report import md_code, md_escape, registry_score
from rewardops.tracking.lineage import strip_userinfo

__all__ = ["check_export", "input_example", "log_reward_model", "model_card", "signature"]

ARTIFACT_PATH = "model"
SERVING_CODE = Path(__file__).with_name("serving_model.py")


def check_export(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model checkpoint folder not found: {model_dir}")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a transformers checkpoint (no config.json)")
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer files; save the tokenizer next to the model "
            "(tokenizer.save_pretrained) so the registered model can be served"
        )


def input_example() -> Any:
    import pandas as pd

    convo = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4."}]
    return pd.DataFrame({"messages": [convo]})


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

    message = Object([Property("role", "string"), Property("content", "string")])
    inputs = Schema([
        ColSpec(Array(message), "messages", required=False),
        ColSpec("string", "prompt", required=False),
        ColSpec("string", "response", required=False),
    ])  # fmt: skip
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "reward")]))


def serving_requirements() -> list[str]:
    """Pinned requirements (MLflow's default list would add torchvision, which a text RM never needs)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "transformers", "torch", "safetensors", "tokenizers", "pandas"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def _table(scores: dict[str, float]) -> list[str]:
    if not scores:
        return ["Not evaluated yet (`rewardops eval --model models:/NAME/VERSION`)."]
    score = registry_score(scores)
    lines = ["| Benchmark | Score (%) |", "|---|---:|"]
    lines += [f"| {md_escape(name)} | {float(value):.2f} |" for name, value in scores.items()]
    if score is not None:
        lines.append(f"| **registry score** ({score.describe()}) | **{score.value:.2f}** |")
    return lines


def model_card(model_dir: Path, tags: dict[str, str], scores: dict[str, float] | None = None, name: str = "") -> str:
    """Markdown: backbone, data version and size, training settings, evaluation, intended use, limits."""
    recorded: dict[str, Any] = {}
    meta = model_dir / "rewardops_training.json"
    if meta.is_file():
        try:
            recorded = json.loads(meta.read_text())
        except ValueError:
            recorded = {}
    config = recorded.get("config") or {}
    state = recorded.get("state") or {}
    keep = ("size", "backbone", "profile", "lr", "epochs", "max_steps", "global_batch", "micro_batch",
            "max_length", "zero_stage", "seed", "warmup_ratio", "weight_decay")
    settings = {k: config[k] for k in keep if config.get(k) not in (None, "")}
    data = {k.removeprefix("rewardops.data."): v for k, v in tags.items() if k.startswith("rewardops.data.")}
    e, c = md_escape, md_code  # every value below comes from data, tags or files: shown, never interpreted
    lines = [
        f"# {e(name or 'RewardOps reward model')}",
        "",
        "A Bradley-Terry reward model trained with RewardOps (the Skywork-Reward-V2 recipe): it reads a",
        "conversation rendered with the backbone's chat template and returns one raw reward (higher is",
        "better) at the last token of the final assistant turn.",
        "",
        "## Model",
        f"- backbone: {c(config.get('backbone', tags.get('rewardops.backbone', 'unknown')))}",
        f"- size: {c(config.get('size', tags.get('rewardops.size', 'unknown')))}",
        f"- steps trained: {e(state.get('step', 'unknown'))}",
        "",
        "## Data",
        f"- registry: {c(strip_userinfo(data.get('registry', 'unknown')))}  revision: {c(data.get('rev', data.get('git_rev', 'unknown')))}",
        f"- path: {c(data.get('path', 'unknown'))}  DVC md5: {c(data.get('md5', data.get('dvc_hash', 'unknown')))}",
        f"- pairs: {e(data.get('rows', 'unknown'))}",
        "- get the exact rows back: `rewardops data get --model models:/NAME@ALIAS -o DIR`",
        "",
        "## Training settings",
        *[f"- {e(k)}: {c(v)}" for k, v in settings.items()],
        "",
        "## Evaluation (percent)",
        *_table(scores or {}),
        "",
        "## Use",
        "Serve with `mlflow models serve -m models:/NAME@champion` and POST",
        '`{"dataframe_records": [{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}]}`',
        "(or `prompt` and `response` strings) to `/invocations`; the answer holds one `reward` per row.",
        "",
        "## Intended use and limits",
        "- Ranking or filtering candidate responses, best-of-N selection, RLHF reward signals.",
        "- Rewards are relative: compare responses to the same prompt; the absolute value has no unit.",
        "- The model inherits the biases of its preference data; check it on your own domain before use.",
        "- Inputs longer than the training max length are cut from the left (the end is kept).",
        "",
    ]
    return "\n".join(lines)


def log_reward_model(
    client: Any,
    run_id: str,
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    alias: str | None = "candidate",
    artifact_path: str = ARTIFACT_PATH,
) -> int:
    """Log `model_dir` under `run_id` as the serving pyfunc and register it as `name` (see module doc)."""
    import mlflow.pyfunc

    folder = Path(model_dir)
    check_export(folder)
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("rewardops.")}
    card = model_card(folder, tags, name=name)
    try:
        (folder / "README.md").write_text(card, encoding="utf-8")
    except OSError:
        pass  # a read-only export still gets the card as the version description
    with tempfile.TemporaryDirectory(prefix="rewardops-pyfunc-") as tmp:
        target = Path(tmp) / artifact_path
        mlflow.pyfunc.save_model(
            path=str(target),
            python_model=str(SERVING_CODE),
            artifacts={"reward_model": str(folder)},
            signature=signature(),
            input_example=input_example(),
            pip_requirements=serving_requirements(),
            metadata={"rewardops": {"kind": "reward-model", "output": "raw reward per row"}},
        )
        # what is registered is what is loaded: digests of the code and weights logged here
        # (checked by rewardops.evaluation.modelref.fetch_verified before loading)
        found = model_digests(target)
        tags = {**tags, CODE_DIGEST_TAG: found["code"], WEIGHTS_DIGEST_TAG: found["weights"]}
        client.log_artifacts(run_id, str(target), artifact_path)
    version = client.create_model_version(
        name, f"runs:/{run_id}/{artifact_path}", run_id=run_id, tags=tags, description=card
    ) if _exists(client, name) else _create_and_register(client, name, run_id, artifact_path, tags, card)
    number = int(version.version)
    if alias:
        client.set_registered_model_alias(name, alias, str(number))
    return number


def _exists(client: Any, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def get_or_create_registered_model(client: Any, name: str, description: str = "") -> None:
    """Create registered model `name` unless it exists; a concurrent creator is not an error."""
    try:
        client.get_registered_model(name)
        return
    except Exception:  # noqa: BLE001 - RESOURCE_DOES_NOT_EXIST: create it below
        pass
    try:
        client.create_registered_model(name, description=description or None)
    except Exception:
        client.get_registered_model(name)  # another process won the race; anything else raises here


def _create_and_register(client: Any, name: str, run_id: str, artifact_path: str, tags: dict[str, str], card: str) -> Any:
    get_or_create_registered_model(client, name, "RewardOps reward models of one size; aliases candidate/champion.")
    return client.create_model_version(name, f"runs:/{run_id}/{artifact_path}", run_id=run_id, tags=tags, description=card)


def update_card(client: Any, name: str, version: int | str, scores: dict[str, float], model_dir: Path | None = None) -> str:
    """Rewrite the version's description with its evaluation table (after `rewardops eval`)."""
    mv = client.get_model_version(name, str(version))
    tags = {k: v for k, v in (mv.tags or {}).items() if k.startswith("rewardops.")}
    card = model_card(model_dir or Path("/nonexistent"), tags, scores, name=name)
    marker = "## Evaluation (percent)"
    if model_dir is None and mv.description and marker in mv.description:
        # keep the training part of the card written at registration; replace its evaluation section
        head, _, rest = mv.description.partition(marker)
        _, found, tail = rest.partition("\n## Use")
        card = head + marker + "\n" + "\n".join(_table(scores)) + "\n" + (found + tail if found else "")
    elif model_dir is None and mv.description:
        card = mv.description.rstrip() + "\n\n" + marker + "\n" + "\n".join(_table(scores)) + "\n"
    client.update_model_version(name, str(version), description=card)
    return card
