"""The helper package's shape in figures: lines, modules, public names, largest class and function, cycles, upward imports.

    python tools/structure_report.py [ROOT]

ROOT is a checkout (default: this one), so two versions can be compared. Upward imports are
counted against the layers of pyproject.toml's import-linter contract (in this checkout),
leaving out modules that ROOT does not have; `lint-imports` is what holds the contract.
"""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

HERE = Path(__file__).resolve().parents[1]
PACKAGE = "t2v_helpers"


def sizes(root):
    """(lines, modules, [(lines, 'module.Class')], [(lines, 'module.function')]) of the package under `root`."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    classes, functions = [], []
    for path in files:
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            span = (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef):
                classes.append((span, f"{name}.{node.name}"))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((span, f"{name}.{node.name}"))
    lines = sum(len(path.read_text().splitlines()) for path in files)
    return lines, len(files), sorted(classes, reverse=True), sorted(functions, reverse=True)


def cycles(graph):
    """Groups of modules that import each other, directly or through others (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def upward_imports(graph):
    """Imports that break this checkout's layers contract, as 'importer -> imported (line)'."""
    contract = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layers = []
    for layer in contract["layers"]:
        names = {f"{PACKAGE}.{name.strip()}" for name in layer.split("|")} & graph.modules
        if names:
            layers.append(grimp.Layer(*names, independent=True))
    found = []
    for dependency in graph.find_illegal_dependencies_for_layers(layers=layers):
        for route in dependency.routes:
            for importer in route.heads:
                for imported in route.tails:
                    if not route.middle:
                        found.append(f"{importer} -> {imported}")
    return sorted(set(found))


def report(root):
    sys.path.insert(0, str(root))
    graph = grimp.build_graph(PACKAGE, cache_dir=None)  # the first t2v_helpers on sys.path: `root`'s
    lines, modules, classes, functions = sizes(root)
    # In a fresh process with `root` first on the path, so that the checkout asked for is the one imported.
    code = "import inspect, t2v_helpers as t; print(sum(not n.startswith('_') and not inspect.ismodule(getattr(t, n)) for n in dir(t)))"
    public = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=True)
    print(f"{root}: {lines} lines in {modules} modules of {PACKAGE}/")
    print(f"public names in t2v.* (modules aside): {public.stdout.strip()}")
    print(f"largest classes: {classes[:3]}")
    print(f"largest functions: {functions[:3]}; over 60 lines: {sum(span > 60 for span, _ in functions)}")
    print(f"cycles: {cycles(graph) or 'none'}")
    upward = upward_imports(graph)
    print(f"upward imports against the layers contract: {len(upward)}", *upward, sep="\n  ")


if __name__ == "__main__":
    report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE)
