import json
import os
import subprocess
import sys
import time

import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file

import t2v_helpers as t2v
from t2v_helpers.tiny import REAL_SCHEDULER_CONFIG


def test_laid_out_like_the_real_repository():
    path = t2v.build_tiny_model()
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "TextToVideoSDPipeline"
    assert index["unet"] == ["diffusers", "UNet3DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"][1] == "CLIPTokenizer"
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    for weights in ("unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model", "text_encoder/model"):
        assert (path / f"{weights}.safetensors").exists()
        fp16 = load_file(path / f"{weights}.fp16.safetensors")
        assert {t.dtype for t in fp16.values()} == {torch.float16}
    scheduler = json.loads((path / "scheduler/scheduler_config.json").read_text())
    assert {k: scheduler[k] for k in REAL_SCHEDULER_CONFIG} == REAL_SCHEDULER_CONFIG


def test_the_articles_call_loads_it():
    pipe = DiffusionPipeline.from_pretrained(t2v.model_path("tiny"), dtype=torch.float16, variant="fp16")
    assert type(pipe).__name__ == "TextToVideoSDPipeline"
    assert pipe.unet.dtype == torch.float16
    assert pipe.tokenizer.model_max_length == 77


def test_build_is_deterministic_and_small(tmp_path):
    first = t2v.build_tiny_model(tmp_path / "a")
    second = t2v.build_tiny_model(tmp_path / "b")
    for name in ("unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.safetensors"):
        a, b = load_file(first / name), load_file(second / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    size = sum(f.stat().st_size for f in first.rglob("*") if f.is_file())
    assert size < 10 * 2**20


def test_cached_copy_is_reused(tmp_path):
    path = t2v.build_tiny_model(tmp_path / "m")
    marker = path / "model_index.json"
    before = marker.stat().st_mtime_ns
    assert t2v.build_tiny_model(tmp_path / "m") == path
    assert marker.stat().st_mtime_ns == before


def test_a_folder_that_is_not_a_tiny_model_is_never_deleted(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="not a tiny model"):
        t2v.build_tiny_model(mine, rebuild=True)
    assert (mine / "notes.txt").read_text() == "my notes"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no half-built copy left beside it


# --- several processes at once ----------------------------------------------------------------

# Each child imports everything first, then waits for the go file, so their builds really overlap.
CHILD = """
import sys, time
from pathlib import Path
import torch
from diffusers import DiffusionPipeline
import t2v_helpers as t2v

target, ready, go, rounds, rebuild = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "rebuild"
ready.touch()
while not go.exists():
    time.sleep(0.01)
for _ in range(rounds):
    path = t2v.build_tiny_model(target, rebuild=rebuild)
    pipe = DiffusionPipeline.from_pretrained(path, dtype=torch.float16, variant="fp16")
    assert len(pipe.tokenizer) == pipe.text_encoder.config.vocab_size
print("loaded", path)
"""


def run_at_once(tmp_path, target, jobs):
    """Start one process per (rounds, mode) in `jobs`; release them together; return their results."""
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = []
    for n, (rounds, mode) in enumerate(jobs):
        ready = tmp_path / f"ready-{n}"
        command = [sys.executable, "-c", CHILD, str(target), str(ready), str(go), str(rounds), mode]
        children.append((ready, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    deadline = time.monotonic() + 300
    while not all(ready.exists() or child.poll() is not None for ready, child in children):
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.05)
    go.touch()
    return [child.communicate(timeout=600) + (child.returncode,) for _, child in children]


def test_processes_building_into_an_empty_cache_at_once_all_load_the_model(tmp_path):
    target = tmp_path / "cache" / "tiny"
    for out, err, code in run_at_once(tmp_path, target, [(1, "build")] * 3):
        assert code == 0 and f"loaded {target}" in out, err[-3000:]
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]  # no staging folder or lock left


def test_a_rebuild_never_pulls_the_folder_from_under_a_reader(tmp_path):
    target = tmp_path / "tiny"
    t2v.build_tiny_model(target)
    for out, err, code in run_at_once(tmp_path, target, [(6, "build"), (3, "rebuild")]):
        assert code == 0 and f"loaded {target}" in out, err[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
