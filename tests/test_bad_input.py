"""Bad input from issue 11: scheduler step limits, NaN frames, odd text and numbers, bad model
folders, prompts files that are empty, endless or start with a BOM, out of CPU memory, settings
too big for the machine, Ctrl-C and SIGTERM. Each gets a one-paragraph message that says what to
change (exit code 2 in the command line, no traceback unless --debug), and every value that
passes validation also passes the sidecar and the writers."""

import json
import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import t2v_helpers as t2v
from t2v_helpers import cli, memory, validate
from t2v_helpers.errors import BadModelError, GPUMemoryError, NonFiniteFramesError, PromptTooLongWarning, SettingError
from t2v_helpers.pipeline import check_model
from t2v_helpers.schedulers import SCHEDULERS, STEP_LIMITS
from tools.find_step_limits import failure

generate_module = sys.modules["t2v_helpers.generate"]  # the package exports the function under the same name
checks = settings(derandomize=True, database=None, deadline=None, max_examples=60)
GOOD = dict(prompt="a red fox", steps=2, frames=2, height=16, width=16, guidance=9.0, seed=0)
SMALL = ["--model", "tiny", "--steps", "2", "--frames", "2"]


@pytest.fixture(scope="module")
def pipe():
    pipe = t2v.load_pipeline("tiny", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def cli_error(argv, capsys, monkeypatch=None, loads=False):
    """Run `t2v generate ARGV` in this process; return (exit code, stderr)."""
    if monkeypatch is not None and not loads:
        monkeypatch.setattr(cli, "load", lambda *a, **k: pytest.fail("the model loaded before the settings were checked"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", *argv])
    return stop.value.code, capsys.readouterr().err


def assert_one_paragraph(err):
    assert "Traceback" not in err, err
    assert "\n\n" not in err.strip(), err
    assert len(err) < 1500, err[:300]


# --- steps each scheduler can take ----------------------------------------------------------------

def test_every_scheduler_has_a_step_limit_no_higher_than_the_training_steps():
    assert set(STEP_LIMITS) == set(SCHEDULERS)
    assert all(isinstance(v, int) and 1 <= v <= validate.MAX_STEPS for v in STEP_LIMITS.values())


@pytest.mark.parametrize("name", [n for n in SCHEDULERS if STEP_LIMITS[n] < validate.MAX_STEPS])
def test_one_step_past_the_limit_really_fails(name):
    assert failure(name, STEP_LIMITS[name] + 1), f"{name} ran {STEP_LIMITS[name] + 1} steps to finite latents"


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_the_limit_itself_works(name):
    assert failure(name, STEP_LIMITS[name]) is None


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_steps_past_a_schedulers_limit_are_refused_naming_scheduler_and_limit(pipe, name):
    t2v.set_scheduler(pipe, name)
    limit = STEP_LIMITS[name]
    t2v.check_settings(pipe, **{**GOOD, "steps": limit})
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, **{**GOOD, "steps": limit + 1})
    message = str(caught.value)
    assert message.startswith(f"steps={limit + 1} ") and f"{name!r}" in message and f"up to {limit}" in message
    assert caught.value.suggestion == f"steps={limit}"


def test_the_command_line_refuses_1000_steps_for_ddim_before_loading(capsys, monkeypatch):
    code, err = cli_error(["a cat", "--scheduler", "ddim", "--steps", "1000"], capsys, monkeypatch)
    assert code == 2 and f"up to {STEP_LIMITS['ddim']}" in err and "'ddim'" in err
    assert_one_paragraph(err)


def test_nan_frames_raise_a_clear_error_instead_of_returning(pipe, monkeypatch):
    t2v.set_scheduler(pipe, "dpm")
    real_decode = pipe.vae.decode

    def decode(*args, **kwargs):
        out = real_decode(*args, **kwargs)
        out.sample[:] = float("nan")
        return out

    monkeypatch.setattr(pipe.vae, "decode", decode)
    with pytest.raises(NonFiniteFramesError) as caught:
        t2v.generate(pipe, **GOOD)
    message = str(caught.value)
    assert "NaN" in message and "steps" in message and "float32" in message and "'dpm'" in message


def test_nan_frames_are_a_one_paragraph_error_in_the_command_line(pipe, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(generate_module, "_denoise", lambda *a, **k: (type("Out", (), {"frames": np.full((1, 2, 16, 16, 3), np.nan, np.float32)})(), None))
    code, err = cli_error(["a cat", *SMALL, "--out", str(tmp_path)], capsys, monkeypatch, loads=True)
    assert code == 2 and "NaN" in err
    assert_one_paragraph(err)
    assert not list(tmp_path.iterdir())


# --- text ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["a \udcff cat", "\ud800", os.fsdecode(b"caf\xe9 au lait")])
def test_a_prompt_that_is_not_valid_unicode_is_refused(pipe, prompt):
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, **{**GOOD, "prompt": prompt})
    assert "UTF-8" in str(caught.value) and caught.value.suggestion
    with pytest.raises(SettingError):
        t2v.check_settings(pipe, **{**GOOD, "negative_prompt": prompt})


def test_a_non_utf8_byte_on_the_command_line_is_exit_2(capsys, monkeypatch):
    code, err = cli_error([os.fsdecode(b"caf\xe9")], capsys, monkeypatch)
    assert code == 2 and "UTF-8" in err
    assert_one_paragraph(err)


def test_a_blank_negative_prompt_suggests_leaving_it_empty(pipe):
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, **{**GOOD, "negative_prompt": "   "})
    assert caught.value.suggestion.startswith("negative_prompt=''")
    assert validate.EXAMPLE_PROMPT not in str(caught.value)


def test_a_1mb_prompt_warns_with_its_start_and_length_not_the_whole_text(pipe):
    prompt = "a red fox " * 100_000
    with pytest.warns(PromptTooLongWarning) as caught:
        t2v.check_settings(pipe, **{**GOOD, "prompt": prompt})
    message = str(caught[0].message)
    assert len(message) < 600 and "characters" in message


def test_a_1mb_bad_value_is_quoted_by_its_start_and_length():
    error = SettingError("prompt", "x" * 1_000_000, "is bad", "good", "prompt='a'")
    assert len(str(error)) < 300 and "1000000 characters" in str(error)


# --- numbers --------------------------------------------------------------------------------------

def test_a_5000_digit_number_is_refused_briefly(pipe, capsys, monkeypatch):
    huge = 10**5000 - 1  # int("9" * 5000) itself raises ValueError past 4300 digits
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, **{**GOOD, "steps": huge})
    assert len(str(caught.value)) < 300 and "digits" in str(caught.value)
    code, err = cli_error(["a cat", "--steps", "9" * 5000], capsys, monkeypatch)
    assert code == 2 and "5000 digits" in err
    assert_one_paragraph(err)


plain_or_numpy_whole = st.one_of(
    st.integers(1, 40),
    st.integers(1, 40).map(np.int64),
    st.integers(1, 40).map(np.int32),
    st.integers(1, 40).map(np.uint8),
)
plain_or_numpy_real = st.one_of(
    st.floats(1, 100, allow_nan=False),
    st.floats(1, 100, allow_nan=False).map(np.float32),
    st.floats(1, 100, allow_nan=False).map(np.float64),
    st.fractions(min_value=1, max_value=100, max_denominator=1000),
    st.integers(1, 100).map(np.int64),
)


@checks
@given(
    steps=plain_or_numpy_whole,
    frames=plain_or_numpy_whole,
    size=st.sampled_from([8, 16, 256]).map(lambda v: np.int64(v)),
    guidance=plain_or_numpy_real,
    seed=st.one_of(st.none(), st.integers(0, validate.MAX_SEED), st.integers(0, 2**62).map(np.int64)),
    prompt=st.one_of(st.just("a cat"), st.just(np.str_("a dog"))),
)
def test_whatever_passes_validation_comes_back_as_plain_python_that_json_takes(steps, frames, size, guidance, seed, prompt):
    checked = t2v.check_settings(None, prompt, steps, frames, size, size, guidance, seed)
    for name, kind in dict(prompt=str, steps=int, frames=int, height=int, width=int, guidance=float).items():
        assert type(checked[name]) is kind, (name, type(checked[name]))
    assert checked["seed"] is None or type(checked["seed"]) is int
    assert json.loads(json.dumps(checked)) == checked


@checks
@given(fps=plain_or_numpy_real.filter(lambda v: 1 <= v <= 120))
def test_whatever_fps_passes_validation_is_a_plain_float(fps):
    assert type(validate.check_fps(fps)) is float


@pytest.mark.parametrize("fps", [Fraction(24, 1), np.float32(12.5), np.int64(8)])
def test_numpy_and_fraction_values_pass_through_generate_the_sidecar_and_the_writers(pipe, tmp_path, fps):
    t2v.set_scheduler(pipe, "ddim")
    result = t2v.generate(pipe, np.str_("a red fox"), steps=np.int64(2), frames=np.int32(2), height=np.int64(16), width=np.int64(16), guidance=Fraction(15, 2), seed=np.int64(3))
    saved = t2v.save_video(result, tmp_path, fps=fps, gif=True)
    sidecar = json.loads(saved.sidecar.read_text())
    assert sidecar["settings"]["steps"] == 2 and sidecar["settings"]["guidance"] == 7.5 and sidecar["seed"] == 3
    assert sidecar["fps"] == float(fps)


# --- prompts files --------------------------------------------------------------------------------

def test_an_empty_prompts_name_is_refused_not_ignored(capsys, monkeypatch):
    code, err = cli_error(["--prompts", ""], capsys, monkeypatch)
    assert code == 2 and "--prompts=''" in err
    assert_one_paragraph(err)


def test_an_empty_prompts_name_is_refused_by_batch_too(capsys, monkeypatch):
    from t2v_helpers import batch

    monkeypatch.setattr(batch, "load", lambda *a, **k: pytest.fail("the model loaded"))
    with pytest.raises(SystemExit) as stop:
        batch.main(["--prompts", ""])
    assert stop.value.code == 2 and "--prompts=''" in capsys.readouterr().err


def test_an_endless_prompts_file_is_read_only_up_to_a_limit(capsys, monkeypatch):
    code, err = cli_error(["--prompts", "/dev/zero"], capsys, monkeypatch)
    assert code == 2 and "larger than" in err
    assert_one_paragraph(err)


def test_a_bom_before_a_comment_line_is_not_a_prompt(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes("\ufeff# my prompts\na cat\n".encode("utf-8"))
    assert cli.read_prompts(path) == [(2, "a cat")]


# --- bad --model ----------------------------------------------------------------------------------

def tiny_copy(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(t2v.build_tiny_model(), folder)
    return folder


def bad_models(tmp_path):
    (tmp_path / "a-file.txt").write_text("not a model")
    (tmp_path / "empty").mkdir()
    truncated = tiny_copy(tmp_path)
    for weights in truncated.glob("unet/*.safetensors"):  # the fp16 variant and the float32 file
        weights.write_bytes(weights.read_bytes()[:100])
    no_index = tmp_path / "no-index"
    shutil.copytree(truncated, no_index)
    (no_index / "model_index.json").unlink()
    remote = tmp_path / "remote"
    shutil.copytree(t2v.build_tiny_model(), remote)
    index = json.loads((remote / "model_index.json").read_text())
    index["unet"] = ["my_unet", "MyUNet"]
    (remote / "model_index.json").write_text(json.dumps(index))
    (remote / "unet" / "my_unet.py").write_text("raise SystemExit('remote code ran')\n")
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "model_index.json").write_text("[" * 100_000 + "]" * 100_000)  # json's parser recurses once per level
    return {
        "a file": str(tmp_path / "a-file.txt"),
        "a missing folder": str(tmp_path / "missing" / "model"),
        "empty text": "",
        "an id with spaces": "ali vilab/text to video",
        "an empty folder": str(tmp_path / "empty"),
        "a truncated folder": str(truncated),
        "a folder without model_index.json": str(no_index),
        "a folder asking for remote code": str(remote),
        "a deeply nested model_index.json": str(nested),
    }


@pytest.mark.parametrize(
    "case",
    ["a file", "a missing folder", "empty text", "an id with spaces", "an empty folder", "a truncated folder",
     "a folder without model_index.json", "a folder asking for remote code", "a deeply nested model_index.json"],
)
def test_a_bad_model_is_one_paragraph_exit_2(case, tmp_path, capsys):
    model = bad_models(tmp_path)[case]
    code, err = cli_error(["a cat", "--model", model, "--steps", "2", "--out", str(tmp_path / "out")], capsys)
    assert code == 2, err
    assert_one_paragraph(err)
    assert "--model" in err


def test_a_deeply_nested_model_index_is_a_bad_model_folder(tmp_path):
    with pytest.raises(BadModelError, match="model_index.json that cannot be read"):
        check_model(bad_models(tmp_path)["a deeply nested model_index.json"])


def test_a_model_folder_under_home_written_with_a_tilde_loads_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    tiny_copy(tmp_path)
    assert check_model("~/model") == str(tmp_path / "model")
    pipe = t2v.load_pipeline("~/model", verbose=False)
    assert pipe.t2v_model_id == "~/model" and tuple(pipe.unet.config.block_out_channels) == (16, 32)
    pickled = pickle_folder(tmp_path / "other")
    with pytest.raises(t2v.PickleWeightsError):
        t2v.load_pipeline("~/other/model", verbose=False)
    assert pickled == tmp_path / "other" / "model"


def test_a_partly_downloaded_real_model_says_so(tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache / "models--ali-vilab--text-to-video-ms-1.7b" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "TextToVideoSDPipeline", "unet": ["diffusers", "UNet3DConditionModel"]}))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "t2v_helpers", "a cat", "--model", t2v.MODEL_ID, "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert_one_paragraph(done.stderr)
    assert "hf download" in done.stderr


def pickle_folder(tmp_path):
    folder = tiny_copy(tmp_path)
    for weights in folder.glob("unet/*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    return folder


def test_pickle_weights_in_the_command_line_offer_allow_pickle(tmp_path, capsys):
    code, err = cli_error(["a cat", "--model", str(pickle_folder(tmp_path)), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "--allow-pickle" in err and "allow_pickle=True" not in err
    assert_one_paragraph(err)


def test_allow_pickle_reaches_load_pipeline(tmp_path, monkeypatch, capsys):
    seen = {}

    def load_pipeline(model, **options):
        seen.update(options)
        raise t2v.ModelNotAvailableError("stop here")

    monkeypatch.setattr(cli, "load_pipeline", load_pipeline)
    code, err = cli_error(["a cat", "--model", "x/y", "--allow-pickle", "--out", str(tmp_path)], capsys)
    assert seen == {"allow_pickle": True} and code == 2


# --- memory ---------------------------------------------------------------------------------------

CPU_OOM = "[enforce fail at alloc_cpu.cpp:116] . DefaultCPUAllocator: can't allocate memory: you tried to allocate 4294967296 bytes."


def cpu_oom_once(pipe, monkeypatch, times=1):
    real_forward = pipe.unet.forward
    left = [times]

    def forward(*args, **kwargs):
        if left[0]:
            left[0] -= 1
            raise RuntimeError(CPU_OOM)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", forward)


def test_out_of_cpu_memory_gets_the_same_advice(pipe, monkeypatch):
    t2v.set_scheduler(pipe, "ddim")
    cpu_oom_once(pipe, monkeypatch, times=1000)
    with pytest.raises(GPUMemoryError) as caught:
        t2v.generate(pipe, **GOOD)
    message = str(caught.value)
    assert "ran out of memory" in message and "frames=1" in message and "retry_leaner=True" in message
    assert "DefaultCPUAllocator" in message


def test_retry_leaner_retries_after_out_of_cpu_memory(pipe, monkeypatch, capsys):
    t2v.set_scheduler(pipe, "ddim")
    cpu_oom_once(pipe, monkeypatch)
    result = t2v.generate(pipe, **GOOD, retry_leaner=True)
    assert result.frames.shape[0] == 1 and result.settings["frames_asked"] == 2
    assert "retrying once with frames=1" in capsys.readouterr().out


def test_other_runtime_errors_are_not_called_out_of_memory(pipe, monkeypatch):
    def forward(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(pipe.unet, "forward", forward)
    with pytest.raises(RuntimeError, match="mat1") as caught:
        t2v.generate(pipe, **GOOD)
    assert not isinstance(caught.value, GPUMemoryError)


def test_settings_the_machine_cannot_hold_are_refused_with_the_estimate(pipe, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda pipe: 16 * 2**30)
    monkeypatch.setattr(pipe, "t2v_model_id", t2v.MODEL_ID)
    monkeypatch.setattr(pipe.unet, "forward", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(SettingError) as caught:
        t2v.generate(pipe, "a cat", steps=2, frames=1024, height=256, width=256)
    message = str(caught.value)
    assert message.startswith("frames=1024 ") and "GiB" in message and "16.0 GiB" in message
    frames = int(caught.value.suggestion.split("=")[1])
    assert 1 <= frames < 1024
    # The suggestion fits the same estimate.
    t2v.check_settings(pipe, "a cat", 2, frames, 256, 256, 9.0, 0)
    # Where no frame count fits, the size is what to lower.
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, "a cat", 2, 16, 4096, 4096, 9.0, 0)
    assert "height=256" in caught.value.suggestion


def test_the_tiny_model_is_not_held_to_the_full_models_estimate(pipe, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda pipe: 8 * 2**30)
    t2v.check_settings(pipe, "a cat", 2, 64, 256, 256, 9.0, 0)


def test_available_memory_reads_the_machine():
    free = memory.available_memory(None)
    assert free is None or 0 < free <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# --- stopping and --debug -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stop_is_a_message_and_exit_130(how, tmp_path, capsys, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)

    def stop(*args, **kwargs):
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli, "load", lambda args, **k: object())
    monkeypatch.setattr(cli, "make_video", stop)
    code, err = cli_error(["a cat", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 130 and "Stopped; nothing was saved for the current video" in err
    assert "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) == before


def test_debug_shows_the_traceback(capsys, monkeypatch):
    code, err = cli_error(["a cat", "--steps", "0", "--debug"], capsys, monkeypatch)
    assert code == 2 and "Traceback" in err and "steps=0" in err


# --- attacks on the checks themselves -------------------------------------------------------------

anything = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**6000),
    st.floats(),
    st.text(max_size=3000),
    st.binary(max_size=50),
    st.lists(st.integers(), max_size=500),
    st.fractions(),
    st.integers(-10, 10**6).map(np.int64),
    st.floats(width=32).map(np.float32),
    st.none(),
    st.booleans(),
)


@checks
@given(name=st.sampled_from(["prompt", "steps", "frames", "height", "width", "guidance", "seed", "negative_prompt"]), value=anything)
def test_any_value_is_either_plain_and_json_safe_or_refused_in_one_short_line(name, value):
    args = {**GOOD, name: value, "negative_prompt": None}
    args[name] = value
    try:
        checked = t2v.check_settings(None, **args, scheduler="dpm")
    except SettingError as error:
        message = str(error)
        assert "\n" not in message and len(message) < 400 and message.startswith(f"{name}="), message[:500]
        return
    json.dumps(checked)
    assert all(type(v) in (int, float, str, type(None)) for v in checked.values()), checked
