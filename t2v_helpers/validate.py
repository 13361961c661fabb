"""Checks for every setting a learner can type, shared by generate, the studio and the command line. Notebook 04.

Each check runs before any model work and raises `SettingError` (a ValueError) naming
the parameter, the value, what is allowed and a value to try instead.
"""

import difflib
import math
import numbers
import os
import warnings
from pathlib import Path

from .errors import PromptTooLongWarning, SettingError, shorten

MAX_SEED = 2**63 - 1
MAX_STEPS = 1000  # the model was trained on 1000 noise levels; no scheduler takes more steps
MAX_FRAMES = 1024
MAX_SIZE = 4096
MAX_FPS = 120
EXAMPLE_PROMPT = "Spiderman is surfing"


def _as_number(value):
    """`value` as a finite float if it reads as one (so '25' or 24.6 get a useful suggestion), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def is_finite_number(value):
    """Whether `value` is a real number (not a bool) that a float can hold: not NaN, infinite or 10**400. Notebook 04."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number too large for a float
        return False


def is_whole(value):
    """Whether `value` is a whole number (an int or a numpy integer, not a bool). Notebook 04."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _what_is_wrong(value, whole):
    if is_whole(value):
        return "is out of range"
    if isinstance(value, str):
        return "is text, not a number"
    if _as_number(value) is None:
        return "is not a number"
    if whole and not is_whole(value):
        return "is not a whole number"
    return "is out of range"


def check_choice(name, value, choices, default=None, problem="is not one of the choices"):
    """Return `value` (trimmed, lowercase) if it is one of `choices`, else raise SettingError with the closest. Notebook 03."""
    key = value.strip().lower() if isinstance(value, str) else None
    if key in choices:
        return key
    close = difflib.get_close_matches(str(value).strip().lower(), list(choices), n=1, cutoff=0.4)
    best = close[0] if close else default or list(choices)[0]
    raise SettingError(name, value, problem, f"one of {list(choices)}", f"{name}={best!r}")


def check_whole_number(name, value, low, high, default):
    """Return `value` as an int if it is a whole number from `low` to `high`, else raise SettingError. Notebook 04."""
    if is_whole(value) and low <= value <= high:
        return int(value)
    number = _as_number(value)
    nearest = default if number is None else min(high, max(low, round(number)))
    raise SettingError(name, value, _what_is_wrong(value, True), f"a whole number from {low} to {high}", f"{name}={nearest}")


DTYPES = {"float16": "float16", "fp16": "float16", "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float32": "float32", "fp32": "float32", "float": "float32"}


def check_dtype(dtype, name="dtype"):
    """Return `dtype` as torch.float16, torch.bfloat16 or torch.float32 (None stays None: the helpers choose). Notebook 02.

    Takes those torch dtypes and their names as text ('float16', 'torch.bfloat16', 'fp32');
    anything else (an integer dtype, a device name such as 'cuda', a number) is a SettingError.
    """
    import torch

    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype) and dtype in (torch.float16, torch.bfloat16, torch.float32):
        return dtype
    key = dtype.strip().lower().removeprefix("torch.") if isinstance(dtype, str) else None
    if key in DTYPES:
        return getattr(torch, DTYPES[key])
    if isinstance(dtype, torch.dtype):
        problem = "is not a floating-point dtype the model can run in" if not dtype.is_floating_point else "is not a dtype the model is run in here"
    elif isinstance(dtype, str) and key in ("cuda", "cpu", "mps", "auto"):
        problem = "is a device name, not a dtype (the helpers choose the device)"
    else:
        problem = "is not a dtype"
    close = difflib.get_close_matches(str(key or dtype).lower().removeprefix("torch."), ["float16", "bfloat16", "float32"], n=1, cutoff=0.5)
    allowed = "torch.float16, torch.bfloat16 or torch.float32 (or the name as text, such as 'float16'), or None to let the helpers choose"
    raise SettingError(name, dtype, problem, allowed, f"{name}=torch.{close[0] if close else 'float32'}")


def check_flag(name, value):
    """Return `value` if it is True or False, else raise SettingError (a switch is not 'yes' or 1). Notebook 07."""
    if isinstance(value, bool):
        return value
    raise SettingError(name, value, "is not True or False", "True or False", f"{name}=True")


def check_bytes(name, value, suggestion):
    """Return `value` as an int if it is a number of bytes from 0 to 2**64, else raise SettingError. Notebook 07."""
    if is_finite_number(value) and 0 <= value <= 2**64:
        return int(value)
    allowed = "a number of bytes from 0 to 2**64, such as 15 * 2**30 for 15 GiB"
    raise SettingError(name, value, "is not a number" if _as_number(value) is None else "is out of range", allowed, suggestion)


def check_prompt(prompt, name="prompt", tokenizer=None, limit=None):
    """Return the prompt as plain text; refuse a missing, blank or non-Unicode one; warn when the encoder cuts its end. Notebook 04.

    With `tokenizer` (such as `pipe.tokenizer`), a prompt longer than the `limit` tokens the
    encoder reads (default the tokenizer's own: 77 for ModelScope's CLIP) gives a
    PromptTooLongWarning that quotes the part that is cut.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        problem = "is empty" if isinstance(prompt, str) else "is not text"
        allowed = f"some words describing the video, up to {limit or 77} tokens (CLIP's 77 are about 50 words)"
        raise SettingError(name, prompt, problem, allowed, f"{name}={EXAMPLE_PROMPT!r}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone surrogate: what Python makes of a byte that is not UTF-8 in a command line or file name.
        problem = f"holds a character that is not text at position {error.start} (a byte that is not UTF-8, or half of a pair)"
        allowed = "text that can be written as UTF-8"
        raise SettingError(name, prompt, problem, allowed, "retyping it, or saving the file it came from as UTF-8") from None
    prompt = str(prompt)  # a str subclass such as numpy.str_ becomes plain text
    if tokenizer is not None:
        limit = limit or tokenizer.model_max_length
        ids = tokenizer(prompt, verbose=False).input_ids
        if len(ids) > limit:
            # The pipeline keeps the first `limit` ids with the end marker last: CLIP's start marker
            # and limit-2 tokens, or T5's limit-1 tokens (no start marker). Either way ids[limit-1:-1] are cut.
            cut = tokenizer.decode(ids[limit - 1 : -1]).strip()
            warnings.warn(
                f"{name} is {len(ids)} tokens long and the text encoder reads only {limit}, "
                f"so this end is ignored: {shorten(cut, 400)}. Put what matters first, or shorten the {name}.",
                PromptTooLongWarning,
                stacklevel=3,
            )
    return prompt


def check_negative_prompt(negative_prompt, tokenizer=None, limit=None):
    """Return the negative prompt as plain text, or None for none ('' or None); refuse other values. Notebook 04."""
    if negative_prompt is None or negative_prompt == "":
        return None
    if not isinstance(negative_prompt, str):
        raise SettingError("negative_prompt", negative_prompt, "is not text", "text or None", "negative_prompt='blurry, low quality'")
    if not negative_prompt.strip():
        allowed = "words for what the video should not show, or '' (or None) for none"
        raise SettingError("negative_prompt", negative_prompt, "is blank", allowed, "negative_prompt='' to leave it out")
    return check_prompt(negative_prompt, "negative_prompt", tokenizer, limit)


def check_size(name, value, multiple=8, default=256):
    """Return `value` if it is a positive multiple of `multiple` up to 4096, else suggest the nearest. Notebook 04."""
    top = MAX_SIZE - MAX_SIZE % multiple
    if is_whole(value) and multiple <= value <= top and value % multiple == 0:
        return int(value)
    number = _as_number(value)
    nearest = min(top, max(multiple, round((default if number is None else number) / multiple) * multiple))
    problem = _what_is_wrong(value, True)
    if problem == "is out of range" and multiple <= value <= top:
        problem = f"is not a multiple of {multiple} (the model works on {multiple}x{multiple} pixel blocks)"
    raise SettingError(name, value, problem, f"a multiple of {multiple} from {multiple} to {top}", f"{name}={nearest}")


def check_guidance(guidance, default=9.0):
    """Return `guidance` as a float if it is a number from 0 to 100, else raise SettingError. Notebook 04.

    `default` is the model's own guidance scale (9 for ModelScope), suggested for a non-number.
    """
    if isinstance(guidance, numbers.Real) and not isinstance(guidance, bool) and 0 <= guidance <= 100:
        return float(guidance)
    number = _as_number(guidance)
    nearest = default if number is None else min(100.0, max(0.0, number))
    allowed = f"a number from 0 to 100 (0 ignores the prompt; the model's default is {default:g})"
    raise SettingError("guidance", guidance, _what_is_wrong(guidance, False), allowed, f"guidance={nearest:g}")


def check_seed(seed):
    """Return `seed` as an int (None stays None: a random seed), else raise SettingError. Notebook 04."""
    if seed is None:
        return None
    if is_whole(seed) and 0 <= seed <= MAX_SEED:
        return int(seed)
    number = _as_number(seed)
    nearest = 0 if number is None else min(MAX_SEED, max(0, int(number)))
    allowed = "a whole number from 0 to 2**63-1, or None for a random seed"
    raise SettingError("seed", seed, _what_is_wrong(seed, True), allowed, f"seed={nearest}")


def check_fps(fps):
    """Return `fps` as a float if it is a number from 1 to 120, else raise SettingError. Notebook 04."""
    if isinstance(fps, numbers.Real) and not isinstance(fps, bool) and 1 <= fps <= MAX_FPS:
        return float(fps)
    number = _as_number(fps)
    nearest = 8 if number is None else min(MAX_FPS, max(1, number))
    allowed = f"frames per second from 1 to {MAX_FPS} (ModelScope plays its videos at 8)"
    raise SettingError("fps", fps, _what_is_wrong(fps, False), allowed, f"fps={nearest:g}")


def check_path_text(name, path):
    """Return `path` if it can be written as UTF-8 text (a sidecar records it), else raise SettingError. Notebook 10.

    A byte that is not UTF-8 in a file name reaches Python as a lone surrogate; JSON sidecars
    are UTF-8, so such a path could not be recorded.
    """
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        try:  # shown with the byte escaped (\xe9), so the message itself can be printed
            shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise SettingError(
            name, shown,
            f"holds a byte that is not UTF-8 at position {error.start}, which its JSON sidecar (UTF-8) cannot record",
            "a path written in UTF-8", "renaming the file (or the folder holding it) to a UTF-8 name, then giving the new path",
        ) from None
    return path


def expand_home(name, folder):
    """`folder` as a Path with a leading `~` or `~user` made the home folder, as the shell does. Notebook 04."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:  # no HOME and no password entry to find it
        raise SettingError(name, str(folder), "starts with ~, but the home folder is unknown (HOME is not set)",
                           "a folder name", "the full path instead of ~") from None


def check_output_dir(folder, name="out_dir", create=False):
    """Return `folder` as a Path if files can be written there (made first when `create`), else raise SettingError. Notebook 04.

    A leading `~` is your home folder, as for --model and in the shell. A link you name is
    followed (your choice, as with cp); the helpers never follow one inside it (publish.own_folder).
    """
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip() or "\x00" in str(folder):
        raise SettingError(name, folder, "is not a folder name", "the name of a folder", "a folder such as 'outputs'")
    folder = expand_home(name, folder)
    try:
        if folder.exists() and not folder.is_dir():
            problem = "is a file, not a folder"
        elif folder.is_symlink() and not folder.exists():  # mkdir would fail with "File exists"
            problem = f"is a link to {os.readlink(folder)}, which does not exist"
        elif not folder.exists() and not create:
            raise SettingError(
                name,
                str(folder),
                "does not exist",
                "an existing folder",
                f"creating it first with os.makedirs({str(folder)!r}), or another folder such as 'outputs'",
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            writable = os.access(folder, os.W_OK | os.X_OK)
            problem = None if writable else "cannot be written to"
    except OSError as error:
        problem = f"cannot be used ({error.strerror or error})"
    if problem:
        raise SettingError(name, str(folder), problem, "a folder you can write to", "another folder, such as 'outputs'")
    return folder


def nearest_frames(family, number=None):
    """The frame count closest to `number` that `family` makes and the helpers take (the family's default for None). Notebook 09.

    It asks the family's own `check_frames`, so a suggestion honours every rule the family has
    (Wan's 4k+1, a largest count), not only the form.
    """
    default = family.models[0].frames
    target = default if number is None else min(MAX_FRAMES, max(1, round(number)))
    for distance in range(MAX_FRAMES):
        for candidate in (target - distance, target + distance):  # the smaller one first on a tie
            if 1 <= candidate <= MAX_FRAMES and family.check_frames(candidate):
                return candidate
    return default


def check_frames(frames, family):
    """Return `frames` as an int if the family makes that many (any count for ModelScope, 4k+1 for Wan). Notebook 09.

    The suggested count is one the family accepts (`nearest_frames`).
    """
    step = family.frame_step
    most = nearest_frames(family, MAX_FRAMES)
    form = f"of the form {step}k+1 " if step > 1 else ""
    allowed = f"a whole number {form}from 1 to {most}, such as {family.models[0].frames}"
    if not (is_whole(frames) and 1 <= frames <= MAX_FRAMES):
        number = _as_number(frames)
        suggestion = nearest_frames(family, number)
        raise SettingError("frames", frames, _what_is_wrong(frames, True), allowed, f"frames={suggestion}")
    frames = int(frames)
    if family.check_frames(frames):
        return frames
    if (frames - 1) % step == 0:
        problem = f"is more than {family.name} makes" + (f" ({family.max_frames_why})" if family.max_frames_why else "")
    else:
        problem = f"is not {step}k+1 for {family.name} ({family.frames_why})"
    raise SettingError("frames", frames, problem, allowed, f"frames={nearest_frames(family, frames)}")
