"""Loading names the real cause: pickle-only hub weights, a path that is not UTF-8, a folder that is no model (issue 19)."""

from pathlib import Path

import pytest

import t2v_helpers as t2v

ROOT = Path(__file__).resolve().parents[1]

# --- the real cause, named (issue 19 items 13, 22, 24) ----------------------------------------------

# The files of cerspense/zeroscope_v2_576w on the hub's main branch: pickle weights only.
ZEROSCOPE_FILES = [
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/pytorch_model.bin",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.bin",
]


def pickle_only_hub(pretrained_model_name, **kwargs):
    """DiffusionPipeline.download for a repository of .bin weights: diffusers' own check raises its own error."""
    from diffusers.pipelines.pipeline_loading_utils import _get_ignore_patterns

    allow_pickle = kwargs.get("use_safetensors") is not True
    _get_ignore_patterns([], {"unet", "vae", "text_encoder"}, set(ZEROSCOPE_FILES), True, allow_pickle, False, False, False, kwargs.get("variant"))
    raise AssertionError("allow_pickle: the simulated hub has no files to give")


@pytest.mark.parametrize("model", ["zeroscope", "zeroscope-xl"])
def test_a_hub_model_with_pickle_weights_only_names_allow_pickle(model, monkeypatch, capsys):
    from diffusers import DiffusionPipeline

    from t2v_helpers import cli

    monkeypatch.setattr(DiffusionPipeline, "download", classmethod(lambda cls, name, **kwargs: pickle_only_hub(name, **kwargs)))
    with pytest.raises(t2v.PickleWeightsError) as caught:
        t2v.load_pipeline(model, verbose=False)
    message = str(caught.value)
    assert "pickle" in message and "allow_pickle=True" in message and "hub reachable" not in message, message
    assert any(p.name == "diffusion_pytorch_model.bin" for p in caught.value.files)
    with pytest.raises(AssertionError, match="no files to give"):  # with the opt-in, the pickle files would be fetched
        t2v.load_pipeline(model, verbose=False, allow_pickle=True)
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "a cat", "--model", model, "--frames", "1", "--out", str(ROOT / "never-written")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--allow-pickle" in err and "hub reachable" not in err, err


def test_a_model_folder_whose_name_is_not_utf8_is_named_so(tmp_path):
    import os
    import shutil

    folder = Path(os.fsdecode(bytes(tmp_path) + b"/model-\xff"))
    shutil.copytree(t2v.build_tiny_model(), folder)
    with pytest.raises(t2v.errors.BadModelError) as caught:
        t2v.load_pipeline(str(folder), verbose=False)
    message = str(caught.value)
    assert "UTF-8" in message and "Rename" in message and "damaged" not in message, message


@pytest.mark.parametrize("folder", ["/etc", "EMPTY"])
def test_a_folder_that_is_no_model_is_not_called_a_model_to_download_again(folder, tmp_path):
    folder = str(tmp_path) if folder == "EMPTY" else folder
    with pytest.raises(t2v.errors.BadModelError) as caught:
        t2v.pipeline.check_model(folder)
    message = str(caught.value)
    assert "--local-dir" not in message and "holds no diffusers model" in message, message


def test_a_model_folder_missing_only_its_index_is_told_to_download_again(tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(t2v.build_tiny_model(), folder)
    (folder / "model_index.json").unlink()
    with pytest.raises(t2v.errors.BadModelError, match="no model_index.json.*Download the model again"):
        t2v.pipeline.check_model(str(folder))
