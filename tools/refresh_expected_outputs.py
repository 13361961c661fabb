"""Run notebooks on the tiny model and record the output of their cells tagged `nbval-check-output`.

    .venv/bin/python tools/refresh_expected_outputs.py notebooks/03_swap_schedulers.ipynb ...

The notebooks stay committed without outputs. What each checked cell prints goes into
notebooks/expected_outputs.json, which the root conftest.py hands to nbval to compare.
A checked cell must print only facts that hold for the tiny and the real model alike.
"""

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from conftest import CHECKED, EXPECTED_OUTPUTS  # noqa: E402  (also applies the tiny-model test settings)


def checked_outputs(path):
    """{cell id: printed text} of the checked cells, from a run of a copy of the notebook."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECKED in cell.metadata.get("tags", []):
            if any(o.output_type != "stream" or o.name != "stdout" for o in cell.outputs):
                sys.exit(f"{path.name} cell {cell.id}: a checked cell may only print (no errors, results or images)")
            found[cell.id] = "".join(o.text for o in cell.outputs)
    return found


if __name__ == "__main__":
    expected = json.loads(EXPECTED_OUTPUTS.read_text()) if EXPECTED_OUTPUTS.exists() else {}
    for name in sys.argv[1:]:
        path = Path(name).resolve()
        expected[path.name] = checked_outputs(path)
        print("refreshed", path.name)
    EXPECTED_OUTPUTS.write_text(json.dumps(dict(sorted(expected.items())), indent=1, ensure_ascii=False) + "\n")
