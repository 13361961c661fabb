"""diffusers' "should be kept in float32: []" line (issue 18 item 9): noise when the helpers cast a model they built.

diffusers' ModelMixin.to() logs "There are modules in <class> that should be kept in float32: [...]"
whenever it is given a dtype, even when the list is empty (`fp32_modules = ... or []`, then
`if ... fp32_modules is not None`). The helpers cast freshly built models (the tiny model, the full-size
architecture), so on a fresh machine such as Colab every notebook printed the empty-list line.
"""

import logging

import torch

from t2v_helpers.families.modelscope import build_full_size_pipeline
from t2v_helpers.notices import quiet_empty_float32_notice

NOTICE = "should be kept in float32"


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def recorded(action):
    logger = logging.getLogger("diffusers.models.modeling_utils")
    recorder = Recorder()
    logger.addHandler(recorder)
    try:
        action()
    finally:
        logger.removeHandler(recorder)
    return [m for m in recorder.messages if NOTICE in m]


def test_casting_the_full_size_architecture_prints_no_empty_float32_line():
    assert recorded(lambda: build_full_size_pipeline(torch.bfloat16, empty=True)) == []


def test_only_the_empty_list_is_hidden():
    """A model that does keep parts in float32 still says which, inside the helpers' casts too."""
    from diffusers import UNet3DConditionModel

    unet = UNet3DConditionModel(block_out_channels=(8, 8, 8, 8), norm_num_groups=4, cross_attention_dim=8,
                                attention_head_dim=2, layers_per_block=1, sample_size=8)
    assert recorded(lambda: unet.to(torch.bfloat16)), "diffusers no longer prints the line: this filter can go"
    with quiet_empty_float32_notice():
        assert recorded(lambda: unet.to(torch.float32)) == []
        unet._keep_in_fp32_modules = ["conv_in"]
        assert recorded(lambda: unet.to(torch.bfloat16)) == [
            "There are modules in UNet3DConditionModel that should be kept in float32: ['conv_in']. Casting directly "
            "with `to()` can lead to inconsistent results; set `torch_dtype` in `from_pretrained()` instead to keep these modules in float32."]


def test_building_the_tiny_model_prints_no_empty_float32_line(tmp_path):
    from t2v_helpers.families import find_model

    assert recorded(lambda: find_model("tiny").build(tmp_path / "tiny")) == []
