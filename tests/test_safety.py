"""Safety: weights load from safetensors only unless pickle is allowed by name, no repository
code runs, and file names made from prompts stay inside the output folder, whatever the prompt."""

import json
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import t2v_helpers as t2v
from t2v_helpers.errors import PickleWeightsError

checks = settings(derandomize=True, database=None, deadline=None)
SETTINGS = dict(steps=2, frames=2, height=16, width=16, seed=0)


@pytest.fixture(scope="module")
def tiny_folder():
    return t2v.build_tiny_model()


@pytest.fixture(scope="module")
def pickled_folder(tiny_folder, tmp_path_factory):
    """The tiny model re-saved with safe_serialization=False: its UNet and VAE become .bin pickles."""
    from diffusers import DiffusionPipeline

    folder = tmp_path_factory.mktemp("pickled")
    pipe = DiffusionPipeline.from_pretrained(tiny_folder, variant="fp16", use_safetensors=True)
    pipe.save_pretrained(folder, safe_serialization=False)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=False, variant="fp16")
    return folder


class Payload:
    """A pickle that creates a file when it is read: what a hostile .bin could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def poison(path, marker):
    path.write_bytes(pickle.dumps(Payload(marker)))
    pickle.loads(path.read_bytes()).close()  # prove that reading it does run code...
    assert Path(marker).exists()
    Path(marker).unlink()  # ...then start clean


# --- pickle weights -----------------------------------------------------------------------------

def test_pickle_only_weights_are_refused_before_anything_is_read(pickled_folder, monkeypatch):
    from diffusers import DiffusionPipeline

    assert list(pickled_folder.rglob("*.bin")), "the re-saved model should hold .bin files"
    opened = []
    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", lambda *a, **k: opened.append(a))
    with pytest.raises(PickleWeightsError) as caught:
        t2v.load_pipeline(str(pickled_folder), verbose=False)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "unet/diffusion_pytorch_model.fp16.bin" in message and "vae/diffusion_pytorch_model.fp16.bin" in message
    assert "allow_pickle=True" in message and "can run any code" in message
    assert opened == [], "from_pretrained was called"


def test_allow_pickle_loads_the_same_model(pickled_folder, tiny_folder):
    pickled = t2v.load_pipeline(str(pickled_folder), verbose=False, allow_pickle=True)
    safe = t2v.load_pipeline(str(tiny_folder), verbose=False)
    np.testing.assert_array_equal(
        t2v.generate(pickled, "a red fox", **SETTINGS).frames, t2v.generate(safe, "a red fox", **SETTINGS).frames
    )


def test_a_hostile_pickle_beside_safetensors_is_never_read(tiny_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "pwned"
    poison(folder / "unet" / "diffusion_pytorch_model.fp16.bin", marker)
    poison(folder / "vae" / "diffusion_pytorch_model.bin", marker)
    pipe = t2v.load_pipeline(str(folder), verbose=False)
    t2v.generate(pipe, "a red fox", **SETTINGS)
    assert not marker.exists(), "a pickle file was read"


def test_a_hostile_pickle_alone_is_refused_and_never_read(tiny_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "pwned"
    poison(folder / "unet" / "diffusion_pytorch_model.fp16.bin", marker)
    with pytest.raises(PickleWeightsError, match="unet/diffusion_pytorch_model.fp16.bin"):
        t2v.load_pipeline(str(folder), verbose=False)
    assert not marker.exists()


def test_loading_asks_for_safetensors_and_never_for_remote_code(tiny_folder, monkeypatch):
    from diffusers import DiffusionPipeline

    real = DiffusionPipeline.from_pretrained.__func__
    asked = []

    def spy(cls, *args, **kwargs):
        asked.append(kwargs)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(spy))
    t2v.load_pipeline("tiny", verbose=False)
    t2v.load_pipeline("tiny", verbose=False, allow_pickle=True)
    assert asked[0]["use_safetensors"] is True and asked[1]["use_safetensors"] is None
    for kwargs in asked:
        assert not {"trust_remote_code", "custom_pipeline", "custom_revision"} & set(kwargs), kwargs


# --- file names from hostile prompts --------------------------------------------------------------

HOSTILE = [
    "../../etc/passwd",
    "/abs/path/video",
    "a/b\\c",
    "..",
    ".",
    "\x00",
    "nul\x00byte",
    "x" * 10_000,
    "日本語のプロンプト",
    "🎉🔥 party",
    "CON",
    "-rf --help",
    "~/outside $HOME `rm -rf /` ; | &",
    "line\nbreak\r\ttab",
    "..\\..\\windows\\system32",
    "é" * 300,
    " .hidden",
    "%2e%2e%2f",
]
NAME = re.compile(r"^[a-z0-9-]+(\.mp4|\.json|\.gif|_frames)$")


def test_slug_of_any_text_is_a_short_safe_name():
    @checks
    @given(st.text())
    def check(text):
        stem = t2v.video.slug(text)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*|video", stem) and len(stem) <= 40

    check()
    for text in HOSTILE:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*|video", t2v.video.slug(text)) and len(t2v.video.slug(text)) <= 40


def save_and_check(prompt, root):
    """Save a video for `prompt` twice into root/out; check every name and that nothing else moved."""
    out = root / "out"
    result = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), prompt, 7)
    first = t2v.save_video(result, out, gif=True, png_frames=True)
    second = t2v.save_video(result, out)
    assert sorted(p.name for p in root.iterdir()) == ["out"], "something was written outside the output folder"
    made = list(out.iterdir())
    assert len(made) == 6, made  # mp4, json, gif, _frames, then mp4 and json under a new name
    for path in made + [first.mp4, second.mp4, second.sidecar]:
        assert path.resolve().parent == out.resolve()
        assert NAME.match(path.name) and len(path.name) <= 80, path.name
    assert first.mp4 != second.mp4
    # Nothing is lost: the sidecar keeps the prompt exactly as typed.
    assert json.loads(first.sidecar.read_text())["prompt"] == prompt


@pytest.mark.parametrize("prompt", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_prompts_make_files_only_inside_the_output_folder(prompt, tmp_path):
    save_and_check(prompt, tmp_path)


@settings(checks, max_examples=25)
@given(st.text(min_size=1, max_size=300))
def test_any_prompt_makes_files_only_inside_the_output_folder(prompt):
    with tempfile.TemporaryDirectory() as root:
        save_and_check(prompt, Path(root))
