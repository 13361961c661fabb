"""The schedulers that work with the text-to-video pipeline, by short name. Notebook 03."""

from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from .validate import check_choice

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
    # Few-step sampling for the distilled MCM LoRA (notebook 08), with the timestep scaling it was trained with.
    "lcm": (LCMScheduler, {"timestep_scaling": 4.0}),
}

# The most steps each scheduler takes and still gives finite frames, with the model's
# scheduler config (1000 training steps). Found by experiment: tools/find_step_limits.py runs
# each scheduler's loop and bisects for the most steps that work (its output is in
# benchmarks/results/step-limits.txt), and the
# tests/test_bad_input.py check runs one step past each limit. At 1000 steps DDIM and PNDM raise
# IndexError at the first step; DPM, DEIS and UniPC repeat a timestep (h = 0) and end in NaN.
STEP_LIMITS = {
    "ddim": 999,
    "dpm": 999,
    "dpm++2m-karras": 1000,
    "unipc": 999,
    "euler": 1000,
    "euler-a": 1000,
    "heun": 1000,
    "pndm": 999,
    "deis": 999,
    "lcm": 50,  # LCMScheduler refuses more steps than its original_inference_steps (50)
}


def scheduler_names():
    """The registered scheduler names, in the order above. Notebook 03."""
    return list(SCHEDULERS)


def check_scheduler_name(name):
    """Return the registered name for `name`, or raise SettingError (a ValueError) naming the closest. Notebook 03."""
    return check_choice("scheduler", name, SCHEDULERS, default="dpm", problem="is not a registered scheduler")


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
