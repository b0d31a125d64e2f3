"""Reading compiled KFP IR in tests (a plain module: `conftest` is a shared name across test folders)."""

from pathlib import Path

import yaml


def load_ir(path: Path) -> dict:
    """The pipeline spec, with the platform spec (the file's second YAML document, when the
    pipeline sets Kubernetes config) merged in under "platforms"."""
    docs = list(yaml.safe_load_all(Path(path).read_text()))
    ir = docs[0]
    for extra in docs[1:]:
        ir.update(extra)
    return ir
