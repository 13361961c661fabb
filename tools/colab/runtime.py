"""A Colab-like runtime for CI (issue 18): Colab's Python and package versions, the notebooks run as "Run all" does.

    python tools/colab/runtime.py build             build (or reuse) the cached environment
    python tools/colab/runtime.py run NOTEBOOK...   run notebooks there, each in a fresh copy; print a JSON report each
    python tools/colab/runtime.py download          what the set-up cell downloads there, file by file

tests/test_colab_runtime.py drives it inside `python3 tasks.py test`.

What it copies from Colab (googlecolab/backend-info's pip-freeze.txt, beside this file):
Python 3.13 and the versions of the packages the notebooks and Colab's kernel use (PACKAGES,
plus their dependencies, all held to the freeze by pip constraints). What it cannot copy:
- Colab's torch is 2.11.0+cpu from download.pytorch.org; this builds PyPI's torch 2.11.0, the same
  version built with CUDA: its CUDA libraries (2.7 GB installed, once) go unused on the CPU, where it runs the same.
- google-colab itself is not on PyPI; the kernel imports ipywidgets at start as google.colab does,
  and the checks compare IPython, ipykernel, ipywidgets, traitlets, torch and numpy with Colab's.
- Colab's frontend (widget rendering, its dialogs) is not here.

The environment is built once in `~/.cache/t2v-colab-runtime/base-<hash of its inputs>` (or
`$T2V_COLAB_CACHE`), outside the clone. The notebooks run in `run/` beside it, a copy of it made of hard links (seconds, no extra disk): the
set-up cell's `pip install` replaces files in the copy, never in the base, and before each notebook
`restore` undoes what the last one installed, so every notebook starts from Colab's state, as each
Colab notebook gets a fresh runtime.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FREEZE = HERE / "colab-pip-freeze-2026-08-19.txt"
# Outside the clone, so that every clone on a machine (CI's fresh one too) shares one build of several GB.
CACHE = Path(os.environ.get("T2V_COLAB_CACHE") or Path.home() / ".cache" / "t2v-colab-runtime")
# Colab runs Python 3.13 (3.13.15 in the freeze's image). pyenv's 3.13.0 is on this project's
# machines and CI runners; T2V_COLAB_PYTHON names another 3.13 interpreter.
PYTHON_DEFAULT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions/3.13.0/bin/python"
# The packages the notebooks, the helpers and Colab's kernel use, installed at the freeze's versions.
# gradio is here because it pins huggingface-hub<2, a conflict the set-up cell must not cause.
PACKAGES = [
    "ipython", "ipykernel", "ipywidgets", "traitlets", "jupyter_client", "jupyter_core", "notebook",
    "nbformat", "nbclient", "psutil", "torch", "torchao", "numpy", "transformers", "diffusers", "peft",
    "accelerate", "huggingface_hub", "hf-xet", "safetensors", "tokenizers", "sentencepiece", "gradio",
    "gradio_client", "imageio", "imageio-ffmpeg", "matplotlib", "pillow", "tqdm", "requests", "scipy",
]
# What a restart must find unchanged: Colab's kernel (google.colab) pins the first four; torch and numpy are its builds.
KEPT = ["ipython", "ipykernel", "ipywidgets", "traitlets", "torch", "numpy"]
# Bump when the build steps change, so cached environments are rebuilt.
RECIPE = "1"


def colab_versions(path=FREEZE):
    """{normalised name: version} of every package in Colab's freeze (torch's URL read as its version)."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line):
            versions[normalise(m[1])] = m[2]
        elif m := re.fullmatch(r"([A-Za-z0-9_.-]+) @ https://download\.pytorch\.org/\S+?-(\d[\w.]*)%2B\w+-\S+", line):
            versions[normalise(m[1])] = m[2]
    return versions


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints(path=FREEZE):
    """The freeze as pip constraints. Colab's CPU torch needs no CUDA libraries; PyPI's CUDA torch pins its own, so those lines go."""
    return [f"{name}=={version}" for name, version in sorted(colab_versions(path).items())
            if not name.startswith(("nvidia-", "cuda-")) and name != "triton"]


def python_for_colab():
    """T2V_COLAB_PYTHON, else pyenv's 3.13.0, else a `python3.13` on PATH (GitHub's setup-python puts one there)."""
    found = PYTHON_DEFAULT if PYTHON_DEFAULT.exists() else shutil.which("python3.13")
    path = Path(os.environ.get("T2V_COLAB_PYTHON") or found or PYTHON_DEFAULT)
    if not path.exists():
        raise SystemExit(f"The Colab-like runtime needs Python 3.13 at {path} (`pyenv install 3.13.0`), "
                         "or set T2V_COLAB_PYTHON to a Python 3.13, or T2V_SKIP_COLAB=1 to skip its tests.")
    return path


def base_dir():
    """The cached environment's folder; its name changes with anything that would change what is installed."""
    python = python_for_colab()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\n".join([RECIPE, version, *PACKAGES, FREEZE.read_text()]).encode()).hexdigest()[:12]
    return CACHE / f"base-{key}"


def build(log=print):
    """Build the environment once (21 minutes on a busy 2-core machine; 5.6 GB, most of it torch's CUDA libraries); later calls return the cached one."""
    base = base_dir()
    done = base / ".complete"
    if done.exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    for old in CACHE.glob("base-*"):  # an environment built from older inputs
        shutil.rmtree(old, ignore_errors=True)
    base.parent.mkdir(parents=True, exist_ok=True)
    log(f"Building the Colab-like runtime in {base} (once; minutes)")
    subprocess.run([python_for_colab(), "-m", "venv", base], check=True)
    pins = base / "colab-constraints.txt"
    pins.write_text("\n".join(constraints()) + "\n")
    wanted = colab_versions()
    pip = [base / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [
        [*pip, f"pip=={wanted['pip']}"],
        [*pip, "-c", pins, f"torch=={wanted['torch']}"],  # alone first: its CUDA libraries are most of the download
        [*pip, "-c", pins, *PACKAGES],
    ]
    for step in steps:
        log("+ " + " ".join(map(str, step)))
        subprocess.run(step, check=True)
    done.write_text(json.dumps(installed(base), indent=1, sort_keys=True))
    return base


def installed(env):
    """{normalised name: version} of what pip lists in an environment."""
    out = subprocess.run([env / "bin/python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return {normalise(p["name"]): p["version"] for p in json.loads(out)}


def fresh_copy(base, where):
    """A copy of the environment made of hard links, as fresh as a new Colab runtime.

    Made once; later calls only undo what pip changed in it (`restore`), which is much quicker
    than deleting and re-linking its 65,000 files.
    """
    if not (where / ".complete").exists():
        shutil.rmtree(where, ignore_errors=True)
        subprocess.run(["cp", "-al", base, where], check=True)
    restore(base, where)
    return where


def restore(base, copy):
    """Make `copy` (hard links of `base`) hold what `base` holds again: remove what pip installed, re-link what it removed.

    pip never writes into a file it did not create (it removes and writes anew), and Python replaces
    its caches atomically, so the files `copy` still shares with `base` are unchanged.
    """
    import importlib.metadata

    before, after = json.loads((base / ".complete").read_text()), installed(copy)
    added = [name for name, version in after.items() if before.get(name) != version]
    removed = [name for name, version in before.items() if after.get(name) != version]
    if added:
        subprocess.run([copy / "bin/python", "-m", "pip", "uninstall", "--yes", "--quiet", *added], check=True)
    base_site, copy_site = site_packages(base), site_packages(copy)
    for dist in importlib.metadata.distributions(path=[str(base_site)]):
        if normalise(dist.metadata["Name"]) not in removed:
            continue
        for file in dist.files:
            source = Path(os.path.normpath(base_site / file))
            target = Path(os.path.normpath(copy_site / file))
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)
    if installed(copy) != before:
        raise RuntimeError(f"restoring {copy} from {base} failed; delete {copy} to make a new copy")


def site_packages(env):
    return next((env / "lib").glob("python3.*/site-packages"))


def kernel_env(env):
    """The kernel's environment variables: this process's settings (offline, tiny model), none of the outer virtual environment."""
    variables = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    variables["PATH"] = f"{env / 'bin'}{os.pathsep}{variables.get('PATH', '')}"
    variables["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return variables


def run(notebook, base=None, log=print):
    """Run one notebook in a fresh copy of the environment; return its report (a dict)."""
    base = base or build(log)
    env = fresh_copy(base, CACHE / "run")
    started = time.monotonic()
    result = subprocess.run([env / "bin/python", __file__, "_inside", str(Path(notebook).resolve())],
                            capture_output=True, text=True, env=kernel_env(env), cwd=ROOT)
    if result.returncode:
        return {"notebook": Path(notebook).name, "error": f"the runner failed:\n{result.stderr[-3000:]}"}
    report = json.loads(result.stdout.splitlines()[-1])
    report["seconds"] = round(time.monotonic() - started, 1)
    report["colab"] = {name: colab_versions()[name] for name in KEPT}
    return report


def set_up_download(base, root=ROOT):
    """What the set-up cell downloads in a fresh runtime: ([(name, version, bytes)], total bytes).

    pip's install report names the files it would fetch; their sizes come from PyPI (HEAD requests).
    """
    import urllib.request

    requirement = f"t2v-helpers[colab] @ {Path(root).resolve().as_uri()}"
    out = subprocess.run([base / "bin/python", "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", requirement],
                         capture_output=True, text=True, check=True, env=kernel_env(base)).stdout  # a dry run changes nothing
    files = []
    for item in json.loads(out)["install"]:
        url = item["download_info"]["url"]
        size = 0  # this clone, which Colab fetches with git
        if url.startswith("http"):
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as answer:
                size = int(answer.headers["Content-Length"])
        elif url.startswith("file://") and Path(url[7:]).is_file():  # a wheel from a local mirror of PyPI
            size = Path(url[7:]).stat().st_size
        files.append((item["metadata"]["name"], item["metadata"]["version"], size))
    return files, sum(size for *_, size in files)


# ---- inside the copy: its own python, nbclient and kernel (Python 3.13, Colab's Jupyter) ----

SET_UP_URL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+@[\w.-]+")
AT_KERNEL_START = "import ipywidgets  # google.colab imports it when Colab's kernel starts\n"
# After a restart these must import (google.colab's own imports at kernel start), at Colab's versions.
VERSIONS = ("import IPython, ipykernel, ipywidgets, traitlets, torch, numpy\n"
            "import importlib.metadata as m, json\n"
            f"print(json.dumps({{n: m.version(n) for n in {KEPT!r}}}))\n")


def as_colab_runs_it(nb, root=ROOT):
    """The notebook as Colab's "Run all" sees it: no outputs, no `raises-exception` tags (Colab ignores them), the set-up cell installing this clone."""
    set_ups = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        tags = cell.metadata.get("tags", [])
        if "raises-exception" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "raises-exception"]
        if "%pip install" in cell.source and SET_UP_URL.search(cell.source):
            cell.source = SET_UP_URL.sub(Path(root).resolve().as_uri(), cell.source)
            set_ups += 1
    if set_ups != 1:
        raise ValueError(f"expected one set-up cell installing the package from GitHub, found {set_ups}")
    return nb


def text_of(outputs):
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def _inside(notebook):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = as_colab_runs_it(nbformat.read(notebook, as_version=4))
    report = {"notebook": Path(notebook).name, "cells": sum(c.cell_type == "code" for c in nb.cells), "ran": 0,
              "failed_cell": None, "error": None, "shown_errors": [], "pip_errors": [], "install_seconds": None}
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(Path(notebook).parent)}})
    with client.setup_kernel():
        client.kc.execute_interactive(AT_KERNEL_START, timeout=120)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            started = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                report["failed_cell"] = index
                report["error"] = re.sub(r"\x1b\[[0-9;]*m", "", str(error))[-3000:]  # without the terminal colours
            finally:
                if "%pip install" in cell.source:
                    report["install_seconds"] = round(time.monotonic() - started, 1)
                    report["pip_errors"] = [line for line in text_of(cell.outputs).splitlines() if "ERROR" in line]
            if report["failed_cell"] is not None:
                break
            report["ran"] += 1
            # A traceback the cell showed without failing (IPython prints one when a display hook
            # such as _repr_mimebundle_ raises): "Run all" goes on, and the learner sees red.
            report["shown_errors"] += [f"cell {index}: {out.get('ename')}: {out.get('evalue')}"
                                       for out in cell.outputs if out.get("output_type") == "error"]
    # A restart: a new kernel in the same environment, as Colab's "Restart session" gives.
    restart = NotebookClient(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(AT_KERNEL_START + VERSIONS)]),
                             timeout=300, kernel_name="python3", allow_errors=True)
    restart.execute()
    outputs = restart.nb.cells[0].outputs
    try:
        report["after_restart"] = json.loads(text_of(outputs).strip().splitlines()[-1])
    except (ValueError, IndexError):
        report["after_restart"] = {"error": text_of(outputs)[-2000:]}
    print(json.dumps(report))


def main(argv):
    if argv[:1] == ["_inside"]:
        return _inside(argv[1])
    if argv[:1] == ["build"]:
        print(build())
        return 0
    if argv[:1] == ["download"]:
        files, total = set_up_download(build())
        for name, version, size in files:
            print(f"{name}=={version}: {size / 1e6:.1f} MB")
        print(f"total: {total / 1e6:.1f} MB")
        return 0
    if argv[:1] == ["run"] and argv[1:]:
        base = build()
        failed = 0
        for notebook in argv[1:]:
            report = run(notebook, base)
            print(json.dumps(report, indent=1))
            failed += bool(report.get("error") or report.get("shown_errors") or report.get("pip_errors"))
        return 1 if failed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
