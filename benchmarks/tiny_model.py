"""What the tiny offline model costs: its size on disk, its build time, one video at the real defaults (README).

    .venv/bin/python benchmarks/tiny_model.py [--runs 3]

After one untimed build and one untimed video (imports and one-time set-up), it builds the
model `--runs` times into fresh folders and makes `--runs` videos of "Spiderman is surfing"
at the real defaults (16 frames of 256 x 256, 25 DPM-Solver steps) with `t2v.generate`, and
publishes `cpu-tiny-model.json` (a free name, never over an existing file) with every time,
the medians, their spread and the load average before and after.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import t2v_helpers as t2v

from bench import OUT_DIR, load_average, machine, save_results

VIDEO = dict(steps=25, frames=16, height=256, width=256)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed builds and videos (default 3)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the JSON file")
    args = parser.parse_args(argv)

    load_before = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        builds, size = [], None
        for i in range(args.runs + 1):
            start = time.perf_counter()
            folder = t2v.build_tiny_model(Path(scratch) / f"tiny-{i}")
            if i:  # the first build also pays for imports
                builds.append(time.perf_counter() - start)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        pipe = t2v.load_pipeline("tiny", verbose=False)
        t2v.set_scheduler(pipe, "dpm")
        pipe.set_progress_bar_config(disable=True)
        videos = []
        for i in range(args.runs + 1):
            result = t2v.generate(pipe, "Spiderman is surfing", seed=0, **VIDEO)
            if i:
                videos.append(result.elapsed_s)
    results = dict(
        title="The tiny model on the CPU: size, build time, one video at the real defaults",
        date=time.strftime("%Y-%m-%d"),
        machine=machine(),
        dtype=str(pipe.dtype).removeprefix("torch."),
        video=dict(prompt="Spiderman is surfing", scheduler="dpm", **VIDEO),
        method=f"1 untimed build and video first, then {args.runs} of each; seconds",
        load_before=load_before,
        load_after=load_average(),
        size_mb=size / 1e6,
        build_s=builds,
        build_median_s=statistics.median(builds),
        video_s=videos,
        video_median_s=statistics.median(videos),
    )
    path = save_results(results, "cpu-tiny-model", args.out)
    print(f"{size / 1e6:.1f} MB; build median {results['build_median_s']:.2f} s ({min(builds):.2f} to {max(builds):.2f}); "
          f"video median {results['video_median_s']:.1f} s ({min(videos):.1f} to {max(videos):.1f}); "
          f"load average {load_before} -> {results['load_after']}")
    print("wrote", path)


if __name__ == "__main__":
    main()
