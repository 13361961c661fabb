"""What forward chunking costs in time and saves in memory: one UNet call of the full-size architecture (notebook 07).

    .venv/bin/python benchmarks/forward_chunking.py

One denoising step is one UNet call on a batch of two (prompt and negative prompt). It
times that call with `enable_forward_chunking(chunk_size=1, dim=1)` on and off: one
warm-up call each, then ROUNDS pairs in alternating order, so a busy moment of the
shared machine hits both alike. It reports medians, the ratio of each pair and their
spread, and each call's peak RSS (resident set size: the process's RAM). It writes
benchmarks/results/cpu-forward-chunking.json and never overwrites an existing file.
"""

import os
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from t2v_helpers.families.modelscope import build_full_size_pipeline

from bench import machine, reset_peak_rss, rss_bytes, save_results

ROUNDS = 5
FRAMES, SIZE = 8, 128  # an eighth of the lesson's 16 frames of 256 x 256, so that 12 calls fit in minutes on 2 cores


def one_call(unet, chunking, latents, embeddings):
    if chunking:
        unet.enable_forward_chunking(chunk_size=1, dim=1)
    else:
        unet.disable_forward_chunking()
    reset_peak_rss()
    start = time.perf_counter()
    with torch.inference_mode():
        unet(latents, 999, encoder_hidden_states=embeddings, return_dict=False)
    return time.perf_counter() - start, rss_bytes("VmHWM")


def main():
    pipe = build_full_size_pipeline(torch.float32)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, FRAMES, SIZE // 8, SIZE // 8, generator=generator)
    embeddings = torch.randn(2, 77, pipe.text_encoder.config.hidden_size, generator=generator)
    load_before = os.getloadavg()[0]
    for chunking in (True, False):  # warm-up: the first call of each pays one-off costs
        one_call(pipe.unet, chunking, latents, embeddings)
    times = {"on": [], "off": []}
    peaks = {"on": [], "off": []}
    for i in range(ROUNDS):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for name in order:
            seconds, peak = one_call(pipe.unet, name == "on", latents, embeddings)
            times[name].append(seconds)
            peaks[name].append(peak)
    ratios = [on / off for on, off in zip(times["on"], times["off"])]
    results = dict(
        title="Forward chunking on the full-size UNet, CPU",
        date=date.today().isoformat(),
        machine=machine(),
        setting=dict(model="full", dtype="float32", frames=FRAMES, size=SIZE, batch=2, chunk_size=1, dim=1, rounds=ROUNDS),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        seconds=times,
        peak_rss=peaks,
        median_s={name: statistics.median(t) for name, t in times.items()},
        ratio_median=statistics.median(ratios),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        peak_rss_median={name: statistics.median(p) for name, p in peaks.items()},
    )
    path = save_results(results, "cpu-forward-chunking")
    print(f"one UNet call, float32, {FRAMES} frames of {SIZE}x{SIZE}, batch 2, load average {load_before:.1f} -> {results['load_after']:.1f}")
    for name in ("on", "off"):
        print(f"chunking {name:3}: median {results['median_s'][name]:.2f} s, peak RSS {results['peak_rss_median'][name] / 2**30:.2f} GiB")
    print(f"on / off: median {results['ratio_median']:.3f} (spread {results['ratio_min']:.3f} to {results['ratio_max']:.3f}, {ROUNDS} pairs)")
    print("wrote", Path(path).relative_to(Path.cwd()) if Path(path).is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
