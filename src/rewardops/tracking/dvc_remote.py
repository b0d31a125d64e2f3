"""The DVC remote: an S3 remote (MinIO or AWS) configured from the environment, or, when none
is configured there, whatever default remote the repository itself declares (the demo's data
registry has a local-folder remote), so `rewardops data push|pull|status|get` work with any.

| setting          | environment (first set wins)                                              |
|------------------|---------------------------------------------------------------------------|
| remote URL       | REWARDOPS_DVC_REMOTE (`s3://bucket/prefix`), else `s3://$REWARDOPS_S3_BUCKET/dvc` |
| endpoint URL     | REWARDOPS_S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL (unset: AWS)  |
| credentials      | the standard AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ... |

The remote is written to `.dvc/config.local` (never committed; credentials are never written),
named `rewardops` and made the default, so plain `dvc push` / `dvc pull` use it afterwards.
`dvc get` / `dvc import` of another checkout read that checkout's committed config; pass the
same settings with `remote_config()` (what `rewardops data pull --rev` does).

Before any transfer the bucket is checked with boto3, so a wrong credential or a missing bucket
fails at once with a message that says which (DVC's own error for these is a generic
"failed to push data to the cloud").
"""

from __future__ import annotations

import os
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from rewardops.errors import ServiceError

__all__ = [
    "RemoteError",
    "RemoteSettings",
    "check_remote",
    "configure_remote",
    "pull",
    "push",
    "status",
]

REMOTE_NAME = "rewardops"


class RemoteError(ServiceError):
    """The S3 remote is misconfigured, unreachable or rejects the credentials."""


@dataclass(frozen=True)
class RemoteSettings:
    url: str
    endpoint_url: str | None = None
    name: str = REMOTE_NAME

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        parts = self.url.removeprefix("s3://").split("/", 1)
        return parts[1] if len(parts) > 1 else ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RemoteSettings:
        env = dict(os.environ if env is None else env)
        url = env.get("REWARDOPS_DVC_REMOTE")
        if not url:
            bucket = env.get("REWARDOPS_S3_BUCKET")
            if not bucket:
                raise RemoteError(
                    "no DVC remote configured: set REWARDOPS_DVC_REMOTE=s3://bucket/prefix "
                    "(or REWARDOPS_S3_BUCKET), plus REWARDOPS_S3_ENDPOINT for MinIO"
                )
            url = f"s3://{bucket}/dvc"
        if not url.startswith("s3://"):
            raise RemoteError(f"REWARDOPS_DVC_REMOTE must be an s3:// URL, got {url!r}")
        endpoint = env.get("REWARDOPS_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        return cls(url=url.rstrip("/"), endpoint_url=endpoint or None)

    def remote_config(self) -> dict[str, str]:
        """The `dvc remote` settings, as `dvc get/import --remote-config` and `Repo.open` take them."""
        config = {"url": self.url}
        if self.endpoint_url:
            config["endpointurl"] = self.endpoint_url
        return config


def _describe_credentials() -> str:
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    if key:
        return f"AWS_ACCESS_KEY_ID={key[:4]}…"
    if os.environ.get("AWS_PROFILE"):
        return f"AWS_PROFILE={os.environ['AWS_PROFILE']}"
    return "the default AWS credential chain"


def check_remote(settings: RemoteSettings, *, create_bucket: bool = False) -> None:
    """Raise `RemoteError` naming the problem if the bucket cannot be used with these credentials."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"{settings.url} at {settings.endpoint_url or 'AWS S3'}"
    client = boto3.client("s3", endpoint_url=settings.endpoint_url)
    try:
        client.head_bucket(Bucket=settings.bucket)
        # HEAD on a bucket is not authenticated by every S3 implementation: list one key too.
        client.list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix, MaxKeys=1)
    except NoCredentialsError as exc:
        raise RemoteError(f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from exc
    except EndpointConnectionError as exc:
        raise RemoteError(f"cannot reach the S3 endpoint for {where}: {exc}") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AccessDenied", "403"} or status == 403:
            raise RemoteError(
                f"S3 rejected the credentials for {where} ({code or status}) using {_describe_credentials()}: "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for this endpoint"
            ) from exc
        if code in {"NoSuchBucket", "404"} or status == 404:
            if create_bucket:
                client.create_bucket(Bucket=settings.bucket)
                return
            raise RemoteError(f"bucket {settings.bucket!r} does not exist at {settings.endpoint_url or 'AWS S3'}") from exc
        raise RemoteError(f"S3 error for {where}: {exc}") from exc


def configure_remote(repo_root: str | os.PathLike[str], settings: RemoteSettings) -> None:
    """Write the remote to `.dvc/config.local` and make it the default."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        with repo.config.edit("local") as conf:
            conf["remote"][settings.name] = settings.remote_config()
            conf["core"]["remote"] = settings.name


def _s3_configured(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ if env is None else env)
    return bool(env.get("REWARDOPS_DVC_REMOTE") or env.get("REWARDOPS_S3_BUCKET"))


def _prepare(repo_root: str | os.PathLike[str], settings: RemoteSettings | None, create_bucket: bool = False) -> RemoteSettings | None:
    """The S3 remote (checked and written to .dvc/config.local), or None: the repository's own default remote."""
    if settings is None and not _s3_configured():
        _check_repo_remote(repo_root)
        return None
    settings = settings or RemoteSettings.from_env()
    check_remote(settings, create_bucket=create_bucket)
    configure_remote(repo_root, settings)
    return settings


def _check_repo_remote(repo_root: str | os.PathLike[str]) -> None:
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            core = repo.config.get("core", {})
            remotes = repo.config.get("remote", {})
    except Exception as exc:  # noqa: BLE001 - not a DVC repository
        raise RemoteError(f"{repo_root}: not a DVC repository ({exc})") from None
    if not core.get("remote") or core["remote"] not in remotes:
        raise RemoteError(
            f"{repo_root}: no DVC remote: the repository declares no default remote and no S3 remote is set "
            "(REWARDOPS_DVC_REMOTE=s3://bucket/prefix or REWARDOPS_S3_BUCKET, plus REWARDOPS_S3_ENDPOINT for MinIO)"
        )


def recorded_targets(repo_root: str | os.PathLike[str]) -> list[str]:
    """Stages with results in dvc.lock and `.dvc` files: what a pull can restore.

    A plain `dvc pull` also tries the stages that never ran (and fails on them).
    """
    import yaml

    root = Path(repo_root)
    targets: list[str] = []
    lock = root / "dvc.lock"
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) or {}
        targets += [name for name, stage in stages.items() if stage.get("outs")]
    targets += [
        str(p.relative_to(root))
        for p in root.rglob("*.dvc")
        if p.is_file() and ".dvc" not in p.relative_to(root).parts[:-1]
    ]
    return targets


def push(
    repo_root: str | os.PathLike[str] = ".",
    targets: list[str] | None = None,
    *,
    jobs: int | None = None,
    settings: RemoteSettings | None = None,
    create_bucket: bool = False,
    all_commits: bool = False,
) -> int:
    """Upload the cached outputs (all, or `targets`); returns how many files were sent.

    `all_commits`: every data version referenced by any git commit, not just the workspace's.
    Safe to rerun after an interruption: objects already in the remote are skipped.
    """
    from dvc.repo import Repo

    settings = _prepare(repo_root, settings, create_bucket)
    with chdir(repo_root), Repo(".") as repo:  # DVC reads targets relative to the working directory
        return int(repo.push(targets=targets or None, jobs=jobs, remote=settings.name if settings else None,
                             all_commits=all_commits))


def pull(
    repo_root: str | os.PathLike[str] = ".",
    targets: list[str] | None = None,
    *,
    rev: str | None = None,
    out: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    settings: RemoteSettings | None = None,
) -> dict[str, Any]:
    """Download data. Without `rev`: check out the workspace's outputs (`dvc pull`).

    With `rev` (a git commit, tag or branch): fetch each target as it was at that revision into
    `out` (default `<target>@<rev>`), leaving the workspace alone (`dvc get --rev`).
    """
    from dvc.repo import Repo

    settings = _prepare(repo_root, settings)
    if rev is None:
        with chdir(repo_root), Repo(".") as repo:
            stats = repo.pull(targets=targets or recorded_targets(repo_root) or None, jobs=jobs,
                              remote=settings.name if settings else None)
        # DVC: {"added": [paths], "modified": [paths], ..., "stats": {"fetched": n, "added": n, ...}}
        counts = stats.get("stats", {})
        return {
            "fetched": int(counts.get("fetched", 0)),
            "added": sorted(map(str, stats.get("added", []))),
            "modified": sorted(map(str, stats.get("modified", []))),
            "files": {k: int(v) for k, v in counts.items()},
        }
    if not targets:
        raise RemoteError("pulling an older revision needs the paths to fetch (e.g. data/curated)")
    root = Path(repo_root).resolve()
    written = []
    for target in targets:
        dest = Path(out) / Path(target).name if out is not None and len(targets) > 1 else Path(out or f"{target.rstrip('/')}@{rev}")
        get_dataset(str(root), target, dest, rev=rev, jobs=jobs, settings=settings)
        written.append(str(dest))
    return {"rev": rev, "written": written}


def status(repo_root: str | os.PathLike[str] = ".", *, settings: RemoteSettings | None = None) -> dict[str, list[str]]:
    """What differs between the cache and the remote: `new` (not pushed), `deleted`, `missing`."""
    from dvc.repo import Repo

    settings = _prepare(repo_root, settings)
    with Repo(str(repo_root)) as repo:
        raw = repo.data_status(not_in_remote=True, remote_refresh=True, remote=settings.name if settings else None)
    return {
        "not_in_remote": sorted(raw.get("not_in_remote", [])),
        "uncommitted": sorted(str(k) for k in raw.get("uncommitted", {})),
        "committed": sorted(str(k) for k in raw.get("committed", {})),
        "not_in_cache": sorted(raw.get("not_in_cache", [])),
    }


def _registry_revisions(url: str, limit: int = 10) -> list[str]:
    """`<commit> <subject>` of the registry's recent commits (local folders only), for error messages."""
    import subprocess

    if not Path(url).is_dir():
        return []
    done = subprocess.run(["git", "log", f"-{limit}", "--format=%h %s"], cwd=url, capture_output=True, text=True, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def get_dataset(
    registry: str,
    path: str,
    out: str | os.PathLike[str],
    *,
    rev: str | None = None,
    jobs: int | None = None,
    settings: RemoteSettings | None = None,
) -> Path:
    """`dvc get registry path --rev rev -o out`, with the S3 settings when given; a clear
    `RemoteError` naming the registry, path and revision (and the revisions there are) on failure."""
    from dvc.repo import Repo

    kwargs: dict[str, Any] = {}
    if settings is not None:
        kwargs = {"remote": settings.name, "remote_config": settings.remote_config()}
    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        raise RemoteError(f"{dest} exists and is not empty; choose an empty or new folder for -o")
    try:
        Repo.get(registry, path, out=str(dest), rev=rev, jobs=jobs, **kwargs)
    except Exception as exc:  # noqa: BLE001 - DVC/scmrepo errors: say what was looked up
        known = _registry_revisions(registry)
        hint = ("; recent revisions: " + "; ".join(known)) if known else ""
        raise RemoteError(f"could not get {path!r} at revision {rev or 'HEAD'} from the data registry {registry}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}{hint}") from None
    return dest
