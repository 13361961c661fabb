"""The family descriptions: one file per family, found by what a checkpoint says it is."""

import json
import shutil
import sys
import textwrap

import pytest

import t2v_helpers as t2v
from t2v_helpers import families
from t2v_helpers.errors import BadModelError, SettingError


def test_every_model_name_is_unique_and_found_by_name_and_id():
    seen = {}
    for family in families.families().values():
        assert family.models, family.name
        for model in family.models:
            assert model.name not in seen, f"{model.name} is in {seen.get(model.name)} and {family.name}"
            seen[model.name] = family.name
            assert model.family == family.name
            assert families.find_model(model.name) is model
            assert families.find_model(model.name.upper()) is model
            if not model.tiny:
                assert families.find_model(model.id) is model
    assert families.find_model("no-such-model") is None and families.find_model(None) is None


def test_every_family_has_a_tiny_model_and_its_defaults_obey_its_own_rules():
    for family in families.families().values():
        assert any(m.tiny for m in family.models), f"{family.name} has no tiny model for offline tests"
        assert family.default_scheduler in family.schedulers
        assert set(family.step_limits) <= set(family.schedulers)
        for model in family.models:
            assert family.check_frames(model.frames), model.name
            assert model.height % family.size_multiple == 0 and model.width % family.size_multiple == 0, model.name


@pytest.mark.parametrize("step", [1, 4])
def test_half_frames_keeps_the_family_form(step):
    family = families.Family(**{**vars(families.family_named("modelscope")), "frame_step": step})
    for frames in range(1, 130):
        fewer = family.half_frames(frames)
        assert family.check_frames(fewer) and 1 <= fewer <= max(1, frames // 2)


def test_frames_of_the_wrong_form_are_refused_with_the_nearest_right_count():
    family = families.Family(**{**vars(families.family_named("modelscope")), "frame_step": 4, "name": "toy", "frames_why": "its autoencoder packs 4 frames into one"})
    with pytest.raises(SettingError, match=r"4k\+1 for toy \(its autoencoder packs 4 frames into one\).*frames=81"):
        t2v.validate.check_frames(80, family)
    with pytest.raises(SettingError, match="frames=5"):
        t2v.validate.check_frames(6, family)
    assert t2v.validate.check_frames(9, family) == 9


def test_a_folder_is_told_apart_by_its_model_index(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "VideoToVideoSDPipeline"}))
    assert families.family_of_folder(tmp_path).name == "modelscope"
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert families.family_of_folder(tmp_path) is None
    with pytest.raises(BadModelError, match="StableDiffusionPipeline.*know these pipelines only"):
        t2v.pipeline.check_model(str(tmp_path))


def test_a_repository_that_names_another_class_loads_as_its_family_pipeline(tmp_path):
    # zeroscope_v2_XL's model_index.json names VideoToVideoSDPipeline; text-to-video needs the class named.
    folder = tmp_path / "xl"
    shutil.copytree(t2v.build_tiny_model(), folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "VideoToVideoSDPipeline"}))
    pipe = t2v.load_pipeline(str(folder), verbose=False)
    assert type(pipe).__name__ == "TextToVideoSDPipeline"


TOY = '''
from dataclasses import replace

from t2v_helpers.families import Model
from t2v_helpers.families.modelscope import FAMILY as MODELSCOPE
from t2v_helpers.families.modelscope import _save_tiny_model


def build(folder):
    import json

    _save_tiny_model(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "ToyVideoPipeline"}))


FAMILY = replace(
    MODELSCOPE,
    name="toy",
    pipeline="ToyVideoPipeline",
    classes=("ToyVideoPipeline",),
    models=(Model("tiny-toy", "tiny-toy", "toy", 64, 64, 5, variant="fp16", build=build, version=1),),
    fps=12,
    frame_step=4,
)
'''


def test_a_new_family_is_one_new_file(tmp_path, monkeypatch):
    import diffusers

    (tmp_path / "toy.py").write_text(textwrap.dedent(TOY))
    monkeypatch.setattr(families, "__path__", [*families.__path__, str(tmp_path)])
    # The toy's pipeline class: ModelScope's under another name, as a new diffusers class would be.
    toy_class = type("ToyVideoPipeline", (diffusers.TextToVideoSDPipeline,), {})
    monkeypatch.setattr(diffusers, "ToyVideoPipeline", toy_class, raising=False)
    families.families.cache_clear()
    try:
        assert "toy" in families.families() and families.find_model("tiny-toy").family == "toy"
        pipe = t2v.load_pipeline("tiny-toy", verbose=False)
        assert families.family_of(pipe).name == "toy"
        result = t2v.generate(pipe, "a red fox", steps=2)
        assert result.frames.shape == (5, 64, 64, 3) and result.settings["fps"] == 12
        with pytest.raises(SettingError, match=r"4k\+1"):
            t2v.generate(pipe, "a red fox", steps=2, frames=6)
    finally:
        sys.modules.pop("t2v_helpers.families.toy", None)
        families.families.cache_clear()


def test_a_long_prompt_is_reported_once(capfd):
    import warnings

    pipe = t2v.load_pipeline("tiny", verbose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t2v.generate(pipe, "a red fox running " * 40, steps=1, frames=1, height=64, width=64)
    out, err = capfd.readouterr()
    assert [w.category for w in caught].count(t2v.PromptTooLongWarning) == 1
    assert "truncated" not in out + err


def test_set_scheduler_starts_from_the_shipped_config_even_after_a_hand_made_swap():
    pipe = t2v.load_pipeline("tiny", verbose=False)
    shipped = dict(pipe.scheduler.config)
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, steps_offset=7)
    t2v.set_scheduler(pipe, "ddim")
    assert pipe.scheduler.config.steps_offset == shipped["steps_offset"]


def test_review_findings_core():
    assert families.find_model("wan-ai/WAN2.1-t2v-1.3b-diffusers") is families.find_model("wan")
    pipe = t2v.load_pipeline("tiny-wan", verbose=False)
    with pytest.raises(SettingError, match="guidance=5"):
        t2v.generate(pipe, "a cat", steps=1, guidance="high")
    pipe.text_encoder = None
    with pytest.raises(SettingError, match="no text encoder"):
        t2v.generate(pipe, "a cat", steps=1)


def test_a_folder_without_fp16_files_loads():
    folder = t2v.model_path("tiny-zeroscope-xl")  # zeroscope's layout: float16 weights without a variant suffix
    pipe = t2v.load_pipeline(folder, verbose=False)
    assert type(pipe).__name__ == "TextToVideoSDPipeline"
