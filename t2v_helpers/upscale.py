"""Sharper videos in two passes: make a small video, then upscale it with zeroscope's video-to-video model. Notebook 11.

The first pass makes the video at a size the model is fast at (576x320 with
`cerspense/zeroscope_v2_576w`). The second resizes its frames to 1024x576, adds noise to
them and lets `cerspense/zeroscope_v2_XL` denoise part of the way back: `strength` says
how far (0 keeps the resized frames; 1 starts at timestep 999, where ModelScope's schedule
still keeps about 7% of the input, so even then the frames leak through).
"""

import inspect
import math
import numbers
import shlex
import stat
import time
from pathlib import Path

import numpy as np
import torch

from .errors import SettingError, shorten
from .families import families, family_of, family_of_class, find_model, model_of
from .generate import VideoResult, check_finite, checked_settings, out_of_memory_error, run_pipeline
from .notices import quiet_deprecation
from .pipeline import check_model, load_pipeline, model_family
from .schedulers import scheduler_name
from .validate import MAX_FPS, MAX_FRAMES, MAX_STEPS, check_path_text
from .video import sidecar_prompt, to_uint8

UPSCALER = "zeroscope-xl"
STRENGTH = 0.6  # diffusers' default for VideoToVideoSDPipeline; zeroscope_v2_XL's card suggests 0.66 to 0.85
MAX_VIDEO_BYTES = 2**30  # decoded 8-bit RGB frames read from a file: 1 GiB, about 600 frames of 1024x576
VIDEO_FILE = "a video file ffmpeg reads, such as an MP4 that t2v.save_video wrote"
VIDEO_INPUT = "a VideoResult, an array of frames (frames, height, width, 3), or the path of a video file such as an MP4"


def upscaler_for(model):
    """The upscaler to use after `model` (a name): the tiny XL model after a tiny model, else zeroscope_v2_XL. Notebook 11."""
    listed = find_model(model) if isinstance(model, str) else None
    return "tiny-zeroscope-xl" if listed is not None and listed.tiny else UPSCALER


def upscaled_size(height, width, pipe):
    """The studio's target: `height` x `width` scaled up to twice, within the upscaler's own size, shape kept. Notebook 11.

    Multiples of 8. A video of nearly the upscaler's shape (576x320 for 1024x576) gets its size exactly.
    """
    model = model_of(pipe)
    scale = min(2, model.height / height, model.width / width)
    if scale < 2 and abs(height / width - model.height / model.width) <= 0.02 * model.height / model.width:
        return model.height, model.width
    return max(8, int(height * scale) // 8 * 8), max(8, int(width * scale) // 8 * 8)


def as_upscaler(pipe):
    """A VideoToVideoSDPipeline sharing `pipe`'s parts (no second copy in memory), placed as `pipe` was. Notebook 11.

    On a GPU it also turns on the zeroscope_v2_XL card's memory switch, forward chunking with
    dim=1: the feed-forward layers of the spatial transformer blocks run one spatial position at a
    time, those of the temporal blocks one frame at a time (slower, leaner); VAE slicing stays as it was.
    """
    import diffusers

    family = family_of_class(type(pipe).__name__)
    if family is None or family.upscaler is None:
        raise SettingError("pipe", type(pipe).__name__, "is not a pipeline of a family with a video-to-video upscaler",
                           f"an upscaler from load_upscaler(), a pipeline of {_families_with_upscalers()}, or a model name",
                           "load_upscaler('zeroscope-xl')")
    upscaler_class = getattr(diffusers, family.upscaler)
    if isinstance(pipe, upscaler_class):
        return pipe
    needed = set(inspect.signature(upscaler_class.__init__).parameters) - {"self"}
    parts = getattr(pipe, "components", None)
    if not isinstance(parts, dict) or set(parts) != needed:
        shown = type(pipe).__name__ if parts is not None else pipe
        raise SettingError("pipe", shown, f"does not have the parts of a VideoToVideoSDPipeline ({', '.join(sorted(needed))})",
                           "an upscaler from load_upscaler(), a ModelScope-family pipeline, or a model name", "load_upscaler('zeroscope-xl')")
    with quiet_deprecation("VideoToVideoSDPipeline"):
        upscaler = upscaler_class(**pipe.components)
    runtime = getattr(pipe, "t2v_runtime", None)
    if runtime is not None and runtime.offload == "model":
        upscaler.enable_model_cpu_offload()  # the offload hooks now belong to the new pipeline, which offloads after each call
    if runtime is not None and runtime.device == "cuda":
        upscaler.unet.enable_forward_chunking(chunk_size=1, dim=1)
    for name in ("t2v_model_id", "t2v_runtime", "t2v_original_scheduler_config"):
        if hasattr(pipe, name):
            setattr(upscaler, name, getattr(pipe, name))
    upscaler.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return upscaler


def load_upscaler(model=UPSCALER, *, offload="auto", dtype=None, verbose=True, allow_pickle=False):
    """Load a video-to-video upscaler ('zeroscope-xl' or 'tiny-zeroscope-xl', or a folder or hub id). Notebook 11.

    It loads like `t2v.load_pipeline` (whose `offload="auto"` predicts the memory of the model's
    own 24 frames of 1024x576) and returns `as_upscaler` of it: on a GPU with VAE slicing and
    forward chunking (VAE slicing on a CPU too; forward chunking only on a GPU).
    """
    check_upscaler_model(model)
    return as_upscaler(load_pipeline(model, offload=offload, dtype=dtype, verbose=verbose, allow_pickle=allow_pickle))


def fewest_working(steps, strength, prefix=""):
    """A suggestion that runs at least one step: the smallest strength at these steps, or enough steps for this strength. Notebook 11."""
    needed = math.ceil(1 / strength)
    more_steps = f"{prefix}steps={needed} or " if needed <= MAX_STEPS else ""
    return f"{more_steps}{prefix}strength={math.ceil(100 / steps) / 100:g}"


def _families_with_upscalers():
    return " or ".join(f.name for f in families().values() if f.upscaler) + " (the families with one)"


def check_upscaler_model(model, name="model"):
    """Refuse, before loading it, a model whose family has no video-to-video upscaler (Wan, CogVideoX). Notebook 11."""
    check_model(model)
    if model_family(model).upscaler is None:
        raise SettingError(name, model, f"belongs to the {model_family(model).name} family, which has no video-to-video upscaler here",
                           f"an upscaler of {_families_with_upscalers()}", f"{name}={UPSCALER!r}" if name == "model" else f"{name} {UPSCALER}")


def check_strength(strength):
    """Return `strength` as a float if it is a number from 0 to 1, else raise SettingError. Notebook 11."""
    if isinstance(strength, numbers.Real) and not isinstance(strength, bool) and 0 <= strength <= 1:
        return float(strength)
    allowed = "a number from 0 (keep the input frames) to 1 (noise them the most); zeroscope_v2_XL's card suggests 0.66 to 0.85"
    if isinstance(strength, str):
        problem = "is text, not a number"
    elif isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength):
        problem = "is out of range"
    else:
        problem = "is not a number"
    raise SettingError("strength", strength, problem, allowed, f"strength={STRENGTH}")


def steps_run(steps, strength):
    """How many denoising steps the video-to-video pipeline runs: the last int(steps x strength) of `steps`. Notebook 11."""
    return min(int(steps * strength), steps)


def _not_a_file(path):
    """Why `path` cannot be read as a video file without opening it (a FIFO would block the read forever), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return "does not exist" if isinstance(error, FileNotFoundError) else f"cannot be opened ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a video file: reading it would wait for a writer"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a video file"
    return "is not a regular file (a socket or other special file)"


def _as_file(path):
    # ffmpeg reads 'concat:a.mp4' as another file and 'pipe:0' as standard input: name the file protocol, with a full path.
    return "file:" + str(path.absolute())


def _timestamps(path, max_frames):
    """The presentation times (seconds, sorted) of the first video stream's frames, read from the file's packets.

    ffmpeg copies the packets without decoding them (`-c copy -f framecrc`), so this is quick and
    holds no frames. Raises SettingError for a file ffmpeg cannot open or that has no video stream.
    """
    import subprocess

    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", _as_file(path), "-map", "0:v:0",
               "-c", "copy", "-frames:v", str(max_frames + 1), "-f", "framecrc", "-"]
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SettingError("video", str(path), f"cannot be read as a video ({shorten(str(error), 120)})", VIDEO_FILE, "another file") from None
    errors = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        if "matches no streams" in errors:
            raise SettingError("video", str(path), "has no video stream (only sound or other data)", VIDEO_FILE,
                               "a file with pictures, such as an MP4 that t2v.save_video wrote")
        reason = next((line for line in reversed(errors.splitlines()) if line.strip()), f"ffmpeg exit status {done.returncode}")
        raise SettingError("video", str(path), f"cannot be read as a video ({shorten(reason.strip(), 120)})", VIDEO_FILE, "another file")
    base, times = None, []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            numerator, denominator = line.split(":", 1)[1].split("/")
            base = int(numerator) / int(denominator)
        elif line and not line.startswith("#"):
            pts = int(line.split(",")[2])
            if pts != -(2**63):  # a packet without a time (AV_NOPTS_VALUE)
                times.append(pts)
    return sorted(t * base for t in times) if base else []


def _check_constant_rate(path, times):
    """The frame rate the timestamps `times` keep, or SettingError if the gaps between frames differ (variable frame rate)."""
    gaps = np.diff(times)
    if len(gaps) == 0:
        return None
    typical = float(np.median(gaps))
    # Timestamps are rounded to the file's time base (1 ms in WebM: 33 or 34 ms at 30 fps): a quarter of a frame of leeway.
    if typical > 0 and np.all(np.abs(gaps - typical) <= 0.25 * typical):
        return (len(times) - 1) / (times[-1] - times[0])
    shortest, longest = float(gaps.min()), float(gaps.max())
    problem = (f"has a variable frame rate (frames {shortest:.3g} s to {longest:.3g} s apart), and the model makes frames "
               "at one steady rate; reading it at one rate would add or drop frames and change its length")
    allowed = "a video with a constant frame rate"
    # Every frame once, evenly spaced at the clip's average rate: the same frames, and about the same length.
    span = times[-1] - times[0]
    fps = min(MAX_FPS, max(1, round((len(times) - 1) / span))) if span > 0 else 8
    out = path.with_name(path.stem + "-cfr.mp4")
    suggestion = (f"re-timing it first, each frame kept once at {fps} fps: "
                  f"ffmpeg -i {shlex.quote(str(path))} -vf setpts=N/{fps}/TB,fps={fps} {shlex.quote(str(out))}")
    raise SettingError("video", str(path), problem, allowed, suggestion)


def read_video(path, max_frames=MAX_FRAMES, max_bytes=MAX_VIDEO_BYTES):
    """The frames (frames, height, width, 3; uint8, 0..255) and fps of a video file. Notebook 11.

    A missing, empty or unreadable file, a pipe or a device, a file without a video stream, a
    video with a variable frame rate, or one longer than `max_frames` or larger than
    `max_bytes` once decoded (8-bit RGB) raises SettingError. The frame count and size are
    checked from the file's packets before decoding, and the frames are decoded into one array
    of that size: `max_bytes` bounds what is allocated, so a long film given by mistake cannot
    fill the memory. The fps is the one the frames' timestamps keep.
    """
    import imageio_ffmpeg

    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise SettingError("video", path, "is not a file name", VIDEO_FILE, "video='outputs/spiderman-is-surfing-seed0.mp4'")
    path = Path(path).expanduser()
    problem = _not_a_file(path)
    if problem:
        raise SettingError("video", str(path), problem, VIDEO_FILE, "the path of an MP4 (ls outputs/*.mp4 lists them)")
    times = _timestamps(path, max_frames)
    rate = _check_constant_rate(path, times)
    try:
        # passthrough: each frame the file holds, once (ffmpeg would otherwise repeat or drop frames to keep a rate).
        reader = imageio_ffmpeg.read_frames(_as_file(path), output_params=["-fps_mode", "passthrough"])
        meta = next(reader)
        width, height = meta["size"]
        frame_bytes = width * height * 3

        def too_long(count):
            reader.close()
            allowed = (f"videos of up to {max_frames} frames and {max_bytes / 2**30:g} GiB as RGB frames "
                       f"({frame_bytes / 2**20:.1f} MiB each here)")
            return SettingError("video", str(path), f"is longer than this helper reads ({count} frames or more)", allowed,
                                "a shorter clip, such as the first 2 seconds (ffmpeg -t 2)")

        expected = max(1, len(times))
        if expected > max_frames or expected * frame_bytes > max_bytes:
            raise too_long(expected)
        frames, count = np.empty((expected, height, width, 3), np.uint8), 0
        for data in reader:
            if count == len(frames):  # more frames than packets (rare): grow, within the same limits
                if count == max_frames or (count + 1) * frame_bytes > max_bytes:
                    raise too_long(count + 1)
                frames = np.concatenate([frames, np.empty((min(count, max_frames - count, max_bytes // frame_bytes - count),
                                                           height, width, 3), np.uint8)])
            frames[count] = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            count += 1
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
        if isinstance(error, SettingError):
            raise
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise SettingError("video", str(path), f"cannot be read as a video ({shorten(reason, 120)})", VIDEO_FILE, "another file") from None
    if not count:
        raise SettingError("video", str(path), "holds no frames", VIDEO_FILE, "another file")
    declared = float(meta.get("fps") or 0)
    if rate:
        # Timestamps are rounded to the file's time base (a GIF's 1/100 s makes 8 fps 0.12 and 0.13 s apart): the stream's
        # declared rate, or else a whole number, when within 2% of the measured one (29.97 stays 29.97, 7.94 becomes 8).
        rate = next((r for r in (declared, round(rate)) if r and abs(r - rate) <= 0.02 * rate), rate)
    return frames[:count], float(rate or declared)


def resize(frames, height, width):
    """Frames resized to `height` x `width` with Lanczos filtering (PIL), as float32 in 0..1. Notebook 11.

    The frames are resized as 8-bit pictures and turned into floats only at the new size, so a
    large video costs its 8-bit frames and the small result, not float copies of the large ones.
    """
    from PIL import Image

    frames = to_uint8(frames)
    if frames.shape[1:3] != (height, width):
        resized = np.empty((len(frames), height, width, 3), np.uint8)
        for index, frame in enumerate(frames):
            resized[index] = np.asarray(Image.fromarray(frame).resize((width, height), Image.LANCZOS))
        frames = resized
    result = frames.astype(np.float32)
    result /= 255
    return result


def video_source(video):
    """(frames, prompt or None, fps or None, a record of where the frames came from, why there is no prompt) for any VIDEO_INPUT. Notebook 11."""
    if isinstance(video, VideoResult):
        record = {"prompt": video.prompt, "seed": video.seed, "settings": video.settings}
        return video.frames, video.prompt, video.settings.get("fps"), record, None
    if isinstance(video, (str, Path)):
        check_path_text("video", video)  # the sidecar records the path: refuse before the work, not after
        frames, fps = read_video(video)
        prompt, why = sidecar_prompt(video)  # the sidecar save_video wrote beside it holds the prompt that made it
        record = {"file": str(video)}
        if fps and not 1 <= fps <= MAX_FPS:  # a slow-motion or time-lapse file: saved at the nearest rate a video here can have
            record["fps"], fps = fps, min(max(fps, 1), MAX_FPS)
        return frames, prompt, fps or None, record, why
    if isinstance(video, (np.ndarray, torch.Tensor, list, tuple)):
        frames = to_uint8(video)  # 8-bit until resized: see resize
        return frames, None, None, {"frames": list(frames.shape)}, "is frames without a prompt (not a VideoResult, nor a file with a sidecar)"
    raise SettingError("video", video, "is not a video", VIDEO_INPUT, "video=result, the VideoResult t2v.generate returned")


def upscale(pipe, video, *, strength=STRENGTH, height=None, width=None, prompt=None, negative_prompt=None, steps=None,
            guidance=None, seed=0, on_step=None):
    """Upscale a video: resize its frames, then re-denoise them with a video-to-video model at `strength`. Notebook 11.

    `pipe` is an upscaler (`load_upscaler`), any ModelScope-family pipeline (its parts are
    reused), or a model name to load. `video` is a VideoResult, an array of frames, or a video
    file (its sidecar's prompt is used). `height`/`width` default to the model's size (1024x576
    for zeroscope_v2_XL), `prompt` to the video's own, `steps` and `guidance` to the family's.
    The pipeline runs the last int(steps x strength) steps of the schedule; strength 0 returns
    the resized frames without running the model. Returns a VideoResult whose settings record
    the strength and where the frames came from, so that `t2v.save_video`'s sidecar holds them.
    """
    strength = check_strength(strength)
    frames, own_prompt, fps, source, why = video_source(video)
    prompt = own_prompt if prompt is None else prompt
    if prompt is None:
        raise SettingError("prompt", None, f"is needed: this video {why}",
                           "the words that made the video (zeroscope_v2_XL's card: use the same prompt)", "prompt='Spiderman is surfing'")
    if isinstance(pipe, str):
        pipe = load_upscaler(pipe)
    pipe = as_upscaler(pipe)
    checked = checked_settings(pipe, prompt, negative_prompt, steps, len(frames), height, width, guidance, seed)
    steps, height, width = checked["steps"], checked["height"], checked["width"]
    runs = steps_run(steps, strength)
    if strength > 0 and runs == 0:
        raise SettingError(
            "strength", strength, f"with steps={steps} runs no denoising step (the pipeline runs int(steps x strength))",
            "strength 0, or a strength and steps whose product is at least 1", fewest_working(steps, strength),
        )
    start = time.perf_counter()
    resized = resize(frames, height, width)
    if runs:
        resized = _denoise(pipe, checked, resized, strength, runs, on_step)
        check_finite(pipe, resized, steps)
    settings = dict(
        model=getattr(pipe, "t2v_model_id", pipe.name_or_path),
        negative_prompt=checked["negative_prompt"] or "",
        strength=strength,
        steps=steps,
        steps_run=runs,
        frames=len(resized),
        height=height,
        width=width,
        guidance=checked["guidance"],
        scheduler=scheduler_name(pipe),
        fps=fps or family_of(pipe).fps,
        upscaled_from=source,
    )
    return VideoResult(resized, checked["prompt"], checked["seed"], settings, time.perf_counter() - start)


def _denoise(pipe, checked, frames, strength, runs, on_step):
    output, message = run_pipeline(
        pipe, runs, checked["seed"], on_step, prompt=checked["prompt"], video=list(frames), strength=strength,
        num_inference_steps=checked["steps"], guidance_scale=checked["guidance"], negative_prompt=checked["negative_prompt"],
    )
    if output is not None:
        return output.frames[0]
    count, height, width = frames.shape[:3]
    raise out_of_memory_error(pipe, message, f"upscaling {count} frames to {width}x{height}", count, height, width)
