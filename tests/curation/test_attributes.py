from __future__ import annotations

import json
import threading
from collections import defaultdict

from rewardops.curation.attributes import AttributeAnnotator, extract_json, validate_attributes
from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig

from .conftest import toy_pairs
from .openai_stub import OpenAIStub, Reply

VALID = {"task_category": "code", "objectivity": "objective", "controversiality": "low",
         "desired_attributes": "Correct code.", "annotation_guideline": "Run it mentally."}


def test_validation_rejects_every_kind_of_malformed_answer():
    assert validate_attributes(VALID) == (VALID, [])
    assert validate_attributes([1])[1] == ["expected a JSON object, got list"]
    _, errs = validate_attributes({**VALID, "task_category": "poetry"})
    assert errs and "not one of" in errs[0]
    _, errs = validate_attributes({k: v for k, v in VALID.items() if k != "objectivity"})
    assert errs == ["missing key 'objectivity'"]
    _, errs = validate_attributes({**VALID, "winner": "A"})
    assert errs == ["unexpected key 'winner'"]
    _, errs = validate_attributes({**VALID, "desired_attributes": "   "})
    assert "text length 0" in errs[0]
    _, errs = validate_attributes({**VALID, "controversiality": 3})
    assert "expected a string" in errs[0]
    assert extract_json("Sure!\n```json\n" + json.dumps(VALID) + "\n```") == VALID


def test_annotator_retries_malformed_then_marks_unannotated_never_guesses():
    calls = defaultdict(int)
    lock = threading.Lock()

    def responder(body):
        text = body["messages"][1]["content"]
        with lock:
            key = "q0" if "(q0)" in text else "q1" if "(q1)" in text else "q2"
            calls[key] += 1
            n = calls[key]
        assert body["response_format"]["type"] == "json_schema"
        if key == "q0":
            return Reply(content=json.dumps(VALID))
        if key == "q1":  # malformed first, corrected on retry (the errors are fed back)
            if n == 1:
                return Reply(content='{"task_category": "poetry"}')
            assert "That answer is invalid" in body["messages"][-1]["content"]
            return Reply(content=json.dumps({**VALID, "task_category": "writing"}))
        return Reply(content="I think this is about code, objective, low.")  # never JSON

    pairs = toy_pairs(3)
    for p in pairs:
        for k in VALID:
            setattr(p, k, None)
    with OpenAIStub(responder) as stub:
        backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model="m", backoff_s=0.01))
        ann = AttributeAnnotator(backend, max_attempts=3)
        out = ann.annotate(pairs)
    assert out[0].task_category == "code" and out[0].lineage[-1] == "attributes:m"
    assert out[1].task_category == "writing" and calls["q1"] == 2
    assert out[2].task_category is None and out[2].desired_attributes is None
    assert out[2].lineage[-1] == "attributes:unannotated" and "not JSON" in out[2].meta["attribute_error"]
    assert calls["q2"] == 3
    assert ann.report.as_dict()["annotated"] == 2 and ann.report.unannotated == 1


def test_pairs_with_attributes_are_skipped_unless_overwrite():
    pairs = toy_pairs(2)
    with OpenAIStub(lambda body: Reply(content=json.dumps(VALID))) as stub:
        backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model="m"))
        AttributeAnnotator(backend).annotate(pairs)
        assert stub.requests == []
        AttributeAnnotator(backend, overwrite=True).annotate(pairs)
        assert len(stub.requests) == 2
