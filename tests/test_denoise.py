"""The denoising view (notebook 06): capture every step without changing the video; fast and exact previews."""

import os

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers.denoise import LATENT_TO_RGB, predicted_clean

STEPS = int(os.environ["T2V_STEPS"])
SIZE = int(os.environ["T2V_SIZE"])
SMALL = dict(frames=2, height=SIZE, width=SIZE)


@pytest.mark.parametrize("scheduler", t2v.scheduler_names())
def test_capture_keeps_every_step_and_leaves_the_video_unchanged(pipe, scheduler):
    t2v.set_scheduler(pipe, scheduler)
    plain = t2v.generate(pipe, "a lighthouse at night", steps=STEPS, seed=3, **SMALL)
    captured = t2v.capture_denoising(pipe, "a lighthouse at night", steps=STEPS, seed=3, **SMALL)
    assert np.array_equal(captured.result.frames, plain.frames)
    assert captured.steps == len(captured.predicted) == len(captured.timesteps) == STEPS
    factor = pipe.vae_scale_factor
    shape = (4, SMALL["frames"], SMALL["height"] // factor, SMALL["width"] // factor)
    assert all(tuple(x.shape) == shape for x in captured.latents + captured.predicted)
    assert captured.unet_calls >= STEPS
    # Decoding the last step's latents is exactly the pipeline's own last stage.
    assert np.array_equal(t2v.decode_latents(pipe, captured.latents[-1]), plain.frames)


def test_predicted_clean_inverts_the_training_noise_formula(pipe):
    scheduler = pipe.scheduler
    clean, noise = torch.randn(4, 2, 8, 8, dtype=torch.float64), torch.randn(4, 2, 8, 8, dtype=torch.float64)
    a = scheduler.alphas_cumprod[600].double()
    sample = a.sqrt() * clean + (1 - a).sqrt() * noise
    assert torch.allclose(predicted_clean(scheduler, sample, noise, 600.0), clean)


def test_fast_preview_maps_each_channel_to_its_colour():
    latents = torch.zeros(4, 3, 2, 2)
    latents[2] = 1.0  # only channel 2
    frames = t2v.denoise.preview_latents(latents, scale=4)
    assert frames.shape == (3, 8, 8, 3) and frames.dtype == np.float32
    assert np.allclose(frames, (LATENT_TO_RGB[2].numpy() + 1) / 2)
    assert t2v.denoise.preview_latents(torch.full((4, 1, 2, 2), 50.0)).max() == 1.0  # clipped to 0..1
    assert np.array_equal(t2v.denoise.preview_latents(latents[None]), t2v.denoise.preview_latents(latents))  # the pipeline's batch of one
    with pytest.raises(ValueError, match="latents='a tensor of shape \\(3, 2, 2\\)' is not one video's latents"):
        t2v.denoise.preview_latents(latents[0])
    with pytest.raises(ValueError, match="scale=0"):
        t2v.denoise.preview_latents(latents, scale=0)


def test_views_at_chosen_steps_match_the_video_size(pipe):
    t2v.set_scheduler(pipe, "dpm")
    captured = t2v.capture_denoising(pipe, "a lighthouse at night", steps=STEPS, **SMALL)
    for exact in (False, True):
        videos, titles = t2v.views_at_steps(pipe, captured, exact=exact)
        assert len(videos) == len(titles) == len(t2v.pick_steps(STEPS))
        assert all(v.shape == captured.result.frames.shape for v in videos)
        assert titles[-1].startswith(f"step {STEPS}/{STEPS}\n" + ("VAE" if exact else "fast"))
    grid = t2v.tile_videos(videos, titles)
    assert grid.shape[0] == SMALL["frames"]
    noisy, _ = t2v.views_at_steps(pipe, captured, [1], view="latents")
    assert not np.array_equal(noisy[0], t2v.views_at_steps(pipe, captured, [1])[0][0])


def test_bad_steps_and_views_are_refused_by_name(pipe):
    t2v.set_scheduler(pipe, "ddim")
    captured = t2v.capture_denoising(pipe, "a lighthouse at night", steps=STEPS, **SMALL)
    with pytest.raises(ValueError, match=f"steps=0 is not a step of this run.*1 to {STEPS}"):
        t2v.views_at_steps(pipe, captured, [0])
    with pytest.raises(ValueError, match=f"steps={STEPS + 1}"):
        t2v.views_at_steps(pipe, captured, [STEPS + 1])
    with pytest.raises(ValueError, match="view='clean'.*'predicted'"):
        t2v.views_at_steps(pipe, captured, view="clean")


def test_pick_steps_spreads_from_first_to_last():
    assert t2v.pick_steps(25) == [1, 7, 13, 19, 25]
    assert t2v.pick_steps(2) == [1, 2]
    assert t2v.pick_steps(50, count=3) == [1, 26, 50]


def test_fast_preview_costs_less_than_a_vae_decode(pipe):
    t2v.set_scheduler(pipe, "ddim")
    captured = t2v.capture_denoising(pipe, "a lighthouse at night", steps=1, **SMALL)
    costs = t2v.preview_costs(pipe, captured.latents[-1], repeats=3)
    assert 0 < costs["fast_s"] < costs["exact_s"]
    assert len(costs["fast_runs"]) == len(costs["exact_runs"]) == 3
    assert min(costs["fast_runs"]) <= costs["fast_s"] <= max(costs["fast_runs"])
    assert costs["ratio"] > 1
    with pytest.raises(ValueError, match="repeats=0"):
        t2v.preview_costs(pipe, captured.latents[-1], repeats=0)


def starting_timesteps(scheduler, steps):
    """Where each step starts, by diffusers' rule for the step callback: after the warm-up
    calls, once every `order` UNet calls and after the last; a step starts at the first
    timestep after the previous callback."""
    scheduler = type(scheduler).from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    timesteps = [float(t) for t in scheduler.timesteps]
    warmup = len(timesteps) - steps * scheduler.order
    ends = [i for i in range(len(timesteps)) if i == len(timesteps) - 1 or (i + 1 > warmup and (i + 1) % scheduler.order == 0)]
    return [timesteps[0]] + [timesteps[end + 1] for end in ends[:-1]]


@pytest.mark.parametrize("scheduler", t2v.scheduler_names())
def test_each_tile_is_labelled_with_the_timestep_its_step_starts_at(pipe, scheduler):
    steps = 4  # enough for Heun (two UNet calls a step) and PNDM (warm-up calls) to show their pattern
    t2v.set_scheduler(pipe, scheduler)
    captured = t2v.capture_denoising(pipe, "a lighthouse at night", steps=steps, seed=3, **SMALL)
    expected = starting_timesteps(pipe.scheduler, steps)
    assert len(expected) == steps
    assert captured.timesteps == pytest.approx(expected)
    assert captured.timesteps[0] == pytest.approx(float(pipe.scheduler.timesteps[0]))  # step 1 starts from pure noise
    assert all(a > b for a, b in zip(captured.timesteps, captured.timesteps[1:])), captured.timesteps
    _, titles = t2v.views_at_steps(pipe, captured, list(range(1, steps + 1)))
    assert [title.split("t=")[1] for title in titles] == [f"{t:g}" for t in captured.timesteps]
