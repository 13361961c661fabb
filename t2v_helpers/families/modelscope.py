"""ModelScope text-to-video (the article's model) and the checkpoints that share its pipeline. Notebooks 02-08.

A 3D UNet denoises 4-channel latents 8 times smaller than the frames; a CLIP text encoder
reads 77 tokens; DDPM noise (1000 steps) with classifier-free guidance.

Here too: the real model's configs (ali-vilab/text-to-video-ms-1.7b), from which notebook 07
builds the full-size model with random weights (time and memory depend on the shapes of the
layers, not on the values of the weights), and the tiny random-weight models that stand in
for it offline, laid out like the real repositories.
"""

import gzip
import json
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path

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

from ..notices import quiet_deprecation, quiet_empty_float32_notice
from ..tiny import build_tiny
from . import Family, Model, Profile, latent_tokens, legacy_callback

# Bump when the recipe below changes, so cached copies are rebuilt.
TINY_VERSION = 5
TINY_MODEL_ID = "tiny"

# The real model's scheduler/scheduler_config.json (ali-vilab/text-to-video-ms-1.7b).
REAL_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "thresholding": False,
    "trained_betas": None,
}

# unet/config.json of ali-vilab/text-to-video-ms-1.7b.
UNET_CONFIG = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
    "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": 64,
}

# vae/config.json: the Stable Diffusion autoencoder (8x smaller latents, 4 channels).
VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}

# text_encoder/config.json: OpenCLIP ViT-H/14's text tower as a transformers CLIPTextModel.
# The model reads the penultimate layer, so the converted weights keep 23 of its 24 layers.
TEXT_ENCODER_CONFIG = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "projection_dim": 512,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# Published sizes: the model card's "about 1.7 billion" in all; the fp16 files on the hub
# (unet 2.82 GB, text_encoder 681 MB, vae 167 MB) at 2 bytes a parameter.
PUBLISHED_PARAMETERS = {"unet": 1.41e9, "text_encoder": 340e6, "vae": 83.7e6}


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


def _full_size_parts(dtype):
    # Imported here, not at the top: the model classes take seconds to import, and `import t2v_helpers` needs none
    # of them (tests/test_layers.py checks it).
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def cast(module):
        # Each part is cast as soon as it is built, so float32 copies never pile up.
        if dtype != torch.float32:
            with quiet_empty_float32_notice():
                module = module.to(dtype)
        return module.eval()

    unet = cast(UNet3DConditionModel(**UNET_CONFIG))
    vae = cast(AutoencoderKL(**VAE_CONFIG))
    text_encoder = cast(CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER_CONFIG)))
    scheduler = DDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler)


def build_full_size_pipeline(dtype=torch.float32, *, seed=0, empty=False):
    """The full-size TextToVideoSDPipeline with random weights, on the CPU, in `dtype`. Notebook 07.

    It has the real model's layers, parameter counts and scheduler, so it costs the same
    time and memory as the real one; its videos are noise. Built in float32 it held
    7.26 GiB of RAM and took 12 s to build on 2 cores (benchmarks/results/cpu-full.json). `empty=True` builds it on the meta
    device instead: shapes only, no memory, for inspecting and counting.
    """
    from accelerate import init_empty_weights
    from diffusers import TextToVideoSDPipeline

    torch.manual_seed(seed)
    if empty:
        with init_empty_weights():
            parts = _full_size_parts(dtype)
    else:
        parts = _full_size_parts(dtype)
    pipe = TextToVideoSDPipeline(tokenizer=_tokenizer(), **parts)
    pipe.t2v_model_id = "full-size (random weights)"
    return pipe


@lru_cache(maxsize=1)
def full_size_parameters():
    """Parameters of each part of the full-size model, and of its largest single layer. Notebook 07.

    Returns {'unet': ..., 'vae': ..., 'text_encoder': ..., 'largest_layer': ...}, counted
    on the meta device: no memory is allocated and it takes under a second.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():
        parts = _full_size_parts(torch.float32)
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items() if name != "scheduler"}
    # Sequential offload moves one leaf layer at a time to the GPU: the biggest one sets the floor.
    leaves = (m for part in counts for m in parts[part].modules() if not list(m.children()))
    counts["largest_layer"] = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in leaves)
    return counts


def _memory_parts():
    parts = _full_size_parts(torch.float32)
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


def _byte_level_alphabet():
    # The 256 printable stand-ins that byte-level BPE uses for raw bytes (as in GPT-2/CLIP).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


# OpenAI CLIP's merge list, shipped with its licence in t2v_helpers/data/ (CLIP_BPE_LICENSE).
CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


@lru_cache(maxsize=1)
def _clip_vocabulary():
    # CLIP's own recipe: the byte alphabet, the same with "</w>" (end of word), one token per
    # merge of the first 49,152 - 256 - 2 lines, then the two special tokens: 49,408 in all,
    # the ids of the real tokenizer's vocab.json.
    with (resources.files("t2v_helpers") / "data" / CLIP_BPE_FILE).open("rb") as packed:
        lines = gzip.decompress(packed.read()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # line 0 is a header
    alphabet = _byte_level_alphabet()
    tokens = alphabet + [s + "</w>" for s in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def _tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    # Pads with "!" (id 0), as the Stable Diffusion 2 tokenizer does (huggingface/transformers#24925),
    # whose OpenCLIP ViT-H text encoder and text_encoder config this model shares.
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token="!", model_max_length=77)


def _tiny_parts():
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=32,  # latents of 32 x 32: 256 x 256 frames, as the real model
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        # Four levels scale latents 8x, as in the real VAE.
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            # The real vocabulary, prompt length and special-token ids; only the width is small.
            **{k: TEXT_ENCODER_CONFIG[k] for k in ("vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id")},
        )
    )
    scheduler = DDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder.eval(), scheduler=scheduler)


def _save_tiny_model(folder):
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline(tokenizer=_tokenizer(), **_tiny_parts())
    pipe.save_pretrained(folder, safe_serialization=True)
    with quiet_empty_float32_notice():
        half = pipe.to(torch.float16)
    half.save_pretrained(folder, safe_serialization=True, variant="fp16")
    _write_real_scheduler_config(Path(folder))


def _write_real_scheduler_config(folder):
    # Today's diffusers writes every setting; the real file names fewer, and what a file leaves
    # out decides the defaults of a scheduler swapped in with from_config (notebook 03).
    config = folder / "scheduler" / "scheduler_config.json"
    version = json.loads(config.read_text())["_diffusers_version"]
    config.write_text(json.dumps({**REAL_SCHEDULER_CONFIG, "_diffusers_version": version}, indent=2) + "\n")


def _save_tiny_upscaler(folder):
    """Write a tiny random video-to-video model into `folder`, laid out like zeroscope_v2_XL. Notebook 11.

    The parts are the tiny ModelScope model's; its model_index.json names VideoToVideoSDPipeline,
    as the real repository's does, and its weights are float16 in files without a variant suffix,
    as the real ones are.
    """
    from diffusers import VideoToVideoSDPipeline

    # diffusers says on every construction that VideoToVideoSDPipeline gets no more fixes; notebook 11 says it once in words.
    with quiet_deprecation("VideoToVideoSDPipeline"):
        pipe = VideoToVideoSDPipeline(tokenizer=_tokenizer(), **_tiny_parts())
    with quiet_empty_float32_notice():
        pipe.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    _write_real_scheduler_config(Path(folder))


def build_tiny_model(path=None, *, rebuild=False):
    """Build (once) the tiny offline ModelScope model and return its folder. Notebook 02.

    The folder holds `model_index.json` naming `TextToVideoSDPipeline` and the folders
    `unet/ vae/ text_encoder/ tokenizer/ scheduler/` with float32 and `fp16`-variant
    safetensors, so `DiffusionPipeline.from_pretrained(path, variant="fp16")` loads it
    exactly as it loads the real model. Its tokenizer is the real CLIP tokenizer.
    """
    return build_tiny(next(m for m in FAMILY.models if m.name == TINY_MODEL_ID), path, rebuild=rebuild)


def _decode(pipe, latents):
    # latents: one video, (1, 4, frames, height/8, width/8), as the step callback hands them
    with torch.no_grad():
        video = pipe.decode_latents(latents.to(pipe._execution_device, pipe.vae.dtype))
    return pipe.video_processor.postprocess_video(video=video, output_type="np")[0]


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
            TINY_MODEL_ID, TINY_MODEL_ID, "modelscope", 256, 256, 16, variant="fp16", build=_save_tiny_model, version=TINY_VERSION,
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
            "tiny-zeroscope-xl", "tiny-zeroscope-xl", "modelscope", 576, 1024, 24, build=_save_tiny_upscaler, version=1,
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
