"""Find the most denoising steps each registered scheduler can take: the data in schedulers.STEP_LIMITS.

    PYTHONPATH=. python tools/find_step_limits.py            # every scheduler
    PYTHONPATH=. python tools/find_step_limits.py dpm ddim   # some

Runs the pipeline's denoising loop (set_timesteps, scale_model_input, step) with the model's
own scheduler config and random noise predictions in place of the UNet, for every step count
from 990 to 1000 and every 47th below, and prints the first count that raises or ends in NaN.
The failures come from the timestep arithmetic, not from the UNet's numbers, so the UNet is left out
(a full tiny-model run of 1000 steps takes minutes on a CPU).
"""

import sys
import warnings

import torch

from t2v_helpers.schedulers import SCHEDULERS
from t2v_helpers.tiny import REAL_SCHEDULER_CONFIG

STEP_COUNTS = [*range(1, 990, 47), *range(990, 1001)]


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


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SCHEDULERS):
        failed = [(steps, why) for steps in STEP_COUNTS if (why := failure(name, steps))]
        if failed:
            steps, why = failed[0]
            print(f"{name}: works up to {max(s for s in STEP_COUNTS if s < steps)}; {steps} steps: {why}", flush=True)
        else:
            print(f"{name}: works up to {STEP_COUNTS[-1]}", flush=True)
