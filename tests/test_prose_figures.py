"""Every number in the prose comes from a committed results file that the text names, or from the code.

Each Figure says where a number is written (a notebook's markdown or the README), the
words around it with `{}` where the number stands, and which value of which results file
it is. The test formats the value and looks for the sentence, so a re-measured results
file whose numbers no longer match the prose fails here until the prose is updated.
Each Computed says the same for a number the code or the pinned libraries compute (a
parameter count, a scheduler's noise level, a pipeline's default).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import inspect
from typing import Callable

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB02 = "notebooks/02_build_the_pipeline.ipynb"


@dataclass(frozen=True)
class Figure:
    doc: str  # the file whose prose holds the number, relative to the repository
    text: str  # the words around the number, with {} where it stands
    source: str  # the committed results file, relative to the repository
    key: str  # where in it: dotted keys and [i] indexes, e.g. "runs[0].step_s"
    fmt: str = ".3g"  # how the prose writes it (a format spec)
    scale: float = 1.0  # multiply before formatting (bytes to GiB: 2**-30)


# One section per document, so that each lesson's figures sit together.
FIGURES = [
    # README.md
    Figure("README.md", "took {} times as long as a raw", "benchmarks/results/cpu-tiny.json", "overhead.ratio_median", ".3f"),
    Figure("README.md", "| {} MB on disk", "benchmarks/results/cpu-tiny-model.json", "size_mb", ".1f"),
    Figure("README.md", "built in {} s (median of 3)", "benchmarks/results/cpu-tiny-model.json", "build_median_s", ".2f"),
    Figure("README.md", "| {} s to generate (median of 3", "benchmarks/results/cpu-tiny-model.json", "video_median_s", ".0f"),
    Figure("README.md", "| float32, VAE slicing on | {} |", "benchmarks/results/cpu-full.json", "runs[0].step_s", ".0f"),
    Figure("README.md", "| float32, VAE slicing off | {} |", "benchmarks/results/cpu-full.json", "runs[1].step_s", ".0f"),
    Figure("README.md", "| bfloat16, VAE slicing on | {} |", "benchmarks/results/cpu-full.json", "runs[2].step_s", ".0f"),
    Figure("README.md", "takes {} to", "benchmarks/results/cpu-full.json", "runs[2].estimated_25_steps_s", ".0f", 1 / 60),
    Figure("README.md", "differed by at most {} in the float frames", "benchmarks/results/cpu-thread-determinism.json", "float_max_difference_1_vs_2_threads", ".1e"),
    Figure("README.md", "and {} of 3,145,728 8-bit values differed", "benchmarks/results/cpu-thread-determinism.json", "uint8_values_differing_1_vs_2_threads", "g"),
    Figure("README.md", "8-bit values differed, by at most {} level", "benchmarks/results/cpu-thread-determinism.json", "uint8_max_difference_1_vs_2_threads", "g"),
    Figure("README.md", "to {} minutes per video", "benchmarks/results/cpu-full.json", "runs[0].estimated_25_steps_s", ".0f", 1 / 60),
    # notebooks/01_set_up.ipynb
    # notebooks/02_build_the_pipeline.ipynb
    Figure(NB02, "an AMD EPYC with {} cores in both files", "benchmarks/results/cpu-full.json", "machine.cores", "g"),
    Figure(NB02, "an AMD EPYC with {} cores in both files", "benchmarks/results/cpu-fp16-vs-fp32.json", "machine.cores", "g"),
    Figure(NB02, "one denoising step at {} frames", "benchmarks/results/cpu-full.json", "runs[0].frames", "g"),
    Figure(NB02, "frames of {} ×", "benchmarks/results/cpu-full.json", "runs[0].size", "g"),
    Figure(NB02, "the step took {} s in float32", "benchmarks/results/cpu-full.json", "runs[0].step_s"),
    Figure(NB02, "and {} s in bfloat16, and", "benchmarks/results/cpu-full.json", "runs[2].step_s"),
    Figure(NB02, "after loading was {} GiB (gibibytes", "benchmarks/results/cpu-full.json", "runs[0].rss_after_load", scale=2**-30),
    Figure(NB02, "and {} GiB in bfloat16.", "benchmarks/results/cpu-full.json", "runs[2].rss_after_load", scale=2**-30),
    Figure(NB02, "The tiny model ({} steps", "benchmarks/results/cpu-fp16-vs-fp32.json", "setting.num_inference_steps", "g"),
    Figure(NB02, "steps, {} frames of", "benchmarks/results/cpu-fp16-vs-fp32.json", "setting.num_frames", "g"),
    Figure(NB02, "frames of {} × 128", "benchmarks/results/cpu-fp16-vs-fp32.json", "setting.height", "g"),
    Figure(NB02, "× {}, in `benchmarks", "benchmarks/results/cpu-fp16-vs-fp32.json", "setting.width", "g"),
    Figure(NB02, "float16 took {} times as long as float32", "benchmarks/results/cpu-fp16-vs-fp32.json", "ratio_to_float32.float16", ".2f"),
    Figure(NB02, "and bfloat16 {} times.", "benchmarks/results/cpu-fp16-vs-fp32.json", "ratio_to_float32.bfloat16", ".2f"),
    Figure(NB02, "load average {} before", "benchmarks/results/cpu-fp16-vs-fp32.json", "load_before", ".1f"),
    Figure(NB02, "before, {} after, on", "benchmarks/results/cpu-fp16-vs-fp32.json", "load_after", ".1f"),
    Figure(NB02, "after, on {} cores)", "benchmarks/results/cpu-fp16-vs-fp32.json", "machine.cores", "g"),
    # notebooks/03_swap_schedulers.ipynb
    # notebooks/04_generate_and_display.ipynb
    # notebooks/05_play_in_the_studio.ipynb
    # notebooks/06_watch_the_video_emerge.ipynb
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "the VAE decode took {} times as long as the fast preview", "benchmarks/results/cpu-preview-costs.json", "runs[1].ratio_median", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "(median of the pairs, spread {} to", "benchmarks/results/cpu-preview-costs.json", "runs[1].ratio_min", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "to {}), and at 8 frames", "benchmarks/results/cpu-preview-costs.json", "runs[1].ratio_max", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "of 32 × 32 it took {} times as long", "benchmarks/results/cpu-preview-costs.json", "runs[0].ratio_median", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "load average between {} and", "benchmarks/results/cpu-preview-costs.json", "runs[1].load_before", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "and {} during the larger run", "benchmarks/results/cpu-preview-costs.json", "runs[1].load_after", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "(a median of {} ms for the preview", "benchmarks/results/cpu-preview-costs.json", "runs[1].fast_ms", ".0f"),
    Figure("notebooks/06_watch_the_video_emerge.ipynb", "and {} s for the decode)", "benchmarks/results/cpu-preview-costs.json", "runs[1].exact_ms", ".0f", 1e-3),
    # notebooks/07_memory_and_speed.ipynb
    Figure("notebooks/07_memory_and_speed.ipynb", "2 cores and {} GiB RAM", "benchmarks/results/cpu-full.json", "machine.memory_gib", "g"),
    Figure("notebooks/07_memory_and_speed.ipynb", "one float32 denoising step of 16 frames at 256 × 256 took {} s", "benchmarks/results/cpu-full.json", "runs[0].step_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and the VAE decode {} s, so 25 steps", "benchmarks/results/cpu-full.json", "runs[0].decode_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "25 steps would take about {} minutes", "benchmarks/results/cpu-full.json", "runs[0].estimated_25_steps_s", ".0f", 1 / 60),
    Figure("notebooks/07_memory_and_speed.ipynb", "was {} before the first setting", "benchmarks/results/cpu-full.json", "runs[0].load_before", ".1f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and {} after it, on 2 cores", "benchmarks/results/cpu-full.json", "runs[0].load_after", ".1f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "less precision) a step took {} s", "benchmarks/results/cpu-full.json", "runs[2].step_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and the decode {} s, with", "benchmarks/results/cpu-full.json", "runs[2].decode_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "with {} GiB resident after loading", "benchmarks/results/cpu-full.json", "runs[2].rss_after_load", ".1f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "({} s against", "benchmarks/results/cpu-full.json", "runs[2].step_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "against {} and", "benchmarks/results/cpu-full.json", "runs[1].step_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and {} s in the two float32 runs", "benchmarks/results/cpu-full.json", "runs[0].step_s", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "grew from {} GiB after loading", "benchmarks/results/cpu-full.json", "runs[0].rss_after_load", ".1f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "after loading to {} GiB;", "benchmarks/results/cpu-full.json", "runs[0].peak_rss_denoise", ".1f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "(slicing off) peaked at {} GiB", "benchmarks/results/cpu-full.json", "runs[1].peak_rss_decode", ".1f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "against {} GiB one frame at a time", "benchmarks/results/cpu-full.json", "runs[0].peak_rss_decode", ".1f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "`t2v.generate` took {} times as long as a raw", "benchmarks/results/cpu-full.json", "overhead.ratio_median", ".3f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and {} times in `benchmarks/results/cpu-tiny.json`", "benchmarks/results/cpu-tiny.json", "overhead.ratio_median", ".3f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "a call took {} times as long as with it off", "benchmarks/results/cpu-forward-chunking.json", "ratio_median", ".2f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "(median of the pairs, spread {} to", "benchmarks/results/cpu-forward-chunking.json", "ratio_min", ".2f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "to {}), and the peak RSS", "benchmarks/results/cpu-forward-chunking.json", "ratio_max", ".2f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "the peak RSS was {} GiB against", "benchmarks/results/cpu-forward-chunking.json", "peak_rss_median.on", ".2f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "against {} GiB off", "benchmarks/results/cpu-forward-chunking.json", "peak_rss_median.off", ".2f", 2**-30),
    Figure("notebooks/07_memory_and_speed.ipynb", "load average between {} and", "benchmarks/results/cpu-forward-chunking.json", "load_after", ".0f"),
    Figure("notebooks/07_memory_and_speed.ipynb", "and {} on its 2 cores", "benchmarks/results/cpu-forward-chunking.json", "load_before", ".0f"),
    # t2v_helpers/text_encoding.py
    Figure("t2v_helpers/text_encoding.py", "in bfloat16 held {} GiB of RAM once loaded", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].rss_after_load", ".2f", 2**-30),
    Figure("t2v_helpers/text_encoding.py", "and peaked at {} GiB encoding one", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].peak_rss_encode", ".2f", 2**-30),
    Figure("t2v_helpers/text_encoding.py", "encoding one {}-token prompt", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].prompt_tokens", "g"),
    Figure("t2v_helpers/text_encoding.py", "the process held {} GiB. T5-XXL", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].rss_after_free", ".2f", 2**-30),
    Figure("t2v_helpers/text_encoding.py", "T5-XXL held {} GiB and", "benchmarks/results/cpu-text-encoder-memory.json", "runs[1].rss_after_load", ".2f", 2**-30),
    Figure("t2v_helpers/text_encoding.py", "peaked at {} GiB. Loading", "benchmarks/results/cpu-text-encoder-memory.json", "runs[1].peak_rss_encode", ".2f", 2**-30),
    # notebooks/08_make_it_fast.ipynb
    Figure("notebooks/08_make_it_fast.ipynb", '{} CPU cores that other jobs shared', "benchmarks/results/cpu-fast-full.json", "machine.cores", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", '{} frames', "benchmarks/results/cpu-fast-full.json", "runs[0].frames", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", "The article's setting needs {} UNet evaluations per video", "benchmarks/results/cpu-fast-full.json", "runs[0].unet_evaluations_per_video", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and an estimated {} s', "benchmarks/results/cpu-fast-full.json", "runs[0].estimated_video_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", '; the few-step setting needs {} evaluations', "benchmarks/results/cpu-fast-full.json", "runs[1].unet_evaluations_per_video", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and {} s.', "benchmarks/results/cpu-fast-full.json", "runs[1].estimated_video_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' One DPM step with guidance took {} s', "benchmarks/results/cpu-fast-full.json", "runs[0].step_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and one LCM step without guidance {} s', "benchmarks/results/cpu-fast-full.json", "runs[1].step_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", " {} s with SDPA, torch's choice", "benchmarks/results/cpu-fast-full.json", "attention.median_s.SDPA, torch's choice", ".3g"),
    Figure("notebooks/08_make_it_fast.ipynb", ' {} s with SDPA, math kernel', "benchmarks/results/cpu-fast-full.json", "attention.median_s.SDPA, math kernel", ".3g"),
    Figure("notebooks/08_make_it_fast.ipynb", ' {} s with AttnProcessor (no SDPA)', "benchmarks/results/cpu-fast-full.json", "attention.median_s.AttnProcessor (no SDPA)", ".3g"),
    # notebooks/09_move_to_wan.ipynb: its figures are printed by its code cells
    # notebooks/10_big_text_encoders.ipynb
    Figure("notebooks/10_big_text_encoders.ipynb", "The process held {} GiB after loading the encoder", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].rss_after_load", ".1f", 2**-30),
    Figure("notebooks/10_big_text_encoders.ipynb", "and peaked at {} GiB while encoding one prompt padded to 512 tokens", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].peak_rss_encode", ".1f", 2**-30),
    Figure("notebooks/10_big_text_encoders.ipynb", "while encoding one prompt padded to {} tokens", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].prompt_tokens", "g"),
    Figure("notebooks/10_big_text_encoders.ipynb", "after the encoder was freed, it held {} GiB.", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].rss_after_free", ".1f", 2**-30),
    Figure("notebooks/10_big_text_encoders.ipynb", "Encoding that one prompt took {} s on", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].encode_s", ".0f"),
    Figure("notebooks/10_big_text_encoders.ipynb", "on the machine's {} shared cores", "benchmarks/results/cpu-text-encoder-memory.json", "machine.cores", "g"),
    Figure("notebooks/10_big_text_encoders.ipynb", "CogVideoX's T5-XXL held {} GiB after loading.", "benchmarks/results/cpu-text-encoder-memory.json", "runs[1].rss_after_load", ".1f", 2**-30),
    Figure("notebooks/10_big_text_encoders.ipynb", "which held {} GiB in bfloat16 in this project's CPU measurement (Step 1)", "benchmarks/results/cpu-text-encoder-memory.json", "runs[0].rss_after_load", ".1f", 2**-30),
    Figure("notebooks/10_big_text_encoders.ipynb", "T5-XXL encoder, which held {} GiB in the same measurement", "benchmarks/results/cpu-text-encoder-memory.json", "runs[1].rss_after_load", ".1f", 2**-30),
    # notebooks/11_make_it_sharper.ipynb
    Figure("notebooks/11_make_it_sharper.ipynb", "it predicts {} GiB without offload, which fits a T4", "benchmarks/results/upscale-memory.json", "passes.zeroscope.peak_gib.none", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "it predicts {} GiB without offload, ", "benchmarks/results/upscale-memory.json", "passes.zeroscope-xl.peak_gib.none", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "{} GiB with model offload and", "benchmarks/results/upscale-memory.json", "passes.zeroscope-xl.peak_gib.model", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "{} GiB with sequential offload. With the margin", "benchmarks/results/upscale-memory.json", "passes.zeroscope-xl.peak_gib.sequential", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "on a GPU with {} GiB (gibibytes) free", "benchmarks/results/upscale-memory.json", "free_gib", ".0f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "the XL pass at up to {} frames with model offload", "benchmarks/results/upscale-memory.json", "passes.zeroscope-xl.most_frames_that_fit.model", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "or {} with sequential offload (much slower)", "benchmarks/results/upscale-memory.json", "passes.zeroscope-xl.most_frames_that_fit.sequential", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "real heights and widths ({} frames,", "benchmarks/results/cpu-upscale-costs.json", "setting.frames", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", " frames, {} steps, strength", "benchmarks/results/cpu-upscale-costs.json", "setting.steps", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "The second pass took {} times as long as the first", "benchmarks/results/cpu-upscale-costs.json", "ratio_median", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "(median of {} pairs,", "benchmarks/results/cpu-upscale-costs.json", "setting.rounds", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "pairs, spread {} to", "benchmarks/results/cpu-upscale-costs.json", "ratio_min", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", " to {}), though it ran only", "benchmarks/results/cpu-upscale-costs.json", "ratio_max", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "though it ran only {} of its", "benchmarks/results/cpu-upscale-costs.json", "setting.upscale_steps_run", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "shared the machine's {} cores", "benchmarks/results/cpu-upscale-costs.json", "machine.cores", "g"),
    Figure("notebooks/11_make_it_sharper.ipynb", "(load average {} before,", "benchmarks/results/cpu-upscale-costs.json", "load_before", ".1f"),
    Figure("notebooks/11_make_it_sharper.ipynb", "before, {} after): take", "benchmarks/results/cpu-upscale-costs.json", "load_after", ".1f"),
]


def _parameters(*parts):
    from t2v_helpers.families.modelscope import full_size_parameters

    counts = full_size_parameters()
    return sum(counts[p] for p in parts or ("unet", "text_encoder", "vae"))


def _strength_one_mix(part):
    """The share of the input (part 0) or of the noise (part 1) in the latents where strength 1 starts."""
    import torch
    from diffusers import DPMSolverMultistepScheduler

    from t2v_helpers.families.modelscope import REAL_SCHEDULER_CONFIG

    scheduler = DPMSolverMultistepScheduler.from_config(REAL_SCHEDULER_CONFIG)  # notebook 11 sets "dpm"
    scheduler.set_timesteps(40)
    one, zero = torch.ones(1), torch.zeros(1)
    return scheduler.add_noise(*((one, zero) if part == 0 else (zero, one)), scheduler.timesteps[:1]).item()


def _zeroscope_sizes():
    from t2v_helpers.families import find_model

    small, big = find_model("zeroscope"), find_model("zeroscope-xl")
    assert small.frames == big.frames
    return f"{small.width} × {small.height} and {big.width} × {big.height}, {big.frames} frames"


def _family_guidance():
    from t2v_helpers.families import family_named

    return family_named("modelscope").guidance


def _default_of(pipeline, name):
    import diffusers

    return inspect.signature(getattr(diffusers, pipeline).__call__).parameters[name].default


@dataclass(frozen=True)
class Computed:
    doc: str  # the file whose prose holds the number
    text: str  # the words around the number, with {} where it stands
    compute: Callable[[], float]  # the code that gives the number
    fmt: str = ".3g"
    scale: float = 1.0


NB11 = "notebooks/11_make_it_sharper.ipynb"
NB07 = "notebooks/07_memory_and_speed.ipynb"
COMPUTED = [
    # notebook 07 counts the parameters; the model card's "about 1.7 billion" is reconciled there
    Computed(NB07, "the three parts hold {} billion parameters", _parameters, ".3f", 1e-9),
    Computed(NB07, "the UNet {} billion,", lambda: _parameters("unet"), ".3f", 1e-9),
    Computed(NB07, "the text encoder {} billion and", lambda: _parameters("text_encoder"), ".3f", 1e-9),
    Computed(NB07, "the VAE {} billion", lambda: _parameters("vae"), ".3f", 1e-9),
    # first screens: the download of the fp16 weights, 2 bytes a parameter
    *[Computed(f"notebooks/{nb}.ipynb", "about {} GB", lambda: _parameters() * 2, ".1f", 1e-9) for nb in (
        "01_set_up", "02_build_the_pipeline", "03_swap_schedulers", "04_generate_and_display", "05_play_in_the_studio",
        "06_watch_the_video_emerge", "07_memory_and_speed", "08_make_it_fast")],
    Computed(NB11, "ModelScope's architecture, {} billion parameters", _parameters, ".3f", 1e-9),
    Computed(NB11, "each download is at least {} GB (2 bytes a parameter", lambda: _parameters() * 2, ".1f", 1e-9),
    Computed("notebooks/03_swap_schedulers.ipynb", "its share √ᾱ is {} there", lambda: _strength_one_mix(0), ".3f"),
    Computed("notebooks/08_make_it_fast.ipynb", "it makes videos at other sizes ({})", _zeroscope_sizes, "s"),
    Computed(NB11, "zeroscope's fine-tuned weights and its sizes ({})", _zeroscope_sizes, "s"),
    Computed("README.md", "It guides at {}, `TextToVideoSDPipeline`'s default", lambda: _default_of("TextToVideoSDPipeline", "guidance_scale"), "g"),
    Computed("README.md", "keeps `VideoToVideoSDPipeline`'s default of {} (from Python", lambda: _default_of("VideoToVideoSDPipeline", "guidance_scale"), "g"),
    # ... and the same 9 is what `upscale` passes: the family's guidance
    Computed("README.md", "It guides at {}, `TextToVideoSDPipeline`'s default", lambda: _family_guidance(), "g"),
    Computed(NB11, "The cell below passes {}, `TextToVideoSDPipeline`'s default", lambda: _family_guidance(), "g"),
    # notebook 11 and the README: what strength 1 leaves of the input, and the guidance of the card's call
    Computed(NB11, "the starting latents are {} × the enlarged frames' latents", lambda: _strength_one_mix(0), ".3f"),
    Computed(NB11, "latents + {} × noise", lambda: _strength_one_mix(1), ".3f"),
    Computed("README.md", "though even then about {} of them is left", lambda: _strength_one_mix(0), ".0%"),
    Computed("t2v_helpers/upscale.py", "still keeps about {} of the input", lambda: _strength_one_mix(0), ".0%"),
    Computed(NB11, "runs `VideoToVideoSDPipeline`'s default of {}.", lambda: _default_of("VideoToVideoSDPipeline", "guidance_scale"), "g"),
    Computed(NB11, "The cell below passes {}, `TextToVideoSDPipeline`'s default", lambda: _default_of("TextToVideoSDPipeline", "guidance_scale"), "g"),
    Computed(NB11, "pipeline's default of {}, and this notebook", lambda: _default_of("VideoToVideoSDPipeline", "num_inference_steps"), "g"),
]


def prose(doc):
    """The text a reader reads: a notebook's markdown cells, or a Markdown file, with whitespace collapsed."""
    path = ROOT / doc
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    return " ".join(text.split())


def value_at(data, key):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    return data


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{Path(f.doc).stem}:{f.text[:40]}")
def test_prose_quotes_its_results_file(figure):
    value = value_at(json.loads((ROOT / figure.source).read_text()), figure.key)
    sentence = figure.text.format(format(value * figure.scale, figure.fmt))
    text = prose(figure.doc)
    assert sentence in text, f"{figure.doc} should say {sentence!r} (from {figure.source} {figure.key})"
    assert Path(figure.source).stem in text, f"{figure.doc} quotes {figure.source} without naming it"


@pytest.mark.parametrize("figure", COMPUTED, ids=lambda f: f"{Path(f.doc).stem}:{f.text[:40]}")
def test_prose_quotes_the_code(figure):
    value = figure.compute()
    sentence = figure.text.format(format(value * figure.scale if figure.scale != 1.0 else value, figure.fmt))
    assert sentence in prose(figure.doc), f"{figure.doc} should say {sentence!r} (computed by {figure.compute.__name__})"


# Claims that were wrong and must not come back (issue 20): the starting point of strength 1
# and the timestep 999 are not pure noise in ModelScope's schedule (see the Computed figures).
WRONG = [
    (re.compile(r"\b1 ignores (them|the)|to 1 \(ignore them\)|strength[^.]{0,40}\bignores? the input", re.IGNORECASE), "strength 1 does not ignore the input"),
    (re.compile(r"999,? (the timestep of|where the model expects) pure noise|\bpure noise \(t = 999|999 = pure noise", re.IGNORECASE), "timestep 999 is not pure noise"),
    (re.compile(r"feed-forward layers one frame at a time", re.IGNORECASE), "dim=1 chunks spatial blocks by position"),
]
OWN_DOCS = ["README.md", "t2v_helpers/upscale.py", NB11, *(f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("0[1-8]_*.ipynb")))]


@pytest.mark.parametrize("doc", OWN_DOCS)
def test_no_wrong_claim_comes_back(doc):
    path = ROOT / doc
    cells = nbformat.read(path, as_version=4).cells if path.suffix == ".ipynb" else []
    text = "\n".join(c.source for c in cells) if cells else path.read_text()
    for pattern, why in WRONG:
        found = pattern.search(" ".join(text.split()))
        assert not found, f"{doc}: {found.group(0)!r} ({why})"


def _download_gb(family):
    """Bytes a family's full-size repository stores, from the parameter counts: float32 files for Wan, float16 but the VAE for CogVideoX."""
    if family == "wan":
        from t2v_helpers.families.wan import full_size_parameters

        return sum(full_size_parameters().values()) * 4 / 1e9
    from t2v_helpers.families.cogvideox import full_size_parameters

    return sum(count * (4 if part == "vae" else 2) for part, count in full_size_parameters().items()) / 1e9


@pytest.mark.parametrize(
    "doc, text, family",
    [
        ("notebooks/09_move_to_wan.ipynb", "4 bytes a parameter: about {} GB on first use", "wan"),
        ("notebooks/10_big_text_encoders.ipynb", "Wan 2.1 T2V 1.3B, about {} GB of float32 files", "wan"),
        ("notebooks/10_big_text_encoders.ipynb", "and CogVideoX-2B, about {} GB:", "cogvideox"),
    ],
)
def test_first_screens_quote_the_download_counted_from_the_parameters(doc, text, family):
    """The download sizes on notebooks 09 and 10's first screens are the counted parameters times the bytes the files store."""
    sentence = text.format(format(_download_gb(family), ".0f"))
    assert sentence in prose(doc), f"{doc} should say {sentence!r}"


# Each notebook says, in its first cell's "What you need", how long it runs at its own defaults on a
# CPU, quoting benchmarks/results/cpu-notebook-times.json (written by benchmarks/notebook_times.py).
NOTEBOOK_TIMES = "benchmarks/results/cpu-notebook-times.json"
NOTEBOOK_TIME_SENTENCE = "On a {cores}-core CPU, at these settings, this notebook runs in about {seconds} s (`" + NOTEBOOK_TIMES + "`)."


def notebook_time_sentence(entry):
    """The sentence a notebook's "What you need" says for its entry in the results file."""
    return NOTEBOOK_TIME_SENTENCE.format(cores=entry["cores"], seconds=round(entry["seconds"]))


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_each_notebook_says_how_long_it_runs_on_a_cpu(notebook):
    times = json.loads((ROOT / NOTEBOOK_TIMES).read_text())["notebooks"]
    assert notebook.name in times, f"{NOTEBOOK_TIMES} has no time for {notebook.name}: run .venv/bin/python benchmarks/notebook_times.py {notebook.name[:2]}"
    entry = times[notebook.name]
    assert entry["ok"], f"{notebook.name} failed in benchmarks/notebook_times.py: {entry.get('error', '')[-500:]}"
    cells = nbformat.read(notebook, as_version=4).cells
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    heading = next((c for c in cells[:first_code] if c.cell_type == "markdown" and "## What you need" in c.source), None)
    assert heading is not None, f"{notebook.name} has no \"## What you need\" section before its first code cell"
    what_you_need = re.split(r"^## ", heading.source.partition("## What you need")[2], flags=re.MULTILINE)[0]
    sentence = notebook_time_sentence(entry)
    assert sentence in " ".join(what_you_need.split()), f"{notebook.name} should say, under \"## What you need\": {sentence}"
