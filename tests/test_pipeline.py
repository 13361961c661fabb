import pytest
import torch

import t2v_helpers as t2v

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")


@no_gpu
def test_cpu_runtime_is_float32_without_offload():
    runtime = t2v.choose_runtime()
    assert (runtime.device, runtime.dtype, runtime.offload) == ("cpu", torch.float32, "none")
    assert "CPU" in runtime.reason


@no_gpu
@pytest.mark.parametrize("mode", ["model", "sequential"])
def test_offload_without_gpu_is_refused_with_advice(mode):
    with pytest.raises(ValueError, match="GPU.*'none'"):
        t2v.choose_runtime(mode)


def test_unknown_offload_mode_is_refused():
    with pytest.raises(ValueError, match="offload="):
        t2v.choose_runtime("fast")


@no_gpu
def test_default_model_without_gpu_is_tiny_and_says_why():
    model, why = t2v.default_model()
    assert model == "tiny" and "noise" in why


def test_load_pipeline_reports_its_choice(capsys):
    pipe = t2v.load_pipeline("tiny")
    out = capsys.readouterr().out
    assert pipe.t2v_runtime.reason in out and "noise" in out
    assert pipe.t2v_model_id == "tiny"
    assert pipe.vae.use_slicing


def test_parameter_counts_match_the_modules(tiny_pipe):
    counts = t2v.parameter_counts(tiny_pipe)
    assert set(counts) == {"unet", "vae", "text_encoder"}
    for name in counts:  # the tiny text encoder has the real 49,408-token vocabulary, so no part is always largest
        assert counts[name] == sum(p.numel() for p in getattr(tiny_pipe, name).parameters()) > 0
