"""The package's shape: dependencies point one way, along the request's path, and nothing imports in a circle.

A request flows protocol adapter -> version selection -> signature codec -> model -> codec -> response;
the layers below never import the ones above (the codec knows nothing of protocols, the model layer
nothing of versions or protocols). Every ``import`` counts, those inside functions too: a function-level
import is still a dependency, only a deferred one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlserver_sigaware"
ROOT = "mlserver_sigaware"

#: Lowest first. A module may import modules of its own layer or of the layers before it.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "settings", "logs", "metrics", "demo"),
    ("signature", "_patches"),
    ("codec",),
    ("model",),
    ("versions",),
    ("protocols",),
    ("runtime",),
    ("__init__",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    if not base.startswith(ROOT):
        return []
    if node.module is None:  # from . import x: x may be a module
        return [f"{base}.{a.name}" for a in node.names]
    return [base]


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith(ROOT)]
            for target in targets:
                while target not in modules and "." in target:  # `from .x import name`: the module x
                    target = target.rsplit(".", 1)[0]
                assert target in modules, f"{name} imports {target}, which does not exist"
                if target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"module {module} is in no layer: add its top-level name to LAYERS")


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_dependencies_point_down_the_request_path() -> None:
    wrong = [
        f"{module} imports {dep}"
        for module, deps in import_graph().items()
        for dep in deps
        if layer_of(dep) > layer_of(module)
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found




def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The two checks above can fail: a planted circle and a codec -> protocols import are caught."""
    graph = {k: set(v) for k, v in import_graph().items()}
    graph["mlserver_sigaware.codec.decode"].add("mlserver_sigaware.protocols.http")
    graph["mlserver_sigaware.protocols.http"].add("mlserver_sigaware.codec.decode")
    assert _cycles(graph)
    assert layer_of("mlserver_sigaware.protocols.http") > layer_of("mlserver_sigaware.codec.decode")


@pytest.mark.parametrize("public", ["SignatureAwareRuntime", "MlflowRegistryRepository"])
def test_public_names(public: str) -> None:
    import mlserver_sigaware

    assert public in mlserver_sigaware.__all__
    assert getattr(mlserver_sigaware, public).__name__ == public
