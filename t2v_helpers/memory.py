"""Predict GPU memory per offload mode, and pick the fastest mode that fits. Notebook 07.

Memory = the weights on the GPU (exact: parameters x bytes per parameter, from the
architecture) + the activations of the part that runs (an estimate that grows with
frames x height x width x batch). What differs between model families is data: each
family file's `memory=` is a `Profile` (its parts, its latent-position formula, its
activation coefficients). The coefficients are calibrated against peak RSS measured on
the CPU (ModelScope: benchmarks/results/cpu-full.json; Wan and CogVideoX:
benchmarks/results/cpu-transformer-memory.json): CPU and GPU kernels keep different
temporary buffers, so the prediction carries a margin.
"""

import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from .errors import SettingError
from .families import Family, Profile, denoiser, family_named, family_of, model_of, vae_is_lean
from .validate import MAX_FRAMES, MAX_SIZE, check_bytes, check_choice, check_dtype, check_flag, check_whole_number

GIB = 2**30
MODES_FASTEST_FIRST = ("none", "model", "sequential")

# Free memory is kept back for what the estimate does not cover: a share of the activations
# (their coefficients come from the CPU, whose kernels keep other temporary buffers than a
# GPU's) and a fixed amount for the allocator's cached blocks and cuDNN workspaces. The
# weights need no share: they are counted exactly.
MARGIN_FRACTION = 0.15
MARGIN_BYTES = 0.5 * GIB

# What an NVIDIA T4 (Colab's free GPU) has free for a model: the card has 16 GB, of which
# nvidia-smi shows 15,360 MiB (15 GiB); the CUDA context takes a few hundred MiB of that.
# The one figure the lessons and benchmarks use for "fits a T4".
T4_FREE = 14 * GIB


@dataclass
class Prediction:
    """Predicted peak GPU memory of one offload mode, with its parts in bytes. Notebook 07."""

    mode: str
    peak: int
    weights: int
    activations: int
    fits: bool = None

    def __str__(self):
        return f"offload={self.mode!r}: about {self.peak / GIB:.1f} GiB ({self.weights / GIB:.1f} weights + {self.activations / GIB:.1f} activations)"


def calibrate(results):
    """Activation coefficients from a full-size CPU benchmark's results (a dict). Notebook 07.

    Returns (UNet per latent position, VAE sliced per pixel, VAE unsliced per frame
    pixel), in bytes per byte of dtype: peak RSS while denoising / decoding minus RSS
    after loading. Where runs disagree it keeps the largest (bfloat16 on a CPU keeps some
    float32 temporaries), so predictions err on the side of more memory.
    """
    runs = [r for r in results["runs"] if r["model"] == "full" and "error" not in r]
    if not any(r["dtype"] == "float32" for r in runs):
        raise ValueError("results hold no successful full-size float32 run; run `python benchmarks/bench.py --set full`")
    unet, sliced, unsliced = [], [], []
    for r in runs:
        size = torch.empty(0, dtype=getattr(torch, r["dtype"])).element_size()
        latents = 2 * r["frames"] * (r["size"] // 8) ** 2  # batch 2: classifier-free guidance
        unet.append((r["peak_rss_denoise"] - r["rss_after_load"]) / (latents * size))
        decode = (r["peak_rss_decode"] - r["rss_after_load"]) / (r["size"] ** 2 * size)
        (sliced if r["vae_slicing"] else unsliced).append(decode if r["vae_slicing"] else decode / r["frames"])
    return max(unet), max(sliced), max(unsliced or [max(sliced)])


def calibrate_profile(results, profile, family):
    """Coefficients of `family`'s Profile from benchmarks/transformer_memory.py's results (a dict). Notebook 07.

    Returns (denoiser bytes per token, VAE bytes per pixel, VAE bytes per pixel of every
    frame), each per byte of dtype. The denoiser's is the largest of its runs' activations
    per token, so that fixed costs at small sizes make it err on the side of more memory.
    The VAE decodes a few frames at a time and gathers every frame's output: its two runs
    (same size, different frame counts) give the per-frame part (the slope) and the fixed part.
    """
    runs = [r for r in results["runs"] if r.get("family") == family and "error" not in r]
    denoiser = [r for r in runs if r["part"] == profile.denoiser]
    vae = sorted((r for r in runs if r["part"] == "vae"), key=lambda r: r["latent_frames"])
    if not denoiser or len(vae) < 2:
        raise ValueError(f"results hold no successful {family} runs of both parts; run `python benchmarks/transformer_memory.py`")

    def pixels(r):  # frames, height, width of the video these latents decode to
        return (r["latent_frames"] - 1) * 4 + 1, r["latent_height"] * 8, r["latent_width"] * 8

    def size(r):
        return _bytes_per_parameter(getattr(torch, r["dtype"]))

    per_token = max(r["activation_bytes"] / (profile.tokens(*pixels(r)) * size(r)) for r in denoiser)
    (f1, h, w), (f2, _, _) = pixels(vae[0]), pixels(vae[-1])
    a1, a2 = (r["activation_bytes"] / size(r) for r in (vae[0], vae[-1]))
    per_frame_pixel = max(0.0, (a2 - a1) / ((f2 - f1) * h * w))
    return per_token, a1 / (h * w) - per_frame_pixel * f1, per_frame_pixel


@lru_cache(maxsize=None)
def _meta_parts(profile):
    # Shapes only: on the meta device the full-size parts take no memory.
    with torch.device("meta"):
        return profile.parts()


@lru_cache(maxsize=None)
def parameters(profile):
    """Parameters of each part of `profile`'s model, and of its largest single layer, counted on the meta device. Notebook 07."""
    parts = _meta_parts(profile)
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    # Sequential offload moves one leaf layer at a time to the GPU: the biggest one sets the floor.
    leaves = (m for part in parts.values() for m in part.modules() if not list(m.children()))
    counts["largest_layer"] = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in leaves)
    return counts


def profile_of(family=None):
    """The memory Profile of `family`: a Family, its name, or a Profile itself; None means ModelScope. Notebook 07."""
    if isinstance(family, Profile):
        return family
    found = family if isinstance(family, Family) else family_named(family or "modelscope")
    if found.memory is None:
        raise ValueError(f"family {found.name!r} has no memory profile, so its memory cannot be predicted")
    return found.memory


def _bytes_per_parameter(dtype):
    return torch.empty(0, dtype=dtype).element_size()


def kept_in_float32(part, dtype):
    """Parameters of a model that its library keeps in float32 when it loads in `dtype`. Notebook 07.

    Both libraries read the model class's `_keep_in_fp32_modules` (module names matched
    against each parameter's dotted name): diffusers keeps them in float32 whatever the dtype
    (Wan's transformer: its time embedder and norms); transformers only when loading float16
    (T5's and UMT5's feed-forward output layers `wo`), and its `_keep_in_fp32_modules_strict`
    for bfloat16 too.
    """
    if dtype == torch.float32:
        return 0

    def names(attribute):  # a list, a set, or (as diffusers also accepts) one name
        found = getattr(part, attribute, None) or ()
        return {found} if isinstance(found, str) else set(found)

    kept = names("_keep_in_fp32_modules_strict")
    if dtype == torch.float16 or not type(part).__module__.startswith("transformers."):
        kept |= names("_keep_in_fp32_modules")
    return sum(p.numel() for name, p in part.named_parameters() if kept & set(name.split(".")))


@lru_cache(maxsize=None)
def _float32_counts(profile, dtype):
    return {name: kept_in_float32(part, dtype) for name, part in _meta_parts(profile).items()}


def weight_bytes(dtype=torch.float16, family=None):
    """Bytes of weights of each part of the family's full-size model in `dtype` (exact). Notebook 07.

    Parts in the profile's `float32_parts` (Wan's VAE) count 4 bytes a parameter whatever `dtype`
    is, and so do the layers each part's library keeps in float32 (`kept_in_float32`): UMT5-XXL
    in float16 is 12.5 GiB, not the 10.6 GiB of 2 bytes a parameter.
    """
    profile = profile_of(family)
    size = _bytes_per_parameter(dtype)
    kept = _float32_counts(profile, dtype)
    weights = {}
    for name, count in parameters(profile).items():
        float32 = count if name in profile.float32_parts else kept.get(name, 0)
        weights[name] = float32 * 4 + (count - float32) * size
    return weights


def _settings(family, frames, height, width):
    # Sizes given must be whole numbers the helpers can make (checked like generate's); those not given are the
    # family's default model's; a bare Profile has no defaults.
    model = None
    if not isinstance(family, Profile):
        model = (family if isinstance(family, Family) else family_named(family or "modelscope")).models[0]
    for name, value, low, high in (("frames", frames, 1, MAX_FRAMES), ("height", height, 8, MAX_SIZE), ("width", width, 8, MAX_SIZE)):
        if value is not None:
            check_whole_number(name, value, low, high, getattr(model, name) if model else low)
    if None not in (frames, height, width):
        return int(frames), int(height), int(width)
    if model is None:
        raise ValueError("frames, height and width are needed when predicting from a bare Profile")
    return int(frames or model.frames), int(height or model.height), int(width or model.width)


def _check_switches(dtype, vae_slicing, guidance):
    return check_dtype(dtype) or torch.float16, check_flag("vae_slicing", vae_slicing), check_flag("guidance", guidance)


def activations(profile, frames, height, width, dtype=torch.float16, vae_slicing=True, guidance=True):
    """Predicted activation bytes of the denoiser's call and of the VAE's decode, for a Profile. Notebook 07.

    With guidance the denoiser sees the prompt and the negative prompt: a batch of
    `profile.guidance_batch` videos per call (2), or two calls of one (Wan), which need
    the memory of one.
    """
    size = _bytes_per_parameter(dtype)
    batch = profile.guidance_batch if guidance else 1
    vae_size = 4 if "vae" in profile.float32_parts else size
    return (
        int(profile.per_token * batch * profile.tokens(frames, height, width) * size),
        int(profile.vae(frames, height, width, vae_slicing) * vae_size),
    )


def predict(mode, *, frames=None, height=None, width=None, dtype=torch.float16, vae_slicing=True, guidance=True, family=None):
    """Predicted peak GPU memory of a family's full-size model in offload `mode`, as a Prediction. Notebook 07.

    none: everything on the GPU. model: one part at a time (text encoder, denoiser, VAE).
    sequential: one layer at a time; only activations and the largest layer stay.
    Each phase's peak is its weights on the GPU plus its activations, the largest phase wins.
    `family` is a Family, its name or a Profile (default ModelScope); frames, height and
    width default to the family's default model's.
    """
    mode = check_choice("offload", mode, MODES_FASTEST_FIRST, problem="is not an offload mode with a memory cost")
    frames, height, width = _settings(family, frames, height, width)
    dtype, vae_slicing, guidance = _check_switches(dtype, vae_slicing, guidance)
    profile = profile_of(family)
    weights = weight_bytes(dtype, profile)
    denoiser_act, vae_act = activations(profile, frames, height, width, dtype, vae_slicing, guidance)
    if mode == "none":
        on_gpu = weights["text_encoder"] + weights[profile.denoiser] + weights["vae"]
        return Prediction(mode, on_gpu + max(denoiser_act, vae_act), on_gpu, max(denoiser_act, vae_act))
    phases = [("text_encoder", 0), (profile.denoiser, denoiser_act), ("vae", vae_act)]
    if mode == "model":
        on_gpu, act = max(((weights[part], act) for part, act in phases), key=sum)
    else:
        # One layer at a time: at most the largest layer of all, and never more than the part that runs
        # (Wan's VAE is smaller than UMT5-XXL's token embedding).
        on_gpu, act = max(((min(weights[part], weights["largest_layer"]), act) for part, act in phases), key=sum)
    return Prediction(mode, on_gpu + act, on_gpu, act)


def gpu_memory():
    """Free and total bytes of the first CUDA GPU, or None without one. Notebook 07."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info(0)


def fits(prediction, free):
    """Whether `prediction` fits in `free` bytes with the margin kept back (a share of its activations, and a fixed amount). Notebook 07."""
    return prediction.peak + prediction.activations * MARGIN_FRACTION + MARGIN_BYTES <= free


def choose_offload(free, family=None, **settings):
    """The fastest offload mode whose predicted peak fits in `free` bytes, and why. Notebook 07.

    `family` (a Family, its name or a Profile; ModelScope by default) and `settings` go to
    `predict` (frames, height, width, dtype, vae_slicing, guidance). Returns (mode, reason,
    predictions). When none fits, it returns 'sequential', the leanest, and says that even
    that may run out of memory.
    """
    free = check_bytes("free", free, "free=t2v.memory.gpu_memory()[0] (what the GPU has free), or free=15 * 2**30 for 15 GiB")
    frames, height, width = _settings(family, settings.pop("frames", None), settings.pop("height", None), settings.pop("width", None))
    predictions = [predict(mode, frames=frames, height=height, width=width, family=family, **settings) for mode in MODES_FASTEST_FIRST]
    for p in predictions:
        p.fits = fits(p, free)
    chosen = next((p for p in predictions if p.fits), predictions[-1])
    reason = f"offload={chosen.mode!r}: predicted peak {chosen.peak / GIB:.1f} GiB for {frames} frames of {width}x{height}, {free / GIB:.1f} GiB free"
    faster = [p for p in predictions if MODES_FASTEST_FIRST.index(p.mode) < MODES_FASTEST_FIRST.index(chosen.mode)]
    if faster:
        needs = ", ".join(f"{p.mode!r} would need {p.peak / GIB:.1f} GiB" for p in faster)
        reason += f"; {needs}, plus a margin of {MARGIN_FRACTION:.0%} of the activations and {MARGIN_BYTES / GIB:.1f} GiB"
    if not chosen.fits:
        reason += ". Even this may not fit: use fewer frames or a smaller size"
    return chosen.mode, reason + ".", predictions


def available_memory(pipe):
    """Bytes the run can still use: free GPU memory on a GPU, else the system's available memory; None if unknown. Notebook 07."""
    runtime = getattr(pipe, "t2v_runtime", None)
    if runtime is not None and runtime.device == "cuda":
        return torch.cuda.mem_get_info(0)[0]
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(pipe, frames, height, width):
    """Refuse frames and sizes whose predicted peak memory (t2v_helpers.memory) is well over what this machine has. Notebook 07.

    The prediction describes the full-size model, so the built-in tiny model is not held to it.
    Refused when what the run adds (the peak less the weights already loaded) is over 1.5 times the
    available memory: the estimate carries its own
    margin, and a little over may still run (slowly, swapping); far over cannot.
    """
    if pipe is None or model_of(pipe).tiny:
        return
    free = available_memory(pipe)
    if not free:
        return
    runtime = getattr(pipe, "t2v_runtime", None)
    mode = runtime.offload if runtime and runtime.offload in ("none", "model", "sequential") else "none"
    options = dict(height=height, width=width, dtype=denoiser(pipe).dtype, vae_slicing=vae_is_lean(pipe))

    def needed(frames):
        # The loaded weights already sit in memory (and are not in `free`), except what offload moves in.
        prediction = predict(mode, frames=frames, family=family_of(pipe), **options)
        return prediction.peak - (prediction.weights if mode == "none" else 0)

    if needed(frames) <= 1.5 * free:
        return
    fitting = [f for f in range(frames - 1, 0, -1) if family_of(pipe).check_frames(f) and needed(f) <= free]
    where = "GPU" if runtime and runtime.device == "cuda" else "computer"
    allowed = f"settings whose predicted peak fits the {free / GIB:.1f} GiB this {where} has free"
    problem = f"at {width}x{height} needs about {needed(frames) / GIB:.1f} GiB more by t2v_helpers.memory's estimate, far over what is free"
    if fitting:
        raise SettingError("frames", frames, problem, allowed, f"frames={fitting[0]}")
    model = model_of(pipe)
    raise SettingError("frames", frames, problem, allowed, f"height={model.height}, width={model.width} (the model's own size)")
