"""The Wan 2.1 family: its tiny model, its real configurations and sizes, decoding, schedulers and step limits."""

import inspect
import json
import warnings

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import families
from t2v_helpers.families import family_named, find_model, wan

FAMILY = family_named("wan")
TINY = find_model("tiny-wan")
PROMPT = "a fox walks on the beach at sunset"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-wan")
    TINY.build(path)
    return path


@pytest.fixture(scope="module")
def pipe(folder):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, steps=2, seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    settings = {**dict(height=TINY.height, width=TINY.width, num_frames=TINY.frames), **kwargs}
    return pipe(PROMPT, num_inference_steps=steps, generator=generator, **settings).frames[0]


def test_the_tiny_model_builds_in_the_real_layout_and_loads_as_a_wan_pipeline(folder, pipe):
    assert type(pipe).__name__ == FAMILY.pipeline == "WanPipeline"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    parts = {name for name, value in index.items() if not name.startswith("_") and isinstance(value, list) and value[0]}
    assert parts == set(wan.PARTS)
    assert {p.name for p in folder.iterdir()} == {*wan.PARTS, "model_index.json"}  # the marker is the wrapper's
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"] and index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert list((folder / "transformer").glob("*.safetensors")) and list((folder / "text_encoder").glob("*.safetensors"))


def test_config_files_have_every_key_of_the_real_ones_and_the_real_values_that_are_not_shrunk(folder):
    shrunk = {"num_attention_heads", "attention_head_dim", "text_dim", "freq_dim", "ffn_dim", "num_layers"}  # the rotary table stays real
    transformer = json.loads((folder / "transformer" / "config.json").read_text())
    assert transformer["_class_name"] == "WanTransformer3DModel"
    assert {k: transformer[k] for k in wan.TRANSFORMER_CONFIG if k not in shrunk} == {k: v for k, v in wan.TRANSFORMER_CONFIG.items() if k not in shrunk}
    vae = json.loads((folder / "vae" / "config.json").read_text())
    assert {k: vae[k] for k in wan.VAE_CONFIG if k not in {"base_dim", "dim_mult", "num_res_blocks"}} == {
        k: v for k, v in wan.VAE_CONFIG.items() if k not in {"base_dim", "dim_mult", "num_res_blocks"}
    }
    encoder = json.loads((folder / "text_encoder" / "config.json").read_text())
    # transformers 5 writes "dtype" for "torch_dtype" and leaves out output_past and tokenizer_class.
    assert set(wan.TEXT_ENCODER_CONFIG) - set(encoder) == {"torch_dtype", "output_past", "tokenizer_class"} and "dtype" in encoder
    assert encoder["architectures"] == ["UMT5EncoderModel"] and encoder["model_type"] == "umt5"
    same = ("pad_token_id", "eos_token_id", "decoder_start_token_id", "feed_forward_proj", "dense_act_fn", "scalable_attention", "layer_norm_epsilon")
    assert {k: encoder[k] for k in same} == {k: wan.TEXT_ENCODER_CONFIG[k] for k in same}
    # The scheduler file is the real one, key for key (only the diffusers version is today's).
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert {k: v for k, v in scheduler.items() if k != "_diffusers_version"} == wan.SCHEDULER_CONFIG


def test_the_real_configs_are_the_published_files_byte_for_byte_in_length():
    # The hub lists transformer/config.json at 465 bytes and scheduler/scheduler_config.json at 751;
    # diffusers writes a config sorted, indented by 2, with its class and version.
    def written(config, cls):
        return len((json.dumps({"_class_name": cls, "_diffusers_version": "0.33.0.dev0", **config}, indent=2, sort_keys=True) + "\n").encode())

    assert written(wan.TRANSFORMER_CONFIG, "WanTransformer3DModel") == 465
    assert written({k: v for k, v in wan.SCHEDULER_CONFIG.items() if k != "_class_name"}, "UniPCMultistepScheduler") == 751


def test_the_tiny_build_is_deterministic(folder, tmp_path):
    from safetensors.torch import load_file

    TINY.build(tmp_path)
    for part in ("transformer", "vae", "text_encoder"):
        for weights in (folder / part).glob("*.safetensors"):
            first, second = load_file(weights), load_file(tmp_path / part / weights.name)
            assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), weights
    for config in folder.rglob("*.json"):
        assert config.read_text() == (tmp_path / config.relative_to(folder)).read_text(), config


def test_the_tokenizer_has_umt5s_special_ids_reads_any_english_and_stops_at_512(pipe):
    tokenizer = pipe.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.model_max_length == FAMILY.max_tokens == 512
    ids = tokenizer("A cat walks on the grass, photorealistic 4K!").input_ids
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id in ids
    assert len(tokenizer) <= pipe.text_encoder.config.vocab_size
    long = tokenizer("word " * 2000, padding="max_length", max_length=FAMILY.max_tokens, truncation=True).input_ids
    assert len(long) == 512


def test_the_family_rules_are_the_pipelines_own(pipe):
    defaults = {k: p.default for k, p in inspect.signature(type(pipe).__call__).parameters.items()}
    real = find_model("wan")
    assert (real.height, real.width, real.frames) == (defaults["height"], defaults["width"], defaults["num_frames"]) == (480, 832, 81)
    assert (FAMILY.steps, FAMILY.guidance, FAMILY.max_tokens) == (defaults["num_inference_steps"], defaults["guidance_scale"], defaults["max_sequence_length"])
    assert FAMILY.size_multiple == pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1] == 16
    assert FAMILY.frame_step == pipe.vae_scale_factor_temporal == 4
    assert FAMILY.check_frames(TINY.frames) and TINY.height % 16 == 0 and TINY.width % 16 == 0
    assert type(pipe.scheduler) is FAMILY.schedulers[FAMILY.default_scheduler][0]
    with pytest.raises(ValueError, match="divisible by 16"):
        run(pipe, steps=1, height=TINY.height + 8)


def test_on_step_calls_once_per_step_and_decode_gives_the_pipelines_own_frames(pipe):
    seen = []
    frames = run(pipe, steps=2, **FAMILY.on_step(seen.append))
    assert len(seen) == 2 and seen[-1].shape == (1, 16, (TINY.frames - 1) // 4 + 1, TINY.height // 8, TINY.width // 8)
    decoded = FAMILY.decode(pipe, seen[-1])
    assert decoded.shape == frames.shape == (TINY.frames, TINY.height, TINY.width, 3)
    np.testing.assert_allclose(decoded, frames, atol=1e-6)
    assert 0 <= decoded.min() and decoded.max() <= 1


@pytest.mark.parametrize("name", list(FAMILY.schedulers))
def test_every_scheduler_gives_finite_frames_and_the_same_seed_the_same_frames(pipe, name):
    cls, overrides = FAMILY.schedulers[name]
    original = pipe.scheduler
    pipe.scheduler = cls.from_config(original.config, **overrides)
    try:
        first, again, other = run(pipe, seed=1), run(pipe, seed=1), run(pipe, seed=2)
    finally:
        pipe.scheduler = original
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def final_latents(name, steps, begin_at_zero=True):
    """WanPipeline's loop (set_timesteps, set_begin_index(0), step) with random noise predictions in place of the transformer."""
    cls, overrides = FAMILY.schedulers[name]
    scheduler = cls.from_config(wan.SCHEDULER_CONFIG, **overrides)
    generator = torch.Generator().manual_seed(0)
    scheduler.set_timesteps(steps)
    if begin_at_zero:
        scheduler.set_begin_index(0)
    latents = torch.randn(1, 16, 1, 2, 2, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in scheduler.timesteps:
            latents = scheduler.step(torch.randn(latents.shape, generator=generator), t, latents, return_dict=False)[0]
    return latents


def test_the_loop_here_is_wanpipelines():
    from diffusers import WanPipeline

    source = inspect.getsource(WanPipeline.__call__)
    assert "self.scheduler.set_begin_index(0)" in source and "scale_model_input" not in source


@pytest.mark.parametrize("name", list(FAMILY.schedulers))
def test_each_limit_works_and_one_step_more_would_too(name):
    # The limit is the model's 1000 training steps, not a failure: flow-matching sigmas never
    # repeat and WanPipeline steps through them by position, so one step more is still finite.
    # check_settings refuses it all the same (validate.MAX_STEPS).
    limit = FAMILY.step_limits[name]
    assert limit == wan.SCHEDULER_CONFIG["num_train_timesteps"] == t2v.validate.MAX_STEPS
    assert torch.isfinite(final_latents(name, limit)).all()
    assert torch.isfinite(final_latents(name, limit + 1)).all()


@pytest.mark.parametrize("name, works", [("unipc", 333), ("dpm", 500)])
def test_a_loop_without_set_begin_index_fails_where_wanpipelines_does_not(name, works):
    # Without a begin index the scheduler looks each timestep up; past these counts two steps
    # round to the same integer timestep and the loop fails (UniPC asserts, DPM indexes past its end).
    assert torch.isfinite(final_latents(name, works, begin_at_zero=False)).all()
    with pytest.raises((AssertionError, IndexError)):
        final_latents(name, works + 1, begin_at_zero=False)
    assert torch.isfinite(final_latents(name, works + 1)).all()


def test_the_negative_prompt_is_the_one_of_diffusers_own_example():
    from diffusers.pipelines.wan import pipeline_wan

    assert f'negative_prompt = "{wan.NEGATIVE_PROMPT}"' in pipeline_wan.EXAMPLE_DOC_STRING


def test_full_size_parameter_counts_match_the_published_sizes():
    counts = wan.full_size_parameters()
    assert set(counts) == set(wan.PUBLISHED_PARAMETERS)
    for part, published in wan.PUBLISHED_PARAMETERS.items():
        assert counts[part] == pytest.approx(published, rel=0.01), part
    assert counts["transformer"] == pytest.approx(1.42e9, rel=0.01)  # the "1.3B" of the name


def test_counting_on_the_meta_device_keeps_umt5s_embedding_tied():
    # Why full_size_parameters builds under torch.device("meta"), not accelerate.init_empty_weights.
    from accelerate import init_empty_weights
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
    with torch.device("meta"):
        tied = UMT5EncoderModel(config)
    with init_empty_weights():
        untied = UMT5EncoderModel(config)
    assert tied.shared.weight is tied.encoder.embed_tokens.weight
    counts = [sum(p.numel() for p in model.parameters()) for model in (untied, tied)]
    assert counts[0] - counts[1] == 1000 * 32


def test_tiny_wan_runs_through_load_pipeline_and_generate():
    pipe = t2v.load_pipeline("tiny-wan", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.dtype == torch.float32  # float32_parts
    result = t2v.generate(pipe, PROMPT, steps=2)
    assert result.frames.shape == (TINY.frames, TINY.height, TINY.width, 3)
    assert result.settings["fps"] == FAMILY.fps == 16 and result.settings["scheduler"] == "unipc"
    assert families.lean_vae(pipe) == ["pipe.vae.enable_tiling()"] and families.vae_is_lean(pipe)
    with pytest.raises(t2v.errors.SettingError, match=r"frames=8 is not 4k\+1 for wan \(its video autoencoder"):
        t2v.generate(pipe, PROMPT, steps=2, frames=8)
    with pytest.raises(t2v.errors.SettingError, match="multiple of 16"):
        t2v.generate(pipe, PROMPT, steps=2, height=72)
