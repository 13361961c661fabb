"""A studio of ipywidgets to make videos by turning knobs: controls, progress, the video, a history. Notebook 05.

Only ipywidgets' own widgets are used, and only those that ipywidgets 7 and 8 share, so
JupyterLab, Jupyter Notebook 7, VS Code and Colab (whose kernel runs ipywidgets 7) all
display it, with no front-end code to build or install.
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

    def __init__(
        self,
        pipe,
        out_dir="outputs",
        *,
        prompt="Spiderman is surfing",
        negative_prompt="",
        steps=None,
        frames=None,
        height=None,
        width=None,
        guidance=None,
        seed=0,
        scheduler=None,
        fps=None,
    ):
        import ipywidgets as widgets  # here, not at the top: the package works without the notebooks extra

        if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip():
            raise ValueError(f"out_dir={out_dir!r} must be the name of a folder for the videos, such as 'outputs'.")
        self.pipe = pipe
        self.out_dir = Path(out_dir)
        self.history = []
        self.last_error = None
        self._busy = False
        self._error_shown = False
        self._last_click = None  # (when the browser sent it, how long its video took) of the last click that ran
        family, model = family_of(pipe), model_of(pipe)
        names = scheduler_names(pipe)
        current = scheduler_name(pipe)
        names = names if current in names else [current, *names]

        self.prompt = widgets.Textarea(description="prompt", rows=2, style=_LABEL, layout={"width": "100%"})
        self.negative_prompt = widgets.Text(
            description="negative prompt", placeholder="what to keep out, e.g. blurry, text", style=_LABEL, layout={"width": "100%"}
        )
        self.steps = widgets.IntSlider(min=1, max=100, description="steps", style=_LABEL)
        # Counts of the family's form only (1, 5, 9, ... for Wan): the slider steps from 1 by frame_step.
        most_frames = min(max(64, model.frames), family.max_frames or 1024)  # a family's published limit (CogVideoX-2B: 49) caps the slider
        most_frames = (most_frames - 1) // family.frame_step * family.frame_step + 1
        self.frames = widgets.IntSlider(min=1, max=most_frames, step=family.frame_step, description="frames", style=_LABEL)
        self.guidance = widgets.FloatSlider(min=0, max=20, step=0.5, description="guidance scale", style=_LABEL)
        self.fps = widgets.IntSlider(min=1, max=30, description="fps", style=_LABEL)
        # Plain number boxes, not sliders: a value the model cannot take reaches the
        # check in generate() and comes back as a message that says what to change.
        self.seed = widgets.IntText(description="seed", style=_LABEL, layout={"width": "290px"})
        self.random_seed_button = widgets.Button(description="random", tooltip="Draw a random seed", icon="dice")
        self.random_seed_button.layout.width = "110px"
        self.scheduler = widgets.Dropdown(options=names, value=current, description="scheduler", style=_LABEL)
        self.height = widgets.IntText(step=family.size_multiple, description="height", style=_LABEL)
        self.width = widgets.IntText(step=family.size_multiple, description="width", style=_LABEL)
        height = model.height if height is None else height
        width = model.width if width is None else width
        steps = family.steps if steps is None else steps
        frames = model.frames if frames is None else frames
        guidance = family.guidance if guidance is None else guidance
        scheduler = family.default_scheduler if scheduler is None else scheduler
        fps = family.fps if fps is None else fps
        # What a number control suggests when given something that is not a number: the model's own value.
        self._defaults = dict(steps=family.steps, frames=model.frames, guidance=family.guidance, fps=family.fps,
                              height=model.height, width=model.width, seed=0)
        start = dict(prompt=prompt, negative_prompt=negative_prompt, steps=steps, frames=frames, guidance=guidance)
        self.load(dict(start, seed=seed, scheduler=scheduler, height=height, width=width, fps=fps))

        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.upscale_button = widgets.Button(description="Upscale", icon="expand", disabled=True,
                                             tooltip="Make the newest video sharper with zeroscope's video-to-video model (notebook 11)")
        self.upscaler = None  # loaded at the first Upscale click
        self.progress = widgets.IntProgress(value=0, min=0, max=self.steps.value, description="progress", style=_LABEL)
        self.elapsed = widgets.Label(value="")
        self.message = widgets.HTML(value="")
        self.video = widgets.HTML(value="")  # an HTML5 <video>: see _video_html
        self.video.layout.display = "none"  # until there is a video to show
        self.files = widgets.HTML(value="")
        self.history_box = widgets.HBox(layout={"overflow_x": "auto", "width": "100%"})

        self.random_seed_button.on_click(self.random_seed)
        self.scheduler.observe(self._fast_defaults, names="value")
        self.generate_button.on_click(self.make_video)
        self.upscale_button.on_click(self.upscale_last)
        self.history_box.observe(lambda _change: setattr(self.upscale_button, "disabled", not self.history), "children")
        for name in CONTROLS:  # an error message describes the old values: a changed control clears it
            getattr(self, name).observe(self._clear_error, "value")
        # Stable class names for the browser test and for anyone who styles the studio.
        for name in ("prompt", "negative_prompt", "seed", "generate_button", "random_seed_button", "progress",
                     "message", "video", "files", "history_box", "height", "width"):
            getattr(self, name).add_class("t2v-" + name.replace("_", "-"))

        name = getattr(pipe, "t2v_model_id", pipe.name_or_path)
        runtime = getattr(pipe, "t2v_runtime", None)
        where = f" · {runtime.device}, {str(runtime.dtype).replace('torch.', '')}" if runtime else ""
        noise = " · random weights: its videos are noise" if model.tiny else ""
        header = widgets.HTML(f"<b>Text-to-video studio</b> · model {html.escape(str(name))}{where}{noise}")
        self.ui = widgets.VBox(
            [
                header,
                self.prompt,
                self.negative_prompt,
                widgets.HBox(
                    [
                        widgets.VBox([self.steps, self.frames, self.guidance, self.fps]),
                        widgets.VBox([widgets.HBox([self.seed, self.random_seed_button]), self.scheduler, self.height, self.width]),
                    ]
                ),
                widgets.HBox([self.generate_button, self.upscale_button, self.progress, self.elapsed]),
                self.message,
                self.video,
                self.files,
                widgets.HTML("<b>History</b> (newest first): <i>show</i> plays a video again, <i>load</i> puts its settings back in the controls."),
                self.history_box,
            ]
        )
        self.ui.add_class("t2v-studio")

    def _ipython_display_(self):
        # display() shows widgets of either version: ipywidgets 8's by their _repr_mimebundle_,
        # ipywidgets 7's (Colab's kernel) by their _ipython_display_. IPython 7 to 9 call this method.
        from IPython.display import display

        display(self.ui)

    def values(self):
        """The controls' current values, as a dict. Notebook 05."""
        return {name: getattr(self, name).value for name in CONTROLS}

    def load(self, values):
        """Put `values` (a dict from `values()` or a history entry) back into the controls. Notebook 05."""
        unknown = sorted(set(values) - set(CONTROLS))
        if unknown:
            raise ValueError(f"values has keys {unknown} that are not controls; use some of {list(CONTROLS)}.")
        for name, value in values.items():
            control = getattr(self, name)
            if name in self._defaults and not is_finite_number(value):
                # NaN would pass into a slider and come back as its own suggestion ('such as nan').
                problem = "is not a finite number" if isinstance(value, numbers.Real) and not isinstance(value, bool) else "is not a number"
                limits = f"from {control.min} to {control.max} " if hasattr(control, "max") else ""
                raise ValueError(f"{name}={value!r} {problem}; use a number {limits}such as {self._defaults[name]!r}.")
            try:
                self._loading = True
                control.value = value
            except TraitError:
                kind = type(control.value).__name__
                allowed = f"choose one of {list(control.options)}" if hasattr(control, "options") else f"it holds values of type {kind}"
                raise ValueError(f"{name}={value!r} does not fit the {name} control; {allowed}.") from None
            finally:
                self._loading = False
            # Sliders clamp a value outside their range instead of refusing it: refuse it here.
            if control.value != value:
                limits = f" from {control.min} to {control.max}" if hasattr(control, "max") else ""
                raise ValueError(f"{name}={value!r} does not fit the {name} control; use a value{limits} such as {control.value!r}.")

    def _fast_defaults(self, change):
        # Picked by hand (not by load()): start the few-step scheduler at what its LoRA was distilled for.
        if change["new"] == "lcm" and not getattr(self, "_loading", False):
            self.steps.value, self.guidance.value = FAST_STEPS, FAST_GUIDANCE
            self._say(f"Few-step mode: Generate merges the Motion Consistency Model LoRA; {FAST_STEPS} steps, guidance {FAST_GUIDANCE:g} (notebook 08).")

    def _say(self, text, error=False, warning=""):
        style = f' style="{_ERROR}"' if error else ""
        note = f'<div style="{_WARNING}">{warning}</div>' if warning else ""
        self.message.value = f"{note}<div{style}>{text}</div>"
        self._error_shown = error

    def _clear_error(self, _change=None):
        if self._error_shown and not self._busy:
            self.message.value = ""
            self.progress.bar_style = ""
            self._error_shown = False

    def random_seed(self, _button=None):
        """Draw a random seed into the seed box and say which. Notebook 05."""
        self.seed.value = secrets.randbelow(RANDOM_SEED_LIMIT)
        self._say(f"Drew seed {self.seed.value}. The same seed and settings make the same video again.")

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
        if self._busy or self.generate_button.disabled or self._sent_while_busy(sent_at):
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

    def _sent_while_busy(self, sent_at):
        if sent_at is None or self._last_click is None:
            return False
        last_sent, took = self._last_click
        return sent_at < last_sent + took

    def _make_video(self):
        values = self.values()
        self.generate_button.disabled = True
        self.progress.max = max(1, values["steps"])
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.elapsed.value = ""
        self._say("Generating…")
        start = time.perf_counter()
        done = {"step": 0, "saved": None}

        def on_step(step, steps, latents):
            done["step"] = step
            self.progress.value = step
            self.elapsed.value = f"step {step}/{steps} · {time.perf_counter() - start:.1f} s"

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PromptTooLongWarning)
                if values["scheduler"] != scheduler_name(self.pipe):
                    switch_scheduler(self.pipe, values["scheduler"])  # 'lcm' merges the few-step LoRA
                result = generate(
                    self.pipe,
                    values["prompt"],
                    negative_prompt=values["negative_prompt"],
                    steps=values["steps"],
                    frames=values["frames"],
                    height=values["height"],
                    width=values["width"],
                    guidance=values["guidance"],
                    seed=values["seed"],
                    on_step=on_step,
                )
                done["saved"] = save_video(result, self.out_dir, fps=values["fps"])
        except Exception as error:  # shown in the studio, kept in last_error: never lost
            self.last_error = error
            self.progress.bar_style = "danger"
            self._say(self._explain(error, values), error=True, warning=_notes(caught))
            return None
        except BaseException:  # Kernel › Interrupt (KeyboardInterrupt) or an exit: say so, then let it stop the run
            self.progress.bar_style = "warning"
            saved = done["saved"]
            outcome = f"the video was saved as {html.escape(str(saved.mp4))}" if saved else "nothing was saved"
            at = min(done["step"] + 1, values["steps"])  # the step that was running, or the last one while saving
            self._say(f"Stopped at step {at} of {values['steps']}; {outcome}.", error=True)
            raise
        saved = done["saved"]
        self.last_error = None
        self.progress.bar_style = "success"
        self.elapsed.value = f"{len(result.frames)} frames in {result.elapsed_s:.1f} s"
        entry = HistoryEntry(len(self.history) + 1, values, saved.mp4, saved.sidecar, result.elapsed_s, _thumbnail(result.frames))
        self.history.append(entry)
        self.history_box.children = (self._card(entry), *self.history_box.children)
        self.show(entry)
        self._say(f"Made video #{entry.number} (seed {result.seed}).", warning=_notes(caught))
        return entry

    def upscale_last(self, _button=None):
        """Upscale the newest video (twice its size, up to 1024x576) and add it to the history: the Upscale button. Notebook 11.

        It loads zeroscope_v2_XL (or, after a tiny model, its tiny copy) at the first click, and
        re-denoises at strength 0.6 with the video's own prompt, seed and steps. Errors are shown
        in the studio and kept in `last_error`, as Generate's are; an interrupt saves nothing.
        """
        from .upscale import STRENGTH, load_upscaler, steps_run, upscale, upscaled_size, upscaler_for

        if self._busy or not self.history:
            return None
        self._busy = True
        self.generate_button.disabled = self.upscale_button.disabled = True
        source = self.history[-1]
        values = dict(source.values)
        self.progress.value, self.progress.bar_style = 0, "info"
        self._say(f"Upscaling video #{source.number}…")

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
            self.last_error = error
            self.progress.bar_style = "danger"
            self._say(self._explain(error, values), error=True)
            return None
        except BaseException:
            self.progress.bar_style = "warning"
            self._say(f"Stopped upscaling video #{source.number}; nothing was saved.", error=True)
            raise
        finally:
            self._busy = False
            self.generate_button.disabled = False
            self.upscale_button.disabled = not self.history
        self.last_error = None
        self.progress.bar_style = "success"
        self.elapsed.value = f"{len(result.frames)} frames upscaled in {result.elapsed_s:.1f} s"
        entry = HistoryEntry(len(self.history) + 1, values, saved.mp4, saved.sidecar, result.elapsed_s, _thumbnail(result.frames))
        self.history.append(entry)
        self.history_box.children = (self._card(entry), *self.history_box.children)
        self.show(entry)
        self._say(f"Made video #{entry.number}: video #{source.number} upscaled to {values['width']}×{values['height']} at strength {STRENGTH}.")
        return entry

    def _explain(self, error, values):
        if isinstance(error, ValueError):
            return f"Not made: {html.escape(str(error))}"
        if isinstance(error, GPUMemoryError):  # its message already lists what fits these settings
            return f"Not made: {html.escape(str(error))}"
        if isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower():
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give back what the failed run held, for the next try
            family = family_of(self.pipe)
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

    def show(self, entry):
        """Play a history entry's video again and list its files. Notebook 05."""
        try:
            mp4 = Path(entry.mp4).read_bytes()
        except OSError as error:
            self._say(
                f"Cannot show video #{entry.number}: {html.escape(str(error))}. Its settings are still here: "
                "press <i>load</i> on it, then Generate, to make it again.",
                error=True,
            )
            return
        self.video.value = _video_html(mp4, max(320, entry.values["width"]))  # small videos are hard to see at their own size
        self.video.layout.display = ""
        self.files.value = (
            f"Video #{entry.number}: MP4 <code>{html.escape(str(entry.mp4))}</code>, "
            f"settings <code>{html.escape(str(entry.sidecar))}</code>"
        )
        self._say(f"Showing video #{entry.number}.")

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
        load.on_click(lambda _button: self._load_entry(entry))
        thumbnail = widgets.HTML(_image_html(entry.thumbnail, 96))
        card = widgets.VBox([thumbnail, caption, widgets.HBox([show, load])], layout={"min_width": "230px", "margin": "0 8px 0 0"})
        card.add_class("t2v-history-card")
        return card

    def _load_entry(self, entry):
        try:
            self.load(entry.values)
        except ValueError as error:  # an upscaled video's scheduler may not be one this pipeline has
            self._say(f"Cannot load video #{entry.number}'s settings: {html.escape(str(error))}", error=True)
            return
        self._say(f"Loaded the settings of video #{entry.number}; press Generate to make it again.")
