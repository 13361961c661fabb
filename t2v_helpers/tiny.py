"""A tiny random-weight text-to-video model, laid out like the real repository.

Taught in notebook 02. It lets every notebook and test run offline on a CPU in seconds;
its videos are coloured noise, because its weights are random.
"""

import gzip
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch

from .errors import SettingError

TINY_MODEL_ID = "tiny"
# Bump when the recipe below changes, so cached copies are rebuilt.
TINY_VERSION = 5

# The real model's scheduler/scheduler_config.json (ali-vilab/text-to-video-ms-1.7b).
REAL_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "thresholding": False,
    "trained_betas": None,
}


class _EmptyFloat32Notice:
    """A logging filter that drops diffusers' "should be kept in float32: []" line, and only its empty-list form."""

    def filter(self, record):
        message = record.getMessage()
        return not (message.startswith("There are modules in ") and "should be kept in float32: []." in message)


@contextmanager
def quiet_empty_float32_notice():
    """Hide diffusers' "There are modules in ... that should be kept in float32: []" while the helpers cast a model. Notebook 02.

    diffusers' ModelMixin.to() prints it for any dtype, even when the list is empty, i.e. when no
    layer needs float32 and the cast changes nothing it warns about. A model that does keep layers
    in float32 still names them. Notebook 02's troubleshooting explains the line.
    """
    with filtered_log("diffusers.models.modeling_utils", _EmptyFloat32Notice()):
        yield


@contextmanager
def filtered_log(name, log_filter):
    """Apply `log_filter` to the logger called `name` inside the block only: how the helpers quiet one library notice. Notebook 02."""
    logger = logging.getLogger(name)
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def cache_dir():
    """Where built artefacts are cached (`T2V_CACHE`, else ~/.cache/t2v_helpers; `~` is your home folder). Notebook 02."""
    return Path(os.environ.get("T2V_CACHE") or Path.home() / ".cache" / "t2v_helpers").expanduser()


def _byte_level_alphabet():
    # The 256 printable stand-ins that byte-level BPE uses for raw bytes (as in GPT-2/CLIP).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


# OpenAI CLIP's merge list, shipped with its licence in t2v_helpers/data/ (CLIP_BPE_LICENSE).
CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


@lru_cache(maxsize=1)
def _clip_vocabulary():
    # CLIP's own recipe: the byte alphabet, the same with "</w>" (end of word), one token per
    # merge of the first 49,152 - 256 - 2 lines, then the two special tokens: 49,408 in all,
    # the ids of the real tokenizer's vocab.json.
    with (resources.files(__package__) / "data" / CLIP_BPE_FILE).open("rb") as packed:
        lines = gzip.decompress(packed.read()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # line 0 is a header
    alphabet = _byte_level_alphabet()
    tokens = alphabet + [s + "</w>" for s in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def _tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    # Pads with "!" (id 0), as the Stable Diffusion 2 tokenizer does (huggingface/transformers#24925),
    # whose OpenCLIP ViT-H text encoder and text_encoder config this model shares.
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token="!", model_max_length=77)


def _components():
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .architecture import TEXT_ENCODER_CONFIG  # here, not at the top: architecture imports this module

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=32,  # latents of 32 x 32: 256 x 256 frames, as the real model
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        # Four levels scale latents 8x, as in the real VAE.
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            # The real vocabulary, prompt length and special-token ids; only the width is small.
            **{k: TEXT_ENCODER_CONFIG[k] for k in ("vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id")},
        )
    )
    scheduler = DDIMScheduler.from_config(REAL_SCHEDULER_CONFIG)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder.eval(), scheduler=scheduler)


def build_tiny_model(path=None, *, rebuild=False):
    """Build (once) the tiny offline ModelScope model and return its folder. Notebook 02.

    The folder holds `model_index.json` naming `TextToVideoSDPipeline` and the folders
    `unet/ vae/ text_encoder/ tokenizer/ scheduler/` with float32 and `fp16`-variant
    safetensors, so `DiffusionPipeline.from_pretrained(path, variant="fp16")` loads it
    exactly as it loads the real model. Its tokenizer is the real CLIP tokenizer.
    """
    from .families import find_model

    return build_tiny(find_model(TINY_MODEL_ID), path, rebuild=rebuild)


def build_tiny(model, path=None, *, rebuild=False):
    """Build (once) the tiny model `model` (a families.Model with `build`) and return its folder. Notebook 09.

    Any number of processes may call it at once (torchrun ranks, two notebooks): one builds,
    holding a lock file `.NAME.lock` beside the folder, and the others wait for it and
    reuse its model. A model only ever appears at `path` whole, by renaming a finished
    `.NAME.xxxxxxxx` folder into place (one left by a killed build is removed next time),
    and a rebuild swaps the new folder in rather than deleting the one a reader may be loading.
    """
    path = Path(path) if path else cache_dir() / f"{model.name}-text-to-video-v{model.version}"

    def save(folder):
        _save_from_any_process(model.name, folder)
        note = {"what": "random weights for offline tests; its videos are noise", "model": model.name, "version": model.version}
        (folder / "TINY_MODEL.json").write_text(json.dumps(note, indent=2))

    return build_once(path, save, marker="TINY_MODEL.json", version=model.version, what="tiny model", rebuild=rebuild)


def build_once(path, save, *, marker, version, what, rebuild=False):
    """Build the folder `path` once with `save(folder)`, safely under concurrent processes. Notebook 02.

    `save` writes the files and, last, `marker`: a JSON file whose "version" says which recipe
    built it. Used by `build_tiny_model` and `fast.build_tiny_lora`; the guarantees are theirs
    (one builder at a time, a whole folder or none, a rebuild swapped in, a folder that is not
    ours never touched). A finished folder is used without taking the lock (it only ever
    appears whole), so a read-only cache that holds it works; a cache that cannot be used for
    building raises SettingError naming T2V_CACHE (or `path`, if one was given).
    """
    if not rebuild and _version_built_here(path / marker) == version:
        return path
    try:
        return _build_locked(path, save, marker, version, what, rebuild)
    except _NotOurs as error:
        raise FileExistsError(str(error)) from None
    except OSError as error:
        raise _cache_error(path, error) from None


class _NotOurs(Exception):
    """A folder at the model's path that this package did not build."""


def _cache_error(path, error):
    reason = error.strerror or str(error)
    if path.parent == cache_dir():
        return SettingError(
            "T2V_CACHE", str(path.parent), f"cannot be used to build the tiny models in ({reason})",
            "a folder you can write to (the default is ~/.cache/t2v_helpers)",
            "T2V_CACHE=/a/folder/you/can/write, or unset T2V_CACHE to use the default",
        )
    return SettingError("path", str(path), f"cannot be used to build a tiny model in ({reason})",
                        "a folder you can write to", "another folder, such as path='tiny-model'")


def _build_locked(path, save, marker, version, what, rebuild):
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        _remove_killed_builds(path)
        built = _version_built_here(path / marker)
        if built is None and path.exists():  # not ours: a user's folder is never touched
            raise _NotOurs(f"{path} exists and is not a {what} built here; choose another path.")
        if built == version and not rebuild:
            return path
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
        try:
            save(staging)
            if path.exists():
                _swap(staging, path)  # `staging` now holds the old folder
            else:
                staging.rename(path)
        finally:
            # Readers that opened the old files keep them (POSIX keeps deleted files open);
            # new readers find the new folder at `path`.
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _save_from_any_process(name, folder):
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # transformers writes a model's weights on distributed rank 0 only, so another rank (a
        # torchrun batch) would build a model without them: save from a fresh process instead.
        package_parent = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
        code = "import sys; from pathlib import Path; from t2v_helpers.tiny import _save; _save(sys.argv[1], Path(sys.argv[2]))"
        # Its library notices would break into the batch's own lines: keep them, and show them only if it fails.
        done = subprocess.run([sys.executable, "-c", code, name, str(folder)], capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"Building the tiny model {name!r} failed:\n{done.stderr[-2000:]}")
    else:
        _save(name, folder)


def _save(name, folder):
    from .families import find_model

    find_model(name).build(folder)


def _save_model(folder):
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline(tokenizer=_tokenizer(), **_components())
    pipe.save_pretrained(folder, safe_serialization=True)
    with quiet_empty_float32_notice():
        half = pipe.to(torch.float16)
    half.save_pretrained(folder, safe_serialization=True, variant="fp16")
    # Today's diffusers writes every setting; the real file names fewer, and what a file leaves
    # out decides the defaults of a scheduler swapped in with from_config (notebook 03).
    config = folder / "scheduler" / "scheduler_config.json"
    version = json.loads(config.read_text())["_diffusers_version"]
    config.write_text(json.dumps({**REAL_SCHEDULER_CONFIG, "_diffusers_version": version}, indent=2) + "\n")


def _version_built_here(marker):
    try:
        return json.loads(marker.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _staging_prefix(path):
    return f".tiny-{path.name}."


def _remove_killed_builds(path):
    # Called under the lock, so a staging folder of this target's naming is from a build
    # that was killed; tempfile.mkdtemp adds 8 characters of [a-z0-9_].
    pattern = re.compile(re.escape(_staging_prefix(path)) + r"[a-z0-9_]{8}")
    for entry in path.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _swap(new, old):
    # Linux swaps two folders in one step (renameat2 RENAME_EXCHANGE), so `old` never goes
    # missing for a reader; elsewhere two renames leave it missing for a moment.
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        exchange = libc.renameat2
    except (OSError, AttributeError):
        exchange = None
    if exchange is not None:
        at_cwd, rename_exchange = -100, 2
        if exchange(at_cwd, os.fsencode(new), at_cwd, os.fsencode(old), rename_exchange) == 0:
            return
    aside = Path(tempfile.mkdtemp(prefix=_staging_prefix(old), dir=old.parent))
    aside.rmdir()
    old.rename(aside)
    new.rename(old)
    aside.rename(new)


@contextmanager
def _lock(path):
    """Hold an exclusive lock on building `path`, shared by every process on this machine."""
    lock = path.with_name(_staging_prefix(path) + "lock")
    while True:
        handle = open(lock, "a")
        _acquire(handle)
        try:
            # The holder before us deletes the lock file as it leaves: if it did, lock the new one.
            if os.name == "nt" or os.path.samestat(os.fstat(handle.fileno()), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        if os.name != "nt":  # so nothing is left beside the model; Windows cannot delete an open file
            lock.unlink(missing_ok=True)
        handle.close()  # closing releases the lock


def _acquire(handle):
    if os.name == "nt":
        import msvcrt

        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s: try again
                return
            except OSError:
                continue
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
