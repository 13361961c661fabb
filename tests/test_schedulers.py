import numpy as np
import pytest

import t2v_helpers as t2v

REQUIRED = {"ddim", "dpm", "dpm++2m-karras", "unipc", "euler", "euler-a", "pndm", "deis"}


def test_registry_has_the_required_schedulers():
    assert REQUIRED <= set(t2v.scheduler_names())


@pytest.mark.parametrize("name", t2v.scheduler_names())
def test_every_scheduler_makes_finite_frames(tiny_pipe, name):
    scheduler = t2v.set_scheduler(tiny_pipe, name)
    assert t2v.scheduler_name(tiny_pipe) == name
    assert scheduler.config.num_train_timesteps == 1000
    result = t2v.generate(tiny_pipe, "a cat", steps=3, frames=4, height=32, width=32, seed=1)
    assert result.frames.shape == (4, 32, 32, 3)
    assert np.isfinite(result.frames).all()
    assert result.settings["scheduler"] == name


def test_swaps_start_from_the_models_own_config(tiny_pipe):
    t2v.set_scheduler(tiny_pipe, "dpm++2m-karras")
    assert tiny_pipe.scheduler.config.use_karras_sigmas
    t2v.set_scheduler(tiny_pipe, "dpm")
    assert not tiny_pipe.scheduler.config.use_karras_sigmas
    assert tiny_pipe.scheduler.config.beta_schedule == "scaled_linear"


def test_names_are_case_insensitive(tiny_pipe):
    assert type(t2v.set_scheduler(tiny_pipe, " DPM ")).__name__ == "DPMSolverMultistepScheduler"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError) as error:
        t2v.schedulers.check_scheduler_name("eulr")
    assert "'euler'" in str(error.value) and "eulr" in str(error.value)


def test_an_ancestral_scheduler_repeats_itself_with_the_same_seed(tiny_pipe):
    """euler-a adds fresh noise at every step, but draws it from the seeded generator the pipeline passes to step()."""
    t2v.set_scheduler(tiny_pipe, "euler-a")
    make = lambda seed: t2v.generate(tiny_pipe, "a cat", steps=4, frames=3, height=32, width=32, seed=seed).frames
    first, again, other = make(11), make(11), make(12)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def ends(scheduler, steps=25):
    """The first two and last two timesteps a scheduler visits in `steps` steps."""
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.tolist()
    return timesteps[:2] + timesteps[-2:]


def test_the_timesteps_notebook_03_explains(tiny_pipe):
    """Which timesteps from_config(ddim.config) gives: the config file names no timestep_spacing, so DPM keeps its own."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from t2v_helpers.families.modelscope import REAL_SCHEDULER_CONFIG

    real_ddim = DDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    tiny_ddim = tiny_pipe.scheduler
    assert ends(real_ddim) == ends(tiny_ddim) == [961, 921, 41, 1]  # "leading", steps_offset=1
    for ddim in (real_ddim, tiny_ddim):
        assert ends(DPMSolverMultistepScheduler.from_config(ddim.config)) == [999, 959, 80, 40]  # its own "linspace"
    for ddim in (real_ddim, tiny_ddim):
        for cls in (DDIMScheduler, DPMSolverMultistepScheduler):
            assert ends(cls.from_config(ddim.config, timestep_spacing="trailing")) == [999, 959, 79, 39]


def test_every_registered_scheduler_has_a_step_limit():
    from t2v_helpers.schedulers import STEP_LIMITS

    assert set(STEP_LIMITS) == set(t2v.SCHEDULERS)
