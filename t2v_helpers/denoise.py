"""Watch the video emerge from noise: keep every denoising step, preview it fast or decode it exactly. Notebook 06."""

import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .errors import SettingError
from .families import denoiser, family_of
from .generate import VideoResult, generate
from .validate import check_choice, check_whole_number

# What each of the 4 latent channels adds to red, green and blue: a linear approximation of
# the decoder of the Stable Diffusion VAE, which ModelScope uses; fitted for SD 1.4 by
# keturn and used by the common preview tools:
# https://discuss.huggingface.co/t/decoding-latents-to-rgb-without-upscaling/23204/2
# Latents of other channel counts (the 16 of Wan's and CogVideoX's VAEs) get the generic
# preview, `principal_rgb`.
LATENT_TO_RGB = torch.tensor(
    [
        #  R       G       B
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)
VIEWS = ("predicted", "latents")


@dataclass
class Denoising:
    """One generation with every step kept: one video's latents in the pipeline's own layout, on the CPU. Notebook 06.

    ModelScope's are (4, frames, height/8, width/8); Wan's (16, latent frames, h, w);
    CogVideoX's (latent frames, 16, h, w).
    """

    result: VideoResult  # the final video, exactly as `generate` makes it
    latents: list  # after each step: the noisy latents the scheduler hands to the next step
    predicted: list  # at each step: the model's estimate of the clean latents
    timesteps: list  # at each step: the timestep it starts at (its first UNet call)
    unet_calls: int  # calls of the denoiser: the UNet, or the transformer of Wan and CogVideoX

    @property
    def steps(self):
        """How many steps were kept (one per denoising step). Notebook 06."""
        return len(self.latents)


def predicted_clean(scheduler, sample, model_output, timestep):
    """The clean latents the model's output implies for its input `sample` at `timestep`. Notebook 06.

    A UNet of ModelScope was trained on sample = sqrt(a) * clean + sqrt(1 - a) * noise, where
    `a` is the scheduler's `alphas_cumprod` at the timestep; solving for `clean` gives this
    estimate (CogVideoX's v-prediction too). Flow-matching schedulers (Wan's) mix
    sample = (1 - sigma) * clean + sigma * noise and the model predicts the velocity
    noise - clean, so clean = sample - sigma * velocity, with the scheduler's own sigma.
    """
    kind = getattr(scheduler.config, "prediction_type", None)
    if kind == "flow_prediction" or not hasattr(scheduler, "alphas_cumprod"):
        return sample - _flow_sigma(scheduler, timestep) * model_output
    alphas = scheduler.alphas_cumprod.double().cpu().numpy()
    a = float(np.interp(timestep, np.arange(len(alphas)), alphas))  # some schedulers use fractional timesteps
    if kind == "epsilon":
        return (sample - (1 - a) ** 0.5 * model_output) / a**0.5
    if kind == "v_prediction":
        return a**0.5 * sample - (1 - a) ** 0.5 * model_output
    return model_output  # "sample": the model predicts the clean latents itself


def _flow_sigma(scheduler, timestep):
    # A flow scheduler's timesteps are its sigmas times 1000, sometimes rounded down to whole
    # numbers: the exact sigma is the one at the nearest of its timesteps.
    timesteps = torch.as_tensor(scheduler.timesteps).double().cpu()
    return float(scheduler.sigmas[int(torch.argmin((timesteps - timestep).abs()))])


def _denoiser_input(args, kwargs):
    # ModelScope's UNet takes (sample, timestep, ...); transformers take hidden_states=, timestep=.
    sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
    timestep = args[1] if len(args) > 1 else kwargs["timestep"]
    return sample, float(torch.as_tensor(timestep).flatten()[0])


def capture_denoising(pipe, prompt, *, guidance=None, **settings):
    """Run `generate` and keep the latents and the predicted clean latents of every step. Notebook 06.

    Takes the same settings as `generate` (`guidance` defaults to the family's). It only
    reads: hooks copy the denoiser's input and the guided output the scheduler steps with,
    and the step callback copies the latents, so the final video is the one `generate`
    makes with the same seed and settings.
    """
    guidance = family_of(pipe).guidance if guidance is None else guidance
    latents, predicted, timesteps, last = [], [], [], {}
    calls = 0

    def before_model(module, args, kwargs):
        nonlocal calls
        calls += 1
        sample, t = _denoiser_input(args, kwargs)
        # A step may call the model more than once (Heun twice, PNDM's first step several
        # times, Wan once with the prompt and once without): its label is where it starts,
        # its prediction the latest one. Every row of the batch holds the same latents.
        last.setdefault("start", t)
        last["input"], last["t"] = sample[:1].detach().float(), t

    def after_model(module, args, kwargs, output):
        last["output"] = (output[0] if isinstance(output, tuple) else getattr(output, "sample", output)).detach().float()

    original_step = pipe.scheduler.step

    @functools.wraps(original_step)  # the pipeline reads step's signature to decide which arguments to pass
    def step(*args, **kwargs):
        guided = (args[0] if args else kwargs["model_output"]).detach().float()
        sample = last["input"]
        if guided.shape != sample.shape:
            # ModelScope's pipeline hands the scheduler frames folded into the batch, so take
            # the model's own output and apply guidance as the pipeline does: one batch of [negative, prompt].
            guided = last["output"]
            if guidance > 1:
                negative, positive = guided.chunk(2)
                guided = negative + guidance * (positive - negative)
        last["clean"] = predicted_clean(pipe.scheduler, sample, guided, last["t"])[0].cpu()
        return original_step(*args, **kwargs)

    def on_step(step_number, steps, step_latents):
        # Count steps here: PNDM's first model call comes before its first callback.
        latents.append(step_latents[0].detach().float().cpu().clone())
        predicted.append(last["clean"])
        timesteps.append(last.pop("start"))

    with _watching(pipe, before_model, after_model, step):
        result = generate(pipe, prompt, guidance=guidance, on_step=on_step, **settings)
    return Denoising(result, latents, predicted, timesteps, calls)


@contextmanager
def _watching(pipe, before_model, after_model, step):
    """Inside the block: hooks around every denoiser call, and `step` in place of the scheduler's own."""
    model = denoiser(pipe)
    handles = [
        model.register_forward_pre_hook(before_model, with_kwargs=True),
        model.register_forward_hook(after_model, with_kwargs=True),
    ]
    pipe.scheduler.step = step
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        if pipe.scheduler.step is step:
            del pipe.scheduler.step  # the class's own method shows through again


def _channels(pipe):
    """How many channels the pipeline's latents have, and on which axis of one video's latents."""
    return (4, 0) if pipe is None else (denoiser(pipe).config.out_channels, None)


def _one_video(latents, pipe=None):
    """One video's latents from those or from the pipeline's batch of one, and the axis of their channels."""
    channels, axis = _channels(pipe)
    if latents.ndim == 5 and latents.shape[0] == 1:
        latents = latents[0]
    if axis is None and latents.ndim == 4:
        # (channels, frames, h, w) as ModelScope and Wan keep them, else (frames, channels, h, w) as CogVideoX does
        axis = 0 if latents.shape[0] == channels else 1
    if latents.ndim != 4 or latents.shape[axis] != channels:
        layout = "height/8, width/8" if pipe is None else "h, w"
        raise SettingError(
            "latents", f"a tensor of shape {tuple(latents.shape)}", "is not one video's latents",
            f"shape ({channels}, frames, {layout})" + ("" if pipe is None else f" or (frames, {channels}, {layout})"),
            "an entry of `denoising.latents` or `denoising.predicted`",
        )
    return latents, axis


def principal_rgb(latents, pipe=None):
    """A generic preview's colours for latents of any VAE: their three main directions as red, green and blue. Notebook 06.

    Returns (matrix of shape (channels, 3), offset of shape (channels,)) for `preview_latents(..., rgb=)`.
    The directions are the principal components of the channels over every latent pixel; each
    is scaled so that most values fall in -1..1 and signed so that its largest weight is
    positive, so the colours are arbitrary but the same for every step previewed with them.
    """
    video, axis = _one_video(latents, pipe)
    pixels = video.movedim(axis, -1).reshape(-1, video.shape[axis]).double().cpu()
    offset = pixels.mean(0)
    _, _, directions = torch.linalg.svd(pixels - offset, full_matrices=False)
    matrix = directions[:3].T  # (channels, up to 3)
    matrix = matrix * torch.where(matrix.gather(0, matrix.abs().argmax(0, keepdim=True)) < 0, -1.0, 1.0)
    spread = ((pixels - offset) @ matrix).std(0).clamp_min(1e-12)
    matrix = matrix / (2 * spread)
    matrix = torch.nn.functional.pad(matrix, (0, 3 - matrix.shape[1]))  # fewer than 3 channels: the rest stays grey
    return matrix.float(), offset.float()


def _preview_rgb(pipe, reference):
    """The Stable Diffusion VAE's matrix for 4 channels, else the generic one fitted to `reference`."""
    if _channels(pipe)[0] == LATENT_TO_RGB.shape[0]:
        return LATENT_TO_RGB, None
    return principal_rgb(reference, pipe)


def preview_latents(latents, scale=1, *, pipe=None, rgb=None):
    """Fast preview: latents to RGB frames with a fixed matrix per channel, no VAE. Notebook 06.

    Without `pipe`, latents are ModelScope's (4, frames, h, w) and the matrix is
    LATENT_TO_RGB. With `pipe`, they are in that pipeline's layout and channel count, and
    `rgb` (a channels x 3 matrix, or a (matrix, offset) pair from `principal_rgb`) gives
    the colours; by default the Stable Diffusion VAE's for 4 channels, else `principal_rgb`
    of these latents. Returns (latent frames, h*scale, w*scale, 3)
    float32 in 0..1, enlarged by `scale` (nearest neighbour). An approximation:
    colours and layout, not detail.
    """
    scale = check_whole_number("scale", scale, 1, 64, 8)
    video, axis = _one_video(latents, pipe)
    if rgb is None:
        rgb = LATENT_TO_RGB if pipe is None else _preview_rgb(pipe, video)
    matrix, offset = rgb if isinstance(rgb, tuple) else (rgb, None)
    pixels = video.float().cpu().movedim(axis, -1)  # (frames, h, w, channels)
    if offset is not None:
        pixels = pixels - offset
    frames = ((pixels @ torch.as_tensor(matrix, dtype=torch.float32) + 1) / 2).clamp(0, 1).numpy()
    return frames.repeat(scale, 1).repeat(scale, 2)


def _fit(frames, shape):
    """Stretch a preview (latent frames, h, w, 3) to the video's (frames, height, width, 3), nearest neighbour.

    A VAE that also compresses time (Wan's, CogVideoX's: 4 frames per latent frame after the
    first) decodes latent frame k into frames 4k-3 to 4k; the preview repeats it there.
    """
    count, height, width = shape[:3]
    latent_count, h, w = frames.shape[:3]
    times = np.ceil(np.arange(count) * (latent_count - 1) / max(count - 1, 1)).astype(int)
    return frames[times][:, (np.arange(height) * h) // height][:, :, (np.arange(width) * w) // width]


def _fast_view(pipe, latents, shape, rgb=None):
    return _fit(preview_latents(latents, pipe=pipe, rgb=rgb), shape)


@torch.no_grad()
def decode_latents(pipe, latents):
    """Exact view: one video's latents to RGB frames through the model's VAE, as the pipeline does. Notebook 06.

    Takes the latents in the pipeline's own layout (an entry of `denoising.latents`) and
    decodes them with the family's `decode`. Returns (frames, height, width, 3) float32 in
    0..1. Decoding the last step's latents gives the final video.
    """
    video, _ = _one_video(latents, pipe)
    return family_of(pipe).decode(pipe, video[None])


def pick_steps(total, count=5):
    """`count` step numbers spread evenly from 1 to `total`, always with the first and last. Notebook 06."""
    return sorted({int(round(s)) for s in np.linspace(1, total, min(count, total))})


def views_at_steps(pipe, denoising, steps=None, *, exact=False, view="predicted"):
    """The video at each chosen step (1-based), previewed fast or decoded exactly, with titles. Notebook 06.

    `view` 'predicted' shows the model's estimate of the clean video at that step;
    'latents' shows the noisy latents themselves. Returns (videos, titles); every video
    has the final video's size, so `tile_videos(videos, titles)` plays them in sync.
    """
    view = check_choice("view", view, VIEWS, default="predicted")
    total = denoising.steps
    steps = pick_steps(total) if steps is None else list(steps)
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= step <= total:
            raise SettingError("steps", step, "is not a step of this run", f"whole numbers from 1 to {total}", f"steps={pick_steps(total)}")
    chosen = denoising.predicted if view == "predicted" else denoising.latents
    shape = denoising.result.frames.shape
    if exact:
        videos = [decode_latents(pipe, chosen[s - 1]) for s in steps]
    else:
        rgb = _preview_rgb(pipe, denoising.predicted[-1])  # one set of colours for every step
        videos = [_fast_view(pipe, chosen[s - 1], shape, rgb) for s in steps]
    how = "VAE" if exact else "fast"
    titles = [f"step {s}/{total}\n{how}, t={denoising.timesteps[s - 1]:g}" for s in steps]
    return videos, titles


def preview_costs(pipe, latents, repeats=5):
    """Seconds to show one step's video: fast linear preview vs exact VAE decode. Notebook 06.

    Each view runs once to warm up, then `repeats` times, the two alternating so that a
    busy moment slows both alike. Returns the medians (`fast_s`, `exact_s`), the median
    of the per-pair ratios exact / fast (`ratio`), and every run's seconds (`fast_runs`,
    `exact_runs`) for the spread.
    """
    repeats = check_whole_number("repeats", repeats, 1, 1000, 5)
    exact = decode_latents(pipe, latents)  # also the warm-up of the exact view
    views = {
        "fast": lambda: _fast_view(pipe, latents, exact.shape),
        "exact": lambda: decode_latents(pipe, latents),
    }

    def seconds(view):
        start = time.perf_counter()
        view()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for view in views.values():
        seconds(view)  # warm-up: the first call pays one-off costs
    runs = {name: [] for name in views}
    for i in range(repeats):
        for name in (("fast", "exact") if i % 2 == 0 else ("exact", "fast")):
            runs[name].append(seconds(views[name]))
    return {
        "fast_s": float(np.median(runs["fast"])),
        "exact_s": float(np.median(runs["exact"])),
        "ratio": float(np.median([e / f for e, f in zip(runs["exact"], runs["fast"])])),
        "fast_runs": runs["fast"],
        "exact_runs": runs["exact"],
    }
