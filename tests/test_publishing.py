"""Publishing files safely: where hard links do not exist, through links planted at the target,
with a second process saving the same names, after SIGTERM or SIGKILL, with frames of any shape,
and with the benchmark results read offline from an installed (not editable) package."""

import errno
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import bench  # benchmarks/bench.py: pyproject.toml puts benchmarks/ on pytest's sys.path
import t2v_helpers as t2v
from t2v_helpers.errors import SettingError, VideoExportError
from t2v_helpers.video import save_frames

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name == "nt", reason="signals, symbolic links and fork are POSIX features here")


def fox(frames=4, size=16):
    return t2v.VideoResult(np.random.default_rng(0).random((frames, size, size, 3), np.float32), "a red fox", 0, {"model": "tiny"})


def hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- filesystems without hard links (FAT, exFAT, Google Drive in Colab, some network shares) ------

@pytest.fixture
def no_hard_links(monkeypatch):
    def link(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(os, "link", link)


def test_saving_works_where_hard_links_do_not_exist(no_hard_links, tmp_path):
    first = t2v.save_video(fox(), tmp_path, gif=True, png_frames=True)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    second = t2v.save_video(fox(), tmp_path, gif=True)
    assert second.mp4.name == "a-red-fox-seed0-2.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(first.mp4)[0] == 4
    assert Image.open(first.gif).n_frames == 4 and len(list(first.frames_dir.iterdir())) == 4
    assert json.loads(first.sidecar.read_text())["files"]["mp4"] == first.mp4.name
    with pytest.raises(FileExistsError):
        t2v.video.write_mp4(fox().frames, first.mp4)
    with pytest.raises(FileExistsError):
        t2v.video.write_png_frames(fox().frames, first.frames_dir)
    assert {p: p.read_bytes() for p in before} == before
    assert hidden(tmp_path) == []


@posix_only
def test_a_reservation_left_by_a_killed_save_is_cleaned_and_nothing_else(tmp_path):
    # What SIGKILL between reserving the name and moving the video over it leaves (no hard links):
    # the temporary of a dead writer, and its reservation under the final name.
    from t2v_helpers import publish

    pid = dead_pid()
    temporary = publish.temporary_path(tmp_path / "a-red-fox-seed0.mp4", pid=pid)
    temporary.write_bytes(b"half a video")
    reservation = tmp_path / "a-red-fox-seed0.mp4"
    reservation.write_bytes(publish.reservation_text(temporary))
    publish.lock_path(temporary).touch()  # its lock file, no longer held by anyone
    empty = tmp_path / "empty.mp4"  # an empty file of the user's: not ours to remove
    empty.touch()
    # A live writer's temporary (this process) and a look-alike of the user's stay.
    live = publish.temporary_path(tmp_path / "other.mp4")
    live.write_bytes(b"being written")
    mine = tmp_path / ".notes~t2v-mine.txt"
    mine.write_text("mine")
    saved = t2v.save_video(fox(), tmp_path)
    assert saved.mp4.name == "a-red-fox-seed0.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(saved.mp4)[0] == 4
    assert not temporary.exists() and empty.exists() and live.exists() and mine.read_text() == "mine"


# --- links planted at the target name ------------------------------------------------------------

@posix_only
@pytest.mark.parametrize("suffix", [".mp4", ".json", ".gif", "_frames"])
def test_a_dangling_link_at_the_target_is_never_written_through(suffix, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir(), outside.mkdir()
    link = out / f"a-red-fox-seed0{suffix}"
    link.symlink_to(outside / "planted")
    saved = t2v.save_video(fox(), out, gif=True, png_frames=True)
    assert saved.mp4.name == "a-red-fox-seed0-2.mp4"
    assert list(outside.iterdir()) == [] and link.is_symlink()
    direct = {".mp4": t2v.video.write_mp4, ".gif": t2v.video.write_gif, "_frames": t2v.video.write_png_frames}
    if suffix in direct:
        with pytest.raises(FileExistsError):
            direct[suffix](fox().frames, link)
    assert list(outside.iterdir()) == []


@posix_only
def test_benchmark_results_are_never_written_through_a_link(tmp_path, monkeypatch):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir(), outside.mkdir()
    (out / "cpu-tiny.json").symlink_to(outside / "cpu-tiny.json")
    (out / "cpu-tiny-2.md").symlink_to(outside / "cpu-tiny-2.md")
    monkeypatch.setattr(bench, "_run_in_child", lambda config, timeout: dict(config, error="not run", load_before=0.0, load_after=0.0))
    config = dict(model="tiny", device="cpu", dtype="float32", offload="none", vae_slicing=True, frames=4, size=32, steps=2)
    results, paths = bench.run("tiny", out, device="cpu", configs=[config], with_overhead=False)
    assert [p.name for p in paths] == ["cpu-tiny-3.json", "cpu-tiny-3.md"]
    assert list(outside.iterdir()) == []
    assert json.loads(paths[0].read_text())["runs"][0]["error"] == "not run"
    assert hidden(out) == []


# --- a second process saving the same names ---------------------------------------------------------

def save_in_rounds(out, barrier, rounds, gif):
    for _ in range(rounds):
        barrier.wait()
        t2v.save_video(fox(frames=6, size=32), out, gif=gif)


@posix_only
@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_processes_saving_the_same_prompt_and_seed_all_keep_their_videos(hard_links, tmp_path, monkeypatch):
    if not hard_links:
        monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(PermissionError(errno.EPERM, "no links")))
    processes, rounds = 3, 3
    context = multiprocessing.get_context("fork")  # the children inherit the patched os.link
    barrier = context.Barrier(processes)
    children = [context.Process(target=save_in_rounds, args=(tmp_path, barrier, rounds, True)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
    assert [child.exitcode for child in children] == [0] * processes
    sidecars = sorted(tmp_path.glob("*.json"))
    assert len(sidecars) == len(list(tmp_path.glob("*.mp4"))) == len(list(tmp_path.glob("*.gif"))) == processes * rounds
    for sidecar in sidecars:
        files = json.loads(sidecar.read_text())["files"]
        assert files["mp4"] == sidecar.stem + ".mp4" and files["gif"] == sidecar.stem + ".gif"
        assert imageio_ffmpeg.count_frames_and_secs(tmp_path / files["mp4"])[0] == 6
    assert hidden(tmp_path) == []


def test_a_name_taken_while_writing_moves_to_the_next_free_name(tmp_path, monkeypatch):
    real_link = os.link
    taken = []

    def link(src, dst, *args, **kwargs):
        if not taken:  # another process publishes the same name just before this one
            Path(dst).write_text("the other process's video")
            taken.append(dst)
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    saved = t2v.save_video(fox(), tmp_path, gif=True)
    assert Path(taken[0]).read_text() == "the other process's video"
    assert saved.mp4.name == "a-red-fox-seed0-2.mp4" and saved.gif.name == "a-red-fox-seed0-2.gif"
    assert json.loads(saved.sidecar.read_text())["files"] == {"mp4": saved.mp4.name, "gif": saved.gif.name}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-red-fox-seed0-2.gif", "a-red-fox-seed0-2.json", "a-red-fox-seed0-2.mp4", "a-red-fox-seed0.mp4",
    ]


# --- SIGTERM and SIGKILL -------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from PIL import Image
    import t2v_helpers as t2v

    real_save = Image.Image.save

    def slow_gif(self, fp, format=None, **kwargs):
        if format == "GIF":
            Path(sys.argv[2]).touch()  # the MP4 is written; the GIF is being written
            time.sleep(120)
        return real_save(self, fp, format, **kwargs)

    Image.Image.save = slow_gif
    result = t2v.VideoResult(np.zeros((4, 16, 16, 3), np.float32), "a red fox", 0)
    t2v.save_video(result, sys.argv[1], gif=True)
""")


def wait_for(path, process, timeout=120):
    end = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "the child never got there"
        time.sleep(0.05)


@posix_only
def test_sigterm_while_writing_the_gif_leaves_no_video_without_its_sidecar(tmp_path):
    out, ready = tmp_path / "out", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(ready)], stderr=subprocess.PIPE, text=True)
    wait_for(ready, child)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGTERM, child.stderr.read()
    assert sorted(p.name for p in out.iterdir()) == []


@posix_only
def test_sigkill_while_writing_the_mp4_leaves_temporaries_that_the_next_save_removes(tmp_path, monkeypatch):
    out, ready = tmp_path / "out", tmp_path / "ready"
    fake = tmp_path / "ffmpeg"  # writes part of a video, then hangs
    fake.write_text(f'#!/bin/sh\nfor last; do :; done\nprintf "\\0\\0\\0 ftypisom" > "$last"\ntouch "{ready}"\nsleep 120\n')
    fake.chmod(0o755)
    code = "import sys, numpy as np, t2v_helpers as t2v\nt2v.save_video(t2v.VideoResult(np.zeros((4, 16, 16, 3), np.float32), 'a red fox', 0), sys.argv[1])"
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(fake)}
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], env=env, start_new_session=True)
    wait_for(ready, child)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    left = hidden(out)
    assert left, "the killed save should have left its temporary file"
    saved = t2v.save_video(fox(), out)
    assert saved.mp4.name == "a-red-fox-seed0.mp4"
    assert hidden(out) == []


@posix_only
def test_ctrl_c_while_ffmpeg_starts_leaves_no_file_behind(tmp_path, monkeypatch):
    real_popen = subprocess.Popen
    started = []

    def popen(command, *args, **kwargs):
        process = real_popen(command, *args, **kwargs)
        if "rawvideo" in command:
            started.append(process)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C just as ffmpeg has started
        return process

    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(KeyboardInterrupt):
        t2v.save_video(fox(), tmp_path)
    monkeypatch.undo()
    (ffmpeg,) = started
    if ffmpeg.stdin and not ffmpeg.stdin.closed:
        ffmpeg.stdin.close()  # what the garbage collector would do to a forgotten pipe
    ffmpeg.wait(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- frames of every shape and type ----------------------------------------------------------------------

GOOD = {
    "float64": lambda: np.random.default_rng(0).random((3, 16, 16, 3)),
    "uint8": lambda: np.full((3, 16, 16, 3), 200, np.uint8),
    "int64 in 0..255": lambda: np.full((3, 16, 16, 3), 200, np.int64),
    "one channel": lambda: np.full((3, 16, 16, 1), 0.5, np.float32),
    "PIL images": lambda: [Image.new("RGB", (16, 16), (200, 100, 50))] * 3,
    "PIL grayscale images": lambda: [Image.new("L", (16, 16), 200)] * 3,
    "list of arrays": lambda: [np.full((16, 16, 3), 0.5, np.float32)] * 3,
    "odd size": lambda: np.full((3, 15, 17, 3), 0.5, np.float32),
}


@pytest.mark.parametrize("make", GOOD.values(), ids=list(GOOD))
def test_frames_of_any_usual_kind_are_saved_as_they_look(make, tmp_path):
    frames = make()
    expected = t2v.video.to_uint8(frames)
    assert expected.dtype == np.uint8 and expected.shape[0] == 3 and expected.shape[-1] == 3
    saved = save_frames(frames, tmp_path, "clip", {}, png_frames=True)
    first = np.asarray(Image.open(saved.frames_dir / "frame_000.png"))
    np.testing.assert_array_equal(first, expected[0])
    if isinstance(frames, np.ndarray) and frames.dtype.kind in "ui":  # whole numbers are 0..255 as they are
        assert np.all(first == 200)
    assert imageio_ffmpeg.count_frames_and_secs(saved.mp4)[0] == 3


BAD = {
    "no frames": (lambda: np.zeros((0, 16, 16, 3), np.float32), "no frames"),
    "empty list": (lambda: [], "no frames"),
    "RGBA": (lambda: np.zeros((3, 16, 16, 4), np.float32), "frames[..., :3]"),
    "grayscale without a channel axis": (lambda: np.zeros((3, 16, 16), np.float32), "frames[..., None]"),
    "a batch": (lambda: np.zeros((1, 3, 16, 16, 3), np.float32), "frames[0]"),
    "channels first": (lambda: np.zeros((3, 3, 16, 16), np.float32), "transpose(0, 2, 3, 1)"),
    "NaN": (lambda: np.full((3, 16, 16, 3), np.nan, np.float32), "NaN"),
    "0..255 as floats": (lambda: np.full((3, 16, 16, 3), 200.0), "/ 255"),
    "int beyond 255": (lambda: np.full((3, 16, 16, 3), 1000, np.int64), "0 to 255"),
    "text": (lambda: np.array([["a"]]), "numbers"),
    "sizes differ": (lambda: [np.zeros((16, 16, 3)), np.zeros((8, 8, 3))], "same size"),
    "zero height": (lambda: np.zeros((3, 0, 16, 3), np.float32), "height"),
}


@pytest.mark.parametrize("make, says", BAD.values(), ids=list(BAD))
def test_frames_that_cannot_make_a_video_are_refused_with_what_to_pass(make, says, tmp_path):
    for write in (lambda f: save_frames(f, tmp_path, "clip", {}, gif=True), lambda f: t2v.video.write_gif(f, tmp_path / "x.gif")):
        with pytest.raises(SettingError) as caught:
            write(make())
        message = str(caught.value)
        assert says in message and "(frames, height, width, 3)" in message, message
    assert list(tmp_path.iterdir()) == []


# --- the sidecar takes any value that passed validation ---------------------------------------------------

def test_sidecar_holds_numpy_and_fraction_values_as_plain_json(tmp_path):
    info = {"seed": np.int64(7), "settings": {"guidance": np.float32(7.5), "fps": Fraction(1, 2), np.int64(3): "key"},
            "shape": np.array([1, 2]), "elapsed_s": float("nan"), "where": tmp_path}
    saved = save_frames(fox().frames, tmp_path, "clip", info)
    sidecar = json.loads(saved.sidecar.read_text())
    assert sidecar["seed"] == 7 and sidecar["settings"] == {"guidance": 7.5, "fps": 0.5, "3": "key"}
    assert sidecar["shape"] == [1, 2] and sidecar["elapsed_s"] is None and sidecar["where"] == str(tmp_path)
    result = t2v.VideoResult(fox().frames, "a red fox", np.int64(3), {"steps": np.int64(2)}, np.float64(0.25))
    assert json.loads(t2v.save_video(result, tmp_path).sidecar.read_text())["seed"] == 3


# --- a full disk ----------------------------------------------------------------------------------------

def test_a_full_disk_while_writing_the_gif_says_what_to_change_and_keeps_nothing(tmp_path, monkeypatch):
    real_save = Image.Image.save

    def save(self, fp, format=None, **kwargs):
        if format == "GIF":
            real_save(self, fp, format=format)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, format, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(VideoExportError) as caught:
        t2v.save_video(fox(), tmp_path, gif=True)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    for part in ("a-red-fox-seed0.gif", "No space left on device", "df -h", "out_dir", "nothing"):
        assert part in message, part
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


# --- the committed results, offline, from an installed package -------------------------------------------

NO_NETWORK = textwrap.dedent("""
    import socket, urllib.request
    def refuse(*args, **kwargs):
        raise OSError("the network is off in this test")
    socket.socket.connect = socket.create_connection = urllib.request.urlopen = refuse
    import t2v_helpers, t2v_helpers.measured as measured
    print(t2v_helpers.__file__)
    results = measured.load_results("cpu-full")
    print(len(results["runs"]), results["overhead"]["ratio_median"])
""")


@pytest.mark.skipif(os.name == "nt", reason="paths of the installed package are POSIX paths here")
def test_committed_results_load_offline_from_a_non_editable_install(tmp_path, installed_wheel):
    target = installed_wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, "-c", NO_NETWORK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    where, figures = done.stdout.splitlines()
    assert where.startswith(str(target))
    committed = json.loads((ROOT / "benchmarks" / "results" / "cpu-full.json").read_text())
    assert figures == f"{len(committed['runs'])} {committed['overhead']['ratio_median']}"


# --- what an attacker tried: other PID namespaces, look-alike folders, odd link errors, long names ------

@posix_only
def test_a_save_still_being_written_in_another_pid_namespace_is_kept(tmp_path):
    # In another container sharing the hostname the writer's pid means nothing here: the pid check
    # says "dead" while the writer really holds its lock. Only the lock may decide.
    from t2v_helpers import publish

    live = publish.temporary_path(tmp_path / "other.mp4", pid=dead_pid())
    with publish.writer_lock(live):
        live.write_bytes(b"being written")
        publish.sweep(tmp_path)
        assert live.exists()
    publish.lock_path(live).touch()  # what a writer killed by SIGKILL leaves: its lock file, no longer held
    publish.sweep(tmp_path)
    assert hidden(tmp_path) == []


@posix_only
def test_a_users_empty_folder_named_like_a_reservation_is_never_removed(tmp_path, monkeypatch):
    from t2v_helpers import publish

    monkeypatch.chdir(tmp_path)
    temporary = publish.temporary_path(Path("holiday_frames"), pid=dead_pid())
    temporary.mkdir()
    (temporary / "frame_000.png").write_bytes(b"x")
    Path("holiday_frames").mkdir()
    t2v.video.write_gif(np.zeros((2, 8, 8, 3)), "other.gif")
    assert Path("holiday_frames").is_dir()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EIO])
def test_a_link_that_fails_for_another_reason_says_what_to_change_and_keeps_nothing(code, tmp_path, monkeypatch):
    def link(src, dst, *args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(VideoExportError) as caught:
        t2v.save_video(fox(), tmp_path, gif=True)
    assert "nothing of this save was kept" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_reservation_whose_move_fails_is_removed_again(no_hard_links, tmp_path, monkeypatch):
    def replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(VideoExportError):
        t2v.video.write_gif(np.zeros((2, 8, 8, 3)), tmp_path / "clip.gif")
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_the_cli_says_what_to_change_when_the_link_fails(tmp_path):
    code = ("import errno, os, sys, runpy\n"
            "def link(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "os.link = link\nsys.argv = ['t2v_helpers', 'a cat', '--model', 'tiny', '--frames', '2', '--steps', '1', '--out', sys.argv[1]]\n"
            "runpy.run_module('t2v_helpers', run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "disk is full" in run.stderr


def test_a_long_name_is_saved_and_a_too_long_one_says_use_a_shorter_name(tmp_path):
    saved = t2v.video.write_gif(np.zeros((2, 8, 8, 3)), tmp_path / ("a" * 240 + ".gif"))
    assert saved.name == "a" * 240 + ".gif" and hidden(tmp_path) == []
    with pytest.raises(VideoExportError, match="shorter name"):
        t2v.video.write_gif(np.zeros((2, 8, 8, 3)), tmp_path / ("b" * 300 + ".gif"))
    assert hidden(tmp_path) == []


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder, so it cannot be made unreadable")
def test_a_write_only_folder_is_saved_into_without_sweeping(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    folder.chmod(0o333)
    try:
        assert t2v.video.write_gif(np.zeros((2, 8, 8, 3)), folder / "clip.gif").name == "clip.gif"
    finally:
        folder.chmod(0o755)


def test_a_write_only_folder_skips_the_sweep(tmp_path, monkeypatch):
    from t2v_helpers import publish

    def scandir(path):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", scandir)
    publish.sweep(tmp_path)


@pytest.mark.parametrize("stem", ["../escaped", "/tmp/abs", "..", ".", "", "a/b"])
def test_a_stem_with_a_path_in_it_is_refused(stem, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SettingError, match="stem"):
        save_frames(fox().frames, out, stem, {})
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("make", [
    lambda torch: torch.rand(2, 8, 8, 3, requires_grad=True),
    lambda torch: torch.rand(2, 8, 8, 3).to(torch.bfloat16),
], ids=["requires-grad", "bfloat16"])
def test_torch_tensors_are_taken_as_frames(make, tmp_path):
    torch = pytest.importorskip("torch")
    frames = make(torch)
    assert t2v.video.to_uint8(frames).dtype == np.uint8
    assert t2v.video.write_gif(frames, tmp_path / "clip.gif").exists()


def test_frames_numpy_cannot_convert_get_what_to_pass():
    class Odd:
        def __array__(self, *args, **kwargs):
            raise TypeError("no")

    with pytest.raises(SettingError, match="frames"):
        t2v.video.to_uint8(Odd())


@pytest.fixture
def no_inodes_left(tmp_path):
    """A tmpfs whose every inode is taken, so creating any file or link fails with ENOSPC."""
    mount = tmp_path / "full"
    mount.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m,nr_inodes=8", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("this machine does not let a test mount a tmpfs")
    try:
        for number in range(100):
            try:
                (mount / f"user{number}").touch()
            except OSError:
                break
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_folder_with_no_inodes_left_says_the_disk_is_full(no_inodes_left):
    before = sorted(p.name for p in no_inodes_left.iterdir())
    with pytest.raises(VideoExportError, match="disk is full"):
        t2v.video.write_gif(np.zeros((2, 8, 8, 3)), no_inodes_left / "clip.gif")
    assert sorted(p.name for p in no_inodes_left.iterdir()) == before


@posix_only
def test_a_lock_file_left_without_temporaries_is_removed_once_free(tmp_path):
    from t2v_helpers import publish

    held, free = (publish.temporary_path(tmp_path / name) for name in ("held.mp4", "free.mp4"))
    publish.lock_path(free).touch()  # a writer killed before it wrote anything
    with publish.writer_lock(held):
        publish.sweep(tmp_path)
        assert hidden(tmp_path) == [publish.lock_path(held).name]
