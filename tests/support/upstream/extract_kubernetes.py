"""Cut the Kubernetes OpenAPI (swagger 2.0) down to the operations RewardOps calls.

    python tests/support/upstream/extract_kubernetes.py swagger.json.unprocessed > kubernetes-1.30.paths.json

The input is `kubernetes/swagger.json.unprocessed` of kubernetes-client/python at a release tag
(the unmodified `api/openapi-spec/swagger.json` of the Kubernetes release branch the client was
generated from; see README.md). Kept: the paths below, verbatim, and every parameter and
definition they reference (transitively), verbatim.
"""

from __future__ import annotations

import json
import sys

PATHS = (
    "/api/v1/nodes",
    "/api/v1/namespaces/{namespace}/pods",
    "/api/v1/namespaces/{namespace}/pods/{name}",
    "/api/v1/namespaces/{namespace}/pods/{name}/log",
    "/api/v1/namespaces/{namespace}/secrets/{name}",
    # Custom resources are served by the same generic REST handler as built-in kinds; their
    # operations take the parameters of a namespaced built-in collection and item (batch/v1 Jobs).
    "/apis/batch/v1/namespaces/{namespace}/jobs",
    "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
)


def refs(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)  # "#/definitions/NAME" or "#/parameters/NAME"
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def main(path: str) -> None:
    spec = json.load(open(path))
    paths = {p: spec["paths"][p] for p in PATHS}
    wanted, todo = set(), refs(paths)
    while todo:
        ref = todo.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        _, section, name = ref.split("/", 2)
        todo |= refs(spec[section][name]) - wanted
    out = {"swagger": spec["swagger"], "info": spec["info"], "paths": paths}
    for section in ("parameters", "definitions"):
        names = sorted(ref.split("/", 2)[2] for ref in wanted if ref.startswith(f"#/{section}/"))
        out[section] = {name: spec[section][name] for name in names}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
