"""A tiny model stands in for its real model at the real model's own shapes (issue 22).

Each tiny copy in t2v.families.models() runs one step at the default height, width and frame count of
the real checkpoint it stands in for, so a learner without a GPU runs the real code path at the
lesson's real settings (its position tables as long as the real model's). A new family's tiny
model is tested here without a line changing, provided it is named after its real model
("tiny-<name>", or "tiny" for the family's first).
"""

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import families

TINY = [name for name, model in families.models().items() if model.tiny]


def real_model_of(tiny):
    """The real checkpoint a tiny model stands in for: "tiny-NAME" stands in for NAME, "tiny" for its family's first model."""
    family = families.family_named(tiny.family)
    name = tiny.name.removeprefix("tiny-") if tiny.name != "tiny" else family.models[0].name
    real = families.find_model(name)
    assert real is not None and not real.tiny and real.family == tiny.family, f"{tiny.name} names no real model of its family"
    return real


@pytest.mark.parametrize("name", TINY)
def test_each_tiny_model_makes_a_video_at_its_real_models_default_shape(name):
    real = real_model_of(families.find_model(name))
    pipe = t2v.load_pipeline(name, dtype=torch.float32, verbose=False)
    pipe.set_progress_bar_config(disable=True)
    result = t2v.generate(pipe, "a cat walks on the beach", steps=1, frames=real.frames, height=real.height, width=real.width)
    assert result.frames.shape == (real.frames, real.height, real.width, 3)
    assert np.isfinite(result.frames).all()
