"""The `t2v` command: make videos from the terminal with the same helpers as the notebooks. README: Command line.

    t2v generate "Spiderman is surfing" --steps 25 --seed 0 --scheduler dpm --frames 16 --out outputs
    t2v generate --prompts prompts.txt --model tiny
    t2v generate "a red fox in the snow" --model tiny-wan --frames 5

`python -m t2v_helpers "a prompt"` runs `t2v generate "a prompt"`.
"""

import argparse
import re
import signal
import sys
import threading
import traceback
from contextlib import contextmanager

from tqdm.auto import tqdm

from .errors import (
    BadModelError,
    GPUMemoryError,
    ModelNotAvailableError,
    NonFiniteFramesError,
    PickleWeightsError,
    RAMError,
    SettingError,
    VideoExportError,
    shorten,
)
from . import upscale  # by its module: `upscale.upscale`, `upscale.load_upscaler`, ... (tests replace them there)
from .families import families, family_named, family_of, find_model, models
from .fast import FAST_GUIDANCE, FAST_STEPS, MCM_STYLES, check_fast_family, check_style, switch_scheduler
from .generate import check_settings, generate
from .pipeline import check_model, default_model, load_pipeline, model_family
from .schedulers import check_scheduler_name, scheduler_names, set_scheduler
from .validate import check_output_dir, check_prompt, expand_home
from .video import save_video

# Errors whose message already tells the user what to change: print it, no traceback.
USER_ERRORS = (SettingError, GPUMemoryError, ModelNotAvailableError, PickleWeightsError, VideoExportError, BadModelError, NonFiniteFramesError, RAMError)
DEFAULT_PROMPT = "Spiderman is surfing"
# A prompts file is a few lines of text; reading stops here (so /dev/zero or a video by mistake cannot fill memory).
MAX_PROMPTS_BYTES = 1_000_000
# Exit codes: 2 for anything the user can change (argparse's own), 130 for a stop (128 + SIGINT, as shells do).
EXIT_USER_ERROR = 2
EXIT_STOPPED = 130
STOPPED = "Stopped; nothing was saved for the current video (videos finished before it are kept)."
# What --model auto chooses between: this model's real checkpoint and its family's tiny one (pipeline.default_model).
AUTO_MODEL = "modelscope"
SEED_HELP = "the same seed and settings give the same video on the same machine and thread count (default 0)"


def say(text, file=None):
    """Print one line so that printing never stops the work. README: Command line.

    The line goes out in one write, flushed, so processes sharing a terminal (a torchrun batch)
    never cut into each other's lines; a character the terminal's encoding cannot show (an
    emoji under PYTHONIOENCODING=latin-1) is written escaped (\\U0001f98a); a closed pipe
    (`t2v ... | head -1`) or a gone terminal is ignored, since the files are what matters.
    """
    _write(file or sys.stdout, f"{text}\n")


def _write(stream, text):
    if stream is None:  # started with stdout closed (`t2v ... >&-`, pythonw): print() too writes nothing then
        return
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: nobody is reading any more
        pass


class _WholeLines:
    """Stands in for sys.stdout while a command runs: what anyone prints goes out as whole lines, as `say` writes them."""

    def __init__(self, stream):
        self.stream, self.pending = stream, ""

    def write(self, text):
        self.pending += text
        if "\n" in self.pending:  # print() writes the text and its "\n" apart: send both in one write
            lines, _, self.pending = self.pending.rpartition("\n")
            _write(self.stream, lines + "\n")
        return len(text)

    def flush(self):
        if self.pending:  # a line printed without its end (end=""), flushed on purpose
            _write(self.stream, self.pending)
            self.pending = ""

    def __getattr__(self, name):  # encoding, isatty, fileno, ... of the real stream
        return getattr(self.stream, name)


@contextmanager
def whole_lines():
    """Inside the block everything printed (by the helpers too) goes out as whole lines that never fail. README: Command line."""
    before = sys.stdout
    sys.stdout = _WholeLines(before)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = before


def _whole_number(text):
    """argparse type: an int, refused briefly (not echoing 5000 digits) when the text is not one."""
    digits = text.strip().lstrip("+-")
    if digits.isdigit() and len(digits) > 30:
        raise argparse.ArgumentTypeError(f"{text[:12]}... is a number of {len(digits)} digits; use a whole number such as 25")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number; use one such as 25") from None


def add_generate_options(parser, prompt_required=False):
    """The options `t2v generate` and `python -m t2v_helpers.batch` share. README: Command line."""
    if not prompt_required:
        parser.add_argument("prompt", nargs="?", help=f"what the video shows (default: {DEFAULT_PROMPT!r})")
    parser.add_argument(
        "--prompts",
        required=prompt_required,
        metavar="FILE",
        help="a text file with one prompt per line; blank lines and lines starting with # are skipped",
    )
    tiny = ", ".join(name for name, model in models().items() if model.tiny)
    real = ", ".join(name for name, model in models().items() if not model.tiny)
    parser.add_argument(
        "--model", default="auto",
        help=f"'auto' (default: the real {AUTO_MODEL} model if a GPU and its weights are at hand, else its tiny one), "
        f"a model name ({real}; tiny random-weight models, whose videos are noise: {tiny}), a hub id or a model folder",
    )
    parser.add_argument("--steps", type=_whole_number, help=f"denoising steps (default: the model's, {_defaults('steps')}; 4 with --fast)")
    forms = "".join(f"; {f.name} makes {f.frame_step}k+1 frames" for f in families().values() if f.frame_step > 1)
    parser.add_argument("--frames", type=_whole_number, help=f"frames per video (default: the model's, {_defaults('frames')}{forms})")
    parser.add_argument("--seed", type=_whole_number, default=0, help=SEED_HELP)
    schedulers = "; ".join(f"{f.name}: {', '.join(scheduler_names(f))} (default {f.default_scheduler})" for f in families().values())
    parser.add_argument("--scheduler", help=f"one of the model family's schedulers ({schedulers})")
    parser.add_argument(
        "--fast", nargs="?", const=MCM_STYLES[0], metavar="STYLE",
        help=f"few-step mode (notebook 08): the MCM LoRA (STYLE: one of {', '.join(MCM_STYLES)}; default {MCM_STYLES[0]}) "
        f"with the LCM scheduler, {FAST_STEPS} steps and guidance {FAST_GUIDANCE:g}",
    )
    parser.add_argument("--out", default="outputs", help="folder for the MP4s and their JSON sidecars (default outputs)")
    parser.add_argument("--gif", action="store_true", help="also write a GIF of each video")
    _add_last_options(parser)


def _add_last_options(parser):
    """--allow-pickle and --debug, the last options of every command."""
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also load pickle (.bin) weights; pickle can run any code hidden in the file, so use it only for a model you trust")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _defaults(setting):
    """'25 for modelscope, 50 for wan': each family's default for `setting`, for the help text."""
    values = {f.name: getattr(f.models[0] if hasattr(f.models[0], setting) else f, setting) for f in families().values()}
    return ", ".join(f"{value} for {name}" for name, value in values.items())


def read_prompts(path, name="--prompts"):
    """[(line number, prompt), ...] from a file of one prompt per line; blank and # lines skipped. README: Command line."""
    allowed = f"a UTF-8 text file of at most {MAX_PROMPTS_BYTES // 1000} kB with one prompt per line"
    if not str(path).strip():
        raise SettingError(name, str(path), "is empty", allowed, f"{name} prompts.txt")
    path = expand_home(name, path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PROMPTS_BYTES + 1)
        if len(data) > MAX_PROMPTS_BYTES:
            raise SettingError(name, str(path), f"is larger than {MAX_PROMPTS_BYTES // 1000} kB", allowed, "a file with only the prompts")
        # utf-8-sig: a byte-order mark (which some editors write) is not part of the first line. Lines end at
        # \n (or \r\n) only, as for an editor and `grep -n`; str.splitlines would also break at U+2028, \x0c, ...
        lines = data.decode("utf-8-sig").split("\n")
        lines = [line.removesuffix("\r") for line in (lines[:-1] if lines[-1] == "" else lines)]
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SettingError(name, str(path), f"cannot be read ({reason})", allowed, f"{name} prompts.txt") from None
    prompts = [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise SettingError(name, str(path), "has no prompts", "a text file with one prompt per line", "writing a prompt on its first line")
    return prompts


def check_arguments(args, name_prompts="--prompts"):
    """Check every setting before the model loads (which can take minutes); return [(line, prompt), ...]. README: Command line.

    The prompts come back as checked plain text, ready for generate().
    """
    if args.prompts is not None and getattr(args, "prompt", None) is not None:
        raise SettingError("prompt", args.prompt, "was given together with --prompts", "a prompt or --prompts FILE, not both", "one of them")
    if args.prompts is not None:  # "" is refused by read_prompts, not taken for "no file"
        prompts = [(number, check_prompt(prompt, f"{args.prompts} line {number}")) for number, prompt in read_prompts(args.prompts, name_prompts)]
    else:
        prompt = getattr(args, "prompt", None)
        prompts = [(None, check_prompt(DEFAULT_PROMPT if prompt is None else prompt))]  # "" is refused, not replaced
    if args.model != "auto":
        check_model(args.model)
    family, model = model_defaults(args.model)
    args.family = family
    if args.fast is not None:  # '--fast ""' is refused by check_style, not taken for "no few-step mode"
        args.fast = check_style(args.fast)
        check_fast_family(family, args.model)
        if args.scheduler is not None and args.scheduler.strip().lower() != "lcm":
            raise SettingError(
                "--scheduler", args.scheduler, "conflicts with --fast, which runs the LCM scheduler the MCM LoRA was distilled for",
                "--fast alone (or with --scheduler lcm), or --scheduler without --fast",
                f"leaving out --scheduler {args.scheduler}, or --fast",
            )
        args.scheduler = "lcm"
    if args.steps is None:
        args.steps = FAST_STEPS if args.fast else family.steps
    if args.frames is None:
        args.frames = model.frames
    args.scheduler = check_scheduler_name(family.default_scheduler if args.scheduler is None else args.scheduler, family)
    check_settings(None, prompts[0][1], args.steps, args.frames, None, None, guidance(args), args.seed, scheduler=args.scheduler, family=family)
    args.out = check_output_dir(args.out, name="--out", create=True)  # ~ expanded, as for --model
    return prompts


def model_defaults(name):
    """The Family and the Model whose defaults --model NAME gets, read before loading any weights. README: Command line.

    A listed name is its own Model; 'auto' is AUTO_MODEL's; a folder or hub id is looked up
    by its model_index.json and gets its family's default model's settings. A hub id whose
    model_index.json cannot be fetched now cannot be loaded either: it gets AUTO_MODEL's, and
    loading it says why it is not available.
    """
    listed = find_model(AUTO_MODEL if name == "auto" else name)
    if listed is not None:
        return family_named(listed.family), listed
    try:
        family = model_family(name)
    except OSError:
        return model_defaults(AUTO_MODEL)
    return family, family.models[0]


def explain(error):
    """The one-paragraph message for a user error, worded for the command line. README: Command line."""
    if isinstance(error, PickleWeightsError) and getattr(error, "option", "--model") != "--model":
        return f"{error.option}: {error}"  # the few-step LoRA's message names --allow-pickle itself
    if isinstance(error, PickleWeightsError):
        names = ", ".join(p.name for p in error.files) or "pickle files"
        return (
            f"--model has pickle weights and no safetensors for them ({names}). Loading pickle can run any code "
            "hidden in the file, so it is refused by default. If you trust where the files came from, add "
            "--allow-pickle; better, convert them to safetensors."
        )
    # One paragraph: line breaks (from a library's own message) become spaces; spaces inside quoted values stay.
    message = re.sub(r"\s*\n\s*", " ", str(error).strip())
    message = re.sub(r"load_pipeline\('([\w.-]+)'\)", r"--model \1", message)
    return f"{getattr(error, 'option', '--model')}: {message}" if isinstance(error, (BadModelError, ModelNotAvailableError)) else message


def guidance(args):
    """The guidance scale: the model family's (9.0 for ModelScope, the article's), or 1.0 for the few-step LCM scheduler. README: Command line."""
    family = getattr(args, "family", None) or model_defaults(args.model)[0]
    return FAST_GUIDANCE if args.scheduler == "lcm" else family.guidance


def load(args, **options):
    """Load the model the arguments ask for, with their scheduler; 'auto' says which it chose. README: Command line."""
    model = args.model
    if model == "auto":
        model, why = default_model(AUTO_MODEL)
        say(why)
    if getattr(args, "allow_pickle", False):
        options["allow_pickle"] = True
    pipe = load_pipeline(model, **options)
    switch_scheduler(pipe, args.scheduler, args.fast, allow_pickle=getattr(args, "allow_pickle", False))
    # One bar of our own per video (below) replaces diffusers' bar.
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_video(pipe, prompt, args, out_dir, label="", own_folder=False):
    """Generate one video with a progress bar and save it with its sidecar; return the SavedVideo. README: Command line.

    `own_folder`: `out_dir` is a folder the helpers make themselves (the batch's line-007), never a link.
    """
    # The bar shows the prompt as typed, less what a terminal would obey: an escape sequence in a prompts file stays text.
    shown = "".join(c if c.isprintable() else " " for c in prompt[:40])
    with tqdm(total=args.steps, desc=f"{label}{shown}", unit="step", leave=False, file=sys.stderr) as bar:
        result = generate(pipe, prompt, steps=args.steps, frames=args.frames, guidance=guidance(args), seed=args.seed, on_step=lambda *_: bar.update(1))
    saved = save_video(result, out_dir, gif=args.gif, own_folder=own_folder)
    say(f"{label}Made {len(result.frames)} frames in {result.elapsed_s:.1f} s: {shorten(prompt, 80)}")
    for path in (saved.mp4, saved.gif, saved.sidecar):
        if path:
            say(f"Wrote {path}")
    return saved


def run_generate(args, parser):
    """Check the arguments, load the model once and make every video; `parser` reports errors. README: Command line.

    A user error exits with code 2 and one paragraph (the traceback too with --debug);
    Ctrl-C or SIGTERM exits with code 130 and says what was kept.
    """
    with reporting_errors(args, parser) as checked:
        prompts = check_arguments(args)
        checked.append(True)
        pipe = load(args)
        for i, (number, prompt) in enumerate(prompts, 1):
            make_video(pipe, prompt, args, args.out, label=f"{i}/{len(prompts)} " if len(prompts) > 1 else "")
    return 0


@contextmanager
def reporting_errors(args, parser):
    """Turn a user error into exit code 2 with one paragraph, and Ctrl-C into 130. README: Command line.

    Yields a list: append to it once the arguments are checked; before that, an error
    also prints the usage line, as argparse does for a bad argument.
    """
    checked = []
    try:
        yield checked
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        if not checked:
            say(parser.format_usage().rstrip("\n"), sys.stderr)
        stop(EXIT_USER_ERROR, f"{parser.prog}: error: {explain(error)}")
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        stop(EXIT_STOPPED, f"\n{parser.prog}: {STOPPED}")


def stop(status, message):
    """Say `message` on stderr (as `say` does: never failing on the terminal's encoding) and exit with `status`. README: Command line."""
    say(message, sys.stderr)
    sys.exit(status)


def _stop_on_sigterm(signum, frame):
    # SIGTERM (a scheduler's kill, `timeout`) stops like Ctrl-C: the same clean-up and message.
    raise KeyboardInterrupt


def build_parser(prog="t2v"):
    """The `t2v` parser and its `generate` subparser, whose errors show its own usage line. README: Command line."""
    names = ", ".join(family.name for family in families().values())
    parser = argparse.ArgumentParser(prog=prog, description=f"Make short videos from text with a text-to-video model ({names}).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate_parser = commands.add_parser(
        "generate",
        help="make a video from a prompt, or one per line of --prompts FILE",
        description="Make a video from a prompt, or one per line of --prompts FILE. With no GPU, or no way to the "
        "model's weights, --model auto uses the built-in tiny model and says so (its videos are noise).",
    )
    add_generate_options(generate_parser)
    generate_parser.set_defaults(run=run_generate, parser=generate_parser)
    add_upscale_command(commands)
    return parser, generate_parser


def main(argv=None, prog="t2v"):
    """Run the `t2v` command line; `argv` defaults to sys.argv[1:]. README: Command line."""
    args = build_parser(prog)[0].parse_args(argv)
    with whole_lines():
        if threading.current_thread() is not threading.main_thread():
            return args.run(args, args.parser)  # only the main thread may set signal handlers
        before = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            return args.run(args, args.parser)
        finally:
            signal.signal(signal.SIGTERM, before)


# --- t2v upscale (notebook 11) -------------------------------------------------------------------


def add_upscale_command(commands):
    """The `t2v upscale VIDEO --strength 0.6` subcommand: zeroscope_v2_XL's video-to-video pass. Notebook 11."""
    command = commands.add_parser(
        "upscale",
        help="make a video sharper: resize it and re-denoise it with zeroscope_v2_XL (notebook 11)",
        description="Resize a video's frames to the upscaler's size (1024x576 for zeroscope_v2_XL) and re-denoise them at "
        "--strength. The prompt comes from the video's JSON sidecar unless --prompt gives one. With no GPU, or no way "
        "to the model's weights, --model auto uses the built-in tiny-zeroscope-xl and says so (its videos are noise).",
    )
    command.add_argument("video", help="the video file to upscale, such as an MP4 that t2v generate wrote")
    command.add_argument("--strength", type=float, default=upscale.STRENGTH,
                         help=f"0 keeps the resized frames, 1 noises them the most (about 0.07 of them still shows) (default {upscale.STRENGTH}; the model card suggests 0.66 to 0.85)")
    command.add_argument("--model", default="auto", help=f"'auto' (default: {upscale.UPSCALER!r} if a GPU and its weights are at hand, else 'tiny-zeroscope-xl'), or a model id or folder")
    command.add_argument("--prompt", help="the prompt (default: the one in the video's sidecar; the model card says to use the same prompt)")
    command.add_argument("--steps", type=_whole_number, default=25, help="denoising steps of the schedule; int(steps x strength) of them run (default 25)")
    command.add_argument("--seed", type=_whole_number, default=0, help=SEED_HELP)
    command.add_argument("--height", type=_whole_number, help="height of the upscaled video (default: the model's, 576)")
    command.add_argument("--width", type=_whole_number, help="width of the upscaled video (default: the model's, 1024)")
    command.add_argument("--out", default="outputs", help="folder for the MP4 and its JSON sidecar (default outputs)")
    _add_last_options(command)
    command.set_defaults(run=run_upscale, parser=command)
    return command


def check_upscale_arguments(args):
    """Check the video, strength, prompt and settings before the model loads. README: Command line."""
    upscale.check_strength(args.strength)
    model = upscale.UPSCALER if args.model == "auto" else args.model
    upscale.check_upscaler_model(model, "--model")
    family = model_family(model)
    frames, prompt, _, _, why = upscale.video_source(args.video)
    args.prompt = prompt if args.prompt is None else args.prompt
    if args.prompt is None:
        raise SettingError("--prompt", None, f"is needed: the video {why}", "the words that made the video", '--prompt "Spiderman is surfing"')
    check_settings(None, args.prompt, args.steps, len(frames), args.height, args.width, family.guidance, args.seed,
                   scheduler=family.default_scheduler, family=family)
    if args.strength > 0 and upscale.steps_run(args.steps, args.strength) == 0:
        raise SettingError("--strength", args.strength, f"with --steps {args.steps} runs no denoising step",
                           "a product of steps and strength of at least 1", upscale.fewest_working(args.steps, args.strength, "--"))
    args.out = check_output_dir(args.out, name="--out", create=True)  # ~ expanded, as for --model


def run_upscale(args, parser):
    """`t2v upscale`: check, load the upscaler, upscale and save with a sidecar; errors as in `t2v generate`. README: Command line."""
    with reporting_errors(args, parser) as checked:
        check_upscale_arguments(args)
        checked.append(True)
        model = args.model
        if model == "auto":
            model, why = default_model(upscale.UPSCALER)
            if upscale.upscaler_for(model) != upscale.UPSCALER:
                model = upscale.upscaler_for(model)
                why += f" For upscaling that is {model!r}."
            say(why)
        pipe = upscale.load_upscaler(model, allow_pickle=args.allow_pickle)
        set_scheduler(pipe, family_of(pipe).default_scheduler)
        pipe.set_progress_bar_config(disable=True)
        result = upscale.upscale(pipe, args.video, strength=args.strength, height=args.height, width=args.width, prompt=args.prompt,
                                 steps=args.steps, seed=args.seed)
        saved = save_video(result, args.out)
        say(f"Upscaled {len(result.frames)} frames to {result.settings['width']}x{result.settings['height']} in {result.elapsed_s:.1f} s")
        for path in (saved.mp4, saved.sidecar):
            say(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
