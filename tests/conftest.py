import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import t2v_helpers as t2v


@pytest.fixture(scope="session")
def _tiny_pipe():
    return t2v.load_pipeline("tiny", verbose=False)


@pytest.fixture
def tiny_pipe(_tiny_pipe):
    """The tiny pipeline, loaded once per session, with the model's own DDIM scheduler."""
    t2v.set_scheduler(_tiny_pipe, "ddim")
    return _tiny_pipe


@pytest.fixture(scope="module")
def pipe():
    """The pipeline of T2V_MODEL (the tiny one, unless the GPU workflow sets the real one), once per module."""
    pipe = t2v.load_pipeline(os.environ["T2V_MODEL"], verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """A folder holding the package installed from its wheel (no -e), to put on PYTHONPATH; built once per session."""
    root, tmp = Path(__file__).resolve().parents[1], tmp_path_factory.mktemp("wheel")
    source, wheels, target = tmp / "source", tmp / "wheels", tmp / "site"
    for part in ("pyproject.toml", "README.md", "t2v_helpers", "benchmarks/results"):  # what the wheel is built from
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        if (root / part).is_dir():
            shutil.copytree(root / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(root / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(wheels)], check=True, timeout=600, cwd=tmp)
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], check=True, timeout=600)
    return target
