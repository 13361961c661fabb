"""Notebook 06's hand-written denoising loop makes exactly the frames of `pipe(...)`, for every scheduler.

The test runs the loop cells of the notebook itself (not a copy of them), so an edit
that breaks the lesson's loop fails here; a deliberately broken loop must fail too.
"""

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import t2v_helpers as t2v

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_watch_the_video_emerge.ipynb"
LOOP_CELLS = ("06-loop-encode", "06-loop-noise", "06-loop-denoise", "06-loop-decode")
SIZE = int(os.environ["T2V_SIZE"])
SETTINGS = dict(PROMPT="a lighthouse at night", NEGATIVE_PROMPT="blurry", STEPS=3, FRAMES=2, HEIGHT=SIZE, WIDTH=SIZE, SEED=5, GUIDANCE=7.5)


def loop_source():
    cells = {c.id: c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"}
    return {name: cells[name] for name in LOOP_CELLS}


def run_loop(pipe, sources):
    """Run the notebook's loop cells in order, with the settings cell's names; return the frames they make."""
    namespace = dict(SETTINGS, pipe=pipe, torch=torch)
    for name in LOOP_CELLS:
        exec(compile(sources[name], f"{NOTEBOOK.name}:{name}", "exec"), namespace)
    return namespace["frames"]


def pipeline_frames(pipe):
    s = SETTINGS
    return pipe(
        s["PROMPT"], negative_prompt=s["NEGATIVE_PROMPT"], num_inference_steps=s["STEPS"], num_frames=s["FRAMES"],
        height=s["HEIGHT"], width=s["WIDTH"], guidance_scale=s["GUIDANCE"],
        generator=torch.Generator("cpu").manual_seed(s["SEED"]), output_type="np",
    ).frames[0]


def test_the_loop_is_written_out_in_the_notebook():
    """The reader sees every stage; no pipeline call or helper does the work for them."""
    code = "\n".join(loop_source().values())
    for stage in ("pipe.tokenizer(", "pipe.text_encoder(", "torch.randn(", "init_noise_sigma", "scale_model_input(",
                  "pipe.unet(", "GUIDANCE * (noise_prompt - noise_negative)", "pipe.scheduler.step(", "pipe.vae.decode("):
        assert stage in code, stage
    assert "pipe(" not in code.replace("pipe.", "") and "t2v." not in code


@pytest.mark.parametrize("scheduler", t2v.scheduler_names())
def test_the_hand_written_loop_gives_the_pipelines_frames(pipe, scheduler):
    t2v.set_scheduler(pipe, scheduler)
    frames = run_loop(pipe, loop_source())
    t2v.set_scheduler(pipe, scheduler)  # a fresh scheduler, as the pipeline call would find it
    expected = pipeline_frames(pipe)
    assert frames.shape == expected.shape == (SETTINGS["FRAMES"], SIZE, SIZE, 3)
    assert np.array_equal(frames, expected)  # the same computation, to the last bit on a CPU


@pytest.mark.parametrize(
    "scheduler, old, new",
    [
        ("dpm", "GUIDANCE * (noise_prompt - noise_negative)", "(GUIDANCE - 1) * (noise_prompt - noise_negative)"),
        ("euler", "pipe.scheduler.scale_model_input(torch.cat([latents, latents]), t)", "torch.cat([latents, latents])"),
        ("ddim", "for text in (NEGATIVE_PROMPT, PROMPT):", "for text in (PROMPT, NEGATIVE_PROMPT):"),
        ("euler-a", "pipe.prepare_extra_step_kwargs(generator, eta=0.0)", "{}"),
    ],
    ids=["guidance", "scale_model_input", "text order", "generator"],
)
def test_a_broken_loop_is_caught(pipe, scheduler, old, new):
    """The comparison above can fail: each of these mistakes changes the frames."""
    sources = loop_source()
    cell = next(name for name, text in sources.items() if old in text)
    sources[cell] = sources[cell].replace(old, new)
    t2v.set_scheduler(pipe, scheduler)
    frames = run_loop(pipe, sources)
    t2v.set_scheduler(pipe, scheduler)
    assert not np.allclose(frames, pipeline_frames(pipe), atol=2 / 255)
