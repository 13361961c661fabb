"""What differs between model families, one description per family, looked up by what a checkpoint says it is. Notebook 09.

A family (ModelScope, Wan, CogVideoX, ...) is one module in this package that defines
`FAMILY = Family(...)`. Its named models (real checkpoints and tiny offline copies) are
`Model` entries in it. Every helper asks `family_of(pipe)` or `find_model(name)` instead of
assuming one model: adding a family is one new file here.
"""

import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import torch


@dataclass(frozen=True)
class Model:
    """One named checkpoint of a family and its own defaults. Notebook 09.

    `name` is what users type (`load_pipeline('wan')`, `t2v generate --model wan`); `id` is the
    hub id. A tiny model has `build(folder)`, which writes it in the real repository's layout,
    and `version`, bumped when its recipe changes; its `id` is its name.
    """

    name: str
    id: str
    family: str
    height: int
    width: int
    frames: int
    variant: Optional[str] = None  # the weight-file variant to ask for, such as "fp16"
    about: str = ""  # one sentence for the learner: what it is, where its defaults come from
    build: Optional[Callable] = None
    version: int = 0

    @property
    def tiny(self):
        """Whether this is a random-weight model built in code (its videos are noise). Notebook 09."""
        return self.build is not None


@dataclass(frozen=True)
class Family:
    """Everything the helpers need to know about one kind of text-to-video pipeline. Notebook 09.

    Sizes: height and width are multiples of `size_multiple`; frame counts are
    `frame_step * k + 1` (any count when `frame_step` is 1).
    """

    name: str
    pipeline: str  # the diffusers class that makes videos from text
    classes: tuple  # every model_index.json `_class_name` that belongs to this family
    denoiser: str  # the pipeline attribute that denoises at every step: "unet" or "transformer"
    models: tuple  # Model entries; the first is the family's default
    fps: int
    steps: int
    guidance: float
    size_multiple: int
    frame_step: int
    frames_why: str  # why frame counts take that form, for error messages ("" when any count works)
    max_tokens: int  # prompt tokens the text encoder reads
    schedulers: dict  # name -> (scheduler class, settings that differ from the model's own config)
    step_limits: dict  # name -> the most steps that still give finite frames
    default_scheduler: str
    on_step: Callable  # on_step(fn) -> the pipeline keyword arguments that call fn(latents) after each step
    gpu_dtype: torch.dtype  # the dtype for the weights on a GPU
    float32_parts: tuple = ()  # parts kept in float32 whatever the dtype (Wan's VAE)
    # The VAE methods that make decoding lean: ModelScope's VAE decodes frames as a batch, so
    # slicing decodes one frame at a time; the video VAEs of Wan and CogVideoX need tiling.
    vae_switches: tuple = ("enable_slicing",)
    decode: Optional[Callable] = None  # decode(pipe, latents of one video, batch dim kept) -> (frames, height, width, 3) in 0..1
    memory: Optional[object] = None  # a t2v_helpers.memory profile of the full-size model
    pipeline_kwargs: dict = field(default_factory=dict)  # extra keyword arguments every call passes
    upscaler: Optional[str] = None  # the diffusers video-to-video class that can reuse its parts (notebook 11), if any
    max_frames: Optional[int] = None  # the most frames its models make, where the publisher sets a limit
    max_frames_why: str = ""  # that limit's source, for error messages
    about: str = ""

    @property
    def tiny_model(self):
        """The name of the family's tiny random-weight model, for work without a GPU or the hub. Notebook 09."""
        return next(m.name for m in self.models if m.tiny)

    def check_frames(self, frames):
        """Whether `frames` is a count this family makes (4k+1 for Wan, 8k+1 up to 49 for CogVideoX). Notebook 09."""
        return 1 <= frames <= (self.max_frames or frames) and (frames - 1) % self.frame_step == 0

    def half_frames(self, frames):
        """The most frames of this family's form up to half of `frames` (at least 1): a leaner retry. Notebook 04."""
        half = max(1, frames // 2)
        return (half - 1) // self.frame_step * self.frame_step + 1


@dataclass(frozen=True)
class Profile:
    """What a family's full-size model needs in memory, as data: each family file's `memory=`. Notebook 07.

    `parts()` builds the text encoder, the denoiser and the VAE (float32; `parameters` calls
    it on the meta device, so nothing is allocated). `tokens(frames, height, width)` is the
    number of positions the denoiser works on for one video; `per_token` its activation
    bytes per position per byte of dtype, for one video of the batch. `vae(frames, height,
    width, slicing)` is the decode's activation bytes per byte of the VAE's dtype. The
    coefficients come from CPU measurements in the results file `source`.
    """

    parts: Callable
    denoiser: str  # the key of the denoiser in parts(): "unet" or "transformer"
    tokens: Callable
    per_token: float
    vae: Callable
    guidance_batch: int = 2  # videos per denoiser call with guidance: 1 where prompt and negative prompt run as two calls
    float32_parts: tuple = ()  # parts kept in float32 whatever the dtype
    source: str = ""


def latent_tokens(frames, height, width, *, frames_per_latent=1, pixels_per_token=8, extra=0):
    """Positions a denoiser works on for one video: latent frames x rows x columns of tokens, plus `extra`. Notebook 07.

    ModelScope's UNet: every frame, 8x8 pixels a position. Wan and CogVideoX: the first frame
    and each next 4 make a latent frame, and 2x2 patches of 8x8-pixel latents make a token
    (16x16 pixels); CogVideoX adds its 226 text tokens to the same sequence.
    """
    return ((frames - 1) // frames_per_latent + 1) * (height // pixels_per_token) * (width // pixels_per_token) + extra


def chunked_vae(per_pixel, per_frame_pixel, tile, tiled_per_pixel=None):
    """The decode activations of a video VAE that decodes a few frames at a time, for a Profile's `vae`. Notebook 07.

    A fixed cost per pixel of what it decodes at once (the frame, or one `tile` (height,
    width) when lean decoding, tiling, is on; `tiled_per_pixel` where a tile costs another
    amount per pixel than a whole frame), plus the decoded frames it gathers, per pixel of
    every frame. Returns vae(frames, height, width, lean) in bytes per byte of dtype.
    """

    def vae(frames, height, width, lean):
        # A frame no larger than one tile is decoded whole, tiling or not (diffusers' VAEs tile only larger frames).
        tiled = lean and (height > tile[0] or width > tile[1])
        at_once = (tiled_per_pixel or per_pixel) * min(height, tile[0]) * min(width, tile[1]) if tiled else per_pixel * height * width
        return at_once + per_frame_pixel * frames * height * width

    return vae


def legacy_callback(fn):
    """Keyword arguments for pipelines with the old `callback(step, timestep, latents)` (ModelScope). Notebook 04."""
    return {"callback": lambda step, timestep, latents: fn(latents)}


def step_end_callback(fn):
    """Keyword arguments for pipelines with `callback_on_step_end` (Wan, CogVideoX, most newer pipelines). Notebook 09."""

    def callback(pipe, step, timestep, tensors):
        fn(tensors["latents"])
        return {}

    return {"callback_on_step_end": callback, "callback_on_step_end_tensor_inputs": ["latents"]}


@lru_cache(maxsize=1)
def families():
    """Every family in this package, by name; ModelScope first (the article's). Notebook 09."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "modelscope", m.name)):
        family = importlib.import_module(f"{__name__}.{info.name}").FAMILY
        found[family.name] = family
    return found


def models():
    """Every named model of every family, by name. Notebook 09."""
    return {model.name: model for family in families().values() for model in family.models}


def find_model(name_or_id):
    """The Model whose name or hub id this is, or None (a folder or a hub id not listed here). Notebook 09."""
    if not isinstance(name_or_id, str):
        return None
    key = name_or_id.strip()
    listed = models()
    # Hub ids are case-insensitive on the hub, so here too.
    return listed.get(key.lower()) or next((m for m in listed.values() if m.id.lower() == key.lower()), None)


def family_named(name):
    """The Family called `name` ('modelscope', 'wan', ...). Notebook 09."""
    return families()[name]


def family_of_class(class_name):
    """The Family a model_index.json `_class_name` belongs to, or None. Notebook 09."""
    return next((f for f in families().values() if class_name in f.classes), None)


def family_of(pipe):
    """The Family of a loaded pipeline (by its class), ModelScope for anything unknown. Notebook 09."""
    return family_of_class(type(pipe).__name__) or families()["modelscope"]


def family_of_folder(folder):
    """The Family named by the model_index.json in `folder`, or None if there is none or it is unknown. Notebook 09."""
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
        return family_of_class(index.get("_class_name"))
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def model_of(pipe):
    """The Model a loaded pipeline was loaded as, else its family's default model. Notebook 09."""
    return find_model(getattr(pipe, "t2v_model_id", None)) or family_of(pipe).models[0]


def lean_vae(pipe):
    """Switch on the family's lean decoding (`vae_switches`); returns the calls made, as text. Notebook 07."""
    switches = family_of(pipe).vae_switches
    for switch in switches:
        getattr(pipe.vae, switch)()
    return [f"pipe.vae.{switch}()" for switch in switches]


def vae_is_lean(pipe):
    """Whether every one of the family's lean-decoding switches is on. Notebook 07."""
    return all(getattr(pipe.vae, "use_" + switch.removeprefix("enable_"), True) for switch in family_of(pipe).vae_switches)


def denoiser(pipe):
    """The part of `pipe` called at every step (twice for Wan with guidance: prompt, then negative prompt): its UNet or transformer. Notebook 09."""
    return getattr(pipe, family_of(pipe).denoiser)
