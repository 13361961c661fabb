import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_make_a_video_without_gpu_uses_the_tiny_model(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "t2v_helpers", "Spiderman is surfing", "--steps", "2", "--frames", "4", "--out", str(tmp_path), "--gif"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    if not torch.cuda.is_available():
        assert "tiny model" in run.stdout and "noise" in run.stdout
    mp4 = tmp_path / "spiderman-is-surfing-seed0.mp4"
    sidecar = json.loads((tmp_path / "spiderman-is-surfing-seed0.json").read_text())
    assert mp4.stat().st_size > 0 and (tmp_path / "spiderman-is-surfing-seed0.gif").exists()
    assert sidecar["settings"]["scheduler"] == "dpm" and sidecar["frame_count"] == 4
    assert f"Wrote {mp4}" in run.stdout


def pins():
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    return dict(pin.split("==") for pin in tasks.pinned_versions())


def test_environment_yml_pins_what_the_tests_run_with():
    found = pins()
    assert {"torch", "diffusers", "transformers", "accelerate", "imageio-ffmpeg", "nbval"} <= set(found)
    for name, version in found.items():
        installed = metadata.version(name)
        if name == "torch":
            installed = installed.split("+")[0]  # local build tag such as +cpu
        assert installed == version, f"{name}: installed {installed}, pyproject.toml (pinned extra) pins {version}"


def test_pyproject_allows_the_pinned_versions():
    requirements = metadata.requires("t2v-helpers")
    for name, version in pins().items():
        for requirement in requirements:
            match = re.fullmatch(rf"{re.escape(name)}>=([\d.]+)(; .*)?", requirement, flags=re.IGNORECASE)
            if match:
                low = tuple(int(x) for x in match[1].split("."))
                assert tuple(int(x) for x in version.split(".")[: len(low)]) >= low, requirement
