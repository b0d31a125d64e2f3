"""A real Label Studio server for tests (PyPI `label-studio`, SQLite, loopback only).

Label Studio pins Django and friends, so it lives in its own virtual environment,
`.venv-labelstudio` (created by `make labelstudio-venv`, which `make test` depends on). One server
per test session (`labelstudio` fixture): a temporary data dir, an admin created from
LABEL_STUDIO_USERNAME / _PASSWORD / _USER_TOKEN at start, legacy API tokens enabled, no version
check, no analytics. People are added as people add themselves: through the sign-up page, then
their own API token from /api/current-user/token.

Import the fixture into a test module: `from support.labelstudio_server import labelstudio  # noqa: F401`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("REWARDOPS_LABELSTUDIO_VENV", REPO / ".venv-labelstudio"))
TEMPLATE = VENV / "rewardops-template-data"  # a migrated empty data dir made by `make labelstudio-venv`
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@rewardops.test", "admin-pass-12345"
ADMIN_TOKEN = "rewardops-admin-token-0123456789abcdef"
START_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
        "LABEL_STUDIO_PASSWORD": ADMIN_PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": ADMIN_TOKEN,
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@dataclass
class LabelStudioServer:
    url: str
    admin_token: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen
    people: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None):
        from rewardops.curation.labelstudio import LabelStudioClient

        return LabelStudioClient(self.url, token or self.admin_token)

    def person(self, email: str, password: str = "person-pass-12345"):
        """A LabelStudioClient acting as `email`, who signed up through the web form (once)."""
        if email not in self.people:
            with httpx.Client(base_url=self.url, timeout=60, follow_redirects=False) as web:
                web.get("/user/signup/")
                r = web.post("/user/signup/", data={"email": email, "password": password,
                                                    "csrfmiddlewaretoken": web.cookies.get("csrftoken", "")},
                             headers={"Referer": f"{self.url}/user/signup/"})
                if r.status_code != 302:
                    raise RuntimeError(f"Label Studio sign-up of {email} failed: HTTP {r.status_code} {r.text[:300]}")
                self.people[email] = web.get("/api/current-user/token").json()["token"]
        return self.client(self.people[email])

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def label_studio_binary() -> Path:
    exe = VENV / "bin" / "label-studio"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} missing: Label Studio lives in its own venv; run `make labelstudio-venv` "
                                "(make test does it first)")
    return exe


def start_server(root: Path) -> LabelStudioServer:
    exe = label_studio_binary()
    data = root / "data"
    if TEMPLATE.is_dir():  # already migrated: start in seconds instead of a minute
        shutil.copytree(TEMPLATE, data)
    data.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = root / "label-studio.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data), "--enable-legacy-api-token"],
            env=server_env(data), cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabelStudioServer(f"http://127.0.0.1:{port}", ADMIN_TOKEN, data, log, proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode} while starting:\n{server.log_tail()}")
        try:
            r = httpx.get(f"{server.url}/api/current-user/whoami", timeout=5,
                          headers={"Authorization": f"Token {ADMIN_TOKEN}"})
            if r.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"Label Studio did not answer on {server.url} within {START_TIMEOUT_S:.0f}s:\n{server.log_tail()}")
        time.sleep(1.0)


def stop_server(server: LabelStudioServer) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    server = start_server(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        stop_server(server)
