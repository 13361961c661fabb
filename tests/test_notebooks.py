"""The notebooks' shape: the nbval run (pytest's notebooks/ collection) executes them."""

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHECKED = "nbval-check-output"  # the cell metadata tag nbval reads


def test_notebooks_are_numbered_in_lesson_order():
    names = [p.name for p in NOTEBOOKS]
    assert names[:4] == [
        "01_set_up.ipynb",
        "02_build_the_pipeline.ipynb",
        "03_swap_schedulers.ipynb",
        "04_generate_and_display.ipynb",
    ]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs of {cell.source[:60]!r}"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state is committed"


def test_every_checked_cell_has_its_expected_output_and_no_other_is_kept():
    """nbval compares cells tagged `nbval-check-output` with notebooks/expected_outputs.json (see conftest.py)."""
    expected = json.loads((ROOT / "notebooks" / "expected_outputs.json").read_text())
    checked = {
        p.name: {c.id for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code" and CHECKED in c.metadata.get("tags", [])}
        for p in NOTEBOOKS
    }
    assert {name: set(cells) for name, cells in expected.items() if cells} == {name: ids for name, ids in checked.items() if ids}
    assert all(text.strip() for cells in expected.values() for text in cells.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_skeleton(path):
    nb = nbformat.read(path, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    text = "\n".join(markdown)
    assert len(re.findall(r"^# ", text, re.MULTILINE)) == 1, "exactly one H1"
    first = markdown[0].splitlines()
    assert first[0].startswith("# ")
    badge = next(line for line in first[1:] if line.strip())
    assert "colab-badge.svg" in badge and badge.rstrip(")").endswith(f"notebooks/{path.name}")
    for heading in ("## What you will learn", "## What you need", "## Setup", "## Troubleshooting", "## What comes next"):
        assert heading in text, f"{path.name} lacks {heading!r}"
    assert re.search(r"^## Step 1: ", text, re.MULTILINE)
    assert "**Exercise:**" in text
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("%pip install" in c and "find_spec" in c for c in code), "guarded %pip cell"
    assert not any("!pip" in c for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_settings_come_from_one_visible_cell(path):
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    readers = [c for c in code if "os.environ.get(\"T2V_" in c]
    assert len(readers) <= 1, "settings are read in one cell"
    if readers:
        # The real default written out: the article's model, or the listed real model a lesson is about (zeroscope in 10).
        from t2v_helpers.families import models

        real = [m.id for m in models().values() if not m.tiny]
        assert any(f'os.environ.get("T2V_MODEL", "{model_id}")' in readers[0] for model_id in real)


def test_no_notebook_needs_a_function_from_another():
    """A function a lesson writes in the open is its own; shared ones live in t2v_helpers."""
    sources = {p.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code") for p in NOTEBOOKS}
    for name, source in sources.items():
        for function in re.findall(r"^def (\w+)", source, re.MULTILINE):
            users = [other for other, text in sources.items() if other != name and re.search(rf"\b{function}\(", text)]
            assert not users, f"{users} call {function}() from {name}: move it to t2v_helpers"


def test_colab_links_list_every_notebook():
    text = (ROOT / "colab_link.md").read_text()
    linked = re.findall(r"colab\.research\.google\.com/github/[^)\s]+/blob/v[^/)\s]+/(notebooks/[^)\s]+\.ipynb)", text)
    assert sorted(linked) == [f"notebooks/{p.name}" for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_learner_reads_no_test_machinery(path):
    """Checks live in cell metadata tags and in tests/, not in what the learner reads."""
    for cell in nbformat.read(path, as_version=4).cells:
        text = cell.source
        assert "NBVAL" not in text, f"{path.name} {cell.id}: use the cell tag, not a comment"
        assert not re.search(r"\bCI\b|\bnbval\b|pytest", text), f"{path.name} {cell.id}: remarks about CI or tests"
        if cell.cell_type == "code":
            assert not re.search(r"^\s*assert\b", text, re.MULTILINE), f"{path.name} {cell.id}: asserts belong in tests/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_lets_run_all_go_on(path):
    """Colab's "Run all" stops at the first error and ignores the `raises-exception` tag that Jupyter
    and nbval honour: a cell that shows an error on purpose catches it and prints its message."""
    for cell in nbformat.read(path, as_version=4).cells:
        assert "raises-exception" not in cell.metadata.get("tags", []), (
            f"{path.name} cell {cell.id} raises on purpose: catch the error and print its message instead"
        )
