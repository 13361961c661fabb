"""Bad input is refused before any model work with a message that names the parameter, the
value, what is allowed and a value to try, and that value is itself accepted. Property-based
(hypothesis) tests; every accepted combination runs on the tiny model."""

import ast
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import t2v_helpers as t2v
from t2v_helpers import validate
from t2v_helpers.cli import main as cli_main
from t2v_helpers.errors import PromptTooLongWarning, SettingError

# Same examples on every run (no flaky CI), no example database written into the repository.
checks = settings(derandomize=True, database=None, deadline=None)


@pytest.fixture(scope="module")
def pipe():
    return t2v.load_pipeline("tiny", verbose=False)


GOOD = dict(prompt="a red fox", steps=2, frames=2, height=16, width=16, guidance=9.0, seed=0)


def refusal(pipe, **bad):
    """The SettingError that check_settings raises for GOOD with `bad` swapped in."""
    args = {**GOOD, **bad}
    with pytest.raises(SettingError) as caught:
        t2v.check_settings(pipe, **args)
    return caught.value


def assert_helpful(error, name):
    """The message names the parameter and what is allowed, and suggests `name=...`."""
    assert isinstance(error, ValueError)
    message = str(error)
    assert error.name == name
    assert message.startswith(f"{name}="), message
    assert "Allowed: " in message and " Try " in message, message
    assert error.suggestion.startswith(f"{name}=") or name in ("out_dir", "folder of path"), error.suggestion


def suggested(error):
    """The value the message suggests, such as 256 from 'height=256'."""
    return ast.literal_eval(error.suggestion.split("=", 1)[1])


# --- numbers: steps, frames, height, width, guidance, seed -------------------------------------

not_a_number = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.just(float("nan")),
    st.just(float("inf")),
    st.lists(st.integers(), max_size=2),
)


@checks
@given(
    name=st.sampled_from(["steps", "frames"]),
    value=st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=1025),
        st.floats(),
        not_a_number,
    ),
)
def test_bad_steps_and_frames_are_refused_with_a_valid_suggestion(pipe, name, value):
    error = refusal(pipe, **{name: value})
    assert_helpful(error, name)
    t2v.check_settings(pipe, **{**GOOD, name: suggested(error)})


@checks
@given(
    name=st.sampled_from(["height", "width"]),
    value=st.one_of(st.integers(), st.floats(), not_a_number).filter(
        # None means the model's own size; whole multiples of 8 are fine
        lambda v: v is not None and not (isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096 and v % 8 == 0)
    ),
)
def test_sizes_that_are_not_positive_multiples_of_8_are_refused_with_the_nearest(pipe, name, value):
    error = refusal(pipe, **{name: value})
    assert_helpful(error, name)
    nearest = suggested(error)
    assert nearest % 8 == 0 and 8 <= nearest <= 4096
    if isinstance(value, int) and 8 <= value <= 4096:
        assert abs(nearest - value) <= 4, "the suggestion is the nearest multiple of 8"
        assert "multiple of 8" in str(error)
    t2v.check_settings(pipe, **{**GOOD, name: nearest})


@checks
@given(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=100.000001), st.integers(max_value=-1), not_a_number))
def test_guidance_that_is_negative_huge_or_not_a_number_is_refused(pipe, guidance):
    error = refusal(pipe, guidance=guidance)
    assert_helpful(error, "guidance")
    t2v.check_settings(pipe, **{**GOOD, "guidance": suggested(error)})


@checks
@given(
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
        st.floats(),
        st.text(max_size=5),
        st.booleans(),
    )
)
def test_seeds_outside_0_to_2_63_or_not_whole_are_refused(pipe, seed):
    error = refusal(pipe, seed=seed)
    assert_helpful(error, "seed")
    assert "2**63-1" in str(error)
    t2v.check_settings(pipe, **{**GOOD, "seed": suggested(error)})


@checks
@given(st.one_of(st.floats(max_value=0.999), st.floats(min_value=120.001), st.integers(max_value=0), not_a_number))
def test_fps_zero_negative_or_not_a_number_is_refused(fps):
    with pytest.raises(SettingError) as caught:
        validate.check_fps(fps)
    assert_helpful(caught.value, "fps")
    assert validate.check_fps(suggested(caught.value)) > 0


def test_fps_is_checked_before_any_file_is_written(tmp_path):
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a red fox", 0)
    for fps in (0, -8, float("nan"), "8"):
        with pytest.raises(SettingError, match=r"^fps="):
            t2v.save_video(result, tmp_path / "out", fps=fps)
        with pytest.raises(SettingError, match=r"^fps="):
            t2v.video.write_gif(result.frames, tmp_path / "x.gif", fps=fps)
    assert list(tmp_path.rglob("*")) == []


# --- prompts ---------------------------------------------------------------------------------

@checks
@given(st.one_of(st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003", max_size=20), st.none(), st.integers(), st.binary(max_size=5)))
def test_empty_blank_or_non_text_prompts_are_refused(pipe, prompt):
    error = refusal(pipe, prompt=prompt)
    assert_helpful(error, "prompt")
    assert isinstance(suggested(error), str) and suggested(error).strip()


def test_a_non_text_negative_prompt_is_refused_and_an_empty_one_means_none(pipe):
    assert_helpful(refusal(pipe, negative_prompt=["blurry"]), "negative_prompt")
    t2v.check_settings(pipe, **GOOD, negative_prompt="")
    t2v.check_settings(pipe, **GOOD, negative_prompt=None)


def test_a_prompt_over_77_tokens_warns_and_quotes_the_part_that_is_cut(pipe):
    words = " ".join(f"word{i}" for i in range(40))  # CLIP splits digits off: "word39" is 3 tokens, 110 in all
    with pytest.warns(PromptTooLongWarning) as caught:
        t2v.check_settings(pipe, **{**GOOD, "prompt": words})
    message = str(caught[0].message)
    ids = pipe.tokenizer(words, verbose=False).input_ids
    assert f"is {len(ids)} tokens long" in message and "reads only 77" in message
    cut = re.search(r"ignored: '(.*)'\.", message).group(1)
    # CLIP decodes split-off digits with spaces between them, so compare without spaces.
    squeezed, cut = words.replace(" ", ""), cut.replace(" ", "")
    assert squeezed.endswith(cut) and cut.endswith("word39") and len(cut) < len(squeezed)
    # What the pipeline keeps plus what the warning says is cut is the whole prompt.
    kept = pipe.tokenizer.decode(ids[1:76]).replace(" ", "")
    assert kept + cut == squeezed


def test_a_prompt_within_77_tokens_does_not_warn(pipe):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t2v.check_settings(pipe, **{**GOOD, "prompt": "a" * 75})


# --- choices: scheduler and offload ----------------------------------------------------------

@pytest.mark.parametrize(
    "check, name, typo, meant",
    [
        (t2v.schedulers.check_scheduler_name, "scheduler", "dmp", "dpm"),
        (t2v.schedulers.check_scheduler_name, "scheduler", "Euler A", "euler-a"),
        (t2v.schedulers.check_scheduler_name, "scheduler", "dpm++ karras", "dpm++2m-karras"),
        (t2v.schedulers.check_scheduler_name, "scheduler", "uni_pc", "unipc"),
        (t2v.choose_runtime, "offload", "sequental", "sequential"),
        (t2v.choose_runtime, "offload", "modle", "model"),
        (t2v.choose_runtime, "offload", "no", "none"),
    ],
)
def test_a_misspelt_scheduler_or_offload_mode_suggests_the_one_meant(check, name, typo, meant):
    with pytest.raises(SettingError) as caught:
        check(typo)
    assert_helpful(caught.value, name)
    assert suggested(caught.value) == meant


@checks
@given(
    name=st.sampled_from(["scheduler", "offload"]),
    value=st.one_of(st.text(max_size=12), st.none(), st.integers(), st.lists(st.text(), max_size=2)),
)
def test_every_unknown_choice_is_refused_with_a_real_choice_to_try(name, value):
    choices = t2v.scheduler_names() if name == "scheduler" else list(t2v.OFFLOAD_MODES)
    if isinstance(value, str) and value.strip().lower() in choices:
        return
    check = t2v.schedulers.check_scheduler_name if name == "scheduler" else t2v.choose_runtime
    with pytest.raises(SettingError) as caught:
        check(value)
    assert_helpful(caught.value, name)
    assert suggested(caught.value) in choices
    assert str(choices) in str(caught.value)


def test_model_or_sequential_offload_without_a_gpu_says_to_use_auto():
    if t2v.environment.gpu_info():
        pytest.skip("a CUDA GPU is visible, so these offload modes are allowed")
    for mode in ("model", "sequential"):
        with pytest.raises(SettingError) as caught:
            t2v.choose_runtime(mode)
        assert_helpful(caught.value, "offload")
        assert "needs a CUDA GPU" in str(caught.value)


# --- output folders --------------------------------------------------------------------------

def test_writing_into_a_folder_that_does_not_exist_is_refused(tmp_path):
    frames = np.zeros((2, 16, 16, 3), np.float32)
    for write in (t2v.video.write_mp4, t2v.video.write_gif):
        with pytest.raises(SettingError) as caught:
            write(frames, tmp_path / "missing" / "video.mp4")
        assert_helpful(caught.value, "folder of path")
        assert "does not exist" in str(caught.value) and "os.makedirs" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "   ", "out\x00put", 42, None])
def test_an_out_dir_that_is_not_a_folder_name_is_refused(tmp_path, bad):
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a red fox", 0)
    with pytest.raises(SettingError) as caught:
        t2v.save_video(result, bad)
    assert_helpful(caught.value, "out_dir")


def test_an_out_dir_that_is_a_file_is_refused_and_the_file_kept(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a red fox", 0)
    for out_dir in (file, file / "inside"):
        with pytest.raises(SettingError) as caught:
            t2v.save_video(result, out_dir)
        assert_helpful(caught.value, "out_dir")
    assert file.read_text() == "mine" and sorted(tmp_path.iterdir()) == [file]


def test_an_out_dir_that_cannot_be_written_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root, who may write into any folder whatever its permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SettingError, match="cannot be written to"):
        validate.check_output_dir(locked)
    with pytest.raises(SettingError, match="cannot be used"):
        validate.check_output_dir(locked / "new", create=True)


def test_an_out_dir_the_system_says_is_read_only_is_refused(tmp_path, monkeypatch):
    # Works as root too: the check asks os.access, as it would on a read-only mount.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a red fox", 0)
    with pytest.raises(SettingError, match="cannot be written to") as caught:
        t2v.save_video(result, tmp_path)
    assert_helpful(caught.value, "out_dir")
    assert list(tmp_path.iterdir()) == []


# --- accepted input runs ---------------------------------------------------------------------

@settings(checks, max_examples=12)
@given(
    prompt=st.text(min_size=1, max_size=30).filter(str.strip),
    steps=st.integers(1, 3),
    frames=st.integers(1, 3),
    height=st.sampled_from([8, 16, 24, 32]),
    width=st.sampled_from([8, 16, 24, 32]),
    guidance=st.one_of(st.floats(0, 100), st.integers(0, 100), st.just(np.float32(7.5))),
    seed=st.one_of(st.none(), st.integers(0, 2**63 - 1), st.just(np.int64(3))),
    scheduler=st.sampled_from(t2v.scheduler_names()),
)
def test_every_accepted_setting_runs_on_the_tiny_model(pipe, prompt, steps, frames, height, width, guidance, seed, scheduler):
    t2v.set_scheduler(pipe, scheduler)
    result = t2v.generate(
        pipe, prompt, steps=steps, frames=frames, height=height, width=width, guidance=guidance, seed=seed
    )
    assert result.frames.shape == (frames, height, width, 3)
    assert np.isfinite(result.frames).all() and 0 <= result.seed <= validate.MAX_SEED


def test_bad_settings_are_refused_before_any_model_work(pipe, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran before the settings were checked")

    monkeypatch.setattr(type(pipe), "__call__", must_not_run)
    for bad in (dict(steps=0), dict(frames=0), dict(height=30), dict(guidance=-1), dict(seed=-1), dict(height=0)):
        with pytest.raises(SettingError):
            t2v.generate(pipe, "a red fox", **bad)
    with pytest.raises(SettingError):
        t2v.generate(pipe, "   ")


# --- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "argv, says",
    [
        (["", "--model", "tiny"], "prompt='' is empty"),
        (["a fox", "--model", "tiny", "--steps", "0"], "steps=0 is out of range"),
        (["a fox", "--model", "tiny", "--frames", "-3"], "frames=-3 is out of range"),
        (["a fox", "--model", "tiny", "--seed", "-1"], "seed=-1 is out of range"),
        (["a fox", "--model", "tiny", "--scheduler", "dmp"], "Try scheduler='dpm'"),
    ],
)
def test_the_command_line_refuses_bad_settings_before_loading_the_model(argv, says, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("t2v_helpers.cli.load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(SystemExit) as caught:
        cli_main(["generate", *argv, "--out", str(tmp_path / "out")])
    assert caught.value.code == 2
    assert says in capsys.readouterr().err


# --- issue 19: a suggested frame count passes every check ------------------------------------------------------

from t2v_helpers.families import Family, families, family_named  # noqa: E402
from t2v_helpers.generate import check_settings  # noqa: E402

BAD_FRAMES = [0, -5, 1025, 1026, 2000, 10**9, 16.5, "17", float("nan"), float("inf"), True, None, *range(2, 130)]


@pytest.mark.parametrize("family", list(families()))
def test_every_suggested_frame_count_is_itself_accepted(family):
    """Wan frames=1025 suggested 1024, which was then refused as not 4k+1 ('try 1021')."""
    rules = family_named(family)
    for frames in BAD_FRAMES:
        if isinstance(frames, int) and not isinstance(frames, bool) and 1 <= frames <= 1024 and rules.check_frames(frames):
            continue  # a good count: nothing to suggest
        with pytest.raises(SettingError) as error:
            check_settings(None, "a cat", 2, frames, 32, 32, 5.0, 0, family=rules)
        assert error.value.name == "frames", (frames, str(error.value))
        suggested = int(error.value.suggestion.removeprefix("frames="))
        checked = check_settings(None, "a cat", 2, suggested, 32, 32, 5.0, 0, family=rules)
        assert checked["frames"] == suggested, (family, frames, suggested)


def test_suggestions_ask_the_familys_own_rules_such_as_a_largest_count():
    """A family whose check_frames also caps the count (CogVideoX: 8k+1 up to 49) gets suggestions under the cap."""
    import dataclasses

    class Capped(Family):
        def check_frames(self, frames):
            return super().check_frames(frames) and frames <= 49

    cogvideox = family_named("cogvideox")
    capped = Capped(**{f.name: getattr(cogvideox, f.name) for f in dataclasses.fields(cogvideox)})
    for frames, expected in ((57, 49), (1025, 49), (1024, 49), (0, 1), (48, 49), (44, 41)):
        with pytest.raises(SettingError) as error:
            check_settings(None, "a cat", 2, frames, 32, 32, 5.0, 0, family=capped)
        assert error.value.suggestion == f"frames={expected}", (frames, str(error.value))
    assert "from 1 to 49" in str(error.value)
