"""The scheduler comparison (notebook 03): grid tiles, titles and sync; UNet calls counted from real calls."""

import json
import os

import imageio_ffmpeg
import numpy as np
import pytest

import t2v_helpers as t2v

STEPS = int(os.environ["T2V_STEPS"])
SIZE = int(os.environ["T2V_SIZE"])
# Two frames: counting UNet calls and timing do not need more.
SMALL = dict(frames=2, height=SIZE, width=SIZE)


def flat_videos(count, frames, size=16):
    """Videos whose every frame is one colour, unique to (video, frame), so a tile can be found by its colour."""
    colours = np.arange(count * frames * 3, dtype=np.uint8).reshape(count, frames, 1, 1, 3) * 3 + 20
    return np.broadcast_to(colours, (count, frames, size, size, 3)).copy(), colours[:, :, 0, 0]


def pixels_of(frame, colour):
    return np.all(frame == colour, axis=-1)


def test_every_tile_shows_frame_i_of_its_video_in_frame_i_of_the_grid():
    videos, colours = flat_videos(count=5, frames=3)
    grid = t2v.tile_videos(videos, [f"video {i}" for i in range(5)], min_tile_width=64)
    assert grid.shape[0] == 3 and grid.dtype == np.uint8
    assert grid.shape[1] % 2 == 0 and grid.shape[2] % 2 == 0  # H.264 needs even sizes
    tile_area = 64 * 64  # 16 px enlarged 4x
    for i in range(3):
        for v in range(5):
            assert pixels_of(grid[i], colours[v, i]).sum() == tile_area  # one whole tile, in this frame
            for other in set(range(3)) - {i}:
                assert not pixels_of(grid[i], colours[v, other]).any()  # never another frame: in sync


def test_each_tile_has_its_own_title_drawn_above_it():
    videos, colours = flat_videos(count=3, frames=1, size=160)
    grid = t2v.tile_videos(videos, ["ddim\n50 steps", "dpm\n25 steps", "ddim\n50 steps"])
    bands = []
    for v in range(3):
        rows, cols = np.nonzero(pixels_of(grid[0], colours[v, 0]))
        top, left, right = rows.min(), cols.min(), cols.max() + 1
        band = grid[0, top - 24 : top, left:right]
        assert (band < 100).all(axis=-1).sum() > 20  # dark text on the white band
        bands.append(band)
    assert not np.array_equal(bands[0], bands[1])
    assert np.array_equal(bands[0], bands[2])  # the same title draws the same band


def test_tiles_must_share_frame_count_and_size():
    with pytest.raises(ValueError, match="videos=.*frames"):
        t2v.tile_videos([np.zeros((4, 16, 16, 3)), np.zeros((2, 16, 16, 3))], ["a", "b"])
    with pytest.raises(ValueError, match="titles=.*2 titles for 1 videos"):
        t2v.tile_videos([np.zeros((4, 16, 16, 3))], ["a", "b"])
    with pytest.raises(ValueError, match="videos='an array of shape \\(16, 16, 3\\)' is not a video"):
        t2v.tile_videos([np.zeros((16, 16, 3))], ["an image"])
    with pytest.raises(ValueError, match="columns=0 .*from 1 to 2"):
        t2v.tile_videos([np.zeros((1, 16, 16, 3))] * 2, ["a", "b"], columns=0)


@pytest.mark.parametrize(
    "runs, named",
    [
        ([("dpm++ karras", 20)], "scheduler='dpm\\+\\+ karras'.*dpm\\+\\+2m-karras"),
        ([("dpm", 0)], "steps=0"),
        ([], "runs=\\[\\] is empty"),
        ("dpm", "runs='dpm' is not a list"),
        ([("dpm",)], "is not a \\(scheduler, steps\\) pair"),
    ],
)
def test_bad_runs_are_refused_by_name(runs, named):
    with pytest.raises(ValueError, match=named):
        t2v.compare.check_runs(runs)


def test_table_counts_real_unet_calls_and_times_each_run(pipe):
    forward = type(pipe.unet).forward
    calls = []

    def counted_forward(*args, **kwargs):  # a second, independent count: wrap the method itself
        calls.append(1)
        return forward(pipe.unet, *args, **kwargs)

    pipe.unet.forward = counted_forward
    original = pipe.scheduler
    try:
        comparison = t2v.compare_schedulers(pipe, "a red fox", [("ddim", STEPS), ("heun", STEPS), ("pndm", STEPS)], warmup=False, **SMALL)
    finally:
        del pipe.unet.forward
    assert pipe.scheduler is original  # the learner's scheduler is put back
    rows = comparison.rows
    assert [(r["scheduler"], r["steps"]) for r in rows] == [("ddim", STEPS), ("heun", STEPS), ("pndm", STEPS)]
    assert sum(r["unet_calls"] for r in rows) == len(calls)
    # Not the step count: Heun runs the UNet twice a step but once for the last; PNDM once more at the start.
    assert [r["unet_calls"] for r in rows] == [STEPS, 2 * STEPS - 1, STEPS + 1]
    assert all(r["unet_batch"] == 2 for r in rows)  # guidance 9: prompt and negative prompt in one call
    for row, result in zip(rows, comparison.results):
        assert 0 < row["s_per_step"] * row["steps"] <= row["wall_s"] + 0.01
        assert result.settings["scheduler"] == row["scheduler"] and result.seed == comparison.seed == 0
    assert comparison.titles == [f"{name}\n{STEPS} steps" for name in ("ddim", "heun", "pndm")]
    assert comparison.grid.shape[0] == SMALL["frames"]
    table = t2v.compare.format_table(rows)
    assert table.splitlines()[0] == "| scheduler | steps | UNet calls | batch per call | wall time (s) | s per step |"
    assert f"| heun | {STEPS} | {2 * STEPS - 1} | 2 |" in table


def test_each_tile_is_the_video_generate_makes_with_the_same_seed(pipe):
    comparison = t2v.compare_schedulers(pipe, "a red fox", [("euler-a", STEPS), ("dpm", STEPS)], seed=7, warmup=False, **SMALL)
    t2v.set_scheduler(pipe, "euler-a")
    alone = t2v.generate(pipe, "a red fox", steps=STEPS, seed=7, **SMALL)
    assert np.array_equal(comparison.results[0].frames, alone.frames)


def test_no_guidance_means_one_row_per_unet_call(pipe):
    comparison = t2v.compare_schedulers(pipe, "a red fox", [("dpm", STEPS)], guidance=1.0, warmup=False, **SMALL)
    assert comparison.rows[0]["unet_batch"] == 1 and comparison.rows[0]["unet_calls"] == STEPS


def test_unet_calls_of_the_default_runs_at_their_real_step_counts(pipe):
    comparison = t2v.compare_schedulers(pipe, "a red fox", t2v.compare.DEFAULT_RUNS, **SMALL)
    counted = {(r["scheduler"], r["steps"]): r["unet_calls"] for r in comparison.rows}
    print("\n" + t2v.compare.format_table(comparison.rows))
    assert counted == {
        ("ddim", 50): 50,
        ("dpm", 25): 25,
        ("dpm++2m-karras", 20): 20,
        ("unipc", 10): 10,
        ("euler-a", 25): 25,
        ("heun", 15): 29,
    }
    fastest = min(comparison.rows, key=lambda r: r["unet_calls"])
    assert (fastest["scheduler"], fastest["steps"], fastest["unet_calls"]) == ("unipc", 10, 10)


def test_save_comparison_writes_mp4_gif_and_sidecar_and_never_overwrites(pipe, tmp_path):
    comparison = t2v.compare_schedulers(pipe, "a red fox", [("ddim", STEPS), ("dpm", STEPS)], warmup=False, **SMALL)
    first = t2v.save_comparison(comparison, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = t2v.save_comparison(comparison, tmp_path)
    assert first.mp4.name == "a-red-fox-seed0-schedulers.mp4" and second.mp4.name == "a-red-fox-seed0-schedulers-2.mp4"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(first.mp4))
    assert frames == SMALL["frames"]
    sidecar = json.loads(first.sidecar.read_text())
    assert sidecar["runs"] == comparison.rows and sidecar["frame_count"] == SMALL["frames"]
    assert sidecar["files"] == {"mp4": first.mp4.name, "gif": first.gif.name}
    if os.environ["T2V_MODEL"] == "tiny":
        assert "noise" in sidecar["note"]
