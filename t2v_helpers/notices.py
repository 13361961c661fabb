"""The library notices the helpers quiet, and only those; each lesson that meets one explains it in words. Notebook 02.

Each is dropped by a logging filter for the duration of one block, so nothing stays
quiet after the helper returns and every other warning still shows.
"""

import logging
from contextlib import contextmanager


class DropNotice(logging.Filter):
    """A logging filter that drops the records whose message starts with `start`. Notebook 02."""

    def __init__(self, start):
        super().__init__()
        self.start = start

    def filter(self, record):
        return not record.getMessage().startswith(self.start)


class _EmptyFloat32Notice(logging.Filter):
    """Drops diffusers' "should be kept in float32: []" line, and only its empty-list form."""

    def filter(self, record):
        message = record.getMessage()
        return not (message.startswith("There are modules in ") and "should be kept in float32: []." in message)


@contextmanager
def filtered_log(name, log_filter):
    """Apply `log_filter` to the logger called `name` inside the block only: how the helpers quiet one library notice. Notebook 02."""
    logger = logging.getLogger(name)
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


@contextmanager
def quiet_empty_float32_notice():
    """Hide diffusers' "There are modules in ... that should be kept in float32: []" while the helpers cast a model. Notebook 02.

    diffusers' ModelMixin.to() prints it for any dtype, even when the list is empty, i.e. when no
    layer needs float32 and the cast changes nothing it warns about. A model that does keep layers
    in float32 still names them. Notebook 02's troubleshooting explains the line.
    """
    with filtered_log("diffusers.models.modeling_utils", _EmptyFloat32Notice()):
        yield


def quiet_deprecation(pipeline_class):
    """Hide diffusers' "The <pipeline_class> has been deprecated" notice inside the block; the lesson explains it once. Notebook 02."""
    return filtered_log("diffusers.pipelines.pipeline_utils", DropNotice(f"The {pipeline_class} has been deprecated"))


@contextmanager
def quiet_loading():
    """Hide diffusers' and transformers' loading bars and the TextToVideoSDPipeline deprecation notice. Notebook 02.

    Notebook 02 explains the notice in words; other warnings still show. Download bars
    (huggingface_hub) still show too, since a first download takes minutes.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    bars = [(library, library.is_progress_bar_enabled()) for library in (diffusers_logging, transformers_logging)]
    diffusers_logging.disable_progress_bar()
    # transformers' own switch would also turn huggingface_hub's download bars off; its flag alone does not.
    transformers_logging._tqdm_active = False
    try:
        with quiet_deprecation("TextToVideoSDPipeline"):
            yield
    finally:
        if bars[0][1]:
            diffusers_logging.enable_progress_bar()
        transformers_logging._tqdm_active = bars[1][1]
