"""Upscaling (notebook 11): zeroscope's models, the tiny video-to-video model, t2v.upscale, `t2v upscale` and the studio's button."""

import json
import os

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import cli, upscale as up
from t2v_helpers.errors import SettingError
from t2v_helpers.families import find_model
from t2v_helpers.memory import GIB, MODES_FASTEST_FIRST, T4_FREE, choose_offload, predict

SMALL = dict(height=56, width=96, steps=2)  # upscaled size and steps small enough for a CPU


@pytest.fixture(scope="module")
def upscaler():
    pipe = up.load_upscaler("tiny-zeroscope-xl", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def source(pipe):
    """A small video made by the tiny text-to-video model: 4 frames of 32x56."""
    return t2v.generate(pipe, "a red fox running through snow", steps=2, frames=4, height=32, width=56, seed=3)


@pytest.fixture(scope="module")
def saved_source(source, tmp_path_factory):
    return t2v.save_video(source, tmp_path_factory.mktemp("source"))


def test_zeroscope_models_carry_their_cards_sizes_and_frames():
    small, xl = find_model("zeroscope"), find_model("zeroscope-xl")
    assert (small.id, small.height, small.width, small.frames) == ("cerspense/zeroscope_v2_576w", 320, 576, 24)
    assert (xl.id, xl.height, xl.width, xl.frames) == ("cerspense/zeroscope_v2_XL", 576, 1024, 24)
    assert small.family == xl.family == "modelscope" and small.variant is xl.variant is None
    tiny = find_model("tiny-zeroscope-xl")
    assert tiny.tiny and (tiny.height, tiny.width, tiny.frames) == (xl.height, xl.width, xl.frames)
    assert up.upscaler_for("tiny") == "tiny-zeroscope-xl" and up.upscaler_for("zeroscope") == "zeroscope-xl"


def test_the_tiny_upscaler_is_laid_out_like_zeroscope_xl(upscaler):
    folder = t2v.model_path("tiny-zeroscope-xl")
    index = json.loads((t2v.pipeline.Path(folder) / "model_index.json").read_text())
    assert index["_class_name"] == "VideoToVideoSDPipeline"
    weights = sorted(p.name for p in t2v.pipeline.Path(folder, "unet").glob("*.safetensors"))
    assert weights == ["diffusion_pytorch_model.safetensors"]  # float16 weights without a variant suffix, as in the real repository
    # The core loads the family's text-to-video class even though the folder names video-to-video; the upscaler is the other class.
    assert type(t2v.load_pipeline("tiny-zeroscope-xl", verbose=False)).__name__ == "TextToVideoSDPipeline"
    assert type(upscaler).__name__ == "VideoToVideoSDPipeline" and upscaler.t2v_model_id == "tiny-zeroscope-xl"


def test_as_upscaler_shares_the_parts_instead_of_copying_them(pipe):
    upscaler = up.as_upscaler(pipe)
    assert type(upscaler).__name__ == "VideoToVideoSDPipeline"
    assert upscaler.unet is pipe.unet and upscaler.vae is pipe.vae and upscaler.text_encoder is pipe.text_encoder
    assert up.as_upscaler(upscaler) is upscaler


def test_something_that_is_not_a_modelscope_pipeline_is_refused_as_an_upscaler(pipe):
    with pytest.raises(SettingError, match="is not a pipeline of a family with a video-to-video upscaler"):
        up.as_upscaler(None)

    class Parts:
        components = {"unet": pipe.unet, "vae": pipe.vae}

    with pytest.raises(SettingError, match="pipe='Parts'.*load_upscaler"):
        up.as_upscaler(Parts())


def test_a_sidecar_that_is_not_one_leaves_the_prompt_to_the_caller(saved_source, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(saved_source.mp4.read_bytes())
    for text in ("[1, 2]", "{not json", '{"prompt": 5}', '{"prompt": "' + "a" * 1_000_000 + '"}'):
        video.with_suffix(".json").write_text(text)
        with pytest.raises(SettingError, match="prompt"):
            up.upscale("never loaded", video)


def test_upscale_keeps_the_frame_count_and_makes_the_size_asked(upscaler, source):
    result = up.upscale(upscaler, source, strength=0.5, **SMALL)
    assert result.frames.shape == (4, 56, 96, 3) and result.frames.dtype == np.float32
    assert np.isfinite(result.frames).all() and 0 <= result.frames.min() <= result.frames.max() <= 1
    assert result.prompt == source.prompt and result.seed == 0
    settings = result.settings
    assert (settings["strength"], settings["steps"], settings["steps_run"], settings["frames"]) == (0.5, 2, 1, 4)
    assert settings["model"] == "tiny-zeroscope-xl" and settings["upscaled_from"]["settings"] == source.settings


def test_the_default_size_is_the_models_own(upscaler):
    result = up.upscale(upscaler, np.zeros((1, 8, 8, 3)), strength=0, prompt="a cat")
    assert result.frames.shape == (1, 576, 1024, 3)


def test_the_same_seed_gives_the_same_frames_and_another_seed_others(upscaler, source):
    first, again = (up.upscale(upscaler, source, strength=0.5, seed=5, **SMALL) for _ in range(2))
    other = up.upscale(upscaler, source, strength=0.5, seed=6, **SMALL)
    assert np.array_equal(first.frames, again.frames) and not np.array_equal(first.frames, other.frames)


def test_diffusers_fails_at_strength_zero_so_upscale_returns_the_resized_input_without_the_model(upscaler, source):
    frames = list(up.resize(source.frames, 56, 96))
    with pytest.raises(RuntimeError, match="size of tensor"):  # no timestep left to add noise at (diffusers 0.42.1)
        upscaler("a cat", video=frames, strength=0.0, num_inference_steps=2, output_type="np")
    with t2v.count_unet_calls(upscaler) as counter:
        result = up.upscale(upscaler, source, strength=0, **SMALL)
    assert counter.calls == 0 and result.settings["steps_run"] == 0
    assert np.array_equal(result.frames, up.resize(source.frames, 56, 96))
    assert np.array_equal(up.upscale(upscaler, source, strength=0, height=32, width=56).frames, t2v.video.to_uint8(source.frames) / np.float32(255))


def test_the_sidecar_records_strength_size_seed_and_the_source(upscaler, source, tmp_path):
    saved = t2v.save_video(up.upscale(upscaler, source, strength=0.5, seed=9, **SMALL), tmp_path)
    sidecar = json.loads(saved.sidecar.read_text())
    assert sidecar["seed"] == 9 and sidecar["frame_count"] == 4
    settings = sidecar["settings"]
    assert (settings["strength"], settings["height"], settings["width"], settings["steps_run"]) == (0.5, 56, 96, 1)
    assert settings["upscaled_from"] == {"prompt": source.prompt, "seed": 3, "settings": source.settings}


def test_a_video_file_is_read_with_the_prompt_of_its_sidecar(upscaler, saved_source):
    result = up.upscale(upscaler, saved_source.mp4, strength=0.5, **SMALL)
    assert result.prompt == "a red fox running through snow" and result.frames.shape == (4, 56, 96, 3)
    assert result.settings["upscaled_from"] == {"file": str(saved_source.mp4)}
    frames, fps = up.read_video(saved_source.mp4)
    assert frames.shape == (4, 32, 56, 3) and fps == 8


def test_a_video_too_long_to_hold_is_refused_while_reading(saved_source):
    with pytest.raises(SettingError, match=r"is longer than this helper reads \(3 frames or more\)"):
        up.read_video(saved_source.mp4, max_frames=2)
    frame_bytes = 32 * 56 * 3
    with pytest.raises(SettingError, match=r"\(4 frames or more\)"):
        up.read_video(saved_source.mp4, max_bytes=3 * frame_bytes + 1)
    assert len(up.read_video(saved_source.mp4, max_bytes=4 * frame_bytes)[0]) == 4


def bad_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "folder.mp4").mkdir()
    return {
        "missing": (tmp_path / "missing.mp4", "does not exist"),
        "text": (tmp_path / "notes.txt", "cannot be read as a video"),
        "empty": (tmp_path / "empty.mp4", "cannot be read as a video"),
        "folder": (tmp_path / "folder.mp4", "is a folder"),
    }


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "folder"])
def test_a_file_that_is_not_a_video_is_refused_with_what_to_change(upscaler, tmp_path, kind):
    path, problem = bad_files(tmp_path)[kind]
    with pytest.raises(SettingError, match=problem) as error:
        up.upscale(upscaler, path, prompt="a cat", **SMALL)
    assert error.value.name == "video" and "Try" in str(error.value)


@pytest.mark.parametrize("strength, problem", [(1.5, "out of range"), (-0.1, "out of range"), ("abc", "is text"),
                                                (float("nan"), "not a number"), (True, "not a number"), (None, "not a number")])
def test_a_strength_outside_0_to_1_is_refused_before_any_model_work(source, strength, problem):
    with pytest.raises(SettingError, match=problem) as error:
        up.upscale("a model that is never loaded", source, strength=strength)
    assert "strength=0.6" in str(error.value)


def test_a_strength_too_small_for_the_steps_says_how_many_steps_it_needs(upscaler, source):
    with pytest.raises(SettingError, match=r"runs no denoising step.*Try steps=4 or strength=0"):
        up.upscale(upscaler, source, strength=0.3, **SMALL)  # int(2 x 0.3) = 0


def test_frames_without_a_prompt_and_other_inputs_are_refused(upscaler):
    with pytest.raises(SettingError, match="prompt"):
        up.upscale(upscaler, np.zeros((2, 8, 8, 3)), **SMALL)
    with pytest.raises(SettingError, match="is not a video"):
        up.upscale(upscaler, 42, prompt="a cat", **SMALL)
    with pytest.raises(SettingError, match="channels first"):
        up.upscale(upscaler, np.zeros((2, 3, 8, 8)), prompt="a cat", **SMALL)
    with pytest.raises(SettingError, match="height"):
        up.upscale(upscaler, np.zeros((2, 8, 8, 3)), prompt="a cat", strength=0, height=50, width=96)


def test_upscaled_size_is_twice_the_video_up_to_the_models_own(upscaler):
    assert up.upscaled_size(32, 32, upscaler) == (64, 64)
    assert up.upscaled_size(256, 256, upscaler) == (512, 512)
    assert up.upscaled_size(320, 576, upscaler) == (576, 1024)
    assert up.upscaled_size(480, 720, upscaler) == (576, 864)  # a CogVideoX video keeps its 3:2 shape


def test_the_xl_pass_on_a_t4_gets_the_fastest_offload_predicted_to_fit():
    """What offload='auto' picks for zeroscope_v2_XL's own 24 frames of 1024x576 (load_pipeline asks with the model's size)."""
    xl = find_model("zeroscope-xl")
    size = dict(frames=xl.frames, height=xl.height, width=xl.width)
    mode, reason, predictions = choose_offload(T4_FREE, **size)
    fitting = [p.mode for p in predictions if p.fits]
    assert mode == (fitting[0] if fitting else "sequential")
    assert ("Even this may not fit" in reason) == (not fitting)
    assert f"{xl.frames} frames of {xl.width}x{xl.height}" in reason
    # The XL pass needs more than the first pass at 576x320, in every mode.
    for mode in MODES_FASTEST_FIRST:
        assert predict(mode, **size).peak > predict(mode, frames=24, height=320, width=576).peak


@pytest.mark.parametrize("name", ["zeroscope", "zeroscope-xl", "modelscope"])
def test_offload_auto_predicts_for_the_models_own_frames_and_size(monkeypatch, name):
    """load_pipeline's offload="auto" on a simulated T4 (memory.T4_FREE free) asks the memory model about the model's own video."""
    from t2v_helpers import memory

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Simulated T4")
    monkeypatch.setattr(memory, "gpu_memory", lambda: (T4_FREE, 15 * GIB))
    model = find_model(name)
    runtime = t2v.choose_runtime(model=model)
    mode, reason, _ = choose_offload(T4_FREE, frames=model.frames, height=model.height, width=model.width)
    assert runtime.offload == mode and reason in runtime.reason
    assert f"{model.frames} frames of {model.width}x{model.height}" in runtime.reason


# --- t2v upscale ---------------------------------------------------------------------------------

CLI_SMALL = ["--model", "tiny-zeroscope-xl", "--steps", "2", "--height", "56", "--width", "96"]


def test_the_command_writes_an_upscaled_video_and_never_overwrites(saved_source, tmp_path, capsys):
    out = tmp_path / "out"
    for _ in range(2):
        assert cli.main(["upscale", str(saved_source.mp4), "--strength", "0.5", *CLI_SMALL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Upscaled 4 frames to 96x56" in printed
    stem = "a-red-fox-running-through-snow-seed0"  # the upscale's own seed, 0 unless --seed says otherwise
    assert sorted(p.name for p in out.glob("*.mp4")) == [f"{stem}-2.mp4", f"{stem}.mp4"]
    sidecar = json.loads(saved_source.sidecar.read_text())
    made = json.loads((out / f"{stem}.json").read_text())
    assert made["prompt"] == sidecar["prompt"] and made["settings"]["strength"] == 0.5
    assert made["settings"]["upscaled_from"] == {"file": str(saved_source.mp4)} and made["settings"]["scheduler"] == "dpm"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--strength", "1.5"], "strength=1.5 is out of range"),
        (["--strength", "-1"], "strength=-1.0 is out of range"),
        (["--strength", "abc"], "argument --strength: invalid float value: 'abc'"),
        (["--strength", "0.3"], "--strength=0.3 with --steps 2 runs no denoising step"),
        (["--seed", "-1"], "seed=-1 is out of range"),
        (["--height", "50"], "height=50"),
        (["--model", "./no-such-folder"], "--model: Model './no-such-folder' is neither a folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_paragraph_before_the_model_loads(saved_source, tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.setattr(up, "load_upscaler", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["upscale", str(saved_source.mp4), "--steps", "2", *arguments, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") <= 8 and "Traceback" not in error


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "folder"])
def test_a_bad_video_file_exits_2_and_says_what_to_change(tmp_path, capsys, kind):
    path, problem = bad_files(tmp_path)[kind]
    with pytest.raises(SystemExit) as stop:
        cli.main(["upscale", str(path), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert problem in error and "Try" in error


def test_a_video_without_a_sidecar_needs_a_prompt(saved_source, tmp_path, capsys):
    alone = tmp_path / "alone.mp4"
    alone.write_bytes(saved_source.mp4.read_bytes())
    with pytest.raises(SystemExit) as stop:
        cli.main(["upscale", str(alone), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and "--prompt" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_saves_nothing(saved_source, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(up, "upscale", interrupted)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        cli.main(["upscale", str(saved_source.mp4), *CLI_SMALL, "--out", str(out)])
    assert stop.value.code == 130 and "Stopped" in capsys.readouterr().err
    assert list(out.iterdir()) == []


# --- the studio's Upscale button ----------------------------------------------------------------


def test_the_studio_upscales_its_newest_video_into_the_history(pipe, tmp_path):
    studio = t2v.Studio(pipe, tmp_path / "outputs", prompt="a cat", steps=2, frames=2, height=32, width=32)
    assert studio.upscale_button.disabled  # nothing to upscale yet
    studio.upscale_button.click()
    assert studio.history == []
    studio.generate_button.click()
    assert not studio.upscale_button.disabled
    studio.upscale_button.click()
    assert studio.last_error is None, studio.message.value
    assert len(studio.history) == 2 and len(studio.history_box.children) == 2
    first, upscaled = studio.history
    assert (upscaled.values["height"], upscaled.values["width"]) == (64, 64) and upscaled.values["prompt"] == "a cat"
    sidecar = json.loads(upscaled.sidecar.read_text())
    assert sidecar["settings"]["strength"] == up.STRENGTH and sidecar["settings"]["upscaled_from"] == {"file": str(first.mp4)}
    assert f"video #{first.number} upscaled" in studio.message.value and not studio.upscale_button.disabled
    assert studio.upscaler.t2v_model_id == "tiny-zeroscope-xl"


def test_the_studio_shows_an_upscale_error_and_stays_usable(pipe, tmp_path):
    studio = t2v.Studio(pipe, tmp_path / "outputs", prompt="a cat", steps=2, frames=2, height=32, width=32)
    studio.generate_button.click()
    studio.history[-1].mp4.unlink()  # the video was deleted before the click
    studio.upscale_button.click()
    assert isinstance(studio.last_error, SettingError) and "does not exist" in studio.message.value
    assert len(studio.history) == 1 and not studio.upscale_button.disabled and not studio.generate_button.disabled


def test_review_findings_upscale(tmp_path):
    import imageio_ffmpeg
    import numpy as np

    from t2v_helpers import upscale as up
    from t2v_helpers.errors import SettingError

    # A 240 fps file is upscaled and saved at 120 fps, the original rate recorded.
    path = tmp_path / "fast.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (48, 32), fps=240)
    writer.send(None)
    for _ in range(3):
        writer.send(np.zeros((32, 48, 3), np.uint8).tobytes())
    writer.close()
    upscaler = up.load_upscaler("tiny-zeroscope-xl", verbose=False)
    result = up.upscale(upscaler, str(path), prompt="a cat", steps=2, height=64, width=96)
    assert result.settings["fps"] == 120 and result.settings["upscaled_from"]["fps"] == 240
    assert t2v.save_video(result, tmp_path / "out").mp4.exists()
    # A family without an upscaler is refused before any loading.
    with pytest.raises(SettingError, match="wan family, which has no video-to-video upscaler"):
        up.load_upscaler("wan")
    # Too small a strength gets a suggestion that works.
    with pytest.raises(SettingError, match=r"strength=0.04"):
        up.upscale(upscaler, result, strength=1e-4, steps=25)


# --- what a video file really holds (issue 19: variable frame rate, memory, files that are not videos) ---------


def _ffmpeg(tmp_path, name, *arguments):
    """A file made by the bundled ffmpeg from its test pattern (no input file needed)."""
    import subprocess

    import imageio_ffmpeg

    path = tmp_path / name
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *arguments, str(path)], check=True, timeout=120)
    return path


def _pattern(tmp_path, name, frames, *filters, size="32x32"):
    extra = ["-vf", filters[0], "-fps_mode", "vfr"] if filters else []
    return _ffmpeg(tmp_path, name, "-f", "lavfi", "-i", f"testsrc=size={size}:rate=8", "-frames:v", str(frames), *extra, "-pix_fmt", "yuv420p")


def test_a_constant_rate_file_gives_its_own_frames_and_rate(tmp_path):
    frames, fps = up.read_video(_pattern(tmp_path, "cfr.mp4", 6))
    assert frames.shape == (6, 32, 32, 3) and fps == 8


@pytest.mark.parametrize("frames, pts, shown", [
    (6, "if(lt(N,3),N/8,N/2)/TB", "0.125 s to 1.25 s"),  # the 1.88 s clip that became 28 frames at 3.2 fps
    (3, "if(lt(N,2),N/8,200)/TB", "0.125 s to 200 s"),  # a 200 s gap that became 534 frames
])
def test_a_variable_frame_rate_file_is_refused_with_the_command_that_makes_it_constant(tmp_path, frames, pts, shown):
    path = _pattern(tmp_path, "vfr.mp4", frames, f"setpts='{pts}'")
    with pytest.raises(SettingError, match="variable frame rate") as error:
        up.read_video(path)
    message = str(error.value)
    assert shown in message and error.value.name == "video"
    # The command it suggests makes a file it reads, with every frame once.
    command = message.split("Try re-timing it first, each frame kept once at ")[1].split(": ", 1)[1].rstrip(".")
    import shlex
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", *shlex.split(command)[1:]], check=True, timeout=120)
    assert len(up.read_video(tmp_path / "vfr-cfr.mp4")[0]) == frames


@pytest.mark.parametrize("kind, problem", [("fifo", "is a named pipe"), ("device", "is a device"), ("audio", "has no video stream")])
def test_a_pipe_a_device_or_an_audio_file_is_named_for_what_it_is(tmp_path, kind, problem):
    if kind == "fifo":
        path = tmp_path / "v.mp4"
        os.mkfifo(path)  # nothing ever writes to it: reading it would wait forever
    elif kind == "device":
        path = "/dev/zero"
    else:
        path = _ffmpeg(tmp_path, "sound.m4a", "-f", "lavfi", "-i", "sine=duration=1")
    with pytest.raises(SettingError, match=problem) as error:
        up.read_video(path)
    assert "does not exist" not in str(error.value) and "Error opening output files" not in str(error.value)


def test_reading_and_resizing_a_large_video_holds_little_more_than_its_8_bit_frames(tmp_path):
    """Issue 19: 4 frames of 6000x6000 (432 MB as 8-bit RGB) peaked at 5.3 GiB: float32 copies of the full-size frames."""
    import tracemalloc  # numpy reports its arrays to tracemalloc

    path = _pattern(tmp_path, "big.mp4", 3, size="1024x1024")
    decoded = 3 * 1024 * 1024 * 3
    tracemalloc.start()
    try:
        frames, _prompt, _fps, _record, _why = up.video_source(path)
        small = up.resize(frames, 64, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert small.shape == (3, 64, 64, 3) and small.dtype == np.float32
    # The 8-bit frames, and the one or two frames ffmpeg's pipe hands over as bytes (before: 12 times the frames).
    assert peak < decoded + 2.5 * decoded / 3, f"peak {peak / decoded:.2f} times the decoded frames"


def test_the_byte_cap_bounds_what_is_allocated(tmp_path):
    import tracemalloc

    path = _pattern(tmp_path, "big.mp4", 4, size="512x512")
    frame = 512 * 512 * 3
    with pytest.raises(SettingError, match="longer than this helper reads"):
        up.read_video(path, max_bytes=3 * frame)
    tracemalloc.start()
    try:
        up.read_video(path, max_bytes=4 * frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * frame + 2.5 * frame, f"peak {peak / frame:.2f} frames"  # before: 36 frames


@pytest.mark.parametrize("name, codec, rate, fps", [
    ("clip.gif", [], "8", 8.0),  # a GIF's 1/100 s delays: 0.12 and 0.13 s apart
    ("clip.webm", ["-pix_fmt", "yuv420p"], "30000/1001", 29.97),  # WebM's 1 ms time base: 33 and 34 ms apart
    ("clip.avi", ["-c:v", "mjpeg"], "8", 8.0),
])
def test_other_containers_and_time_bases_keep_their_frames_and_rate(tmp_path, name, codec, rate, fps):
    path = _ffmpeg(tmp_path, name, "-f", "lavfi", "-i", f"testsrc=size=32x32:rate={rate}", "-frames:v", "10", *codec)
    frames, read_fps = up.read_video(path)
    assert len(frames) == 10 and read_fps == fps


def test_a_file_that_decodes_to_more_frames_than_its_packets_is_read_whole(tmp_path, monkeypatch):
    path = _pattern(tmp_path, "cfr.mp4", 6)
    monkeypatch.setattr(up, "_timestamps", lambda path, most: [0.0, 0.125])  # as if two packets held the six frames
    frames, fps = up.read_video(path)
    assert frames.shape == (6, 32, 32, 3) and fps == 8
    with pytest.raises(SettingError, match="longer than this helper reads"):
        up.read_video(path, max_frames=5)


@pytest.mark.parametrize("name", ["pipe:0", "concat:other.mp4", "subfile,,start,0,end,0,,:other.mp4"])
def test_a_file_name_that_looks_like_an_ffmpeg_protocol_is_read_as_that_file(tmp_path, monkeypatch, name):
    """Attack beyond issue 19: ffmpeg reads 'concat:other.mp4' as another file and 'pipe:0' as standard input."""
    monkeypatch.chdir(tmp_path)
    _pattern(tmp_path, "other.mp4", 2)
    (tmp_path / name).write_bytes(_pattern(tmp_path, "six.mp4", 6).read_bytes())
    frames, fps = up.read_video(name)
    assert len(frames) == 6 and fps == 8
