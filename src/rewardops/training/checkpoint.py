"""Checkpoint storage: a local folder or an s3:// URI, written atomically, newest one resumable.

Layout under the location: `step-00000010/` folders (model, optimizer, scheduler, per-rank RNG,
`state.json` with the data position) and a `latest` file naming the newest complete one. A
checkpoint only becomes `latest` after every rank has written its part, so a run killed while
saving resumes from the previous checkpoint.

For S3 every rank writes into a local staging folder, uploads its own files with boto3, and
downloads the whole checkpoint folder on resume (endpoint from AWS_ENDPOINT_URL as boto3 reads it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


def step_tag(step: int) -> str:
    return f"step-{step:08d}"


class CheckpointStore(Protocol):
    def latest(self) -> str | None: ...
    def write_dir(self, tag: str) -> Path: ...
    def commit(self, tag: str) -> None: ...
    def mark_latest(self, tag: str) -> None: ...
    def fetch(self, tag: str) -> Path: ...
    def tags(self) -> list[str]: ...
    def delete(self, tag: str) -> None: ...
    def describe(self, tag: str) -> str: ...


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def latest(self) -> str | None:
        marker = self.root / "latest"
        if not marker.exists():
            return None
        tag = marker.read_text().strip()
        return tag if (self.root / tag).is_dir() else None

    def write_dir(self, tag: str) -> Path:
        path = self.root / tag
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, tag: str) -> None:
        pass  # files are already in place

    def mark_latest(self, tag: str) -> None:
        tmp = self.root / "latest.tmp"
        tmp.write_text(tag)
        tmp.replace(self.root / "latest")

    def fetch(self, tag: str) -> Path:
        return self.root / tag

    def tags(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("step-*") if p.is_dir())

    def delete(self, tag: str) -> None:
        shutil.rmtree(self.root / tag, ignore_errors=True)

    def describe(self, tag: str) -> str:
        return str(self.root / tag)


class S3Store:
    def __init__(self, uri: str, staging: str | Path) -> None:
        import boto3

        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{uri}: not an s3://bucket/prefix URI")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.staging = Path(staging)
        self.client = boto3.client("s3")
        self._written: dict[str, Path] = {}

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def latest(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key("latest"))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # botocore ClientError 404 on some S3 implementations
            if "404" in str(exc) or "NoSuchKey" in str(exc):
                return None
            raise
        return body.decode().strip() or None

    def write_dir(self, tag: str) -> Path:
        path = self.staging / tag
        path.mkdir(parents=True, exist_ok=True)
        self._written[tag] = path
        return path

    def commit(self, tag: str) -> None:
        local = self._written.pop(tag, self.staging / tag)
        for f in sorted(local.rglob("*")):
            if f.is_file():
                self.client.upload_file(str(f), self.bucket, self._key(tag, f.relative_to(local).as_posix()))
        shutil.rmtree(local, ignore_errors=True)

    def mark_latest(self, tag: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key("latest"), Body=tag.encode())

    def fetch(self, tag: str) -> Path:
        local = self.staging / f"fetched-{tag}"
        if local.exists():
            shutil.rmtree(local)
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self._key(tag) + "/"
        found = False
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found = True
                dest = local / obj["Key"][len(prefix) :]
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, obj["Key"], str(dest))
        if not found:
            raise FileNotFoundError(f"s3://{self.bucket}/{prefix}: checkpoint has no files")
        return local

    def tags(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        out = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("step-"), Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                out.add(cp["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def delete(self, tag: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(tag) + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def describe(self, tag: str) -> str:
        return f"s3://{self.bucket}/{self._key(tag)}"


def open_store(location: str, staging: str | Path) -> CheckpointStore:
    if location.startswith("s3://"):
        return S3Store(location, staging)
    return LocalStore(location)
