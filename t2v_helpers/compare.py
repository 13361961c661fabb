"""Compare schedulers side by side: one prompt and seed, a titled grid video and a table of costs. Notebook 03."""

import math
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import SettingError
from .families import denoiser, family_named, family_of, model_of
from .generate import generate
from .fast import switch_scheduler, undo_fast
from .schedulers import check_scheduler_name
from .validate import MAX_SEED, MAX_STEPS, check_seed, check_whole_number
from .video import MODEL_FPS, save_frames, slug, to_uint8

# (scheduler, steps) starting points to compare for ModelScope: the model's DDIM at diffusers'
# default 50 steps, the article's DPMSolverMultistep at 25, and faster or costlier alternatives.
DEFAULT_RUNS = (("ddim", 50), ("dpm", 25), ("dpm++2m-karras", 20), ("unipc", 10), ("euler-a", 25), ("heun", 15))

TABLE_COLUMNS = {
    "scheduler": "scheduler",
    "steps": "steps",
    "unet_calls": "UNet calls",
    "unet_batch": "batch per call",
    "wall_s": "wall time (s)",
    "s_per_step": "s per step",
}


class UNetCounter:
    """Counts the denoiser's forward calls (UNet or transformer) and times the denoising loop, from hooks on the real calls. Notebook 03."""

    def __init__(self):
        self.calls = 0
        self.batch = 0  # rows per call: 2 with classifier-free guidance (prompt and negative prompt together)
        self.first_call = self.last_step = None

    def _pre_hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        if self.first_call is None:
            _sync(sample)
            self.first_call = time.perf_counter()
        self.calls += 1
        self.batch = max(self.batch, sample.shape[0])

    def on_step(self, step, steps, latents):
        """Pass as `generate(..., on_step=counter.on_step)` to time the denoising loop. Notebook 03."""
        _sync(latents)
        self.last_step = time.perf_counter()

    @property
    def denoise_s(self):
        """Seconds from the first UNet call to the end of the last step, or None if no step ran. Notebook 03."""
        if self.first_call is None or self.last_step is None:
            return None
        return self.last_step - self.first_call


def _sync(tensor):
    # GPU work runs asynchronously: wait for it, or the clock stops too early.
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


@contextmanager
def count_unet_calls(pipe):
    """Count every call of the pipeline's denoiser (`pipe.unet`, or `pipe.transformer`) inside the `with` block; yields a UNetCounter. Notebook 03."""
    counter = UNetCounter()
    handle = denoiser(pipe).register_forward_pre_hook(counter._pre_hook, with_kwargs=True)
    try:
        yield counter
    finally:
        handle.remove()


@dataclass
class Comparison:
    """The videos, the grid and the table of one `compare_schedulers` call. Notebook 03."""

    prompt: str
    seed: int
    results: list  # one VideoResult per run, in order
    rows: list  # one dict per run: the table
    titles: list
    grid: np.ndarray  # (frames, height, width, 3) uint8: all videos tiled, playing in sync
    settings: dict = field(default_factory=dict)


def default_runs(pipe):
    """The runs `compare_schedulers` makes by default: DEFAULT_RUNS, or each of the family's schedulers at its steps. Notebook 03."""
    family = family_of(pipe)
    if all(name in family.schedulers for name, _ in DEFAULT_RUNS):
        return list(DEFAULT_RUNS)
    return [(name, family.steps) for name in family.schedulers]


def check_runs(runs, pipe=None):
    """Return `runs` as a list of (registered scheduler name, steps), or raise SettingError. Notebook 03.

    The names are those of the pipeline's family (ModelScope's without `pipe`).
    """
    family = family_of(pipe) if pipe is not None else family_named("modelscope")
    example = f"runs={[(name, family.steps) for name in list(family.schedulers)[:2]]}"
    if isinstance(runs, (str, bytes)) or not hasattr(runs, "__iter__"):
        raise SettingError("runs", runs, "is not a list", "a list of (scheduler, steps) pairs", example)
    checked = []
    for run in runs:
        if not isinstance(run, (tuple, list)) or len(run) != 2:
            raise SettingError("runs", run, "is not a (scheduler, steps) pair", "pairs such as ('dpm', 25)", example)
        checked.append((check_scheduler_name(run[0], family), check_whole_number("steps", run[1], 1, MAX_STEPS, family.steps)))
    if not checked:
        raise SettingError("runs", runs, "is empty", "at least one (scheduler, steps) pair", example)
    return checked


def compare_schedulers(pipe, prompt, runs=None, *, negative_prompt=None, frames=None, height=None, width=None, guidance=None,
                       seed=0, warmup=True, columns=None):
    """Make `prompt` with the same seed under each (scheduler, steps) in `runs`: grid video and table. Notebook 03.

    `runs` defaults to `default_runs(pipe)`; frames, height, width and guidance to the
    model's own. UNet (or transformer) calls are counted from the real calls and the time
    per step is measured over the denoising loop alone. `warmup` first runs one unrecorded
    step, so the first run does not pay one-off start-up costs. Schedulers are set with
    `switch_scheduler` (notebook 08), so an 'lcm' run has the MCM LoRA merged and the others do
    not. The pipeline's scheduler, and its LoRA merged or not, are put back afterwards.
    """
    runs = check_runs(default_runs(pipe) if runs is None else runs, pipe)
    seed = check_seed(seed)
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed  # one seed for every run
    frames = model_of(pipe).frames if frames is None else frames
    guidance = family_of(pipe).guidance if guidance is None else guidance
    settings = dict(negative_prompt=negative_prompt, frames=frames, height=height, width=width, guidance=guidance, seed=seed)
    original, original_fast = pipe.scheduler, getattr(pipe, "t2v_fast", None)
    results, rows = [], []
    try:
        if warmup:
            generate(pipe, prompt, steps=1, **settings)
        for name, steps in runs:
            # switch_scheduler, as the studio and the command line: 'lcm' runs only with the MCM LoRA merged, any other without.
            switch_scheduler(pipe, name, **_fast_options(original_fast))
            with count_unet_calls(pipe) as counter:
                result = generate(pipe, prompt, steps=steps, on_step=counter.on_step, **settings)
            results.append(result)
            rows.append(
                dict(
                    scheduler=name,
                    steps=steps,
                    unet_calls=counter.calls,
                    unet_batch=counter.batch,
                    wall_s=round(result.elapsed_s, 3),
                    s_per_step=round(counter.denoise_s / steps, 4),
                )
            )
    finally:
        _put_back_scheduler(pipe, original, original_fast)
    titles = [f"{row['scheduler']}\n{row['steps']} steps" for row in rows]
    grid = tile_videos([r.frames for r in results], titles, columns=columns)
    shared = {k: v for k, v in results[0].settings.items() if k not in ("steps", "scheduler")}
    shared.setdefault("fps", family_of(pipe).fps)
    return Comparison(prompt, seed, results, rows, titles, grid, shared)


def _fast_options(mode):
    # The LoRA a few-step pipeline already had, so that its 'lcm' runs use the same one.
    return dict(style=mode.style, source=mode.source, allow_pickle=mode.allow_pickle) if mode else {}


def _put_back_scheduler(pipe, original, original_fast):
    """Leave the pipeline as compare_schedulers found it: the same scheduler, and its LoRA merged or not."""
    fast = getattr(pipe, "t2v_fast", None)
    if original_fast and fast is not original_fast:
        switch_scheduler(pipe, "lcm", **_fast_options(original_fast))
        pipe.t2v_fast.previous_scheduler = original_fast.previous_scheduler
    elif not original_fast and fast:
        undo_fast(pipe, verbose=False)
    pipe.scheduler = original


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def tile_videos(videos, titles, *, columns=None, min_tile_width=160, gap=4):
    """Tile same-length videos into one grid video, each tile titled above; returns uint8 frames. Notebook 03.

    Every tile shows frame i of its video in frame i of the grid, so the tiles play in
    sync. Tiles narrower than `min_tile_width` are enlarged by a whole factor (nearest
    neighbour, so no pixel is invented) to leave room for the titles.
    """
    from PIL import Image, ImageDraw

    videos = [np.asarray(v) for v in videos]
    titles = [str(t) for t in titles]
    if not videos:
        raise SettingError("videos", videos, "is empty", "one or more videos", "passing the frames of at least one video")
    if len(videos) != len(titles):
        raise SettingError(
            "titles", titles, f"has {len(titles)} titles for {len(videos)} videos",
            "one title per video", "passing one title for each video",
        )
    for video in videos:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise SettingError(
                "videos", f"an array of shape {video.shape}", "is not a video",
                "arrays of shape (frames, height, width, 3)", "passing `result.frames` of a VideoResult",
            )
    videos = [to_uint8(v) for v in videos]  # after the shape check, whose message names `videos`
    shapes = sorted({v.shape for v in videos})
    if len(shapes) > 1:
        raise SettingError(
            "videos", [s[:3] for s in shapes], "have different (frames, height, width)",
            "videos made with the same frames, height and width, so the tiles play in sync",
            "making every video with the same frames=, height= and width=",
        )
    count, height, width, _ = shapes[0]
    scale = max(1, math.ceil(min_tile_width / width))
    height, width = height * scale, width * scale
    if columns is None:
        columns = len(videos) if len(videos) <= 4 else math.ceil(math.sqrt(len(videos)))
    columns = check_whole_number("columns", columns, 1, len(videos), len(videos))
    rows = math.ceil(len(videos) / columns)
    font = _font(max(11, width // 16))
    line = font.getbbox("Ag")[3] + 2
    band = line * max(t.count("\n") + 1 for t in titles) + 4
    band += band % 2  # H.264 (yuv420p) needs even sizes
    cell_h, cell_w = band + height + gap, width + gap
    grid = np.full((count, rows * cell_h + gap, columns * cell_w + gap, 3), 255, np.uint8)
    for i, (video, title) in enumerate(zip(videos, titles)):
        top, left = (i // columns) * cell_h + gap, (i % columns) * cell_w + gap
        label = Image.new("RGB", (width, band), "white")
        ImageDraw.Draw(label).multiline_text((3, 2), title, fill="black", font=font, spacing=2)
        grid[:, top : top + band, left : left + width] = np.asarray(label)
        grid[:, top + band : top + band + height, left : left + width] = video.repeat(scale, 1).repeat(scale, 2)
    return grid


def format_table(rows, columns=TABLE_COLUMNS):
    """The comparison table as Markdown text, one line per run. Notebook 03."""
    def cell(value):
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[key]) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def show_table(rows):
    """Show the comparison table in a notebook (rendered Markdown; no pandas needed). Notebook 03."""
    from IPython.display import Markdown

    return Markdown(format_table(rows))


def save_grid(grid, out_dir="outputs", *, name, info=None, fps=None, gif=True):
    """Write a grid video as MP4 (and GIF) beside a JSON sidecar holding `info`; never overwrites. Notebook 03.

    `fps` defaults to `info`'s settings' fps, else ModelScope's 8. Files are named `name.mp4`, `name.gif`, `name.json`, or `name-2...` when taken.
    """
    info = dict(info or {})
    if fps is None:
        settings = info.get("settings")
        fps = settings.get("fps", MODEL_FPS) if isinstance(settings, dict) else MODEL_FPS
    return save_frames(grid, out_dir, slug(name, max_length=80), info, fps=fps, gif=gif)


def save_comparison(comparison, out_dir="outputs", *, fps=None, gif=True):
    """Write a comparison's grid as MP4 (and GIF) with a sidecar holding the table; never overwrites. Notebook 03.

    `fps` defaults to the model family's (in `comparison.settings`).
    """
    info = {
        "prompt": comparison.prompt,
        "seed": comparison.seed,
        "settings": comparison.settings,
        "runs": comparison.rows,
        "tiles": "left to right, then top to bottom, in the order of runs",
    }
    return save_grid(comparison.grid, out_dir, name=f"{comparison.prompt}-seed{comparison.seed}-schedulers", info=info, fps=fps, gif=gif)
