"""encode_then_free: the prompt encoded once, the text encoder freed, the same video made from the embeddings."""

import gc
import weakref

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers.families import families, family_of
from t2v_helpers.text_encoding import encode_then_free

TINY = [m.name for f in families().values() for m in f.models if m.tiny]


def _video(pipe, **inputs):
    family = family_of(pipe)
    side = family.size_multiple * 4
    return pipe(
        **inputs,
        num_inference_steps=2,
        num_frames=family.frame_step + 1,
        height=side,
        width=side,
        guidance_scale=family.guidance,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).frames[0]


@pytest.mark.parametrize("offload", ["none", "model"])
@pytest.mark.parametrize("name", TINY)
def test_the_embeddings_make_the_same_video_and_the_encoder_is_freed(name, offload):
    pipe = t2v.load_pipeline(name, offload="none", dtype=torch.float32, verbose=False)
    pipe.set_progress_bar_config(disable=True)
    if offload == "model":  # model offload onto the CPU itself: the hooks are real, no GPU needed
        pipe.enable_model_cpu_offload(device="cpu")
    prompt, negative = "a red fox running through snow", "blurry"
    expected = _video(pipe, prompt=prompt, negative_prompt=negative)
    encoder = weakref.ref(pipe.text_encoder)

    embeddings = encode_then_free(pipe, prompt, negative)

    assert pipe.text_encoder is None
    gc.collect()
    assert encoder() is None, "something still holds the text encoder"
    np.testing.assert_array_equal(_video(pipe, **embeddings), expected)


def test_a_freed_encoder_is_said_so():
    pipe = t2v.load_pipeline("tiny", offload="none", dtype=torch.float32, verbose=False)
    encode_then_free(pipe, "a cat")
    with pytest.raises(ValueError, match="no text encoder"):
        encode_then_free(pipe, "a cat")


def test_the_module_tells_the_sizes_as_counted():
    # "UMT5-XXL, 5.7 billion parameters ... four times the parameters of its transformer, and CogVideoX-2B's nearly three times"
    from t2v_helpers import memory, text_encoding
    from t2v_helpers.families import cogvideox, wan

    wan_counts, cog_counts = memory.parameters(wan.MEMORY), memory.parameters(cogvideox.MEMORY)
    assert f"{wan_counts['text_encoder'] / 1e9:.1f} billion parameters" in text_encoding.__doc__.replace("\n", " ")
    assert round(wan_counts["text_encoder"] / wan_counts["transformer"]) == 4
    assert 2.7 < cog_counts["text_encoder"] / cog_counts["transformer"] < 3


@pytest.mark.parametrize("prompt, negative, problem", [
    ("", None, "is empty"), ("   \n", None, "is empty"), (None, None, "is not text"), (123, None, "is not text"),
    ("a \udcff cat", None, "not text at position"), ("a cat", 5, "is not text"), ("a cat", "  ", "is blank"),
])
def test_a_prompt_generate_would_refuse_is_refused_before_the_encoder_is_freed(prompt, negative, problem):
    """Issue 19: '' was encoded and the encoder freed for good; None and 123 gave AttributeError."""
    pipe = t2v.load_pipeline("tiny", verbose=False)
    with pytest.raises(t2v.SettingError, match=problem) as error:
        encode_then_free(pipe, prompt, negative_prompt=negative)
    assert error.value.name == ("prompt" if negative is None else "negative_prompt")
    assert pipe.text_encoder is not None  # still there: the user can fix the prompt and try again
    assert encode_then_free(pipe, "a cat", negative_prompt="")["prompt_embeds"].shape[0] == 1
