"""Many prompts split across processes: every prompt makes exactly one video, nothing is written twice."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

SMALL = ["--model", "tiny", "--steps", "2", "--frames", "4"]
# Two repeated prompts: the same prompt and seed on two lines must still give two videos.
PROMPTS = "# a batch\na cat on a skateboard\na dog surfing\n\nthe moon at night\na cat on a skateboard\nfireworks over a lake\n"
LINES = {2: "a cat on a skateboard", 3: "a dog surfing", 5: "the moon at night", 6: "a cat on a skateboard", 7: "fireworks over a lake"}


def run_batch(launcher, prompts, out, *extra, cache=None):
    # One thread each: two processes share this machine's cores.
    # Unbuffered, each print reaches the shared terminal as it is written (as under `python -u`), the harder case.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **({"T2V_CACHE": str(cache)} if cache else {})}
    command = [*launcher, "-m", "t2v_helpers.batch", "--prompts", str(prompts), *SMALL, "--out", str(out), *extra]
    # The two-process run took up to 112 s here at a load average of about 14 on 2 cores: room for a much busier machine.
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)


def videos_by_line(out):
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    found = {}
    for name in files:
        folder, file = name.split("/")
        found.setdefault(int(re.fullmatch(r"line-(\d+)", folder)[1]), []).append(file)
    return found


def test_two_processes_split_the_prompts_and_each_prompt_makes_one_video(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    out = tmp_path / "out"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # An empty cache: both processes ask for the tiny model at once, and one builds it for both.
    run = run_batch(torchrun, prompts, out, cache=tmp_path / "empty-cache")
    assert run.returncode == 0, run.stdout + run.stderr

    # Accelerate gave each process its share: 3 lines and 2 lines, none twice.
    shares = dict(re.findall(r"\[(\d)/2\] \d of 5 prompts: lines ([\d, ]+)\n", run.stdout))
    assert set(shares) == {"0", "1"}, run.stdout
    taken = [int(n) for share in shares.values() for n in share.split(", ")]
    assert sorted(taken) == sorted(LINES)

    found = videos_by_line(out)
    assert set(found) == set(LINES)
    for number, prompt in LINES.items():
        slug = re.sub(r"\W+", "-", prompt)
        assert found[number] == [f"{slug}-seed0.json", f"{slug}-seed0.mp4"], found[number]
        sidecar = json.loads((out / f"line-{number:03d}" / f"{slug}-seed0.json").read_text())
        assert sidecar["prompt"] == prompt and sidecar["frame_count"] == 4 and sidecar["settings"]["model"] == "tiny"
        assert (out / f"line-{number:03d}" / f"{slug}-seed0.mp4").stat().st_size > 0


def test_a_second_run_into_the_same_folder_overwrites_nothing(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on a skateboard\na dog surfing\n")
    out = tmp_path / "out"
    assert run_batch([sys.executable], prompts, out).returncode == 0  # no launcher: one process does every line
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}
    run = run_batch([sys.executable], prompts, out)
    assert run.returncode == 0, run.stderr
    assert "[0/1] 2 of 2 prompts: lines 1, 2" in run.stdout
    for path, digest in before.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} was overwritten"
    assert videos_by_line(out) == {
        1: ["a-cat-on-a-skateboard-seed0-2.json", "a-cat-on-a-skateboard-seed0-2.mp4", "a-cat-on-a-skateboard-seed0.json", "a-cat-on-a-skateboard-seed0.mp4"],
        2: ["a-dog-surfing-seed0-2.json", "a-dog-surfing-seed0-2.mp4", "a-dog-surfing-seed0.json", "a-dog-surfing-seed0.mp4"],
    }


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("\n# nothing here\n", [], "has no prompts. Allowed: a text file with one prompt per line."),
        ("a cat\n", ["--scheduler", "ddmi"], "Try scheduler='ddim'"),
    ],
)
def test_bad_input_stops_before_any_work(tmp_path, content, extra, message):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(content)
    run = run_batch([sys.executable], prompts, tmp_path / "out", *extra)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "prompts: lines" not in run.stdout and not list(tmp_path.rglob("*.mp4"))


def test_a_model_that_fails_to_load_is_one_paragraph_and_exit_2_as_in_the_cli(tmp_path):
    import shutil

    import t2v_helpers as t2v

    model = tmp_path / "model"
    shutil.copytree(t2v.build_tiny_model(tmp_path / "tiny"), model)
    for weights in (model / "unet").glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])  # a download cut short
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    command = [sys.executable, "-m", "t2v_helpers.batch", "--prompts", str(prompts), "--model", str(model), "--out", str(tmp_path / "out")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--model:" in errors[0] and "Traceback" not in run.stderr, run.stderr


def test_each_line_of_the_batch_is_one_write_so_processes_never_glue_lines(tmp_path, monkeypatch):
    """Two processes share the terminal: a line written in two pieces can be cut by the other's line."""
    from t2v_helpers import batch

    class Recorder:
        encoding = "utf-8"

        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)
            return len(text)

        def flush(self):
            pass

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    stdout = Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert batch.main(["--prompts", str(prompts), *SMALL, "--out", str(tmp_path / "out")]) == 0
    assert stdout.writes and all(text.endswith("\n") for text in stdout.writes), stdout.writes
    assert "[0/1] 1 of 1 prompts: lines 1\n" in stdout.writes
