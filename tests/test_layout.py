"""The package's shape (DESIGN.md): the graph IR and its executor under rnnfast/graph/, the ONNX importer as one
package, and no import cycle among rnnfast's modules at import time (a module may import another inside a function,
where it runs after both are loaded, but the modules' top-level imports form no cycle), and the core modules import
in one direction, even inside functions (model -> graph -> stream -> engine -> layers -> quantize)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rnnfast"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, everywhere: bool = False) -> set:
    """The rnnfast modules a module imports at its top level (including under `if` / `try` at the top level), or
    with `everywhere` also inside functions and classes."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    tree = ast.parse(path.read_text())
    body = list(ast.walk(tree)) if everywhere else list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, (ast.If, ast.Try)) and not everywhere:
            body += node.body + getattr(node, "orelse", []) + [h for x in getattr(node, "handlers", []) for h in x.body]
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rnnfast")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("rnnfast"):
                continue
            # `from pkg import sub` imports the submodule when it is one
            for a in node.names:
                sub = PACKAGE.parent / Path(*f"{mod}.{a.name}".split("."))
                out.add(f"{mod}.{a.name}" if sub.with_suffix(".py").exists() or sub.is_dir() else mod)
    return out


def test_no_import_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in top_level_imports(p) if i in modules and i != m} for m, p in modules.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# The core modules from the top down (issue #20): each may import only the ones after it, at any level (a deferred
# import inside a function is still a dependency: a cycle through one makes the two modules one unit to change).
CORE_ORDER = ("model", "graph", "stream", "engine", "layers", "quantize")


def core_module(name: str):
    """The core module (or package, for rnnfast.graph) a module name belongs to, else None."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "rnnfast" and parts[1] in CORE_ORDER else None


def test_core_modules_import_in_one_direction():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    assert {core_module(m) for m in modules} >= set(CORE_ORDER), "a core module moved: update CORE_ORDER"
    upward = []
    for m, p in sorted(modules.items()):
        here = core_module(m)
        if here is None:
            continue
        for imported in sorted(top_level_imports(p, everywhere=True)):
            there = core_module(imported)
            if there is not None and CORE_ORDER.index(there) < CORE_ORDER.index(here):
                upward.append(f"{m} imports {imported}")
    assert not upward, f"imports against the order {' -> '.join(CORE_ORDER)}: " + "; ".join(upward)


def test_layout_holds_the_graph_and_one_onnx_package():
    for path in ("graph/ir.py", "graph/analysis.py", "graph/compile.py", "graph/runtime.py", "importers/onnx/__init__.py",
                 "importers/onnx/lower.py"):
        assert (PACKAGE / path).is_file(), path
    assert not list((PACKAGE / "importers").glob("onnx_*.py")), "the ONNX importer's modules live in importers/onnx/"
    src = PACKAGE.parent / "src_c" / "graph"
    assert (src / "exec.c").is_file() and (src / "graph.h").is_file() and list((src / "ops").glob("*.c"))


def test_every_subpackage_is_installed():
    """pyproject.toml lists the packages a `pip install .` copies (CI tests that install): a package left out works
    in a checkout and is missing from the installed rnnfast."""
    import tomllib

    with open(PACKAGE.parent / "pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {module_name(p) for p in PACKAGE.rglob("__init__.py") if "build" not in p.parts}
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
