"""ModelScope text-to-video (the article's model) and the checkpoints that share its pipeline. Notebooks 02-08.

A 3D UNet denoises 4-channel latents 8 times smaller than the frames; a CLIP text encoder
reads 77 tokens; DDPM noise (1000 steps) with classifier-free guidance.
"""

from functools import partial

from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
import torch

from ..memory import Profile, latent_tokens
from ..tiny import TINY_VERSION, _save_model
from . import Family, Model, legacy_callback

# name -> (class, settings that differ from the pipeline's own scheduler config)
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm": (DPMSolverMultistepScheduler, {}),
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "deis": (DEISMultistepScheduler, {}),
    # Few-step sampling for the distilled MCM LoRA (notebook 08), with the timestep scaling it was trained with.
    "lcm": (LCMScheduler, {"timestep_scaling": 4.0}),
}

# The most steps each scheduler takes and still gives finite frames, with the model's
# scheduler config (1000 training steps). Found by experiment: tools/find_step_limits.py runs
# each scheduler's loop and bisects for the most steps that work (its output is in
# benchmarks/results/step-limits.txt), and the
# tests/test_bad_input.py check runs one step past each limit. At 1000 steps DDIM and PNDM raise
# IndexError at the first step; DPM, DEIS and UniPC repeat a timestep (h = 0) and end in NaN.
STEP_LIMITS = {
    "ddim": 999,
    "dpm": 999,
    "dpm++2m-karras": 1000,
    "unipc": 999,
    "euler": 1000,
    "euler-a": 1000,
    "heun": 1000,
    "pndm": 999,
    "deis": 999,
    "lcm": 50,  # LCMScheduler refuses more steps than its original_inference_steps (50)
}


# Activation bytes per byte of dtype, measured with `python benchmarks/bench.py --set full`
# (see t2v_helpers.memory.calibrate): the UNet's per latent position (frames x height/8 x
# width/8, per video of the batch); the VAE decoder's per output pixel when it decodes one
# frame at a time (slicing), and per pixel of every frame when it decodes all frames at once.
UNET_ACTIVATION_PER_LATENT = 15400
VAE_SLICED_PER_PIXEL = 4570
VAE_UNSLICED_PER_FRAME_PIXEL = 874


def _memory_parts():
    from ..architecture import _components

    parts = _components(torch.float32)
    del parts["scheduler"]
    return parts


def _vae_activations(frames, height, width, slicing):
    one_frame = VAE_SLICED_PER_PIXEL * height * width
    return one_frame if slicing else max(one_frame, VAE_UNSLICED_PER_FRAME_PIXEL * frames * height * width)


MEMORY = Profile(
    parts=_memory_parts,
    denoiser="unet",
    tokens=partial(latent_tokens, frames_per_latent=1, pixels_per_token=8),
    per_token=UNET_ACTIVATION_PER_LATENT,
    vae=_vae_activations,
    source="cpu-full",
)


def _decode(pipe, latents):
    # latents: one video, (1, 4, frames, height/8, width/8), as the step callback hands them
    with torch.no_grad():
        video = pipe.decode_latents(latents.to(pipe._execution_device, pipe.vae.dtype))
    return pipe.video_processor.postprocess_video(video=video, output_type="np")[0]



def _build_tiny_upscaler(folder):
    from ..upscale import save_tiny_upscaler  # here: the upscale module imports the families

    save_tiny_upscaler(folder)


FAMILY = Family(
    name="modelscope",
    pipeline="TextToVideoSDPipeline",
    classes=("TextToVideoSDPipeline", "VideoToVideoSDPipeline"),
    denoiser="unet",
    models=(
        Model(
            "modelscope", "ali-vilab/text-to-video-ms-1.7b", "modelscope", 256, 256, 16, variant="fp16",
            about="ModelScope text-to-video 1.7B (2023), the article's model: 256x256, played at 8 frames per second.",
        ),
        Model(
            "tiny", "tiny", "modelscope", 256, 256, 16, variant="fp16", build=_save_model, version=TINY_VERSION,
            about="A tiny random-weight copy of the ModelScope model, built in code: its videos are noise.",
        ),
        # zeroscope v2 (2023), ModelScope fine-tunes with the same pipeline; sizes and frame counts from
        # their model cards ("at 24 frames, 576x320" and "at 24 frames, 1024x576"). Their repositories
        # keep float16 weights in files without a variant suffix, so no variant is asked for.
        Model(
            "zeroscope", "cerspense/zeroscope_v2_576w", "modelscope", 320, 576, 24,
            about="zeroscope_v2_576w (2023), a ModelScope fine-tune trained on 24 frames of 576x320: the fast first pass of notebook 11.",
        ),
        Model(
            "zeroscope-xl", "cerspense/zeroscope_v2_XL", "modelscope", 576, 1024, 24,
            about="zeroscope_v2_XL (2023), a ModelScope fine-tune trained on 24 frames of 1024x576, made to upscale zeroscope's videos (notebook 11).",
        ),
        Model(
            "tiny-zeroscope-xl", "tiny-zeroscope-xl", "modelscope", 576, 1024, 24, build=_build_tiny_upscaler, version=1,
            about="A tiny random-weight model laid out like zeroscope_v2_XL (its model_index.json names VideoToVideoSDPipeline): its videos are noise.",
        ),
    ),
    fps=8,  # the rate ModelScope's own pipeline writes the model's videos at (16 frames = 2 s)
    steps=25,
    guidance=9.0,
    size_multiple=8,  # the VAE works on 8x8 pixel blocks
    frame_step=1,
    frames_why="",
    max_tokens=77,
    schedulers=SCHEDULERS,
    step_limits=STEP_LIMITS,
    default_scheduler="dpm",
    upscaler="VideoToVideoSDPipeline",
    on_step=legacy_callback,
    gpu_dtype=torch.float16,
    decode=_decode,
    memory=MEMORY,
    about="ModelScope: a 3D UNet on DDPM noise, a CLIP text encoder (77 tokens), 8 frames per second.",
)
