"""The package's shape: layers that only import downwards (import-linter's contract in pyproject.toml), small
classes and functions, and a curated `t2v.*` that __init__'s docstring lists by notebook."""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import t2v_helpers as t2v

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "t2v_helpers"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LONGEST_FUNCTION, LONGEST_CLASS, MOST_PUBLIC_NAMES = 60, 200, 45


def lint_imports(root):
    """Run import-linter on the t2v_helpers found first under `root`, with `root`'s pyproject.toml."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: import-linter is in the `test` extra (python3 tasks.py setup)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_holds():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


@pytest.mark.parametrize(
    "module, planted, message",
    [
        ("errors.py", "from . import studio\n", "t2v_helpers.errors is not allowed to import t2v_helpers.studio"),
        ("families/wan.py", "from ..generate import generate\n", "t2v_helpers.families is not allowed to import t2v_helpers.generate"),
        # Inside a function, where an import that dodges a cycle would hide.
        ("validate.py", "def _planted():\n    from .memory import predict\n", "t2v_helpers.validate is not allowed to import t2v_helpers.memory"),
    ],
)
def test_the_contract_fails_on_a_planted_upward_import(tmp_path, module, planted, message):
    shutil.copytree(PACKAGE, tmp_path / "t2v_helpers", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "t2v_helpers" / module, "a") as source:
        source.write("\n" + planted)
    run = lint_imports(tmp_path)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]
    assert message in run.stdout and "0 kept, 1 broken" in run.stdout


def test_a_module_left_out_of_the_layers_breaks_the_contract(tmp_path):
    # The contract is exhaustive, so a new module must be given its layer.
    shutil.copytree(PACKAGE, tmp_path / "t2v_helpers", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "t2v_helpers" / "newcomer.py").write_text("NAME = 'not in any layer'\n")
    run = lint_imports(tmp_path)
    assert run.returncode == 1 and "not listed as layers" in run.stdout and "t2v_helpers.newcomer" in run.stdout, run.stdout[-4000:]


def spans():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield node, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1


def test_no_function_over_60_lines_and_no_class_over_200():
    too_long = [
        f"{where} has {lines} lines"
        for node, where, lines in spans()
        if lines > (LONGEST_CLASS if isinstance(node, ast.ClassDef) else LONGEST_FUNCTION)
    ]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)


def test_t2v_offers_a_curated_list_that_its_docstring_gives_by_notebook():
    assert len(t2v.__all__) <= MOST_PUBLIC_NAMES and len(set(t2v.__all__)) == len(t2v.__all__)
    table = t2v.__doc__
    for name in t2v.__all__:
        assert hasattr(t2v, name), name
        assert f" {name}," in table or f" {name}\n" in table, f"{name} is not in t2v_helpers.__init__'s table of contents"
    public = {n for n in dir(t2v) if not n.startswith("_") and not isinstance(getattr(t2v, n), type(t2v))}
    assert public == set(t2v.__all__), "every name t2v.* offers is listed in __all__ (the rest is reached through its module)"


def public_name_problems(text):
    """Names in `text` (code) that are neither in t2v.* nor reached through their module, nor private."""
    problems = []
    for first, second in re.findall(r"\bt2v\.(\w+)(?:\.(\w+))?", text):
        value = getattr(t2v, first, None)
        if value is None:
            problems.append(f"t2v.{first} does not exist")
        elif isinstance(value, type(t2v)) and second and (second.startswith("_") or not hasattr(value, second)):
            problems.append(f"t2v.{first}.{second} is private or missing")
        elif first not in t2v.__all__ and not isinstance(value, type(t2v)):
            problems.append(f"t2v.{first} is not in t2v.__all__")
    for module, names in re.findall(r"from (t2v_helpers[\w.]*) import ([\w, ]+)", text):
        problems += [f"{module}.{name} is private" for name in re.findall(r"\w+", names) if name.startswith("_")]
    return problems


def notebook_code(path):
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "README.md"] + sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name
)
def test_notebooks_readme_and_messages_use_public_names_or_name_their_module(path):
    # The package's own error messages and docstrings tell users which t2v.* to call: those must exist too.
    text = notebook_code(path) if path.suffix == ".ipynb" else path.read_text()
    assert not public_name_problems(text)


def test_the_public_name_check_can_fail():
    assert public_name_problems("t2v.find_model('tiny'); t2v.video._kind(p); from t2v_helpers.upscale import _source") == [
        "t2v.find_model does not exist", "t2v.video._kind is private or missing", "t2v_helpers.upscale._source is private"]


def test_importing_the_package_loads_no_model_class():
    # The model classes of diffusers and transformers take seconds to import; `import t2v_helpers` (every
    # notebook's first cell, `t2v --help`) needs none of them, so the family files import them where they build.
    heavy = ["diffusers.models.unets.unet_3d_condition", "transformers.models.clip.modeling_clip", "accelerate", "peft",
             "diffusers.models.transformers.transformer_wan", "transformers.models.umt5.modeling_umt5"]
    code = f"import sys, t2v_helpers; print([m for m in {heavy!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]", f"importing t2v_helpers loaded {run.stdout.strip()}"
