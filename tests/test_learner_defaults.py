"""Every notebook runs top to bottom as a learner without a GPU runs it (issue 22).

The nbval pass over notebooks/ runs them at the small settings the root conftest.py sets
(T2V_STEPS=2, T2V_FRAMES=8, ...). A learner sets none of these: each notebook's Settings cell
then chooses its own values, and only the model falls back to its tiny copy. This test runs each
notebook once that way, with no T2V_* variable but T2V_OUTPUT_DIR (a temporary folder, so nothing
lands in the repository), offline, on the CPU, in a temporary copy of the notebooks folder. Any
error fails it, except in a cell tagged `raises-exception` (an error the lesson shows on purpose).
benchmarks/notebook_times.py times the same runs for the notebooks' "What you need" sections.
"""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 600


def learner_environment(output_dir):
    """os.environ without the T2V_* settings (T2V_CACHE, where the tiny models are kept, stays), offline, writing to
    `output_dir`, and with no GPU visible: the CPU learner's run, on a GPU runner too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CACHE"}
    return {**env, "HF_HUB_OFFLINE": "1", "T2V_OUTPUT_DIR": str(output_dir), "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_the_notebook_runs_at_its_own_defaults_on_the_cpu(notebook, tmp_path):
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work)  # the notebook's own folder, as a learner has it, so relative paths hold
    nb = nbformat.read(work / notebook.name, as_version=4)
    # This interpreter's kernel, as the nbval pass runs (--nbval-current-env).
    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(nb, km=kernel, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(work)}})
    client.execute(env=learner_environment(tmp_path / "outputs"))  # raises CellExecutionError naming the cell and its error
