import json
import os

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import t2v_helpers as t2v
from t2v_helpers.generate import VideoResult


@pytest.fixture
def result():
    frames = np.random.default_rng(0).random((10, 32, 48, 3), dtype=np.float32)
    return VideoResult(frames, "Spiderman is surfing!", 42, {"model": "tiny", "steps": 2}, 0.5)


def probe(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, sum(1 for _ in reader)


def test_mp4_is_h264_yuv420p_at_8_fps_with_every_frame(result, tmp_path):
    saved = t2v.save_video(result, tmp_path)
    meta, count = probe(saved.mp4)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 8
    assert meta["size"] == (48, 32)
    assert count == 10


def test_other_fps_is_honoured(result, tmp_path):
    meta, count = probe(t2v.video.write_mp4(result.frames, tmp_path / "a.mp4", fps=12))
    assert (meta["fps"], count) == (12, 10)


def test_names_come_from_prompt_and_seed(result, tmp_path):
    saved = t2v.save_video(result, tmp_path)
    assert saved.mp4.name == "spiderman-is-surfing-seed42.mp4"
    assert saved.sidecar.name == "spiderman-is-surfing-seed42.json"


def test_nothing_is_overwritten(result, tmp_path):
    first = t2v.save_video(result, tmp_path, gif=True)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    second = t2v.save_video(result, tmp_path, gif=True)
    assert second.mp4.name == "spiderman-is-surfing-seed42-2.mp4"
    assert second.gif.name == "spiderman-is-surfing-seed42-2.gif"
    assert {p: p.read_bytes() for p in before} == before
    with pytest.raises(FileExistsError):
        t2v.video.write_mp4(result.frames, first.mp4)
    with pytest.raises(FileExistsError):
        t2v.video.write_gif(result.frames, first.gif)
    assert first.mp4.read_bytes() == before[first.mp4]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_user_file_with_the_same_name_is_kept(result, tmp_path):
    mine = tmp_path / "spiderman-is-surfing-seed42.json"
    mine.write_text("my notes")
    saved = t2v.save_video(result, tmp_path)
    assert mine.read_text() == "my notes"
    assert saved.mp4.name == "spiderman-is-surfing-seed42-2.mp4"


def test_sidecar_records_how_the_video_was_made(result, tmp_path):
    saved = t2v.save_video(result, tmp_path, gif=True, png_frames=True)
    sidecar = json.loads(saved.sidecar.read_text())
    assert sidecar["prompt"] == "Spiderman is surfing!"
    assert sidecar["seed"] == 42
    assert sidecar["settings"] == {"model": "tiny", "steps": 2}
    assert (sidecar["fps"], sidecar["frame_count"]) == (8, 10)
    assert sidecar["files"] == {
        "mp4": saved.mp4.name,
        "gif": saved.gif.name,
        "frames_dir": saved.frames_dir.name,
    }
    assert {"python", "torch", "diffusers", "transformers", "accelerate"} <= set(sidecar["versions"])
    assert "noise" in sidecar["note"]


def test_gif_and_png_frames(result, tmp_path):
    saved = t2v.save_video(result, tmp_path, gif=True, png_frames=True)
    gif = Image.open(saved.gif)
    assert (gif.n_frames, gif.size) == (10, (48, 32))
    assert abs(gif.info["duration"] - 1000 / 8) <= 10  # GIF stores hundredths of a second
    pngs = sorted(saved.frames_dir.glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["frame_000.png", "frame_001.png"] and len(pngs) == 10
    assert np.array_equal(np.asarray(Image.open(pngs[3])), t2v.video.to_uint8(result.frames)[3])


def test_uint8_conversion_clips_and_rounds():
    frames = np.array([[[[-0.5, 0.5, 1.5]]]], dtype=np.float32)
    assert t2v.video.to_uint8(frames).tolist() == [[[[0, 128, 255]]]]


def test_inline_player_embeds_the_video(result, tmp_path):
    saved = t2v.save_video(result, tmp_path)
    html = t2v.show_video(saved.mp4)._repr_html_()
    assert "<video" in html and "controls" in html and "data:video/mp4;base64," in html


def test_files_get_the_usual_permissions(result, tmp_path):
    saved = t2v.save_video(result, tmp_path, gif=True)
    mask = os.umask(0)
    os.umask(mask)
    for path in (saved.mp4, saved.gif, saved.sidecar):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
