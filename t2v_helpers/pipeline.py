"""Load the text-to-video pipeline: model, dtype, device and offload, chosen and explained. Notebook 02."""

import inspect
import json
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import memory  # memory.gpu_memory() through the module, so that tests can stand in a GPU
from .errors import BadModelError, ModelNotAvailableError, PickleWeightsError, RAMError, SettingError, shorten
from .families import families, family_named, family_of_class, family_of_folder, find_model, lean_vae, models
from .memory import available_memory
from .notices import quiet_loading
from .schedulers import scheduler_config_problem
from .tiny import build_tiny
from .validate import check_choice, check_dtype, is_finite_number

MODEL_ID = "ali-vilab/text-to-video-ms-1.7b"
OFFLOAD_MODES = ("auto", "model", "sequential", "none")
# Weight files that Python's pickle reads, and pickle can run any code while it reads.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# A hub id: 'name' or 'owner/name', letters, digits, '-', '_' and '.' (huggingface_hub's rule).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
# Libraries whose classes a model_index.json may name; any other module is code shipped with the model.
KNOWN_LIBRARIES = ("diffusers", "transformers")
# RAM kept free beyond the weights for Python, torch and the file reader: a margin chosen, not measured.
RAM_MARGIN = 2**30


@dataclass
class Runtime:
    """Where and how the pipeline runs, and why. Notebook 02."""

    device: str
    dtype: torch.dtype
    offload: str
    reason: str


def cpu_has_bfloat16():
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), so torch runs bfloat16 natively. Notebook 02."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # x86 only; elsewhere: not known, so False
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_runtime(offload="auto", dtype=None, model=None):
    """Pick device, dtype and offload mode for this machine. Notebook 02.

    On a CUDA GPU: the model family's dtype (float16 for ModelScope), and with `offload="auto"`
    the fastest offload mode whose predicted peak memory (t2v_helpers.memory, for the model's
    default frames and size: 16 frames of 256x256 for ModelScope) fits the GPU's free memory;
    the reason says what it chose and the prediction. `model` is a families.Model (ModelScope's
    by default). Without a GPU: no
    offload (diffusers' offload needs an accelerator to move the models to), and
    bfloat16 where the CPU has bfloat16 instructions, else float32. The choice rests on
    the full-size model in benchmarks/results/cpu-full.json, where bfloat16 took less
    time and memory than float32 on this project's AMD EPYC, a CPU with bfloat16
    instructions (recorded in benchmarks/results/cpu-fp16-vs-fp32.json). The tiny model's
    timings in that second file say little about the real model; float16 is not picked
    on a CPU because it was the slowest of the three there.
    """
    offload = check_choice("offload", offload, OFFLOAD_MODES, problem="is not an offload mode")
    dtype = check_dtype(dtype)
    model = model or find_model(MODEL_ID)
    if torch.cuda.is_available():
        dtype = dtype or family_named(model.family).gpu_dtype
        name = torch.cuda.get_device_name(0)
        if offload != "auto":
            return Runtime("cuda", dtype, offload, f"CUDA GPU found ({name}): {str(dtype)[6:]} weights, offload={offload!r} as asked.")

        free, total = memory.gpu_memory()
        mode, why, _ = memory.choose_offload(free, family=model.family, dtype=dtype, frames=model.frames, height=model.height, width=model.width)
        return Runtime("cuda", dtype, mode, f"CUDA GPU found ({name}, {total / 2**30:.0f} GiB): {str(dtype)[6:]} weights, {why}")
    if offload in ("model", "sequential"):
        raise SettingError(
            "offload",
            offload,
            "needs a CUDA GPU and none is visible (diffusers raises 'requires accelerator')",
            "'auto' or 'none' on a machine without a GPU",
            "offload='auto'",
        )
    measured = model.family == "modelscope"  # benchmarks/results/cpu-full.json measured ModelScope only
    if dtype is not None:
        why = "the dtype you asked for"
    elif cpu_has_bfloat16():
        dtype = torch.bfloat16
        why = ("this CPU has bfloat16 instructions, and on such a CPU the full-size ModelScope model ran faster, in about "
               "half the memory, than in float32 (benchmarks/results/cpu-full.json)" if measured else
               "this CPU has bfloat16 instructions, so it computes bfloat16 natively, in half the memory of float32")
    else:
        dtype = torch.float32
        why = ("this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), and bfloat16 was measured "
               "faster only on one that has them (benchmarks/results/cpu-full.json)" if measured else
               "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), and every CPU computes float32 natively")
    return Runtime("cpu", dtype, "none", f"No CUDA GPU: running on the CPU in {str(dtype)[6:]}, without offload: {why}.")


def model_path(model_id=MODEL_ID):
    """What to pass to `from_pretrained`: a tiny model's folder, a listed model's hub id, a folder with ~ expanded, else `model_id`. Notebook 02."""
    listed = find_model(model_id)
    if listed is not None:
        return str(build_tiny(listed)) if listed.tiny else listed.id
    model_id = str(model_id)
    if not model_id.startswith("~"):
        return model_id
    # '~/models/x' is a folder, never a hub id: check_model and load_pipeline both expand it here.
    try:
        return str(Path(model_id).expanduser())
    except RuntimeError:  # '~someone/x' for a user this machine does not know: check_model says it is missing
        return model_id


def default_model(model="modelscope"):
    """The real `model` when a GPU and the weights (cached or from the hub) are at hand, else its family's tiny model. Notebook 02.

    `model` is a name from `t2v.families.models()` ('modelscope', 'wan', ...) or a hub id.
    Returns the model id and a sentence saying why.
    """
    listed = find_model(model)
    if listed is None:
        names = ", ".join(m for m in models() if not models()[m].tiny)
        raise SettingError("model", model, "is not a model listed here", f"one of {names}", "model='modelscope'")
    tiny = family_named(listed.family).tiny_model
    if listed.tiny:
        return tiny, f"{tiny} is the built-in tiny model: its videos are noise."
    model_id = listed.id
    if not torch.cuda.is_available():
        return tiny, f"No CUDA GPU here, so the built-in tiny model {tiny!r} is used: its videos are noise."
    try:
        check_ram(model, family_named(listed.family).gpu_dtype)
    except RAMError as error:
        return tiny, f"{error} For now the built-in tiny model {tiny!r} is used: its videos are noise."
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "model_index.json"), str):
        return model_id, f"Using {model_id} from the local cache."
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return tiny, f"HF_HUB_OFFLINE is set and {model_id} is not cached: using the tiny model {tiny!r} (noise)."
    try:
        from huggingface_hub import model_info

        model_info(model_id, timeout=10)
    except Exception as error:  # any failure to reach the hub means: work offline
        return tiny, f"The hub is unreachable ({type(error).__name__}): using the tiny model {tiny!r} (noise)."
    return model_id, f"Downloading {model_id} from the hub on first use (several GB): {listed.about}"


def ram_needed(model, dtype):
    """Bytes of RAM each part of a listed full-size model holds once loaded in `dtype`, or None for a tiny one. Notebook 09.

    from_pretrained reads every part into RAM, and with model offload (or on a CPU) they all stay
    there: the text encoder, the denoiser and the VAE, counted by t2v.memory.weight_bytes.
    """
    listed = find_model(model)
    family = family_named(listed.family) if listed else None
    if listed is None or listed.tiny or family.memory is None:
        return None

    weights = memory.weight_bytes(dtype, family)
    return {part: weights[part] for part in ("text_encoder", family.memory.denoiser, "vae")}


def check_ram(model, dtype, available=None):
    """Refuse, before loading, a full-size model whose parts need more RAM than is available now. Notebook 09.

    Returns a sentence saying how the weights compare with the RAM available (MemAvailable in
    /proc/meminfo), or raises RAMError: Colab stops the whole runtime when its RAM runs out, so a
    load that cannot fit must not start. A tiny model, or a machine that does not say, passes.
    """
    needed = ram_needed(model, dtype)
    if needed is None:
        return f"{model!r} is a tiny model: it needs little RAM."
    total = sum(needed.values())
    available = available_memory(None) if available is None else available
    parts = ", ".join(f"{part.replace('_', ' ')} {size / 2**30:.1f}" for part, size in needed.items())
    weights = f"{model!r} holds {total / 2**30:.1f} GiB of weights in RAM in {str(dtype)[6:]} ({parts} GiB)"
    if available is None:
        return f"{weights}; this machine's available RAM is unknown, so it was not checked."
    if total + RAM_MARGIN <= available:
        return f"{weights}; it fits in the {available / 2**30:.1f} GiB of RAM available."
    raise RAMError(
        f"{weights}, and with {RAM_MARGIN / 2**30:.0f} GiB for Python and torch that is more than the "
        f"{available / 2**30:.1f} GiB of RAM available now, so it was not loaded: a machine that runs out of RAM "
        "stops the whole runtime (Colab says 'Your session crashed after using all available RAM'). Use a machine "
        "with more RAM (Colab's High-RAM runtime), or keep the text encoder out of RAM: encode the prompt once and "
        "free the encoder (notebook 10)."
    )


def pickle_only_weights(folder):
    """Pickle weight files in a local model folder whose part has no safetensors file. Notebook 02."""
    found = [p for p in Path(folder).rglob("*") if p.suffix in PICKLE_SUFFIXES and p.is_file()]
    return sorted(p for p in found if not any(p.parent.glob("*.safetensors")))


def check_model(model_id):
    """Refuse a model name that cannot be a model, before any loading: BadModelError says what to change. Notebook 02.

    Accepts 'tiny', a hub id ('owner/name') that is not a folder here, or a folder holding a
    diffusers model_index.json whose parts are diffusers and transformers classes only (a model
    that names its own code is refused: that code would run on this machine). Returns the name
    normalised as `load_pipeline` loads it (`model_path`): '~/x' comes back as the full folder name.
    """
    try_instead = "Try 'tiny', the model id 'ali-vilab/text-to-video-ms-1.7b', or the folder a model was downloaded to"
    if not isinstance(model_id, (str, os.PathLike)) or not str(model_id).strip():
        raise BadModelError(f"Model {model_id!r} is empty: it names no model. {try_instead}.")
    model_id = str(model_id)
    if find_model(model_id) is not None:
        return model_id
    loads = model_path(model_id)
    path = Path(loads)
    if path.is_file():
        raise BadModelError(f"Model {model_id!r} is a file; a model is a folder or a hub id. {try_instead}.")
    if not path.exists():
        looks_like_path = model_id.startswith((".", "/", "~")) or "\\" in model_id or model_id.count("/") > 1
        if looks_like_path or not HUB_ID.fullmatch(model_id):
            raise BadModelError(
                f"Model {shorten(model_id, 80)} is neither a folder here nor a hub model id (ids look like "
                f"'owner/name': letters, digits, '-', '_' and '.', no spaces). Check the spelling. {try_instead}."
            )
        return loads
    _check_model_folder(model_id, loads, try_instead)
    return loads


def _check_model_folder(model_id, loads, try_instead):
    """check_model's checks of an existing folder: UTF-8 path, a readable model_index.json, known classes only, no own code."""
    path = Path(loads)
    try:
        loads.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system kept but that are not UTF-8, such as b'\xff'
        raise BadModelError(
            f"Model folder {shorten(model_id, 80)} has bytes in its path that are not UTF-8 (shown as \\udcXX), and "
            "safetensors, which reads the weights, opens only UTF-8 paths. Rename the folder (and any folder above it "
            "with such a name) to a UTF-8 name, and pass the new name."
        ) from None
    index = path / "model_index.json"
    redownload = f"Download the model again (`hf download MODEL_ID --local-dir {model_id}`), or {try_instead[4:].lower()}"
    if not index.is_file():
        if not _looks_like_a_model(path):  # /etc, an empty folder: nothing to download again into it
            raise BadModelError(
                f"Model folder {model_id!r} holds no diffusers model: it has no model_index.json and none of a model's "
                f"part folders (unet, vae, text_encoder, transformer, scheduler). Pass the folder a model was downloaded "
                f"to (the one that holds model_index.json). {try_instead}."
            )
        raise BadModelError(f"Model folder {model_id!r} has no model_index.json, so it is incomplete or not a diffusers model. {redownload}.")
    try:
        parts = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: nested thousands of levels deep
        raise BadModelError(f"Model folder {model_id!r} has a model_index.json that cannot be read ({error}). {redownload}.") from None
    if not isinstance(parts, dict):
        raise BadModelError(f"Model folder {model_id!r} has a model_index.json that is not a table of parts. {redownload}.")
    own_code = sorted(
        name
        for name, value in parts.items()
        if name in ("custom_pipeline", "_custom_pipeline")
        or (isinstance(value, list) and value and value[0] not in (*KNOWN_LIBRARIES, None))
    )
    if own_code:
        raise BadModelError(
            f"Model folder {model_id!r} asks to run its own code for {', '.join(own_code)} (model_index.json names "
            f"modules other than {' and '.join(KNOWN_LIBRARIES)}); code shipped with a model is never run here. "
            f"Use a model whose parts are diffusers and transformers classes, such as 'tiny' or {MODEL_ID!r}."
        )
    if family_of_class(parts.get("_class_name")) is None:
        raise BadModelError(f"Model folder {model_id!r} holds a {shorten(str(parts.get('_class_name')), 60)}, {_known_pipelines()}.")


def _looks_like_a_model(folder):
    """Whether a folder without model_index.json still holds parts of a diffusers model (a download cut short)."""
    parts = ("unet", "vae", "text_encoder", "transformer", "scheduler", "tokenizer")
    try:
        return any((Path(folder) / part / name).is_file() for part in parts for name in ("config.json", "scheduler_config.json"))
    except OSError:
        return False


def _known_pipelines():
    known = ", ".join(f"{f.pipeline} ({f.name})" for f in families().values())
    return f"and the helpers know these pipelines only: {known}. Use a text-to-video model of one of them, such as 'tiny' or {MODEL_ID!r}"


def model_family(model_id):
    """The families.Family of a model name, hub id or folder, read before loading its weights. Notebook 09.

    A hub id not listed in t2v_helpers.families is looked up by its model_index.json,
    through the hub client (or its cache). Raises BadModelError for a pipeline the helpers
    do not know.
    """
    listed = find_model(model_id)
    if listed is not None:
        return family_named(listed.family)
    path = model_path(model_id)
    if Path(path).is_dir():
        family = family_of_folder(path)
    else:
        from diffusers import DiffusionPipeline

        family = family_of_class(DiffusionPipeline.load_config(path).get("_class_name"))
    if family is None:
        raise BadModelError(f"Model {shorten(str(model_id), 80)} is not a text-to-video pipeline {_known_pipelines()}.")
    return family


def _pickle_only_on_hub(error):
    """The pickle weight files diffusers names when a hub model has no safetensors for them, else []."""
    text = str(error)
    if "Could not find the necessary `safetensors` weights" not in text:
        return []
    return sorted(set(re.findall(r"'([^']+?(?:%s))'" % "|".join(re.escape(s) for s in PICKLE_SUFFIXES), text)))


def not_available_message(model_id, error, tiny="tiny"):
    """Why `model_id` could not be loaded from the hub or the cache, and what to do, as one paragraph. Notebook 02."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE=1 forbids downloading it"
        retry = "or unset HF_HUB_OFFLINE where the hub is reachable"
    else:
        why = "HF_HUB_OFFLINE is not set, but downloading it failed (is the hub reachable?)"
        retry = "or set HF_HUB_OFFLINE=1 to stop trying the hub"
    folder = "models--" + model_id.replace("/", "--")
    detail = " ".join(str(error).split())[:300]
    # A download cut short leaves model_index.json without the weights.
    partly = isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)
    where = "only partly in" if partly else "not in"
    return (
        f"Cannot load model {model_id!r}: it is {where} the local cache {constants.HF_HUB_CACHE} and {why}. "
        f"On a machine with internet, run `hf download {model_id}` and copy the folder {folder} from its "
        f"cache (~/.cache/huggingface/hub) into {constants.HF_HUB_CACHE} here, {retry}. "
        f"To follow along without it, use the tiny model: load_pipeline({tiny!r}). (diffusers said: {detail})"
    )


@quiet_loading()
def load_pipeline(model_id=MODEL_ID, *, offload="auto", dtype=None, vae_slicing=True, verbose=True, allow_pickle=False):
    """Load the pipeline the way the article does, with the current argument names. Notebook 02.

    `model_id` 'tiny' selects the offline tiny model. Returns the pipeline; its
    `t2v_runtime` attribute records what was chosen and why. Weights load from
    safetensors only; `allow_pickle=True` also loads pickle (`.bin`) weights, which
    can run code: use it only for a model whose source you trust. A model that is
    neither cached nor downloadable raises ModelNotAvailableError with the command to fetch it; a
    listed full-size model whose parts do not fit the RAM available raises RAMError before loading (`check_ram`).
    With `verbose`, it prints one line: what it chose and why (and, for 'tiny', that its
    videos are noise). Loading bars and the pipeline's deprecation notice are hidden while
    it loads; notebook 02 explains the notice.
    """
    check_dtype(dtype)  # before the model: a dtype is a setting, not a sign of a damaged folder
    check_model(model_id)
    path = model_path(model_id)
    local = Path(path).is_dir()
    try:
        family = model_family(model_id)
    except OSError as error:  # an unlisted hub id whose model_index.json cannot be fetched
        raise ModelNotAvailableError(not_available_message(path, error)) from error
    listed = find_model(model_id)
    model = listed or family.models[0]
    variant = model.variant
    if listed is None and local:  # a folder: ask for the fp16 files only where it has them
        variant = "fp16" if any(Path(path).glob("*/*.fp16.*")) else None
    runtime = choose_runtime(offload, dtype, model)
    if listed is not None:
        check_ram(model_id, runtime.dtype)  # before any weight is read: running out of RAM stops a Colab runtime
    if local:
        _refuse_unsafe_folder(model_id, path, allow_pickle)
    dtypes = {"default": runtime.dtype, **{part: torch.float32 for part in family.float32_parts}}
    pipe = _from_pretrained(model_id, path, local, family, dict(dtype=dtypes, variant=variant, use_safetensors=None if allow_pickle else True))
    _refuse_damaged_configs(model_id, _loaded_config_problems(pipe))  # a hub model's, and what the files left to defaults
    place(pipe, runtime.offload, runtime.device, vae_slicing)
    pipe.t2v_model_id = model_id
    # set_scheduler starts every swap from the config the model shipped with, even after a hand-made swap.
    pipe.t2v_original_scheduler_config = pipe.scheduler.config
    pipe.t2v_runtime = runtime
    if verbose:
        tiny = " Model: the built-in tiny model with random weights; its videos are noise." if model.tiny else ""
        print(runtime.reason + tiny)
    return pipe


def _refuse_unsafe_folder(model_id, path, allow_pickle):
    """Before loading a local folder: PickleWeightsError for pickle-only weights (unless allowed), BadModelError for damaged configs."""
    unsafe = [] if allow_pickle else pickle_only_weights(path)
    if unsafe:
        names = ", ".join(str(p.relative_to(path)) for p in unsafe)
        raise PickleWeightsError(
            f"Model {model_id!r} has pickle weights and no safetensors for them ({names}). Loading "
            "pickle can run any code hidden in the file, so it is refused by default. If you trust "
            "where the files came from, pass allow_pickle=True; better, convert them to safetensors.",
            unsafe,
        )
    _refuse_damaged_configs(model_id, _file_config_problems(Path(path)))


def _from_pretrained(model_id, path, local, family, options):
    """The family's pipeline class loaded from `path` with `options`; a failed load says why and what to do, in its own error."""
    import diffusers

    try:
        # trust_remote_code is never passed: a model repository cannot run its own code here.
        # The family's pipeline class, named: a repository may name another (zeroscope XL's names video-to-video).
        return getattr(diffusers, family.pipeline).from_pretrained(path, **options)
    except Exception as error:  # noqa: BLE001  (a damaged folder fails in many ways: OSError, ValueError, SafetensorError...)
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        if local:
            raise BadModelError(
                f"Model folder {model_id!r} could not be loaded: it is incomplete or damaged ({detail}). "
                f"Download it again, or use a complete model folder, 'tiny' or {MODEL_ID!r}."
            ) from error
        if not isinstance(error, (OSError, ValueError)):  # ValueError: some files missing, as after a cut download
            raise
        pickled = _pickle_only_on_hub(error)
        if pickled:
            raise PickleWeightsError(
                f"Model {model_id!r} ({path}) is published with pickle weights only ({', '.join(pickled)}), with no "
                "safetensors for them, so diffusers found nothing it may load. Loading pickle can run any code hidden "
                "in the file, so it is refused by default. If you trust where the files come from, pass allow_pickle=True "
                "(command line: --allow-pickle).",
                [Path(name) for name in pickled],
            ) from error
        raise ModelNotAvailableError(not_available_message(path, error, family.tiny_model)) from error


def _vae_config_problem(config):
    # The latents are divided by scaling_factor (and by latents_std, Wan) before decoding: 0 or NaN ends a run after denoising.
    factor = config.get("scaling_factor")
    if factor is not None and not (is_finite_number(factor) and factor > 0):
        return f"scaling_factor={factor!r} is not a positive number (the latents are divided by it before decoding)"
    shift = config.get("shift_factor")
    if shift is not None and not is_finite_number(shift):
        return f"shift_factor={shift!r} is not a number"
    for name in ("latents_mean", "latents_std"):
        values = config.get(name)
        if values is not None and not (isinstance(values, (list, tuple)) and all(is_finite_number(v) and (name == "latents_mean" or v > 0) for v in values)):
            return f"{name} is not a list of {'numbers' if name == 'latents_mean' else 'positive numbers'} (the latents are scaled by it)"
    return None


def _tokenizer_length_problem(length, most=None):
    # The pipeline pads every prompt to model_max_length tokens: 1e30 overflows, 0 reads nothing.
    if not isinstance(length, numbers.Integral) or isinstance(length, bool) or length < 1:
        return f"model_max_length={shorten(length)} is not a whole number from 1 (the prompt is padded to it)"
    if most is not None and length > most:
        return f"model_max_length={shorten(length)} is more than the {most} tokens its text encoder reads (the prompt is padded to it)"
    return None


def _read_config(path):
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # missing or unreadable: loading says so in its own words
    return config if isinstance(config, dict) else None


def _file_config_problems(folder):
    """['part/file: problem', ...] for the numbers in a model folder's configs that a pipeline divides by or sizes with."""
    checks = (("vae/config.json", _vae_config_problem), ("scheduler/scheduler_config.json", scheduler_config_problem),
              ("tokenizer/tokenizer_config.json", lambda c: "model_max_length" in c and _tokenizer_length_problem(c["model_max_length"])))
    found = []
    for part, check in checks:
        config = _read_config(folder / part)
        problem = check(config) if config is not None else None
        if problem:
            found.append(f"{part}: {problem}")
    return found


def _loaded_config_problems(pipe):
    """The same checks on a loaded pipeline: a hub model's configs, and the tokenizer's length where the pipeline pads to it."""
    found = []
    for part, check in (("vae", _vae_config_problem), ("scheduler", scheduler_config_problem)):
        component = getattr(pipe, part, None)
        problem = check(dict(component.config)) if component is not None else None
        if problem:
            found.append(f"{part}/config: {problem}")
    tokenizer, encoder = getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)
    # Wan's and CogVideoX's pipelines pad to their own max_sequence_length; ModelScope's pads to the tokenizer's length.
    if tokenizer is not None and "max_sequence_length" not in inspect.signature(pipe.encode_prompt).parameters:
        most = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)
        problem = _tokenizer_length_problem(tokenizer.model_max_length, most if isinstance(most, int) else 10**6)
        if problem:
            found.append(f"tokenizer/tokenizer_config.json: {problem}")
    return found


def _refuse_damaged_configs(model_id, problems):
    if problems:
        raise BadModelError(
            f"Model {'folder ' if Path(str(model_id)).is_dir() else ''}{shorten(str(model_id), 80)} has a damaged config: "
            f"{'; '.join(problems)}. Download it again, or use a complete model folder, 'tiny' or {MODEL_ID!r}."
        )


def place(pipe, offload, device, vae_slicing=True):
    """Apply an offload mode (or, for 'none', move to `device`) and VAE slicing to a loaded pipeline. Notebook 07."""
    if offload == "model":
        pipe.enable_model_cpu_offload()
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(device)
    if vae_slicing:
        lean_vae(pipe)
    return pipe


def parameter_counts(pipe):
    """Parameters of each part of the pipeline that has weights, e.g. {'unet': 1.4e9, ...}. Notebook 02."""
    counts = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            counts[name] = sum(p.numel() for p in component.parameters())
    return counts
