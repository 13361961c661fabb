#!/usr/bin/env python3
"""Set up and run the project with nothing but Python installed.

    python3 tasks.py video   make a video (the tiny offline model when there is no GPU)
    python3 tasks.py test    run every test: unit tests and all notebooks, offline
                             (installs Debian's chromium for the browser test when it is missing;
                             runs the notebooks again in a Colab-like runtime, built once in
                             ~/.cache/t2v-colab-runtime/ from PyPI: tests/test_colab_runtime.py)
    python3 tasks.py setup   only create or update the virtual environment

Each creates the project's virtual environment `.venv` on first use (or reuses it) and
installs the versions pinned in pyproject.toml (its `pinned` extra). Arguments after `video` or `test` go
to `python -m t2v_helpers` or to pytest.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".t2v-installed"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; tests/test_browser.py drives it through Playwright
INSTALL_COMMAND = "sudo apt-get update && sudo apt-get install -y chromium"


def run(*command, env=None):
    print("+", " ".join(str(c) for c in command), flush=True)
    return subprocess.run([str(c) for c in command], cwd=ROOT, env=env).returncode


def pinned_versions():
    """The `name==version` list of pyproject.toml's `pinned` extra: the versions the tests ran with."""
    # A regex, not tomllib, so that this file runs on Python 3.10 too; tests/test_pins.py checks both read the same.
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^pinned = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    return re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', block[1])


def setup():
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "environment.yml").read_bytes())
    if STAMP.exists() and STAMP.read_text() == wanted.hexdigest():
        return
    if not PYTHON.exists():
        print(f"Creating the virtual environment {VENV}")
        venv.create(VENV, with_pip=True)
    pins = pinned_versions()
    constraints = VENV / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    # torch first and alone, at its pinned version: asked for through a range by
    # another package, pip may pick a different (and much larger) build.
    torch = next(pin for pin in pins if pin.startswith("torch=="))
    steps = [
        ("-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        ("-m", "pip", "install", "--quiet", torch),
        ("-m", "pip", "install", "--quiet", "-c", constraints, "-e", ".[test,pinned]"),
    ]
    for step in steps:
        if run(PYTHON, *step):
            sys.exit(f"Setting up {VENV} failed at: pip {' '.join(map(str, step[2:]))}")
    STAMP.write_text(wanted.hexdigest())


def chromium_found():
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None


def may_install_packages():
    """The command prefix that runs apt-get as root here ([] or ["sudo", "-n"]), or None if there is none."""
    if shutil.which("apt-get") is None:
        return None
    if os.name == "posix" and os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def ensure_chromium():
    """Install Debian's chromium for the browser test if it is missing; exit with the command when that is not possible."""
    if os.environ.get("T2V_SKIP_BROWSER") == "1" or chromium_found():
        return
    prefix = may_install_packages()
    if prefix is None:
        sys.exit(
            "The studio's browser test needs Debian's chromium, which is missing, and this user cannot install "
            f"packages. Run `{INSTALL_COMMAND}` (Debian, Ubuntu), or set T2V_SKIP_BROWSER=1 to skip that one test; "
            "then run `python3 tasks.py test` again."
        )
    print("Installing Debian's chromium for the studio's browser test", flush=True)
    for step in (["apt-get", "update"], ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "chromium"]):
        if run(*prefix, *step):
            sys.exit(f"Installing chromium failed at: {' '.join(prefix + step)}")
    if not chromium_found():
        sys.exit(f"apt-get installed chromium, but it is neither at {CHROMIUM} nor on PATH.")


def main():
    task, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if task not in ("setup", "video", "test"):
        sys.exit(__doc__)
    if task == "test":
        ensure_chromium()  # first: a missing browser should stop the run before minutes of pip
    setup()
    if task == "video":
        return run(PYTHON, "-m", "t2v_helpers", *args)
    if task == "test":
        return run(PYTHON, "-m", "pytest", *args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
