"""The full-size parts of Wan 2.1 1.3B and CogVideoX-2B as data, built with random weights or on the meta device. Notebook 07.

Memory depends on the shapes of the layers, not on the values of the weights, so these
configurations (the config.json of each part of Wan-AI/Wan2.1-T2V-1.3B-Diffusers and
THUDM/CogVideoX-2b, written out) give exact parameter counts and let a benchmark measure
real activation sizes without downloading anything. The families' memory profiles
(t2v_helpers.memory.Profile) count their weights from here.
"""

import torch

from .memory import Profile

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

# text_encoder/config.json of THUDM/CogVideoX-2b: google/t5-v1_1-xxl's encoder.
T5_XXL = dict(UMT5_XXL, vocab_size=32128)

# transformer/config.json of THUDM/CogVideoX-2b.
COGVIDEOX_2B_TRANSFORMER = {
    "num_attention_heads": 30,
    "attention_head_dim": 64,
    "in_channels": 16,
    "out_channels": 16,
    "time_embed_dim": 512,
    "text_embed_dim": 4096,
    "num_layers": 30,
    "patch_size": 2,
    "sample_frames": 49,
    "sample_height": 60,
    "sample_width": 90,
    "max_text_seq_length": 226,
    "use_rotary_positional_embeddings": False,
}

# vae/config.json of THUDM/CogVideoX-2b.
COGVIDEOX_VAE = {"block_out_channels": (128, 256, 256, 512), "latent_channels": 16, "layers_per_block": 3, "scaling_factor": 1.15258426}


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
    """CogVideoX-2B's text encoder, transformer and VAE, built from the configs above (float32). Notebook 07."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return {
        "text_encoder": T5EncoderModel(T5Config(**T5_XXL)),
        "transformer": CogVideoXTransformer3DModel(**COGVIDEOX_2B_TRANSFORMER),
        "vae": AutoencoderKLCogVideoX(**COGVIDEOX_VAE),
    }


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


def _latent_grid(frames, height, width):
    # The video autoencoders of both families: 4x fewer frames after the first, 8x smaller sides.
    return (frames - 1) // 4 + 1, height // 8, width // 8


def wan_tokens(frames, height, width):
    """Positions Wan's transformer attends over for one video: latent frames x (height/16) x (width/16). Notebook 07."""
    latent_frames, latent_height, latent_width = _latent_grid(frames, height, width)
    _, patch_h, patch_w = WAN_1_3B_TRANSFORMER["patch_size"]
    return latent_frames * (latent_height // patch_h) * (latent_width // patch_w)


def cogvideox_tokens(frames, height, width):
    """Positions CogVideoX's transformer attends over for one video: its patches plus the 226 text tokens it joins to them. Notebook 07."""
    latent_frames, latent_height, latent_width = _latent_grid(frames, height, width)
    patch = COGVIDEOX_2B_TRANSFORMER["patch_size"]
    return latent_frames * (latent_height // patch) * (latent_width // patch) + COGVIDEOX_2B_TRANSFORMER["max_text_seq_length"]


def _chunked_vae(per_pixel, per_frame_pixel):
    # Both VAEs decode a few latent frames at a time, with a cache of the frames before: a fixed cost
    # per pixel of the frame size, plus the decoded frames they gather, per pixel of every frame.
    # Slicing splits a batch of videos and changes nothing for one video.
    return lambda frames, height, width, slicing: (per_pixel + per_frame_pixel * frames) * height * width


# Activation bytes per byte of dtype, from `python benchmarks/transformer_memory.py` on the CPU
# (benchmarks/results/cpu-transformer-memory.json, turned into coefficients by
# t2v_helpers.memory.calibrate_profile and rounded up): the transformer's per position of one video,
# the VAE's per pixel and per pixel of every frame. CUDA kernels keep other temporary buffers.
WAN_PER_TOKEN = 59600
WAN_VAE_PER_PIXEL = 5940
WAN_VAE_PER_FRAME_PIXEL = 72
COGVIDEOX_PER_TOKEN = 50200
COGVIDEOX_VAE_PER_PIXEL = 11400
COGVIDEOX_VAE_PER_FRAME_PIXEL = 784

# The memory profiles of the two families (their family files' `memory=`).
WAN_MEMORY = Profile(
    parts=wan_parts,
    denoiser="transformer",
    tokens=wan_tokens,
    per_token=WAN_PER_TOKEN,
    vae=_chunked_vae(WAN_VAE_PER_PIXEL, WAN_VAE_PER_FRAME_PIXEL),
    guidance_batch=1,  # WanPipeline calls the transformer once for the prompt, then once for the negative prompt
    float32_parts=("vae",),  # WanPipeline's VAE runs in float32
    source="cpu-transformer-memory",
)
COGVIDEOX_MEMORY = Profile(
    parts=cogvideox_parts,
    denoiser="transformer",
    tokens=cogvideox_tokens,
    per_token=COGVIDEOX_PER_TOKEN,
    vae=_chunked_vae(COGVIDEOX_VAE_PER_PIXEL, COGVIDEOX_VAE_PER_FRAME_PIXEL),
    source="cpu-transformer-memory",
)
