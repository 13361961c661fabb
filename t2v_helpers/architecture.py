"""The full-size model's architecture as data, and a random-weight copy of it. Notebook 07.

Time and memory depend on the shapes of the layers, not on the values of the weights,
so a pipeline built from these configurations with random weights measures what the
real ali-vilab/text-to-video-ms-1.7b costs, without downloading it. Its videos are noise.
"""

from functools import lru_cache

import torch

from .tiny import REAL_SCHEDULER_CONFIG, _tokenizer, quiet_empty_float32_notice

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


def _components(dtype):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
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
            parts = _components(dtype)
    else:
        parts = _components(dtype)
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
        parts = _components(torch.float32)
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items() if name != "scheduler"}
    # Sequential offload moves one leaf layer at a time to the GPU: the biggest one sets the floor.
    leaves = (m for part in counts for m in parts[part].modules() if not list(m.children()))
    counts["largest_layer"] = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in leaves)
    return counts
