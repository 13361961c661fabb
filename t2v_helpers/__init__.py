"""Helpers for the text-to-video tutorial: `import t2v_helpers as t2v`.

Each function's docstring names the notebook that teaches it.
"""

from .compare import DEFAULT_RUNS, Comparison, compare_schedulers, count_unet_calls, format_table, save_comparison, save_grid, show_table, tile_videos
from .denoise import Denoising, capture_denoising, decode_latents, pick_steps, preview_costs, preview_latents, views_at_steps
from .environment import environment_report, gpu_info, library_versions
from .fast import MCM_STYLES, FastSettingWarning, make_fast, undo_fast
from .errors import GPUMemoryError, ModelNotAvailableError, PickleWeightsError, PromptTooLongWarning, RAMError, SettingError, VideoExportError
from .generate import VideoResult, check_settings, generate
from . import families
from .families import Family, Model, family_of, find_model, model_of, models
from .pipeline import MODEL_ID, OFFLOAD_MODES, choose_runtime, default_model, load_pipeline, model_family, model_path, parameter_counts
from .schedulers import SCHEDULERS, check_scheduler_name, scheduler_name, scheduler_names, set_scheduler
from .studio import HistoryEntry, Studio
from .tiny import TINY_MODEL_ID, build_tiny_model
from .validate import check_fps, check_output_dir, check_prompt
from .video import MODEL_FPS, SavedVideo, save_video, show_video, slug, write_gif, write_mp4, write_png_frames

__version__ = "0.1.0"


def __getattr__(name):
    # Notebook 07's modules load on first use (t2v.measured, t2v.memory).
    if name in ("architecture", "measured", "memory"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 't2v_helpers' has no attribute {name!r}")
