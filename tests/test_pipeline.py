import logging
import platform
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

import t2v_helpers as t2v

ROOT = Path(__file__).resolve().parents[1]

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")


@no_gpu
@pytest.mark.parametrize("bf16", [True, False], ids=["cpu-with-bf16", "cpu-without-bf16"])
def test_cpu_runtime_is_bfloat16_only_where_the_cpu_has_it(monkeypatch, bf16):
    monkeypatch.setattr(t2v.pipeline, "cpu_has_bfloat16", lambda: bf16)
    runtime = t2v.choose_runtime()
    dtype = torch.bfloat16 if bf16 else torch.float32
    assert (runtime.device, runtime.dtype, runtime.offload) == ("cpu", dtype, "none")
    # The reason names the choice and the measurement it rests on.
    assert f"CPU in {str(dtype)[6:]}" in runtime.reason and "benchmarks/results/cpu-full.json" in runtime.reason
    assert (ROOT / "benchmarks/results/cpu-full.json").is_file()


@no_gpu
def test_a_dtype_asked_for_on_the_cpu_is_kept(monkeypatch):
    monkeypatch.setattr(t2v.pipeline, "cpu_has_bfloat16", lambda: True)
    runtime = t2v.choose_runtime(dtype=torch.float32)
    assert runtime.dtype == torch.float32 and "float32" in runtime.reason and "asked for" in runtime.reason


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file() or platform.machine() != "x86_64", reason="reads x86 CPU flags from /proc/cpuinfo")
def test_bfloat16_detection_agrees_with_the_cpu_flags():
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE).group(1).split())
    assert t2v.pipeline.cpu_has_bfloat16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


def test_the_tiny_model_works_in_bfloat16_on_the_cpu(tmp_path):
    """Decode, numpy output, video export and the denoising view, in the dtype a bf16 CPU gets by default."""
    pipe = t2v.load_pipeline("tiny", offload="none", dtype=torch.bfloat16, verbose=False)
    assert pipe.unet.dtype == pipe.vae.dtype == torch.bfloat16
    result = t2v.generate(pipe, "a red fox", steps=2, frames=2, height=32, width=32, seed=0)
    assert result.frames.dtype == np.float32 and np.isfinite(result.frames).all()
    saved = t2v.save_video(result, tmp_path)
    assert saved.mp4.stat().st_size > 0
    captured = t2v.capture_denoising(pipe, "a red fox", steps=2, seed=0, frames=2, height=32, width=32)
    assert np.array_equal(t2v.decode_latents(pipe, captured.latents[-1]), result.frames)


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


def test_load_pipeline_prints_one_line_its_choice(capfd, caplog):
    t2v.model_path("tiny")  # building the tiny model the first time is not loading it
    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        pipe = t2v.load_pipeline("tiny")
    out, err = capfd.readouterr()
    assert caplog.records == []
    # One line with the reason, and no loading bars or deprecation notice on stderr.
    assert out.splitlines() == [out.strip()] and pipe.t2v_runtime.reason in out and "noise" in out
    assert err == ""
    assert pipe.t2v_model_id == "tiny"
    assert pipe.vae.use_slicing


def test_parameter_counts_match_the_modules(tiny_pipe):
    counts = t2v.parameter_counts(tiny_pipe)
    assert set(counts) == {"unet", "vae", "text_encoder"}
    for name in counts:  # the tiny text encoder has the real 49,408-token vocabulary, so no part is always largest
        assert counts[name] == sum(p.numel() for p in getattr(tiny_pipe, name).parameters()) > 0


@pytest.mark.parametrize("bars_on", [True, False])
def test_loading_restores_progress_bar_settings_even_when_it_fails(tmp_path, bars_on):
    libraries = (diffusers_logging, transformers_logging)
    filters = list(logging.getLogger("diffusers.pipelines.pipeline_utils").filters)
    for library in libraries:
        library.enable_progress_bar() if bars_on else library.disable_progress_bar()
    try:
        t2v.load_pipeline("tiny", verbose=False)
        with pytest.raises(Exception):  # an empty folder is no model
            t2v.load_pipeline(str(tmp_path), verbose=False)
        assert [library.is_progress_bar_enabled() for library in libraries] == [bars_on, bars_on]
        assert logging.getLogger("diffusers.pipelines.pipeline_utils").filters == filters
    finally:
        for library in libraries:
            library.enable_progress_bar()


def test_only_the_pipeline_deprecation_notice_is_hidden(caplog, monkeypatch):
    from diffusers import DiffusionPipeline

    logger = logging.getLogger("diffusers.pipelines.pipeline_utils")
    real = DiffusionPipeline.from_pretrained

    def noisy(*args, **kwargs):
        logger.warning("Some other warning the user must see.")
        return real(*args, **kwargs)  # the real load warns that TextToVideoSDPipeline is deprecated

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", noisy)
    with caplog.at_level(logging.WARNING):
        t2v.load_pipeline("tiny", verbose=False)
    messages = [record.getMessage() for record in caplog.records]
    assert "Some other warning the user must see." in messages
    assert not any("deprecated" in message for message in messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        DiffusionPipeline.from_pretrained(t2v.model_path("tiny"))  # outside load_pipeline the notice is back
    assert any("TextToVideoSDPipeline has been deprecated" in record.getMessage() for record in caplog.records)


@no_gpu
@pytest.mark.parametrize("bf16", [True, False], ids=["cpu-with-bf16", "cpu-without-bf16"])
def test_environment_report_names_the_dtype_the_cpu_will_run(monkeypatch, bf16):
    monkeypatch.setattr(t2v.pipeline, "cpu_has_bfloat16", lambda: bf16)
    assert f"on the CPU in {str(t2v.choose_runtime().dtype)[6:]}" in t2v.environment_report()
