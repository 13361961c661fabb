"""Watch the video emerge from noise: keep every denoising step, preview it fast or decode it exactly. Notebook 06."""

import time
from dataclasses import dataclass

import numpy as np
import torch

from .errors import SettingError
from .generate import VideoResult, generate
from .validate import check_choice, check_whole_number

# What each of the 4 latent channels adds to red, green and blue: a linear approximation of
# the decoder of the Stable Diffusion VAE, which this model uses; fitted for SD 1.4 by
# keturn and used by the common preview tools:
# https://discuss.huggingface.co/t/decoding-latents-to-rgb-without-upscaling/23204/2
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
    """One generation with every step kept: latents of shape (4, frames, height/8, width/8), on the CPU. Notebook 06."""

    result: VideoResult  # the final video, exactly as `generate` makes it
    latents: list  # after each step: the noisy latents the scheduler hands to the next step
    predicted: list  # at each step: the model's estimate of the clean latents
    timesteps: list  # at each step: the timestep it starts at (its first UNet call)
    unet_calls: int

    @property
    def steps(self):
        """How many steps were kept (one per denoising step). Notebook 06."""
        return len(self.latents)


def predicted_clean(scheduler, sample, model_output, timestep):
    """The clean latents the model's output implies for its input `sample` at `timestep`. Notebook 06.

    The UNet was trained on sample = sqrt(a) * clean + sqrt(1 - a) * noise, where `a` is
    the scheduler's `alphas_cumprod` at the timestep; solving for `clean` gives this
    estimate. Every scheduler here hands the UNet its input in that form.
    """
    alphas = scheduler.alphas_cumprod.double().cpu().numpy()
    a = float(np.interp(timestep, np.arange(len(alphas)), alphas))  # some schedulers use fractional timesteps
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - (1 - a) ** 0.5 * model_output) / a**0.5
    if kind == "v_prediction":
        return a**0.5 * sample - (1 - a) ** 0.5 * model_output
    return model_output  # "sample": the model predicts the clean latents itself


def capture_denoising(pipe, prompt, *, guidance=9.0, **settings):
    """Run `generate` and keep the latents and the predicted clean latents of every step. Notebook 06.

    Takes the same settings as `generate`. It only reads: a hook copies the UNet's input
    and output, and the step callback copies the latents, so the final video is the one
    `generate` makes with the same seed and settings.
    """
    latents, predicted, timesteps, last = [], [], [], {}
    calls = 0

    def after_unet(module, args, kwargs, output):
        nonlocal calls
        calls += 1
        sample = (args[0] if args else kwargs["sample"]).detach().float()
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        noise = (output[0] if isinstance(output, tuple) else output.sample).detach().float()
        if guidance > 1:  # the pipeline's rule for classifier-free guidance: one batch of [negative, prompt]
            negative, positive = noise.chunk(2)
            noise = negative + guidance * (positive - negative)
            sample = sample.chunk(2)[0]
        t = float(torch.as_tensor(timestep).flatten()[0])
        # A step may call the UNet more than once (Heun twice, PNDM's first step several
        # times): its label is where it starts, its prediction the latest one.
        last.setdefault("start", t)
        last["clean"] = predicted_clean(pipe.scheduler, sample, noise, t)[0].cpu()

    def on_step(step, steps, step_latents):
        # Count steps here: PNDM's first UNet call comes before its first callback.
        latents.append(step_latents[0].detach().float().cpu().clone())
        predicted.append(last["clean"])
        timesteps.append(last.pop("start"))

    handle = pipe.unet.register_forward_hook(after_unet, with_kwargs=True)
    try:
        result = generate(pipe, prompt, guidance=guidance, on_step=on_step, **settings)
    finally:
        handle.remove()
    return Denoising(result, latents, predicted, timesteps, calls)


def _one_video(latents):
    """(4, frames, h, w) latents from those or from the pipeline's batch of one (1, 4, frames, h, w)."""
    if latents.ndim == 5 and latents.shape[0] == 1:
        latents = latents[0]
    if latents.ndim != 4 or latents.shape[0] != 4:
        raise SettingError(
            "latents", f"a tensor of shape {tuple(latents.shape)}", "is not one video's latents",
            "shape (4, frames, height/8, width/8)", "an entry of `denoising.latents` or `denoising.predicted`",
        )
    return latents


def preview_latents(latents, scale=1):
    """Fast preview: latents (4, frames, h, w) to RGB frames with a fixed 4x3 matrix, no VAE. Notebook 06.

    Returns (frames, h*scale, w*scale, 3) float32 in 0..1, enlarged by `scale` (nearest
    neighbour; use `pipe.vae_scale_factor` to match the video's size). An approximation
    for the Stable Diffusion VAE: colours and layout, not detail.
    """
    scale = check_whole_number("scale", scale, 1, 64, 8)
    rgb = torch.einsum("cfhw,cr->fhwr", _one_video(latents).float().cpu(), LATENT_TO_RGB)
    frames = ((rgb + 1) / 2).clamp(0, 1).numpy()
    return frames.repeat(scale, 1).repeat(scale, 2)


@torch.no_grad()
def decode_latents(pipe, latents):
    """Exact view: latents (4, frames, h, w) to RGB frames through the model's VAE, as the pipeline does. Notebook 06.

    Returns (frames, height, width, 3) float32 in 0..1. Decoding the last step's latents
    gives the final video.
    """
    batch = _one_video(latents)[None].to(pipe._execution_device, pipe.vae.dtype)
    video = pipe.decode_latents(batch)
    return pipe.video_processor.postprocess_video(video=video, output_type="np")[0]


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
    videos = [decode_latents(pipe, chosen[s - 1]) if exact else preview_latents(chosen[s - 1], pipe.vae_scale_factor) for s in steps]
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
    views = {
        "fast": lambda: preview_latents(latents, pipe.vae_scale_factor),
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
