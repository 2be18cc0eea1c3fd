"""The package's import graph runs one way: text -> IR -> analysis -> graph -> backends, with the
`Network` façade and the command line on top, and no module imports one that imports it back.

Every `import` counts: at the top of a module, inside a function (a lazy import), and under
`if TYPE_CHECKING:`, since a cycle held apart by a lazy import is still a cycle in the design.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnspec"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The package's module that `import name` runs last: the name, or its longest prefix that is one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported(module: str, path: Path) -> set[str]:
    """The package's modules a module imports anywhere in its text."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names if alias.name.startswith("cnnspec")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "cnnspec":
                continue
            # `from cnnspec.backends import onnx` imports a module; `from cnnspec.graph import Graph` a name
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else resolve(base)
                      for alias in node.names}
    return found - {module, None}


GRAPH = {module: imported(module, path) for module, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walk_sees_lazy_and_type_checking_imports():
    assert "cnnspec.network" in GRAPH["cnnspec.zoo"]  # inside zoo_entry
    assert "cnnspec.graph" in GRAPH["cnnspec.backends.onnx"]  # under TYPE_CHECKING
    assert "cnnspec.layers" in GRAPH["cnnspec.graph"]  # from cnnspec.layers import REGISTRY


def test_the_package_imports_have_no_cycle():
    found = cycles(GRAPH)
    described = ["; ".join(f"{m} -> {', '.join(sorted(set(c) & GRAPH[m]))}" for m in c) for c in found]
    assert not found, "import cycles: " + " | ".join(described)


#: the layers under the façade: none of them may import `cnnspec.network`, even lazily
BELOW_THE_FACADE = ("cnnspec.backends", "cnnspec.frontend", "cnnspec.analysis", "cnnspec.layers", "cnnspec.graph",
                    "cnnspec.ir", "cnnspec.codes", "cnnspec.diagnostics", "cnnspec.resources", "cnnspec.wording")


def test_the_backends_and_the_loader_do_not_import_the_network_facade():
    """They take the resolved graph (`cnnspec.graph.CheckedGraph`); `Network` sits above them."""
    below = [m for m in MODULES if m.startswith(BELOW_THE_FACADE)]
    assert "cnnspec.backends.onnx" in below and "cnnspec.frontend.loader" in below
    offending = [m for m in below if "cnnspec.network" in GRAPH[m]]
    assert not offending, offending


def test_importing_the_onnx_backend_and_the_loader_loads_no_network():
    modules = ["cnnspec.backends.onnx", "cnnspec.backends.weights", "cnnspec.backends.runtime",
               "cnnspec.backends.onnx_io", "cnnspec.backends.torch_source", "cnnspec.frontend.loader",
               "cnnspec.analysis.elaborate", "cnnspec.analysis.lints"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m == 'cnnspec.network' or m.startswith('cnnspec.cli')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
