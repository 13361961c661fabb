"""How float16 and bfloat16 compare with float32 on a CPU, with the tiny model at 128 x 128 (quoted in notebook 02).

    .venv/bin/python benchmarks/cpu_fp16_vs_fp32.py [--runs 7] [--out benchmarks/results]

The three precisions run in turn, one call each per round, after one warm-up call each, so
a busy moment on a shared machine hits all of them alike. It prints and writes
`cpu-fp16-vs-fp32.json` (a free name, never over an existing file): the machine, library
versions, every time, the medians, their spread and the load average before and after.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

import t2v_helpers as t2v

from bench import OUT_DIR, load_average, machine, save_results

DTYPES = ("float32", "float16", "bfloat16")
SETTING = dict(num_inference_steps=2, num_frames=8, height=128, width=128)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the JSON file")
    args = parser.parse_args(argv)

    path = t2v.model_path("tiny")
    pipes = {name: DiffusionPipeline.from_pretrained(path, dtype=getattr(torch, name), variant="fp16") for name in DTYPES}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)

    def call(name):
        start = time.perf_counter()
        pipes[name]("a cat", output_type="np", generator=torch.Generator().manual_seed(0), **SETTING)
        return time.perf_counter() - start

    load_before = load_average()
    for name in DTYPES:  # warm-up: the first call pays for one-time set-up
        call(name)
    times = {name: [] for name in DTYPES}
    for _ in range(args.runs):
        for name in DTYPES:
            times[name].append(call(name))
    median = {name: statistics.median(runs) for name, runs in times.items()}
    results = dict(
        title="CPU: float16 and bfloat16 against float32, tiny model",
        date=time.strftime("%Y-%m-%d"),
        machine=dict(machine(), bfloat16_instructions=t2v.pipeline.cpu_has_bfloat16()),
        setting=dict(model="tiny", prompt="a cat", output_type="np", **SETTING),
        method=f"1 warm-up call per dtype, then {args.runs} rounds of one call per dtype in turn; seconds per call",
        load_before=load_before,
        load_after=load_average(),
        times_s=times,
        median_s=median,
        spread_s={name: [min(runs), max(runs)] for name, runs in times.items()},
        ratio_to_float32={name: median[name] / median["float32"] for name in DTYPES},
    )
    out = save_results(results, "cpu-fp16-vs-fp32", args.out)
    print(f"tiny model, {SETTING}, {results['machine']['torch_threads']} threads, load average {load_before} -> {results['load_after']}")
    for name in DTYPES:
        low, high = results["spread_s"][name]
        print(f"{name:9} median {median[name]:.3f} s (min {low:.3f}, max {high:.3f}), {results['ratio_to_float32'][name]:.2f} x float32")
    print("wrote", out)


if __name__ == "__main__":
    main()
