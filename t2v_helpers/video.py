"""Write videos (H.264 MP4, GIF, PNG frames) with a JSON sidecar, never overwriting; show them inline. Notebook 04."""

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .environment import library_versions

MODEL_FPS = 8  # ModelScope's model was trained on 8 frames per second


def to_uint8(frames):
    """Frames as uint8 RGB (frames, height, width, 3), from floats in 0..1 or uint8. Notebook 04."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def _publish(write, path):
    """Run `write(tmp)` on a temporary file beside `path`, then give it `path` only if that name is free.

    A crash leaves no half-written file under `path`, and an existing file is never replaced.
    """
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.link(tmp, path)  # fails with FileExistsError instead of replacing
    finally:
        os.unlink(tmp)
    return path


def write_mp4(frames, path, fps=MODEL_FPS):
    """Write an H.264 / yuv420p MP4 that browsers play; refuses to replace a file. Notebook 04."""
    import imageio_ffmpeg

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
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    return _publish(write, path)


def write_gif(frames, path, fps=MODEL_FPS):
    """Write a looping GIF; refuses to replace a file. Notebook 04."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in to_uint8(frames)]

    def write(tmp):
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 / fps, loop=0)

    return _publish(write, path)


def write_png_frames(frames, folder):
    """Write each frame as frame_000.png, ... into a new folder. Notebook 04."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True)  # fails if it exists: never mix two videos' frames
    for i, frame in enumerate(to_uint8(frames)):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = free_stem(out_dir, f"{slug(result.prompt)}-seed{result.seed}", (".mp4", ".json", ".gif", "_frames"))
    saved = SavedVideo(mp4=write_mp4(result.frames, out_dir / f"{stem}.mp4", fps), sidecar=out_dir / f"{stem}.json")
    if gif:
        saved.gif = write_gif(result.frames, out_dir / f"{stem}.gif", fps)
    if png_frames:
        saved.frames_dir = write_png_frames(result.frames, out_dir / f"{stem}_frames")
    sidecar = {
        "prompt": result.prompt,
        "seed": result.seed,
        "settings": result.settings,
        "fps": fps,
        "frame_count": len(result.frames),
        "elapsed_s": round(result.elapsed_s, 3),
        "files": {k: Path(v).name for k, v in vars(saved).items() if v and k != "sidecar"},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }
    if result.settings.get("model") == "tiny":
        sidecar["note"] = "made with the tiny random-weight model: the video is noise"
    _publish(lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2)), saved.sidecar)
    return saved


def show_video(path, width=None):
    """Show a video inline as an HTML5 player (JupyterLab, VS Code, Colab). Notebook 04."""
    from IPython.display import Video

    return Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted playsinline")
