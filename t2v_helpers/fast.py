"""Few-step videos: the Motion Consistency Model (MCM) LoRA, the LCM scheduler and a compiled UNet. Notebook 08.

MCM (Zhai et al., NeurIPS 2024) distilled ModelScope's UNet into a low-rank adapter
(LoRA) that makes a video in 4 steps with guidance built in, instead of 25 steps
with two UNet evaluations each. `make_fast` merges that LoRA into a loaded pipeline
and sets diffusers' LCMScheduler; `undo_fast` puts the original weights back.
"""

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import BadModelError, FastSettingWarning, ModelNotAvailableError, PickleWeightsError, SettingError, shorten
from .families import families, family_of, find_model
from .families.modelscope import TINY_MODEL_ID, build_tiny_model
from .pipeline import not_available_message
from .schedulers import FAST_STEPS, scheduler_name, set_scheduler
from .tiny import build_once, cache_dir
from .validate import check_choice

MCM_REPO = "yhzhai/mcm"
MCM_STYLES = (
    "modelscopet2v-webvid",
    "modelscopet2v-laion",
    "modelscopet2v-anime",
    "modelscopet2v-real",
    "modelscopet2v-3d-cartoon",
)
# FAST_STEPS (4, what MCM's demo uses) and MAX_FAST_STEPS belong to the LCM scheduler: t2v_helpers.schedulers.
FAST_GUIDANCE = 1.0  # guidance is distilled into the LoRA: 1.0 makes the pipeline skip the negative prompt
# The layers MCM's training script (yhZhai/mcm main.py) puts a LoRA on: every module whose
# name ends with one of these, except the temporal 3D convolutions. MCM left those out because,
# in its own words, "Currently LoRA does not support Conv3D" (main.py); the peft pinned
# here does adapt nn.Conv3d, but the published LoRAs have no weights for them, so neither does ours.
MCM_TARGET_SUFFIXES = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)
# What MCM distilled from, and at what size: yhZhai/mcm scripts/modelscopet2v_distillation.sh runs
# main.py with --base_model_name=modelscope --resolution=256 --num_frames=16.
MCM_TEACHER = "ali-vilab/text-to-video-ms-1.7b"
MCM_TRAINED = (256, 256, 16)  # width, height, frames
MCM_RANK = 64  # the training script's default rank and alpha
TINY_LORA_RANK = 4  # the tiny UNet's layers are 16 to 32 wide
TINY_LORA_VERSION = 1
# The files of a peft adapter: its config, and its weights in safetensors or (loaded only with allow_pickle) pickle.
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
MAX_ADAPTER_CONFIG_BYTES = 1_000_000  # a LoRA config is a few kB; more is not one


@dataclass
class FastMode:
    """What `make_fast` did to a pipeline (`pipe.t2v_fast`), and what `undo_fast` needs to reverse it. Notebook 08.

    `generate` asks it to check its settings and for its sidecar record, so the core never imports this module.
    """

    style: str
    source: str
    steps: int = FAST_STEPS
    guidance: float = FAST_GUIDANCE
    layers: int = 0
    allow_pickle: bool = False  # whether its weights were allowed to come from pickle (to merge it again the same way)
    previous_scheduler: object = field(default=None, repr=False)
    originals: dict = field(default_factory=dict, repr=False)

    @property
    def settings(self):
        """The steps and guidance the LoRA was distilled for: `generate(pipe, prompt, **fast.settings)`. Notebook 08."""
        return dict(steps=self.steps, guidance=self.guidance)

    def check_settings(self, pipe, steps, guidance, negative_prompt=None):
        """Warn (FastSettingWarning) about settings the few-step model was not distilled for; `generate` asks. Notebook 08.

        The steps are the LCM scheduler's to check, LoRA or not (schedulers.check_scheduler_steps).
        """
        messages = []
        if type(getattr(pipe, "scheduler", None)).__name__ != "LCMScheduler":
            messages.append(
                f"The MCM LoRA {self.style!r} is still merged into the UNet, but the scheduler is {scheduler_name(pipe)!r}, not 'lcm': "
                "the video comes from the few-step UNet with a scheduler it was not distilled for, and its sidecar says so "
                "(settings 'lora'). Use t2v.undo_fast(pipe) for the plain model, or t2v.fast.switch_scheduler(pipe, 'lcm') for few-step mode."
            )
        if guidance > 1:
            messages.append(
                f"guidance={guidance:g} with the MCM LoRA: it was distilled with guidance folded in, for guidance={FAST_GUIDANCE:g}. "
                f"Above 1 every step calls the UNet twice (prompt and negative prompt), doubling the time, and the look changes."
            )
        elif negative_prompt:
            messages.append(f"negative_prompt is ignored at guidance={guidance:g}: the few-step model runs without classifier-free guidance.")
        for message in messages:
            warnings.warn(message, FastSettingWarning, stacklevel=3)

    def record(self):
        """What a sidecar records of few-step mode: the style, where it came from and that it is merged. Notebook 08.

        So that `t2v generate --fast STYLE` (or make_fast) makes the same video again; `generate` asks.
        """
        return {"lora": {"style": self.style, "source": str(self.source), "merged": True}}


def mcm_target_modules(unet):
    """The full names of the UNet's layers that MCM's LoRA adapts, by MCM's own rule. Notebook 08."""
    return [
        name
        for name, _ in unet.named_modules()
        if name.endswith(MCM_TARGET_SUFFIXES) and not ("temp" in name and "conv" in name)
    ]


def build_tiny_lora(path=None, *, rebuild=False):
    """Build (once) random LoRAs for the tiny model, laid out like the hub repository yhzhai/mcm. Notebook 08.

    Returns the root folder; each style is a subfolder holding `adapter_config.json` and
    `adapter_model.safetensors`, with MCM's target layers. The weights are random, so a
    video made with them is noise, but loading and merging work exactly as with the real ones.
    Several processes may call it at once, as with `build_tiny_model` (t2v_helpers.tiny.build_once).
    """
    path = Path(path) if path else cache_dir() / f"tiny-mcm-lora-v{TINY_LORA_VERSION}"
    return build_once(path, _save_tiny_lora, marker="TINY_LORA.json", version=TINY_LORA_VERSION, what="tiny LoRA", rebuild=rebuild)


def _save_tiny_lora(folder):
    from diffusers import UNet3DConditionModel
    from peft import LoraConfig, get_peft_model

    for seed, style in enumerate(MCM_STYLES):
        unet = UNet3DConditionModel.from_pretrained(build_tiny_model() / "unet")
        config = LoraConfig(
            r=TINY_LORA_RANK,
            lora_alpha=TINY_LORA_RANK,
            target_modules=mcm_target_modules(unet),
            init_lora_weights=False,  # random A and B: a LoRA that changes the output, like a trained one
        )
        torch.manual_seed(seed)
        get_peft_model(unet, config).save_pretrained(folder / style)
        (folder / style / "README.md").unlink(missing_ok=True)  # peft's model-card template: not part of the adapter
    note = {"what": "random LoRAs for the tiny model; their videos are noise", "version": TINY_LORA_VERSION}
    (folder / "TINY_LORA.json").write_text(json.dumps(note, indent=2))


def lora_source(model_id):
    """Where the few-step LoRA for `model_id` lives: the tiny LoRA's folder for 'tiny', else yhzhai/mcm. Notebook 08."""
    return str(build_tiny_lora()) if model_id == TINY_MODEL_ID else MCM_REPO


def check_fast_family(family, model, name="--model"):
    """Refuse few-step mode for a model it was not made for: SettingError naming the models it fits. Notebook 08.

    The MCM LoRA was distilled from ModelScope's UNet at MCM_TRAINED (256x256, 16 frames) and runs
    with the LCM scheduler, so only families whose scheduler table has 'lcm' have a few-step mode,
    and of their listed models only those made at that size: the zeroscope fine-tunes (576x320 and
    1024x576, 24 frames) are refused. A folder or hub id not listed here is allowed (its size is
    not known before loading).
    """
    fits = [m for f in families().values() if "lcm" in f.schedulers for m in f.models if _made_at_mcm_size(m)]
    names = ", ".join(m.name for m in fits)
    try_instead = f"leaving out few-step mode (--fast, make_fast) with this model, or {name} tiny"
    if "lcm" not in family.schedulers:
        raise SettingError(
            name, model, f"is a {family.name} model, and few-step mode (the MCM LoRA with the LCM scheduler) fits "
            f"only the {' and '.join(sorted({m.family for m in fits}))} UNet it was distilled from",
            f"few-step mode with one of {names}", try_instead,
        )
    listed = find_model(model)
    if listed is not None and not _made_at_mcm_size(listed):
        width, height, frames = MCM_TRAINED
        raise SettingError(
            name, model, f"is {listed.id}, made for {listed.frames} frames of {listed.width}x{listed.height}, and few-step "
            f"mode does not fit it: the MCM LoRA was distilled from {MCM_TEACHER} at {width}x{height}, {frames} frames "
            f"(MCM's training script, yhZhai/mcm scripts/modelscopet2v_distillation.sh: --resolution=256 --num_frames=16), "
            f"and this model's UNet was fine-tuned away from those weights at another size",
            f"few-step mode with one of {names}", try_instead,
        )
    return family


def _made_at_mcm_size(model):
    return (model.width, model.height, model.frames) == MCM_TRAINED


def check_style(style):
    """Return the MCM style name, or raise SettingError listing the five styles. Notebook 08."""
    if isinstance(style, str) and not style.strip():  # '--fast ""' names no style: never taken for "no few-step mode"
        raise SettingError("style", style, "is empty", f"one of {list(MCM_STYLES)}", f"style={MCM_STYLES[0]!r}")
    return check_choice("style", style, MCM_STYLES, default=MCM_STYLES[0], problem="is not an MCM LoRA style")


def adapter_folder(source, style, *, allow_pickle=False):
    """The local folder holding the `style` adapter of `source` (a folder, or a hub id fetched to the cache). Notebook 08.

    Checked before peft reads anything: the weights must be `adapter_model.safetensors`; an
    adapter with only pickle weights (`adapter_model.bin`) raises PickleWeightsError unless
    `allow_pickle=True`, since peft falls back to pickle by itself. Returns the folder whose
    subfolder `style` peft then loads.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if Path(source).is_dir():
        root = Path(source)
        for name in (SAFE_WEIGHTS, PICKLE_WEIGHTS):  # a FIFO or a device by that name would block or fill memory in peft
            if os.path.lexists(root / style / name) and not (root / style / name).is_file():
                raise BadModelError(f"The few-step LoRA {style!r} in {root / style} has a {name} that is not a regular file.")
        has_safetensors = (root / style / SAFE_WEIGHTS).is_file()
        has_pickle = (root / style / PICKLE_WEIGHTS).is_file()
    else:  # a hub id: fetch the config and the safetensors weights, never the pickle ones unasked
        config = hf_hub_download(source, ADAPTER_CONFIG, subfolder=style)
        root = Path(config).parents[1]
        try:
            hf_hub_download(source, SAFE_WEIGHTS, subfolder=style)
            has_safetensors, has_pickle = True, False
        except EntryNotFoundError as error:
            if isinstance(error, LocalEntryNotFoundError):
                raise  # not cached and not downloadable: load_lora says how to fetch it
            has_safetensors, has_pickle = False, True
            if allow_pickle:
                hf_hub_download(source, PICKLE_WEIGHTS, subfolder=style)
    if not has_safetensors and has_pickle and not allow_pickle:
        where = root / style if Path(source).is_dir() else f"{source} (subfolder {style})"
        raise PickleWeightsError(
            f"The few-step LoRA {style!r} in {where} has only pickle weights ({PICKLE_WEIGHTS}) and no {SAFE_WEIGHTS}. "
            "Loading pickle can run any code hidden in the file, so it is refused by default. If you trust where the "
            "file came from, pass allow_pickle=True (command line: --allow-pickle); better, convert it to safetensors. "
            "The pipeline is left as it was.",
            [Path(PICKLE_WEIGHTS)],
        )
    return root


def read_adapter_config(folder):
    """The adapter's `adapter_config.json` as a dict, or BadModelError when it is not a readable LoRA config. Notebook 08."""
    path = Path(folder) / ADAPTER_CONFIG
    problem = None
    try:
        if not path.is_file():  # a FIFO or a folder by that name would block or fail in peft
            problem = "is missing or not a regular file"
        else:
            with open(path, "rb") as file:
                data = file.read(MAX_ADAPTER_CONFIG_BYTES + 1)
            config = json.loads(data.decode("utf-8")) if len(data) <= MAX_ADAPTER_CONFIG_BYTES else None
            if not isinstance(config, dict):
                problem = "is not a table of settings (or is larger than 1 MB)"
            elif config.get("peft_type") != "LORA":
                problem = f"names the adapter type {shorten(config.get('peft_type'), 40)}, and few-step mode loads only a LoRA ('LORA')"
    except (OSError, ValueError, RecursionError) as error:  # ValueError: not UTF-8 or not JSON
        problem = f"cannot be read ({type(error).__name__}: {shorten(str(error), 120)})"
    if problem:
        raise BadModelError(f"The adapter config {path} {problem}.")
    return config


def load_lora(unet, source, style, *, allow_pickle=False):
    """Wrap `unet` in a peft model with the `style` LoRA from `source` (hub id or folder). Notebook 08.

    Safetensors weights only, unless `allow_pickle=True` (adapter_folder). A LoRA that is missing
    raises ModelNotAvailableError; one that is there but cannot be read (a download cut short, a
    damaged file, a rank that does not fit this UNet, another adapter type, pickle data that
    torch's weights-only loader refuses) raises BadModelError naming what to delete.
    """
    import pickle

    from peft import PeftModel
    from safetensors import SafetensorError

    try:
        root = adapter_folder(source, style, allow_pickle=allow_pickle)
        read_adapter_config(root / style)
        return PeftModel.from_pretrained(unet, str(root), subfolder=style, adapter_name=style, torch_device="cpu")
    except PickleWeightsError as error:
        error.option = "--fast"
        raise
    except torch.OutOfMemoryError:
        raise
    # RuntimeError: a rank or shape that does not fit the UNet; KeyError, TypeError: a config peft cannot read;
    # UnpicklingError: torch's weights-only loader refused a pickle (its own advice, weights_only=False, would run it).
    except (OSError, ValueError, SafetensorError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as error:
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in str(error):
            detail = ("its pickle weights hold objects other than tensors, which could run code, so torch's "
                      "weights-only loader refused them and nothing in them ran")
        where = None
        if Path(source).is_dir():
            where, fix = Path(source) / style, f"Delete the folder {source} and download it again (the tiny LoRA's is rebuilt by itself)"
        elif not isinstance(error, OSError) or isinstance(error, SafetensorError):  # a hub LoRA whose cached download is damaged
            from huggingface_hub import constants

            cached = Path(constants.HF_HUB_CACHE) / ("models--" + source.replace("/", "--"))
            where, fix = f"{source} (cached in {cached})", f"Delete {cached} and run again to download it anew"
        if where is None:
            problem = ModelNotAvailableError(not_available_message(source, error))
        else:
            problem = BadModelError(
                f"The few-step LoRA {style!r} in {where} cannot be loaded: it is damaged, incomplete or not a LoRA "
                f"for this model ({detail}). {fix}; the pipeline is left as it was."
            )
        problem.option = "--fast"  # what the command line names it by
        raise problem from error


def make_fast(pipe, style=MCM_STYLES[0], *, source=None, allow_pickle=False, verbose=True):
    """Turn a loaded pipeline into the few-step one: merge the MCM LoRA, set the LCM scheduler. Notebook 08.

    Returns a FastMode whose `settings` (4 steps, guidance 1.0) fit the distilled model.
    The adapter's weights load from safetensors only; `allow_pickle=True` also loads a pickle
    `adapter_model.bin` (it can run code: only for an adapter you trust). Before peft loads
    anything, every UNet weight is copied to the CPU, so `undo_fast` restores the original
    UNet exactly, and a `make_fast` that fails (or is stopped) leaves it as it was, whatever
    the adapter changes besides its LoRA layers (`modules_to_save`, `bias="all"`). Applying it
    twice is refused.
    """
    if getattr(pipe, "t2v_fast", None):
        raise SettingError(
            "pipe", f"a pipeline already in few-step mode ({pipe.t2v_fast.style})", "cannot take a second LoRA merge",
            "a pipeline without a merged MCM LoRA", "t2v.undo_fast(pipe) first, then make_fast(pipe, style)",
        )
    check_fast_family(family_of(pipe), getattr(pipe, "t2v_model_id", pipe.name_or_path), "pipe")
    style = check_style(style)
    source = source or lora_source(getattr(pipe, "t2v_model_id", None))
    previous, unet = pipe.scheduler, pipe.unet
    # All of the UNet, not only the layers the LoRA wraps: an adapter may also carry biases
    # (bias="all", lora_bias) and whole modules (modules_to_save), which loading or merging overwrite.
    # Copying all rather than refusing such adapters keeps every adapter peft can merge undoable; for the
    # real UNet in float16 the copy is 2.63 GiB instead of the 2.13 GiB of MCM's layers alone (1.411 B
    # against 1.142 B values, counted on the meta device from t2v_helpers.families.modelscope.UNET_CONFIG).
    originals = {key: value.detach().to("cpu", copy=True) for key, value in unet.state_dict().items()}
    try:
        peft_unet = load_lora(unet, source, style, allow_pickle=allow_pickle)
        layers = _lora_layers(unet)
        merged = _merge(peft_unet, source, style)
    except BaseException:  # a damaged file, Ctrl-C: whatever stops it, the UNet is left as it was
        _remove_peft_wrappers(unet)
        _put_back(unet, originals)
        raise
    pipe.unet = merged
    set_scheduler(pipe, "lcm")
    pipe.t2v_fast = FastMode(style, source, layers=len(layers), allow_pickle=allow_pickle, previous_scheduler=previous, originals=originals)
    if verbose:
        print(
            f"Merged the MCM LoRA {style!r} from {source} into {len(layers)} UNet layers and set the LCM scheduler "
            f"(timestep_scaling=4.0). Use {FAST_STEPS} steps and guidance {FAST_GUIDANCE}: `**fast.settings`."
        )
    return pipe.t2v_fast


def _merge(peft_unet, source, style):
    try:
        return peft_unet.merge_and_unload()
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as error:  # e.g. lora_bias=True on a layer without a bias
        detail = " ".join(str(error).split())[:300]
        problem = BadModelError(
            f"The few-step LoRA {style!r} from {source} cannot be merged into this UNet (peft said: {detail}). Use an "
            "adapter that peft can merge, such as the MCM LoRAs from yhzhai/mcm; the pipeline is left as it was."
        )
        problem.option = "--fast"
        raise problem from error


def undo_fast(pipe, verbose=True):
    """Put back the UNet weights and the scheduler that `make_fast` replaced. Notebook 08."""
    fast = getattr(pipe, "t2v_fast", None)
    if not fast:
        raise SettingError("pipe", "a pipeline not in few-step mode", "has nothing to undo", "a pipeline after make_fast", "t2v.make_fast(pipe) first")
    _put_back(pipe.unet, fast.originals)
    pipe.scheduler = fast.previous_scheduler
    pipe.t2v_fast = None
    if verbose:
        print(f"Restored the original UNet weights ({fast.layers} layers carried the LoRA) and the {type(pipe.scheduler).__name__}.")


def _lora_layers(unet):
    # The layers peft wrapped, by their names in the plain UNet.
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: module for name, module in unet.named_modules() if isinstance(module, BaseTunerLayer)}


def _remove_peft_wrappers(unet):
    # What peft's unload() does, for a UNet whose PeftModel never came back (its loading failed):
    # LoRA layers and modules_to_save wrappers give back the module they wrap.
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    wrapped = [(n, m) for n, m in unet.named_modules() if isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper))]
    for name, wrapper in reversed(wrapped):  # innermost first
        parent, _, child = name.rpartition(".")
        inner = wrapper.get_base_layer() if isinstance(wrapper, BaseTunerLayer) else wrapper.original_module
        setattr(unet.get_submodule(parent), child, inner)
    if hasattr(unet, "peft_config"):
        del unet.peft_config


def _put_back(unet, originals):
    state = unet.state_dict()
    if state.keys() != originals.keys():  # never expected: say so rather than leave a half-restored UNet
        raise RuntimeError(f"The UNet's layers changed ({len(state.keys() ^ originals.keys())} names differ); reload the pipeline.")
    with torch.no_grad():
        for key, value in originals.items():
            state[key].copy_(value)


def compile_unet(pipe, **options):
    """Compile the whole UNet with torch.compile (in place); the first call then pays the compilation. Notebook 08.

    `compile_repeated_blocks` does not apply: UNet3DConditionModel declares no repeated blocks.
    """
    pipe.unet.compile(**options)
    return pipe.unet


def switch_scheduler(pipe, name, style=None, *, source=None, allow_pickle=False):
    """Set the named scheduler; 'lcm' also merges the MCM LoRA `style`, any other undoes it. Notebook 08.

    What the studio's scheduler menu, `compare_schedulers` and `t2v generate --fast` call, so
    that the few-step scheduler never runs without the LoRA it was distilled with. `style` and
    `source` default to the merged LoRA's, else MCM_STYLES[0] and `lora_source`. Asking for
    another style (or source) while one is merged swaps it: undo, then merge the one asked for.
    """
    fast = getattr(pipe, "t2v_fast", None)
    if name == "lcm":
        style = check_style(style if style is not None else fast.style if fast else MCM_STYLES[0])
        wanted = source or (fast.source if fast else lora_source(getattr(pipe, "t2v_model_id", None)))
        if fast and (fast.style, fast.source) == (style, wanted) and scheduler_name(pipe) == "lcm":
            return fast
        if fast:
            undo_fast(pipe, verbose=False)
        return make_fast(pipe, style, source=wanted, allow_pickle=allow_pickle, verbose=False)
    if fast:
        undo_fast(pipe, verbose=False)
    set_scheduler(pipe, name)
    return None

