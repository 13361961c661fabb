"""One call from a prompt to the frames of one video, with its settings and timing. Notebook 04."""

import gc
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import GPUMemoryError
from .fast import check_fast_settings
from .schedulers import scheduler_name
from .validate import MAX_SEED, check_settings


@dataclass
class VideoResult:
    """The frames of one video (frames, height, width, 3; float32 in 0..1) and how they were made. Notebook 04."""

    frames: np.ndarray
    prompt: str
    seed: int
    settings: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def leaner_settings(pipe, frames, height, width):
    """Concrete changes that need less GPU memory than these settings, most effective first. Notebook 04."""
    tips = []
    if frames > 1:
        tips.append(f"frames={frames // 2} (memory grows with the number of frames)")
    if height * width > 256 * 256:
        tips.append("height=256, width=256 (the size the model was trained on)")
    if not getattr(pipe.vae, "use_slicing", True):
        tips.append("pipe.vae.enable_slicing() (decodes one frame at a time)")
    runtime = getattr(pipe, "t2v_runtime", None)
    offload = runtime.offload if runtime else "none"
    if offload == "none":
        tips.append("load_pipeline(..., offload='model') (keeps only the running model on the GPU)")
    if offload != "sequential":
        tips.append("load_pipeline(..., offload='sequential') (one layer at a time on the GPU; much slower)")
    tips.append("restart the runtime if an earlier pipeline or video is still in GPU memory")
    return tips


def _seconds(s):
    return f"{s:.2g} s" if s < 10 else f"{s:.0f} s"


def _on_cpu(pipe):
    runtime = getattr(pipe, "t2v_runtime", None)
    return (runtime.device if runtime else pipe.device.type) == "cpu"


def _denoise(pipe, prompt, negative_prompt, steps, frames, height, width, guidance, seed, on_step):
    """Run the pipeline: (output, None), or (None, torch's message) when the GPU ran out of memory."""
    notice = _on_cpu(pipe) and not getattr(pipe, "t2v_cpu_notice_shown", False)
    step_ends = []

    def callback(step, timestep, latents):
        # Count the calls: diffusers' own step numbers start at 1 for some schedulers (PNDM).
        step_ends.append(time.perf_counter())
        # Time the second step: the first also pays one-off start-up costs.
        if notice and len(step_ends) == 2:
            took = step_ends[1] - step_ends[0]
            total = _seconds(took * steps)
            print(f"No GPU, so this runs on the CPU: about {_seconds(took)} per step, {total} for {steps} steps.")
            pipe.t2v_cpu_notice_shown = True
        if on_step:
            on_step(len(step_ends), steps, latents)

    try:
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
            callback=callback if on_step or notice else None,
        )
        return output, None
    except torch.OutOfMemoryError as error:
        # Keep only the text: the error's traceback holds the failed call's GPU tensors.
        message = (str(error).strip() or "out of memory").splitlines()[0][:200]
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return None, message


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
    retry_leaner=False,
):
    """Make one video from `prompt`; the same seed and settings give the same frames. Notebook 04.

    `height`/`width` default to the model's own size (256 for the real model). `seed=None`
    draws a random seed, recorded in the result. `on_step(step, steps, latents)` is called
    after every denoising step. Bad settings raise SettingError (a ValueError) before any
    model work. If the GPU runs out of memory, GPUMemoryError lists leaner settings;
    with `retry_leaner=True` it first retries once with half the frames and VAE slicing.
    """
    default_size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    height = default_size if height is None else height
    width = default_size if width is None else width
    check_settings(pipe, prompt, steps, frames, height, width, guidance, seed, negative_prompt)
    check_fast_settings(pipe, steps, guidance, negative_prompt)
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else int(seed)
    asked_frames = frames

    start = time.perf_counter()
    output, out_of_memory = _denoise(pipe, prompt, negative_prompt, steps, frames, height, width, guidance, seed, on_step)
    if out_of_memory and retry_leaner and frames > 1:
        frames = frames // 2
        pipe.vae.enable_slicing()
        print(f"Out of GPU memory with frames={asked_frames}: retrying once with frames={frames} and VAE slicing.")
        start = time.perf_counter()
        output, out_of_memory = _denoise(pipe, prompt, negative_prompt, steps, frames, height, width, guidance, seed, on_step)
    if out_of_memory:
        tips = "; ".join(leaner_settings(pipe, frames, height, width))
        retry = "" if retry_leaner else " Or pass retry_leaner=True to retry once with half the frames."
        raise GPUMemoryError(
            f"The GPU ran out of memory making {frames} frames of {width}x{height} ({out_of_memory}). "
            f"Each of these needs less memory: {tips}.{retry}"
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
    if frames != asked_frames:
        settings["frames_asked"] = asked_frames
    # `.frames` holds a batch of videos; this call makes one, so keep `.frames[0]`.
    return VideoResult(output.frames[0], prompt, seed, settings, elapsed)
