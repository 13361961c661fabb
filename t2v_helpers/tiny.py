"""A tiny random-weight text-to-video model, laid out like the real repository.

Taught in notebook 02. It lets every notebook and test run offline on a CPU in seconds;
its videos are coloured noise, because its weights are random.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

TINY_MODEL_ID = "tiny"
# Bump when the recipe below changes, so cached copies are rebuilt.
TINY_VERSION = 2

# The real model's scheduler/scheduler_config.json (ali-vilab/text-to-video-ms-1.7b).
REAL_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def cache_dir():
    """Where built artefacts are cached (`T2V_CACHE`, else ~/.cache/t2v_helpers). Notebook 02."""
    return Path(os.environ.get("T2V_CACHE", Path.home() / ".cache" / "t2v_helpers"))


def _byte_level_alphabet():
    # The 256 printable stand-ins that byte-level BPE uses for raw bytes (as in GPT-2/CLIP).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def _tokenizer():
    from transformers import CLIPTokenizer

    symbols = _byte_level_alphabet()
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _components(vocab_size):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
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
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    scheduler = DDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder.eval(), scheduler=scheduler)


def build_tiny_model(path=None, *, rebuild=False):
    """Build (once) the tiny offline model and return its folder. Notebook 02.

    The folder holds `model_index.json` naming `TextToVideoSDPipeline` and the folders
    `unet/ vae/ text_encoder/ tokenizer/ scheduler/` with float32 and `fp16`-variant
    safetensors, so `DiffusionPipeline.from_pretrained(path, variant="fp16")` loads it
    exactly as it loads the real model.
    """
    from diffusers import TextToVideoSDPipeline

    path = Path(path) if path else cache_dir() / f"tiny-text-to-video-v{TINY_VERSION}"
    if (path / "model_index.json").exists() and not rebuild:
        return path
    tokenizer = _tokenizer()
    pipe = TextToVideoSDPipeline(tokenizer=tokenizer, **_components(len(tokenizer)))
    # Build beside the target, then rename: a half-written model never sits at `path`.
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=path.parent))
    try:
        pipe.save_pretrained(staging, safe_serialization=True)
        pipe.to(torch.float16).save_pretrained(staging, safe_serialization=True, variant="fp16")
        note = {"what": "random weights for offline tests; its videos are noise", "version": TINY_VERSION}
        (staging / "TINY_MODEL.json").write_text(json.dumps(note, indent=2))
        if path.exists():
            if not (path / "TINY_MODEL.json").exists():  # not ours: a user's folder is never deleted
                raise FileExistsError(f"{path} exists and is not a tiny model built here; choose another path.")
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
