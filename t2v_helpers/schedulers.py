"""The schedulers that work with each model family's pipeline, by short name. Notebook 03.

Each family lists its own (t2v_helpers/families/); `SCHEDULERS` and `STEP_LIMITS` are
ModelScope's, the article's model.
"""

import numbers
import warnings

from .errors import FastSettingWarning
from .families import Family, family_named, family_of
from .validate import check_choice, is_finite_number

SCHEDULERS = family_named("modelscope").schedulers
STEP_LIMITS = family_named("modelscope").step_limits
FAST_STEPS = 4  # what the LCM scheduler's few-step model (MCM's LoRA, notebook 08) was distilled for; 1 and 2 also work
MAX_FAST_STEPS = 8  # beyond this the LCM scheduler only re-adds noise the model was not trained to remove


def _family(pipe_or_family):
    if pipe_or_family is None:
        return family_named("modelscope")
    return pipe_or_family if isinstance(pipe_or_family, Family) else family_of(pipe_or_family)


def scheduler_names(pipe=None):
    """The registered scheduler names of `pipe`'s family (ModelScope's without one), in order. Notebook 03."""
    return list(_family(pipe).schedulers)


def check_scheduler_name(name, family=None):
    """Return the registered name for `name`, or raise SettingError (a ValueError) naming the closest. Notebook 03.

    `family` is a pipeline or a Family; without one, ModelScope's schedulers are the choices.
    """
    family = _family(family)
    return check_choice("scheduler", name, family.schedulers, default=family.default_scheduler, problem="is not a registered scheduler")


def set_scheduler(pipe, name):
    """Swap `pipe.scheduler` for the named one, built from the model's own config. Notebook 03.

    Every swap starts from the config the model shipped with, so one scheduler's
    extra settings (such as Karras sigmas) never leak into the next.
    """
    family = family_of(pipe)
    name = check_scheduler_name(name, family)
    if not hasattr(pipe, "t2v_original_scheduler_config"):
        pipe.t2v_original_scheduler_config = pipe.scheduler.config
    cls, overrides = family.schedulers[name]
    pipe.scheduler = cls.from_config(pipe.t2v_original_scheduler_config, **overrides)
    pipe.scheduler.t2v_name = name
    return pipe.scheduler


def scheduler_name(pipe):
    """The registered name of the pipeline's current scheduler, else its class name. Notebook 03."""
    tagged = getattr(pipe.scheduler, "t2v_name", None)
    if tagged:
        return tagged
    for name, (cls, overrides) in family_of(pipe).schedulers.items():
        if type(pipe.scheduler) is cls and not overrides:
            return name
    return type(pipe.scheduler).__name__


def _positive(value):
    return is_finite_number(value) and value > 0


def scheduler_config_problem(config):
    """What is wrong with a scheduler config's noise schedule (a dict), in words, or None. Notebook 03.

    The training steps must be a whole number from 1, and a linear schedule's betas (the
    noise added per step) must rise: 0 < beta_start < beta_end < 1. A config that breaks this
    makes NaN frames or fails deep inside diffusers, so it is refused by name.
    """
    steps = config.get("num_train_timesteps", 1)
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        return f"num_train_timesteps={steps!r} is not a whole number from 1 (the model's training steps, 1000 for these models)"
    if config.get("trained_betas") is not None or config.get("beta_schedule", "linear") not in ("linear", "scaled_linear"):
        return None  # the betas come from elsewhere
    start, end = config.get("beta_start"), config.get("beta_end")
    if start is None and end is None:
        return None
    for name, value in (("beta_start", start), ("beta_end", end)):
        if not _positive(value) or value >= 1:
            return f"{name}={value!r} is not a number between 0 and 1 (the noise added per training step)"
    if start >= end:
        return f"beta_start={start!r} is not below beta_end={end!r} (the noise added per step must rise, as 0.00085 to 0.012 does)"
    return None


def check_scheduler_steps(pipe, steps):
    """Warn (FastSettingWarning) about more steps than the LCM scheduler's few-step model takes, LoRA merged or not. Notebook 08."""
    if type(getattr(pipe, "scheduler", None)).__name__ == "LCMScheduler" and steps > MAX_FAST_STEPS:
        warnings.warn(
            f"steps={steps} with the LCM scheduler: the MCM LoRA was distilled for 1 to {FAST_STEPS} steps, and more than "
            f"{MAX_FAST_STEPS} only add time. Use steps={FAST_STEPS}, or a scheduler such as 'dpm' for 25 steps.",
            FastSettingWarning,
            stacklevel=3,
        )
