"""The library's layers only import downwards, and no modules import each other in a circle.

Read from the source (every `import` / `from ... import`, at module level or inside functions), so a
lazy import cannot hide an upward dependency; imports under `if TYPE_CHECKING:` never run and do not
count. Each area's `commands.py` (its CLI) belongs to its area's layer like any other module: what it
needs from above (the benchmark prompts `rewardops preprocess` decontaminates against) is handed down
by `cli.py`, the top, which assembles every area's commands.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; an area may import its own modules and any area before it
LAYERS = [
    {"errors"},
    {"backbones", "naming", "outputs", "attention"},
    {"data"},
    {"rendering"},
    {"evaluation"},
    {"tracking"},
    {"training"},
    {"curation"},
    {"k8s"},
    {"pipelines"},
    {"cli"},
]
RANK = {area: i for i, group in enumerate(LAYERS) for area in group}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those inside `if TYPE_CHECKING:` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in (SRC / "rewardops").rglob("*.py"):
        module = _module(path)
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found[module].update(n for n in names if n == "rewardops" or n.startswith("rewardops."))
    return found


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rewardops"


def _is_cli(module: str) -> bool:
    return module == "rewardops.cli"


def test_every_area_has_a_layer():
    areas = {_area(m) for m in _imports()} - {"rewardops"}
    assert areas <= set(RANK), f"areas without a layer in this test: {sorted(areas - set(RANK))}"


def test_no_area_imports_a_higher_one():
    upward = []
    for module, targets in _imports().items():
        if _is_cli(module):
            continue
        for target in targets:
            if target == "rewardops":
                continue
            src, dst = _area(module), _area(target)
            if dst in RANK and RANK[dst] > RANK[src]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    known = set(_imports())
    graph = {m: {t for t in ts if t in known and t != m} for m, ts in _imports().items() if not _is_cli(m)}
    # a package's __init__ importing its own submodules is not a circle
    graph = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
