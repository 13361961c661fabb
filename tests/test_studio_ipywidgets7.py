"""The studio (notebook 05) in a kernel with Colab's Jupyter stack: ipywidgets 7.7.1, IPython 7.34.0.

Colab's kernel imports ipywidgets 7.7.1 when it starts, so installing ipywidgets 8 there
changes the disk, not the running kernel, and its front end renders ipywidgets 7. This test
builds (once, cached in build/) a virtual environment holding only those four packages at
Colab's versions, which falls back to this environment for everything else (torch, diffusers,
t2v_helpers), starts an ipykernel from it, shows the studio and clicks Generate the way a
browser does.
"""

import base64
import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from test_studio import FRAMES, SIZE, STEPS, click, run_in

ROOT = Path(__file__).resolve().parents[1]
# Colab's versions (googlecolab/backend-info, pip-freeze.txt of 2026-08-19), with the two
# small packages IPython 7 and ipywidgets 7 need that this environment's IPython 9 does not.
COLAB_JUPYTER = ["ipywidgets==7.7.1", "ipython==7.34.0", "ipykernel==6.17.1", "traitlets==5.7.1"]
EXTRA = ["ipython_genutils==0.2.0", "backcall==0.2.0", "pickleshare==0.7.5", "decorator==5.2.1", "nest_asyncio==1.6.0"]


def site_packages(prefix):
    return Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"])


@pytest.fixture(scope="session")
def colab_python():
    """The Python of a cached environment with Colab's ipywidgets, IPython, ipykernel and traitlets first on its path."""
    ours = sysconfig.get_paths()["purelib"]
    folder = ROOT / "build" / f"colab-jupyter-py{sys.version_info.major}{sys.version_info.minor}"
    stamp = folder / "t2v-stamp.txt"
    wanted = "\n".join([*COLAB_JUPYTER, *EXTRA, ours])
    python = folder / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == wanted and python.exists()):
        venv.create(folder, clear=True, with_pip=False)
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", *COLAB_JUPYTER, *EXTRA]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"pip could not install Colab's Jupyter packages ({' '.join(COLAB_JUPYTER)}):\n{done.stderr[-3000:]}", pytrace=False)
        # Last on the path, after Colab's packages: everything else comes from this environment.
        (site_packages(folder) / "zz_t2v_fallback.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
        stamp.write_text(wanted)
    return python


def test_under_ipywidgets_7_the_studio_displays_and_a_click_makes_a_video(colab_python, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "colab-jupyter"
    spec.mkdir(parents=True)
    argv = [str(colab_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab's Jupyter", "language": "python"}))
    manager = KernelManager(kernel_name="colab-jupyter", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    manager.start_kernel(cwd=str(tmp_path), env=dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1"))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        # As Colab's kernel does at its start, before any cell.
        versions = run_in(client, "import ipywidgets, IPython, ipykernel, traitlets\n"
                                  "print(ipywidgets.__version__, IPython.__version__, ipykernel.__version__, traitlets.__version__)")
        assert versions.split() == [pin.split("==")[1] for pin in COLAB_JUPYTER]

        out = tmp_path / "outputs"
        setup = (f"import t2v_helpers as t2v\npipe = t2v.load_pipeline({os.environ['T2V_MODEL']!r}, verbose=False)\n"
                 f"studio = t2v.Studio(pipe, {str(out)!r}, steps={STEPS}, frames={FRAMES}, height={SIZE}, width={SIZE})")
        run_in(client, setup)
        shown = []
        reply = client.execute_interactive("studio", timeout=120, output_hook=shown.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        views = [m["content"]["data"].get("application/vnd.jupyter.widget-view+json") for m in shown
                 if m["msg_type"] in ("display_data", "execute_result")]
        ui = run_in(client, "print(studio.ui.model_id, studio.generate_button.model_id)").split()
        errors = [f"{m['content']['ename']}: {m['content']['evalue']}" for m in shown if m["msg_type"] == "error"]
        assert [view["model_id"] for view in views if view] == [ui[0]], errors or views

        click(client, ui[1])  # what the browser sends when Generate is clicked
        state = run_in(client, "print(studio.last_error, len(studio.history), studio.progress.bar_style)\nprint(studio.video.value)")
        first, player = state.split("\n", 1)
        assert first == "None 1 success", state[:2000]
        [mp4] = re.findall(r'<video src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', player)
        [made] = out.glob("*.mp4")
        assert base64.b64decode(mp4) == made.read_bytes()
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
