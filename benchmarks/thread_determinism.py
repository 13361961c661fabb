"""Does the same seed give the same video with another number of CPU threads? (README: "Where files go, and what repeats").

    .venv/bin/python benchmarks/thread_determinism.py

Makes "Spiderman is surfing" with the tiny model in float32 (16 frames of 256 x 256, 4
DPM-Solver steps, seed 0) with 1 thread, 2 threads and 1 thread again, and publishes
`cpu-thread-determinism.json` (a free name): whether the repeat with the same thread count is
identical, and the largest difference between 1 and 2 threads in the float frames and in the
8-bit frames that are saved.
"""

import numpy as np
import torch

import t2v_helpers as t2v
from t2v_helpers.video import to_uint8

from bench import OUT_DIR, machine, save_results

VIDEO = dict(steps=4, frames=16, height=256, width=256, seed=0)


def main():
    pipe = t2v.load_pipeline("tiny", dtype=torch.float32, verbose=False)
    pipe.set_progress_bar_config(disable=True)
    made = []
    for threads in (1, 2, 1):
        torch.set_num_threads(threads)
        made.append(t2v.generate(pipe, "Spiderman is surfing", **VIDEO).frames)
    one, two, again = made
    eight_one, eight_two = to_uint8(one).astype(int), to_uint8(two).astype(int)
    results = {
        "what": "tiny model, float32, DPM-Solver, 'Spiderman is surfing': 1 thread, 2 threads, 1 thread again",
        "settings": VIDEO,
        "machine": machine(),
        "same_threads_identical": bool(np.array_equal(one, again)),
        "float_max_difference_1_vs_2_threads": float(np.abs(one - two).max()),
        "uint8_values_differing_1_vs_2_threads": int((eight_one != eight_two).sum()),
        "uint8_values": int(eight_one.size),
        "uint8_max_difference_1_vs_2_threads": int(np.abs(eight_one - eight_two).max()),
    }
    print(results)
    print(save_results(results, "cpu-thread-determinism", OUT_DIR))


if __name__ == "__main__":
    main()
