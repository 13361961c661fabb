"""Wan 2.1 text-to-video (Alibaba's Wan team, 2025) through diffusers' WanPipeline. Notebook 09.

A diffusion transformer denoises 16-channel latents made by a video VAE that shrinks each
frame 8x8 and every 4 frames to 1 (so a video has 4k+1 frames); a UMT5-XXL text encoder reads
up to 512 tokens; the noise is flow matching (a straight line from noise to video), sampled by
UniPC with the sigmas shifted by 3.0 for 480p.

Sources, quoted below where used:
- the repository https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers (its file listings
  give the file sizes used here);
- the diffusers documentation for Wan, docs/source/en/api/pipelines/wan.md in
  https://github.com/huggingface/diffusers, shown at https://huggingface.co/docs/diffusers/api/pipelines/wan;
- diffusers 0.42.1's src/diffusers/pipelines/wan/pipeline_wan.py (WanPipeline) and
  scripts/convert_wan_to_diffusers.py, which wrote the repository's configs.
"""

from functools import lru_cache, partial

import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from . import Family, Model, Profile, chunked_vae, latent_tokens, step_end_callback

REPOSITORY = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

# transformer/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (465 bytes on the hub). The values
# are the "Wan-T2V-1.3B" entry of diffusers' scripts/convert_wan_to_diffusers.py, which made the
# repository, plus the two defaults the saved file also names (image_dim, rope_max_seq_len).
# Written out as diffusers writes a config (sorted, indent 2, with "_class_name" and
# "_diffusers_version": "0.33.0.dev0"), these keys make exactly 465 bytes.
TRANSFORMER_CONFIG = {
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}

# vae/config.json: the Wan 2.1 video VAE. Values from the copy
# of this repository's file at https://huggingface.co/ai-toolkit/wan2.1-vae/blob/main/config.json
# ("_name_or_path": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"), keeping the keys of diffusers' own
# upload https://huggingface.co/diffusers/Wan2.1-VAE/blob/main/config.json; they are also the
# defaults of diffusers' AutoencoderKLWan. latents_mean/std normalise each latent channel.
VAE_CONFIG = {
    "attn_scales": [],
    "base_dim": 96,
    "dim_mult": [1, 2, 4, 4],
    "dropout": 0.0,
    "latents_mean": [
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ],
    "latents_std": [
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916,
    ],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],  # sic: diffusers' spelling
    "z_dim": 16,
}

# text_encoder/config.json (854 bytes on the hub): the encoder half of google/umt5-xxl. Values
# from the copies at https://huggingface.co/nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers/blob/main/text_encoder/config.json
# (its "_name_or_path" is this repository's text_encoder folder) and at
# https://huggingface.co/Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers (same encoder); torch_dtype float32
# as the repository's 22.7 GB of weights for 5.68 billion parameters show.
TEXT_ENCODER_CONFIG = {
    "architectures": ["UMT5EncoderModel"],
    "classifier_dropout": 0.0,
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
    "model_type": "umt5",
    "num_decoder_layers": 24,
    "num_heads": 64,
    "num_layers": 24,
    "output_past": True,
    "pad_token_id": 0,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "scalable_attention": True,
    "tie_word_embeddings": False,
    "tokenizer_class": "T5Tokenizer",
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 256384,
}

# The special tokens of the UMT5 (SentencePiece) tokenizer in tokenizer/: the ids the text
# encoder's config names (pad_token_id 0, eos_token_id 1) and T5's "<unk>" at 2.
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"

# scheduler/scheduler_config.json (751 bytes on the hub, updated by the repository's pull
# request #4): UniPC on flow-matching sigmas shifted by 3.0. The diffusers documentation for Wan:
# "By default, Wan uses the UniPCMultistepScheduler(prediction_type="flow_prediction",
# use_flow_sigmas=True, flow_shift=3.0) scheduler"; pipeline_wan.py's example: "flow_shift = 5.0
# # 5.0 for 720P, 3.0 for 480P". Keys as in the same file of Wan-AI/Wan2.1-VACE-14B-diffusers;
# written as diffusers writes them, these keys make exactly 751 bytes. The tiny model writes
# this file as it is, since what a config leaves out decides a swapped-in scheduler's defaults.
SCHEDULER_CONFIG = {
    "_class_name": "UniPCMultistepScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}

# model_index.json: the parts, each a folder of the repository (its tokenizer is a T5TokenizerFast).
PARTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")

# Published sizes. The repository stores float32 weights (4 bytes a parameter): transformer/
# 5 GB + 677 MB, text_encoder/ 4.97 + 4.9 + 4.97 + 5 + 2.89 GB, and the VAE 508 MB (its
# diffusers upload https://huggingface.co/StevenZhang/Wan2.1-VAE_Diff, 508 MB). The hub rounds
# to three figures, so counts agree with these to within 1%. "1.3B" in the name is the
# transformer; the diffusers documentation quotes the Wan report: "The 1.3B model demonstrates
# exceptional resource efficiency, requiring only 8.19 GB VRAM".
PUBLISHED_BYTES = {"transformer": 5.677e9, "text_encoder": 22.73e9, "vae": 508e6}
PUBLISHED_PARAMETERS = {part: size / 4 for part, size in PUBLISHED_BYTES.items()}

# The negative prompt of the examples in the diffusers documentation and in pipeline_wan.py, word
# for word. Not passed by default: WanPipeline's own default is none (an empty prompt), as for
# every family here, and generate() takes negative_prompt from its caller; a lesson passes this one to compare.
NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)

FLOW_SHIFT = SCHEDULER_CONFIG["flow_shift"]

# name -> (class, settings that differ from the model's own scheduler config). Each reads the
# flow-matching sigmas shifted as the model's own scheduler does; a DDPM-style scheduler
# (epsilon prediction, betas) would not fit a flow-matching model.
SCHEDULERS = {
    "unipc": (UniPCMultistepScheduler, {}),  # the model's own
    "dpm": (DPMSolverMultistepScheduler, {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": FLOW_SHIFT}),
    "flow-euler": (FlowMatchEulerDiscreteScheduler, {"shift": FLOW_SHIFT}),
}

# The most steps each scheduler is offered: the model's 1000 training steps. No failure sets
# these: `tools/find_step_limits.py --family wan` ran tiny-wan's own pipeline with each
# scheduler, and every one gave finite latents at 1000 steps and at 1001
# (benchmarks/results/wan-step-limits.txt); tests/test_family_wan.py runs the pipeline's loop
# with random noise predictions at both counts. The flow-matching sigmas are a continuous line,
# and WanPipeline steps through them by position (set_begin_index(0)). A hand-written loop
# without set_begin_index(0) looks each timestep up instead, and above 333 steps (UniPC) or
# 500 (DPM) two steps round to the same integer timestep and the loop fails.
STEP_LIMITS = {name: SCHEDULER_CONFIG["num_train_timesteps"] for name in SCHEDULERS}

# A tiny model's prompt words: any other word is "<unk>", and the three special tokens come first.
_TINY_WORDS = (
    "a the of and in on with at cat dog fox horse astronaut man woman walks runs riding flying "
    "grass beach city sky water snow sunset night"
).split()


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([PAD, EOS, UNK, *_TINY_WORDS])}
    words = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    # T5 ends every text with "</s>", as the real tokenizer does.
    words.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, vocab[EOS])])
    # 512: the prompt tokens WanPipeline reads (its max_sequence_length).
    return PreTrainedTokenizerFast(tokenizer_object=words, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=512)


def _build_tiny(folder):
    import json
    from pathlib import Path

    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    # Small widths; the real rotary table (rope_max_seq_len 1024 positions along each axis), so
    # the tiny model takes the real model's 480 x 832 frames (52 patches across) and longer.
    transformer = WanTransformer3DModel(
        **{**TRANSFORMER_CONFIG, "num_attention_heads": 2, "attention_head_dim": 12, "text_dim": 32, "freq_dim": 32, "ffn_dim": 32, "num_layers": 2}
    )
    # The real latent channels and their mean/std, and the real 8x (space) and 4x (time) scaling;
    # only the widths are small.
    vae = AutoencoderKLWan(**{**VAE_CONFIG, "base_dim": 3, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1})
    real = {k: TEXT_ENCODER_CONFIG[k] for k in ("pad_token_id", "eos_token_id", "decoder_start_token_id", "feed_forward_proj", "dense_act_fn", "scalable_attention", "layer_norm_epsilon", "tie_word_embeddings")}
    config = UMT5Config(vocab_size=32, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8, **real)
    text_encoder = UMT5EncoderModel(config).eval()
    scheduler = UniPCMultistepScheduler.from_config(SCHEDULER_CONFIG)
    pipe = WanPipeline(tokenizer=_tiny_tokenizer(), text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    path = Path(folder) / "scheduler" / "scheduler_config.json"
    version = json.loads(path.read_text())["_diffusers_version"]
    path.write_text(json.dumps({**SCHEDULER_CONFIG, "_diffusers_version": version}, indent=2) + "\n")


def _full_size_parts():
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    # torch.device("meta") rather than accelerate.init_empty_weights: under the latter,
    # UMT5EncoderModel's input embedding stays a second copy of `shared` instead of being tied to
    # it, which counts its 1.05 billion parameters twice.
    with torch.device("meta"):
        return {
            "transformer": WanTransformer3DModel(**TRANSFORMER_CONFIG),
            "text_encoder": UMT5EncoderModel(UMT5Config(**TEXT_ENCODER_CONFIG)),
            "vae": AutoencoderKLWan(**VAE_CONFIG),
        }


@lru_cache(maxsize=1)
def full_size_parameters():
    """Parameters of each part of the full-size Wan 2.1 1.3B, counted on the meta device. Notebook 09.

    Returns {'transformer': ..., 'text_encoder': ..., 'vae': ...}: shapes only, no memory,
    a few seconds. The text encoder is four times the transformer.
    """
    return {name: sum(p.numel() for p in part.parameters()) for name, part in _full_size_parts().items()}


# Activation bytes per byte of dtype, from `python benchmarks/transformer_memory.py` on the CPU
# (benchmarks/results/cpu-transformer-memory.json; t2v_helpers.memory.calibrate_profile, rounded up):
# the transformer's per token of one video, the VAE's per pixel decoded at once and per pixel of
# every frame. GPU kernels keep other temporary buffers; t2v_helpers.memory keeps a margin.
TRANSFORMER_PER_TOKEN = 35500
VAE_PER_PIXEL = 5140
VAE_PER_FRAME_PIXEL = 29.5
VAE_TILE = (256, 256)  # AutoencoderKLWan's tile (tile_sample_min_height, _width) with tiling on
FLOAT32_PARTS = ("vae",)  # "Set the AutoencoderKLWan dtype to torch.float32 for better decoding quality"

MEMORY = Profile(
    parts=_full_size_parts,
    denoiser="transformer",
    # 4 frames a latent frame after the first; 1x2x2 patches of 8x8-pixel latents.
    tokens=partial(latent_tokens, frames_per_latent=4, pixels_per_token=8 * TRANSFORMER_CONFIG["patch_size"][1]),
    per_token=TRANSFORMER_PER_TOKEN,
    vae=chunked_vae(VAE_PER_PIXEL, VAE_PER_FRAME_PIXEL, VAE_TILE),
    guidance_batch=1,  # WanPipeline calls the transformer once for the prompt, then once for the negative prompt
    float32_parts=FLOAT32_PARTS,
    source="cpu-transformer-memory",
)


@torch.no_grad()
def _decode(pipe, latents):
    # What WanPipeline.__call__ does after its loop: undo the per-channel normalisation,
    # decode, and turn the video into numpy frames in 0..1.
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipe.vae
    latents = latents.to(get_module_execution_device(vae), vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    video = vae.decode(latents / inverse_std + mean, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type="np")[0]


FAMILY = Family(
    name="wan",
    pipeline="WanPipeline",
    classes=("WanPipeline",),
    denoiser="transformer",
    models=(
        Model(
            "wan", REPOSITORY, "wan", 480, 832, 81,
            about=(
                "Wan 2.1 text-to-video 1.3B (2025): 81 frames of 832x480 (about 5 s at 16 frames per second), "
                "the defaults of diffusers' WanPipeline and its documentation."
            ),
        ),
        Model(
            "tiny-wan", "tiny-wan", "wan", 64, 112, 9, build=_build_tiny, version=2,
            about="A tiny random-weight copy of the Wan 2.1 model, built in code: its videos are noise.",
        ),
    ),
    # export_to_video(output, "output.mp4", fps=16) in every example of the documentation.
    fps=16,
    steps=50,  # WanPipeline's num_inference_steps default
    guidance=5.0,  # WanPipeline's default and the documentation's guidance_scale=5.0
    # pipeline_wan.py: height and width "have to be divisible by 16" (check_inputs), the VAE's
    # 8x times the transformer's 2x2 patches.
    size_multiple=16,
    frame_step=4,  # WanPipeline rounds num_frames - 1 to a multiple of its VAE's temporal factor, 4, with a warning
    frames_why="its video autoencoder keeps the first frame and packs each next 4 frames into one latent frame",
    max_tokens=512,  # WanPipeline's max_sequence_length default
    schedulers=SCHEDULERS,
    step_limits=STEP_LIMITS,
    default_scheduler="unipc",
    on_step=step_end_callback,
    # The documentation runs the transformer and text encoder in bfloat16, but this course's
    # GPU, a T4 (Turing, compute capability 7.5), has no bfloat16 tensor cores (they came with
    # Ampere, 8.0): float16 there. Both libraries guard half precision where they expect it
    # to overflow: diffusers keeps the transformer's norms, time embedding and rotary embedding
    # in float32 (WanTransformer3DModel._keep_in_fp32_modules), and transformers' UMT5 clamps
    # float16 overflow (modeling_umt5.py). Not yet run on the real weights in float16 here.
    # What Wan 2.1 1.3B needs on a T4 (16 GB), from the sizes above: float16 weights; the VAE in
    # float32 ("Set the AutoencoderKLWan dtype to torch.float32 for better decoding quality",
    # 0.51 GB); model CPU offload, since the UMT5 encoder alone is 13.4 GB in float16 (transformers
    # keeps its feed-forward output layers `wo`, 1.0 billion parameters, in float32), and with the
    # transformer (2.84 GB) and the VAE that makes 16.7 GB of weights, more than a 16 GB card;
    # as much free RAM as that encoder while it waits on the CPU; and about 29 GB of disk for the
    # float32 download. t2v_helpers.memory.weight_bytes counts these.
    gpu_dtype=torch.float16,
    float32_parts=FLOAT32_PARTS,
    vae_switches=("enable_tiling",),  # a video VAE: tiles in space (AutoencoderKLWan.enable_tiling)
    decode=_decode,
    memory=MEMORY,
    about=(
        "Wan 2.1: a diffusion transformer on flow-matching noise, a UMT5-XXL text encoder (512 tokens), "
        "a video VAE that makes 4k+1 frames, 16 frames per second."
    ),
)
