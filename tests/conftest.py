import os

import pytest

import t2v_helpers as t2v


@pytest.fixture(scope="session")
def _tiny_pipe():
    return t2v.load_pipeline("tiny", verbose=False)


@pytest.fixture
def tiny_pipe(_tiny_pipe):
    """The tiny pipeline, loaded once per session, with the model's own DDIM scheduler."""
    t2v.set_scheduler(_tiny_pipe, "ddim")
    return _tiny_pipe


@pytest.fixture(scope="module")
def pipe():
    """The pipeline of T2V_MODEL (the tiny one, unless the GPU workflow sets the real one), once per module."""
    pipe = t2v.load_pipeline(os.environ["T2V_MODEL"], verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
