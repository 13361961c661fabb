"""The schedulers that work with each model family's pipeline, by short name. Notebook 03.

Each family lists its own (t2v_helpers/families/); `SCHEDULERS` and `STEP_LIMITS` are
ModelScope's, the article's model.
"""

from .families import Family, family_named, family_of
from .validate import check_choice

SCHEDULERS = family_named("modelscope").schedulers
STEP_LIMITS = family_named("modelscope").step_limits


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
