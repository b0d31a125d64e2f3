"""Which distributions to carry to the GPU machine: trl, datasets, deepspeed and every requirement of
theirs (recursively, extras and non-matching markers skipped) that the device image lacks
(bench/gpu/device_packages.txt), each at the version this venv runs, one `name==version` a line.

    .venv/bin/python bench/gpu/wheel_plan.py [trl datasets deepspeed]
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOTS = ["trl", "datasets", "deepspeed"]
# Device-side environment for marker evaluation (Python 3.12 on x86-64 Linux).
DEVICE_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def device_has() -> set[str]:
    lines = (HERE / "device_packages.txt").read_text().splitlines()
    return {norm(x) for x in lines if x.strip() and not x.startswith("#")}


def requirements(dist: md.Distribution) -> list[str]:
    from packaging.requirements import Requirement

    out = []
    for spec in dist.requires or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(DEVICE_ENV):
            continue  # extras ("extra == ...") and other platforms
        out.append(req.name)
    return out


def plan(roots: list[str]) -> list[tuple[str, str]]:
    have = device_has()
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = norm(todo.pop())
        if name in seen or (name in have and name not in map(norm, roots)):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            print(f"warning: {name} is needed but not installed here; add it by hand", file=sys.stderr)
            continue
        seen[name] = dist.version
        todo += requirements(dist)
    return sorted(seen.items())


if __name__ == "__main__":
    for name, version in plan(sys.argv[1:] or ROOTS):
        print(f"{name}=={version}")
