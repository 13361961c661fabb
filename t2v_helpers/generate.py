"""One call from a prompt to the frames of one video, with its settings and timing. Notebook 04."""

import gc
import logging
import secrets
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from .errors import GPUMemoryError, NonFiniteFramesError, SettingError
from .families import denoiser, family_named, family_of, lean_vae, model_of, vae_is_lean
from .memory import check_memory
from .notices import DropNotice
from .schedulers import check_scheduler_steps, scheduler_config_problem, scheduler_name
from .validate import (
    MAX_SEED,
    MAX_STEPS,
    check_frames,
    check_guidance,
    check_negative_prompt,
    check_prompt,
    check_seed,
    check_size,
    check_whole_number,
    is_whole,
)


@dataclass
class VideoResult:
    """The frames of one video (frames, height, width, 3; float32 in 0..1) and how they were made. Notebook 04."""

    frames: np.ndarray
    prompt: str
    seed: int
    settings: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def leaner_settings(pipe, frames, height, width, gpu=True):
    """Concrete changes that need less memory than these settings, most effective first. Notebook 04.

    `gpu=False` (out of CPU memory) leaves out offloading, which moves weights from the GPU to the CPU.
    """
    tips = []
    fewer = family_of(pipe).half_frames(frames)
    if fewer < frames:
        tips.append(f"frames={fewer} (memory grows with the number of frames)")
    model = model_of(pipe)
    if height * width > model.height * model.width:
        tips.append(f"height={model.height}, width={model.width} (the model's own size)")
    if not vae_is_lean(pipe):
        tips.append(f"{' and '.join(f'pipe.vae.{s}()' for s in family_of(pipe).vae_switches)} (decodes in pieces)")
    runtime = getattr(pipe, "t2v_runtime", None)
    offload = runtime.offload if runtime else "none"
    if not gpu:
        offload = "sequential"  # no offload tip: it would fill the CPU memory that ran out
    if offload == "none":
        tips.append("load_pipeline(..., offload='model') (keeps only the running model on the GPU)")
    if offload != "sequential":
        tips.append("load_pipeline(..., offload='sequential') (one layer at a time on the GPU; much slower)")
    tips.append("restart the runtime if an earlier pipeline or video is still in memory")
    return tips


# What torch's CPU allocator says when the machine's memory runs out (c10/core/impl/alloc_cpu.cpp).
CPU_OUT_OF_MEMORY = "DefaultCPUAllocator: can't allocate memory"


def _memory_kind(message):
    """'CPU' or 'GPU': which memory ran out, by torch's message."""
    return "CPU" if CPU_OUT_OF_MEMORY in message else "GPU"


def _seconds(s):
    return f"{s:.2g} s" if s < 10 else f"{s:.0f} s"


def _on_cpu(pipe):
    runtime = getattr(pipe, "t2v_runtime", None)
    return (runtime.device if runtime else pipe.device.type) == "cpu"


def _progress_bar(pipe, steps):
    """generate's one bar, shown unless `pipe.set_progress_bar_config(disable=True)` turned the pipeline's bar off.

    A plain-text bar, not tqdm.auto's notebook widget: a saved notebook keeps the text of its
    last update (100%), where a widget whose state is not saved shows its first one (0%).
    On stdout, the stream of the CPU notice, so the two stay in one output, in order.
    """
    hidden = getattr(pipe, "_progress_bar_config", {}).get("disable", False)
    return tqdm(total=steps, unit="step", file=sys.stdout, disable=hidden)


def _denoise(pipe, checked, frames, on_step):
    """Run the text-to-video pipeline: (output, None), or (None, torch's message) when memory ran out."""
    return run_pipeline(
        pipe, checked["steps"], checked["seed"], on_step, prompt=checked["prompt"], negative_prompt=checked["negative_prompt"] or None,
        num_inference_steps=checked["steps"], num_frames=frames, height=checked["height"], width=checked["width"],
        guidance_scale=checked["guidance"],
    )


def run_pipeline(pipe, steps, seed, on_step, **call):
    """Call `pipe(**call)` with one progress bar of `steps`, the seed and the family's step callback. Notebook 04.

    Returns (output, None), or (None, torch's message) when the GPU or the CPU ran out of
    memory. `on_step(step, steps, latents)` is called after every step. Used by `generate`
    and `t2v_helpers.upscale`.
    """
    notice = _on_cpu(pipe) and not getattr(pipe, "t2v_cpu_notice_shown", False)
    step_ends = []
    bar = _progress_bar(pipe, steps)
    family = family_of(pipe)

    def callback(latents):
        # Count the calls: diffusers' own step numbers start at 1 for some schedulers (PNDM).
        step_ends.append(time.perf_counter())
        bar.update(1)
        # Time the second step: the first also pays one-off start-up costs.
        if notice and len(step_ends) == 2:
            took = step_ends[1] - step_ends[0]
            total = _seconds(took * steps)
            # tqdm.write prints above the bar instead of through it.
            bar.write(f"No GPU, so this runs on the CPU: about {_seconds(took)} per step, {total} for {steps} steps.", file=sys.stdout)
            pipe.t2v_cpu_notice_shown = True
        if on_step:
            on_step(len(step_ends), steps, latents)

    # diffusers' own bar would be a second one: switch it off for this call only.
    own_config = getattr(pipe, "_progress_bar_config", {})
    pipe.set_progress_bar_config(**{**own_config, "disable": True})
    # check_prompt's PromptTooLongWarning already quoted what the encoder cuts: drop diffusers' repeat of it.
    repeat = DropNotice("The following part of your input was truncated")
    handlers = logging.getLogger("diffusers").handlers
    for handler in handlers:
        handler.addFilter(repeat)
    try:
        output = pipe(
            **call,
            # A CPU generator gives the same starting noise on every device.
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
            **family.on_step(callback),
            **family.pipeline_kwargs,
        )
        return output, None
    except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError too
        # Out of CPU memory is a plain RuntimeError from torch's CPU allocator; other RuntimeErrors are bugs.
        if not isinstance(error, torch.OutOfMemoryError) and CPU_OUT_OF_MEMORY not in str(error):
            raise
        # Keep only the text: the error's traceback holds the failed call's tensors.
        message = (str(error).strip() or "out of memory").splitlines()[0][:200]
    finally:
        for handler in handlers:
            handler.removeFilter(repeat)
        bar.close()
        pipe.set_progress_bar_config(**own_config)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return None, message


def check_settings(pipe, prompt, steps, frames, height, width, guidance, seed, negative_prompt=None, scheduler=None, family=None):
    """Refuse settings the model cannot take; return them as plain Python values. Notebook 04.

    `pipe` may be None to check before a model is loaded (as the command line does), with
    `family` (a families.Family, ModelScope's by default) saying whose rules apply; with a
    pipeline, its family's rules apply: the size must be a multiple of its block size, the
    frame count of its form, a long prompt warns what is cut, the steps must suit its
    scheduler, and the predicted memory must fit the machine. `scheduler` names the
    scheduler when there is no pipeline yet. `height`/`width` None mean the model's own
    size. Returns a dict of the checked values as int, float and str (numpy numbers and
    Fractions converted once, here), which callers use from then on.
    """
    family = family_of(pipe) if pipe is not None else family or family_named("modelscope")
    if pipe is not None and getattr(pipe, "text_encoder", True) is None:
        raise SettingError(
            "pipe", type(pipe).__name__, "has no text encoder (text_encoding.encode_then_free freed it), so it cannot read a prompt",
            "a pipeline with its text encoder", "pipe(**embeddings, ...) with the embeddings encode_then_free returned, or t2v.load_pipeline again",
        )
    tokenizer = getattr(pipe, "tokenizer", None)
    checked = {"prompt": check_prompt(prompt, "prompt", tokenizer, family.max_tokens)}
    checked["negative_prompt"] = check_negative_prompt(negative_prompt, tokenizer, family.max_tokens)
    name = scheduler or (scheduler_name(pipe) if pipe is not None else None)
    limits = family.step_limits
    limit = limits.get(name, MAX_STEPS)
    if name in limits and is_whole(steps) and steps > limit:
        allowed = f"a whole number from 1 up to {limit} with scheduler {name!r} (its most: more steps fail, give NaN frames, or pass the model's training steps)"
        raise SettingError("steps", steps, "is more than this scheduler can take", allowed, f"steps={limit}")
    checked["steps"] = check_whole_number("steps", steps, 1, limit, min(family.steps, limit))
    checked["frames"] = check_frames(frames, family)
    # The VAE shrinks frames 8x (and Wan's and CogVideoX's transformers take 2x2 patches of that); 8 also keeps H.264's even sizes.
    multiple = max(8, family.size_multiple)
    for key, value in (("height", height), ("width", width)):
        default = getattr(family.models[0], key)
        checked[key] = None if value is None else check_size(key, value, multiple, default)
    checked["guidance"] = check_guidance(guidance, family.guidance)
    checked["seed"] = check_seed(seed)
    if checked["height"] and checked["width"]:
        check_memory(pipe, checked["frames"], checked["height"], checked["width"])
    return checked


def checked_settings(pipe, prompt, negative_prompt, steps, frames, height, width, guidance, seed):
    """`check_settings` of these, each None replaced by the model's own value and seed None by a random seed. Notebook 04.

    Used by `generate` and `t2v_helpers.upscale`; from then on only the checked values: plain
    int, float and str, whatever came in.
    """
    family, model = family_of(pipe), model_of(pipe)
    checked = check_settings(
        pipe, prompt, family.steps if steps is None else steps, model.frames if frames is None else frames,
        model.height if height is None else height, model.width if width is None else width,
        family.guidance if guidance is None else guidance, seed, negative_prompt,
    )
    if checked["seed"] is None:
        checked["seed"] = secrets.randbelow(MAX_SEED + 1)
    return checked


def out_of_memory_error(pipe, message, doing, frames, height, width, advice=""):
    """GPUMemoryError: which memory ran out `doing` what, torch's `message`, and leaner settings to try. Notebook 04."""
    where = _memory_kind(message)
    tips = "; ".join(leaner_settings(pipe, frames, height, width, gpu=where == "GPU"))
    return GPUMemoryError(f"The {where} ran out of memory {doing} ({message}). Each of these needs less memory: {tips}.{advice}")


def generate(pipe, prompt, *, negative_prompt=None, steps=None, frames=None, height=None, width=None, guidance=None, seed=0,
             on_step=None, retry_leaner=False):
    """Make one video from `prompt`; the same seed and settings give the same frames. Notebook 04.

    Bit for bit on the same machine, library versions, device, dtype and CPU thread count;
    with another thread count or GPU the float frames can differ in their last bits (README:
    "Where files go, and what repeats" has the measured size).

    `steps`, `frames`, `height`, `width` and `guidance` default to the model's own (25 steps,
    16 frames of 256x256 and guidance 9 for ModelScope; t2v_helpers.families). `seed=None`
    draws a random seed, recorded in the result. `on_step(step, steps, latents)` is called
    after every denoising step. NaN or infinite frames raise NonFiniteFramesError. Bad settings raise SettingError (a ValueError) before any
    model work. If the GPU (or the CPU's memory) runs out, GPUMemoryError lists leaner settings;
    with `retry_leaner=True` it first retries once with half the frames (of the family's form) and lean VAE decoding.
    """
    checked = checked_settings(pipe, prompt, negative_prompt, steps, frames, height, width, guidance, seed)
    fast = getattr(pipe, "t2v_fast", None)  # the few-step mode fast.make_fast set (notebook 08) knows what fits it
    if fast:
        fast.check_settings(pipe, checked["steps"], checked["guidance"], checked["negative_prompt"])
    check_scheduler_steps(pipe, checked["steps"])
    output, made, elapsed = _denoise_in_memory(pipe, checked, on_step, retry_leaner)
    video = output.frames[0]  # `.frames` holds a batch of videos; this call makes one
    check_finite(pipe, video, checked["steps"])
    settings = dict(
        model=getattr(pipe, "t2v_model_id", pipe.name_or_path),
        negative_prompt=checked["negative_prompt"] or "",
        **{key: checked[key] for key in ("steps", "frames", "height", "width", "guidance")},
        scheduler=scheduler_name(pipe),
        fps=family_of(pipe).fps,
        **(fast.record() if fast else {}),  # the merged few-step LoRA, if any: the sidecar must make the same video again
    )
    if made != checked["frames"]:
        settings["frames"], settings["frames_asked"] = made, checked["frames"]
    return VideoResult(video, checked["prompt"], checked["seed"], settings, elapsed)


def _denoise_in_memory(pipe, checked, on_step, retry_leaner):
    """(output, frames made, seconds): out of memory, once more with half the frames if `retry_leaner`, else GPUMemoryError."""
    family, frames = family_of(pipe), checked["frames"]
    start = time.perf_counter()
    output, out_of_memory = _denoise(pipe, checked, frames, on_step)
    if out_of_memory and retry_leaner and family.half_frames(frames) < frames:
        frames = family.half_frames(frames)
        lean = " and ".join(lean_vae(pipe))
        print(f"Out of {_memory_kind(out_of_memory)} memory with frames={checked['frames']}: retrying once with frames={frames} and {lean}.")
        start = time.perf_counter()
        output, out_of_memory = _denoise(pipe, checked, frames, on_step)
    if out_of_memory:
        height, width = checked["height"], checked["width"]
        retry = "" if retry_leaner else " Or pass retry_leaner=True to retry once with half the frames."
        raise out_of_memory_error(pipe, out_of_memory, f"making {frames} frames of {width}x{height}", frames, height, width, retry)
    return output, frames, time.perf_counter() - start


def check_finite(pipe, video, steps):
    """Raise NonFiniteFramesError if any value is NaN or infinite: such frames save as black or garbage. Notebook 04."""
    bad = ~np.isfinite(video)
    if not bad.any():
        return
    frames_hit = int(bad.reshape(len(video), -1).any(axis=1).sum())
    dtype = str(denoiser(pipe).dtype).replace("torch.", "")
    name = scheduler_name(pipe)
    other = next(n for n in [*family_of(pipe).schedulers, name] if n != name)  # the family's first other one
    broken = scheduler_config_problem(dict(pipe.scheduler.config))
    # Fewer steps help only a schedule pushed past its limit: never advise the steps already used, or fewer than 2.
    fewer = f"fewer steps, such as steps={min(steps // 2, 50)}, or " if steps >= 4 else ""
    if broken:
        change = (f"The cause is the scheduler's config: {broken}. Try a scheduler made from the model's own config, "
                  f"t2v.set_scheduler(pipe, {name!r}), or load the model again")
    elif dtype == "float32":
        change = f"Try {fewer}another scheduler such as {other!r} (the weights are float32 already)"
    else:
        change = (
            f"Try float32 weights, load_pipeline(..., dtype=torch.float32), since {dtype} overflows more easily; "
            f"or {fewer}another scheduler such as {other!r}"
        )
    raise NonFiniteFramesError(
        f"The model made NaN or infinite values in {frames_hit} of {len(video)} frames (scheduler {name!r}, "
        f"steps={steps}, {dtype}), so there is no video to keep and nothing was saved. {change}."
    )
