"""Reading a video's sidecar for `t2v upscale`: only a plain file of a sane size, and a rejected one says why."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import t2v_helpers as t2v
from t2v_helpers import cli
from t2v_helpers import upscale as up
from t2v_helpers.errors import SettingError
from t2v_helpers.video import MAX_SIDECAR_BYTES, sidecar_prompt


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A tiny saved video (2 frames) with its sidecar."""
    result = t2v.VideoResult(np.full((2, 16, 16, 3), 0.5, np.float32), "a red fox", 0, {"model": "tiny"}, 0.1)
    return t2v.save_video(result, tmp_path_factory.mktemp("clip"))


def copy_of(clip, folder, name="v"):
    folder.mkdir(exist_ok=True)
    video = folder / f"{name}.mp4"
    shutil.copyfile(clip.mp4, video)
    return video


def test_the_sidecars_prompt_is_read(clip):
    assert sidecar_prompt(clip.mp4) == ("a red fox", None)


@pytest.mark.parametrize(
    "content, cause",
    [
        (None, "has no sidecar (v.json does not exist)"),
        (b"x" * (MAX_SIDECAR_BYTES + 1), "v.json that is larger than 1000 kB"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deep"),
        (b'{"prompt": "caf\xe9"}', "is not UTF-8"),
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "holds no prompt"),
        (b'{"prompt": 5}', "v.json whose prompt is not text (5)"),
        (b'{"seed": 0}', "holds no prompt"),
    ],
)
def test_a_rejected_sidecar_is_named_with_its_real_cause(clip, tmp_path, content, cause):
    video = copy_of(clip, tmp_path)
    if content is not None:
        video.with_suffix(".json").write_bytes(content)
    prompt, why = sidecar_prompt(video)
    assert prompt is None and cause in why, why
    with pytest.raises(SettingError, match=cause.replace("(", r"\(").replace(")", r"\)")):
        up.upscale("never loaded", video)


def test_a_folder_named_like_the_sidecar_is_named_as_such(clip, tmp_path):
    video = copy_of(clip, tmp_path)
    video.with_suffix(".json").mkdir()
    assert "is not a plain file but a folder" in sidecar_prompt(video)[1]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist only on POSIX systems")
@pytest.mark.parametrize("prompt", [[], ["--prompt", "a red fox"]])
def test_a_fifo_sidecar_never_blocks_the_upscale_command(clip, tmp_path, prompt):
    video = copy_of(clip, tmp_path / "side")
    os.mkfifo(video.with_suffix(".json"))
    command = [sys.executable, "-m", "t2v_helpers", "upscale", str(video), "--model", "tiny-zeroscope-xl",
               "--steps", "2", "--strength", "0.5", "--height", "16", "--width", "16", "--out", str(tmp_path / "out"), *prompt]
    try:
        run = subprocess.run([*command[:3], *command[3:]], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        pytest.fail("t2v upscale blocked on the FIFO sidecar")
    if prompt:
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode == 2 and "is not a plain file but a FIFO" in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.skipif(sys.platform == "darwin" or os.name == "nt", reason="macOS and Windows refuse file names that are not UTF-8")
def test_a_video_path_that_is_not_utf8_is_refused_before_any_work(clip, tmp_path, capsys, monkeypatch):
    folder = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")  # Python's lone surrogate for the byte 0xE9
    video = copy_of(clip, __import__("pathlib").Path(folder))
    shutil.copyfile(clip.sidecar, video.with_suffix(".json"))
    monkeypatch.setattr(up, "load_upscaler", lambda *a, **k: pytest.fail("the model loaded before the path was checked"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["upscale", str(video), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "not UTF-8" in err and "renaming" in err and "Traceback" not in err, err
    with pytest.raises(SettingError, match="not UTF-8"):
        up.upscale("never loaded", video)


def test_a_string_that_is_not_utf8_never_loses_a_finished_video_at_the_sidecar(tmp_path):
    """Whatever slips past the checks, the sidecar is written (with the byte escaped), not the video thrown away."""
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a fox", 0, {"model": "tiny", "from": "caf\udce9"}, 0.1)
    saved = t2v.save_video(result, tmp_path)
    assert json.loads(saved.sidecar.read_text(encoding="utf-8"))["settings"]["from"] == "caf\\xe9"
