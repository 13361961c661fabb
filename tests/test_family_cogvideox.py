"""The CogVideoX family description (t2v_helpers/families/cogvideox.py) against diffusers and the real repository."""

import inspect
import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXPipeline, DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler

from t2v_helpers.families import family_named, family_of, find_model
from t2v_helpers.families import cogvideox
from t2v_helpers.schedulers import set_scheduler
from tools.find_step_limits import family_failure

FAMILY = family_named("cogvideox")
TINY = find_model("tiny-cogvideox")
PROMPT = "a cat plays a tiny guitar"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("cogvideox") / "tiny"
    TINY.build(path)
    return path


@pytest.fixture(scope="module")
def pipe(folder):
    pipe = DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, steps=2, seed=0, **kwargs):
    settings = dict(num_inference_steps=steps, height=TINY.height, width=TINY.width, num_frames=TINY.frames,
                    guidance_scale=FAMILY.guidance, generator=torch.Generator().manual_seed(seed), output_type="np")
    return pipe(PROMPT, **{**settings, **kwargs}).frames[0]


def test_models_are_found_by_name_and_id():
    assert find_model("cogvideox").id == cogvideox.HUB_ID
    assert find_model(cogvideox.HUB_ID).name == "cogvideox"
    assert TINY.tiny and TINY.family == "cogvideox" and not FAMILY.models[0].tiny


def test_the_real_models_defaults_are_the_pipelines_and_the_model_cards():
    real = FAMILY.models[0]
    config = cogvideox.TRANSFORMER_CONFIG
    # CogVideoXPipeline's defaults: the transformer's sample size (in latents, 8x smaller) and frames.
    assert (real.height, real.width, real.frames) == (config["sample_height"] * 8, config["sample_width"] * 8, config["sample_frames"])
    assert cogvideox.MODEL_CARD["Video Resolution"].startswith(f"{real.width} x {real.height}")
    assert cogvideox.MODEL_CARD["Frame Rate"] == f"{FAMILY.fps} Frames per Second"
    call = inspect.signature(CogVideoXPipeline.__call__).parameters
    assert call["num_inference_steps"].default == FAMILY.steps
    assert call["guidance_scale"].default == FAMILY.guidance
    assert call["max_sequence_length"].default == FAMILY.max_tokens == config["max_text_seq_length"]
    assert cogvideox.MODEL_CARD["Prompt Length Limit"] == f"{FAMILY.max_tokens} Tokens"
    assert FAMILY.gpu_dtype == torch.float16 and "`FP16`" in cogvideox.MODEL_CARD["Precision note"]
    assert FAMILY.check_frames(real.frames) and FAMILY.check_frames(TINY.frames)
    assert all(getattr(m, side) % FAMILY.size_multiple == 0 for m in FAMILY.models for side in ("height", "width"))


def test_tiny_model_builds_and_loads_as_the_real_pipeline_class(pipe):
    assert type(pipe) is CogVideoXPipeline
    assert family_of(pipe) is FAMILY


def test_tiny_model_has_the_real_repositorys_layout(folder):
    index = json.loads((folder / "model_index.json").read_text())
    assert {k: v for k, v in index.items() if k != "_diffusers_version"} == cogvideox.MODEL_INDEX
    parts = {p.name for p in folder.iterdir() if p.is_dir()}
    assert parts == set(cogvideox.MODEL_INDEX) - {"_class_name"}
    for part in ("transformer", "vae", "text_encoder"):
        assert list((folder / part).glob("*.safetensors")), f"{part} has no safetensors weights"
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert {k: v for k, v in scheduler.items() if k != "_diffusers_version"} == cogvideox.REAL_SCHEDULER_CONFIG


# What the tiny model shrinks; every other setting of the real configuration it keeps.
SHRUNK = {
    # The sample sizes stay real: the transformer's position table and the VAE's tiles are the real model's.
    "transformer": {"num_attention_heads", "attention_head_dim", "num_layers", "text_embed_dim", "time_embed_dim"},
    "vae": {"block_out_channels", "layers_per_block", "norm_num_groups"},
    "text_encoder": {"vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                     "relative_attention_num_buckets"},
}
REAL = {"transformer": cogvideox.TRANSFORMER_CONFIG, "vae": cogvideox.VAE_CONFIG, "text_encoder": cogvideox.TEXT_ENCODER_CONFIG}


@pytest.mark.parametrize("part", list(REAL))
def test_tiny_model_keeps_every_real_setting_it_does_not_shrink(folder, part):
    saved = json.loads((folder / part / "config.json").read_text())
    # T5Config in transformers 5 rewrites these two (it always ties embeddings, and an encoder-only model is not encoder-decoder).
    rewritten = {"tie_word_embeddings", "is_encoder_decoder"} if part == "text_encoder" else set()
    for key, value in REAL[part].items():
        if key in SHRUNK[part] or key in rewritten:
            continue
        expected = list(value) if isinstance(value, tuple) else value
        assert saved.get(key) == expected, f"{part}/config.json {key}: {saved.get(key)!r}, the real model has {expected!r}"


def test_tiny_model_build_is_deterministic(folder, tmp_path):
    again = tmp_path / "again"
    TINY.build(again)
    for first in sorted(folder.rglob("*")):
        if first.is_file():
            assert (again / first.relative_to(folder)).read_bytes() == first.read_bytes(), first.relative_to(folder)


def test_tokenizer_is_t5s_with_its_special_ids(pipe):
    ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=FAMILY.max_tokens, truncation=True).input_ids
    assert len(ids) == FAMILY.max_tokens
    assert pipe.tokenizer.unk_token_id not in ids, "a lowercase prompt is all known pieces"
    assert (pipe.tokenizer.pad_token_id, pipe.tokenizer.eos_token_id, pipe.tokenizer.unk_token_id) == (0, 1, 2)
    assert ids[ids.index(1) + 1 :] == [0] * (len(ids) - ids.index(1) - 1), "the end marker, then padding"


def test_on_step_is_called_once_per_step_and_decode_gives_the_pipelines_frames(pipe):
    seen = []
    frames = run(pipe, steps=2, **FAMILY.on_step(lambda latents: seen.append(latents.clone())))
    assert len(seen) == 2
    # The callback's latents are (batch, latent frames, channels, height/8, width/8).
    assert seen[-1].shape == (1, (TINY.frames - 1) // 4 + 1, 16, TINY.height // 8, TINY.width // 8)
    decoded = FAMILY.decode(pipe, seen[-1])
    assert decoded.shape == frames.shape == (TINY.frames, TINY.height, TINY.width, 3)
    np.testing.assert_allclose(decoded, frames, atol=1e-6)
    assert 0.0 <= decoded.min() and decoded.max() <= 1.0


@pytest.mark.parametrize("name", list(FAMILY.schedulers))
def test_every_scheduler_gives_finite_frames_and_the_same_seed_the_same_frames(pipe, name):
    set_scheduler(pipe, name)
    try:
        first, second, other = run(pipe, seed=1), run(pipe, seed=1), run(pipe, seed=2)
    finally:
        set_scheduler(pipe, FAMILY.default_scheduler)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_default_scheduler_is_the_models_own(pipe):
    cls, overrides = FAMILY.schedulers[FAMILY.default_scheduler]
    assert cls.__name__ == cogvideox.REAL_SCHEDULER_CONFIG["_class_name"] == type(pipe.scheduler).__name__ and not overrides


def _alphas_cumprod(cls, overrides=None):
    return cls.from_config(cogvideox.REAL_SCHEDULER_CONFIG, **(overrides or {})).alphas_cumprod


@pytest.mark.parametrize("name", list(FAMILY.schedulers))
def test_every_scheduler_uses_the_noise_levels_the_model_was_trained_on(name):
    own = _alphas_cumprod(CogVideoXDDIMScheduler)
    torch.testing.assert_close(_alphas_cumprod(*FAMILY.schedulers[name]), own)


@pytest.mark.parametrize("cls", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_general_schedulers_ignore_the_snr_shift_so_they_are_not_offered(cls):
    # They run, but without snr_shift_scale their noise levels are not the model's.
    gap = (_alphas_cumprod(cls) - _alphas_cumprod(CogVideoXDDIMScheduler)).abs().max()
    assert gap > 0.2
    assert not any(c is cls for c, _ in FAMILY.schedulers.values())


def test_every_scheduler_has_a_step_limit_no_higher_than_the_training_steps():
    assert set(FAMILY.step_limits) == set(FAMILY.schedulers)
    assert all(1 <= n <= cogvideox.REAL_SCHEDULER_CONFIG["num_train_timesteps"] for n in FAMILY.step_limits.values())


@pytest.fixture(scope="module")
def fails():
    return family_failure("cogvideox")[1]


@pytest.mark.parametrize("name", list(FAMILY.schedulers))
def test_one_step_past_each_limit_fails(fails, name):
    # The limits themselves were run to 1000 steps by tools/find_step_limits.py (minutes each on a
    # CPU; benchmarks/results/step-limits-cogvideox.txt): too slow to repeat here.
    assert fails(name, FAMILY.step_limits[name] + 1), f"{name} ran {FAMILY.step_limits[name] + 1} steps to finite latents"


def test_sizes_must_be_multiples_of_the_size_multiple(pipe):
    assert FAMILY.size_multiple == 16
    assert run(pipe, steps=1, height=48).shape[1] == 48
    with pytest.raises(RuntimeError):  # a multiple of 8, not of 16: latents of odd height do not split into 2x2 patches
        run(pipe, steps=1, height=40)


@pytest.mark.parametrize("frames", [1, 9, 17])
def test_frame_counts_of_the_frame_step_come_back_as_asked(pipe, frames):
    assert FAMILY.check_frames(frames)
    assert run(pipe, steps=1, num_frames=frames).shape[0] == frames


@pytest.mark.parametrize("frames", [5, 13])
def test_4k_plus_1_frames_with_k_odd_come_back_as_4k_plus_4(pipe, frames):
    # Why the frame step is 8, not 4: an even number of latent frames decodes to 4 per latent frame.
    assert not FAMILY.check_frames(frames)
    assert run(pipe, steps=1, num_frames=frames).shape[0] == frames + 3


def test_parameter_counts_match_the_published_weight_files():
    counted = cogvideox.full_size_parameters()
    assert set(counted) == set(cogvideox.PUBLISHED_PARAMETERS)
    for part, published in cogvideox.PUBLISHED_PARAMETERS.items():
        # The hub shows file sizes to 3 significant figures.
        assert counted[part] == pytest.approx(published, rel=0.005), part


def test_load_pipeline_and_generate_run_the_tiny_model_with_the_familys_defaults():
    import t2v_helpers as t2v

    pipe = t2v.load_pipeline("tiny-cogvideox", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    steps_seen = []
    result = t2v.generate(pipe, PROMPT, steps=2, on_step=lambda step, steps, latents: steps_seen.append(step))
    assert type(pipe) is CogVideoXPipeline and steps_seen == [1, 2]
    assert result.frames.shape == (TINY.frames, TINY.height, TINY.width, 3) and np.isfinite(result.frames).all()
    assert result.settings["fps"] == FAMILY.fps and result.settings["guidance"] == FAMILY.guidance
    assert result.settings["scheduler"] == FAMILY.default_scheduler
