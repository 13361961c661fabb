"""Find the most denoising steps each registered scheduler can take: the data in schedulers.STEP_LIMITS.

    PYTHONPATH=. python tools/find_step_limits.py            # every scheduler
    PYTHONPATH=. python tools/find_step_limits.py dpm ddim   # some

Runs the pipeline's denoising loop (set_timesteps, scale_model_input, step) with the model's
own scheduler config and random noise predictions in place of the UNet, for every step count
and bisects for the most steps (up to 1000) that neither raise nor end in NaN.
The failures come from the timestep arithmetic, not from the UNet's numbers, so the UNet is left out
(a full tiny-model run of 1000 steps takes minutes on a CPU).
"""

import sys
import warnings

import torch

from t2v_helpers.schedulers import SCHEDULERS
from t2v_helpers.tiny import REAL_SCHEDULER_CONFIG

MOST = 1000  # the model's training steps: no scheduler is offered more


def run_steps(name, steps):
    """Final latents of the scheduler's loop over `steps` steps with random noise predictions; raises what the scheduler raises."""
    cls, overrides = SCHEDULERS[name]
    scheduler = cls.from_config(REAL_SCHEDULER_CONFIG, **overrides)
    generator = torch.Generator().manual_seed(0)
    scheduler.set_timesteps(steps)
    latents = torch.randn(1, 4, 1, 2, 2, generator=generator) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        scheduler.scale_model_input(latents, t)
        latents = scheduler.step(torch.randn(latents.shape, generator=generator), t, latents).prev_sample
    return latents


def failure(name, steps):
    """None if `steps` steps give finite latents, else what went wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            latents = run_steps(name, steps)
        except Exception as error:  # any error is a failure to record, whatever its type
            return f"{type(error).__name__}: {error}"[:80]
    return None if torch.isfinite(latents).all() else "NaN or inf latents"


def limit(name):
    """The most steps (1 to MOST) that work, by bisection: a scheduler that fails at n steps fails above n too."""
    if failure(name, 1):
        return 0
    works, fails = 1, MOST + 1
    while fails - works > 1:
        middle = (works + fails) // 2
        works, fails = (works, middle) if failure(name, middle) else (middle, fails)
    return works


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SCHEDULERS):
        most = limit(name)
        beyond = f"; {most + 1} steps: {failure(name, most + 1)}" if most < MOST else ""
        print(f"{name}: works up to {most}{beyond}", flush=True)
