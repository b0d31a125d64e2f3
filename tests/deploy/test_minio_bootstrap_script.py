"""The MinIO bootstrap container's script (rendered from the chart), run with a stand-in `mc`.

No MinIO server or `mc` binary can be installed here, so a stub `mc` on PATH records every call
and answers like mc would (configurable failures); a stub `sleep` ends the script's keep-alive
loop. What this checks is the script's own logic: the order of the steps, that the clients' user
gets the bucket-scoped policy, that a re-run after "policy already attached" still succeeds (the
pod re-runs it on every start), and that the root user is never handed out as the clients' pair.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.chart_support import name_of, render

ENV = {"MINIO_ROOT_USER": "root-abc", "MINIO_ROOT_PASSWORD": "root-pw", "CLIENT_ACCESS_KEY": "rewardops-client",
       "CLIENT_SECRET_KEY": "client-pw", "AWS_DEFAULT_REGION": "us-east-1"}

MC = """#!/bin/sh
echo "mc $*" >> "$CALLS"
case "$*" in
  "admin policy attach"*) [ -n "$ATTACH_FAILS" ] && { echo "policy already attached" >&2; exit 1; } ;;
  "admin user info"*) echo "AccessKey: $CLIENT_ACCESS_KEY"; echo "PolicyName: $POLICY_NAME" ;;
esac
exit 0
"""
SLEEP = """#!/bin/sh
[ "$1" = 3600 ] && kill -TERM $PPID
exit 0
"""


def _bootstrap() -> tuple[list[str], dict[str, str]]:
    minio = next(d for d in render() if name_of(d) == "StatefulSet/rewardops-minio")
    container = next(c for c in minio["spec"]["template"]["spec"]["containers"] if c["name"] == "bootstrap")
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return [*container["command"], *container["args"]], plain


def _run(tmp_path: Path, **overrides: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("mc", MC), ("sleep", SLEEP)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    argv, plain = _bootstrap()
    script = argv[2].replace("/tmp/mc/bootstrapped", str(tmp_path / "bootstrapped"))
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    env = {**plain, **ENV, **overrides, "PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}
    done = subprocess.run([argv[0], argv[1], script], capture_output=True, text=True, env=env, timeout=60)
    return done, calls.read_text().splitlines()


def test_script_is_valid_sh() -> None:
    argv, _ = _bootstrap()
    assert argv[:2] == ["/bin/sh", "-ec"]
    subprocess.run(["sh", "-n", "-c", argv[2]], check=True)


@pytest.mark.parametrize("attach_fails", ["", "1"], ids=["first-start", "restart"])
def test_bootstrap_creates_buckets_policy_and_user(tmp_path: Path, attach_fails: str) -> None:
    done, calls = _run(tmp_path, ATTACH_FAILS=attach_fails)
    assert done.returncode == -15 or done.returncode == 143, done.stdout + done.stderr  # ended by the stub sleep
    assert (tmp_path / "bootstrapped").exists(), "readiness marker missing"
    assert calls[0] == "mc alias set local http://127.0.0.1:9000 root-abc root-pw"
    assert [c for c in calls if c.startswith("mc mb")] == [
        f"mc mb --ignore-existing --region us-east-1 local/{b}"
        for b in ("rewardops-mlflow", "rewardops-dvc", "rewardops-checkpoints")]
    assert "mc admin policy create local rewardops-clients /etc/rewardops/policy.json" in calls
    assert "mc admin user add local rewardops-client client-pw" in calls
    assert "mc admin policy attach local rewardops-clients --user rewardops-client" in calls
    order = [next(i for i, c in enumerate(calls) if c.startswith(p)) for p in
             ("mc admin policy create", "mc admin user add", "mc admin policy attach")]
    assert order == sorted(order)
    assert not any("root-abc" in c for c in calls[1:]), "the root user is used to log in, never handed on"


def test_bootstrap_refuses_the_root_user_as_client(tmp_path: Path) -> None:
    done, calls = _run(tmp_path, CLIENT_ACCESS_KEY="root-abc")
    assert done.returncode == 1 and not calls
    assert "objectStore.existingSecret holds MinIO's root user" in done.stderr
    assert not (tmp_path / "bootstrapped").exists()
