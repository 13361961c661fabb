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
