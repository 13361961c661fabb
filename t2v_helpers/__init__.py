"""Helpers for the text-to-video tutorial: `import t2v_helpers as t2v`.

What the notebooks call, by the notebook that teaches it (each function's docstring names it too):

    01 set up              environment_report, library_versions
    02 build the pipeline  load_pipeline, choose_runtime, default_model, model_path, MODEL_ID,
                           OFFLOAD_MODES, build_tiny_model, parameter_counts
    03 swap schedulers     SCHEDULERS, set_scheduler, scheduler_name, scheduler_names,
                           compare_schedulers, save_comparison, show_table
    04 generate, display   generate, check_settings, VideoResult, save_video, show_video
    05 the studio          Studio
    06 watch it emerge     capture_denoising, decode_latents, pick_steps, preview_costs,
                           views_at_steps, save_grid, tile_videos
    07 memory and speed    the modules t2v.memory (predict, choose_offload) and t2v.measured
    08 make it fast        make_fast, undo_fast, MCM_STYLES, count_unet_calls
    09-10 other families   model_family, the modules t2v.families and t2v.text_encoding
    11 make it sharper     the module t2v.upscale
    errors                 SettingError, RAMError, GPUMemoryError, ModelNotAvailableError,
                           PickleWeightsError, VideoExportError, PromptTooLongWarning, FastSettingWarning

Everything else is reachable through its module (`t2v.video.write_gif`, `t2v.families.find_model`).
The modules form layers that only import downwards (README, "Layout"; pyproject's import-linter contract):
front ends (studio, cli, batch) -> the lessons' extras (compare, denoise, upscale, text_encoding,
measured, fast) -> the core (generate, video, publish, environment, pipeline, schedulers, memory,
validate) -> families -> tiny, notices, errors.
"""

from . import families, measured, memory, pipeline, text_encoding, upscale, video
from .compare import compare_schedulers, count_unet_calls, save_comparison, save_grid, show_table, tile_videos
from .denoise import capture_denoising, decode_latents, pick_steps, preview_costs, views_at_steps
from .environment import environment_report, library_versions
from .errors import FastSettingWarning, GPUMemoryError, ModelNotAvailableError, PickleWeightsError, PromptTooLongWarning, RAMError, SettingError, VideoExportError
from .families.modelscope import build_tiny_model
from .fast import MCM_STYLES, make_fast, undo_fast
from .generate import VideoResult, check_settings, generate
from .pipeline import MODEL_ID, OFFLOAD_MODES, choose_runtime, default_model, load_pipeline, model_family, model_path, parameter_counts
from .schedulers import SCHEDULERS, scheduler_name, scheduler_names, set_scheduler
from .studio import Studio
from .video import save_video, show_video

__version__ = "0.1.0"

__all__ = [
    "environment_report", "library_versions",
    "load_pipeline", "choose_runtime", "default_model", "model_path", "MODEL_ID", "OFFLOAD_MODES", "build_tiny_model", "parameter_counts",
    "SCHEDULERS", "set_scheduler", "scheduler_name", "scheduler_names", "compare_schedulers", "save_comparison", "show_table",
    "generate", "check_settings", "VideoResult", "save_video", "show_video",
    "Studio",
    "capture_denoising", "decode_latents", "pick_steps", "preview_costs", "views_at_steps", "save_grid", "tile_videos",
    "make_fast", "undo_fast", "MCM_STYLES", "count_unet_calls",
    "model_family",
    "SettingError", "RAMError", "GPUMemoryError", "ModelNotAvailableError", "PickleWeightsError", "VideoExportError",
    "PromptTooLongWarning", "FastSettingWarning",
]  # fmt: skip
