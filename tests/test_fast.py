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
    (message,) = _fast_warnings(fresh_pipe, steps=fast.MAX_FAST_STEPS + 1, guidance=1.0)
    assert f"steps={fast.MAX_FAST_STEPS + 1}" in message and "1 to 4 steps" in message
    (message,) = _fast_warnings(fresh_pipe, steps=2, guidance=1.0, negative_prompt="blurry")
    assert "negative_prompt is ignored" in message


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
    results = t2v.bench.load_results("cpu-fast-full")
    runs = results["runs"]
    assert [(r["scheduler"], r["compile"]) for r in runs] == [("dpm", False), ("lcm", False), ("dpm", True), ("lcm", True)]
    dpm, lcm = runs[:2]
    assert "error" not in dpm and "error" not in lcm, (dpm, lcm)
    assert (dpm["unet_evaluations_per_video"], lcm["unet_evaluations_per_video"]) == (50, 4)
    assert all(r["model"] == "full" and r["load_before"] is not None for r in runs)
    assert t2v.bench.markdown_fast(results) == (t2v.bench.RESULTS_DIR / "cpu-fast-full.md").read_text()


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
