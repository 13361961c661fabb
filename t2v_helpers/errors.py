"""The errors and warnings the helpers raise: each message says what went wrong and what to change.

Each class subclasses the built-in error that code already catches for the same
trouble, so `except ValueError` or `except torch.OutOfMemoryError` keeps working.
"""

import math

import torch


def shorten(value, limit=60):
    """`value` for a message: its repr, or for a long one its start, its end and its length. Notebook 04."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 150:
        # repr() of a number over 4300 digits raises ValueError; its length says enough.
        digits = math.floor(math.log10(abs(value))) + 1  # repr() would raise past 4300 digits
        return f"<a number of about {digits} digits>"
    text = repr(value)
    if len(text) <= limit:
        return text
    try:
        size = f"{len(value)} characters"
    except TypeError:  # no len(): a long repr of some other object
        size = f"{len(text)} characters shown"
    return f"{text[: limit - 15]}...{text[-10:]} ({size})"


class SettingError(ValueError):
    """A setting the model cannot take; names the parameter, the value, what is allowed and what to try. Notebook 04."""

    def __init__(self, name, value, problem, allowed, suggestion):
        self.name, self.value, self.allowed, self.suggestion = name, value, allowed, suggestion
        super().__init__(f"{name}={shorten(value)} {problem}. Allowed: {allowed}. Try {suggestion}.")


class PromptTooLongWarning(UserWarning):
    """The prompt has more tokens than the text encoder reads; the end is cut. Notebook 04."""


class GPUMemoryError(torch.OutOfMemoryError):
    """The GPU ran out of memory; the message lists settings that need less. Notebook 04.

    A subclass of torch.OutOfMemoryError (itself a RuntimeError), so code that
    already catches the out-of-memory error from torch still catches this one.
    """


class NonFiniteFramesError(ArithmeticError):
    """The model made NaN or infinite values instead of a video; the message says what to change. Notebook 04."""


class ModelNotAvailableError(OSError):
    """The model's weights are neither in the local cache nor downloadable now. Notebook 02.

    An OSError, like the error diffusers raises for a missing model, so code that
    caught that still catches this one.
    """


class BadModelError(ValueError):
    """The model name or folder cannot be a model (a file, empty, truncated, asks for its own code). Notebook 02."""

    option = "--model"  # the command-line option whose value it is about


class PickleWeightsError(ValueError):
    """The model has only pickle (`.bin`) weights, which can run code when loaded. Notebook 02.

    `files` lists them, so the command line can word the way out as its `--allow-pickle`.
    """

    def __init__(self, message, files=()):
        super().__init__(message)
        self.files = list(files)


class VideoExportError(OSError):
    """ffmpeg did not write a complete video (full disk, killed ffmpeg); nothing was saved. Notebook 04."""


class RAMError(MemoryError):
    """The model's parts need more RAM than the machine has available; refused before loading. Notebook 09.

    A MemoryError, the built-in error for running out of memory; raised before any weight is
    read, because a hosted runtime such as Colab stops the whole runtime when its RAM runs out.
    """


class FastSettingWarning(UserWarning):
    """A setting that does not fit the few-step model; the message says what it was distilled for. Notebook 08."""
