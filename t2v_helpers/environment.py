"""What this machine has: library versions and the GPU, and what that means. Notebook 01."""

import platform
from importlib import metadata

from . import pipeline

LIBRARIES = ("torch", "diffusers", "transformers", "accelerate", "imageio-ffmpeg", "t2v-helpers")


def library_versions():
    """Versions of Python and the libraries the lesson uses. Notebook 01."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def gpu_info():
    """The CUDA GPU's name and memory in GiB, or None when there is none. Notebook 01."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}


def environment_report():
    """A printable report of versions, the GPU, and what the lesson will do here. Notebook 01."""
    lines = [f"{name:15} {version}" for name, version in library_versions().items()]
    gpu = gpu_info()
    if gpu is None:
        dtype = "bfloat16 (this CPU has bfloat16 instructions)" if pipeline.cpu_has_bfloat16() else "float32"
        lines += [
            f"{'GPU':15} no GPU",
            "",
            f"No CUDA GPU: the notebooks run on the CPU in {dtype} and skip CPU offload",
            "(diffusers raises 'requires accelerator' without one). The real 1.7 B model",
            "would take many minutes per video here, so use MODEL_ID = 'tiny' to follow",
            "along; its videos are noise, but every step runs.",
        ]
    else:
        lines += [
            f"{'GPU':15} {gpu['name']}, {gpu['memory_gib']} GiB",
            "",
            "CUDA GPU found: the notebooks load the fp16 weights; offload='auto' picks the fastest",
            "offload mode that fits the free GPU memory (notebook 07).",
        ]
    return "\n".join(lines)
