import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file

import t2v_helpers as t2v
from t2v_helpers.families.modelscope import REAL_SCHEDULER_CONFIG


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
    # Most of it is the real 49,408-token vocabulary: tokenizer.json and the 49,408 x 32 embedding table.
    assert size < 20 * 2**20


# Token ids of OpenAI's CLIP tokenizer, as published in CLIP's own examples and tokenizer fixtures.
REAL_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of a dog": [49406, 320, 1125, 539, 320, 1929, 49407],
    "dog on a beach": [49406, 1929, 525, 320, 2117, 49407],
    "sunset over mountains": [49406, 3424, 962, 5873, 49407],
    "person working at a computer": [49406, 2533, 1699, 536, 320, 11639, 652, 49407],
}


@pytest.fixture(scope="module")
def tokenizer():
    return DiffusionPipeline.from_pretrained(t2v.model_path("tiny")).tokenizer


def test_the_tokenizer_is_the_real_clip_tokenizer(tokenizer):
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|startoftext|>", 49406)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|endoftext|>", 49407)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("!", 0)
    for prompt, ids in REAL_IDS.items():
        assert tokenizer(prompt).input_ids == ids, prompt


def test_the_articles_prompt_is_three_words_long(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Spiderman is surfing").input_ids)
    assert tokens == ["<|startoftext|>", "spiderman</w>", "is</w>", "surfing</w>", "<|endoftext|>"]


def test_the_77_token_limit_falls_where_it_does_for_the_real_model(tokenizer):
    from t2v_helpers.errors import PromptTooLongWarning
    from t2v_helpers.validate import check_prompt

    fits = " ".join(["a photo of a cat"] * 15)  # 75 tokens, and the start and end tokens: 77
    assert len(tokenizer(fits).input_ids) == 77
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_prompt(fits, tokenizer=tokenizer)
        check_prompt("Spiderman is surfing", tokenizer=tokenizer)
        check_prompt("A cinematic shot of an astronaut riding a horse on the moon, highly detailed, 4k", tokenizer=tokenizer)
    with pytest.warns(PromptTooLongWarning, match="is 78 tokens long.*ignored: 'cat'"):
        check_prompt(fits + " cat", tokenizer=tokenizer)


def test_the_text_encoder_reads_every_token_id(tokenizer):
    config = json.loads((t2v.build_tiny_model() / "text_encoder/config.json").read_text())
    assert config["vocab_size"] == len(tokenizer) and config["hidden_size"] == 32
    assert config["max_position_embeddings"] == tokenizer.model_max_length


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


def test_a_rebuild_never_leaves_the_folder_missing_or_half_built(tmp_path):
    target = t2v.build_tiny_model(tmp_path / "tiny")
    reading = (target / "unet/config.json").open()  # a reader part-way through loading the old model
    parts = ["model_index.json", "unet/diffusion_pytorch_model.fp16.safetensors", "tokenizer/tokenizer.json"]
    gaps, done = [], threading.Event()

    def watch():
        while not done.is_set():
            gaps.extend(part for part in parts if not (target / part).exists())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            assert t2v.build_tiny_model(target, rebuild=True) == target
    finally:
        done.set()
        watcher.join()
    assert gaps == []
    assert json.loads(reading.read())["_class_name"] == "UNet3DConditionModel"
    reading.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_a_killed_builds_staging_folder_is_removed_and_nothing_else(tmp_path):
    killed = tmp_path / ".tiny-m.k1ll3d_x"  # what a build of tmp_path/m killed part-way leaves
    (killed / "unet").mkdir(parents=True)
    kept = [tmp_path / ".tiny-m.notes", tmp_path / ".tiny-mine.abcd1234", tmp_path / "tiny-m.abcd1234"]
    for folder in kept:
        folder.mkdir()
    t2v.build_tiny_model(tmp_path / "m")
    assert not killed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m"] + [p.name for p in kept])


def test_without_an_atomic_swap_a_rebuild_still_ends_whole(tmp_path, monkeypatch):
    import ctypes

    def no_libc(*args, **kwargs):
        raise OSError("no renameat2 here")  # as on macOS or Windows

    target = t2v.build_tiny_model(tmp_path / "tiny")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert t2v.build_tiny_model(target, rebuild=True) == target
    assert DiffusionPipeline.from_pretrained(target).text_encoder.config.vocab_size == 49408
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_an_installed_wheel_carries_the_vocabulary_and_its_licence(tmp_path, installed_wheel):
    data = installed_wheel / "t2v_helpers" / "data"
    assert {"bpe_simple_vocab_16e6.txt.gz", "CLIP_BPE_LICENSE"} <= {p.name for p in data.iterdir()}
    code = "import t2v_helpers.families.modelscope as ms; print(ms.__file__); print(len(ms._tokenizer()))"
    env = {**os.environ, "PYTHONPATH": str(installed_wheel)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[:2] == [str(installed_wheel / "t2v_helpers" / "families" / "modelscope.py"), "49408"]


def test_the_scheduler_config_names_only_what_the_real_file_names(tmp_path):
    """Settings the real file leaves out must stay out: `from_config` then gives a new scheduler its own defaults.

    The real scheduler_config.json predates `timestep_spacing`, so DPM-Solver swapped in from
    it keeps its own "linspace"; a file naming DDIM's "leading" would change the timesteps.
    """
    from diffusers import DPMSolverMultistepScheduler

    folder = t2v.build_tiny_model(tmp_path / "tiny")
    saved = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert {k: v for k, v in saved.items() if k != "_diffusers_version"} == t2v.families.modelscope.REAL_SCHEDULER_CONFIG
    pipe = t2v.load_pipeline(str(folder), verbose=False)
    dpm = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    dpm.set_timesteps(25)
    assert dpm.config.timestep_spacing == "linspace" and int(dpm.timesteps[0]) == 999


BUILD_ON_RANK_1 = """
import sys
from pathlib import Path
from accelerate import PartialState
import t2v_helpers as t2v
state = PartialState(cpu=True)
if state.process_index == 1:  # transformers writes a model's weights on rank 0 only
    t2v.build_tiny_model(Path(sys.argv[1]))
state.wait_for_everyone()
"""


def test_a_build_on_a_second_distributed_rank_is_complete(tmp_path):
    script, folder = tmp_path / "build.py", tmp_path / "tiny"
    script.write_text(BUILD_ON_RANK_1)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(folder)]
    run = subprocess.run(torchrun, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in (folder / "text_encoder").glob("*.safetensors")) == ["model.fp16.safetensors", "model.safetensors"]
    t2v.load_pipeline(str(folder), verbose=False)


def test_an_installed_wheel_carries_every_module_of_the_package(installed_wheel):
    # An editable install in the test environment would hide a missing subpackage from an import.
    source = Path(__file__).parents[1] / "t2v_helpers"
    modules = {p.relative_to(source).as_posix() for p in source.rglob("*.py")}
    installed = {p.relative_to(installed_wheel / "t2v_helpers").as_posix() for p in (installed_wheel / "t2v_helpers").rglob("*.py")}
    assert modules <= installed, f"the wheel leaves out {sorted(modules - installed)}"
