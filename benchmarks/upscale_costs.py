"""What each pass of notebook 11 costs on this CPU: the tiny text-to-video model, then the tiny upscaler.

    .venv/bin/python benchmarks/upscale_costs.py

Both tiny models have random weights, so their times say how the two passes compare in
work (pixels x steps), not how long the real models take. The first pass makes FRAMES
frames at a quarter of zeroscope_v2_576w's 576 x 320, the second upscales them to a quarter
of zeroscope_v2_XL's 1024 x 576 at strength 0.6 of the same number of steps. One warm-up
of each, then ROUNDS pairs in alternating order; it reports medians, the ratio of each pair
and their spread, and writes benchmarks/results/cpu-upscale-costs.json (never overwriting).
"""

import os
import statistics
from datetime import date
from pathlib import Path

import t2v_helpers as t2v
from t2v_helpers.upscale import load_upscaler, steps_run, upscale

from bench import machine, save_results

ROUNDS = 5
FRAMES, STEPS, STRENGTH = 8, 5, 0.6
SMALL = (320 // 4, 576 // 4)  # a quarter of zeroscope_v2_576w's height and width
BIG = (576 // 4, 1024 // 4)  # a quarter of zeroscope_v2_XL's
PROMPT = "Spiderman is surfing"


def main():
    pipe = t2v.load_pipeline("tiny", verbose=False)
    upscaler = load_upscaler("tiny-zeroscope-xl", verbose=False)
    for p in (pipe, upscaler):
        t2v.set_scheduler(p, "dpm")
        p.set_progress_bar_config(disable=True)

    def first_pass():
        return t2v.generate(pipe, PROMPT, steps=STEPS, frames=FRAMES, height=SMALL[0], width=SMALL[1], seed=0)

    video = first_pass()

    def second_pass():
        return upscale(upscaler, video, strength=STRENGTH, height=BIG[0], width=BIG[1], steps=STEPS, seed=0)

    second_pass()  # warm-up of the second; the first ran once above
    load_before = os.getloadavg()[0]
    times = {"generate": [], "upscale": []}
    passes = {"generate": first_pass, "upscale": second_pass}
    for i in range(ROUNDS):
        for name in (("generate", "upscale") if i % 2 == 0 else ("upscale", "generate")):
            times[name].append(passes[name]().elapsed_s)
    ratios = [u / g for u, g in zip(times["upscale"], times["generate"])]
    results = dict(
        title="The two passes of notebook 11 with the tiny models, CPU",
        date=date.today().isoformat(),
        machine=machine(),
        setting=dict(frames=FRAMES, steps=STEPS, strength=STRENGTH, upscale_steps_run=steps_run(STEPS, STRENGTH),
                     generate_size=list(SMALL), upscale_size=list(BIG), scheduler="dpm", rounds=ROUNDS, dtype=str(pipe.unet.dtype)[6:]),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        seconds=times,
        median_s={name: statistics.median(t) for name, t in times.items()},
        ratio_median=statistics.median(ratios),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
    )
    path = save_results(results, "cpu-upscale-costs")
    print(f"{FRAMES} frames, {STEPS} steps, strength {STRENGTH}: generate at {SMALL[1]}x{SMALL[0]}, upscale to {BIG[1]}x{BIG[0]}; "
          f"load average {load_before:.1f} -> {results['load_after']:.1f}")
    for name in times:
        print(f"{name:8}: median {results['median_s'][name]:.2f} s ({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"upscale / generate: median {results['ratio_median']:.2f} (spread {results['ratio_min']:.2f} to {results['ratio_max']:.2f}, {ROUNDS} pairs)")
    print("wrote", path)


if __name__ == "__main__":
    main()
