"""The memory model and `offload="auto"`, on simulated GPUs (real CUDA is never touched)."""

import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import memory
from t2v_helpers.families import modelscope

GB = 10**9
CONTEXT = 0.4 * 2**30  # what the CUDA context takes before the model loads


def simulate_gpu(monkeypatch, total_gb, used=CONTEXT):
    total = total_gb * GB
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Simulated {total_gb} GB GPU")
    monkeypatch.setattr(memory, "gpu_memory", lambda: (int(total - used), total))


def test_weights_are_exact_parameter_bytes():
    counts = t2v.architecture.full_size_parameters()
    assert memory.weight_bytes(torch.float16)["unet"] == 2 * counts["unet"]
    assert memory.weight_bytes(torch.float32)["vae"] == 4 * counts["vae"]
    assert memory.weight_bytes(torch.bfloat16)["text_encoder"] == 2 * counts["text_encoder"]


def test_coefficients_are_the_committed_calibration():
    unet, sliced, unsliced = memory.calibrate(t2v.bench.load_results("cpu-full"))
    assert modelscope.UNET_ACTIVATION_PER_LATENT == pytest.approx(unet, rel=0.01)
    assert modelscope.VAE_SLICED_PER_PIXEL == pytest.approx(sliced, rel=0.01)
    assert modelscope.VAE_UNSLICED_PER_FRAME_PIXEL == pytest.approx(unsliced, rel=0.01)
    assert modelscope.FAMILY.memory.per_token == modelscope.UNET_ACTIVATION_PER_LATENT


def test_calibration_needs_a_full_size_float32_run():
    with pytest.raises(ValueError, match="full-size float32"):
        memory.calibrate({"runs": [{"model": "tiny", "dtype": "float32"}]})


@pytest.mark.parametrize("mode", ["none", "model", "sequential"])
def test_activations_grow_with_frames_and_size_and_not_the_weights(mode):
    small = memory.predict(mode, frames=16)
    for bigger in (memory.predict(mode, frames=64), memory.predict(mode, height=512, width=512)):
        assert bigger.peak > small.peak
        assert bigger.activations > small.activations
    assert memory.predict(mode, frames=64).weights == small.weights


def test_modes_need_less_memory_in_order_and_slicing_helps_the_decode():
    for frames in (1, 16, 64, 256):
        peaks = [memory.predict(m, frames=frames).peak for m in memory.MODES_FASTEST_FIRST]
        assert peaks == sorted(peaks, reverse=True), frames
    # Without slicing the VAE decodes every frame at once.
    assert memory.predict("sequential", frames=64, vae_slicing=False).peak > memory.predict("sequential", frames=64).peak


def test_float32_needs_twice_the_weights_of_float16():
    assert memory.predict("none", dtype=torch.float32).weights == 2 * memory.predict("none").weights


def test_unknown_mode_names_the_parameter():
    with pytest.raises(ValueError, match="offload='auto'.*one of"):
        memory.predict("auto")


# 16 frames of 256x256 in float16: about 4.4 GiB with everything on the GPU, 3.6 GiB with model offload (benchmarks/results/cpu-full.json).
EXPECTED = {6: "model", 8: "none", 12: "none", 16: "none", 24: "none", 80: "none"}


@pytest.mark.parametrize("total_gb", sorted(EXPECTED))
def test_auto_picks_the_fastest_mode_that_fits_each_gpu(monkeypatch, total_gb):
    simulate_gpu(monkeypatch, total_gb)
    runtime = t2v.choose_runtime()  # offload="auto"
    assert runtime.device == "cuda" and runtime.dtype == torch.float16
    assert runtime.offload == EXPECTED[total_gb]
    # It tells the user what it chose and the prediction.
    assert f"offload={runtime.offload!r}" in runtime.reason and "predicted peak" in runtime.reason
    assert f"Simulated {total_gb} GB GPU" in runtime.reason
    free = memory.gpu_memory()[0]
    chosen = memory.predict(runtime.offload)
    assert memory.fits(chosen, free)
    for faster in memory.MODES_FASTEST_FIRST[: memory.MODES_FASTEST_FIRST.index(runtime.offload)]:
        assert not memory.fits(memory.predict(faster), free)
        assert f"{faster!r} would need" in runtime.reason


def test_auto_takes_memory_already_in_use_into_account(monkeypatch):
    simulate_gpu(monkeypatch, 80, used=78 * GB)  # another process holds most of it
    assert t2v.choose_runtime().offload == "sequential"


def test_when_nothing_fits_auto_says_so_and_takes_the_leanest(monkeypatch):
    simulate_gpu(monkeypatch, 1)
    runtime = t2v.choose_runtime()
    assert runtime.offload == "sequential" and "may not fit" in runtime.reason


def test_longer_videos_need_leaner_modes():
    free = 15 * 2**30
    modes = [memory.choose_offload(free, frames=f)[0] for f in (16, 64, 128, 160, 256)]
    ranks = [memory.MODES_FASTEST_FIRST.index(m) for m in modes]
    assert ranks == sorted(ranks) and modes[0] == "none" and modes[-1] == "sequential"


@pytest.mark.parametrize("total_gb", sorted(EXPECTED))
def test_64_frames_on_each_gpu_never_picks_a_mode_that_does_not_fit(total_gb):
    free = total_gb * GB - CONTEXT
    mode, reason, predictions = memory.choose_offload(free, frames=64)
    chosen = next(p for p in predictions if p.mode == mode)
    assert chosen.fits or mode == "sequential"
    assert all(not p.fits for p in predictions[: memory.MODES_FASTEST_FIRST.index(mode)])


def test_an_explicit_mode_is_kept_on_a_gpu(monkeypatch):
    simulate_gpu(monkeypatch, 6)
    runtime = t2v.choose_runtime("none")
    assert runtime.offload == "none" and "as asked" in runtime.reason


def test_cpu_auto_is_still_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert t2v.choose_runtime().offload == "none"
    assert memory.gpu_memory() is None
