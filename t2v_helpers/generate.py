"""One call from a prompt to the frames of one video, with its settings and timing. Notebook 04."""

import secrets
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .schedulers import scheduler_name

MAX_SEED = 2**63 - 1


@dataclass
class VideoResult:
    """The frames of one video (frames, height, width, 3; float32 in 0..1) and how they were made. Notebook 04."""

    frames: np.ndarray
    prompt: str
    seed: int
    settings: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def _positive_int(name, value, upper):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= upper:
        raise ValueError(f"{name}={value!r} must be a whole number from 1 to {upper}.")


def check_settings(pipe, prompt, steps, frames, height, width, guidance, seed):
    """Refuse settings the model cannot take, with a message that says what to change. Notebook 04."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt={prompt!r} must be some text, such as 'Spiderman is surfing'.")
    _positive_int("steps", steps, 1000)
    _positive_int("frames", frames, 1024)
    # The VAE shrinks frames 8x (the real model); 8 also keeps H.264's even sizes.
    multiple = max(8, pipe.vae_scale_factor)
    for name, value in (("height", height), ("width", width)):
        _positive_int(name, value, 4096)
        if value % multiple:
            nearest = max(multiple, round(value / multiple) * multiple)
            raise ValueError(f"{name}={value} must be a multiple of {multiple} for this model; try {nearest}.")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= 100:
        raise ValueError(f"guidance={guidance!r} must be a number from 0 to 100 (the model's default is 9).")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED):
        raise ValueError(f"seed={seed!r} must be a whole number from 0 to 2**63-1, or None for a random one.")


def generate(
    pipe,
    prompt,
    *,
    negative_prompt=None,
    steps=25,
    frames=16,
    height=None,
    width=None,
    guidance=9.0,
    seed=0,
    on_step=None,
):
    """Make one video from `prompt`; the same seed and settings give the same frames. Notebook 04.

    `height`/`width` default to the model's own size (256 for the real model). `seed=None`
    draws a random seed, recorded in the result. `on_step(step, steps, latents)` is called
    after every denoising step.
    """
    height = height or pipe.unet.config.sample_size * pipe.vae_scale_factor
    width = width or pipe.unet.config.sample_size * pipe.vae_scale_factor
    check_settings(pipe, prompt, steps, frames, height, width, guidance, seed)
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else int(seed)

    def callback(step, timestep, latents):
        on_step(step + 1, steps, latents)

    start = time.perf_counter()
    output = pipe(
        prompt,
        negative_prompt=negative_prompt or None,
        num_inference_steps=steps,
        num_frames=frames,
        height=height,
        width=width,
        guidance_scale=guidance,
        # A CPU generator gives the same starting noise on every device.
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
        callback=callback if on_step else None,
    )
    elapsed = time.perf_counter() - start
    settings = dict(
        model=getattr(pipe, "t2v_model_id", pipe.name_or_path),
        negative_prompt=negative_prompt or "",
        steps=steps,
        frames=frames,
        height=height,
        width=width,
        guidance=guidance,
        scheduler=scheduler_name(pipe),
    )
    # `.frames` holds a batch of videos; this call makes one, so keep `.frames[0]`.
    return VideoResult(output.frames[0], prompt, seed, settings, elapsed)
