"""Every family through every helper: each tiny model in t2v.families.models() loads, makes videos,
saves them at its family's rate, swaps its schedulers, compares them, shows its denoising, runs in the
studio, the command line, batches and the benchmark. A new family's tiny model is tested here without
a line of this file changing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import bench  # benchmarks/bench.py: pyproject.toml puts benchmarks/ on pytest's sys.path
import t2v_helpers as t2v
from t2v_helpers import cli, families
from t2v_helpers.denoise import predicted_clean
from t2v_helpers.errors import SettingError

TINY = [name for name, model in families.models().items() if model.tiny]
PROMPT = "a cat walks on the beach"
STEPS = 2


def small(pipe):
    """The smallest settings that still show what differs: 2 steps, the fewest frames above one of
    the family's form (2 for ModelScope, 5 for Wan), the smallest size of its blocks from 32 up."""
    family = t2v.families.family_of(pipe)
    size = -(-32 // family.size_multiple) * family.size_multiple
    return dict(steps=STEPS, frames=1 + family.frame_step, height=size, width=size, seed=3)


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    """Each tiny model's pipeline, loaded once; float32, so the exact comparisons below hold on any CPU."""
    pipe = t2v.load_pipeline(request.param, dtype=torch.float32, verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe(tiny):
    t2v.set_scheduler(tiny, t2v.families.family_of(tiny).default_scheduler)
    return tiny


def test_load_pipeline_gives_the_familys_pipeline_and_generate_its_videos(pipe):
    family, model = t2v.families.family_of(pipe), t2v.families.model_of(pipe)
    assert type(pipe).__name__ == family.pipeline and model.tiny and model.family == family.name
    settings = small(pipe)
    result = t2v.generate(pipe, PROMPT, **settings)
    assert result.frames.shape == (settings["frames"], settings["height"], settings["width"], 3)
    assert family.check_frames(len(result.frames))
    assert np.isfinite(result.frames).all() and 0 <= result.frames.min() and result.frames.max() <= 1
    assert result.settings["fps"] == family.fps and result.settings["model"] == model.name
    assert result.settings["scheduler"] == family.default_scheduler


def test_a_saved_video_plays_at_the_familys_rate(pipe, tmp_path):
    result = t2v.generate(pipe, PROMPT, **small(pipe))
    saved = t2v.save_video(result, tmp_path)
    sidecar = json.loads(saved.sidecar.read_text())
    assert sidecar["fps"] == t2v.families.family_of(pipe).fps and sidecar["frame_count"] == len(result.frames)
    assert saved.mp4.stat().st_size > 0


def test_every_scheduler_of_the_family_is_set_and_makes_a_video(pipe):
    names = t2v.scheduler_names(pipe)
    assert names == list(t2v.families.family_of(pipe).schedulers) and t2v.families.family_of(pipe).default_scheduler in names
    for name in names:
        t2v.set_scheduler(pipe, name)
        assert t2v.scheduler_name(pipe) == name
        assert np.isfinite(t2v.generate(pipe, PROMPT, **small(pipe)).frames).all(), name


def test_a_scheduler_of_another_family_is_refused_by_name(pipe):
    others = {n for f in families.families().values() for n in f.schedulers} - set(t2v.scheduler_names(pipe))
    for name in sorted(others)[:3]:
        with pytest.raises(SettingError, match=f"scheduler={name!r} is not a registered scheduler"):
            t2v.set_scheduler(pipe, name)


def test_the_scheduler_grid_compares_the_familys_schedulers(pipe, tmp_path):
    settings = small(pipe)
    names = t2v.scheduler_names(pipe)[:2]
    comparison = t2v.compare_schedulers(
        pipe, PROMPT, [(name, STEPS) for name in names], frames=settings["frames"],
        height=settings["height"], width=settings["width"], warmup=False,
    )
    assert [row["scheduler"] for row in comparison.rows] == names
    # Every step evaluates the denoiser on the prompt and on the negative prompt (guidance above 1),
    # in one batch of two (ModelScope, CogVideoX) or in two calls (Wan).
    assert all(row["unet_calls"] * row["unet_batch"] >= 2 * STEPS for row in comparison.rows)
    assert comparison.grid.shape[0] == settings["frames"]
    assert comparison.settings["fps"] == t2v.families.family_of(pipe).fps
    assert json.loads(t2v.save_comparison(comparison, tmp_path, gif=False).sidecar.read_text())["fps"] == t2v.families.family_of(pipe).fps
    runs = t2v.compare.default_runs(pipe)
    assert runs and all(name in t2v.scheduler_names(pipe) for name, _ in runs)


def test_capture_keeps_every_step_of_every_scheduler_and_its_views_fit_the_video(pipe):
    settings = small(pipe)
    for name in t2v.scheduler_names(pipe):
        t2v.set_scheduler(pipe, name)
        plain = t2v.generate(pipe, PROMPT, **settings)
        captured = t2v.capture_denoising(pipe, PROMPT, **settings)
        assert np.array_equal(captured.result.frames, plain.frames), name
        assert captured.steps == len(captured.predicted) == len(captured.timesteps) == STEPS, name
        assert all(x.shape == captured.latents[0].shape for x in captured.latents + captured.predicted), name
        assert all(torch.isfinite(x).all() for x in captured.predicted), name
        assert captured.timesteps[0] > captured.timesteps[-1], name
        exact, titles = t2v.views_at_steps(pipe, captured, exact=True)
        # Decoding the last step's latents is exactly the pipeline's own last stage.
        assert np.array_equal(t2v.decode_latents(pipe, captured.latents[-1]), plain.frames), name
        assert all(v.shape == plain.frames.shape for v in exact) and titles[-1].startswith(f"step {STEPS}/{STEPS}\nVAE")
        fast, titles = t2v.views_at_steps(pipe, captured)
        assert all(v.shape == plain.frames.shape and 0 <= v.min() and v.max() <= 1 for v in fast), name
        assert titles[-1].startswith(f"step {STEPS}/{STEPS}\nfast")
        noisy, _ = t2v.views_at_steps(pipe, captured, [1], view="latents")
        assert not np.array_equal(noisy[0], fast[0]), name
        assert t2v.tile_videos(fast, titles).shape[0] == settings["frames"]


def test_the_predicted_clean_latents_invert_each_schedulers_noise_formula(pipe):
    """For each scheduler: mix known clean latents and noise as the model was trained to undo,
    hand predicted_clean the output a perfect model would give, and get the clean latents back."""
    clean, noise = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2, dtype=torch.float64)
    for name in t2v.scheduler_names(pipe):
        scheduler = t2v.set_scheduler(pipe, name)
        scheduler.set_timesteps(4)
        t = float(scheduler.timesteps[1])
        kind = getattr(scheduler.config, "prediction_type", None)
        if kind == "flow_prediction" or not hasattr(scheduler, "alphas_cumprod"):
            sigma = float(scheduler.sigmas[1])
            sample, output = (1 - sigma) * clean + sigma * noise, noise - clean
        else:
            a = scheduler.alphas_cumprod[int(t)].double()
            sample = a.sqrt() * clean + (1 - a).sqrt() * noise
            output = {"epsilon": noise, "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * clean, "sample": clean}[kind]
        assert torch.allclose(predicted_clean(scheduler, sample, output, t), clean), name


def test_fast_previews_of_any_layout_keep_their_colours_from_step_to_step(pipe):
    captured = t2v.capture_denoising(pipe, PROMPT, **small(pipe))
    first = t2v.views_at_steps(pipe, captured, [STEPS])[0][0]
    again = t2v.views_at_steps(pipe, captured, [1, STEPS])[0][1]
    assert np.array_equal(first, again)  # one set of colours for a run, whichever steps are shown
    with pytest.raises(ValueError, match="is not one video's latents"):
        t2v.denoise.preview_latents(captured.latents[-1][0], pipe=pipe)


def test_the_studio_starts_at_the_models_defaults_and_makes_a_video(pipe, tmp_path):
    family, model = t2v.families.family_of(pipe), t2v.families.model_of(pipe)
    defaults = t2v.Studio(pipe, tmp_path / "defaults")
    expected = dict(steps=family.steps, frames=model.frames, guidance=family.guidance, scheduler=family.default_scheduler,
                    height=model.height, width=model.width, fps=family.fps)
    assert {key: defaults.values()[key] for key in expected} == expected
    assert list(defaults.scheduler.options) == t2v.scheduler_names(pipe)
    assert defaults.frames.step == family.frame_step and family.check_frames(defaults.frames.max)
    assert defaults.height.step == defaults.width.step == family.size_multiple

    settings = small(pipe)
    studio = t2v.Studio(pipe, tmp_path / "outputs", **{k: v for k, v in settings.items() if k != "seed"})
    studio.prompt.value = PROMPT
    studio.generate_button.click()
    assert studio.last_error is None, studio.message.value
    assert studio.progress.value == STEPS and len(studio.history) == 1
    sidecar = json.loads(studio.history[0].sidecar.read_text())
    assert sidecar["frame_count"] == settings["frames"] and sidecar["fps"] == family.fps
    assert sidecar["settings"]["model"] == model.name


def test_frames_the_family_cannot_make_are_refused_in_the_studio(pipe, tmp_path):
    family = t2v.families.family_of(pipe)
    if family.frame_step == 1:
        pytest.skip(f"{family.name} makes any number of frames")
    studio = t2v.Studio(pipe, tmp_path / "outputs", **{k: v for k, v in small(pipe).items() if k != "seed"})
    studio.frames.value = 2
    studio.generate_button.click()
    assert isinstance(studio.last_error, SettingError)
    assert f"frames=2 is not {family.frame_step}k+1" in studio.message.value and studio.history == []


def test_the_command_line_takes_every_model_name_and_lists_them(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens: compare without spaces
    assert all(name in text for name in families.models())
    assert all(name in text for family in families.families().values() for name in family.schedulers)


def checked(argv):
    args = cli.build_parser()[0].parse_args(["generate", *argv])
    cli.check_arguments(args)
    return args


def test_the_command_lines_defaults_are_the_models(pipe, tmp_path):
    family, model = t2v.families.family_of(pipe), t2v.families.model_of(pipe)
    args = checked(["a cat", "--model", model.name, "--out", str(tmp_path)])
    assert (args.steps, args.frames, args.scheduler) == (family.steps, model.frames, family.default_scheduler)
    assert cli.guidance(args) == family.guidance
    # A folder holding the model is known by its model_index.json, with the family's defaults.
    folder = t2v.model_path(model.name)
    args = checked(["a cat", "--model", folder, "--out", str(tmp_path)])
    assert args.family is family and args.frames == family.models[0].frames


def test_the_command_line_makes_a_video_with_the_model(pipe, tmp_path, monkeypatch, capsys):
    model = t2v.families.model_of(pipe)
    asked = []
    monkeypatch.setattr(cli, "load_pipeline", lambda name, **options: asked.append(name) or pipe)  # loaded once, above
    settings = small(pipe)
    cli.main(["generate", PROMPT, "--model", model.name, "--steps", str(STEPS), "--frames", str(settings["frames"]), "--out", str(tmp_path)])
    assert asked == [model.name]
    (sidecar,) = tmp_path.glob("*.json")
    info = json.loads(sidecar.read_text())
    assert info["frame_count"] == settings["frames"] and info["fps"] == t2v.families.family_of(pipe).fps
    assert info["settings"]["model"] == model.name and info["settings"]["scheduler"] == t2v.families.family_of(pipe).default_scheduler
    assert "Wrote" in capsys.readouterr().out


def test_bad_frames_for_the_family_are_exit_2_naming_the_rule_before_loading(pipe, tmp_path, monkeypatch, capsys):
    family, model = t2v.families.family_of(pipe), t2v.families.model_of(pipe)
    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    bad, rule = (2, f"is not {family.frame_step}k+1") if family.frame_step > 1 else (0, "is out of range")
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", model.name, "--frames", str(bad), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"frames={bad} {rule}" in err and "Traceback" not in err


def test_few_step_mode_is_refused_clearly_where_the_family_has_none(pipe, tmp_path, monkeypatch, capsys):
    family, model = t2v.families.family_of(pipe), t2v.families.model_of(pipe)
    if "lcm" in family.schedulers:
        pytest.skip(f"{family.name} has few-step mode (tests/test_fast.py)")
    with pytest.raises(SettingError, match=f"is a {family.name} model, and few-step mode"):
        t2v.make_fast(pipe)
    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", model.name, "--fast", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"--model={model.name!r} is a {family.name} model" in err


def test_the_benchmark_measures_the_tiny_model(pipe, tmp_path):
    model = t2v.families.model_of(pipe)
    settings = small(pipe)
    config = dict(model=model.name, device="cpu", dtype="float32", offload="none", vae_slicing=True,
                  frames=settings["frames"], size=settings["height"], steps=STEPS)
    results, (json_path, md_path) = bench.run("tiny", tmp_path, configs=[config], with_overhead=False, model=model.name)
    (run,) = results["runs"]
    assert "error" not in run, run
    assert run["step_s"] > 0 and run["decode_s"] > 0 and run["unet_calls"] * run["unet_batch"] >= 2 * STEPS
    assert json_path.name == ("cpu-tiny.json" if model.name == "tiny" else f"cpu-{model.name}.json") and md_path.exists()


# Batches run the same checks, loading and saving as the command line (tests above, every family), in
# processes of their own; one family other than ModelScope (tests/test_batch.py) shows that path
# works for the others too, in one more process start instead of one per family.
OTHER_TINY = [m.name for f in list(families.families().values())[1:] for m in f.models if m.tiny][:1]


@pytest.mark.skipif(not OTHER_TINY, reason="ModelScope is the only family here")
@pytest.mark.parametrize("name", OTHER_TINY)
def test_a_batch_makes_one_video_per_prompt_with_another_family(name, tmp_path):
    family = families.family_named(families.find_model(name).family)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n\na dog\n")
    frames = 1 + family.frame_step
    command = [sys.executable, "-m", "t2v_helpers.batch", "--prompts", str(prompts), "--model", name,
               "--steps", str(STEPS), "--frames", str(frames), "--out", str(tmp_path / "out")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    for line in (1, 3):
        (sidecar,) = (tmp_path / "out" / f"line-{line:03d}").glob("*.json")
        info = json.loads(sidecar.read_text())
        assert info["frame_count"] == frames and info["fps"] == family.fps and info["settings"]["model"] == name
