"""End to end on CPU with tiny-qwen3 (fp32): the loop, export, MLflow, DDP, resume.

One in-process reference run (6 steps, global batch 16) is the baseline every other run must
match: two local "nodes" (gloo on loopback) and a run SIGKILLed mid-training then resumed.
DeepSpeed over real launchers is tests/training/test_launchers.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardops.rendering import render_pair
from rewardops.training.attention import packed_rewards
from rewardops.training.config import load_config
from rewardops.training.data import EncodedPair, PairSource
from rewardops.training.export import load_exported
from rewardops.training.packing import pack
from rewardops.training import run

REPO = Path(__file__).resolve().parents[2]
REWARDOPS = Path(sys.executable).parent / "rewardops"  # the console script: the pod command of every TrainJob
STEPS = 6
COMMON = {
    "global_batch": 16,
    "micro_batch_tokens": 2048,
    "epochs": 2,
    "max_steps": STEPS,
    "num_threads": 1,
    "seed": 7,
}

SMALL_MICRO = {"max_length": 256, "micro_batch_tokens": 512}


pytestmark = pytest.mark.slow  # training runs, two-process DDP and a SIGKILLed run in subprocesses


def _sets(extra: dict) -> list[str]:
    out = []
    for k, v in {**COMMON, **extra}.items():
        out += ["--set", f"{k}={v}"]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(out: Path, data: Path, world: int, extra: dict, port: int) -> list[subprocess.Popen]:
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
        }
        cmd = [str(REWARDOPS), "train", "--size", "demo-tiny-qwen3", "--data", str(data), "--out", str(out),
               "--no-progress", *_sets(extra)]
        log = open(out.parent / f"{out.name}-rank{rank}.log", "w")
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait(procs: list[subprocess.Popen], out: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    for p in procs:
        rc = p.wait(timeout=max(deadline - time.time(), 1))
        if rc != 0:
            logs = "\n".join(f.read_text()[-3000:] for f in sorted(out.parent.glob(f"{out.name}-rank*.log")))
            raise AssertionError(f"training process exited {rc}:\n{logs}")


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors")


def _assert_weights_close(a: dict, b: dict, atol: float = 2e-5) -> None:
    assert set(a) == set(b)
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < atol, worst


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pairs_dir, eval_dir):
    out = tmp_path_factory.mktemp("ref") / "run"
    config = load_config("demo-tiny-qwen3", {
        **COMMON, "data": str(pairs_dir), "out": str(out), "eval_data": str(eval_dir),
        "checkpoint_every": 2, "mlflow": True, "tracking_uri": f"sqlite:///{out.parent / 'mlflow.db'}",
        "run_tags": {"rewardops.trainjob": "rm-demo-tiny-qwen3-test"},
    })
    result = run(config, progress=False)
    return out, result, config


def test_loop_metrics_and_counts(reference):
    out, result, _ = reference
    assert result.steps == STEPS and len(result.history) == STEPS
    last = result.history[-1]
    for key in ("train/loss", "train/accuracy", "train/margin", "train/reward_mean", "train/reward_std",
                "train/lr", "perf/tokens_per_s", "perf/padding_waste"):
        assert key in last
    assert last["perf/padding_waste"] == 0.0 and last["perf/tokens_per_s"] > 0
    assert last["train/pairs"] == 16 and last["train/lr"] == pytest.approx(1e-3)
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]
    assert result.counts["used"] == STEPS * 16
    assert result.eval["pairs"] == 16 and set(result.eval["per_category"]) == {"math", "code", "chat", "safety"}
    assert [p.name for p in sorted((out / "checkpoints").glob("step-*"))] == ["step-00000004", "step-00000006"]
    assert (out / "checkpoints" / "latest").read_text() == "step-00000006"


def test_export_round_trip_gives_the_same_rewards(reference, eval_dir):
    out, result, _ = reference
    export = result.export_dir
    for name in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"):
        assert (export / name).exists(), name
    assert "score.weight" in load_file(export / "model.safetensors")
    model, tok = load_exported(export)
    assert model.config.num_labels == 1
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id

    pairs = PairSource(eval_dir).take(list(range(6)))
    encoded = [EncodedPair(i, *render_pair(tok, p)) for i, p in enumerate(pairs)]
    # The trained weights (final checkpoint), read through the packed training path.
    from transformers import AutoModelForSequenceClassification

    trained = AutoModelForSequenceClassification.from_pretrained(export, dtype=torch.float32)
    trained.load_state_dict(_final_weights(out))
    with torch.no_grad():
        expected = packed_rewards(trained, pack(encoded)).flatten()
        # The user's way: right-padded batch, HF pooling at the last non-pad token.
        seqs = [s for e in encoded for s in (e.chosen, e.rejected)]
        batch = tok.pad({"input_ids": seqs}, return_tensors="pt", padding=True)
        got = model(**batch).logits[:, 0]
    assert (batch["input_ids"] == tok.pad_token_id).any()  # padding really was there
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_hf_pooling_would_read_the_wrong_token_if_pad_were_eos(reference):
    """Why the pad must differ from EOS: a sequence ending in EOS is read one token early."""
    _, result, _ = reference
    model, tok = load_exported(result.export_dir)
    eos = tok.eos_token_id
    seqs = [[5, 6, 7, eos], [8, 9, eos]]
    with torch.no_grad():
        single = torch.stack([model(input_ids=torch.tensor([s])).logits[0, 0] for s in seqs])
        padded = torch.tensor([seqs[0], seqs[1] + [tok.pad_token_id]])
        right = model(input_ids=padded, attention_mask=(padded != tok.pad_token_id).long()).logits[:, 0]
        torch.testing.assert_close(right, single, rtol=1e-4, atol=1e-5)
        model.config.pad_token_id = eos  # the transformers#35352 setup
        wrong = model(input_ids=padded, attention_mask=(padded != tok.pad_token_id).long()).logits[:, 0]
    assert not torch.allclose(wrong, single, rtol=1e-4, atol=1e-5)


def test_mlflow_run_params_metrics_and_registered_model(reference):
    from mlflow.tracking import MlflowClient

    out, result, config = reference
    client = MlflowClient(tracking_uri=config.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["lr"] == "0.001" and run.data.params["size"] == "demo-tiny-qwen3"
    assert run.data.params["resolved.world_size"] == "1"
    assert (run.data.params["resolved.launcher"], run.data.params["resolved.ranks_per_node"]) == ("none", "1")
    assert run.data.tags["rewardops.trainjob"] == "rm-demo-tiny-qwen3-test"
    for key in ("train/loss", "train/accuracy", "train/margin", "train/reward_std", "train/lr",
                "perf/tokens_per_s", "perf/padding_waste", "eval/accuracy", "train_data/final_used"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(result.run_id, "train/loss")) == STEPS
    version = client.get_model_version_by_alias("rewardops-rm-demo-tiny-qwen3", "candidate")
    assert version.run_id == result.run_id and int(version.version) == result.registered_version
    artifacts = [a.path for a in client.list_artifacts(result.run_id, "figures")]
    assert any(p.endswith("training_curves.png") for p in artifacts)
    # a plain (unversioned) folder is still the run's dataset input: its path and manifest digest
    from rewardops.outputs import verify_output
    from rewardops.tracking.lineage import manifest_digest

    (dataset_input,) = run.inputs.dataset_inputs
    source = json.loads(dataset_input.dataset.source)
    assert dataset_input.dataset.source_type == "rewardops-folder"
    assert source["path"] == str(Path(config.data).resolve())
    assert source["manifest_digest"] == manifest_digest(verify_output(config.data)) == run.data.tags["rewardops.data.manifest_digest"]
    assert dataset_input.dataset.digest == source["manifest_digest"][:36]
    # what train_launcher does after a TrainJob: find the registered version by the job's tag, not in logs
    from rewardops.k8s.launcher import model_version_for_trainjob

    found = model_version_for_trainjob("rm-demo-tiny-qwen3-test", config.model_name, config.tracking_uri, config.experiment)
    assert found == (result.run_id, result.registered_version)
    assert model_version_for_trainjob("rm-other", config.model_name, config.tracking_uri, config.experiment) is None


def test_two_nodes_match_one_process(reference, pairs_dir, tmp_path):
    """2 "nodes" x 1 process (gloo, loopback) against the single-process reference."""
    ref_out = reference[0]
    out = tmp_path / "ddp"
    out.mkdir()
    # A smaller token budget than the reference: several micro-steps per rank (accumulation).
    procs = _spawn(out, pairs_dir, 2, {"mlflow": "false", "export": "false", **SMALL_MICRO}, _free_port())
    _wait(procs, out)
    a, b = _losses(ref_out), _losses(out)
    assert len(b) == STEPS
    assert a == pytest.approx(b, rel=1e-5)
    _assert_weights_close(_final_weights(ref_out), _final_weights(out))
    micro = [json.loads(line)["train/micro_batches"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m >= 2 for m in micro)


def test_sigkill_then_resume_equals_uninterrupted(reference, pairs_dir, tmp_path):
    out = tmp_path / "killed"
    out.mkdir()
    extra = {"mlflow": "false", "export": "false", "checkpoint_every": 2, "max_steps": STEPS}
    (proc,) = _spawn(out, pairs_dir, 1, extra, _free_port())
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 240
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = latest.read_text()
    assert killed_at != f"step-{STEPS:08d}", "the run finished before it could be killed"

    # Resume (in this process) from the newest checkpoint and finish.
    config = load_config("demo-tiny-qwen3", {**COMMON, "data": str(pairs_dir), "out": str(out),
                                                 "checkpoint_every": 2, "mlflow": False, "export": False})
    result = run(config, progress=False)
    assert result.steps == STEPS
    assert result.history[0]["step"] == int(killed_at.split("-")[1]) + 1  # it really resumed
    _assert_weights_close(_final_weights(reference[0]), _final_weights(out), atol=1e-6)
    ref_losses = _losses(reference[0])
    assert [h["train/loss"] for h in result.history] == pytest.approx(ref_losses[-len(result.history):], rel=1e-6)


# DeepSpeed ZeRO-1/3 over two real ranks (mpirun, torchrun, PET_*) against one process, and the gathered
# ZeRO-3 export read back through Hugging Face: tests/training/test_launchers.py.
