"""The studio (notebook 05) driven from Python: set the widgets' values, click its buttons, check its state."""

import base64
import html
import json
import os
import re
import signal
import time
from datetime import datetime, timezone

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


def data_urls(markup, kind):
    """The bytes of every data: URL of `kind` (such as "video/mp4") in the `src` attributes of `markup`."""
    return [base64.b64decode(data) for data in re.findall(rf'src="data:{re.escape(kind)};base64,([A-Za-z0-9+/=]+)"', markup)]


def shown_video(studio):
    """The MP4 the studio's player plays: the one <video> in its HTML, as bytes."""
    assert studio.video.value.count("<video") == 1, studio.video.value[:200]
    [mp4] = data_urls(studio.video.value, "video/mp4")
    return mp4


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
    assert shown_video(studio) == entry.mp4.read_bytes()
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
    assert shown_video(studio) == studio.history[1].mp4.read_bytes()

    oldest_card = studio.history_box.children[-1]  # newest first
    assert "first video" in oldest_card.children[1].value
    show, load = oldest_card.children[2].children
    show.click()
    assert shown_video(studio) == studio.history[0].mp4.read_bytes()
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
    """Leaving `studio` last in a cell shows its widgets, through the path IPython takes for any result."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    with capture_output() as captured:
        shell.displayhook(studio)
    [shown] = captured.outputs
    assert shown.data["application/vnd.jupyter.widget-view+json"]["model_id"] == studio.ui.model_id


def test_the_studio_shows_itself_through_display_which_ipywidgets_7_and_8_both_support(studio):
    # ipywidgets 8 widgets have _repr_mimebundle_, ipywidgets 7 widgets (Colab's kernel) only
    # _ipython_display_: the studio hands its box to display(), which takes either, and asks neither itself.
    assert not hasattr(studio, "_repr_mimebundle_")
    assert callable(studio._ipython_display_)


def test_videos_and_thumbnails_travel_as_html_not_binary_buffers(studio):
    """Colab's widget front ends drop binary buffers (widgets.Video, widgets.Image); an HTML <video> with a data: URL plays there."""
    studio.generate_button.click()
    entry = studio.history[0]
    assert 'autoplay' in studio.video.value and 'muted' in studio.video.value and 'loop' in studio.video.value
    [thumbnail] = [w for w in studio.history_box.children[0].children if "<img" in getattr(w, "value", "")]
    assert data_urls(thumbnail.value, "image/png") == [entry.thumbnail]

    def binary_traits(widget):
        found = [f"{type(widget).__name__}.{name}" for name in widget.keys if isinstance(getattr(widget, name), (bytes, bytearray, memoryview))]
        for child in getattr(widget, "children", ()):
            found += binary_traits(child)
        return found

    assert binary_traits(studio.ui) == []


def slowed(real_generate, each_step):
    """`generate` that calls `each_step(step)` before the studio's own on_step, to act in the middle of a video."""

    def generate(*args, on_step, **kwargs):
        def step(step, steps, latents):
            each_step(step)
            on_step(step, steps, latents)

        return real_generate(*args, on_step=step, **kwargs)

    return generate


def test_the_studio_starts_on_the_articles_scheduler_dpm_solver(pipe, tmp_path):
    t2v.set_scheduler(pipe, "ddim")
    studio = t2v.Studio(pipe, tmp_path, steps=STEPS, frames=FRAMES, height=SIZE, width=SIZE)
    assert studio.scheduler.value == "dpm"
    studio.generate_button.click()
    assert t2v.scheduler_name(pipe) == "dpm" and studio.history[0].values["scheduler"] == "dpm"


def test_a_click_while_a_video_is_being_made_is_ignored(studio, monkeypatch):
    clicks = []

    def click_again(step):
        clicks.append(studio.make_video())  # re-entrant, as a click handled during a step would be
        studio.generate_button.click()

    monkeypatch.setattr(studio_module, "generate", slowed(studio_module.generate, click_again))
    studio.generate_button.click()
    assert clicks == [None] * STEPS
    assert len(studio.history) == 1 and len(list(studio.out_dir.glob("*.mp4"))) == 1
    assert not studio.generate_button.disabled and "Made video #1" in studio.message.value


def test_a_double_click_makes_one_video_and_a_later_click_another(studio, monkeypatch):
    # The kernel reads the second click of a double click only after the first one's video is
    # done; what gives it away is the time the browser sent it, which the message header carries.
    sent = iter([1000.0, 1000.001])  # 1 ms apart: sent long before any video could be done
    monkeypatch.setattr(studio_module, "_click_sent_at", lambda: next(sent))
    before = time.perf_counter()
    studio.generate_button.click()
    took = time.perf_counter() - before
    studio.generate_button.click()
    assert len(studio.history) == 1 and len(list(studio.out_dir.glob("*.mp4"))) == 1
    assert not studio.generate_button.disabled

    # A click sent once the first video was done (and the button enabled again) makes a video.
    monkeypatch.setattr(studio_module, "_click_sent_at", lambda: 1000.0 + took + 0.01)
    studio.generate_button.click()
    assert len(studio.history) == 2
    # Clicks from code (a cell calling click()) carry no browser time and always run.
    monkeypatch.setattr(studio_module, "_click_sent_at", lambda: None)
    studio.generate_button.click()
    studio.generate_button.click()
    assert len(studio.history) == 4


@pytest.mark.parametrize("where", ["denoising", "saving"])
def test_an_interrupt_says_where_it_stopped_saves_nothing_and_the_studio_still_works(studio, monkeypatch, where):
    real_generate, real_save = studio_module.generate, studio_module.save_video

    def interrupt(step):
        if step == 1:
            raise KeyboardInterrupt

    def interrupted_save(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "denoising":  # during step 1: the bar has not moved yet
        monkeypatch.setattr(studio_module, "generate", slowed(real_generate, interrupt))
        stopped_at, bar = 1, 0
    else:  # every step done, the file being written
        monkeypatch.setattr(studio_module, "save_video", interrupted_save)
        stopped_at, bar = STEPS, STEPS
    with pytest.raises(KeyboardInterrupt):  # it goes on to the kernel, which stops the run there
        studio.generate_button.click()

    assert f"Stopped at step {stopped_at} of {STEPS}; nothing was saved." in studio.message.value
    assert "Generating" not in studio.message.value
    assert studio.progress.bar_style == "warning" and studio.progress.value == bar
    assert not studio.generate_button.disabled
    assert output_files(studio) == [] and studio.history == []

    monkeypatch.setattr(studio_module, "generate", real_generate)
    monkeypatch.setattr(studio_module, "save_video", real_save)
    studio.generate_button.click()
    assert len(studio.history) == 1 and "Made video #1" in studio.message.value


def test_an_interrupt_can_stop_a_click_the_kernel_runs_with_sigint_ignored(studio, monkeypatch):
    seen = []
    monkeypatch.setattr(studio_module, "generate", slowed(studio_module.generate, lambda step: seen.append(signal.getsignal(signal.SIGINT))))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        studio.generate_button.click()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # given back as it was
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen and all(handler is signal.default_int_handler for handler in seen)


def test_a_prompt_too_long_for_the_text_encoder_is_shown_with_the_part_that_is_cut(studio, pipe):
    studio.prompt.value = "a red fox running through deep snow at dawn, " * 12
    studio.generate_button.click()
    ids = pipe.tokenizer(studio.prompt.value).input_ids
    limit = pipe.tokenizer.model_max_length
    cut = pipe.tokenizer.decode(ids[limit - 1 : -1]).strip()
    message = studio.message.value
    assert len(studio.history) == 1 and "Made video #1" in message
    assert f"{len(ids)} tokens" in message and html.escape(repr(cut)) in message

    studio.prompt.value = "a short prompt"
    studio.generate_button.click()
    assert "tokens" not in studio.message.value


def test_resetting_a_control_clears_the_error_it_caused(studio):
    studio.height.value = SIZE + 4
    studio.generate_button.click()
    assert "height=" in studio.message.value and studio.progress.bar_style == "danger"
    studio.height.value = SIZE  # as notebook 05 does after showing the error
    assert studio.message.value == "" and studio.progress.bar_style == ""
    studio.load({"seed": 3})  # a message that is not an error stays
    studio.generate_button.click()
    studio.seed.value = 4
    assert "Made video #1" in studio.message.value


KERNEL_SETUP = """
import time
import t2v_helpers as t2v
from t2v_helpers import studio as studio_module

pipe = t2v.load_pipeline({model!r}, verbose=False)
studio = t2v.Studio(pipe, {out!r}, steps={steps}, frames={frames}, height={size}, width={size})
print(studio.generate_button.model_id)
"""

# Each step waits 0.5 s, so that the interrupt lands in the middle of the video, and leaves a
# file behind to say the video has started.
KERNEL_SLOW_STEPS = """
real_generate = studio_module.generate

def slow_generate(*args, on_step, **kwargs):
    def step(*a):
        open({marker!r}, "w").close()
        time.sleep(0.5)
        on_step(*a)
    return real_generate(*args, on_step=step, **kwargs)

studio_module.generate = slow_generate
studio.load({{"steps": 60}})
"""


def run_in(client, code, timeout=300):
    """Run `code` in the kernel; its stdout, or AssertionError with the kernel's error."""
    out = []
    reply = client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: out.append(msg))
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")


def click(client, model_id):
    """What the browser sends when Generate is clicked: a comm message to the button's model."""
    data = {"method": "custom", "content": {"event": "click"}}
    client.shell_channel.send(client.session.msg("comm_msg", {"comm_id": model_id, "data": data}))


def test_in_a_kernel_a_double_click_makes_one_video_and_an_interrupt_stops_the_next(tmp_path):
    """The path a browser takes: comm messages into an ipykernel, and SIGINT from Kernel › Interrupt."""
    from jupyter_client.manager import start_new_kernel

    out = tmp_path / "outputs"
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        setup = KERNEL_SETUP.format(model=os.environ["T2V_MODEL"], out=str(out), steps=STEPS, frames=FRAMES, size=SIZE)
        button = run_in(client, setup).split()[-1]
        click(client, button)
        click(client, button)  # the second click of a double click, sent before the first one's video exists
        assert run_in(client, "print(len(studio.history))").strip() == "1"  # queued after both clicks
        assert len(list(out.glob("*.mp4"))) == 1

        # A double click on a slow video, then Kernel › Interrupt: the video stops, and the queued
        # second click must not start another one that the interrupt seems not to have stopped.
        marker = tmp_path / "started"
        run_in(client, KERNEL_SLOW_STEPS.format(marker=str(marker)))
        click(client, button)
        click(client, button)
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        manager.interrupt_kernel()
        report = run_in(client, "print(len(studio.history), studio.generate_button.disabled, studio.progress.bar_style)\n"
                                "print(studio.message.value)")
        assert "Stopped at step" in report and "of 60; nothing was saved." in report, report
        assert report.splitlines()[0] == "1 False warning", report
        assert len(list(out.glob("*.mp4"))) == 1 and len(list(out.glob("*.json"))) == 1
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.parametrize(
    "header, sent_at",
    [
        ({"msg_type": "comm_msg", "date": "2026-11-25T20:00:00.250Z"}, 1795636800.25),
        ({"msg_type": "comm_msg", "date": datetime(2026, 11, 25, 20, 0, 0, 250000, tzinfo=timezone.utc)}, 1795636800.25),
        ({"msg_type": "execute_request", "date": "2026-11-25T20:00:00Z"}, None),  # a cell calling click()
        ({"msg_type": "comm_msg", "date": "yesterday"}, None),
        ({"msg_type": "comm_msg"}, None),
    ],
)
def test_the_time_a_click_was_sent_comes_from_the_browsers_message_only(monkeypatch, header, sent_at):
    import IPython

    kernel = type("Kernel", (), {"get_parent": lambda self, channel: {"header": header}})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": kernel})())
    assert studio_module._click_sent_at() == sent_at


# --- issue 19 ---------------------------------------------------------------------------------------------------


def test_an_upscaled_videos_card_shows_what_the_upscale_used(pipe, tmp_path):
    """The card of an upscaled video showed the source's scheduler, guidance and fps; its sidecar said ddim."""
    studio = t2v.Studio(pipe, tmp_path / "outputs", prompt="a cat", steps=2, frames=2, height=32, width=32,
                        guidance=4.5, scheduler="euler", fps=12)
    studio.generate_button.click()
    studio.upscale_button.click()
    assert studio.last_error is None, studio.message.value
    upscaled = studio.history[-1]
    sidecar = json.loads(upscaled.sidecar.read_text())
    settings = sidecar["settings"]
    for name in ("scheduler", "guidance", "steps", "height", "width"):
        assert upscaled.values[name] == settings[name], name
    assert upscaled.values["fps"] == sidecar["fps"]
    caption = studio.history_box.children[0].children[1].value
    assert html.escape(settings["scheduler"]) in caption and f"guidance {settings['guidance']:g}" in caption
    assert "euler" not in caption and "guidance 4.5" not in caption


@pytest.mark.parametrize("name, value", [("guidance", float("nan")), ("guidance", float("inf")), ("fps", float("nan")),
                                         ("steps", float("nan")), ("guidance", "high")])
def test_a_starting_value_that_is_not_a_number_never_suggests_itself(pipe, tmp_path, name, value):
    """Studio(guidance=nan) suggested 'such as nan'."""
    with pytest.raises(ValueError) as error:
        t2v.Studio(pipe, tmp_path / "outputs", **{name: value})
    message = str(error.value)
    assert f"such as {value!r}" not in message and "such as nan" not in message and "such as inf" not in message
    assert "is not a" in message and "number" in message
