"""The schedulers that work with the text-to-video pipeline, by short name. Notebook 03."""

import difflib

from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

# name -> (class, settings that differ from the pipeline's own scheduler config)
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm": (DPMSolverMultistepScheduler, {}),
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "deis": (DEISMultistepScheduler, {}),
}


def scheduler_names():
    """The registered scheduler names, in the order above. Notebook 03."""
    return list(SCHEDULERS)


def check_scheduler_name(name):
    """Return the registered name for `name`, or raise ValueError with close matches. Notebook 03."""
    key = str(name).strip().lower()
    if key in SCHEDULERS:
        return key
    close = difflib.get_close_matches(key, SCHEDULERS, n=3, cutoff=0.4)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"scheduler={name!r} is not a registered scheduler; choose one of {scheduler_names()}.{hint}")


def set_scheduler(pipe, name):
    """Swap `pipe.scheduler` for the named one, built from the model's own config. Notebook 03.

    Every swap starts from the config the model shipped with, so one scheduler's
    extra settings (such as Karras sigmas) never leak into the next.
    """
    name = check_scheduler_name(name)
    if not hasattr(pipe, "t2v_original_scheduler_config"):
        pipe.t2v_original_scheduler_config = pipe.scheduler.config
    cls, overrides = SCHEDULERS[name]
    pipe.scheduler = cls.from_config(pipe.t2v_original_scheduler_config, **overrides)
    pipe.scheduler.t2v_name = name
    return pipe.scheduler


def scheduler_name(pipe):
    """The registered name of the pipeline's current scheduler, else its class name. Notebook 03."""
    tagged = getattr(pipe.scheduler, "t2v_name", None)
    if tagged:
        return tagged
    for name, (cls, overrides) in SCHEDULERS.items():
        if type(pipe.scheduler) is cls and not overrides:
            return name
    return type(pipe.scheduler).__name__
