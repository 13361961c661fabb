"""Find the most denoising steps each registered scheduler can take: the data in schedulers.STEP_LIMITS.

    PYTHONPATH=. python tools/find_step_limits.py            # every scheduler
    PYTHONPATH=. python tools/find_step_limits.py dpm ddim   # some
    PYTHONPATH=. python tools/find_step_limits.py --family cogvideox   # another family's step_limits

Runs the pipeline's denoising loop (set_timesteps, scale_model_input, step) with the model's
own scheduler config and random noise predictions in place of the UNet, for every step count
and bisects for the most steps (up to 1000) that neither raise nor end in NaN.
The failures come from the timestep arithmetic, not from the UNet's numbers, so the UNet is left out
(a full tiny-model run of 1000 steps takes minutes on a CPU).

With --family, the family's tiny model runs its own pipeline (its own loop: CogVideoX's DPM
scheduler steps with a different signature) to latents, with the family's guidance; each count
is one pipeline call, so the most steps are tried first.
"""

import sys
import warnings

import torch

from t2v_helpers.schedulers import SCHEDULERS
from t2v_helpers.families.modelscope import REAL_SCHEDULER_CONFIG

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


def family_failure(family_name):
    """A `failure(name, steps)` that runs the family's tiny model's pipeline with the named scheduler."""
    from diffusers import DiffusionPipeline

    from t2v_helpers.families import family_named
    from t2v_helpers.schedulers import set_scheduler
    from t2v_helpers.tiny import build_tiny

    family = family_named(family_name)
    model = next(m for m in family.models if m.tiny)
    pipe = DiffusionPipeline.from_pretrained(build_tiny(model))
    pipe.set_progress_bar_config(disable=True)

    def fails(name, steps):
        set_scheduler(pipe, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                latents = pipe(
                    "a cat", num_inference_steps=steps, height=model.height, width=model.width, num_frames=model.frames,
                    guidance_scale=family.guidance, generator=torch.Generator().manual_seed(0), output_type="latent",
                    **family.pipeline_kwargs,
                ).frames
            except Exception as error:  # any error is a failure to record, whatever its type
                return f"{type(error).__name__}: {error}"[:80]
        return None if torch.isfinite(latents).all() else "NaN or inf latents"

    return family.schedulers, fails


def limit(name, failure=failure):
    """The most steps (1 to MOST) that work, by bisection: a scheduler that fails at n steps fails above n too."""
    if failure(name, 1):
        return 0
    if not failure(name, MOST):
        return MOST
    works, fails = 1, MOST + 1
    while fails - works > 1:
        middle = (works + fails) // 2
        works, fails = (works, middle) if failure(name, middle) else (middle, fails)
    return works


if __name__ == "__main__":
    names, fails = sys.argv[1:], failure
    schedulers = SCHEDULERS
    if names[:1] == ["--family"]:
        schedulers, fails = family_failure(names[1])
        names = names[2:]
    for name in names or list(schedulers):
        most = limit(name, fails)
        print(f"{name}: works up to {most}; {most + 1} steps: {fails(name, most + 1)}", flush=True)
