"""Lineage tags for every tracked run: data version, code commit, pipeline run and image.

`run_tags()` reads, in order, an explicit environment variable (what a KFP component or a
Kubernetes pod sets), then git and DVC in the working tree, then a plain "unknown". Tag keys:

| tag                         | env override                  | fallback                         |
|-----------------------------|-------------------------------|----------------------------------|
| rewardops.data.dvc_hash     | REWARDOPS_DATA_DVC_HASH (a DVC md5; anything else becomes rewardops.data.version) | md5 of the data out in dvc.lock / `<data>.dvc` |
| rewardops.data.path         | REWARDOPS_DATA_PATH           | the `data` argument              |
| rewardops.data.git_rev      | REWARDOPS_DATA_GIT_REV        | git HEAD of the data's repo      |
| rewardops.code.commit       | REWARDOPS_CODE_COMMIT, GIT_COMMIT | git HEAD (+ "-dirty")        |
| rewardops.pipeline.run_id   | REWARDOPS_PIPELINE_RUN_ID, KFP_RUN_ID | "local"                  |
| rewardops.image             | REWARDOPS_IMAGE               | "local"                          |

`mlflow.source.git.commit` is set to the same commit so MLflow's UI shows it too.

Data lineage proper is a `DataVersion` (`data_version(path)`): the DVC registry that versions
the dataset (its git URL or folder), the registry commit, the path inside it and the DVC md5 of
the folder. It is found from a `dvc.json` in the dataset folder (written by the pipelines'
`version-data` step, which versions a subset *before* training reads it), from the folder being
a DVC-tracked path of a registry checkout, or from REWARDOPS_DATA_REGISTRY/REWARDOPS_DATA_REV/
REWARDOPS_DATA_REGISTRY_PATH/REWARDOPS_DATA_MD5. Its tags (`rewardops.data.registry|rev|path|md5`,
and `dvc_hash`/`git_rev` with the same meaning) go on the run and the registered version, and it
is the run's MLflow dataset input (source: the DVC location; digest: the md5).

A dataset folder no DVC registry versions (a plain `rewardops ingest|preprocess|generate` output) is
a `FolderVersion` instead (`folder_version(path)`): its absolute path and the digest of its
manifest (sha256 over every file's path and sha256, so the same bytes give the same digest whenever
and wherever they were written). It is the run's dataset input just the same (source type
`rewardops-folder`), so a registered model always says what it was trained on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DataVersion", "FolderVersion", "code_commit", "data_dvc_hash", "data_version", "folder_version", "git_revision",
           "mlflow_dataset", "run_tags"]

LINEAGE_FILE = "dvc.json"  # in a dataset folder written by the version-data step

UNKNOWN = "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The commit HEAD points at, or None outside a repository / before the first commit."""
    return _git(["rev-parse", "HEAD"], Path(cwd or Path.cwd()))


def code_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    for var in ("REWARDOPS_CODE_COMMIT", "GIT_COMMIT"):
        if os.environ.get(var):
            return os.environ[var]
    where = Path(cwd or Path.cwd())
    rev = git_revision(where)
    if rev is None:
        return UNKNOWN
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return f"{rev}-dirty" if dirty else rev


def _md5_of_out(entry: dict[str, Any]) -> str | None:
    return entry.get("md5") or entry.get("etag") or entry.get("checksum")


def data_dvc_hash(data: str | os.PathLike[str] | None, repo: str | os.PathLike[str] | None = None) -> str | None:
    """The DVC hash recorded for `data` (a folder or file a stage produces, or a `.dvc`-tracked path).

    Looks in `<repo>/dvc.lock` (stage outs), then `<data>.dvc`. None when DVC does not track it.
    """
    if data is None:
        return None
    root = Path(repo or Path.cwd()).resolve()
    target = Path(data)
    if target.is_absolute():
        try:
            target = target.resolve().relative_to(root)
        except ValueError:
            pass
    wanted = target.as_posix().rstrip("/")
    lock = root / "dvc.lock"
    if lock.is_file():
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        except yaml.YAMLError:
            stages = {}
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                if str(out.get("path", "")).rstrip("/") == wanted:
                    return _md5_of_out(out)
    dvc_file = root / f"{wanted}.dvc"
    if dvc_file.is_file():
        try:
            outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [])
        except yaml.YAMLError:
            outs = []
        if outs:
            return _md5_of_out(outs[0])
    return None


def run_tags(
    data: str | os.PathLike[str] | None = None,
    *,
    repo: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Tags to put on a training/evaluation run (see the module docstring)."""
    env = os.environ
    root = Path(repo or Path.cwd())
    commit = code_commit(root)
    data_path = env.get("REWARDOPS_DATA_PATH") or (str(data) if data is not None else None)
    given = env.get("REWARDOPS_DATA_DVC_HASH") or ""
    # a pipeline's data_version (e.g. "world:n=1000,...") is not a DVC hash: tag it as what it is
    is_hash = re.fullmatch(r"(dvc:)?[0-9a-f]{6,64}(\.dir)?", given) is not None
    tags = {
        "rewardops.data.dvc_hash": (given.removeprefix("dvc:") if is_hash else "") or data_dvc_hash(data, root) or UNKNOWN,
        "rewardops.data.git_rev": env.get("REWARDOPS_DATA_GIT_REV") or git_revision(root) or UNKNOWN,
        "rewardops.code.commit": commit,
        "rewardops.pipeline.run_id": env.get("REWARDOPS_PIPELINE_RUN_ID") or env.get("KFP_RUN_ID") or "local",
        "rewardops.image": env.get("REWARDOPS_IMAGE") or "local",
    }
    if given and not is_hash:
        tags["rewardops.data.version"] = given
    if data_path:
        tags["rewardops.data.path"] = data_path
    if commit != UNKNOWN:
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    for key, value in (extra or {}).items():
        tags[str(key)] = str(value)
    return {key: strip_userinfo(value) for key, value in tags.items()}  # no credentials in stored URLs


# ------------------------------------------------------------------------------------ data versions


_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@\"'<>]*@")


def strip_userinfo(text: str) -> str:
    """`text` with the `user:password@` part removed from every URL in it
    (`https://user:TOKEN@host/repo.git` -> `https://host/repo.git`, `s3://KEY:SECRET@bucket`
    -> `s3://bucket`); everything else unchanged. Applied to every value before it is stored in
    lineage, run params and tags, dataset inputs or model cards."""
    return _USERINFO.sub(lambda m: m.group("scheme"), str(text))


@dataclass(frozen=True)
class DataVersion:
    """Where a dataset is versioned: `dvc get <registry> <path> --rev <rev>` gives it back.
    The registry URL is stored without userinfo (`strip_userinfo`): a token in a git remote
    never reaches run tags, dataset inputs or model cards."""

    registry: str  # git URL or folder of the DVC data registry
    rev: str  # the registry commit
    path: str  # the dataset's path inside the registry
    md5: str  # DVC's md5 of the folder (`<hex>.dir`)
    rows: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", strip_userinfo(self.registry))

    def tags(self) -> dict[str, str]:
        tags = {
            "rewardops.data.registry": self.registry, "rewardops.data.rev": self.rev,
            "rewardops.data.path": self.path, "rewardops.data.md5": self.md5,
            "rewardops.data.dvc_hash": self.md5, "rewardops.data.git_rev": self.rev,
        }  # fmt: skip
        if self.rows is not None:
            tags["rewardops.data.rows"] = str(self.rows)
        return tags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def uri(self) -> str:
        return f"dvc://{self.registry}#{self.path}@{self.rev}"

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> DataVersion | None:
        keys = ("registry", "rev", "path", "md5")
        if not all(tags.get(f"rewardops.data.{k}") for k in keys):
            return None
        rows = tags.get("rewardops.data.rows")
        return cls(*(tags[f"rewardops.data.{k}"] for k in keys), rows=int(rows) if rows and rows.isdigit() else None)


def _from_file(folder: Path) -> DataVersion | None:
    path = folder / LINEAGE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return DataVersion(str(data["registry"]), str(data["rev"]), str(data["path"]), str(data["md5"]), data.get("rows"))
    except (ValueError, KeyError, TypeError):
        return None


def _from_checkout(folder: Path) -> DataVersion | None:
    top = _git(["rev-parse", "--show-toplevel"], folder if folder.is_dir() else folder.parent)
    if not top:
        return None
    root = Path(top).resolve()
    try:
        rel = folder.resolve().relative_to(root).as_posix()
    except ValueError:
        return None
    dvc_file = root / f"{rel}.dvc"
    if not dvc_file.is_file() or _git(["status", "--porcelain", "--", f"{rel}.dvc"], root):
        return None  # not tracked, or changed since the last registry commit
    rev = _git(["log", "-1", "--format=%H", "--", f"{rel}.dvc"], root)
    try:
        out = ((yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}])[0]
    except yaml.YAMLError:
        return None
    md5 = _md5_of_out(out)
    if not rev or not md5:
        return None
    registry = _git(["config", "--get", "remote.origin.url"], root) or str(root)
    return DataVersion(registry, rev, rel, md5, _rows(folder))


def _rows(folder: Path) -> int | None:
    manifest = folder / "_manifest.json"
    try:
        files = json.loads(manifest.read_text()).get("files", [])
        counts = [f.get("rows") for f in files if f.get("rows") is not None]
        return int(sum(counts)) if counts else None
    except (OSError, ValueError, AttributeError):
        return None


def data_version(path: str | os.PathLike[str] | None) -> DataVersion | None:
    """The DVC registry version of the dataset at `path` (module docstring), or None."""
    env = os.environ
    if env.get("REWARDOPS_DATA_REGISTRY") and env.get("REWARDOPS_DATA_REV") and env.get("REWARDOPS_DATA_MD5"):
        return DataVersion(env["REWARDOPS_DATA_REGISTRY"], env["REWARDOPS_DATA_REV"],
                           env.get("REWARDOPS_DATA_REGISTRY_PATH", str(path or "")), env["REWARDOPS_DATA_MD5"])
    if path is None or not Path(path).exists():
        return None
    folder = Path(path)
    return _from_file(folder) or _from_checkout(folder)


@dataclass(frozen=True)
class FolderVersion:
    """A dataset folder that no DVC registry versions: where it is and what its manifest holds."""

    path: str  # absolute path of the folder
    digest: str  # sha256 over the manifest's (path, sha256) of every file
    rows: int | None = None

    def tags(self) -> dict[str, str]:
        tags = {"rewardops.data.path": self.path, "rewardops.data.manifest_digest": self.digest}
        if self.rows is not None:
            tags["rewardops.data.rows"] = str(self.rows)
        return tags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 over the sorted (path, sha256) of a manifest's files: the content, not when it was written."""
    import hashlib

    entries = sorted((str(f["path"]), str(f["sha256"])) for f in manifest.get("files", []))
    return hashlib.sha256("".join(f"{p}\0{h}\n" for p, h in entries).encode("utf-8")).hexdigest()


def folder_version(path: str | os.PathLike[str] | None) -> FolderVersion | None:
    """The `FolderVersion` of a complete RewardOps output folder (it holds a valid manifest), else None."""
    if path is None or not Path(path).is_dir():
        return None
    from rewardops.outputs import IncompleteOutputError, verify_output

    try:
        manifest = verify_output(path, hashes=False)  # the reader verified the bytes; here: the file list
    except IncompleteOutputError:
        return None
    rows = manifest.get("rows")
    return FolderVersion(str(Path(path).resolve()), manifest_digest(manifest), int(rows) if rows is not None else None)


def mlflow_dataset(version: DataVersion | FolderVersion) -> Any:
    """An MLflow dataset for `log_input`: for a DVC version, source = the DVC location and digest =
    the md5; for a plain folder, source = its path and digest = its manifest digest."""
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    class FolderDatasetSource(DatasetSource):
        def __init__(self, info: dict[str, Any]) -> None:
            self.info = info

        @staticmethod
        def _get_source_type() -> str:
            return "rewardops-folder"

        def load(self, **kwargs: Any) -> str:
            return self.info["path"]

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> FolderDatasetSource:
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return dict(self.info)

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> FolderDatasetSource:
            return cls(dict(source_dict))

    if isinstance(version, FolderVersion):
        info = {"path": version.path, "uri": Path(version.path).as_uri(), "manifest_digest": version.digest,
                "rows": version.rows}
        # MLflow keeps at most 36 characters of a digest; the source holds the full one
        return MetaDataset(FolderDatasetSource(info), name=Path(version.path).name, digest=version.digest[:36])

    class DvcDatasetSource(DatasetSource):
        def __init__(self, info: dict[str, Any]) -> None:
            self.info = info

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, **kwargs: Any) -> str:
            raise NotImplementedError("use `rewardops data get --model ...` or `dvc get`")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> DvcDatasetSource:
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return dict(self.info)

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> DvcDatasetSource:
            return cls(dict(source_dict))

    info = {"url": version.registry, "rev": version.rev, "path": version.path, "md5": version.md5,
            "get": dvc_get_command(version)}
    name = Path(version.path).name or version.path
    return MetaDataset(DvcDatasetSource(info), name=name, digest=version.md5[:36])


def dvc_get_command(version: DataVersion) -> str:
    """The command that brings the exact rows back."""
    return f"dvc get {version.registry} {version.path} --rev {version.rev} -o {Path(version.path).name or 'data'}"


def dataset_entity(version: DataVersion | FolderVersion) -> Any:
    """The MLflow dataset entity of a run's input: source = the DVC location (registry, rev, path,
    md5 and the `dvc get` command), digest = the md5, and the same as its profile, which MLflow's
    UI shows in the dataset drawer next to the digest; for a plain folder, its path and manifest digest."""
    from mlflow.entities import Dataset

    base = mlflow_dataset(version)._to_mlflow_entity()
    if isinstance(version, FolderVersion):
        profile: dict[str, Any] = {"path": version.path, "manifest_digest": version.digest}
    else:
        profile = {"dvc get": dvc_get_command(version), "registry": version.registry, "rev": version.rev,
                   "path": version.path, "md5": version.md5}
    if version.rows is not None:
        profile["rows"] = version.rows
    return Dataset(name=base.name, digest=base.digest, source_type=base.source_type, source=base.source,
                   schema=base.schema, profile=json.dumps(profile))


def dvc_md5(folder: str | os.PathLike[str]) -> str:
    """DVC 3's md5 of a folder (`<hex>.dir`): md5 of the sorted JSON list of {md5, relpath} of its
    files, as `dvc add` records it; used to check that data brought back is the data trained on."""
    import hashlib

    root = Path(folder)
    entries = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security measure
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        entries.append({"md5": digest.hexdigest(), "relpath": file.relative_to(root).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"  # noqa: S324
