"""Publish files and folders safely: each is written under a hidden temporary name, then given its
final name only if that name is free. Every writer in the package goes through `publish`. Notebook 04.

What it promises, whatever signal, disk, link or second process gets in the way:

- An existing file, folder or link is never replaced, and never written through: a taken name
  (a dangling link included) moves the whole set to the next free stem (`name-2`, `name-3`, ...).
- A set (video, GIF, PNG frames, JSON sidecar) is published together, sidecar last, after every
  part is fully written; if any part fails, this call's other parts are removed again.
- Ctrl-C and SIGTERM (`kill`, `timeout`, docker, systemd) remove this call's files; SIGTERM
  then ends the process as it would have. SIGKILL or a power cut leaves only hidden temporaries,
  named `.<name>~t2v-<host>-<pid>-<random><ext>`, which the next save into that folder removes
  once their writer is gone (its pid no longer runs on this host, or a day has passed).

Giving the name: a hard link (`os.link`) gives a file its name atomically and fails if the name is
taken, so it is used wherever it works. Google Drive in Colab, FAT/exFAT disks and some network
shares have no hard links; there the name is first reserved with an exclusive create (a small file
saying which temporary it waits for), and the finished temporary is moved over that reservation.
A reader may see the reservation for the moment between the two steps; a SIGKILL in that moment
leaves it, and the sweep removes it with its temporary (only a reservation naming a dead writer's
temporary is ours to remove). Folders are reserved with `mkdir` and the finished folder renamed over
the empty reservation.
"""

import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

from .errors import VideoExportError
from .validate import check_output_dir

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)~t2v-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}(?P<ext>\.[^./]*)?$")
STALE_AFTER_S = 24 * 3600  # a temporary from another host (a shared folder) is left alone this long


def temporary_path(target, pid=None):
    """The hidden name `target` is written under before it is published. Notebook 04."""
    target = Path(target)
    stem, ext = os.path.splitext(target.name)
    return target.with_name(f".{stem}~t2v-{_HOST}-{pid or os.getpid()}-{os.urandom(4).hex()}{ext}")


def reservation_text(temporary):
    """What a name reserved for `temporary` holds until the finished file replaces it. Notebook 04."""
    return f"t2v-helpers is writing {Path(temporary).name} here\n".encode()


def _running(pid):
    if os.name == "nt":  # os.kill(pid, 0) would end the process there: leave it to the age rule
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep(folder):
    """Remove the temporaries (and reservations) that saves into `folder` left when they were killed. Notebook 04.

    Only names of our exact pattern are touched, and only once their writer is gone, so a
    save still running in another process keeps its files.
    """
    folder = Path(folder)
    for entry in os.scandir(folder):
        found = _TEMPORARY.match(entry.name)
        if not found:
            continue
        try:
            ours_and_dead = found["host"] == _HOST and not _running(int(found["pid"]))
            if not ours_and_dead and time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            target = folder / (found["stem"] + (found["ext"] or ""))
            if entry.is_dir(follow_symlinks=False):
                if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
                    target.rmdir()  # an empty reservation; rmdir refuses anything with files in it
                shutil.rmtree(entry.path)
            else:
                marker = reservation_text(entry.name)
                if target.is_file() and not target.is_symlink() and target.stat().st_size == len(marker) and target.read_bytes() == marker:
                    target.unlink()
                os.unlink(entry.path)
        except OSError:  # another save swept it first, or it is not ours to remove
            continue


def _give_name(temporary, target):
    """Give `temporary` the name `target` if no file, folder or link has it; else FileExistsError."""
    if temporary.is_dir():
        target.mkdir()  # the reservation; fails on anything there, a dangling link included
        os.rename(temporary, target)  # replaces only our own empty reservation
        return
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem: reserve the name, then move over the reservation
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        handle = os.open(target, flags, 0o666)
        try:
            os.write(handle, reservation_text(temporary))
        finally:
            os.close(handle)
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _advice(error):
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "The disk is full: free some space (df -h shows how much is left) or choose a folder on another disk (out_dir=, or --out on the command line), then save again."
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "The folder cannot be written: choose another folder (out_dir=, or --out on the command line)."
    return "Check the folder and the free disk space (df -h), or choose another folder (out_dir=, or --out on the command line), then save again."


def _export_error(error, target):
    reason = error.strerror or (str(error).strip() or type(error).__name__).splitlines()[0]
    message = f"Writing {target.name} in {target.parent} failed ({reason}), so nothing of this save was kept and earlier files are untouched. {_advice(error)}"
    wrapped = VideoExportError(message)
    wrapped.errno = error.errno  # no filename: it would replace the message in str()
    return wrapped


@contextmanager
def _sigterm_as_ctrl_c():
    """Inside the block SIGTERM raises KeyboardInterrupt, so cleanup runs; afterwards it acts as before."""
    previous = signal.getsignal(signal.SIGTERM) if hasattr(signal, "SIGTERM") else None
    if threading.current_thread() is not threading.main_thread() or previous in (None, signal.SIG_IGN):
        yield
        return
    received = []

    def stop(signum, frame):
        received.append(signum)
        if len(received) == 1:  # a second SIGTERM must not cut the cleanup short
            raise KeyboardInterrupt("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            signal.raise_signal(signal.SIGTERM)  # now end the process (or run its own handler)


@contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM over a step that must not be cut in two, such as starting ffmpeg. Notebook 04."""
    names = [getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)]
    previous = {number: signal.getsignal(number) for number in names}
    previous = {number: handler for number, handler in previous.items() if handler not in (None, signal.SIG_IGN)}
    if threading.current_thread() is not threading.main_thread():
        previous = {}
    pending = []
    for number in previous:
        signal.signal(number, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(pending):
            signal.raise_signal(number)


def plain(value):
    """`value` with numpy numbers and arrays, fractions, paths and other objects made plain JSON values. Notebook 04."""
    if isinstance(value, dict):
        return {str(plain(k)) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays, torch tensors
        return plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (float, Fraction)):
        value = float(value)
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    return str(value)


def json_text(value):
    """`value` as indented JSON that any JSON reader takes. Notebook 04."""
    return json.dumps(plain(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def publish(folder, stem, writers, *, last=None, next_free=True):
    """Write each part, then publish all as `stem` + suffix, the first stem free for every suffix. Notebook 04.

    `writers` maps a suffix ('.mp4', '_frames') to `write(path)`, which must create `path`
    (a file or a folder). `last` = (suffix, text(paths)) is written after the others have
    their names (a sidecar naming them). With `next_free`, a taken name moves the set to
    `stem-2`, `stem-3`, ...; without, it raises FileExistsError. Returns {suffix: Path}.
    """
    folder = check_output_dir(folder, name="out_dir", create=True)
    suffixes = list(writers) + ([last[0]] if last else [])
    staged, published = {}, []
    with _sigterm_as_ctrl_c():
        try:
            sweep(folder)
            for suffix, write in writers.items():
                staged[suffix] = temporary_path(folder / (stem + suffix))
                try:
                    write(staged[suffix])
                except VideoExportError:
                    raise
                except OSError as error:
                    raise _export_error(error, folder / (stem + suffix)) from None
            number = 1
            while True:
                name = stem if number == 1 else f"{stem}-{number}"
                number += 1
                if next_free and any(os.path.lexists(folder / (name + s)) for s in suffixes):
                    continue
                paths = {suffix: folder / (name + suffix) for suffix in suffixes}
                try:
                    for suffix in suffixes:
                        if suffix not in staged:  # the last part, written now that the names are known
                            staged[suffix] = temporary_path(paths[suffix])
                            try:
                                staged[suffix].write_text(last[1](paths), encoding="utf-8")
                            except OSError as error:
                                raise _export_error(error, paths[suffix]) from None
                        with signals_held():  # so a published name is always on the list to remove
                            _give_name(staged[suffix], paths[suffix])
                            published.append((paths[suffix], staged[suffix]))
                    return paths
                except FileExistsError:
                    if not next_free:
                        taken = str(paths[suffix])
                        raise FileExistsError(errno.EEXIST, f"{taken} already exists; nothing is ever replaced, so choose another name", taken) from None
                    # Another save took this name meanwhile: take ours back and try the next one.
                    while published:
                        path, temporary = published.pop()
                        os.rename(path, temporary)
                    if last and last[0] in staged:
                        _remove(staged.pop(last[0]))
        except BaseException:
            for path, _ in published:
                _remove(path)
            for temporary in staged.values():
                _remove(temporary)
            raise
