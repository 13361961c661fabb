"""The full-size parts of Wan 2.1 1.3B (and CogVideoX-2B, from its family file), built with random weights or on the meta device. Notebook 07.

Memory depends on the shapes of the layers, not on the values of the weights, so these
configurations (the config.json of each part of Wan-AI/Wan2.1-T2V-1.3B-Diffusers, written
out) give exact parameter counts and let the benchmarks measure real activation sizes
without downloading anything. Wan's memory profile (t2v_helpers.memory.Profile) lives here
until Wan's family file carries its configs; CogVideoX's is in families/cogvideox.py.
"""

from functools import partial

import torch

from .memory import Profile, chunked_vae, latent_tokens

# text_encoder/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers: google/umt5-xxl's encoder.
UMT5_XXL = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
}

# transformer/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers.
WAN_1_3B_TRANSFORMER = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
}

# vae/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers: the Wan 2.1 VAE (AutoencoderKLWan's defaults).
WAN_VAE = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "temperal_downsample": [False, True, True]}

# google/t5-v1_1-xxl's encoder, CogVideoX's text encoder: UMT5-XXL's shapes with T5's vocabulary
# (t2v_helpers/families/cogvideox.py has its config.json in full). benchmarks/text_encoder_memory.py builds it.
T5_XXL = dict(UMT5_XXL, vocab_size=32128)


def wan_parts():
    """Wan 2.1 1.3B's text encoder, transformer and VAE, built from the configs above (float32). Notebook 07."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    return {
        "text_encoder": UMT5EncoderModel(UMT5Config(**UMT5_XXL)),
        "transformer": WanTransformer3DModel(**WAN_1_3B_TRANSFORMER),
        "vae": AutoencoderKLWan(**WAN_VAE),
    }


def cogvideox_parts():
    """CogVideoX-2B's text encoder, transformer and VAE, from the configs in its family file (float32). Notebook 07."""
    from .families.cogvideox import _counted_parts

    return _counted_parts()


def materialize(module, dtype, seed=0):
    """Give a module built on the meta device random weights in `dtype`, on the CPU. Notebook 07.

    It casts on the meta device and allocates each tensor once in `dtype`, so a
    5.7-billion-parameter encoder never needs a float32 copy; weights shared between layers
    (T5's input embedding) stay shared, as loading a checkpoint keeps them.
    """
    module = module.to(dtype)
    made = {}
    for layer in module.modules():
        for kind in (layer._parameters, layer._buffers):
            for name, tensor in kind.items():
                if tensor is None:
                    continue
                if id(tensor) not in made:
                    empty = torch.empty_like(tensor, device="cpu")
                    made[id(tensor)] = torch.nn.Parameter(empty, requires_grad=False) if kind is layer._parameters else empty
                kind[name] = made[id(tensor)]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in made.values():
            if tensor.is_floating_point():
                tensor.normal_(0.0, 0.02, generator=generator)
    return module.eval()


# Activation bytes per byte of dtype, from `python benchmarks/transformer_memory.py` on the CPU
# (benchmarks/results/cpu-transformer-memory.json; t2v_helpers.memory.calibrate_profile, rounded up):
# the transformer's per token of one video, the VAE's per pixel decoded at once and per pixel of
# every frame. GPU kernels keep other temporary buffers; t2v_helpers.memory keeps a margin.
WAN_PER_TOKEN = 59600
WAN_VAE_PER_PIXEL = 5940
WAN_VAE_PER_FRAME_PIXEL = 72
WAN_VAE_TILE = (256, 256)  # AutoencoderKLWan's tile_sample_min_height and _width with tiling on

# Wan 2.1 1.3B's memory profile: the `memory=` of t2v_helpers/families/wan.py.
WAN_MEMORY = Profile(
    parts=wan_parts,
    denoiser="transformer",
    # 4 frames a latent frame after the first; 1x2x2 patches of 8x8-pixel latents.
    tokens=partial(latent_tokens, frames_per_latent=4, pixels_per_token=8 * WAN_1_3B_TRANSFORMER["patch_size"][1]),
    per_token=WAN_PER_TOKEN,
    vae=chunked_vae(WAN_VAE_PER_PIXEL, WAN_VAE_PER_FRAME_PIXEL, WAN_VAE_TILE),
    guidance_batch=1,  # WanPipeline calls the transformer once for the prompt, then once for the negative prompt
    float32_parts=("vae",),  # WanPipeline's VAE runs in float32
    source="cpu-transformer-memory",
)
