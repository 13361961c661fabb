"""Injected faults: out of GPU memory, no GPU, no model while offline, an interrupted generation,
a killed ffmpeg, a full disk. Each gives a clear error, leaves no partial file under a final
name, and leaves every file written before byte-for-byte as it was."""

import errno
import gc
import hashlib
import os
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

import t2v_helpers as t2v
from t2v_helpers.errors import GPUMemoryError, VideoExportError

SETTINGS = dict(steps=2, frames=4, height=16, width=16, seed=0)
OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (injected by the test)"


@pytest.fixture(scope="module")
def pipe():
    return t2v.load_pipeline("tiny", verbose=False)


@pytest.fixture(scope="module")
def reference(pipe):
    """Frames from an undisturbed run, to show that a fault leaves the pipeline as it was."""
    t2v.set_scheduler(pipe, "ddim")
    return t2v.generate(pipe, "a red fox", **SETTINGS).frames


def snapshot(folder):
    """Every file and folder under `folder`, hidden ones too, with its content hash and mtime."""
    entries = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            entries[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        else:
            entries[str(path.relative_to(folder))] = "folder"
    return entries


@pytest.fixture
def earlier(tmp_path):
    """An output folder holding a saved video for the same prompt and seed, and a note of the user's."""
    out = tmp_path / "outputs"
    result = t2v.VideoResult(np.random.default_rng(0).random((8, 64, 64, 3), np.float32), "a red fox", 0)
    t2v.save_video(result, out, gif=True, png_frames=True)
    (out / "my notes.txt").write_text("do not touch")
    return out, result, snapshot(out)


# --- out of GPU memory ------------------------------------------------------------------------

def raise_oom(pipe, when=lambda sample: True, keep=None):
    """A UNet forward that raises torch's out-of-memory error when `when(sample)` holds."""
    real_forward = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        if when(sample):
            held = torch.ones(1000)  # stands for the activations a real failed step holds
            if keep is not None:
                keep.append(weakref.ref(held))
            raise torch.OutOfMemoryError(OOM_TEXT)
        return real_forward(sample, *args, **kwargs)

    return forward


def test_out_of_memory_in_the_unet_gives_leaner_settings_and_frees_the_cache(pipe, reference, monkeypatch, capsys):
    emptied, held = [], []
    monkeypatch.setattr(pipe.unet, "forward", raise_oom(pipe, keep=held))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    pipe.vae.disable_slicing()
    try:
        with pytest.raises(GPUMemoryError) as caught:
            t2v.generate(pipe, "a red fox", **{**SETTINGS, "steps": 1, "frames": 16, "height": 512, "width": 512})
    finally:
        pipe.vae.enable_slicing()
    error = caught.value
    assert isinstance(error, torch.OutOfMemoryError) and isinstance(error, RuntimeError)
    message = str(error)
    for tip in ("frames=8", "height=256, width=256", "pipe.vae.enable_slicing()", "offload='model'", "offload='sequential'", "retry_leaner=True"):
        assert tip in message, tip
    assert "CUDA out of memory" in message
    assert emptied, "torch.cuda.empty_cache() was not called"
    # The error keeps no link to the failed call, so its tensors can be freed at once.
    assert error.__cause__ is None and error.__context__ is None
    gc.collect()
    assert held and held[0]() is None, "a tensor of the failed call is still alive"


def test_out_of_memory_while_decoding_is_caught_too(pipe, monkeypatch):
    def decode(*args, **kwargs):
        raise torch.OutOfMemoryError(OOM_TEXT)

    monkeypatch.setattr(pipe.vae, "decode", decode)
    with pytest.raises(GPUMemoryError, match="frames=2"):
        t2v.generate(pipe, "a red fox", **SETTINGS)


def test_retry_leaner_retries_once_with_half_the_frames(pipe, monkeypatch, capsys):
    # Memory grows with frames: the UNet input is (batch, channels, frames, height, width).
    monkeypatch.setattr(pipe.unet, "forward", raise_oom(pipe, when=lambda sample: sample.shape[2] > 2))
    result = t2v.generate(pipe, "a red fox", **SETTINGS, retry_leaner=True)
    assert "retrying once with frames=2" in capsys.readouterr().out
    assert result.frames.shape[0] == 2
    assert result.settings["frames"] == 2 and result.settings["frames_asked"] == 4
    assert pipe.vae.use_slicing
    monkeypatch.undo()
    same = t2v.generate(pipe, "a red fox", **{**SETTINGS, "frames": 2})
    np.testing.assert_array_equal(result.frames, same.frames)


def test_retry_leaner_gives_up_after_one_retry(pipe, reference, monkeypatch):
    calls = []
    monkeypatch.setattr(pipe.unet, "forward", raise_oom(pipe, when=lambda sample: calls.append(1) or True))
    with pytest.raises(GPUMemoryError) as caught:
        t2v.generate(pipe, "a red fox", **SETTINGS, retry_leaner=True)
    assert len(calls) == 2, "one try and one retry"
    assert "making 2 frames" in str(caught.value) and "retry_leaner" not in str(caught.value)
    monkeypatch.undo()
    np.testing.assert_array_equal(t2v.generate(pipe, "a red fox", **SETTINGS).frames, reference)


# --- no GPU -------------------------------------------------------------------------------------

def test_without_a_gpu_one_line_says_so_with_the_time_per_step(capsys):
    if t2v.environment.gpu_info():
        pytest.skip("a CUDA GPU is visible")
    pipe = t2v.load_pipeline("tiny")
    assert "No CUDA GPU: running on the CPU" in capsys.readouterr().out
    t2v.generate(pipe, "a red fox", **{**SETTINGS, "steps": 3})
    lines = [line for line in capsys.readouterr().out.splitlines() if "No GPU" in line]
    assert len(lines) == 1 and " per step, " in lines[0] and "for 3 steps" in lines[0], lines
    t2v.generate(pipe, "a red fox", **{**SETTINGS, "steps": 3})
    assert "No GPU" not in capsys.readouterr().out, "the notice shows once per pipeline"


# --- model not cached while offline ------------------------------------------------------------

def load_in_a_fresh_process(tmp_path, **env):
    """Load the real model id with an empty Hugging Face cache; return what the error said."""
    code = (
        "import t2v_helpers as t2v\n"
        "try:\n"
        "    t2v.load_pipeline(t2v.MODEL_ID, verbose=False)\n"
        "except t2v.ModelNotAvailableError as error:\n"
        "    assert isinstance(error, OSError)\n"
        "    print('ERROR:', error)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), **env}
    for derived_from_hf_home in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        env.pop(derived_from_hf_home, None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "ERROR:" in done.stdout, done.stdout + done.stderr
    return done.stdout.split("ERROR:", 1)[1]


def test_offline_without_the_model_names_model_cache_switch_and_download_command(tmp_path):
    message = load_in_a_fresh_process(tmp_path, HF_HUB_OFFLINE="1")
    assert f"'{t2v.MODEL_ID}'" in message
    assert str(tmp_path / "hf" / "hub") in message
    assert "HF_HUB_OFFLINE=1" in message
    assert f"hf download {t2v.MODEL_ID}" in message
    assert "load_pipeline('tiny')" in message


def test_the_command_line_says_the_same_without_a_traceback(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    command = [sys.executable, "-m", "t2v_helpers", "a red fox", "--model", t2v.MODEL_ID, "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"hf download {t2v.MODEL_ID}" in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_hub_gives_the_same_help(tmp_path):
    # A closed port on this machine refuses connections at once: the hub is "down", nothing leaves the machine.
    message = load_in_a_fresh_process(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    assert "downloading it failed" in message and "HF_HUB_OFFLINE" in message
    assert f"hf download {t2v.MODEL_ID}" in message and str(tmp_path / "hf" / "hub") in message
    assert not list((tmp_path / "hf").rglob("*.safetensors"))


# --- interrupted generation ----------------------------------------------------------------------

@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError("the kernel died")], ids=["ctrl-c", "exception"])
def test_an_interrupted_generation_saves_nothing_and_touches_nothing(pipe, reference, earlier, fault):
    out, _, before = earlier

    def on_step(step, steps, latents):
        if step == 1:
            raise fault

    with pytest.raises(type(fault) if isinstance(fault, BaseException) else fault):
        result = t2v.generate(pipe, "a red fox", **SETTINGS, on_step=on_step)
        t2v.save_video(result, out)
    assert snapshot(out) == before
    # The pipeline is not left half-way: the next run gives the undisturbed frames.
    np.testing.assert_array_equal(t2v.generate(pipe, "a red fox", **SETTINGS).frames, reference)


# --- failed exports --------------------------------------------------------------------------------

def fake_ffmpeg(tmp_path, monkeypatch, body):
    """Put a shell script in place of ffmpeg for writing; reading (frame counts) uses the real one."""
    if os.name == "nt":
        pytest.skip("the fake ffmpeg is a POSIX shell script")
    real = imageio_ffmpeg.get_ffmpeg_exe()
    script = tmp_path / "ffmpeg"
    script.write_text(f'#!/bin/sh\ncase "$*" in *"-f null"*) exec "{real}" "$@";; esac\n' + 'for last; do :; done\n' + body)
    script.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    return real


def killed_mid_write(tmp_path, monkeypatch):
    fake_ffmpeg(tmp_path, monkeypatch, "head -c 20000 >/dev/null\nkill -9 $$\n")


def disk_full(tmp_path, monkeypatch):
    fake_ffmpeg(tmp_path, monkeypatch, 'cat >/dev/null\nprintf "\\0\\0\\0 ftypisom" > "$last"\necho "No space left on device" >&2\nexit 1\n')


def short_video(tmp_path, monkeypatch, frame_bytes=64 * 64 * 3):
    real = imageio_ffmpeg.get_ffmpeg_exe()
    # Take every frame, then let the real ffmpeg encode only the first 2: a valid but short file, exit status 0.
    fake_ffmpeg(
        tmp_path,
        monkeypatch,
        f'raw=$(mktemp)\nhead -c {2 * frame_bytes} > "$raw"\ncat >/dev/null\n"{real}" "$@" < "$raw"\nrm -f "$raw"\n',
    )


def ctrl_c_while_encoding(tmp_path, monkeypatch):
    real_popen = subprocess.Popen

    class Stdin:
        """ffmpeg's input pipe, with Ctrl-C pressed while the third frame is sent."""

        def __init__(self, pipe):
            self.pipe, self.sent = pipe, 0

        def write(self, data):
            self.sent += 1
            if self.sent == 3:
                raise KeyboardInterrupt
            return self.pipe.write(data)

        def close(self):
            self.pipe.close()

    def popen(command, *args, **kwargs):
        process = real_popen(command, *args, **kwargs)
        if "rawvideo" in command:
            process.stdin = Stdin(process.stdin)
        return process

    monkeypatch.setattr(subprocess, "Popen", popen)


def gif_disk_full(tmp_path, monkeypatch):
    real_save = Image.Image.save

    def save(self, fp, format=None, **kwargs):
        if format == "GIF":
            real_save(self, fp, format=format)  # a partial file, like a write cut short
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, format, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def png_fails_on_frame_3(tmp_path, monkeypatch, fault=OSError(errno.ENOSPC, "No space left on device")):
    real_save = Image.Image.save
    saved = []

    def save(self, fp, *args, **kwargs):
        if str(fp).endswith(".png"):
            saved.append(fp)
            if len(saved) == 3:
                raise fault
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def ctrl_c_in_png_frames(tmp_path, monkeypatch):
    png_fails_on_frame_3(tmp_path, monkeypatch, KeyboardInterrupt())


def sidecar_disk_full(tmp_path, monkeypatch):
    from t2v_helpers import publish

    real_write_new = publish._write_new  # the sidecar is created exclusively, never through a link

    def write_new(path, data):
        real_write_new(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publish, "_write_new", write_new)


def ctrl_c_while_publishing(tmp_path, monkeypatch):
    real_link = os.link

    def link(src, dst, *args, **kwargs):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)


EXPORT_FAULTS = {
    killed_mid_write: VideoExportError,
    disk_full: VideoExportError,
    short_video: VideoExportError,
    ctrl_c_while_encoding: KeyboardInterrupt,
    gif_disk_full: VideoExportError,
    png_fails_on_frame_3: VideoExportError,
    ctrl_c_in_png_frames: KeyboardInterrupt,
    sidecar_disk_full: VideoExportError,
    ctrl_c_while_publishing: KeyboardInterrupt,
}


@pytest.mark.parametrize("inject", EXPORT_FAULTS, ids=[f.__name__ for f in EXPORT_FAULTS])
def test_a_failed_export_leaves_no_partial_file_and_earlier_files_untouched(inject, earlier, tmp_path, monkeypatch):
    out, result, before = earlier
    inject(tmp_path, monkeypatch)
    with pytest.raises(EXPORT_FAULTS[inject]):
        t2v.save_video(result, out, gif=True, png_frames=True)
    monkeypatch.undo()
    assert snapshot(out) == before
    # Nothing is stuck: the same save works once the fault is gone.
    saved = t2v.save_video(result, out, gif=True, png_frames=True)
    assert saved.mp4.name == "a-red-fox-seed0-2.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(saved.mp4)[0] == 8


def test_the_short_video_check_reports_how_many_frames_were_written(tmp_path, monkeypatch):
    short_video(tmp_path, monkeypatch, frame_bytes=16 * 16 * 3)
    frames = np.zeros((8, 16, 16, 3), np.uint8)
    with pytest.raises(VideoExportError, match=r"holds 2 of 8 frames\), so nothing was saved as clip\.mp4"):
        t2v.video.write_mp4(frames, tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg"], "a temporary file was left behind"
