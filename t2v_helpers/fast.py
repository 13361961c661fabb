"""Few-step videos: the Motion Consistency Model (MCM) LoRA, the LCM scheduler and a compiled UNet. Notebook 08.

MCM (Zhai et al., NeurIPS 2024) distilled ModelScope's UNet into a low-rank adapter
(LoRA) that makes a video in 4 steps with guidance built in, instead of 25 steps
with two UNet evaluations each. `make_fast` merges that LoRA into a loaded pipeline
and sets diffusers' LCMScheduler; `undo_fast` puts the original weights back.
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import BadModelError, ModelNotAvailableError, SettingError
from .families import families, family_of
from .schedulers import set_scheduler
from .tiny import TINY_MODEL_ID, build_once, build_tiny_model, cache_dir
from .validate import check_choice

MCM_REPO = "yhzhai/mcm"
MCM_STYLES = (
    "modelscopet2v-webvid",
    "modelscopet2v-laion",
    "modelscopet2v-anime",
    "modelscopet2v-real",
    "modelscopet2v-3d-cartoon",
)
FAST_STEPS = 4  # what MCM's demo uses; 1 and 2 steps also work
FAST_GUIDANCE = 1.0  # guidance is distilled into the LoRA: 1.0 makes the pipeline skip the negative prompt
MAX_FAST_STEPS = 8  # beyond this the LCM scheduler only re-adds noise the model was not trained to remove
# The layers MCM's training script (yhZhai/mcm main.py) puts a LoRA on: every module whose
# name ends with one of these, except the temporal 3D convolutions, which peft cannot adapt.
MCM_TARGET_SUFFIXES = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)
MCM_RANK = 64  # the training script's default rank and alpha
TINY_LORA_RANK = 4  # the tiny UNet's layers are 16 to 32 wide
TINY_LORA_VERSION = 1


class FastSettingWarning(UserWarning):
    """A setting that does not fit the few-step model; the message says what it was distilled for. Notebook 08."""


@dataclass
class FastMode:
    """What `make_fast` did to a pipeline, and what `undo_fast` needs to reverse it. Notebook 08."""

    style: str
    source: str
    steps: int = FAST_STEPS
    guidance: float = FAST_GUIDANCE
    layers: int = 0
    previous_scheduler: object = field(default=None, repr=False)
    originals: dict = field(default_factory=dict, repr=False)

    @property
    def settings(self):
        """The steps and guidance the LoRA was distilled for: `generate(pipe, prompt, **fast.settings)`. Notebook 08."""
        return dict(steps=self.steps, guidance=self.guidance)


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
    """Refuse few-step mode for a family it was not made for: SettingError naming the families it fits. Notebook 08.

    The MCM LoRA was distilled from ModelScope's UNet and runs with the LCM scheduler, so only
    families whose scheduler table has 'lcm' have a few-step mode.
    """
    if "lcm" in family.schedulers:
        return family
    fits = [f for f in families().values() if "lcm" in f.schedulers]
    names = ", ".join(m.name for f in fits for m in f.models)
    raise SettingError(
        name, model, f"is a {family.name} model, and few-step mode (the MCM LoRA with the LCM scheduler) fits "
        f"only the {' and '.join(f.name for f in fits)} UNet it was distilled from",
        f"few-step mode with one of {names}", f"leaving out few-step mode (--fast, make_fast) with this model, or {name} tiny",
    )


def check_style(style):
    """Return the MCM style name, or raise SettingError listing the five styles. Notebook 08."""
    return check_choice("style", style, MCM_STYLES, default=MCM_STYLES[0], problem="is not an MCM LoRA style")


def load_lora(unet, source, style):
    """Wrap `unet` in a peft model with the `style` LoRA from `source` (hub id or folder). Notebook 08.

    A LoRA that is missing raises ModelNotAvailableError; one that is there but cannot be read
    (a download cut short, a damaged file) raises BadModelError naming what to delete.
    """
    from peft import PeftModel
    from safetensors import SafetensorError

    try:
        return PeftModel.from_pretrained(unet, source, subfolder=style, adapter_name=style, torch_device="cpu")
    except (OSError, ValueError, SafetensorError) as error:
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        where = None
        if Path(source).is_dir():
            where, fix = Path(source) / style, f"Delete the folder {source} and download it again (the tiny LoRA's is rebuilt by itself)"
        elif isinstance(error, SafetensorError):  # a hub LoRA whose cached download is damaged
            from huggingface_hub import constants

            cached = Path(constants.HF_HUB_CACHE) / ("models--" + source.replace("/", "--"))
            where, fix = f"{source} (cached in {cached})", f"Delete {cached} and run again to download it anew"
        if where is None:
            from .pipeline import _not_available_message

            problem = ModelNotAvailableError(_not_available_message(source, error))
        else:
            problem = BadModelError(
                f"The few-step LoRA {style!r} in {where} cannot be loaded: it is damaged, incomplete or not a LoRA "
                f"for this model ({detail}). {fix}; the pipeline is left as it was."
            )
        problem.option = "--fast"  # what the command line names it by
        raise problem from error


def make_fast(pipe, style=MCM_STYLES[0], *, source=None, verbose=True):
    """Turn a loaded pipeline into the few-step one: merge the MCM LoRA, set the LCM scheduler. Notebook 08.

    Returns a FastMode whose `settings` (4 steps, guidance 1.0) fit the distilled model.
    The weights the merge changes are kept on the CPU, so `undo_fast` restores the
    original UNet exactly. Applying it twice is refused.
    """
    if getattr(pipe, "t2v_fast", None):
        raise SettingError(
            "pipe", f"a pipeline already in few-step mode ({pipe.t2v_fast.style})", "cannot take a second LoRA merge",
            "a pipeline without a merged MCM LoRA", "t2v.undo_fast(pipe) first, then make_fast(pipe, style)",
        )
    check_fast_family(family_of(pipe), getattr(pipe, "t2v_model_id", pipe.name_or_path), "pipe")
    style = check_style(style)
    source = source or lora_source(getattr(pipe, "t2v_model_id", None))
    previous, unet, originals = pipe.scheduler, pipe.unet, {}
    try:
        peft_unet = load_lora(unet, source, style)
        layers = _lora_layers(unet)
        # The weights of exactly the layers this adapter wraps, before the merge changes them.
        originals = {
            f"{name}.{key}": value.detach().to("cpu", copy=True)
            for name, layer in layers.items()
            for key, value in layer.get_base_layer().named_parameters()
        }
        merged = peft_unet.merge_and_unload()
    except BaseException:  # a damaged file, Ctrl-C: whatever stops it, the UNet is left as it was
        _remove_lora_layers(unet)
        _put_back(unet, originals)
        raise
    pipe.unet = merged
    set_scheduler(pipe, "lcm")
    pipe.t2v_fast = FastMode(style, source, layers=len(layers), previous_scheduler=previous, originals=originals)
    if verbose:
        print(
            f"Merged the MCM LoRA {style!r} from {source} into {len(layers)} UNet layers and set the LCM scheduler "
            f"(timestep_scaling=4.0). Use {FAST_STEPS} steps and guidance {FAST_GUIDANCE}: `**fast.settings`."
        )
    return pipe.t2v_fast


def undo_fast(pipe, verbose=True):
    """Put back the UNet weights and the scheduler that `make_fast` replaced. Notebook 08."""
    fast = getattr(pipe, "t2v_fast", None)
    if not fast:
        raise SettingError("pipe", "a pipeline not in few-step mode", "has nothing to undo", "a pipeline after make_fast", "t2v.make_fast(pipe) first")
    _put_back(pipe.unet, fast.originals)
    pipe.scheduler = fast.previous_scheduler
    pipe.t2v_fast = None
    if verbose:
        print(f"Restored the original weights of {fast.layers} UNet layers and the {type(pipe.scheduler).__name__}.")


def _lora_layers(unet):
    # The layers peft wrapped, by their names in the plain UNet.
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: module for name, module in unet.named_modules() if isinstance(module, BaseTunerLayer)}


def _remove_lora_layers(unet):
    # What peft's unload() does, for a UNet whose PeftModel never came back (its loading failed).
    for name, layer in _lora_layers(unet).items():
        parent, _, child = name.rpartition(".")
        setattr(unet.get_submodule(parent), child, layer.get_base_layer())
    if hasattr(unet, "peft_config"):
        del unet.peft_config


def _put_back(unet, originals):
    state = unet.state_dict()
    with torch.no_grad():
        for key, value in originals.items():
            state[key].copy_(value)


def check_fast_settings(pipe, steps, guidance, negative_prompt=None):
    """Warn (FastSettingWarning) about settings the few-step model was not distilled for. Notebook 08."""
    fast = getattr(pipe, "t2v_fast", None)
    lcm = type(getattr(pipe, "scheduler", None)).__name__ == "LCMScheduler"
    if fast and guidance > 1:
        warnings.warn(
            f"guidance={guidance:g} with the MCM LoRA: it was distilled with guidance folded in, for guidance={FAST_GUIDANCE:g}. "
            f"Above 1 every step calls the UNet twice (prompt and negative prompt), doubling the time, and the look changes.",
            FastSettingWarning,
            stacklevel=3,
        )
    if fast and guidance <= 1 and negative_prompt:
        warnings.warn(
            f"negative_prompt is ignored at guidance={guidance:g}: the few-step model runs without classifier-free guidance.",
            FastSettingWarning,
            stacklevel=3,
        )
    if lcm and steps > MAX_FAST_STEPS:
        warnings.warn(
            f"steps={steps} with the LCM scheduler: the MCM LoRA was distilled for 1 to {FAST_STEPS} steps, and more than "
            f"{MAX_FAST_STEPS} only add time. Use steps={FAST_STEPS}, or a scheduler such as 'dpm' for 25 steps.",
            FastSettingWarning,
            stacklevel=3,
        )


def compile_unet(pipe, **options):
    """Compile the whole UNet with torch.compile (in place); the first call then pays the compilation. Notebook 08.

    `compile_repeated_blocks` does not apply: UNet3DConditionModel declares no repeated blocks.
    """
    pipe.unet.compile(**options)
    return pipe.unet


def switch_scheduler(pipe, name, style=MCM_STYLES[0]):
    """Set the named scheduler; 'lcm' also merges the MCM LoRA, any other undoes it. Notebook 08.

    What the studio's scheduler menu and `t2v generate --fast` call, so that the few-step
    scheduler never runs without the LoRA it was distilled with.
    """
    fast = getattr(pipe, "t2v_fast", None)
    if name == "lcm" and not fast:
        return make_fast(pipe, style, verbose=False)
    if name != "lcm" and fast:
        undo_fast(pipe, verbose=False)
    if name != "lcm":
        set_scheduler(pipe, name)
    return getattr(pipe, "t2v_fast", None)
