"""Write videos (H.264 MP4, GIF, PNG frames) with a JSON sidecar, never overwriting; show them inline. Notebook 04."""

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .environment import library_versions
from .errors import VideoExportError
from .validate import check_fps, check_output_dir

MODEL_FPS = 8  # ModelScope's model was trained on 8 frames per second


def to_uint8(frames):
    """Frames as uint8 RGB (frames, height, width, 3), from floats in 0..1 or uint8. Notebook 04."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(write, path):
    """Run `write(tmp)` on a temporary file beside `path`, then give it `path` only if that name is free.

    A crash leaves no half-written file under `path`, and an existing file is never replaced.
    """
    path = Path(path)
    check_output_dir(path.parent, name="folder of path")
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give the usual permissions
        os.link(tmp, path)  # fails with FileExistsError instead of replacing
    finally:
        os.unlink(tmp)
    return path


def write_mp4(frames, path, fps=MODEL_FPS):
    """Write an H.264 / yuv420p MP4 that browsers play; refuses to replace a file. Notebook 04."""
    import imageio_ffmpeg

    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    frames = to_uint8(frames)
    height, width = frames.shape[1:3]

    def write(tmp):
        writer = imageio_ffmpeg.write_frames(
            tmp,
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",  # the pixel format every browser decodes
            macro_block_size=2,  # yuv420p needs even sizes; don't rescale beyond that
            output_params=["-movflags", "+faststart"],  # playable before fully downloaded
            ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        except OSError as error:  # ffmpeg stopped reading: killed, crashed, or out of disk space
            reason = (str(error).strip() or "I/O error").splitlines()[0]
            raise VideoExportError(
                f"ffmpeg stopped while writing {path.name} ({reason}), so nothing was saved under that name. "
                "Check the free disk space (df -h) and memory, then save again; earlier files are untouched."
            ) from None
        finally:
            writer.close()  # stops ffmpeg also when sending failed or was interrupted
        # imageio-ffmpeg ignores ffmpeg's exit status, so a killed ffmpeg or a full disk
        # can leave a short file: count what was written before giving it the final name.
        try:
            written, _ = imageio_ffmpeg.count_frames_and_secs(tmp)
        except (RuntimeError, OSError) as error:
            written, why = 0, str(error).strip().splitlines()[-1]
        else:
            why = f"it holds {written} of {len(frames)} frames"
        if written != len(frames):
            raise VideoExportError(
                f"ffmpeg did not write a complete video ({why}), so nothing was saved as {path.name}. "
                "Check the free disk space (df -h) and save again; earlier files are untouched."
            )

    return _publish(write, path)


def write_gif(frames, path, fps=MODEL_FPS):
    """Write a looping GIF; refuses to replace a file. Notebook 04."""
    from PIL import Image

    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    images = [Image.fromarray(frame) for frame in to_uint8(frames)]

    def write(tmp):
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 / fps, loop=0)

    return _publish(write, path)


def write_png_frames(frames, folder):
    """Write each frame as frame_000.png, ... into a new folder. Notebook 04."""
    from PIL import Image

    folder = Path(folder)
    if folder.exists():  # never mix two videos' frames
        raise FileExistsError(f"{folder} already exists; choose a new folder name.")
    check_output_dir(folder.parent, name="parent of folder", create=True)
    # Fill a hidden folder beside it, then rename: an interrupted write leaves no half-filled folder.
    staging = folder.parent / f".{folder.name}-{secrets.token_hex(4)}"
    staging.mkdir()  # not mkdtemp, which would make the folder private to you
    try:
        for i, frame in enumerate(to_uint8(frames)):
            Image.fromarray(frame).save(staging / f"frame_{i:03d}.png")
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def slug(text, max_length=40):
    """A file-name-safe stem from a prompt: lowercase words joined by '-'. Notebook 04."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:max_length].strip("-") or "video"


def free_stem(folder, stem, suffixes):
    """`stem`, or `stem-2`, `stem-3`, ... : the first for which no file with any suffix exists. Notebook 04."""
    folder = Path(folder)
    candidate, n = stem, 1
    while any((folder / (candidate + s)).exists() for s in suffixes):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


@dataclass
class SavedVideo:
    """The files written for one video. Notebook 04."""

    mp4: Path
    sidecar: Path
    gif: Path | None = None
    frames_dir: Path | None = None


def save_video(result, out_dir="outputs", *, fps=MODEL_FPS, gif=False, png_frames=False):
    """Save a `VideoResult` as MP4 (plus GIF, PNG frames) and a JSON sidecar in `out_dir`. Notebook 04.

    File names come from the prompt and seed; an existing file is never overwritten,
    a free name such as `...-2.mp4` is used instead.
    """
    info = {"prompt": result.prompt, "seed": result.seed, "settings": result.settings, "elapsed_s": round(result.elapsed_s, 3)}
    return save_frames(result.frames, out_dir, f"{slug(result.prompt)}-seed{result.seed}", info, fps=fps, gif=gif, png_frames=png_frames)


def save_frames(frames, out_dir, stem, info, *, fps=MODEL_FPS, gif=False, png_frames=False):
    """Write `frames` as `stem`.mp4 (plus GIF, PNG frames) beside `stem`.json holding `info`. Notebook 04.

    A taken name gets `-2`, `-3`, ...; if any file fails, this call's other new files are
    removed again, so no video is left without its sidecar and nothing earlier is touched.
    """
    fps = check_fps(fps)  # a plain float from here: numpy and Fraction values fail in json and imageio
    out_dir = check_output_dir(out_dir, create=True)
    stem = free_stem(out_dir, stem, (".mp4", ".json", ".gif", "_frames"))
    saved = SavedVideo(mp4=None, sidecar=out_dir / f"{stem}.json")
    try:
        saved.mp4 = write_mp4(frames, out_dir / f"{stem}.mp4", fps)
        if gif:
            saved.gif = write_gif(frames, out_dir / f"{stem}.gif", fps)
        if png_frames:
            saved.frames_dir = write_png_frames(frames, out_dir / f"{stem}_frames")
        sidecar = {
            **info,
            "fps": fps,
            "frame_count": len(frames),
            "files": {k: Path(v).name for k, v in vars(saved).items() if v and k != "sidecar"},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
        }
        if info.get("settings", {}).get("model") == "tiny":
            sidecar["note"] = "made with the tiny random-weight model: the video is noise"
        _publish(lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2)), saved.sidecar)
    except BaseException:
        for path in (saved.mp4, saved.gif):
            if path:
                path.unlink(missing_ok=True)
        if saved.frames_dir:
            shutil.rmtree(saved.frames_dir, ignore_errors=True)
        raise
    return saved


def show_video(path, width=None):
    """Show a video inline as an HTML5 player (JupyterLab, VS Code, Colab). Notebook 04."""
    from IPython.display import Video

    return Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted playsinline")
