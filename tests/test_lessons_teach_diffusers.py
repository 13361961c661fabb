"""The lessons teach diffusers: every helper a notebook calls is first shown as the library code it wraps.

The rule (STYLE.md, "a helper that hides the library call the lesson is about: show the call
first, then the one-line helper"): for each notebook and each helper of `t2v_helpers` it
calls, the diffusers (or peft, or torch) call that the helper wraps appears earlier in the
same notebook, in a code cell or a fenced code block, or in an earlier notebook that this
notebook links by file name. Then a learner can rebuild any cell without the package.

WRAPS says what each helper wraps, as patterns of the raw code; OWN lists the helpers that
wrap no library call (they compute or show something of the package's own), each with the
reason. A helper in neither table fails here, so a new one is sorted when it is first used.
"""

import re
from pathlib import Path

import nbformat
import pytest

from t2v_helpers.families import families

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# helper -> (what it wraps, in words; the patterns of the raw code, all of which must be shown)
WRAPS = {
    "load_pipeline": ("<Family>Pipeline.from_pretrained (per family, checked in FROM_PRETRAINED)", []),
    "set_scheduler": ("<Scheduler>.from_config(pipe.scheduler.config)", [r"\.from_config\(\s*[\w.]*config"]),
    "generate": ("the pipeline call, pipe(prompt, num_inference_steps=...)", [r"num_inference_steps\s*="]),
    "Studio": ("the pipeline call that its Generate button makes", [r"num_inference_steps\s*="]),
    "compare_schedulers": ("a scheduler swap and a pipeline call per scheduler", [r"\.from_config\(", r"num_inference_steps\s*="]),
    "capture_denoising": ("the pipeline call with a step callback", [r"\bcallback(_on_step_end)?\s*="]),
    "decode_latents": ("the VAE's decode", [r"vae\.decode\("]),
    "save_video": ("diffusers.utils.export_to_video", [r"export_to_video\("]),
    "make_fast": ("peft's PeftModel.from_pretrained, then merge_and_unload", [r"PeftModel\.from_pretrained\(", r"\.merge_and_unload\("]),
    "compile_unet": ("torch.compile of the UNet, pipe.unet.compile()", [r"(torch\.compile\(|unet\.compile\()"]),
    "load_upscaler": ("VideoToVideoSDPipeline built from the loaded parts or loaded with from_pretrained", [r"VideoToVideoSDPipeline(\.from_pretrained)?\("]),
    "upscale": ("the video-to-video pipeline call, upscaler(prompt, video=..., strength=...)", [r"video\s*=.*strength\s*="]),
    "encode_then_free": ("pipe.encode_prompt, then freeing the text encoder", [r"\.encode_prompt\("]),
    "choose_runtime": ("the offload switch pipe.enable_model_cpu_offload()", [r"enable_model_cpu_offload\("]),
    "parameter_counts": ("sum(p.numel() for p in part.parameters())", [r"\.numel\(\)"]),
}
OWN = {
    "default_model": "picks the tiny model when there is no GPU and says why",
    "model_path": "the folder of a tiny model built in code",
    "cpu_has_bfloat16": "asks torch whether this CPU computes in bfloat16",
    "environment_report": "prints versions and the device",
    "library_versions": "prints versions",
    "show_video": "shows an MP4 in the notebook (IPython)",
    "show_table": "shows a table (pandas)",
    "save_comparison": "writes the package's comparison grid",
    "tile_videos": "tiles videos with numpy",
    "save_grid": "writes a tiled video (ffmpeg)",
    "scheduler_name": "the registry name of a scheduler",
    "scheduler_names": "the registry's names",
    "items": "SCHEDULERS.items(), the registry's table",
    "pick_steps": "chooses steps to show",
    "views_at_steps": "fast previews (a linear map) or decode_latents, whose raw call is checked",
    "preview_costs": "times the package's preview",
    "full_size_parameters": "the architecture as data, counted on the meta device",
    "weight_bytes": "parameters times bytes",
    "predict": "the package's memory model",
    "choose_offload": "the package's memory model",
    "gpu_memory": "reads torch.cuda's memory counters",
    "load_results": "reads a committed benchmark file",
    "markdown": "formats a committed benchmark file",
    "markdown_fast": "formats a committed benchmark file",
    "count_unet_calls": "a torch forward hook that counts calls; no diffusers call",
    "lora_source": "where the LoRA's files are: the hub id or the tiny LoRA's folder",
    "undo_fast": "puts back the weights make_fast saved; no library call",
    "resize": "Pillow's Lanczos resize, shown by hand in the same notebook",
    "steps_run": "int(steps x strength), the arithmetic of the pipeline's get_timesteps",
    "upscaler_for": "names the upscaler that goes with a model",
    "find_model": "the package's table of models",
    "family_named": "the package's table of families",
    "family_of": "the family a pipeline belongs to, from the package's table",
    "to_uint8": "numpy: floats 0..1 to bytes",
    "available_memory": "reads free memory",
    "check_ram": "compares the RAM free (/proc/meminfo) with the parts' weight_bytes; no library call",
    "model_family": "the family a model name or folder belongs to, from the package's table",
}
LINK = re.compile(r"\]\((?:[^)\s]*/)?(\d\d_\w+\.ipynb)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shown_code(nb):
    """The code a learner sees, in order: code cells and the fenced blocks of markdown cells."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            parts.append(cell.source)
        elif cell.cell_type == "markdown":
            parts.extend(block.group(1) for block in FENCE.finditer(cell.source))
    return "\n".join(parts)


def helper_calls(code):
    """{helper name: position of its first call} for `t2v.NAME(`, `t2v.module.NAME(` and names imported from t2v_helpers."""
    calls = {}
    for found in re.finditer(r"\bt2v\.(?:\w+\.)*(\w+)\(", code):
        calls.setdefault(found.group(1), found.start())
    for imported in re.finditer(r"from t2v_helpers[\w.]* import ([\w, ]+)", code):
        for name in (n.strip() for n in imported.group(1).split(",")):
            found = re.search(rf"(?<![\w.]){name}\(", code)
            if found:
                calls.setdefault(name, found.start())
    return calls


def families_used(code):
    """{family name: where the notebook first names its real model}: a hub id in its code, or default_model("<family>")."""
    used = {}
    code = re.sub(r"#[^\n]*", lambda comment: " " * len(comment.group()), code)  # a hub id in a comment loads nothing
    for family in families().values():
        ids = [m.id for m in family.models if not m.tiny]
        found = [code.find(i) for i in ids if i in code]
        named = re.search(rf"default_model\(\s*[\"'](?:{family.name}|{'|'.join(m.name for m in family.models)})[\"']", code)
        found += [named.start()] if named else []
        if found:
            used[family.name] = min(found)
    return used


def from_pretrained_patterns(family):
    """A family's loading call: its text-to-video class, or DiffusionPipeline as the article writes it for ModelScope."""
    names = [family.pipeline] + (["DiffusionPipeline"] if family.name == "modelscope" else [])
    return [rf"\b(?:{'|'.join(names)})\.from_pretrained\("]


def _linked_earlier(path, nb):
    number = int(path.name[:2])
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return sorted({n for n in LINK.findall(text) if int(n[:2]) < number and (ROOT / "notebooks" / n).exists()})


def missing(path):
    """[(helper, what it wraps, patterns not shown before its first call nor in a linked earlier notebook)]."""
    nb = nbformat.read(path, as_version=4)
    code = shown_code(nb)
    linked = "\n".join(shown_code(nbformat.read(ROOT / "notebooks" / n, as_version=4)) for n in _linked_earlier(path, nb))
    problems = []
    for name, at in helper_calls(code).items():
        if name in OWN:
            continue
        if name not in WRAPS:
            problems.append((name, "not sorted: add it to WRAPS (what it wraps) or OWN (why it wraps nothing)", []))
            continue
        words, patterns = WRAPS[name]
        if name == "load_pipeline":
            # Each family's own loading call comes before the first helper load after the notebook names that family.
            loads = [m.start() for m in re.finditer(r"\bt2v\.load_pipeline\(", code)]
            absent = []
            for family_name, named_at in families_used(code).items():
                later = [load for load in loads if load > named_at]
                if later:
                    before = code[: later[0]]
                    absent += [p for p in from_pretrained_patterns(families()[family_name]) if not re.search(p, before) and not re.search(p, linked)]
        else:
            before = code[:at]
            absent = [p for p in patterns if not re.search(p, before) and not re.search(p, linked)]
        if absent:
            problems.append((name, words, absent))
    return problems


def test_every_called_helper_is_sorted_into_wraps_or_own():
    both = set(WRAPS) & set(OWN)
    assert not both, f"in both tables: {both}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_helper_is_shown_first_as_the_library_call_it_wraps(path):
    problems = missing(path)
    assert not problems, f"{path.name} calls helpers before showing the code they wrap (in it, or in an earlier notebook it links):\n" + "\n".join(
        f"  {name}: {words}; not shown: {absent}" for name, words, absent in problems
    )


def test_the_rule_can_fail():
    # A notebook that calls the helper without any raw call is caught.
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("t2v.save_video(result, 'out')\nexport_to_video(frames)")])
    code = shown_code(nb)
    assert helper_calls(code) == {"save_video": 0}
    assert not re.search(WRAPS["save_video"][1][0], code[: helper_calls(code)["save_video"]])


# Notebook 08 says why MCM's LoRA leaves the temporal 3D convolutions alone: their names match
# none of the training script's target suffixes (not that peft cannot adapt them: the pinned one can).
def test_the_pinned_peft_adapts_conv3d():
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import Conv3d as LoraConv3d

    model = get_peft_model(torch.nn.Sequential(torch.nn.Conv3d(4, 4, (3, 1, 1))), LoraConfig(target_modules=["0"], r=2))
    assert isinstance(model.base_model.model[0], LoraConv3d)


def test_mcm_targets_match_no_conv3d_of_the_unet():
    import torch

    from t2v_helpers.families.modelscope import build_full_size_pipeline
    from t2v_helpers.fast import MCM_TARGET_SUFFIXES

    unet = build_full_size_pipeline(torch.bfloat16, empty=True).unet
    conv3d = [name for name, module in unet.named_modules() if isinstance(module, torch.nn.Conv3d)]
    assert conv3d and "down_blocks.0.temp_convs.0.conv1.2" in conv3d  # the name notebook 08 gives as an example
    assert not [name for name in conv3d if name.endswith(MCM_TARGET_SUFFIXES)]
    text = " ".join(c.source for c in nbformat.read(ROOT / "notebooks/08_make_it_fast.ipynb", as_version=4).cells)
    assert "`temp_convs.0.conv1.2`" in text and "peft cannot adapt" not in text
