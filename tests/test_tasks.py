"""tasks.py's set-up for `python3 tasks.py test`: Debian's chromium is installed when missing, or the run stops with the command.

Nothing is installed here: which, geteuid and subprocess are replaced, and the test records
what tasks.py would run.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    import tasks
finally:
    sys.path.pop(0)


@pytest.fixture
def machine(monkeypatch):
    """A pretend machine: which programs exist, who we are, whether sudo works; records every command run."""
    state = {"programs": {"apt-get", "sudo"}, "euid": 1000, "sudo_ok": False, "ran": [], "install_works": True}

    def which(name):
        return f"/usr/bin/{name}" if name in state["programs"] else None

    def fake_subprocess_run(command, **kwargs):
        state["ran"].append(list(command))
        if command[:3] == ["sudo", "-n", "true"]:
            return subprocess.CompletedProcess(command, 0 if state["sudo_ok"] else 1)
        if "install" in command and state["install_works"]:
            state["programs"].add("chromium")
        return subprocess.CompletedProcess(command, 0 if state["install_works"] else 100)

    monkeypatch.setattr(tasks.shutil, "which", which)
    monkeypatch.setattr(tasks.os, "geteuid", lambda: state["euid"])
    monkeypatch.setattr(tasks.subprocess, "run", fake_subprocess_run)
    monkeypatch.setattr(tasks, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("T2V_SKIP_BROWSER", raising=False)
    return state


def installs(state):
    return [c for c in state["ran"] if "apt-get" in c]


@pytest.mark.parametrize("euid, sudo_ok, prefix", [(0, False, []), (1000, True, ["sudo", "-n"])])
def test_root_or_passwordless_sudo_installs_chromium_with_apt_get(machine, euid, sudo_ok, prefix):
    machine["euid"], machine["sudo_ok"] = euid, sudo_ok
    tasks.ensure_chromium()
    assert installs(machine) == [
        [*prefix, "apt-get", "update"],
        [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "chromium"],
    ]


@pytest.mark.parametrize("programs, sudo_ok", [({"apt-get", "sudo"}, False), ({"apt-get"}, False), ({"sudo"}, True), (set(), False)])
def test_a_user_who_cannot_install_gets_the_exact_command_at_once(machine, programs, sudo_ok):
    machine["programs"], machine["sudo_ok"] = set(programs), sudo_ok
    with pytest.raises(SystemExit) as stop:
        tasks.ensure_chromium()
    assert "sudo apt-get update && sudo apt-get install -y chromium" in str(stop.value.code)
    assert "T2V_SKIP_BROWSER=1" in str(stop.value.code)
    assert installs(machine) == []


def test_chromium_already_there_or_the_browser_test_skipped_installs_nothing(machine, monkeypatch):
    machine["euid"] = 0
    machine["programs"].add("chromium")
    tasks.ensure_chromium()
    machine["programs"].discard("chromium")
    monkeypatch.setenv("T2V_SKIP_BROWSER", "1")
    tasks.ensure_chromium()
    assert machine["ran"] == []


def test_a_failed_install_stops_with_the_step_that_failed(machine):
    machine["euid"], machine["install_works"] = 0, False
    with pytest.raises(SystemExit) as stop:
        tasks.ensure_chromium()
    assert "apt-get update" in str(stop.value.code)
    assert installs(machine) == [["apt-get", "update"]]


@pytest.mark.parametrize("task, needs_chromium", [("test", True), ("video", False), ("setup", False)])
def test_only_the_test_command_sets_up_chromium(monkeypatch, task, needs_chromium):
    calls = []
    monkeypatch.setattr(tasks, "ensure_chromium", lambda: calls.append("chromium"))
    monkeypatch.setattr(tasks, "setup", lambda: calls.append("setup"))
    monkeypatch.setattr(tasks, "run", lambda *command, env=None: 0)
    monkeypatch.setattr(sys, "argv", ["tasks.py", task])
    assert tasks.main() == 0
    assert calls == (["chromium", "setup"] if needs_chromium else ["setup"])


def test_ci_runs_the_readme_command_and_installs_nothing_itself():
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert commands[-1] == "python3 tasks.py test"
    assert not [line for line in commands if "apt-get" in line or "chromium" in line]
