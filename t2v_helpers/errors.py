"""The errors and warnings the helpers raise: each message says what went wrong and what to change.

Each class subclasses the built-in error that code already catches for the same
trouble, so `except ValueError` or `except torch.OutOfMemoryError` keeps working.
"""

import torch


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}...{text[-10:]} ({len(value)} characters)"


class SettingError(ValueError):
    """A setting the model cannot take; names the parameter, the value, what is allowed and what to try. Notebook 04."""

    def __init__(self, name, value, problem, allowed, suggestion):
        self.name, self.value, self.allowed, self.suggestion = name, value, allowed, suggestion
        try:
            shown = _short(value)
        except TypeError:  # no len(): a long repr of some other object
            shown = repr(value)[:60]
        super().__init__(f"{name}={shown} {problem}. Allowed: {allowed}. Try {suggestion}.")


class PromptTooLongWarning(UserWarning):
    """The prompt has more tokens than the text encoder reads; the end is cut. Notebook 04."""


class GPUMemoryError(torch.OutOfMemoryError):
    """The GPU ran out of memory; the message lists settings that need less. Notebook 04.

    A subclass of torch.OutOfMemoryError (itself a RuntimeError), so code that
    already catches the out-of-memory error from torch still catches this one.
    """


class ModelNotAvailableError(OSError):
    """The model's weights are neither in the local cache nor downloadable now. Notebook 02.

    An OSError, like the error diffusers raises for a missing model, so code that
    caught that still catches this one.
    """


class PickleWeightsError(ValueError):
    """The model has only pickle (`.bin`) weights, which can run code when loaded. Notebook 02."""


class VideoExportError(OSError):
    """ffmpeg did not write a complete video (full disk, killed ffmpeg); nothing was saved. Notebook 04."""
