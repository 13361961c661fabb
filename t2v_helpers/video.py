"""Write videos (H.264 MP4, GIF, PNG frames) with a JSON sidecar, never overwriting; show them inline. Notebook 04."""

import json
import os
import re
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .environment import library_versions
from .errors import SettingError, VideoExportError, shorten
from .families import find_model
from .publish import file_kind, json_text, publish, signals_held
from .validate import check_fps, check_output_dir

MAX_SIDECAR_BYTES = 1_000_000  # a sidecar is a few kB; a larger file is not one (and /dev/zero cannot fill memory)
MODEL_FPS = 8  # the rate ModelScope's own pipeline writes the model's videos at (16 frames = 2 s)
VIDEO = "an array of shape (frames, height, width, 3): RGB as floats from 0 to 1 (what t2v.generate returns) or whole numbers from 0 to 255, or a list of PIL images"


def _refuse(frames, problem, suggestion):
    shown = f"an array of shape {frames.shape} ({frames.dtype})" if isinstance(frames, np.ndarray) else frames
    return SettingError("frames", shown, problem, VIDEO, suggestion)


def _shape_advice(frames):
    shape = frames.shape
    if frames.ndim == 5:
        return "has a batch axis in front", "frames[0], the first video (pipe(...).frames[0])"
    if frames.ndim == 3:
        return "has no colour axis", "frames[..., None] for grayscale frames, or frames[None] for one RGB image"
    if frames.ndim == 4 and shape[-1] == 4:
        return "has 4 colour channels (RGBA)", "frames[..., :3] to drop the alpha (transparency) channel"
    if frames.ndim == 4 and shape[1] in (1, 3):
        return "has its colour axis second (channels first)", "frames.transpose(0, 2, 3, 1)"
    return "is not a video", "the frames of a VideoResult (result.frames)"


def to_uint8(frames):
    """Frames as uint8 RGB (frames, height, width, 3); anything else gets a SettingError saying what to pass. Notebook 04.

    Takes floats from 0 to 1 (a little outside is clipped), whole numbers from 0 to 255,
    one-channel (grayscale) frames, lists of PIL images or of frames, and torch tensors on any device.
    """
    if isinstance(frames, torch.Tensor):  # numpy cannot take a tensor with gradients, on a GPU, or in bfloat16
        frames = frames.detach().cpu()
        frames = (frames.float() if frames.is_floating_point() else frames).numpy()
    if isinstance(frames, (list, tuple)) and frames and all(hasattr(f, "convert") and hasattr(f, "getbands") for f in frames):
        frames = [np.asarray(image.convert("RGB")) for image in frames]
    try:
        frames = np.asarray(frames)
    except ValueError:  # numpy cannot stack frames of different shapes
        raise SettingError("frames", "frames of different shapes", "cannot make one video", VIDEO, "frames that all have the same size") from None
    except (TypeError, RuntimeError) as error:  # an object numpy cannot read as numbers
        raise SettingError("frames", frames, f"cannot be read as an array ({error})", VIDEO,
                           "the frames of a VideoResult (result.frames), or a numpy array or torch tensor") from None
    if frames.dtype.kind not in "uif":
        raise _refuse(frames, "does not hold numbers", "the frames of a VideoResult (result.frames)")
    if frames.ndim >= 1 and frames.shape[0] == 0:
        raise _refuse(frames, "has no frames", "frames from t2v.generate with frames=16 or any number from 1")
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise _refuse(frames, *_shape_advice(frames))
    if 0 in frames.shape[1:3]:
        raise _refuse(frames, "has a height or width of 0", "frames at least 1 pixel high and wide")
    if frames.shape[-1] == 1:  # grayscale: the same value in red, green and blue
        frames = frames.repeat(3, axis=-1)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype.kind == "f":
        if not np.isfinite(frames).all():
            raise _refuse(frames, "holds NaN (not a number) or infinite values, so the generation went wrong",
                          "generating again in float32: t2v.load_pipeline(..., dtype=torch.float32)")
        low, high = float(frames.min()), float(frames.max())
        if low < -0.5 or high > 1.5:
            raise _refuse(frames, f"holds floats from {low:g} to {high:g}, but float frames are read as 0 (black) to 1 (white)",
                          "frames / 255 if these are values from 0 to 255")
        return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    low, high = int(frames.min()), int(frames.max())
    if low < 0 or high > 255:
        raise _refuse(frames, f"holds whole numbers from {low} to {high}, outside 0 to 255", "values scaled to 0 to 255")
    return frames.astype(np.uint8)


def _mp4_writer(frames, fps, name):
    """A `write(path)` that encodes uint8 `frames` as H.264 / yuv420p into `path` with ffmpeg."""
    import imageio_ffmpeg

    count, height, width = frames.shape[:3]
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(Fraction(fps).limit_denominator()), "-i", "-",
        "-an", "-vcodec", "libx264",
        "-pix_fmt", "yuv420p",  # the pixel format every browser decodes
        "-vf", f"scale={width + width % 2}:{height + height % 2}",  # yuv420p needs even sizes; nothing beyond that
        "-movflags", "+faststart",  # playable before fully downloaded
    ]

    def write(path):
        with tempfile.TemporaryFile() as log:
            process = None
            try:
                with signals_held():  # Ctrl-C in here would leave ffmpeg running with nothing to stop it
                    process = subprocess.Popen([*command, str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                try:
                    for frame in frames:
                        process.stdin.write(np.ascontiguousarray(frame).tobytes())
                except OSError:
                    pass  # ffmpeg stopped reading: killed, crashed, or out of disk space; its status says so
                finally:
                    try:
                        process.stdin.close()
                    except OSError:
                        pass
                status = process.wait()
            finally:
                if process is not None:
                    if process.poll() is None:
                        process.kill()
                    process.wait()  # an ended ffmpeg cannot re-create the file after it is removed
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
        if status != 0:
            reason = lines[-1] if lines else f"exit status {status}"
            raise VideoExportError(
                f"ffmpeg stopped while writing {name} ({reason}), so nothing was saved under that name. "
                "Check the free disk space (df -h) and memory, then save again; earlier files are untouched."
            )
        # A killed ffmpeg or a full disk can still leave a short file with exit status 0: count the frames.
        try:
            written, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        except (RuntimeError, OSError) as error:
            written, why = 0, str(error).strip().splitlines()[-1]
        else:
            why = f"it holds {written} of {count} frames"
        if written != count:
            raise VideoExportError(
                f"ffmpeg did not write a complete video ({why}), so nothing was saved as {name}. "
                "Check the free disk space (df -h) and save again; earlier files are untouched."
            )

    return write


def _gif_writer(frames, fps):
    from PIL import Image

    def write(path):
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=1000 / fps, loop=0)

    return write


def _png_writer(frames):
    from PIL import Image

    def write(path):
        Path(path).mkdir()  # not mkdtemp, which would make the folder private to you
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(Path(path) / f"frame_{i:03d}.png")

    return write


def _publish_one(path, write):
    path = Path(path)
    check_output_dir(path.parent, name="folder of path")
    return publish(path.parent, path.stem, {path.suffix: write}, next_free=False)[path.suffix]


def write_mp4(frames, path, fps=MODEL_FPS):
    """Write an H.264 / yuv420p MP4 that browsers play; refuses to replace a file. Notebook 04."""
    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    return _publish_one(path, _mp4_writer(to_uint8(frames), fps, Path(path).name))


def write_gif(frames, path, fps=MODEL_FPS):
    """Write a looping GIF; refuses to replace a file. Notebook 04."""
    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    return _publish_one(path, _gif_writer(to_uint8(frames), fps))


def write_png_frames(frames, folder):
    """Write each frame as frame_000.png, ... into a new folder; refuses to replace one. Notebook 04."""
    folder = Path(folder)
    check_output_dir(folder.parent, name="parent of folder", create=True)
    # The folder is filled under a hidden name, then renamed: an interrupted write leaves no half-filled folder.
    return publish(folder.parent, folder.name, {"": _png_writer(to_uint8(frames))}, next_free=False)[""]


def slug(text, max_length=40):
    """A file-name-safe stem from a prompt: lowercase words joined by '-'. Notebook 04."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:max_length].strip("-") or "video"


@dataclass
class SavedVideo:
    """The files written for one video. Notebook 04."""

    mp4: Path
    sidecar: Path
    gif: Path | None = None
    frames_dir: Path | None = None


def save_video(result, out_dir="outputs", *, fps=None, gif=False, png_frames=False, own_folder=False):
    """Save a `VideoResult` as MP4 (plus GIF, PNG frames) and a JSON sidecar in `out_dir`. Notebook 04.

    File names come from the prompt and seed; an existing file is never overwritten,
    a free name such as `...-2.mp4` is used instead. `fps` defaults to the rate of the
    model that made it (`result.settings["fps"]`: 8 for ModelScope, 16 for Wan).
    `out_dir` may start with `~` (your home folder) and may be a link you made (it is
    followed: your choice). With `own_folder=True` (the batch's `line-007` folders) its last
    part is a folder the helpers make and use themselves: a link there is refused, never followed.
    """
    if fps is None:
        fps = result.settings.get("fps", MODEL_FPS) if isinstance(result.settings, dict) else MODEL_FPS
    info = {"prompt": result.prompt, "seed": result.seed, "settings": result.settings, "elapsed_s": round(result.elapsed_s, 3)}
    return save_frames(result.frames, out_dir, f"{slug(result.prompt)}-seed{result.seed}", info, fps=fps, gif=gif, png_frames=png_frames,
                       own_folder=own_folder)


def save_frames(frames, out_dir, stem, info, *, fps=MODEL_FPS, gif=False, png_frames=False, own_folder=False):
    """Write `frames` as `stem`.mp4 (plus GIF, PNG frames) beside `stem`.json holding `info`. Notebook 04.

    All files are written under hidden names first and published together, sidecar last.
    A taken name (also one taken meanwhile by another process) moves them all to `-2`,
    `-3`, ...; if any file fails, none is kept, so no video is left without its sidecar.
    """
    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    frames = to_uint8(frames)
    if not own_folder:  # an own folder is checked by publish: made without following a link, and refused if one is there
        out_dir = check_output_dir(out_dir, create=True)
    writers = {".mp4": _mp4_writer(frames, fps, f"{stem}.mp4")}
    if gif:
        writers[".gif"] = _gif_writer(frames, fps)
    if png_frames:
        writers["_frames"] = _png_writer(frames)
    keys = {".mp4": "mp4", ".gif": "gif", "_frames": "frames_dir"}

    def sidecar(paths):
        text = {
            **info,
            "fps": fps,
            "frame_count": len(frames),
            "files": {keys[suffix]: path.name for suffix, path in paths.items() if suffix in keys},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
        }
        if isinstance(info.get("settings"), dict) and _is_tiny(info["settings"].get("model")):
            text["note"] = "made with the tiny random-weight model: the video is noise"
        return json_text(text)

    paths = publish(out_dir, stem, writers, last=(".json", sidecar), own=own_folder)
    return SavedVideo(mp4=paths[".mp4"], sidecar=paths[".json"], gif=paths.get(".gif"), frames_dir=paths.get("_frames"))


def sidecar_prompt(video):
    """(prompt, None) from the JSON sidecar beside the file `video` (clip.mp4: clip.json), or (None, why not). Notebook 10.

    Only a plain file of at most MAX_SIDECAR_BYTES is read, opened without waiting (a FIFO named
    like a sidecar would block forever). `why` completes "the video ...": it names the real cause,
    such as "has a sidecar clip.json that is not UTF-8 text (...)".
    """
    sidecar = Path(video).expanduser().with_suffix(".json")
    has = f"has a sidecar {sidecar.name} that"
    try:
        handle = os.open(sidecar, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, f"has no sidecar ({sidecar.name} does not exist)"
    except OSError as error:
        return None, f"{has} cannot be read ({error.strerror or error})"
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            return None, f"{has} is not a plain file but {file_kind(mode)}"
        data = os.read(handle, MAX_SIDECAR_BYTES + 1)
        while len(data) <= MAX_SIDECAR_BYTES and (more := os.read(handle, MAX_SIDECAR_BYTES + 1 - len(data))):
            data += more
    except OSError as error:
        return None, f"{has} cannot be read ({error.strerror or error})"
    finally:
        os.close(handle)
    if len(data) > MAX_SIDECAR_BYTES:
        return None, f"{has} is larger than {MAX_SIDECAR_BYTES // 1000} kB, too large to be one"
    try:
        info = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        return None, f"{has} is not UTF-8 text ({error.reason} at byte {error.start})"
    except RecursionError:
        return None, f"{has} nests too deep to read"
    except ValueError as error:
        return None, f"{has} is not JSON ({getattr(error, 'msg', error)}, line {getattr(error, 'lineno', '?')})"
    prompt = info.get("prompt") if isinstance(info, dict) else None
    if prompt is None:
        return None, f"{has} holds no prompt"
    if not isinstance(prompt, str):
        return None, f"has a sidecar {sidecar.name} whose prompt is not text ({shorten(prompt, 40)})"
    return prompt, None


def _is_tiny(name):
    model = find_model(name)
    return model is not None and model.tiny


def show_video(path, width=None):
    """Show a video inline as an HTML5 player (JupyterLab, VS Code, Colab). Notebook 04."""
    from IPython.display import Video

    return Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted playsinline")
