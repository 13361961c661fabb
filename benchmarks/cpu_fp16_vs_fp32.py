"""How much slower fp16 is than float32 on a CPU, with the tiny model at 128 x 128 (the figure quoted in notebook 02).

    .venv/bin/python benchmarks/cpu_fp16_vs_fp32.py
"""

import os
import statistics
import time

import torch
from diffusers import DiffusionPipeline

import t2v_helpers as t2v

RUNS = 5

path = t2v.model_path("tiny")
pipes = {dtype: DiffusionPipeline.from_pretrained(path, dtype=dtype, variant="fp16") for dtype in (torch.float32, torch.float16)}
times = {dtype: [] for dtype in pipes}
for _ in range(RUNS):
    for dtype, pipe in pipes.items():  # interleaved, so a busy moment hits both alike
        pipe.set_progress_bar_config(disable=True)
        start = time.perf_counter()
        pipe("a cat", num_inference_steps=2, num_frames=8, height=128, width=128, generator=torch.Generator().manual_seed(0))
        times[dtype].append(time.perf_counter() - start)
median = {dtype: statistics.median(runs) for dtype, runs in times.items()}
print(f"tiny model, 2 steps, 8 frames, 128x128, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
for dtype, seconds in median.items():
    print(f"{str(dtype):14} {seconds:.3f} s (median of {RUNS})")
print(f"fp16 / float32: {median[torch.float16] / median[torch.float32]:.1f}x")
