"""The registered reward model as MLflow serves it (an MLflow "model from code": this file is
copied into the model and run at load time; nothing is unpickled).

Input, one row per conversation to score, either
- `messages`: the whole conversation, a list of `{"role", "content"}` ending with the assistant
  turn being scored, or
- `prompt` (the user turn) and `response` (the assistant turn).
Output: `reward`, the raw Bradley-Terry reward per row (no sigmoid, no label).

Scoring is `rewardops.evaluation.engine.HFRewardModel`: the same chat-template rendering
(`rewardops.rendering.render_messages`) and the same forward pass as `rewardops eval`, so a
served score equals the evaluation's (fp32 on CPU; set REWARDOPS_SERVE_DTYPE to change).
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel
from rewardops.errors import DataError

ARTIFACT = "reward_model"  # the Hugging Face folder inside the MLflow model


class ServingInputError(DataError):
    """A request row that is not a conversation."""


def _message(value: Any, row: int) -> dict[str, str]:
    if hasattr(value, "items"):
        value = dict(value.items())
    if not isinstance(value, dict) or not isinstance(value.get("role"), str) or not isinstance(value.get("content"), str):
        raise ServingInputError(f"row {row}: each message needs string 'role' and 'content', got {value!r}")
    return {"role": value["role"], "content": value["content"]}


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):
        return False


def conversations(frame: Any) -> list[list[dict[str, str]]]:
    """The conversations of a pandas DataFrame (or a list of records) in the serving schema."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame) if not isinstance(frame, dict) else frame)
    columns = set(frame.columns)
    if not ({"messages"} <= columns or {"prompt", "response"} <= columns):
        raise ServingInputError(
            f"expected a 'messages' column (role/content lists) or 'prompt' and 'response' columns; got {sorted(columns)}"
        )
    out = []
    for row, record in enumerate(frame.to_dict(orient="records")):
        messages = record.get("messages")
        if not _missing(messages) and not isinstance(messages, str):
            convo = [_message(m, row) for m in list(messages)]
        elif isinstance(record.get("prompt"), str) and isinstance(record.get("response"), str):
            convo = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
        else:
            raise ServingInputError(f"row {row}: give 'messages' (a list of role/content) or 'prompt' and 'response' strings")
        if not convo or convo[-1]["role"] != "assistant":
            raise ServingInputError(f"row {row}: the conversation must end with the assistant turn to score")
        out.append(convo)
    return out


class RewardModel(PythonModel):
    def load_context(self, context):  # noqa: ANN001, ANN201 - MLflow reads type hints as a schema
        from pathlib import Path

        from rewardops.evaluation.engine import HFRewardModel
        from rewardops.evaluation.modelref import ModelRef

        folder = Path(context.artifacts[ARTIFACT])
        self.scorer = HFRewardModel(
            ModelRef(str(folder), folder, folder),
            device=os.environ.get("REWARDOPS_SERVE_DEVICE") or None,
            dtype=os.environ.get("REWARDOPS_SERVE_DTYPE") or "float32",
        )

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - see load_context
        import pandas as pd

        ids = [self.scorer.render(c) for c in conversations(model_input)]
        return pd.DataFrame({"reward": self.scorer.score_ids(ids) if ids else []})


mlflow.models.set_model(RewardModel())
