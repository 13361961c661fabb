"""Test defaults (offline, tiny model, small settings), and the expected outputs of the notebooks' checked cells.

An environment variable set before pytest starts wins, so the GPU workflow can run the
same suite on the real model.
"""

import json
import os
import tempfile
from pathlib import Path

import nbformat
import pytest

for name, value in {
    "HF_HUB_OFFLINE": "1",
    "T2V_MODEL": "tiny",
    "T2V_STEPS": "2",
    "T2V_FRAMES": "8",
    "T2V_SIZE": "32",
    "T2V_OUTPUT_DIR": tempfile.mkdtemp(prefix="t2v-test-outputs-"),
}.items():
    os.environ.setdefault(name, value)

CHECKED = "nbval-check-output"  # the cell metadata tag nbval reads
EXPECTED_OUTPUTS = Path(__file__).parent / "notebooks" / "expected_outputs.json"


def pytest_collection_modifyitems(items):
    """Give nbval the expected output of every cell tagged `nbval-check-output`.

    Notebooks are committed without outputs, and nbval compares only cells stored as run
    with an output, so the expected text lives in notebooks/expected_outputs.json
    (written by tools/refresh_expected_outputs.py) and is put into the cells here.
    """
    expected = json.loads(EXPECTED_OUTPUTS.read_text()) if EXPECTED_OUTPUTS.exists() else {}
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's notebook cells
        if cell is None or CHECKED not in cell.metadata.get("tags", []):
            continue
        text = expected.get(Path(str(item.fspath)).name, {}).get(cell.id)
        if text is None:
            raise pytest.UsageError(
                f"{item.fspath} cell {cell.id} is tagged {CHECKED} but has no expected output in "
                f"{EXPECTED_OUTPUTS.name}: run .venv/bin/python tools/refresh_expected_outputs.py {item.fspath}"
            )
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
