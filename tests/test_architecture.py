"""The full-size architecture as data: it matches the published model's sizes and layout."""

import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers.families.modelscope import PUBLISHED_PARAMETERS, UNET_CONFIG, build_full_size_pipeline, full_size_parameters
from t2v_helpers.families.modelscope import REAL_SCHEDULER_CONFIG


@pytest.fixture(scope="module")
def empty_pipe():
    return build_full_size_pipeline(torch.bfloat16, empty=True)


@pytest.mark.parametrize("part", ["unet", "vae", "text_encoder"])
def test_parameter_counts_match_the_published_sizes(part):
    counts = full_size_parameters()
    assert counts[part] == pytest.approx(PUBLISHED_PARAMETERS[part], rel=0.005)


def test_total_is_the_model_cards_1_7_billion():
    counts = full_size_parameters()
    assert 1.7e9 <= counts["unet"] + counts["vae"] + counts["text_encoder"] < 1.9e9


def test_exact_counts_of_this_configuration():
    # Exact, so a changed configuration is noticed even within the published rounding.
    counts = full_size_parameters()
    assert (counts["unet"], counts["vae"], counts["text_encoder"]) == (1_411_233_860, 83_653_863, 340_387_840)
    assert counts["largest_layer"] == 49408 * 1024  # the token embedding


def test_empty_build_is_the_real_pipeline_layout_on_the_meta_device(empty_pipe):
    assert type(empty_pipe).__name__ == "TextToVideoSDPipeline"
    assert t2v.parameter_counts(empty_pipe) == {k: v for k, v in full_size_parameters().items() if k != "largest_layer"}
    for part in (empty_pipe.unet, empty_pipe.vae, empty_pipe.text_encoder):
        parameter = next(part.parameters())
        assert parameter.device.type == "meta" and parameter.dtype == torch.bfloat16
    assert empty_pipe.unet.config.block_out_channels == UNET_CONFIG["block_out_channels"]
    assert empty_pipe.vae_scale_factor == 8  # 256x256 videos come from 32x32 latents
    assert empty_pipe.unet.config.sample_size * empty_pipe.vae_scale_factor == 256


def test_scheduler_is_the_real_models(empty_pipe):
    config = empty_pipe.scheduler.config
    assert type(empty_pipe.scheduler).__name__ == REAL_SCHEDULER_CONFIG["_class_name"]
    for key in ("beta_start", "beta_end", "beta_schedule", "steps_offset", "prediction_type"):
        assert config[key] == REAL_SCHEDULER_CONFIG[key]


def test_the_scheduler_config_is_the_whole_real_file():
    # ali-vilab/text-to-video-ms-1.7b's scheduler/scheduler_config.json holds these keys besides _diffusers_version.
    assert set(REAL_SCHEDULER_CONFIG) == {
        "_class_name", "beta_start", "beta_end", "beta_schedule", "clip_sample", "clip_sample_range", "dynamic_thresholding_ratio",
        "num_train_timesteps", "prediction_type", "sample_max_value", "set_alpha_to_one", "skip_prk_steps", "steps_offset",
        "thresholding", "trained_betas",
    }
    assert (REAL_SCHEDULER_CONFIG["clip_sample_range"], REAL_SCHEDULER_CONFIG["dynamic_thresholding_ratio"]) == (1.0, 0.995)
    assert REAL_SCHEDULER_CONFIG["sample_max_value"] == 1.0 and REAL_SCHEDULER_CONFIG["thresholding"] is False


def test_forward_chunking_exists_on_this_unet(empty_pipe):
    """Notebook 07 teaches pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)."""
    empty_pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
    chunked = [m for m in empty_pipe.unet.modules() if getattr(m, "_chunk_size", None) == 1]
    assert chunked and all(m._chunk_dim == 1 for m in chunked)

