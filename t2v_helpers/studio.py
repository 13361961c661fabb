"""A studio of ipywidgets to make videos by turning knobs: controls, progress, the video, a history. Notebook 05.

Only ipywidgets' own widgets are used, and only those that ipywidgets 7 and 8 share, so
JupyterLab, Jupyter Notebook 7, VS Code and Colab (whose kernel runs ipywidgets 7) all
display it, with no front-end code to build or install.

Its parts, each readable alone: `_Controls` (the knobs and their values), `_Screen` (the
buttons, the progress, the message and the player), `_History` (the videos made so far, as
cards) and `Studio`, which holds them and does the actions: generate, upscale, show, load.
ipywidgets is imported where widgets are built, not at the top: the package works without
the notebooks extra.
"""

import base64
import html
import io
import numbers
import os
import secrets
import signal
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from traitlets import TraitError

from .errors import GPUMemoryError, PromptTooLongWarning
from .families import family_of, model_of
from .generate import generate
from .fast import FAST_GUIDANCE, FAST_STEPS, switch_scheduler
from .schedulers import scheduler_name, scheduler_names
from .upscale import STRENGTH, load_upscaler, steps_run, upscale, upscaled_size, upscaler_for
from .validate import is_finite_number
from .video import save_video, to_uint8

# The random-seed button draws below 2**32: a browser's numbers hold whole numbers
# exactly only up to 2**53, so bigger seeds would change on their way to the page.
RANDOM_SEED_LIMIT = 2**32
CONTROLS = ("prompt", "negative_prompt", "steps", "frames", "guidance", "seed", "scheduler", "height", "width", "fps")
_LABEL = {"description_width": "130px"}
_ERROR = "color:#b00020"
_WARNING = "color:#8a5300"


def _click_sent_at():
    """When the browser sent the button click being handled, in seconds by its clock; None when code clicked."""
    try:
        from IPython import get_ipython

        header = get_ipython().kernel.get_parent("shell")["header"]
        if header["msg_type"] != "comm_msg":
            return None
        date = header["date"]
        if isinstance(date, str):
            date = datetime.fromisoformat(date.replace("Z", "+00:00"))
        return date.timestamp()
    except Exception:  # no kernel, one without this API, or no usable date: treat it as a click from code
        return None


def _notes(caught):
    """The prompt-too-long warnings among `caught`, as HTML for the studio; any other warning goes on as usual."""
    notes = []
    for warning in caught:
        if issubclass(warning.category, PromptTooLongWarning):
            notes.append(html.escape(f"Note: {warning.message}"))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return "<br>".join(notes)


def _sent_while_busy(sent_at, last_click):
    """Whether a click the browser sent at `sent_at` came before it saw the end of the `last_click` (sent at, took)."""
    if sent_at is None or last_click is None:
        return False
    last_sent, took = last_click
    return sent_at < last_sent + took


@contextmanager
def _interruptible():
    """Let Kernel › Interrupt (SIGINT) stop the code inside, even where the kernel ignores it for now."""
    # ipykernel ignores SIGINT between messages, and a click it handles beside another
    # message's bookkeeping runs without its handler: a generation must never be unstoppable.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


@dataclass
class HistoryEntry:
    """One video made in the studio: the control values that made it and its files. Notebook 05."""

    number: int
    values: dict
    mp4: Path
    sidecar: Path
    elapsed_s: float
    thumbnail: bytes


def _video_html(mp4, width):
    """An HTML5 player for the MP4 bytes `mp4`, embedded as a data: URL (muted, so browsers let it autoplay)."""
    # Not widgets.Video: it sends the file as a binary buffer, which Colab's widget front ends
    # do not pass on (colabtools#587, colab-cdn-widget-manager#33); HTML travels as text everywhere.
    data = base64.b64encode(mp4).decode("ascii")
    return f'<video src="data:video/mp4;base64,{data}" width="{width}" controls autoplay loop muted playsinline></video>'


def _image_html(png, width):
    """An <img> of the PNG bytes `png`, embedded as a data: URL (not widgets.Image, for the reason above)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" width="{width}" alt="a frame from the middle of the video">'


def _thumbnail(frames):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(frames)[len(frames) // 2]).save(buffer, format="PNG")
    return buffer.getvalue()


def _tagged(widget, name):
    """`widget` with the stable class t2v-NAME, for the browser test and for anyone who styles the studio."""
    widget.add_class("t2v-" + name.replace("_", "-"))
    return widget


def _header(pipe):
    """The studio's first line: the model, where it runs, and whether its weights are random."""
    name = getattr(pipe, "t2v_model_id", pipe.name_or_path)
    runtime = getattr(pipe, "t2v_runtime", None)
    where = f" · {runtime.device}, {str(runtime.dtype).replace('torch.', '')}" if runtime else ""
    noise = " · random weights: its videos are noise" if model_of(pipe).tiny else ""
    return f"<b>Text-to-video studio</b> · model {html.escape(str(name))}{where}{noise}"


def _explain(error, values, family):
    """What the studio says about an `error` made with the control `values`: what to change, or its traceback."""
    if isinstance(error, (ValueError, GPUMemoryError)):  # a GPUMemoryError's message already lists what fits these settings
        return f"Not made: {html.escape(str(error))}"
    if isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower():
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give back what the failed run held, for the next try
        smaller = max(family.size_multiple, values["height"] // 2 // family.size_multiple * family.size_multiple)
        return (
            f"Out of memory making {values['frames']} frames at {values['height']}×{values['width']}. "
            f"Try fewer frames (such as {family.half_frames(values['frames'])}), a smaller size (such as {smaller}), "
            "or load the pipeline with CPU offload: <code>t2v.load_pipeline(MODEL_ID, offload='model')</code>, "
            "or <code>offload='sequential'</code> (slowest, least memory).<br>"
            f"<small>{html.escape(str(error))}</small>"
        )
    details = html.escape("".join(traceback.format_exception(error)))
    return (
        f"Generation failed: {type(error).__name__}: {html.escape(str(error))}. The studio still works: change "
        "a setting and press Generate again; <code>raise studio.last_error</code> in a cell shows the traceback."
        f"<details><summary>traceback</summary><pre>{details}</pre></details>"
    )


class _Controls:
    """The knobs: a widget for each name in CONTROLS and the random-seed button; reads and checks their values."""

    WIDGETS = (*CONTROLS, "random_seed_button")

    def __init__(self, pipe, start, say):
        import ipywidgets as widgets

        family, model = family_of(pipe), model_of(pipe)
        names, current = scheduler_names(pipe), scheduler_name(pipe)
        names = names if current in names else [current, *names]
        self.prompt = _tagged(widgets.Textarea(description="prompt", rows=2, style=_LABEL, layout={"width": "100%"}), "prompt")
        self.negative_prompt = _tagged(widgets.Text(description="negative prompt", placeholder="what to keep out, e.g. blurry, text",
                                                    style=_LABEL, layout={"width": "100%"}), "negative_prompt")
        self.steps = widgets.IntSlider(min=1, max=100, description="steps", style=_LABEL)
        # Counts of the family's form only (1, 5, 9, ... for Wan): the slider steps from 1 by frame_step.
        most_frames = min(max(64, model.frames), family.max_frames or 1024)  # a family's published limit (CogVideoX-2B: 49) caps the slider
        most_frames = (most_frames - 1) // family.frame_step * family.frame_step + 1
        self.frames = widgets.IntSlider(min=1, max=most_frames, step=family.frame_step, description="frames", style=_LABEL)
        self.guidance = widgets.FloatSlider(min=0, max=20, step=0.5, description="guidance scale", style=_LABEL)
        self.fps = widgets.IntSlider(min=1, max=30, description="fps", style=_LABEL)
        # Plain number boxes, not sliders: a value the model cannot take reaches the
        # check in generate() and comes back as a message that says what to change.
        self.seed = _tagged(widgets.IntText(description="seed", style=_LABEL, layout={"width": "290px"}), "seed")
        self.random_seed_button = _tagged(widgets.Button(description="random", tooltip="Draw a random seed", icon="dice",
                                                         layout={"width": "110px"}), "random_seed_button")
        self.scheduler = widgets.Dropdown(options=names, value=current, description="scheduler", style=_LABEL)
        self.height = _tagged(widgets.IntText(step=family.size_multiple, description="height", style=_LABEL), "height")
        self.width = _tagged(widgets.IntText(step=family.size_multiple, description="width", style=_LABEL), "width")
        sliders = widgets.VBox([self.steps, self.frames, self.guidance, self.fps])
        boxes = widgets.VBox([widgets.HBox([self.seed, self.random_seed_button]), self.scheduler, self.height, self.width])
        self.rows = [self.prompt, self.negative_prompt, widgets.HBox([sliders, boxes])]
        # The model's own numbers: what a control left out starts at, and what a value that is not a number is told to be.
        own = dict(steps=family.steps, frames=model.frames, guidance=family.guidance, height=model.height, width=model.width, fps=family.fps)
        self.suggestions = dict(own, seed=0)
        self.loading = False
        own["scheduler"] = family.default_scheduler
        self.load({name: own[name] if start[name] is None and name in own else start[name] for name in CONTROLS})
        self.say = say  # how the controls tell what they did
        self.random_seed_button.on_click(self.random_seed)
        self.scheduler.observe(self._fast_defaults, names="value")

    def random_seed(self, _button=None):
        self.seed.value = secrets.randbelow(RANDOM_SEED_LIMIT)
        self.say(f"Drew seed {self.seed.value}. The same seed and settings make the same video again.")

    def _fast_defaults(self, change):
        # Picked by hand (not by load()): start the few-step scheduler at what its LoRA was distilled for.
        if change["new"] == "lcm" and not self.loading:
            self.steps.value, self.guidance.value = FAST_STEPS, FAST_GUIDANCE
            self.say(f"Few-step mode: Generate merges the Motion Consistency Model LoRA; {FAST_STEPS} steps, guidance {FAST_GUIDANCE:g} (notebook 08).")

    def values(self):
        return {name: getattr(self, name).value for name in CONTROLS}

    def load(self, values):
        """Put `values` into the controls, or raise ValueError saying what a control can hold."""
        unknown = sorted(set(values) - set(CONTROLS))
        if unknown:
            raise ValueError(f"values has keys {unknown} that are not controls; use some of {list(CONTROLS)}.")
        for name, value in values.items():
            control = getattr(self, name)
            limits = f"from {control.min} to {control.max} " if hasattr(control, "max") else ""
            if name in self.suggestions and not is_finite_number(value):
                # NaN would pass into a slider and come back as its own suggestion ('such as nan').
                problem = "is not a finite number" if isinstance(value, numbers.Real) and not isinstance(value, bool) else "is not a number"
                raise ValueError(f"{name}={value!r} {problem}; use a number {limits}such as {self.suggestions[name]!r}.")
            try:
                self.loading = True
                control.value = value
            except TraitError:
                kind = type(control.value).__name__
                allowed = f"choose one of {list(control.options)}" if hasattr(control, "options") else f"it holds values of type {kind}"
                raise ValueError(f"{name}={value!r} does not fit the {name} control; {allowed}.") from None
            finally:
                self.loading = False
            # Sliders clamp a value outside their range instead of refusing it: refuse it here.
            if control.value != value:
                raise ValueError(f"{name}={value!r} does not fit the {name} control; use a value {limits}such as {control.value!r}.")


class _History:
    """The videos made so far: the list of HistoryEntry, and their cards, newest first, with show and load buttons."""

    def __init__(self, show, load):
        import ipywidgets as widgets

        self.entries = []
        self.show, self.load = show, load  # what a card's buttons do with its entry
        self.box = _tagged(widgets.HBox(layout={"overflow_x": "auto", "width": "100%"}), "history_box")
        title = widgets.HTML("<b>History</b> (newest first): <i>show</i> plays a video again, <i>load</i> puts its settings back in the controls.")
        self.rows = [title, self.box]

    def add(self, values, saved, result):
        """Add the video `saved` that `result` made from `values`; return its HistoryEntry."""
        entry = HistoryEntry(len(self.entries) + 1, values, saved.mp4, saved.sidecar, result.elapsed_s, _thumbnail(result.frames))
        self.entries.append(entry)
        self.box.children = (self._card(entry), *self.box.children)
        return entry

    def _card(self, entry):
        import ipywidgets as widgets

        v = entry.values
        prompt = v["prompt"] if len(v["prompt"]) <= 60 else v["prompt"][:57] + "…"
        caption = widgets.HTML(
            f"<b>#{entry.number}</b> {html.escape(prompt)}<br>"
            f"seed {v['seed']} · {v['steps']} steps · {html.escape(v['scheduler'])}<br>"
            f"{v['frames']} frames · {v['height']}×{v['width']} · guidance {v['guidance']:g} · {v['fps']} fps<br>"
            f"{entry.elapsed_s:.1f} s"
        )
        show = widgets.Button(description="show", layout={"width": "80px"})
        load = widgets.Button(description="load", layout={"width": "80px"})
        show.on_click(lambda _button: self.show(entry))
        load.on_click(lambda _button: self.load(entry))
        thumbnail = widgets.HTML(_image_html(entry.thumbnail, 96))
        card = widgets.VBox([thumbnail, caption, widgets.HBox([show, load])], layout={"min_width": "230px", "margin": "0 8px 0 0"})
        return _tagged(card, "history_card")


class _Screen:
    """The buttons that start the work and what the studio shows of it: progress, time, a message, the video and its files."""

    WIDGETS = ("generate_button", "upscale_button", "progress", "elapsed", "message", "video", "files")

    def __init__(self):
        import ipywidgets as widgets

        self.generate_button = _tagged(widgets.Button(description="Generate", button_style="primary", icon="play"), "generate_button")
        self.upscale_button = widgets.Button(description="Upscale", icon="expand", disabled=True,
                                             tooltip="Make the newest video sharper with zeroscope's video-to-video model (notebook 11)")
        self.progress = _tagged(widgets.IntProgress(value=0, min=0, description="progress", style=_LABEL), "progress")
        self.elapsed = widgets.Label(value="")
        self.message = _tagged(widgets.HTML(value=""), "message")
        self.video = _tagged(widgets.HTML(value="", layout={"display": "none"}), "video")  # an HTML5 <video> (_video_html), hidden until there is one
        self.files = _tagged(widgets.HTML(value=""), "files")
        self.rows = [widgets.HBox([self.generate_button, self.upscale_button, self.progress, self.elapsed]), self.message, self.video, self.files]
        self.error_shown = False

    def say(self, text, error=False, warning=""):
        """Show `text` (HTML) as the message, in red if it is an `error`, below a `warning` if any."""
        style = f' style="{_ERROR}"' if error else ""
        note = f'<div style="{_WARNING}">{warning}</div>' if warning else ""
        self.message.value = f"{note}<div{style}>{text}</div>"
        self.error_shown = error

    def end(self, bar_style, text, error=False, warning=""):
        """Colour the progress bar by how the work ended ("success", "danger", "warning") and say `text`."""
        self.progress.bar_style = bar_style
        self.say(text, error, warning)

    def clear_error(self):
        if self.error_shown:
            self.message.value = ""
            self.progress.bar_style = ""
            self.error_shown = False

    def play(self, entry):
        """Play a HistoryEntry's video and list its files, or say why its file cannot be read."""
        try:
            mp4 = Path(entry.mp4).read_bytes()
        except OSError as error:
            self.say(f"Cannot show video #{entry.number}: {html.escape(str(error))}. Its settings are still here: "
                     "press <i>load</i> on it, then Generate, to make it again.", error=True)
            return
        self.video.value = _video_html(mp4, max(320, entry.values["width"]))  # small videos are hard to see at their own size
        self.video.layout.display = ""
        self.files.value = (f"Video #{entry.number}: MP4 <code>{html.escape(str(entry.mp4))}</code>, "
                            f"settings <code>{html.escape(str(entry.sidecar))}</code>")
        self.say(f"Showing video #{entry.number}.")


class Studio:
    """Widgets to make videos with `pipe`: set the controls, press Generate, compare in the history. Notebook 05.

    Display it by leaving it as the last line of a cell. Every video is saved as an MP4
    with a JSON sidecar in `out_dir` (never overwriting a file). The keyword arguments
    are the controls' starting values (ValueError if a control cannot hold one: steps
    1 to 100, frames 1 to 64 or the model's own count if higher, guidance 0 to 20, fps
    1 to 30); those left out are the model's own (t2v_helpers.families): for ModelScope
    25 steps, 16 frames of 256x256, guidance 9, DPM-Solver ("dpm", the article's choice)
    and 8 fps. Sizes step by the family's block size and frames by its frame step (4 for
    Wan and CogVideoX, whose counts are 4k+1).
    """

    def __init__(self, pipe, out_dir="outputs", *, prompt="Spiderman is surfing", negative_prompt="", steps=None, frames=None,
                 height=None, width=None, guidance=None, seed=0, scheduler=None, fps=None):
        import ipywidgets as widgets

        if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip():
            raise ValueError(f"out_dir={out_dir!r} must be the name of a folder for the videos, such as 'outputs'.")
        self.pipe, self.out_dir = pipe, Path(out_dir)
        self.last_error = None
        self.upscaler = None  # loaded at the first Upscale click
        self._busy = False
        self._last_click = None  # (when the browser sent it, how long its video took) of the last click that ran
        start = dict(prompt=prompt, negative_prompt=negative_prompt, steps=steps, frames=frames, guidance=guidance, seed=seed,
                     scheduler=scheduler, height=height, width=width, fps=fps)
        self.screen = _Screen()
        self.controls = _Controls(pipe, start, self.screen.say)
        self.screen.progress.max = self.controls.steps.value
        self._history = _History(self.show, self._load_entry)
        self.history, self.history_box = self._history.entries, self._history.box
        # The parts' widgets are the studio's too: studio.prompt, studio.generate_button, ... (notebook 05).
        for part in (self.controls, self.screen):
            for name in part.WIDGETS:
                setattr(self, name, getattr(part, name))

        self.generate_button.on_click(self.make_video)
        self.upscale_button.on_click(self.upscale_last)
        self.history_box.observe(lambda _change: setattr(self.upscale_button, "disabled", not self.history), "children")
        for name in CONTROLS:  # an error message describes the old values: a changed control clears it
            getattr(self, name).observe(self._clear_error, "value")
        rows = [widgets.HTML(_header(pipe)), *self.controls.rows, *self.screen.rows, *self._history.rows]
        self.ui = _tagged(widgets.VBox(rows), "studio")

    def _ipython_display_(self):
        # display() shows widgets of either version: ipywidgets 8's by their _repr_mimebundle_,
        # ipywidgets 7's (Colab's kernel) by their _ipython_display_. IPython 7 to 9 call this method.
        from IPython.display import display

        display(self.ui)

    def values(self):
        """The controls' current values, as a dict. Notebook 05."""
        return self.controls.values()

    def load(self, values):
        """Put `values` (a dict from `values()` or a history entry) back into the controls. Notebook 05."""
        self.controls.load(values)

    def _clear_error(self, _change=None):
        if not self._busy:
            self.screen.clear_error()

    def random_seed(self, _button=None):
        """Draw a random seed into the seed box and say which. Notebook 05."""
        self.controls.random_seed()

    def make_video(self, _button=None):
        """Make a video from the controls' values: what the Generate button runs. Notebook 05.

        Generation runs here, in the click handler, so Kernel › Interrupt stops it; the
        studio then says at which step, and nothing is saved. One click makes one video:
        a click while a video is being made is ignored, and so is a click the browser sent
        before the first one's video was done (the second click of a double click, which
        the kernel only reads afterwards). A value the model cannot take, an out-of-memory
        error or any other error is shown in the studio (and kept in `last_error`), and
        the studio stays usable.
        """
        sent_at = _click_sent_at()
        if self._busy or self.generate_button.disabled or _sent_while_busy(sent_at, self._last_click):
            return None
        self._busy = True
        started = time.perf_counter()
        try:
            with _interruptible():
                return self._make_video()
        finally:
            if sent_at is not None:
                # Measured before the button is enabled again: any click sent before the browser
                # saw that is less than this long after this one (both by the browser's clock).
                self._last_click = (sent_at, time.perf_counter() - started)
            self._busy = False
            self.generate_button.disabled = False

    def _make_video(self):
        values = self.values()
        self.generate_button.disabled = True
        self.progress.max, self.progress.value, self.progress.bar_style = max(1, values["steps"]), 0, "info"
        self.elapsed.value = ""
        self.screen.say("Generating…")
        start = time.perf_counter()
        done = {"step": 0, "saved": None}

        def on_step(step, steps, latents):
            done["step"] = self.progress.value = step
            self.elapsed.value = f"step {step}/{steps} · {time.perf_counter() - start:.1f} s"

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PromptTooLongWarning)
                if values["scheduler"] != scheduler_name(self.pipe):
                    switch_scheduler(self.pipe, values["scheduler"])  # 'lcm' merges the few-step LoRA
                settings = {name: values[name] for name in ("negative_prompt", "steps", "frames", "height", "width", "guidance", "seed")}
                result = generate(self.pipe, values["prompt"], **settings, on_step=on_step)
                done["saved"] = save_video(result, self.out_dir, fps=values["fps"])
        except Exception as error:  # shown in the studio, kept in last_error: never lost
            return self._failed(error, values, warning=_notes(caught))
        except BaseException:  # Kernel › Interrupt (KeyboardInterrupt) or an exit: say so, then let it stop the run
            saved = done["saved"]
            outcome = f"the video was saved as {html.escape(str(saved.mp4))}" if saved else "nothing was saved"
            at = min(done["step"] + 1, values["steps"])  # the step that was running, or the last one while saving
            self.screen.end("warning", f"Stopped at step {at} of {values['steps']}; {outcome}.", error=True)
            raise
        entry = self._made(values, done["saved"], result, f"{len(result.frames)} frames in {result.elapsed_s:.1f} s")
        self.screen.say(f"Made video #{entry.number} (seed {result.seed}).", warning=_notes(caught))
        return entry

    def upscale_last(self, _button=None):
        """Upscale the newest video (twice its size, up to 1024x576) and add it to the history: the Upscale button. Notebook 11.

        It loads zeroscope_v2_XL (or, after a tiny model, its tiny copy) at the first click, and
        re-denoises at strength 0.6 with the video's own prompt, seed and steps. Errors are shown
        in the studio and kept in `last_error`, as Generate's are; an interrupt saves nothing.
        """
        if self._busy or not self.history:
            return None
        self._busy = True
        self.generate_button.disabled = self.upscale_button.disabled = True
        source = self.history[-1]
        values = dict(source.values)
        self.progress.value, self.progress.bar_style = 0, "info"
        self.screen.say(f"Upscaling video #{source.number}…")

        def on_step(step, steps, latents):
            self.progress.max, self.progress.value = steps, step

        try:
            with _interruptible():
                if self.upscaler is None:
                    self.upscaler = load_upscaler(upscaler_for(getattr(self.pipe, "t2v_model_id", "")), verbose=False)
                values["height"], values["width"] = upscaled_size(values["height"], values["width"], self.upscaler)
                self.progress.max = max(1, steps_run(values["steps"], STRENGTH))
                result = upscale(self.upscaler, source.mp4, height=values["height"], width=values["width"], prompt=values["prompt"],
                                 steps=values["steps"], seed=values["seed"], on_step=on_step)
                # The card and `load` show what the upscale used (the upscaler's scheduler and guidance), as its sidecar does.
                values.update({name: result.settings[name] for name in ("scheduler", "guidance", "steps")})
                saved = save_video(result, self.out_dir, fps=values["fps"])
        except Exception as error:  # shown in the studio, kept in last_error: never lost
            return self._failed(error, values)
        except BaseException:
            self.screen.end("warning", f"Stopped upscaling video #{source.number}; nothing was saved.", error=True)
            raise
        finally:
            self._busy = False
            self.generate_button.disabled = False
            self.upscale_button.disabled = not self.history
        entry = self._made(values, saved, result, f"{len(result.frames)} frames upscaled in {result.elapsed_s:.1f} s")
        self.screen.say(f"Made video #{entry.number}: video #{source.number} upscaled to {values['width']}×{values['height']} at strength {STRENGTH}.")
        return entry

    def _failed(self, error, values, warning=""):
        self.last_error = error
        self.screen.end("danger", _explain(error, values, family_of(self.pipe)), error=True, warning=warning)

    def _made(self, values, saved, result, elapsed):
        self.last_error = None
        self.progress.bar_style = "success"
        self.elapsed.value = elapsed
        entry = self._history.add(values, saved, result)
        self.show(entry)
        return entry

    def show(self, entry):
        """Play a history entry's video again and list its files. Notebook 05."""
        self.screen.play(entry)

    def _load_entry(self, entry):
        try:
            self.load(entry.values)
        except ValueError as error:  # an upscaled video's scheduler may not be one this pipeline has
            self.screen.say(f"Cannot load video #{entry.number}'s settings: {html.escape(str(error))}", error=True)
            return
        self.screen.say(f"Loaded the settings of video #{entry.number}; press Generate to make it again.")
