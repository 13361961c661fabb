"""Predict GPU memory per offload mode, and pick the fastest mode that fits. Notebook 07.

Memory = the weights on the GPU (exact: parameters x bytes per parameter, from the
architecture) + the activations of the part that runs (an estimate that grows with
frames x height x width x batch). The activation coefficients are calibrated against
peak RSS measured on the CPU (benchmarks/results/cpu-full.json): CPU and GPU kernels
keep different temporary buffers, so the prediction carries a margin.
"""

from dataclasses import dataclass

import torch

from .validate import check_choice

GIB = 2**30
MODES_FASTEST_FIRST = ("none", "model", "sequential")

# Activation bytes per byte of dtype, measured with `python -m t2v_helpers.bench --set full`
# (see `calibrate`): the UNet's per latent position (batch x frames x height/8 x width/8);
# the VAE decoder's per output pixel when it decodes one frame at a time (slicing), and
# per pixel of every frame when it decodes all frames at once.
UNET_ACTIVATION_PER_LATENT = 15400
VAE_SLICED_PER_PIXEL = 4570
VAE_UNSLICED_PER_FRAME_PIXEL = 874

# Free memory is kept back for what the estimate does not cover: the allocator's
# fragmentation and cached blocks, cuDNN workspaces, and the CPU/GPU difference above.
MARGIN_FRACTION = 0.15
MARGIN_BYTES = 0.5 * GIB


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
        raise ValueError("results hold no successful full-size float32 run; run `python -m t2v_helpers.bench --set full`")
    unet, sliced, unsliced = [], [], []
    for r in runs:
        size = torch.empty(0, dtype=getattr(torch, r["dtype"])).element_size()
        latents = 2 * r["frames"] * (r["size"] // 8) ** 2  # batch 2: classifier-free guidance
        unet.append((r["peak_rss_denoise"] - r["rss_after_load"]) / (latents * size))
        decode = (r["peak_rss_decode"] - r["rss_after_load"]) / (r["size"] ** 2 * size)
        (sliced if r["vae_slicing"] else unsliced).append(decode if r["vae_slicing"] else decode / r["frames"])
    return max(unet), max(sliced), max(unsliced or [max(sliced)])


def weight_bytes(dtype=torch.float16):
    """Bytes of weights of each part of the full-size model in `dtype` (exact). Notebook 07."""
    from .architecture import full_size_parameters

    size = torch.empty(0, dtype=dtype).element_size()
    return {name: count * size for name, count in full_size_parameters().items()}


def predict(mode, *, frames=16, height=256, width=256, dtype=torch.float16, vae_slicing=True, guidance=True):
    """Predicted peak GPU memory of the full-size model in offload `mode`, as a Prediction. Notebook 07.

    none: everything on the GPU. model: one part at a time (text encoder, UNet, VAE).
    sequential: one layer at a time; only activations and the largest layer stay.
    """
    mode = check_choice("offload", mode, MODES_FASTEST_FIRST, problem="is not an offload mode with a memory cost")
    size = torch.empty(0, dtype=dtype).element_size()
    weights = weight_bytes(dtype)
    batch = 2 if guidance else 1
    unet_act = int(UNET_ACTIVATION_PER_LATENT * batch * frames * (height // 8) * (width // 8) * size)
    one_frame = VAE_SLICED_PER_PIXEL * height * width * size
    vae_act = int(one_frame if vae_slicing else max(one_frame, VAE_UNSLICED_PER_FRAME_PIXEL * frames * height * width * size))
    if mode == "none":
        on_gpu = weights["unet"] + weights["vae"] + weights["text_encoder"]
        return Prediction(mode, on_gpu + max(unet_act, vae_act), on_gpu, max(unet_act, vae_act))
    if mode == "model":
        phases = [(weights["text_encoder"], 0), (weights["unet"], unet_act), (weights["vae"], vae_act)]
        on_gpu, act = max(phases, key=sum)
        return Prediction(mode, on_gpu + act, on_gpu, act)
    return Prediction(mode, weights["largest_layer"] + max(unet_act, vae_act), weights["largest_layer"], max(unet_act, vae_act))


def gpu_memory():
    """Free and total bytes of the first CUDA GPU, or None without one. Notebook 07."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info(0)


def fits(prediction, free):
    """Whether `prediction` fits in `free` bytes with the margin kept back. Notebook 07."""
    return prediction.peak * (1 + MARGIN_FRACTION) + MARGIN_BYTES <= free


def choose_offload(free, **settings):
    """The fastest offload mode whose predicted peak fits in `free` bytes, and why. Notebook 07.

    `settings` go to `predict` (frames, height, width, dtype, vae_slicing). Returns
    (mode, reason, predictions). When none fits, it returns 'sequential', the leanest,
    and says that even that may run out of memory.
    """
    predictions = [predict(mode, **settings) for mode in MODES_FASTEST_FIRST]
    for p in predictions:
        p.fits = fits(p, free)
    chosen = next((p for p in predictions if p.fits), predictions[-1])
    frames, height, width = settings.get("frames", 16), settings.get("height", 256), settings.get("width", 256)
    reason = f"offload={chosen.mode!r}: predicted peak {chosen.peak / GIB:.1f} GiB for {frames} frames of {width}x{height}, {free / GIB:.1f} GiB free"
    faster = [p for p in predictions if MODES_FASTEST_FIRST.index(p.mode) < MODES_FASTEST_FIRST.index(chosen.mode)]
    if faster:
        needs = ", ".join(f"{p.mode!r} would need {p.peak / GIB:.1f} GiB" for p in faster)
        reason += f"; {needs}, plus a margin of {MARGIN_FRACTION:.0%} and {MARGIN_BYTES / GIB:.1f} GiB"
    if not chosen.fits:
        reason += ". Even this may not fit: use fewer frames or a smaller size"
    return chosen.mode, reason + ".", predictions
