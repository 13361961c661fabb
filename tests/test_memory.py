"""The memory model and `offload="auto"`, on simulated GPUs (real CUDA is never touched)."""

import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import memory, validate
from t2v_helpers.families import cogvideox, families, family_named, modelscope, wan

GB = 10**9
CONTEXT = 0.4 * 2**30  # what the CUDA context takes before the model loads


def simulate_gpu(monkeypatch, total_gb, used=CONTEXT):
    total = total_gb * GB
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Simulated {total_gb} GB GPU")
    monkeypatch.setattr(memory, "gpu_memory", lambda: (int(total - used), total))


def test_weights_are_exact_parameter_bytes():
    counts = t2v.families.modelscope.full_size_parameters()
    assert memory.weight_bytes(torch.float16)["unet"] == 2 * counts["unet"]
    assert memory.weight_bytes(torch.float32)["vae"] == 4 * counts["vae"]
    assert memory.weight_bytes(torch.bfloat16)["text_encoder"] == 2 * counts["text_encoder"]


def test_coefficients_are_the_committed_calibration():
    unet, sliced, unsliced = memory.calibrate(t2v.measured.load_results("cpu-full"))
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
EXPECTED = {6: "none", 8: "none", 12: "none", 16: "none", 24: "none", 80: "none"}


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


# --- ModelScope's figures as they were before families had memory profiles --------------------

def _modelscope_before(mode, frames, height, width, dtype, vae_slicing, guidance):
    # memory.predict of commit 7fc66b3, written out with its coefficients.
    size = torch.empty(0, dtype=dtype).element_size()
    w = {k: v * size for k, v in t2v.families.modelscope.full_size_parameters().items()}
    unet = int(15400 * (2 if guidance else 1) * frames * (height // 8) * (width // 8) * size)
    one_frame = 4570 * height * width * size
    vae = int(one_frame if vae_slicing else max(one_frame, 874 * frames * height * width * size))
    if mode == "none":
        return w["unet"] + w["vae"] + w["text_encoder"] + max(unet, vae)
    if mode == "model":
        return max(w["text_encoder"], w["unet"] + unet, w["vae"] + vae)
    return w["largest_layer"] + max(unet, vae)


@pytest.mark.parametrize("mode", ["none", "model", "sequential"])
def test_modelscope_predictions_are_unchanged(mode):
    for frames, height, width in [(1, 64, 64), (16, 256, 256), (64, 256, 256), (24, 320, 576), (200, 512, 512)]:
        for dtype in (torch.float16, torch.float32, torch.bfloat16):
            for slicing in (True, False):
                for guidance in (True, False):
                    settings = dict(frames=frames, height=height, width=width, dtype=dtype, vae_slicing=slicing, guidance=guidance)
                    expected = _modelscope_before(mode, **settings)
                    assert memory.predict(mode, **settings).peak == expected
                    assert memory.predict(mode, family="modelscope", **settings).peak == expected


# --- every family ---------------------------------------------------------------------------------

# Each family's profile and its default video (frames, height, width), as each pipeline's defaults.
PROFILES = {
    "modelscope": (modelscope.MEMORY, 16, 256, 256),
    "wan": (wan.MEMORY, 81, 480, 832),
    "cogvideox": (cogvideox.MEMORY, 49, 480, 720),
}
T4_FREE = memory.T4_FREE  # Colab's free GPU once the CUDA context is up: the lessons' one figure


def _predict(name, mode, **settings):
    profile, frames, height, width = PROFILES[name]
    return memory.predict(mode, family=profile, **{"frames": frames, "height": height, "width": width, **settings})


@pytest.mark.parametrize("name", PROFILES)
def test_every_familys_weights_are_its_parameters_times_bytes(name):
    profile = PROFILES[name][0]
    with torch.device("meta"):
        parts = profile.parts()
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        weights = memory.weight_bytes(dtype, profile)
        for part, module in parts.items():
            count = sum(p.numel() for p in module.parameters())
            size = torch.empty(0, dtype=dtype).element_size()
            kept = count if part in profile.float32_parts else memory.kept_in_float32(module, dtype)
            assert weights[part] == size * (count - kept) + 4 * kept, (part, dtype)


def test_t5_encoders_keep_their_wo_layers_in_float32_only_in_float16():
    # transformers' _keep_in_fp32_modules = ["wo"]: 24 blocks of d_ff x d_model each, in UMT5-XXL and T5-XXL alike.
    for family in (wan, cogvideox):
        config = family.TEXT_ENCODER_CONFIG
        with torch.device("meta"):
            encoder = family.MEMORY.parts()["text_encoder"]
        assert memory.kept_in_float32(encoder, torch.float16) == config["num_layers"] * config["d_ff"] * config["d_model"] == 1_006_632_960
        assert memory.kept_in_float32(encoder, torch.bfloat16) == 0
    # So UMT5-XXL in float16 is 12.46 GiB, not the 10.6 GiB of 2 bytes a parameter.
    assert round(memory.weight_bytes(torch.float16, wan.MEMORY)["text_encoder"] / 2**30, 2) == 12.46


def test_one_module_name_given_as_text_is_one_name():
    # diffusers accepts `_keep_in_fp32_modules = "norm"`; read as a set of letters it would match nothing right.
    from diffusers import ModelMixin

    class Model(ModelMixin):
        _keep_in_fp32_modules = "norm"

        def __init__(self):
            super().__init__()
            self.norm, self.n = torch.nn.Linear(2, 2), torch.nn.Linear(3, 3)

    assert memory.kept_in_float32(Model(), torch.float16) == 6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kept_in_float32_counts_what_the_libraries_really_keep(tmp_path, dtype):
    # Small models of the same classes, saved and loaded as from_pretrained loads them: the float32
    # parameters after loading are the ones kept_in_float32 counts.
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    encoder = UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=4))
    transformer = WanTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=1
    )
    for model, cls in ((encoder, UMT5EncoderModel), (transformer, WanTransformer3DModel)):
        model.save_pretrained(tmp_path / cls.__name__)
        loaded = cls.from_pretrained(tmp_path / cls.__name__, dtype=dtype)
        in_float32 = sum(p.numel() for p in loaded.parameters() if p.dtype == torch.float32)
        assert in_float32 == memory.kept_in_float32(model, dtype) and (in_float32 > 0) == (cls is WanTransformer3DModel or dtype == torch.float16)


def test_wans_vae_stays_float32_and_its_largest_layer_is_the_text_embedding():
    weights = memory.weight_bytes(torch.float16, wan.MEMORY)
    assert weights["vae"] == memory.weight_bytes(torch.float32, wan.MEMORY)["vae"]
    # Sequential offload's floor: UMT5-XXL's token embedding, vocabulary x width, 2 bytes each.
    assert weights["largest_layer"] == 2 * wan.TEXT_ENCODER_CONFIG["vocab_size"] * wan.TEXT_ENCODER_CONFIG["d_model"]


def test_token_counts_follow_the_latent_grid():
    tokens = wan.MEMORY.tokens
    assert tokens(81, 480, 832) == 21 * 30 * 52 and tokens(1, 480, 832) == 30 * 52 and tokens(84, 480, 832) == 21 * 30 * 52
    assert modelscope.MEMORY.tokens(16, 256, 256) == 16 * 32 * 32
    # CogVideoX's positional table covers exactly its sample size's patches and text: the same count.
    with torch.device("meta"):
        transformer = cogvideox.MEMORY.parts()["transformer"]
    config = cogvideox.TRANSFORMER_CONFIG
    frames, height, width = config["sample_frames"], config["sample_height"] * 8, config["sample_width"] * 8
    assert cogvideox.MEMORY.tokens(frames, height, width) == transformer.patch_embed.pos_embedding.shape[1]


@pytest.mark.parametrize("name", ["wan", "cogvideox"])
def test_lean_decoding_is_tiling_at_the_vaes_own_tile(name):
    profile, frames, height, width = PROFILES[name]
    with torch.device("meta"):
        vae = profile.parts()["vae"]
    tile = (vae.tile_sample_min_height, vae.tile_sample_min_width)
    lean, whole = (memory.activations(profile, frames, height, width, vae_slicing=on)[1] for on in (True, False))
    assert lean < whole
    # A frame no bigger than the tile decodes in one piece: tiling saves nothing there.
    small = [memory.activations(profile, frames, *tile, vae_slicing=on)[1] for on in (True, False)]
    assert small[0] == small[1]


@pytest.mark.parametrize("name", PROFILES)
def test_the_registered_families_carry_their_profiles(name):
    family = family_named(name)
    profile, frames, height, width = PROFILES[name]
    assert family.memory is profile
    # The profile counts the parts the family loads, as the family loads them.
    assert profile.denoiser == family.denoiser and profile.float32_parts == family.float32_parts
    model = family.models[0]
    assert (model.frames, model.height, model.width) == (frames, height, width)
    # By name, the family's default model's size is the default.
    assert memory.predict("model", family=name).peak == _predict(name, "model").peak


@pytest.mark.parametrize("mode", ["none", "model", "sequential"])
@pytest.mark.parametrize("name", PROFILES)
def test_every_familys_predictions_grow_with_frames_and_size(name, mode):
    profile, frames, height, width = PROFILES[name]
    small = _predict(name, mode)
    assert small.peak >= small.weights > 0
    for lean in (True, False):
        acts = memory.activations(profile, frames, height, width, vae_slicing=lean)
        assert all(a > 0 for a in acts)
        longer = memory.activations(profile, 2 * frames - 1, height, width, vae_slicing=lean)
        larger = memory.activations(profile, frames, 2 * height, 2 * width, vae_slicing=lean)
        # ModelScope's sliced VAE decodes one frame at a time: only its size counts.
        assert longer[0] > acts[0] and longer[1] >= acts[1] and larger[0] > acts[0] and larger[1] > acts[1]
    for bigger in (_predict(name, mode, frames=2 * frames - 1), _predict(name, mode, height=2 * height, width=2 * width)):
        # With model offload the peak may stay the text encoder's phase, which no video size changes.
        assert bigger.peak > small.peak or (mode == "model" and bigger.peak == small.peak == small.weights)
        assert bigger.weights == small.weights or mode == "model"
    assert _predict(name, mode, frames=4 * frames + 1, height=2 * height, width=2 * width).peak > small.peak


@pytest.mark.parametrize("name", PROFILES)
def test_every_familys_leaner_modes_need_less(name):
    _, frames, height, width = PROFILES[name]
    for f in (1, frames, 2 * frames - 1):
        for dtype in (torch.float16, torch.bfloat16):
            none, model, sequential = (_predict(name, m, frames=f, dtype=dtype) for m in memory.MODES_FASTEST_FIRST)
            assert none.peak > model.peak >= sequential.peak, (f, dtype)
            # Sequential saves the part's weights less its largest layer: nothing where that part is smaller than
            # the largest layer of all (Wan's float32 VAE against UMT5-XXL's token embedding).
            assert sequential.weights <= model.weights
    # Where the transformer's phase is the peak, one layer at a time holds less than the whole transformer.
    transformer_bound = _predict(name, "model", frames=1, height=64, width=64)
    assert _predict(name, "sequential", frames=1, height=64, width=64).peak < transformer_bound.peak


def test_guidance_doubles_cogvideoxs_batch_but_wan_runs_two_calls():
    for name, factor in (("cogvideox", 2), ("wan", 1), ("modelscope", 2)):
        profile, frames, height, width = PROFILES[name]
        with_guidance = memory.activations(profile, frames, height, width, guidance=True)[0]
        without = memory.activations(profile, frames, height, width, guidance=False)[0]
        assert with_guidance == pytest.approx(factor * without, abs=1), name


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("name", ["wan", "cogvideox"])
def test_wan_and_cogvideox_never_fit_a_t4_whole(name, lean):
    # Their weights alone (a 5-billion-parameter-class text encoder and a 1.4-2 billion transformer, float16)
    # are over what a 15 GB T4 has free: auto offloads, model or sequential, whatever the video.
    profile, frames, height, width = PROFILES[name]
    mode, reason, predictions = memory.choose_offload(T4_FREE, family=profile, frames=frames, height=height, width=width, vae_slicing=lean)
    assert not memory.fits(memory.Prediction("none", predictions[0].weights, predictions[0].weights, 0), T4_FREE)
    assert mode in ("model", "sequential") and "'none' would need" in reason
    fitting = [p.mode for p in predictions if p.fits]
    assert mode == (fitting[0] if fitting else "sequential")
    assert ("may not fit" in reason) == (not fitting)
    assert f"{frames} frames of {width}x{height}" in reason


def test_auto_on_a_t4_takes_model_offload_for_wan_and_cogvideox(monkeypatch):
    # At their default videos with lean (tiled) decoding: the peak with model offload is the text
    # encoder on its own (UMT5-XXL 12.5 GiB, T5-XXL 10.7 GiB in float16), which fits a T4.
    simulate_gpu(monkeypatch, 15)
    wan_runtime = t2v.choose_runtime(model=t2v.families.find_model("wan"))
    assert wan_runtime.offload == "model" and "81 frames of 832x480" in wan_runtime.reason
    cog_runtime = t2v.choose_runtime(model=family_named("cogvideox").models[0])
    assert cog_runtime.offload == "model" and "may not fit" not in cog_runtime.reason


def test_cogvideox_predictions_agree_with_diffusers_published_measurements():
    # diffusers' CogVideoX page, 49 frames of 720x480 in float16 (cogvideox.PUBLISHED_GPU_MEMORY). Two
    # figures calibrate the VAE (model offload without tiling, sequential offload with it); the other
    # two are predicted from the weights and the transformer's CPU calibration, and must agree too.
    def peak(mode, tiling):
        return memory.predict(mode, family=cogvideox.MEMORY, frames=49, height=480, width=720, vae_slicing=tiling).peak / 2**30

    assert peak("model", False) == pytest.approx(19, abs=0.05)
    assert peak("sequential", True) == pytest.approx(4, abs=0.05)
    assert peak("none", False) == pytest.approx(33, abs=0.5)  # "Without enabling cpu offloading, memory usage is `33 GB`"
    assert peak("model", True) == pytest.approx(11, abs=0.5)  # "With enabling cpu offloading and tiling, memory usage is `11 GB`"
    assert set(cogvideox.PUBLISHED_GPU_MEMORY) == {"none", "model", "sequential", "model, tiling"}
    assert cogvideox.VAE_PARAMETERS == cogvideox.full_size_parameters()["vae"]


def test_cogvideox_frames_stop_at_49():
    family = family_named("cogvideox")
    assert family.check_frames(49) and not family.check_frames(57)
    with pytest.raises(t2v.SettingError, match=r"frames=57 .*N at most 6.*frames=49"):
        validate.check_frames(57, family)


def test_short_wan_videos_fit_a_t4_with_model_offload():
    # One frame: the text encoder's phase (UMT5-XXL on its own) is the peak of model offload, and fits.
    profile = PROFILES["wan"][0]
    mode, reason, predictions = memory.choose_offload(T4_FREE, family=profile, frames=1, height=480, width=832)
    assert mode == "model", reason
    assert predictions[1].peak == memory.weight_bytes(torch.float16, profile)["text_encoder"]
    assert not predictions[0].fits


def test_a_bare_profile_needs_the_video_size():
    with pytest.raises(ValueError, match="frames, height and width"):
        memory.predict("none", family=wan.MEMORY)


@pytest.mark.parametrize("name", ["wan", "cogvideox"])
def test_transformer_coefficients_are_the_committed_calibration(name):
    profile = PROFILES[name][0]
    per_token, per_pixel, per_frame_pixel = memory.calibrate_profile(t2v.measured.load_results("cpu-transformer-memory"), profile, name)
    assert profile.per_token == pytest.approx(per_token, rel=0.01)
    if name == "wan":  # CogVideoX's VAE follows diffusers' published GPU figures instead (test above)
        assert profile.vae(1, 8, 8, True) == pytest.approx((per_pixel + per_frame_pixel) * 64, rel=0.01)
        assert profile.vae(81, 8, 8, True) == pytest.approx((per_pixel + 81 * per_frame_pixel) * 64, rel=0.01)


# --- issue 19: the memory model checks what it is asked about, like every other setting ------------------------

BAD_SIZES = [-16, 0, float("nan"), float("inf"), 16.5, "16", True, None]


@pytest.mark.parametrize("name", ["frames", "height", "width"])
@pytest.mark.parametrize("value", BAD_SIZES[:-1])
def test_predict_refuses_a_count_or_size_that_is_not_a_positive_whole_number(name, value):
    with pytest.raises(t2v.SettingError) as error:
        memory.predict("none", **{name: value})
    assert error.value.name == name and "Try" in str(error.value)
    # The suggested value is itself accepted.
    suggested = error.value.suggestion.split("=", 1)[1]
    assert memory.predict("none", **{name: int(suggested)}).peak > 0


@pytest.mark.parametrize("free", [-1, float("nan"), float("inf"), None, "15 GB", True])
def test_choose_offload_refuses_free_memory_that_is_not_a_number_of_bytes(free):
    with pytest.raises(t2v.SettingError) as error:
        memory.choose_offload(free, frames=16)
    assert error.value.name == "free" and "Try" in str(error.value)


@pytest.mark.parametrize("settings, name", [
    (dict(dtype="cuda"), "dtype"), (dict(dtype=torch.int8), "dtype"), (dict(dtype=16), "dtype"),
    (dict(vae_slicing="yes"), "vae_slicing"), (dict(guidance=2.0), "guidance"),
])
def test_predict_refuses_a_dtype_or_switch_it_cannot_use(settings, name):
    with pytest.raises(t2v.SettingError) as error:
        memory.predict("none", **settings)
    assert error.value.name == name
    with pytest.raises(t2v.SettingError):
        memory.choose_offload(15 * GB, **settings)


def test_predictions_stay_positive_for_every_accepted_setting():
    for frames in (1, 1024):
        for size in (8, 4096):
            prediction = memory.predict("sequential", frames=frames, height=size, width=size)
            assert prediction.activations >= 0 and prediction.peak > 0
