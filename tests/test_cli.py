"""The `t2v` command line: the same validation, helpers and sidecars as the notebooks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t2v_helpers import cli

SMALL = ["--model", "tiny", "--steps", "2", "--frames", "4"]


def t2v_script():
    """The `t2v` console script installed beside this Python."""
    script = Path(sys.executable).with_name("t2v.exe" if os.name == "nt" else "t2v")
    assert script.exists(), f"{script} is missing: reinstall the package (pip install -e .) to get the t2v command"
    return script


def test_prompts_file_makes_one_video_per_prompt_with_a_progress_bar(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my prompts\nA cat on a skateboard\n\n  a dog surfing  \n")
    out = tmp_path / "videos"
    run = subprocess.run(
        [t2v_script(), "generate", "--prompts", prompts, *SMALL, "--seed", "7", "--scheduler", "euler", "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "tiny model" in run.stdout and "noise" in run.stdout
    # tqdm's bar, one per video, counting denoising steps.
    assert "1/2 A cat on a skateboard" in run.stderr and "2/2 a dog surfing" in run.stderr
    assert "| 2/2 [" in run.stderr and "step/s" in run.stderr
    sidecars = sorted(out.glob("*.json"))
    assert [p.name for p in sidecars] == ["a-cat-on-a-skateboard-seed7.json", "a-dog-surfing-seed7.json"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a-cat-on-a-skateboard-seed7.mp4", "a-dog-surfing-seed7.mp4"]
    for path, prompt in zip(sidecars, ["A cat on a skateboard", "a dog surfing"]):
        sidecar = json.loads(path.read_text())
        assert sidecar["prompt"] == prompt and sidecar["seed"] == 7 and sidecar["frame_count"] == 4
        assert sidecar["settings"]["scheduler"] == "euler" and sidecar["settings"]["steps"] == 2
        assert f"Wrote {out / sidecar['files']['mp4']}" in run.stdout


def test_python_dash_m_is_the_same_command():
    """`python -m t2v_helpers` and `t2v generate` share one parser: same options, same messages."""
    by_m = subprocess.run([sys.executable, "-m", "t2v_helpers", "--steps", "0"], capture_output=True, text=True, timeout=120)
    by_t2v = subprocess.run([t2v_script(), "generate", "--steps", "0"], capture_output=True, text=True, timeout=120)
    assert by_m.returncode == by_t2v.returncode == 2
    assert by_m.stderr.splitlines()[-1].split("error: ")[1] == by_t2v.stderr.splitlines()[-1].split("error: ")[1]
    assert "--prompts FILE" in by_m.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--steps", "0"], "steps=0 is out of range. Allowed: a whole number from 1 to 999. Try steps=1."),  # dpm takes up to 999
        (["--frames", "5000"], "frames=5000 is out of range"),
        (["--seed", "-1"], "seed=-1 is out of range"),
        (["--scheduler", "dpmm"], "Try scheduler='dpm'"),
        (["   "], "prompt='   ' is empty"),
        (["a prompt", "--prompts", "p.txt"], "was given together with --prompts"),
        (["--prompts", "missing.txt"], "--prompts='missing.txt' cannot be read (No such file or directory)"),
        (["--prompts", "empty.txt"], "--prompts='empty.txt' has no prompts"),
        (["--prompts", "binary.txt"], "cannot be read"),
        (["--out", "afile"], "--out='afile' is a file, not a folder"),
    ],
)
def test_bad_input_stops_before_the_model_loads(arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.txt").write_text("a prompt\n")
    (tmp_path / "empty.txt").write_text("\n# only a comment\n   \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(cli, "load", lambda *a, **k: pytest.fail("the model loaded before the settings were checked"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", *arguments])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_read_prompts_keeps_line_numbers(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first\n\n# comment\n  second  \n")
    assert cli.read_prompts(path) == [(1, "first"), (4, "second")]


def test_a_model_that_is_not_there_is_a_message_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a prompt", "--model", "no-such-user/no-such-model", "--steps", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "t2v generate: error:" in err and "no-such-user/no-such-model" in err


def test_prompts_are_split_on_newlines_only_so_line_numbers_match_the_file(tmp_path):
    """str.splitlines also breaks at U+2028, U+0085, \\x0b, \\x0c and \\x1c-\\x1e; an editor and `grep -n` do not."""
    path = tmp_path / "prompts.txt"
    odd = "a\u2028b", "c\x0bd\x0ce", "f\x1cg\x1dh\x1ei", "j\x85k"
    path.write_bytes(("\n".join(odd[:2]) + "\r\n" + "\n".join(odd[2:]) + "\n").encode())
    assert cli.read_prompts(path) == [(1, odd[0]), (2, odd[1]), (3, odd[2]), (4, odd[3])]


class Recorder:
    """A text stream that records each write, with an encoding that cannot hold every character."""

    def __init__(self, encoding="latin-1"):
        self.encoding, self.writes, self.flushes = encoding, [], 0

    def write(self, text):
        text.encode(self.encoding)  # raises UnicodeEncodeError as a real latin-1 stream does
        self.writes.append(text)
        return len(text)

    def flush(self):
        self.flushes += 1


def test_say_writes_each_line_whole_in_one_write_and_never_fails_on_an_encoding():
    stream = Recorder()
    cli.say("Made 4 frames: 🦊 a fox", stream)
    assert stream.writes == ["Made 4 frames: \\U0001f98a a fox\n"] and stream.flushes == 1

    class Closed(Recorder):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")  # `t2v generate ... | head -1`

    cli.say("still working", Closed())


@pytest.mark.parametrize("prompts", [False, True])
def test_a_terminal_that_cannot_show_the_prompt_never_stops_the_work(tmp_path, prompts):
    """PYTHONIOENCODING=latin-1: the emoji is written escaped, and with --prompts every line is still made."""
    if prompts:
        (tmp_path / "p.txt").write_text("🦊 a fox\n🐦 a bird\n", encoding="utf-8")
        what = ["--prompts", str(tmp_path / "p.txt")]
    else:
        what = ["🦊 a fox"]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONIOENCODING": "latin-1:strict", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "t2v_helpers", *what, *SMALL, "--out", str(out)], capture_output=True, timeout=300, env=env)
    stdout, stderr = run.stdout.decode("latin-1"), run.stderr.decode("latin-1")
    assert run.returncode == 0, stderr
    assert len(list(out.glob("*.mp4"))) == (2 if prompts else 1)
    assert "\\U0001f98a a fox" in stdout and "Traceback" not in stderr


def test_an_error_message_the_terminal_cannot_show_is_still_one_paragraph_and_exit_2(tmp_path, monkeypatch):
    """The error quotes the prompt; a stderr that cannot show it (a strict ASCII one) still gets the paragraph, escaped."""
    (tmp_path / "p.txt").write_text("a fox\n")
    stderr = Recorder("ascii")
    monkeypatch.setattr(sys, "stderr", stderr)
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "🦊 a fox", "--prompts", str(tmp_path / "p.txt")])
    assert stop.value.code == 2
    assert any("prompt='\\U0001f98a a fox' was given together with --prompts" in text for text in stderr.writes), stderr.writes


def test_terminal_escape_sequences_in_a_prompts_file_reach_the_terminal_only_as_text(tmp_path):
    """A prompts file is text from anywhere: ESC [ 2 J (clear screen) or an OSC title must not be obeyed by the terminal."""
    (tmp_path / "p.txt").write_text("a fox \x1b[2J\x1b]0;pwned\x07 in snow\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "t2v_helpers", "--prompts", str(tmp_path / "p.txt"), *SMALL, "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x1b" not in run.stderr and "\x07" not in run.stderr
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 1


@pytest.mark.skipif(os.name == "nt", reason="closing a standard stream before start is a POSIX shell's `>&-`")
@pytest.mark.parametrize("closed", [1, 2])
def test_a_command_started_with_stdout_or_stderr_closed_still_makes_its_video(tmp_path, closed):
    """`t2v generate ... >&-` (or `2>&-`): Python then has sys.stdout (or sys.stderr) None; the video is still made."""
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "t2v_helpers", "a fox", *SMALL, "--out", str(out)], capture_output=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=lambda: os.close(closed))
    assert run.returncode == 0, run.stderr
    assert len(list(out.glob("*.mp4"))) == 1
