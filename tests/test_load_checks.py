"""Issue 19: what load_pipeline checks before a model runs (dtype, damaged numeric configs), and the NaN message's advice."""

import json
import shutil

import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import cli
from t2v_helpers.errors import BadModelError, NonFiniteFramesError, SettingError


def tiny_copy(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(t2v.build_tiny_model(), folder)
    return folder


def edit(folder, part, **values):
    path = folder / part
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))


# --- dtype ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, problem", [
    ("cuda", "is a device name"), (16, "is not a dtype"), (torch.int8, "is not a floating-point dtype"),
    ("float8", "is not a dtype"), (torch.float64, "is not a dtype the model is run in"), (True, "is not a dtype"),
])
def test_a_dtype_the_model_cannot_run_in_is_a_setting_error_not_a_damaged_folder(dtype, problem, capsys):
    with pytest.raises(SettingError, match=problem) as error:
        t2v.load_pipeline("tiny", dtype=dtype)
    assert error.value.name == "dtype" and "torch.float" in error.value.suggestion
    assert not isinstance(error.value, BadModelError) and capsys.readouterr().out == ""  # refused before the notice


@pytest.mark.parametrize("name, dtype", [("float16", torch.float16), ("torch.bfloat16", torch.bfloat16), (" FP32 ", torch.float32)])
def test_a_dtype_named_as_text_loads_every_part_in_it(name, dtype, capsys):
    pipe = t2v.load_pipeline("tiny", dtype=name)
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.text_encoder.dtype == dtype
    assert pipe.t2v_runtime.dtype == dtype and f"CPU in {str(dtype)[6:]}," in capsys.readouterr().out


def test_choose_runtime_checks_the_dtype_too():
    with pytest.raises(SettingError, match="dtype"):
        t2v.choose_runtime(dtype="cuda")
    assert t2v.choose_runtime(dtype="bf16").dtype == torch.bfloat16


# --- numeric config values a pipeline divides by or sizes with ---------------------------------------------------

DAMAGED = {
    "VAE scaling_factor 0": ("vae/config.json", {"scaling_factor": 0}, "scaling_factor"),
    "VAE scaling_factor NaN": ("vae/config.json", {"scaling_factor": float("nan")}, "scaling_factor"),
    "VAE scaling_factor text": ("vae/config.json", {"scaling_factor": "0.18"}, "scaling_factor"),
    "tokenizer length 1e30": ("tokenizer/tokenizer_config.json", {"model_max_length": 1e30}, "model_max_length"),
    "tokenizer length 10**30, whole": ("tokenizer/tokenizer_config.json", {"model_max_length": 10**30}, "model_max_length"),
    "tokenizer length 0": ("tokenizer/tokenizer_config.json", {"model_max_length": 0}, "model_max_length"),
    "beta_start over beta_end": ("scheduler/scheduler_config.json", {"beta_start": 0.5}, "beta_start"),
    "negative beta_end": ("scheduler/scheduler_config.json", {"beta_end": -0.01}, "beta_end"),
    "no training steps": ("scheduler/scheduler_config.json", {"num_train_timesteps": 0}, "num_train_timesteps"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_number_in_a_config_is_named_at_load(case, tmp_path):
    part, values, key = DAMAGED[case]
    folder = tiny_copy(tmp_path)
    edit(folder, part, **values)
    with pytest.raises(BadModelError) as error:
        t2v.load_pipeline(str(folder), verbose=False)
    message = str(error.value)
    assert key in message and part in message and "Download it again" in message


def test_a_damaged_config_is_one_paragraph_and_exit_2_in_the_command_line(tmp_path, capsys):
    folder = tiny_copy(tmp_path)
    edit(folder, "vae/config.json", scaling_factor=0)
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", str(folder), "--steps", "2", "--frames", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "scaling_factor" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("family", ["wan", "cogvideox"])
def test_the_other_families_tiny_models_pass_the_config_checks(family):
    pipe = t2v.load_pipeline(t2v.families.family_named(family).tiny_model, verbose=False)
    assert pipe.t2v_runtime is not None


def test_nan_frames_never_advise_the_steps_already_used(tmp_path):
    """A scheduler made from an absurd config by hand (load_pipeline refuses the folder) gives NaN frames at 2 steps."""
    pipe = t2v.load_pipeline("tiny", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, beta_start=0.5)
    with pytest.raises(NonFiniteFramesError) as error:
        t2v.generate(pipe, "a cat", steps=2, frames=1, height=16, width=16)
    message = str(error.value)
    assert "steps=2," not in message.split("Try", 1)[1] and "beta_start" in message


# --- attacks on these checks: numbers too large for a float -----------------------------------------------------


def test_a_whole_number_too_large_for_a_float_is_refused_not_an_overflow_error(tmp_path):
    from t2v_helpers import memory

    huge = 10**400  # math.isfinite(10**400) raises OverflowError
    with pytest.raises(SettingError, match="free="):
        memory.choose_offload(huge, frames=16)
    folder = tiny_copy(tmp_path)
    edit(folder, "vae/config.json", scaling_factor=huge)
    with pytest.raises(BadModelError, match="scaling_factor"):
        t2v.load_pipeline(str(folder), verbose=False)
    edit(folder, "vae/config.json", scaling_factor=0.18215)
    edit(folder, "scheduler/scheduler_config.json", beta_end=huge)
    with pytest.raises(BadModelError, match="beta_end"):
        t2v.load_pipeline(str(folder), verbose=False)
    pipe = t2v.load_pipeline("tiny", verbose=False)
    with pytest.raises(ValueError, match="guidance="):
        t2v.Studio(pipe, tmp_path / "outputs", guidance=huge)
