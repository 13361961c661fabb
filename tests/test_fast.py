"""Few-step mode: the tiny MCM-style LoRA, merging, undoing, the LCM scheduler, warnings and compilation."""

import json
import warnings

import numpy as np
import pytest
import torch

import t2v_helpers as t2v
from t2v_helpers import fast
from t2v_helpers.errors import BadModelError

SMALL = dict(frames=4, height=32, width=32, seed=3)


@pytest.fixture
def fresh_pipe():
    """A pipeline of its own: make_fast changes weights, which no other test should see.

    In float32, whatever this CPU would choose: the tests compare outputs to a tolerance and feed float32 inputs.
    """
    pipe = t2v.load_pipeline("tiny", dtype=torch.float32, verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_tiny_lora_is_laid_out_like_the_hub_repository(tmp_path):
    root = fast.build_tiny_lora(tmp_path / "lora")
    for style in fast.MCM_STYLES:
        assert {p.name for p in (root / style).iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    config = json.loads((root / "modelscopet2v-webvid" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"


def test_the_lora_adapts_exactly_mcms_layers(fresh_pipe):
    from peft import PeftModel

    expected = fast.mcm_target_modules(fresh_pipe.unet)
    assert any(n.endswith("attn1.to_q") for n in expected) and any(n.endswith("resnets.0.conv1") for n in expected)
    assert any(n.endswith("time_emb_proj") for n in expected) and any("temp_attentions" in n for n in expected)
    assert not any("temp_convs" in n for n in expected), "3D temporal convolutions are left out, as MCM does"
    wrapped = PeftModel.from_pretrained(fresh_pipe.unet, str(fast.build_tiny_lora()), subfolder=fast.MCM_STYLES[0])
    adapted = sorted(name.removeprefix("base_model.model.") for name, module in wrapped.named_modules() if hasattr(module, "lora_A"))
    assert adapted == sorted(expected)


def test_tiny_lora_is_deterministic_and_never_replaces_a_foreign_folder(tmp_path):
    first = fast.build_tiny_lora(tmp_path / "a")
    second = fast.build_tiny_lora(tmp_path / "b")
    name = "modelscopet2v-anime/adapter_model.safetensors"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="choose another path"):
        fast.build_tiny_lora(mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_make_fast_merges_into_a_plain_unet_and_changes_the_output(fresh_pipe, capsys):
    before = t2v.generate(fresh_pipe, "a cat", steps=2, guidance=1.0, **SMALL).frames
    unet_class = type(fresh_pipe.unet)
    mode = fast.make_fast(fresh_pipe)
    assert "modelscopet2v-webvid" in capsys.readouterr().out
    assert type(fresh_pipe.unet) is unet_class
    assert not any("lora" in name for name, _ in fresh_pipe.unet.named_modules())
    assert type(fresh_pipe.scheduler).__name__ == "LCMScheduler"
    assert fresh_pipe.scheduler.config.timestep_scaling == 4.0
    assert mode.settings == {"steps": 4, "guidance": 1.0}
    with t2v.count_unet_calls(fresh_pipe) as counter:
        after = t2v.generate(fresh_pipe, "a cat", **mode.settings, **SMALL)
    assert (counter.calls, counter.batch) == (4, 1)
    assert np.isfinite(after.frames).all()
    assert not np.allclose(before, after.frames)
    assert after.settings["scheduler"] == "lcm"


def test_the_lora_itself_changes_the_unet(fresh_pipe):
    sample = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = fresh_pipe.unet(sample, 500, encoder_hidden_states=text).sample
        fast.make_fast(fresh_pipe, verbose=False)
        merged = fresh_pipe.unet(sample, 500, encoder_hidden_states=text).sample
    assert torch.isfinite(merged).all() and not torch.allclose(plain, merged)


def test_undo_restores_the_exact_weights_and_scheduler(fresh_pipe):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    scheduler = fresh_pipe.scheduler
    fast.make_fast(fresh_pipe, "modelscopet2v-anime", verbose=False)
    assert any(not torch.equal(weights[k], v) for k, v in fresh_pipe.unet.state_dict().items())
    fast.undo_fast(fresh_pipe, verbose=False)
    assert all(torch.equal(weights[k], v) for k, v in fresh_pipe.unet.state_dict().items())
    assert fresh_pipe.scheduler is scheduler
    with pytest.raises(ValueError, match="nothing to undo"):
        fast.undo_fast(fresh_pipe)


def test_applying_twice_is_refused_and_leaves_the_pipeline_as_it_was(fresh_pipe):
    fast.make_fast(fresh_pipe, verbose=False)
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    with pytest.raises(ValueError, match="already in few-step mode.*undo_fast"):
        fast.make_fast(fresh_pipe, "modelscopet2v-real")
    assert all(torch.equal(weights[k], v) for k, v in fresh_pipe.unet.state_dict().items())


def test_styles_differ_and_a_wrong_style_names_the_closest(fresh_pipe):
    with pytest.raises(ValueError, match="style='modelscopet2v-anime'"):
        fast.make_fast(fresh_pipe, "modelscope-anime")
    assert not getattr(fresh_pipe, "t2v_fast", None)
    root = fast.build_tiny_lora()
    a = (root / "modelscopet2v-webvid" / "adapter_model.safetensors").read_bytes()
    assert a != (root / "modelscopet2v-real" / "adapter_model.safetensors").read_bytes()


def test_real_lora_offline_and_not_cached_says_what_to_do(fresh_pipe, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    with pytest.raises(t2v.ModelNotAvailableError, match="yhzhai/mcm.*HF_HUB_OFFLINE"):
        fast.make_fast(fresh_pipe, source=fast.MCM_REPO)
    assert not getattr(fresh_pipe, "t2v_fast", None)
    assert type(fresh_pipe.scheduler).__name__ == "DDIMScheduler"
    assert all(torch.equal(weights[k], v) for k, v in fresh_pipe.unet.state_dict().items())


def _fast_warnings(pipe, **settings):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t2v.generate(pipe, "a cat", **{**SMALL, **settings})
    return [str(w.message) for w in caught if issubclass(w.category, fast.FastSettingWarning)]


def test_settings_that_do_not_fit_the_distilled_model_warn(fresh_pipe):
    fast.make_fast(fresh_pipe, verbose=False)
    assert _fast_warnings(fresh_pipe, steps=4, guidance=1.0) == []
    (message,) = _fast_warnings(fresh_pipe, steps=2, guidance=9.0)
    assert "guidance=9" in message and "distilled" in message and "guidance=1" in message
    (message,) = _fast_warnings(fresh_pipe, steps=t2v.schedulers.MAX_FAST_STEPS + 1, guidance=1.0)
    assert f"steps={t2v.schedulers.MAX_FAST_STEPS + 1}" in message and "1 to 4 steps" in message
    (message,) = _fast_warnings(fresh_pipe, steps=2, guidance=1.0, negative_prompt="blurry")
    assert "negative_prompt is ignored" in message


def test_the_lcm_scheduler_without_the_lora_still_warns_about_too_many_steps(fresh_pipe):
    t2v.set_scheduler(fresh_pipe, "lcm")  # the scheduler alone: the check lives with it, not with the LoRA
    assert not getattr(fresh_pipe, "t2v_fast", None)
    (message,) = _fast_warnings(fresh_pipe, steps=t2v.schedulers.MAX_FAST_STEPS + 1, guidance=1.0)
    assert f"steps={t2v.schedulers.MAX_FAST_STEPS + 1}" in message and "1 to 4 steps" in message
    assert _fast_warnings(fresh_pipe, steps=t2v.schedulers.MAX_FAST_STEPS, guidance=1.0) == []


def test_compiled_unet_gives_the_same_frames(fresh_pipe):
    fast.make_fast(fresh_pipe, verbose=False)
    eager = t2v.generate(fresh_pipe, "a cat", steps=2, guidance=1.0, **SMALL).frames
    fast.compile_unet(fresh_pipe)
    with t2v.count_unet_calls(fresh_pipe) as counter:
        compiled = t2v.generate(fresh_pipe, "a cat", steps=2, guidance=1.0, **SMALL).frames
    assert counter.calls == 2
    np.testing.assert_allclose(compiled, eager, atol=1e-3)


def test_diffusers_own_lora_loader_does_not_reach_this_unet(fresh_pipe):
    """Why the lesson uses peft directly: UNet3DConditionModel has no load_lora_adapter in diffusers 0.42.1."""
    with pytest.raises(AttributeError, match="load_lora_adapter"):
        fresh_pipe.load_lora_weights(str(fast.build_tiny_lora()), subfolder=fast.MCM_STYLES[0], weight_name="adapter_model.safetensors")


def test_scheduler_menu_switches_the_lora_on_and_off(fresh_pipe):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    assert fast.switch_scheduler(fresh_pipe, "lcm").style == fast.MCM_STYLES[0]
    assert fast.switch_scheduler(fresh_pipe, "lcm").style == fast.MCM_STYLES[0]  # already on: no second merge
    assert fast.switch_scheduler(fresh_pipe, "dpm") is None
    assert t2v.scheduler_name(fresh_pipe) == "dpm"
    assert all(torch.equal(weights[k], v) for k, v in fresh_pipe.unet.state_dict().items())


def test_command_line_fast_mode_uses_the_lora_steps_and_guidance(tmp_path):
    from t2v_helpers import cli

    cli.main(["generate", "a cat", "--model", "tiny", "--fast", "--frames", "2", "--out", str(tmp_path)])
    (sidecar,) = tmp_path.glob("*.json")
    settings = json.loads(sidecar.read_text())["settings"]
    assert (settings["scheduler"], settings["steps"], settings["guidance"]) == ("lcm", 4, 1.0)


def test_command_line_refuses_an_unknown_style_before_loading(capsys, tmp_path):
    from t2v_helpers import cli

    with pytest.raises(SystemExit):
        cli.main(["generate", "a cat", "--model", "tiny", "--fast", "anime", "--out", str(tmp_path)])
    assert "style='anime' is not an MCM LoRA style" in capsys.readouterr().err


def test_studio_scheduler_menu_reaches_few_step_mode(fresh_pipe, tmp_path):
    studio = t2v.Studio(fresh_pipe, tmp_path / "outputs", steps=2, frames=2, height=32, width=32, seed=0)
    studio.scheduler.value = "lcm"
    assert (studio.steps.value, studio.guidance.value) == (4, 1.0)
    studio.make_video()
    assert studio.last_error is None and fresh_pipe.t2v_fast.style == t2v.MCM_STYLES[0]
    studio.load({"steps": 3, "scheduler": "lcm"})
    assert studio.steps.value == 3, "a loaded history entry keeps its own steps"
    studio.load({"scheduler": "dpm", "steps": 2})
    studio.make_video()
    assert not fresh_pipe.t2v_fast and t2v.scheduler_name(fresh_pipe) == "dpm"


def test_committed_full_size_results_compare_dpm_25_with_lcm_4():
    results = t2v.measured.load_results("cpu-fast-full")
    runs = results["runs"]
    assert [(r["scheduler"], r["compile"]) for r in runs] == [("dpm", False), ("lcm", False), ("dpm", True), ("lcm", True)]
    dpm, lcm = runs[:2]
    assert "error" not in dpm and "error" not in lcm, (dpm, lcm)
    assert (dpm["unet_evaluations_per_video"], lcm["unet_evaluations_per_video"]) == (50, 4)
    assert all(r["model"] == "full" and r["load_before"] is not None for r in runs)
    assert t2v.measured.markdown_fast(results) == (t2v.measured.RESULTS_DIR / "cpu-fast-full.md").read_text()


# --- a damaged or unusual LoRA -------------------------------------------------------------------

def damaged_lora(tmp_path):
    """A copy of the tiny LoRA whose first style's weights are cut to half, as by a download cut short."""
    import shutil

    root = tmp_path / "lora"
    shutil.copytree(fast.build_tiny_lora(), root)
    weights = root / fast.MCM_STYLES[0] / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return root


def assert_same_unet(pipe, weights, unet_class):
    state = pipe.unet.state_dict()
    assert type(pipe.unet) is unet_class and state.keys() == weights.keys()
    assert all(torch.equal(weights[k], v) for k, v in state.items())


def test_a_damaged_lora_is_a_clear_error_and_leaves_the_unet_as_it_was(fresh_pipe, tmp_path):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    unet_class = type(fresh_pipe.unet)
    root = damaged_lora(tmp_path)
    with pytest.raises(BadModelError, match=f"{root / fast.MCM_STYLES[0]}.*damaged.*Delete"):
        fast.make_fast(fresh_pipe, source=str(root))
    assert_same_unet(fresh_pipe, weights, unet_class)
    assert not getattr(fresh_pipe, "t2v_fast", None) and type(fresh_pipe.scheduler).__name__ == "DDIMScheduler"
    fast.make_fast(fresh_pipe, verbose=False)
    fast.undo_fast(fresh_pipe, verbose=False)
    assert_same_unet(fresh_pipe, weights, unet_class)


def test_a_merge_stopped_part_way_restores_the_unet(fresh_pipe, monkeypatch):
    from peft.tuners.lora import layer

    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    unet_class = type(fresh_pipe.unet)
    merged = []

    def stop_after_ten(original):
        def merge(self, *args, **kwargs):
            if len(merged) == 10:
                raise KeyboardInterrupt  # Ctrl-C half-way through the merge
            merged.append(self)
            return original(self, *args, **kwargs)

        return merge

    for cls in (layer.Linear, layer.Conv2d):
        monkeypatch.setattr(cls, "merge", stop_after_ten(cls.merge))
    with pytest.raises(KeyboardInterrupt):
        fast.make_fast(fresh_pipe, verbose=False)
    assert len(merged) == 10
    assert_same_unet(fresh_pipe, weights, unet_class)


def test_undo_is_complete_for_an_adapter_on_layers_outside_mcms_rule(fresh_pipe, tmp_path):
    from peft import LoraConfig, get_peft_model

    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    unet_class = type(fresh_pipe.unet)
    other = fresh_pipe.unet.__class__.from_pretrained(t2v.build_tiny_model() / "unet")
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["conv_in", "time_embedding.linear_1", "to_q"], init_lora_weights=False)
    torch.manual_seed(0)
    get_peft_model(other, config).save_pretrained(tmp_path / "other" / fast.MCM_STYLES[0])
    mode = fast.make_fast(fresh_pipe, source=str(tmp_path / "other"), verbose=False)
    assert not torch.equal(fresh_pipe.unet.state_dict()["conv_in.weight"], weights["conv_in.weight"])
    assert mode.layers == 2 + sum(name.endswith("to_q") for name, _ in fresh_pipe.unet.named_modules())
    fast.undo_fast(fresh_pipe, verbose=False)
    assert_same_unet(fresh_pipe, weights, unet_class)


def test_the_command_line_with_a_damaged_cached_lora_is_one_paragraph_exit_2(tmp_path, monkeypatch, capsys):
    from t2v_helpers import cli

    root = damaged_lora(tmp_path)
    monkeypatch.setattr(fast, "build_tiny_lora", lambda: root)
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", "tiny", "--fast", "--frames", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "damaged" in err and "--fast: " in err and "--model" not in err


# --- several processes building the tiny LoRA -----------------------------------------------------

BUILDER = """
import sys, time
from pathlib import Path
from safetensors.torch import load_file
from t2v_helpers import fast

target, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
root = fast.build_tiny_lora(target)
for style in fast.MCM_STYLES:
    load_file(root / style / "adapter_model.safetensors")
print("complete", root)
"""


def test_processes_building_the_tiny_lora_at_once_all_end_with_a_complete_one(tmp_path):
    import os
    import subprocess
    import sys
    import time

    target, go = tmp_path / "cache" / "lora", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, "-c", BUILDER, str(target), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    time.sleep(3)  # let them import torch and peft, so that their builds overlap
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0 and f"complete {target}" in out, err[-3000:]
    assert sorted(p.name for p in target.parent.iterdir()) == ["lora"]  # no staging folder or lock left


def test_a_rebuild_of_the_tiny_lora_never_leaves_a_file_missing(tmp_path):
    import threading

    root = fast.build_tiny_lora(tmp_path / "lora")
    files = [root / style / name for style in fast.MCM_STYLES for name in ("adapter_config.json", "adapter_model.safetensors")]
    gaps, done = [], threading.Event()

    def watch():
        while not done.is_set():
            gaps.extend(f for f in files if not f.exists())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(2):
            assert fast.build_tiny_lora(root, rebuild=True) == root
    finally:
        done.set()
        watcher.join()
    assert gaps == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora"]


def test_a_killed_lora_build_leaves_nothing_behind_after_the_next_build(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "lora"
    child = subprocess.Popen([sys.executable, "-c", BUILDER, str(target), str(tmp_path)])
    deadline = time.monotonic() + 300
    while not any(p.is_dir() and p.name.startswith(".") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and child.poll() is None, "the build did not start"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    fast.build_tiny_lora(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora"]


# --- adapters that touch more than their LoRA layers; pickle adapters (issue 19, items 2, 3, 16) ---

def save_adapter(folder, seed=0, pickle=False, **config):
    """An adapter for the tiny UNet saved by peft itself, with every trainable tensor moved off its start."""
    from diffusers import UNet3DConditionModel
    from peft import LoraConfig, get_peft_model

    unet = UNet3DConditionModel.from_pretrained(t2v.build_tiny_model() / "unet")
    settings = dict(r=2, lora_alpha=2, target_modules=fast.mcm_target_modules(unet), init_lora_weights=False)
    torch.manual_seed(seed)
    model = get_peft_model(unet, fast_config(**{**settings, **config}))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and "lora_" not in name:  # biases, modules_to_save: what a training run changes
                parameter.add_(0.1)
    model.save_pretrained(folder / fast.MCM_STYLES[0], safe_serialization=not pickle)
    return folder


def fast_config(**settings):
    from peft import LoraConfig

    return LoraConfig(**settings)


def video(pipe):
    return t2v.generate(pipe, "a cat", steps=2, guidance=1.0, **SMALL).frames


UNUSUAL_ADAPTERS = {
    "modules_to_save": dict(modules_to_save=["conv_in"]),
    "bias_all": dict(bias="all"),
    "bias_all_lora_bias": dict(bias="all", lora_bias=True),
}


@pytest.mark.parametrize("kind", UNUSUAL_ADAPTERS)
def test_undo_and_a_failed_make_fast_leave_the_unet_exactly_as_it_was(fresh_pipe, tmp_path, kind):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    unet_class = type(fresh_pipe.unet)
    before = video(fresh_pipe)
    source = save_adapter(tmp_path / kind, **UNUSUAL_ADAPTERS[kind])
    try:
        fast.make_fast(fresh_pipe, source=str(source), verbose=False)
    except BadModelError as error:  # refused with a clear message: allowed, if the UNet is untouched
        assert "left as it was" in str(error)
    else:
        fast.undo_fast(fresh_pipe, verbose=False)
    assert_same_unet(fresh_pipe, weights, unet_class)
    assert np.array_equal(video(fresh_pipe), before), "the same seed after undo must give the same video, bit for bit"


def test_pickle_only_adapter_is_refused_before_peft_reads_anything(fresh_pipe, tmp_path, monkeypatch):
    source = save_adapter(tmp_path / "pickled", pickle=True)
    assert (source / fast.MCM_STYLES[0] / "adapter_model.bin").is_file()
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickle was read without allow_pickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(t2v.PickleWeightsError, match="adapter_model.bin.*allow_pickle=True.*--allow-pickle"):
        fast.make_fast(fresh_pipe, source=str(source))
    assert_same_unet(fresh_pipe, weights, type(fresh_pipe.unet))
    assert not getattr(fresh_pipe, "t2v_fast", None) and type(fresh_pipe.scheduler).__name__ == "DDIMScheduler"
    monkeypatch.undo()
    mode = fast.make_fast(fresh_pipe, source=str(source), allow_pickle=True, verbose=False)
    assert mode.layers == len(fast.mcm_target_modules(fresh_pipe.unet))


class Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("touch HOSTILE_PICKLE_RAN",))


def test_a_hostile_pickle_adapter_is_a_clear_error_even_when_pickle_is_allowed(fresh_pipe, tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    source = save_adapter(tmp_path / "hostile", pickle=True)
    with open(source / fast.MCM_STYLES[0] / "adapter_model.bin", "wb") as file:
        pickle.dump({"x": Hostile()}, file)
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    with pytest.raises(BadModelError) as caught:
        fast.make_fast(fresh_pipe, source=str(source), allow_pickle=True)
    message = str(caught.value)
    assert "weights-only" in message and "weights_only=False" not in message and "left as it was" in message
    assert not (tmp_path / "HOSTILE_PICKLE_RAN").exists()
    assert_same_unet(fresh_pipe, weights, type(fresh_pipe.unet))


def test_a_hub_adapter_with_only_pickle_weights_is_refused_without_downloading_them(fresh_pipe, monkeypatch, tmp_path):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    asked = []
    config = tmp_path / "snapshots" / "abc" / fast.MCM_STYLES[0] / "adapter_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"peft_type": "LORA"}))

    def download(repo, filename, subfolder=None, **kwargs):  # the hub's answer for a repository with adapter_model.bin only
        asked.append(filename)
        if filename == "adapter_config.json":
            return str(config)
        url = f"https://huggingface.co/{repo}/resolve/main/{subfolder}/{filename}"
        raise RemoteEntryNotFoundError(f"404 for {url}", response=httpx.Response(404, request=httpx.Request("HEAD", url)))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(t2v.PickleWeightsError, match="yhzhai/mcm.*allow_pickle=True"):
        fast.make_fast(fresh_pipe, source=fast.MCM_REPO)
    assert "adapter_model.bin" not in asked


def damaged_config_lora(tmp_path, change):
    import shutil

    root = tmp_path / "lora"
    shutil.copytree(fast.build_tiny_lora(), root)
    path = root / fast.MCM_STYLES[0] / "adapter_config.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return root


DAMAGED_CONFIGS = {
    "rank_mismatch": lambda c: {**c, "r": c["r"] * 2},
    "unknown_peft_type": lambda c: {**c, "peft_type": "NOT_A_TYPE"},
    "another_adapter_type": lambda c: {**c, "peft_type": "IA3"},
    "not_a_table": lambda c: [1, 2],
}


@pytest.mark.parametrize("damage", DAMAGED_CONFIGS)
def test_a_damaged_adapter_config_is_a_clear_error(fresh_pipe, tmp_path, damage):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    root = damaged_config_lora(tmp_path, DAMAGED_CONFIGS[damage])
    with pytest.raises(BadModelError, match=str(root / fast.MCM_STYLES[0])):
        fast.make_fast(fresh_pipe, source=str(root))
    assert_same_unet(fresh_pipe, weights, type(fresh_pipe.unet))


@pytest.mark.parametrize("damage", ["rank_mismatch", "unknown_peft_type"])
def test_the_command_line_with_a_damaged_cached_lora_config_is_one_paragraph_exit_2(tmp_path, monkeypatch, capsys, damage):
    from t2v_helpers import cli

    root = damaged_config_lora(tmp_path, DAMAGED_CONFIGS[damage])
    monkeypatch.setattr(fast, "build_tiny_lora", lambda: root)
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", "tiny", "--fast", "--frames", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "--fast: " in err


def test_the_command_line_refuses_a_pickle_adapter_and_allow_pickle_loads_it(tmp_path, monkeypatch, capsys):
    from t2v_helpers import cli

    source = save_adapter(tmp_path / "pickled", pickle=True)
    monkeypatch.setattr(fast, "build_tiny_lora", lambda: source)
    args = ["generate", "a cat", "--model", "tiny", "--fast", "--frames", "2", "--steps", "1"]
    with pytest.raises(SystemExit) as stop:
        cli.main([*args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--allow-pickle" in err and "Traceback" not in err, err
    assert cli.main([*args, "--allow-pickle", "--out", str(tmp_path / "out")]) == 0


# --- sidecars, styles, the comparison, the command line, zeroscope (issue 19 items 8, 11, 23; issue 20 item 6) ---

def test_the_sidecar_records_the_merged_lora_and_two_styles_differ(fresh_pipe, tmp_path):
    fast.make_fast(fresh_pipe, "modelscopet2v-anime", verbose=False)
    anime = t2v.save_video(t2v.generate(fresh_pipe, "a cat", steps=1, guidance=1.0, **SMALL), tmp_path)
    fast.undo_fast(fresh_pipe, verbose=False)
    fast.make_fast(fresh_pipe, "modelscopet2v-real", verbose=False)
    real = t2v.save_video(t2v.generate(fresh_pipe, "a cat", steps=1, guidance=1.0, **SMALL), tmp_path)
    fast.undo_fast(fresh_pipe, verbose=False)
    plain = t2v.save_video(t2v.generate(fresh_pipe, "a cat", steps=1, guidance=1.0, **SMALL), tmp_path)
    recorded = [json.loads(saved.sidecar.read_text())["settings"] for saved in (anime, real, plain)]
    assert recorded[0]["lora"] == {"style": "modelscopet2v-anime", "source": str(fast.build_tiny_lora()), "merged": True}
    assert recorded[1]["lora"]["style"] == "modelscopet2v-real"
    assert "lora" not in recorded[2]


def test_a_merged_lora_under_another_scheduler_warns_and_is_recorded(fresh_pipe):
    fast.make_fast(fresh_pipe, verbose=False)
    t2v.set_scheduler(fresh_pipe, "dpm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = t2v.generate(fresh_pipe, "a cat", steps=1, guidance=1.0, **SMALL)
    messages = [str(w.message) for w in caught if issubclass(w.category, fast.FastSettingWarning)]
    assert any("still merged" in m and "'dpm'" in m for m in messages), messages
    assert (result.settings["scheduler"], result.settings["lora"]["style"]) == ("dpm", fast.MCM_STYLES[0])


def test_asking_for_another_style_while_one_is_merged_switches_to_it(fresh_pipe):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    fast.switch_scheduler(fresh_pipe, "lcm", "modelscopet2v-webvid")
    webvid = video(fresh_pipe)
    assert fast.switch_scheduler(fresh_pipe, "lcm", "modelscopet2v-anime").style == "modelscopet2v-anime"
    anime = video(fresh_pipe)
    fast.undo_fast(fresh_pipe, verbose=False)
    fast.make_fast(fresh_pipe, "modelscopet2v-anime", verbose=False)
    assert np.array_equal(video(fresh_pipe), anime) and not np.array_equal(webvid, anime)
    fast.undo_fast(fresh_pipe, verbose=False)
    assert_same_unet(fresh_pipe, weights, type(fresh_pipe.unet))


def test_compare_schedulers_runs_lcm_only_with_the_lora_and_puts_everything_back(fresh_pipe):
    weights = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    scheduler = fresh_pipe.scheduler
    comparison = t2v.compare_schedulers(fresh_pipe, "a cat", [("dpm", 1), ("lcm", 1)], warmup=False, **{k: SMALL[k] for k in ("frames", "height", "width")})
    dpm, lcm = comparison.results
    assert "lora" not in dpm.settings and lcm.settings["lora"]["style"] == fast.MCM_STYLES[0]
    assert not getattr(fresh_pipe, "t2v_fast", None) and fresh_pipe.scheduler is scheduler
    assert_same_unet(fresh_pipe, weights, type(fresh_pipe.unet))


def test_compare_schedulers_on_a_few_step_pipeline_leaves_it_in_few_step_mode(fresh_pipe):
    mode = fast.make_fast(fresh_pipe, "modelscopet2v-anime", verbose=False)
    merged = {k: v.clone() for k, v in fresh_pipe.unet.state_dict().items()}
    comparison = t2v.compare_schedulers(fresh_pipe, "a cat", [("dpm", 1), ("lcm", 1)], warmup=False, **{k: SMALL[k] for k in ("frames", "height", "width")})
    assert "lora" not in comparison.results[0].settings, "dpm runs the plain UNet, as switch_scheduler does"
    assert fresh_pipe.t2v_fast.style == "modelscopet2v-anime" and t2v.scheduler_name(fresh_pipe) == "lcm"
    assert_same_unet(fresh_pipe, merged, type(fresh_pipe.unet))
    fast.undo_fast(fresh_pipe, verbose=False)
    assert fresh_pipe.scheduler is mode.previous_scheduler


@pytest.mark.parametrize("args, expected", [
    (["--fast", ""], "style='' is empty"),
    (["--fast", "  "], "style='  ' is empty"),
    (["--fast", "--scheduler", "dpm"], "--scheduler='dpm' conflicts with --fast"),
    (["--fast", "modelscopet2v-anime", "--scheduler", "ddim"], "--scheduler='ddim' conflicts with --fast"),
])
def test_the_command_line_refuses_an_empty_or_conflicting_fast_option(args, expected, tmp_path, monkeypatch, capsys):
    from t2v_helpers import cli

    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", "tiny", *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and expected in err and "Traceback" not in err, err


def test_fast_with_the_lcm_scheduler_named_is_not_a_conflict(tmp_path):
    from t2v_helpers import cli

    assert cli.main(["generate", "a cat", "--model", "tiny", "--fast", "--scheduler", "lcm", "--frames", "2", "--steps", "1", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("model", ["zeroscope", "cerspense/zeroscope_v2_576w", "zeroscope-xl", "tiny-zeroscope-xl"])
def test_few_step_mode_is_refused_for_zeroscope_with_the_reason(model, tmp_path, monkeypatch, capsys):
    from t2v_helpers import cli

    with pytest.raises(t2v.SettingError, match="256x256.*16 frames"):
        fast.check_fast_family(t2v.families.family_named("modelscope"), model)
    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", model, "--fast", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "distilled" in err and "Traceback" not in err, err


def test_make_fast_refuses_a_pipeline_loaded_as_zeroscope(fresh_pipe):
    fresh_pipe.t2v_model_id = "zeroscope"  # the tiny UNet standing in for zeroscope's: the check reads the model's name
    with pytest.raises(t2v.SettingError, match="zeroscope"):
        fast.make_fast(fresh_pipe)
    assert not getattr(fresh_pipe, "t2v_fast", None)


def test_the_pinned_peft_adapts_3d_convolutions_and_the_helpers_do_not_say_otherwise():
    """MCM left the temporal Conv3d layers out because LoRA did not support them then (its main.py); peft does now."""
    from pathlib import Path

    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import layer

    model = get_peft_model(torch.nn.Sequential(torch.nn.Conv3d(2, 2, (3, 1, 1))), LoraConfig(r=1, target_modules=["0"]))
    assert isinstance(model.base_model.model[0], layer.Conv3d)
    root = Path(fast.__file__).resolve().parents[1]
    for path in [Path(fast.__file__), root / "README.md"]:
        assert "cannot adapt" not in path.read_text(), path


def test_a_fifo_in_place_of_the_adapter_weights_is_refused_without_blocking(fresh_pipe, tmp_path):
    import os
    import shutil

    root = tmp_path / "lora"
    shutil.copytree(fast.build_tiny_lora(), root)
    weights = root / fast.MCM_STYLES[0] / "adapter_model.safetensors"
    weights.unlink()
    os.mkfifo(weights)
    with pytest.raises(BadModelError, match="not a regular file"):
        fast.make_fast(fresh_pipe, source=str(root))
