"""The notebooks' shape: the nbval run (pytest's notebooks/ collection) executes them."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHECKED = "# NBVAL_CHECK_OUTPUT"


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
    """Only NBVAL_CHECK_OUTPUT cells keep their expected text output: nbval compares those."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.startswith(CHECKED):
            # nbval compares only cells stored as run, with their expected output.
            assert cell.execution_count == 1 and cell.outputs, f"{path.name}: {cell.source[:60]!r} has no expected output"
            assert all(o.output_type in ("stream", "execute_result") for o in cell.outputs), cell.source
            assert all("image/png" not in o.get("data", {}) for o in cell.outputs), cell.source
        else:
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs of {cell.source[:60]!r}"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state is committed"


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
        assert 'os.environ.get("T2V_MODEL", "ali-vilab/text-to-video-ms-1.7b")' in readers[0]


def test_no_notebook_needs_a_function_from_another():
    """A function a lesson writes in the open is its own; shared ones live in t2v_helpers."""
    sources = {p.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code") for p in NOTEBOOKS}
    for name, source in sources.items():
        for function in re.findall(r"^def (\w+)", source, re.MULTILINE):
            users = [other for other, text in sources.items() if other != name and re.search(rf"\b{function}\(", text)]
            assert not users, f"{users} call {function}() from {name}: move it to t2v_helpers"


def test_colab_links_list_every_notebook():
    text = (ROOT / "colab_link.md").read_text()
    linked = re.findall(r"colab\.research\.google\.com/github/[^)\s]+/blob/main/(notebooks/[^)\s]+\.ipynb)", text)
    assert sorted(linked) == [f"notebooks/{p.name}" for p in NOTEBOOKS]
