import numpy as np
import pytest

import t2v_helpers as t2v

SMALL = dict(height=32, width=32)


def test_shapes_range_and_settings(tiny_pipe):
    result = t2v.generate(tiny_pipe, "Spiderman is surfing", steps=2, frames=5, height=48, width=32, seed=3)
    assert result.frames.shape == (5, 48, 32, 3)
    assert result.frames.dtype == np.float32
    assert 0 <= result.frames.min() <= result.frames.max() <= 1
    assert result.seed == 3 and result.prompt == "Spiderman is surfing"
    assert result.settings["model"] == "tiny"
    assert (result.settings["steps"], result.settings["frames"]) == (2, 5)
    assert result.elapsed_s > 0


def test_default_size_is_the_models_own(tiny_pipe):
    result = t2v.generate(tiny_pipe, "a dog", steps=1, frames=1)
    size = tiny_pipe.unet.config.sample_size * tiny_pipe.vae_scale_factor
    assert result.frames.shape[1:3] == (size, size)


def test_same_seed_same_frames_other_seed_other_frames(tiny_pipe):
    make = lambda seed: t2v.generate(tiny_pipe, "a dog", steps=2, frames=3, seed=seed, **SMALL).frames
    first, again, other = make(7), make(7), make(8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_random_seed_is_drawn_and_recorded(tiny_pipe):
    result = t2v.generate(tiny_pipe, "a dog", steps=1, frames=2, seed=None, **SMALL)
    assert 0 <= result.seed <= 2**63 - 1
    again = t2v.generate(tiny_pipe, "a dog", steps=1, frames=2, seed=result.seed, **SMALL)
    assert np.array_equal(result.frames, again.frames)


@pytest.mark.parametrize("scheduler", t2v.scheduler_names())
def test_on_step_is_called_at_every_step(tiny_pipe, scheduler):
    t2v.set_scheduler(tiny_pipe, scheduler)
    calls = []
    t2v.generate(tiny_pipe, "a dog", steps=4, frames=2, **SMALL, on_step=lambda step, total, latents: calls.append((step, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize(
    "settings, words",
    [
        (dict(prompt="  "), "prompt"),
        (dict(steps=0), "steps"),
        (dict(frames=0), "frames"),
        (dict(height=30), "height"),
        (dict(width=36), "width"),
        (dict(guidance=-1.0), "guidance"),
        (dict(seed=-5), "seed"),
    ],
)
def test_bad_settings_are_refused_before_any_work(tiny_pipe, settings, words):
    calls = []
    settings = {"prompt": "a dog", **SMALL, **settings}
    with pytest.raises(ValueError, match=words):
        t2v.generate(tiny_pipe, steps=settings.pop("steps", 2), on_step=lambda *a: calls.append(a), **settings)
    assert calls == []


def notebook_view(printed):
    """The lines a notebook shows of printed text: a carriage return sends the line back to its start."""
    return [line.rsplit("\r", 1)[-1].strip() for line in printed.split("\n") if line.rsplit("\r", 1)[-1].strip()]


def test_one_bar_of_our_own_and_none_from_diffusers(tiny_pipe, capsys, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "t2v_cpu_notice_shown", False)  # as on a freshly loaded pipeline
    tiny_pipe.set_progress_bar_config(desc="kept")
    t2v.generate(tiny_pipe, "a dog", steps=3, frames=2, **SMALL)
    printed = capsys.readouterr()
    assert printed.err == "", "diffusers' own bar (stderr) is switched off"
    lines = notebook_view(printed.out)
    bars = [line for line in lines if "step" in line and "|" in line]
    assert len(bars) == 1 and "100%" in bars[0] and "3/3" in bars[0], lines  # no bar left behind at 0% or midway
    if t2v.environment.gpu_info() is None:
        assert len(lines) == 2 and lines[0].startswith("No GPU, so this runs on the CPU"), lines  # the notice, once, above the bar
    assert tiny_pipe._progress_bar_config == {"desc": "kept"}, "the pipeline's own bar settings are given back"


def test_no_bar_when_the_pipelines_bar_is_disabled(tiny_pipe, capsys, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "t2v_cpu_notice_shown", True)
    tiny_pipe.set_progress_bar_config(disable=True)
    try:
        t2v.generate(tiny_pipe, "a dog", steps=2, frames=2, **SMALL)
    finally:
        tiny_pipe.set_progress_bar_config()
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == ""
