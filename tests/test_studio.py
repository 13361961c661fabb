"""The studio (notebook 05) driven from Python: set the widgets' values, click its buttons, check its state."""

import json
import os

import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers.errors import GPUMemoryError
from t2v_helpers import studio as studio_module

STEPS = int(os.environ["T2V_STEPS"])
FRAMES = int(os.environ["T2V_FRAMES"])
SIZE = int(os.environ["T2V_SIZE"])


@pytest.fixture
def studio(pipe, tmp_path):
    return t2v.Studio(pipe, tmp_path / "outputs", steps=STEPS, frames=FRAMES, height=SIZE, width=SIZE, seed=0)


def output_files(studio):
    return sorted(studio.out_dir.glob("*")) if studio.out_dir.exists() else []


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "heun"])
def test_generate_saves_a_video_moves_the_progress_bar_and_grows_the_history(studio, scheduler):
    studio.prompt.value = "a red fox running through snow"
    studio.scheduler.value = scheduler
    progress, button_while_running = [], []

    def record(change):
        progress.append(change["new"])
        button_while_running.append(studio.generate_button.disabled)

    studio.progress.observe(record, "value")
    studio.generate_button.click()

    assert studio.last_error is None, studio.message.value
    assert [value for value in progress if value] == list(range(1, STEPS + 1))  # one move per step
    assert studio.progress.value == studio.progress.max == STEPS
    assert all(button_while_running) and not studio.generate_button.disabled
    assert t2v.scheduler_name(studio.pipe) == scheduler
    assert len(studio.history) == 1 and len(studio.history_box.children) == 1
    entry = studio.history[0]
    assert entry.mp4.is_file() and entry.mp4.stat().st_size > 0 and entry.mp4.parent == studio.out_dir
    sidecar = json.loads(entry.sidecar.read_text())
    assert sidecar["prompt"] == "a red fox running through snow" and sidecar["seed"] == 0
    assert sidecar["settings"]["scheduler"] == scheduler and sidecar["frame_count"] == FRAMES
    assert studio.video.value == entry.mp4.read_bytes()
    assert entry.mp4.name in studio.files.value and entry.sidecar.name in studio.files.value


@pytest.mark.parametrize(
    "name, value, named",
    [
        ("height", SIZE + 2, "height"),
        ("width", SIZE - 3, "width"),
        ("prompt", "   ", "prompt"),
        ("seed", -1, "seed"),
    ],
)
def test_values_the_model_cannot_take_are_refused_in_the_ui(studio, name, value, named):
    getattr(studio, name).value = value
    studio.generate_button.click()

    assert isinstance(studio.last_error, ValueError)
    assert f"{named}=" in studio.message.value and "Not made" in studio.message.value
    assert output_files(studio) == [] and studio.history == []
    assert not studio.generate_button.disabled
    assert studio.video.layout.display == "none"

    # The studio stays usable: put a good value back and it makes the video.
    studio.load({"prompt": "a boat", "height": SIZE, "width": SIZE, "seed": 1})
    studio.generate_button.click()
    assert studio.last_error is None and len(studio.history) == 1


@pytest.mark.parametrize(
    "values, named",
    [({"stepz": 10}, "stepz"), ({"steps": 500}, "steps=500"), ({"scheduler": "fast"}, "scheduler='fast'")],
)
def test_load_refuses_values_the_controls_cannot_hold(studio, values, named):
    with pytest.raises(ValueError, match=named):
        studio.load(values)


@pytest.mark.parametrize("kwargs, named", [({"steps": 0}, "steps=0"), ({"prompt": None}, "prompt=None"), ({"out_dir": 3}, "out_dir=3")])
def test_starting_values_the_studio_cannot_hold_are_refused(pipe, kwargs, named):
    with pytest.raises(ValueError, match=named):
        t2v.Studio(pipe, **kwargs)


def test_random_seed_button_shows_the_seed_and_the_video_uses_it(studio):
    seeds = set()
    for _ in range(3):
        studio.random_seed_button.click()
        seeds.add(studio.seed.value)
        assert 0 <= studio.seed.value < studio_module.RANDOM_SEED_LIMIT
        assert str(studio.seed.value) in studio.message.value
    assert len(seeds) > 1  # three draws from 2**32 all equal: not random
    studio.generate_button.click()
    assert studio.history[0].values["seed"] == studio.seed.value
    assert json.loads(studio.history[0].sidecar.read_text())["seed"] == studio.seed.value


def test_history_shows_a_video_again_and_loads_its_settings(studio):
    studio.load({"prompt": "first video", "seed": 1, "guidance": 7.5, "scheduler": "ddim", "fps": 6})
    studio.generate_button.click()
    first = studio.values()
    studio.load({"prompt": "second video", "seed": 2, "guidance": 12.0, "scheduler": "euler", "fps": 10})
    studio.generate_button.click()
    assert [entry.number for entry in studio.history] == [1, 2]
    assert studio.video.value == studio.history[1].mp4.read_bytes()

    oldest_card = studio.history_box.children[-1]  # newest first
    assert "first video" in oldest_card.children[1].value
    show, load = oldest_card.children[2].children
    show.click()
    assert studio.video.value == studio.history[0].mp4.read_bytes()
    assert studio.history[0].mp4.name in studio.files.value
    load.click()
    assert studio.values() == first

    # Same settings again: a new file beside the first, which stays as it was.
    before = studio.history[0].mp4.read_bytes()
    studio.generate_button.click()
    assert studio.history[2].mp4 != studio.history[0].mp4
    assert studio.history[0].mp4.read_bytes() == before


def test_show_explains_a_video_file_that_is_gone(studio):
    studio.generate_button.click()
    entry = studio.history[0]
    entry.mp4.unlink()
    studio.history_box.children[0].children[2].children[0].click()
    assert "Cannot show video #1" in studio.message.value and "load" in studio.message.value


def test_out_of_memory_says_what_to_change_and_the_studio_recovers(studio, monkeypatch):
    real_generate = studio_module.generate

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(studio_module, "generate", out_of_memory)
    studio.generate_button.click()
    message = studio.message.value
    assert isinstance(studio.last_error, torch.OutOfMemoryError)
    assert "Out of memory" in message and "fewer frames" in message and "smaller size" in message
    assert "offload=" in message and studio.progress.bar_style == "danger"
    assert not studio.generate_button.disabled and studio.history == []

    monkeypatch.setattr(studio_module, "generate", real_generate)
    studio.generate_button.click()
    assert studio.last_error is None and len(studio.history) == 1 and studio.progress.bar_style == "success"


def test_the_helpers_out_of_memory_advice_is_shown_as_it_is(studio, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise GPUMemoryError("The GPU ran out of memory making 8 frames. Each of these needs less memory: frames=4.")

    monkeypatch.setattr(studio_module, "generate", out_of_memory)
    studio.generate_button.click()
    assert "Each of these needs less memory: frames=4." in studio.message.value
    assert not studio.generate_button.disabled


def test_other_errors_are_shown_with_their_traceback_not_swallowed(studio, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the UNet fell over")

    monkeypatch.setattr(studio_module, "generate", broken)
    studio.generate_button.click()
    assert isinstance(studio.last_error, RuntimeError)
    assert "RuntimeError: the UNet fell over" in studio.message.value
    assert "Traceback" in studio.message.value
    assert not studio.generate_button.disabled


def test_the_studio_displays_as_one_widget(studio):
    bundle = studio._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == studio.ui.model_id
