"""CogVideoX-2B text-to-video: the fp16 route, and a tiny offline copy of it. Notebook 10.

A diffusion transformer (30 layers, "expert" adaptive layer norms) denoises 16-channel latents
that a 3D causal VAE makes 8 times smaller in height and width and 4 times fewer in time
(frames = 8k + 1 come back as asked); a T5 v1.1 XXL encoder reads 226 prompt tokens; v-prediction on a zero-SNR
DDIM schedule, 50 steps, guidance 6, videos of 49 frames at 720x480 played at 8 frames per second.
"""

from functools import partial

from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
import torch

from . import Family, Model, Profile, chunked_vae, latent_tokens, step_end_callback

# The default id. THUDM renamed its Hugging Face organisation to zai-org; both names reach the
# same repository (the same 20 commits, last "Upload VAE in fp32 (#13)", 1137dac), and the diffusers
# docs and the model card's own snippet still say THUDM/CogVideoX-2b, which the hub redirects. The
# current name is used so loading does not depend on the redirect; a folder or id loaded as
# THUDM/CogVideoX-2b is still this family, by its model_index.json class.
HUB_ID = "zai-org/CogVideoX-2b"

# model_index.json, https://huggingface.co/THUDM/CogVideoX-2b/blob/main/model_index.json
# (as copied unchanged in https://huggingface.co/rttrsabc/CogVideoX-2b/blob/edc500f5f01dc7c694c6893b5870f5f5a2d19d38/model_index.json).
MODEL_INDEX = {
    "_class_name": "CogVideoXPipeline",
    "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}

# transformer/config.json, https://huggingface.co/THUDM/CogVideoX-2b/blame/ad5ce8664edfdc95cdb9773dd4f80048b25f69ac/transformer/config.json,
# plus "use_rotary_positional_embeddings": false, taken to be what the later "config" commit (39015db)
# added: the file grew from 713 to 758 bytes, exactly that line's 45, and false is diffusers' default.
# The 2B adds fixed 3D sine-cosine positions ("Positional Encoding: 3d_sincos_pos_embed", model card).
# sample_height/width are latent sizes: 60 x 90 latents are 480 x 720 pixels.
TRANSFORMER_CONFIG = {
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 64,
    "dropout": 0.0,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 16,
    "max_text_seq_length": 226,
    "norm_elementwise_affine": True,
    "norm_eps": 1e-05,
    "num_attention_heads": 30,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": 2,
    "sample_frames": 49,
    "sample_height": 60,
    "sample_width": 90,
    "spatial_interpolation_scale": 1.875,
    "temporal_compression_ratio": 4,
    "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 4096,
    "time_embed_dim": 512,
    "timestep_activation_fn": "silu",
    "use_rotary_positional_embeddings": False,
}

# vae/config.json, https://huggingface.co/THUDM/CogVideoX-2b/blame/3c9d823cba79e879738d89c3e72a8348ff9aa51b/vae/config.json
# (the weights on main are float32 since "Upload VAE in fp32 (#13)").
VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": (128, 256, 256, 512),
    "down_block_types": ("CogVideoXDownBlock3D",) * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 16,
    "latents_mean": None,
    "latents_std": None,
    "layers_per_block": 3,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_height": 480,
    "sample_width": 720,
    "scaling_factor": 1.15258426,
    "shift_factor": None,
    "temporal_compression_ratio": 4,
    "up_block_types": ("CogVideoXUpBlock3D",) * 4,
    "use_post_quant_conv": False,
    "use_quant_conv": False,
    "invert_scale_latents": False,
}

# text_encoder/config.json: the encoder half of Google's T5 v1.1 XXL, as published for
# google/t5-v1_1-xxl's encoder (https://huggingface.co/lnyan/t5-v1_1-xxl-encoder/blob/main/config.json,
# "_name_or_path": "google/t5-v1_1-xxl"); CogVideoX-2b's text_encoder/ holds it in two shards,
# 4.99 GB + 4.53 GB (https://huggingface.co/THUDM/CogVideoX-2b/tree/2844d07b93dbb09686423ed045f6f8a6ad04d451/text_encoder).
TEXT_ENCODER_CONFIG = {
    "d_ff": 10240,
    "d_kv": 64,
    "d_model": 4096,
    "decoder_start_token_id": 0,
    "dense_act_fn": "gelu_new",
    "dropout_rate": 0.1,
    "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-06,
    "num_decoder_layers": 24,
    "num_heads": 64,
    "num_layers": 24,
    "pad_token_id": 0,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False,
    "vocab_size": 32128,
}

# tokenizer/: a SentencePiece T5Tokenizer (spiece.model, tokenizer_config.json, special_tokens_map.json,
# added_tokens.json; https://huggingface.co/THUDM/CogVideoX-2b/tree/refs%2Fpr%2F2/tokenizer) with T5's
# special ids: <pad> 0, </s> 1 (appended to every prompt), <unk> 2. The pipeline pads and cuts every
# prompt to max_sequence_length = 226 tokens, the transformer's max_text_seq_length.
TOKENIZER_SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}

# scheduler/scheduler_config.json, https://huggingface.co/THUDM/CogVideoX-2b/blob/refs%2Fpr%2F2/scheduler/scheduler_config.json
# ("Update scheduler/scheduler_config.json (#2)", merged into main as bf24ed3).
REAL_SCHEDULER_CONFIG = {
    "_class_name": "CogVideoXDDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 3.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
    "trained_betas": None,
}

# Published sizes, from the weight files on the hub at 2 bytes a parameter in float16 and 4 in
# float32 (https://huggingface.co/THUDM/CogVideoX-2b/tree/main/vae and the folder listings above):
# transformer/diffusion_pytorch_model.safetensors "3.39 GB" (float16), text_encoder "4.99 GB" +
# "4.53 GB" (float16), vae/diffusion_pytorch_model.safetensors "862 MB" (float32).
PUBLISHED_PARAMETERS = {"transformer": 3.39e9 / 2, "text_encoder": (4.99e9 + 4.53e9) / 2, "vae": 862e6 / 4}

# The model card, https://huggingface.co/zai-org/CogVideoX-2b (README.md), word for word for the 2B
# (the table's HTML tags left out):
MODEL_CARD = {
    "Inference Precision": "FP16* (Recommended), BF16, FP32, FP8*, INT8, no support for INT4",
    "Single GPU VRAM Consumption": "SAT FP16: 18GB diffusers FP16: starting from 4GB* diffusers INT8(torchao): starting from 3.6GB*",
    "Multi-GPU Inference VRAM Consumption": "FP16: 10GB* using diffusers",
    "Inference Speed (Step = 50, FP/BF16)": "Single A100: ~90 seconds Single H100: ~45 seconds",
    "Prompt Length Limit": "226 Tokens",
    "Video Length": "6 Seconds",
    "Frame Rate": "8 Frames per Second",
    "Video Resolution": "720 x 480, no support for other resolutions (including fine-tuning)",
    "Positional Encoding": "3d_sincos_pos_embed",
    # Its notes: the starred figures had "all optimizations provided by the `diffusers` library"
    # enabled (model and sequential CPU offload, VAE slicing and tiling); without them "peak VRAM
    # usage being about 3 times higher than the table shows".
    "Precision note": "The 2B model is trained with `FP16` precision, and the 5B model is trained with `BF16` precision.",
    # Its Quick Start: num_inference_steps=50, num_frames=49, guidance_scale=6, export_to_video(..., fps=8).
}

# name -> (class, settings that differ from the model's own scheduler config). Only the two
# CogVideoX schedulers apply the config's snr_shift_scale (3.0) to the noise schedule. General
# diffusers schedulers (DDIMScheduler, DPMSolverMultistepScheduler, ...) built from this config
# run and give finite frames, but they ignore snr_shift_scale: their alphas_cumprod differ from the
# model's by up to 0.264 (0.241 instead of 0.0953 at t = 500), noise levels the model was not trained
# on, so none is offered here (benchmarks/results/step-limits-cogvideox.txt; test_family_cogvideox.py).
SCHEDULERS = {
    "cogvideox-ddim": (CogVideoXDDIMScheduler, {}),  # the 2B's own
    # CogVideoX-5B's scheduler. THUDM's CogVideo cli_demo.py pairs it with use_dynamic_cfg=True
    # ("This id used for DPM scheduler, for DDIM scheduler, it should be False"); a family's
    # pipeline_kwargs go with every scheduler, so that setting is left to the caller.
    "cogvideox-dpm": (CogVideoXDPMScheduler, {}),
}

# The most steps each scheduler takes and still gives finite frames with the model's scheduler
# config (1000 training steps). Found by experiment: `python tools/find_step_limits.py --family
# cogvideox` runs the tiny model's pipeline and bisects; its output is in
# benchmarks/results/step-limits-cogvideox.txt, and tests/test_family_cogvideox.py runs one step
# past each limit.
STEP_LIMITS = {
    "cogvideox-ddim": 1000,
    "cogvideox-dpm": 1000,
}

# The tiny model: a 32 x 48 video (2:3, as 480 x 720) of 9 frames is 3 latent frames of 4 x 6
# latents, 2 x 3 patches each.
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 48, 9


def _tiny_tokenizer():
    from transformers import T5Tokenizer

    # A Unigram vocabulary of T5's three special tokens, the word-start mark and the letters a-z:
    # every lowercase word tokenizes, anything else is <unk>. Built in code, nothing downloaded.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(ord("a"), ord("z") + 1)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, **TOKENIZER_SPECIAL_TOKENS)


def _tiny_components():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    text_encoder = T5EncoderModel(
        T5Config(
            **{**TEXT_ENCODER_CONFIG, "vocab_size": 32, "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2,
               "num_decoder_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8}
        )
    )
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        **{
            **TRANSFORMER_CONFIG,
            # Small widths; the real latent channels, patch size, time compression and prompt length
            # (the pipeline feeds 226 tokens, and the joint position table is sized for them), and the
            # real sample size (60 x 90 latents, 49 frames): the stored position table is the real
            # model's, used as is at 480 x 720 and 49 frames and recomputed, as there, at other sizes.
            "num_attention_heads": 2,
            "attention_head_dim": 16,  # 3D sine-cosine positions need a width divisible by 16
            "num_layers": 2,
            "text_embed_dim": 32,
            "time_embed_dim": 8,
        }
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        **{
            **VAE_CONFIG,
            # Four levels (8x smaller in height and width, 4x in time) and 16 latent channels, as in the real VAE.
            "block_out_channels": (8, 8, 8, 8),
            "layers_per_block": 1,
            "norm_num_groups": 2,
            # sample_height/width stay the real 480x720: they set the tiles of tiled decoding, which
            # diffusers tunes for 720x480 (autoencoder_kl_cogvideox.py); tiny frames fit in one tile.
        }
    )
    scheduler = CogVideoXDDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    return dict(tokenizer=_tiny_tokenizer(), text_encoder=text_encoder.eval(), transformer=transformer.eval(),
                vae=vae.eval(), scheduler=scheduler)


def _build_tiny(folder):
    import json
    from pathlib import Path

    from diffusers import CogVideoXPipeline

    folder = Path(folder)
    CogVideoXPipeline(**_tiny_components()).save_pretrained(folder, safe_serialization=True)
    # Today's diffusers writes every setting; the real file names these, and what a file leaves
    # out decides the defaults of a scheduler swapped in with from_config.
    config = folder / "scheduler" / "scheduler_config.json"
    version = json.loads(config.read_text())["_diffusers_version"]
    config.write_text(json.dumps({**REAL_SCHEDULER_CONFIG, "_diffusers_version": version}, indent=2) + "\n")


def _decode(pipe, latents):
    # latents: one video as the step callback hands them, (1, latent frames, 16, height/8, width/8);
    # what CogVideoXPipeline does after its loop (decode_latents puts channels first and unscales).
    with torch.no_grad():  # as inside the pipeline's call
        video = pipe.decode_latents(latents.to(pipe._execution_device, pipe.vae.dtype))
    return pipe.video_processor.postprocess_video(video=video, output_type="np")[0]


def _counted_parts():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return {
        "transformer": CogVideoXTransformer3DModel(**TRANSFORMER_CONFIG),
        "text_encoder": T5EncoderModel(T5Config(**TEXT_ENCODER_CONFIG)),
        "vae": AutoencoderKLCogVideoX(**VAE_CONFIG),
    }


def full_size_parameters():
    """Parameters of each part of the full-size CogVideoX-2B, counted on the meta device. Notebook 10.

    Returns {'transformer': ..., 'text_encoder': ..., 'vae': ...}; no memory is allocated.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():
        parts = _counted_parts()
    # Built on the meta device, the encoder's token embedding is a second copy of the shared one
    # (from_pretrained ties them); tied, it is counted once, as the weight files store it.
    parts["text_encoder"].tie_weights()
    return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}


# Activation bytes per byte of dtype. The transformer's per token of one video is from `python
# benchmarks/transformer_memory.py` on the CPU (benchmarks/results/cpu-transformer-memory.json;
# t2v_helpers.memory.calibrate_profile, rounded up). GPU kernels keep other temporary buffers;
# t2v_helpers.memory keeps a margin.
TRANSFORMER_PER_TOKEN = 33000
# The VAE's decode is calibrated on diffusers' own GPU measurements of CogVideoX-2B (49 frames of
# 720x480, float16; docs/source/en/api/pipelines/cogvideox.md, "Memory optimization"), not on the
# CPU: two small CPU decodes, below one tile, gave a per-frame cost that does not carry over to
# full size. Their script prints torch.cuda.max_memory_allocated() / 1024**3 and labels it GB,
# so the figures are GiB. Quoted word for word:
PUBLISHED_GPU_MEMORY = {
    "none": "Without enabling cpu offloading, memory usage is `33 GB`",
    "model": "With enabling cpu offloading, memory usage is `19 GB`",
    "sequential": "When enabled, memory usage is under `4 GB`",
    "model, tiling": "With enabling cpu offloading and tiling, memory usage is `11 GB`",
}
PUBLISHED_PEAK_GIB = {"model": 19.0, "sequential": 4.0}
VAE_TILE = (VAE_CONFIG["sample_height"] // 2, VAE_CONFIG["sample_width"] // 2)  # AutoencoderKLCogVideoX's tile with tiling on
# The decoded frames it gathers: 3 channels, held twice while the pieces are joined (torch.cat).
VAE_PER_FRAME_PIXEL = 6
_FRAMES, _HEIGHT, _WIDTH = 49, 480, 720
VAE_PARAMETERS = 215_583_907  # full_size_parameters()["vae"] (a test keeps them equal)
# With model offload and no tiling the peak is the VAE's phase (the T5 encoder's is 10.7 GiB): its
# weights plus the whole-frame decode. Sequential offload's "under 4 GB" is the lean route with tiling
# on (the CogVideo README's "starting from 4GB*" has every optimisation on): the largest layer, the
# T5 token embedding (0.25 GiB), plus a tiled decode. Both are per byte of float16 (2 bytes).
_GATHERED = VAE_PER_FRAME_PIXEL * _FRAMES * _HEIGHT * _WIDTH
_EMBEDDING = TEXT_ENCODER_CONFIG["vocab_size"] * TEXT_ENCODER_CONFIG["d_model"]
VAE_PER_PIXEL = (PUBLISHED_PEAK_GIB["model"] * 2**30 / 2 - VAE_PARAMETERS - _GATHERED) / (_HEIGHT * _WIDTH)
VAE_TILED_PER_PIXEL = (PUBLISHED_PEAK_GIB["sequential"] * 2**30 / 2 - _EMBEDDING - _GATHERED) / (VAE_TILE[0] * VAE_TILE[1])

MEMORY = Profile(
    parts=_counted_parts,
    denoiser="transformer",
    # 4 frames a latent frame after the first, 2x2 patches of 8x8-pixel latents, and the prompt's tokens joined to them.
    tokens=partial(latent_tokens, frames_per_latent=4, pixels_per_token=16, extra=TRANSFORMER_CONFIG["max_text_seq_length"]),
    per_token=TRANSFORMER_PER_TOKEN,
    vae=chunked_vae(VAE_PER_PIXEL, VAE_PER_FRAME_PIXEL, VAE_TILE, tiled_per_pixel=VAE_TILED_PER_PIXEL),
    source="cpu-transformer-memory (transformer); diffusers' published GPU figures (VAE)",
)


FAMILY = Family(
    name="cogvideox",
    pipeline="CogVideoXPipeline",
    classes=("CogVideoXPipeline",),
    denoiser="transformer",
    models=(
        Model(
            "cogvideox", HUB_ID, "cogvideox", 480, 720, 49,
            about="CogVideoX-2B (THUDM/Zhipu AI, 2024): 720x480, 49 frames played at 8 frames per second, trained in float16.",
        ),
        Model(
            "tiny-cogvideox", "tiny-cogvideox", "cogvideox", TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES,
            build=_build_tiny, version=3,
            about="A tiny random-weight copy of CogVideoX-2B, built in code: its videos are noise.",
        ),
    ),
    fps=8,  # the model card's "8 Frames per Second"
    steps=50,
    guidance=6.0,
    size_multiple=16,  # the VAE's 8x8 pixel blocks, then the transformer's 2x2 patches of latents
    # The VAE packs the first frame alone and each following 4 into one latent frame, so any 4k+1
    # frames make latents; but it decodes latent frames in pairs after an odd first group, and an
    # even number of latent frames (4k+1 frames, k odd: 5, 13, ...) comes back as 4k+4 frames
    # (diffusers' AutoencoderKLCogVideoX._decode; test_family_cogvideox.py). 8k+1 frames (1, 9,
    # ..., 49) come back as asked.
    frame_step=8,
    frames_why="its autoencoder decodes latent frames in pairs, so only 8k+1 frames come back as asked",
    # CogVideoX-2B's model card (README) limits the frames of the 2B to 8N + 1 with N at most 6,
    # 49 by default; its positional table (sample_frames) covers 49 frames.
    max_frames=49,
    max_frames_why="CogVideoX-2B's model card allows 8N + 1 frames with N at most 6, so 49 at most",
    max_tokens=226,
    schedulers=SCHEDULERS,
    step_limits=STEP_LIMITS,
    default_scheduler="cogvideox-ddim",
    on_step=step_end_callback,
    gpu_dtype=torch.float16,  # trained in FP16 (model card); the 5B is BF16
    # Its VAE slices only across a batch of videos; tiling decodes each frame in overlapping tiles.
    vae_switches=("enable_tiling",),
    decode=_decode,
    memory=MEMORY,
    about="CogVideoX: a diffusion transformer on a 3D VAE's latents, a T5 text encoder (226 tokens), 8 frames per second.",
)
