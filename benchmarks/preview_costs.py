"""What each view of a step costs with the tiny model: fast linear preview vs exact VAE decode (notebook 06, Step 7).

    .venv/bin/python benchmarks/preview_costs.py

For two sizes (the small one the notebook runs on a CPU, and the lesson's 16 frames of
256 x 256) it makes a 2-step video, then times both views of its last step with
`t2v.preview_costs`: one warm-up each, REPEATS alternating runs, medians, the ratio of
each pair and their spread. It writes benchmarks/results/cpu-preview-costs.json and
never overwrites an existing file.
"""

import os
from datetime import date

import torch

import t2v_helpers as t2v

from bench import machine, save_results

REPEATS = 7
SIZES = ((8, 32), (16, 256))  # (frames, pixels a side)


def main():
    pipe = t2v.load_pipeline("tiny", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    t2v.set_scheduler(pipe, "dpm")
    runs = []
    for frames, size in SIZES:
        denoising = t2v.capture_denoising(pipe, "a lighthouse at night", steps=2, frames=frames, height=size, width=size, seed=0)
        load_before = os.getloadavg()[0]
        costs = t2v.preview_costs(pipe, denoising.predicted[-1], repeats=REPEATS)
        ratios = [e / f for e, f in zip(costs["exact_runs"], costs["fast_runs"])]
        runs.append(dict(
            frames=frames, size=size, repeats=REPEATS, load_before=load_before, load_after=os.getloadavg()[0],
            fast_ms=costs["fast_s"] * 1000, exact_ms=costs["exact_s"] * 1000, ratio_median=costs["ratio"],
            ratio_min=min(ratios), ratio_max=max(ratios), fast_s=costs["fast_runs"], exact_s=costs["exact_runs"],
        ))
        r = runs[-1]
        print(f"{frames} frames of {size}x{size}: fast {r['fast_ms']:.3g} ms, VAE {r['exact_ms']:.3g} ms, "
              f"ratio {r['ratio_median']:.0f} (spread {r['ratio_min']:.0f} to {r['ratio_max']:.0f}), load {load_before:.1f}")
    results = dict(
        title="Fast preview against VAE decode, tiny model, CPU",
        date=date.today().isoformat(),
        machine=machine(),
        torch_threads=torch.get_num_threads(),
        runs=runs,
    )
    path = save_results(results, "cpu-preview-costs")
    print("wrote", path)


if __name__ == "__main__":
    main()
