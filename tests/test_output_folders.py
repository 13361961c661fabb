"""Output folders under attack: planted links, FIFOs named like our own files, `~` in a folder name.

The promise (README, "Where files go"): nothing is written through a link inside the output
folder, a save never blocks on something that is not a plain file, and `~` means your home
folder wherever a folder is named.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import t2v_helpers as t2v
from t2v_helpers import batch, cli
from t2v_helpers.errors import SettingError, VideoExportError

fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist only on POSIX systems")
links_only = pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")


def result(prompt="a blue bird"):
    return t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), prompt, 0, {"model": "tiny"}, 0.1)


def run_python(code, timeout=120, **env):
    """Run `code` in a fresh Python; a hang fails the test after `timeout` seconds instead of blocking the suite."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=environment)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (blocked)")


# --- 19.1: links planted inside the output folder ------------------------------------------------


@links_only
@pytest.mark.parametrize("kind", ["link to a folder", "dangling link", "file"])
def test_a_line_folder_that_is_not_a_plain_folder_is_refused_and_nothing_is_written_through_it(tmp_path, kind):
    out, elsewhere = tmp_path / "OUT", tmp_path / "E"
    out.mkdir()
    elsewhere.mkdir()
    planted = out / "line-001"
    if kind == "file":
        planted.write_text("mine")
    else:
        planted.symlink_to(elsewhere if kind == "link to a folder" else tmp_path / "missing")
    with pytest.raises(VideoExportError, match="line-001 .*is not a plain folder"):
        batch.line_folder(out, 1)
    assert not list(elsewhere.iterdir()) and not (tmp_path / "missing").exists()
    assert planted.is_symlink() or planted.read_text() == "mine"  # the user's own thing is left as it was


def test_a_line_folder_is_made_once_and_reused(tmp_path):
    first = batch.line_folder(tmp_path, 7)
    assert first == tmp_path / "line-007" and first.is_dir() and not first.is_symlink()
    assert batch.line_folder(tmp_path, 7) == first


@links_only
def test_the_batch_refuses_a_planted_line_link_before_the_model_loads(tmp_path):
    out, elsewhere = tmp_path / "OUT", tmp_path / "E"
    out.mkdir()
    elsewhere.mkdir()
    (out / "line-001").symlink_to(elsewhere)
    prompts = tmp_path / "one.txt"
    prompts.write_text("a blue bird\n")
    command = [sys.executable, "-m", "t2v_helpers.batch", "--prompts", str(prompts), "--model", "tiny", "--steps", "1", "--frames", "1", "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2 and "line-001" in run.stderr and "link" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "prompts: lines" not in run.stdout
    assert not list(elsewhere.iterdir())


@links_only
def test_a_link_swapped_in_after_the_check_is_still_not_written_through(tmp_path, monkeypatch):
    """The folder is checked again as the video is saved, not only before the model loads."""
    out, elsewhere = tmp_path / "OUT", tmp_path / "E"
    elsewhere.mkdir()
    folder = batch.line_folder(out, 1)
    folder.rmdir()
    folder.symlink_to(elsewhere)
    with pytest.raises(VideoExportError, match="not a plain folder"):
        t2v.save_video(result(), folder, own_folder=True)
    assert not list(elsewhere.iterdir())


@links_only
def test_an_output_folder_the_user_names_through_a_link_is_used(tmp_path):
    """A link you name yourself (outputs -> a bigger disk) is followed: it is your choice, as with cp or ffmpeg."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "outputs").symlink_to(disk)
    saved = t2v.save_video(result(), tmp_path / "outputs")
    assert (disk / saved.mp4.name).is_file() and (disk / saved.sidecar.name).is_file()


@links_only
def test_png_frames_are_never_written_through_a_link_at_the_frames_name(tmp_path):
    elsewhere = tmp_path / "E"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "frames").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        t2v.video.write_png_frames(result().frames, tmp_path / "out" / "frames")
    assert not list(elsewhere.iterdir())


# --- 19.4: a FIFO named like our lock or temporary files -----------------------------------------


@fifo_only
@pytest.mark.parametrize("name", [".~t2v-abcdef-1-12345678.lock", ".clip~t2v-abcdef-1-12345678.mp4"])
def test_a_fifo_named_like_a_writer_lock_or_temporary_never_blocks_a_save(tmp_path, name):
    out = tmp_path / "OUT"
    out.mkdir()
    os.mkfifo(out / name)
    if name.endswith(".mp4"):  # its writer's lock is a FIFO too: the sweep asks it whether the writer is gone
        os.mkfifo(out / ".~t2v-abcdef-1-12345678.lock")
    run = run_python(f"""
        import numpy as np, t2v_helpers as t2v
        r = t2v.VideoResult(np.zeros((2, 16, 16, 3), np.float32), "a blue bird", 0, {{"model": "tiny"}}, 0.1)
        print(t2v.save_video(r, {str(out)!r}).mp4.name)
    """, timeout=120)
    assert run.returncode == 0 and "a-blue-bird-seed0.mp4" in run.stdout, run.stderr
    assert (out / name).exists()  # not ours to remove


# --- 19.20: ~ in a folder name -----------------------------------------------------------------


def test_a_tilde_in_out_dir_is_the_home_folder(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    saved = t2v.save_video(result(), "~/vids")
    assert saved.mp4.parent == home / "vids" and saved.mp4.is_file()
    assert not (cwd / "~").exists()
    assert t2v.video.write_mp4(result().frames, "~/clip.mp4") == home / "clip.mp4"


def test_a_tilde_in_out_is_the_home_folder_on_the_command_line(tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    assert cli.main(["generate", "a blue bird", "--model", "tiny", "--steps", "1", "--frames", "1", "--out=~/vids"]) == 0
    assert [p.suffix for p in sorted((home / "vids").iterdir())] == [".json", ".mp4"]
    assert not (cwd / "~").exists()
    assert f"Wrote {home / 'vids'}" in capsys.readouterr().out


def test_an_own_folder_flag_on_a_folder_that_is_a_file_is_a_setting_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(SettingError, match="is a file, not a folder"):
        t2v.save_video(result(), tmp_path / "afile")


@links_only
def test_a_dangling_link_named_as_the_output_folder_says_where_it_points(tmp_path):
    (tmp_path / "outputs").symlink_to(tmp_path / "unplugged-disk")
    with pytest.raises(SettingError, match="is a link to .*unplugged-disk, which does not exist"):
        t2v.save_video(result(), tmp_path / "outputs")
    assert not (tmp_path / "unplugged-disk").exists()
