"""The studio (notebook 05) in a real browser: JupyterLab and Jupyter Notebook 7 driven through Debian's headless Chromium.

The front end runs on 127.0.0.1 on a free port, with a token, in a temporary folder that
holds a copy of the notebook; Playwright's Python package drives the system's Chromium
(no browser download). The test runs the notebook's cells, types a prompt, clicks
Generate and waits for a <video> that plays, then double-clicks Generate and checks that
it made one video. It saves screenshots to tests/artifacts/.

Needs Debian's chromium (`apt-get install -y chromium`); set T2V_SKIP_BROWSER=1 to skip.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_play_in_the_studio.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
INSTALL = "sudo apt-get update && sudo apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "a red fox in the snow, typed in a browser"
DOUBLE_CLICK_PROMPT = "a double click"
TIMEOUT_MS = 180_000  # one video with the tiny model takes seconds; a busy CI machine, much longer


@pytest.fixture
def chromium():
    """Debian's Chromium, checked before JupyterLab starts: fail with the install command, or skip on request."""
    if os.environ.get("T2V_SKIP_BROWSER") == "1":
        pytest.skip("T2V_SKIP_BROWSER=1 is set: the real-browser test of the studio is skipped on request.")
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed, and the studio's browser test needs it. "
            f"Install it with `{INSTALL}`, or set T2V_SKIP_BROWSER=1 to skip this test.",
            pytrace=False,
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(
            "Playwright's Python package is missing: `pip install -e '.[test]'` (or `python3 tasks.py setup`). "
            "Do not run `playwright install`: the test uses Debian's chromium.",
            pytrace=False,
        )
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port):
    """True when nothing listens on `port`; closed connections waiting out TIME_WAIT do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def children(pid):
    """The ids of the processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def http_request(url, token, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as response:
        return response.status


def stop_jupyter(process, port, token):
    """Shut the Jupyter server and its kernels down, politely first; return once the port is free."""
    # Kernels run in sessions of their own, so killing the server's group would miss them.
    kernels = children(process.pid)
    if process.poll() is None:
        try:
            http_request(f"http://127.0.0.1:{port}/api/shutdown", token, method="POST")
            process.wait(timeout=20)
        except Exception:  # no answer or too slow: signals below
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
    for pid in kernels:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # already ended with the server, as it should
            pass
    deadline = time.monotonic() + 15
    while not port_is_free(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} is still in use after stopping the Jupyter server")
        time.sleep(0.2)


# How to start each front end, and the address of a notebook in it.
FRONT_ENDS = {
    "jupyterlab": {"name": "JupyterLab", "module": "jupyterlab", "app": "LabApp", "path": "lab/tree"},
    "notebook7": {"name": "Jupyter Notebook 7", "module": "notebook", "app": "JupyterNotebookApp", "path": "notebooks"},
}


@pytest.fixture(params=sorted(FRONT_ENDS))
def jupyter(request, chromium, tmp_path):
    """JupyterLab or Jupyter Notebook 7 serving a copy of notebook 05 from a temporary folder; stopped whatever happens."""
    front_end = FRONT_ENDS[request.param]
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    settings = tmp_path / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Keep every file Jupyter and IPython write inside tmp_path, away from the user's own.
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        T2V_OUTPUT_DIR=str(root / "outputs"),  # the notebook's videos, where the test looks for them
    )
    port, token = free_port(), secrets.token_hex(16)
    log_path = tmp_path / f"{request.param}.log"
    command = [
        sys.executable, "-m", front_end["module"],
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--{front_end['app']}.expose_app_in_browser=True",  # window.jupyterapp, to run all cells and wait for them
    ]
    if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
        command.append("--allow-root")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"{front_end['name']} exited with code {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if http_request(f"http://127.0.0.1:{port}/api/status", token) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{front_end['name']} did not answer on port {port} within 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "root": root, "log": log_path, "id": request.param, **front_end}
    finally:
        stop_jupyter(process, port, token)


# Runs in the page: records every width the progress bar had and whether Generate was ever disabled.
WATCH = r"""
() => {
  const bar = document.querySelector('.t2v-studio .t2v-progress .progress-bar');
  const button = document.querySelector('.t2v-studio button.t2v-generate-button');
  window.t2vSeen = {widths: [], disabled: false};
  // Each record's old style plus the current one: no width is missed when records come batched.
  const width = style => parseFloat((/(?:^|;)\s*width:\s*([\d.]+)%/.exec(style || '') || [])[1]);
  new MutationObserver(records => {
    for (const r of records) window.t2vSeen.widths.push(width(r.oldValue));
    window.t2vSeen.widths.push(width(bar.getAttribute('style')));
  }).observe(bar, {attributes: true, attributeFilter: ['style'], attributeOldValue: true});
  new MutationObserver(() => { if (button.disabled) window.t2vSeen.disabled = true; })
    .observe(button, {attributes: true, attributeFilter: ['disabled']});
  return Boolean(bar && button);
}
"""

# Resolves once every cell has run: true if all succeeded, false if one failed, "timeout" if too slow.
RUN_ALL = """
ms => Promise.race([
  window.jupyterapp.commands.execute('notebook:run-all-cells'),
  new Promise(resolve => setTimeout(() => resolve('timeout'), ms)),
])
"""

KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
    " return k && k.status === 'idle'; }"
)

VIDEO = ".t2v-studio .t2v-video video"
VIDEO_READY = """
old => {
  const video = document.querySelector('.t2v-studio .t2v-video video');
  return video && video.src && video.src !== old && video.readyState >= 2 && video.videoWidth > 0 && video.error === null;
}
"""
# Playing: not paused, and its clock has moved on (autoplay muted, as the studio asks).
VIDEO_PLAYS = """
() => {
  const video = document.querySelector('.t2v-studio .t2v-video video');
  return video && !video.paused && video.currentTime > 0 && video.error === null;
}
"""


def test_studio_makes_a_video_in_jupyterlab_and_notebook_7_in_chromium(chromium, jupyter):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    steps = int(os.environ["T2V_STEPS"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{jupyter['url']}/{jupyter['path']}/{NOTEBOOK.name}?token={jupyter['token']}")
            page.wait_for_function(KERNEL_IDLE)
            all_ran = page.evaluate(RUN_ALL, TIMEOUT_MS)
            assert all_ran is True, f"running the notebook's cells in {jupyter['name']} gave {all_ran!r}, not True"

            studio = page.locator(".t2v-studio")
            expect(studio).to_be_visible()
            assert page.locator(".jp-OutputArea-output", has_text="Error displaying widget").count() == 0
            cards = page.locator(".t2v-studio .t2v-history-card")
            expect(cards).to_have_count(1)  # the video that the notebook's Step 6 made from code
            page.wait_for_function(VIDEO_READY, arg="")
            old_src = page.eval_on_selector(VIDEO, "v => v.src")
            assert page.evaluate(WATCH)

            prompt = page.locator(".t2v-studio .t2v-prompt textarea")
            prompt.fill("")
            prompt.press_sequentially(PROMPT)
            page.locator(".t2v-studio button.t2v-generate-button").click()

            expect(cards).to_have_count(2)
            expect(page.locator(".t2v-studio .t2v-files")).to_contain_text("a-red-fox-in-the-snow-typed-in-a-browser")
            page.wait_for_function(VIDEO_READY, arg=old_src)
            page.wait_for_function(VIDEO_PLAYS)
            state = page.eval_on_selector(
                VIDEO, "v => ({readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight, error: v.error})"
            )
            thumbnails = page.eval_on_selector_all(
                ".t2v-studio .t2v-history-card img", "images => images.map(i => i.complete && i.naturalWidth > 0)"
            )
            seen = page.evaluate("() => window.t2vSeen")

            # A double click makes one video: the second click reaches the kernel after the first
            # one's video is done, and must not make another.
            prompt.fill(DOUBLE_CLICK_PROMPT)
            page.locator(".t2v-studio button.t2v-generate-button").dblclick()
            expect(cards).to_have_count(3)
            for _ in range(2):  # idle, and still idle after a pause: the second click has been handled
                page.wait_for_function(KERNEL_IDLE)
                page.wait_for_timeout(2000)
            page.wait_for_function(KERNEL_IDLE)
            expect(cards).to_have_count(3)
            expect(page.locator(".t2v-studio .t2v-message")).to_contain_text("Made video #3")
            name = jupyter["id"]
            studio.screenshot(path=ARTIFACTS / f"studio-{name}.png")
            page.screenshot(path=ARTIFACTS / f"{name}-page.png")
            print(f"\nScreenshots in {ARTIFACTS}: studio-{name}.png, {name}-page.png; video {state}")
        except Exception:
            page.screenshot(path=ARTIFACTS / f"{jupyter['id']}-failure.png")
            print(f"\nScreenshot of the failure: {ARTIFACTS / (jupyter['id'] + '-failure.png')}; server log: {jupyter['log']}")
            raise
        finally:
            browser.close()

    assert state["readyState"] >= 2 and state["videoWidth"] > 0 and state["error"] is None
    assert thumbnails == [True, True], f"history thumbnails loaded: {thumbnails}"
    assert seen["disabled"], "the Generate button was never disabled while the video was being made"
    widths = [w for w in seen["widths"] if w is not None]
    missed = [step for step in range(1, steps + 1) if not any(abs(w - 100 * step / steps) < 0.01 for w in widths)]
    assert not missed, f"the progress bar never showed steps {missed} of {steps}; its widths were {widths}"
    made = sorted(p.name for p in (jupyter["root"] / "outputs").glob("a-red-fox-in-the-snow-typed-in-a-browser*"))
    assert any(name.endswith(".mp4") for name in made) and any(name.endswith(".json") for name in made), made
    doubled = sorted(p.name for p in (jupyter["root"] / "outputs").glob("a-double-click*"))
    assert len(doubled) == 2 and doubled[0].endswith(".json") and doubled[1].endswith(".mp4"), doubled
