"""Find the most denoising steps each registered scheduler can take: the data in each family's step_limits.

    PYTHONPATH=. python tools/find_step_limits.py                       # ModelScope's schedulers
    PYTHONPATH=. python tools/find_step_limits.py dpm ddim              # some
    PYTHONPATH=. python tools/find_step_limits.py --family wan --beyond # another family's

Runs the pipeline's denoising loop (set_timesteps, set_begin_index(0) where the pipeline calls
it, scale_model_input where the scheduler has one, step) with the model's own scheduler config (read from the family's tiny model, which
writes it as the real repository has it) and random noise predictions in place of the
denoiser, for every step count, and bisects for the most steps (up to the model's training
steps, 1000) that neither raise nor end in NaN. The failures come from the timestep arithmetic,
not from the denoiser's numbers, so the denoiser is left out (a full tiny-model run of 1000
steps takes minutes on a CPU). `--beyond` also runs the schedulers that reach that cap for one
step more and for ten times as many steps.
"""

import inspect
import json
import sys
import warnings
from functools import lru_cache

import diffusers
import torch

from t2v_helpers.families import family_named
from t2v_helpers.tiny import build_tiny


@lru_cache(maxsize=None)
def scheduler_config(family="modelscope"):
    """The family's real scheduler_config.json, as its tiny model holds it."""
    model = next(m for m in family_named(family).models if m.tiny)
    return json.loads((build_tiny(model) / "scheduler" / "scheduler_config.json").read_text())


def most_steps(family="modelscope"):
    """The model's training steps: no scheduler is offered more."""
    return scheduler_config(family)["num_train_timesteps"]


@lru_cache(maxsize=None)
def starts_at_index_zero(family="modelscope"):
    """Whether the family's pipeline calls scheduler.set_begin_index(0) after set_timesteps, as WanPipeline does.

    Then a scheduler steps through its sigmas by position; otherwise it looks each timestep up,
    and two equal timesteps (integers rounded from close sigmas) send it to the wrong step.
    """
    return "set_begin_index(0)" in inspect.getsource(getattr(diffusers, family_named(family).pipeline).__call__)


def run_steps(name, steps, family="modelscope"):
    """Final latents of the scheduler's loop over `steps` steps with random noise predictions; raises what the scheduler raises."""
    cls, overrides = family_named(family).schedulers[name]
    scheduler = cls.from_config(scheduler_config(family), **overrides)
    generator = torch.Generator().manual_seed(0)
    scheduler.set_timesteps(steps)
    if starts_at_index_zero(family):
        scheduler.set_begin_index(0)
    # Flow-matching schedulers start from plain noise and have no scale_model_input.
    latents = torch.randn(1, 4, 1, 2, 2, generator=generator) * getattr(scheduler, "init_noise_sigma", 1.0)
    for t in scheduler.timesteps:
        if hasattr(scheduler, "scale_model_input"):
            scheduler.scale_model_input(latents, t)
        latents = scheduler.step(torch.randn(latents.shape, generator=generator), t, latents).prev_sample
    return latents


def failure(name, steps, family="modelscope"):
    """None if `steps` steps give finite latents, else what went wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            latents = run_steps(name, steps, family)
        except Exception as error:  # any error is a failure to record, whatever its type
            return f"{type(error).__name__}: {error}"[:80]
    return None if torch.isfinite(latents).all() else "NaN or inf latents"


def limit(name, family="modelscope"):
    """The most steps (1 to the training steps) that work, by bisection: a scheduler that fails at n steps fails above n too."""
    if failure(name, 1, family):
        return 0
    works, fails = 1, most_steps(family) + 1
    while fails - works > 1:
        middle = (works + fails) // 2
        works, fails = (works, middle) if failure(name, middle, family) else (middle, fails)
    return works


def main(args):
    family = "modelscope"
    if "--family" in args:
        at = args.index("--family")
        family, args = args[at + 1], args[:at] + args[at + 2 :]
    beyond = "--beyond" in args
    args = [a for a in args if a != "--beyond"]
    most = most_steps(family)
    for name in args or list(family_named(family).schedulers):
        found = limit(name, family)
        line = f"{name}: works up to {found}"
        if found < most:
            line += f"; {found + 1} steps: {failure(name, found + 1, family)}"
        elif beyond:
            line += "".join(f"; {n} steps: {failure(name, n, family) or 'finite'}" for n in (most + 1, 10 * most))
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
