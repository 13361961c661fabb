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
  once their writer is gone. The writer holds a lock (`flock`) on `.~t2v-<host>-<pid>-<random>.lock`
  while it writes; the lock ends with its process, so a sweep that can take it knows the writer
  is gone, whatever PID namespace (container) it ran in. Where there is no such lock file, or the
  filesystem has no locks, a temporary is removed only once it is a day old.

Giving the name: a hard link (`os.link`) gives a file its name atomically and fails if the name is
taken, so it is used wherever it works. Google Drive in Colab, FAT/exFAT disks and some network
shares have no hard links; there the name is first reserved with an exclusive create (a small file
saying which temporary it waits for), and the finished temporary is moved over that reservation.
A reader may see the reservation for the moment between the two steps; a SIGKILL in that moment
leaves it, and the sweep removes it with its temporary (only a reservation naming a dead writer's
temporary is ours to remove). Folders are reserved with `mkdir` and the finished folder renamed over
the empty reservation; the sweep never removes a folder at a final name (an empty one may be the user's).
"""

import errno
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import stat
import threading
import time
from contextlib import contextmanager, suppress
from fractions import Fraction
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so only the age rule removes temporaries
    fcntl = None

from .errors import SettingError, VideoExportError
from .validate import check_output_dir

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)~(?P<writer>t2v-[0-9a-f]{6}-\d+-[0-9a-f]{8})(?P<ext>\.[^./]*)?$", re.DOTALL)
STALE_AFTER_S = 24 * 3600  # a temporary whose writer cannot be checked by its lock is left alone this long
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_LOCK = re.compile(r"^\.~t2v-[0-9a-f]{6}-\d+-[0-9a-f]{8}\.lock$")
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows filesystems


def temporary_path(target, pid=None, writer=None):
    """The hidden name `target` is written under before it is published (`writer`: its lock's id). Notebook 04."""
    target = Path(target)
    stem, ext = os.path.splitext(target.name)
    writer = writer or f"t2v-{_HOST}-{pid or os.getpid()}-{os.urandom(4).hex()}"
    room = NAME_MAX - len(f".~{writer}{ext}".encode())
    if len(stem.encode()) > room > 0:  # a name near the limit: shorten the hidden name's stem only
        stem = stem.encode()[:room].decode(errors="ignore")
    return target.with_name(f".{stem}~{writer}{ext}")


def lock_path(temporary):
    """The lock file that `temporary`'s writer holds while it writes. Notebook 04."""
    temporary = Path(temporary)
    return temporary.with_name(f".~{_TEMPORARY.match(temporary.name)['writer']}.lock")


@contextmanager
def writer_lock(temporary):
    """Hold the lock of `temporary`'s writer, so no sweep removes its files meanwhile. Notebook 04."""
    path = lock_path(temporary)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    except OSError:  # a full disk, say: with no lock file to ask, the sweep keeps the files a day
        handle = None
    try:
        if handle is not None and fcntl:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError:  # no locks on this filesystem: the age rule keeps the files
                pass
        yield
    finally:
        if handle is not None:
            os.close(handle)
            _remove(path)


def reservation_text(temporary):
    """What a name reserved for `temporary` holds until the finished file replaces it. Notebook 04."""
    return f"t2v-helpers is writing {Path(temporary).name} here\n".encode()


def _writer_gone(lock, entry):
    """Whether `lock` can be taken (its writer has ended), or there is no lock to ask and `entry` is a day old."""
    try:
        # Non-blocking: a FIFO named like a lock would otherwise wait forever for a writer. flock needs no write access.
        handle = os.open(lock, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        handle = None
    except OSError:  # a link (O_NOFOLLOW), or anything else we cannot open: not a lock of ours, so keep its files
        return False
    if handle is not None and not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)  # a FIFO, device or folder named like a lock: not ours, and its files are not ours to remove
        return False
    if handle is not None and fcntl:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError:  # no locks on this filesystem
            pass
        finally:
            os.close(handle)
    elif handle is not None:
        os.close(handle)
    return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S


def sweep(folder):
    """Remove the temporaries (and reservations) that saves into `folder` left when they were killed. Notebook 04.

    Only names of our exact pattern are touched, and only once their writer's lock is free, so a
    save still running in another process (or container) keeps its files.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:  # a folder you may write but not list: nothing to sweep that we can see
        return
    gone = set()
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        try:
            if _LOCK.match(entry.name) and _writer_gone(entry.path, entry):  # a writer killed before its first file
                gone.add(Path(entry.path))
            if not found:
                continue
            lock = folder / f".~{found['writer']}.lock"
            if not _writer_gone(lock, entry):
                continue
            gone.add(lock)
            target = folder / (found["stem"] + (found["ext"] or ""))
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)  # its folder reservation, if any, stays: an empty folder may be the user's
            else:
                marker = reservation_text(entry.name)
                if target.is_file() and not target.is_symlink() and target.stat().st_size == len(marker) and target.read_bytes() == marker:
                    target.unlink()
                os.unlink(entry.path)
        except OSError:  # another save swept it first, or it is not ours to remove
            continue
    for lock in gone:  # last, so a temporary is never left without the lock that guards it
        try:
            lock.unlink()
        except OSError:
            continue


def _give_name(temporary, target):
    """Give `temporary` the name `target` if no file, folder or link has it; else FileExistsError."""
    if temporary.is_dir():
        target.mkdir()  # the reservation; fails on anything there, a dangling link included
        try:
            os.rename(temporary, target)  # replaces only our own empty reservation
        except BaseException:
            _remove_quietly(target.rmdir)  # rmdir refuses a folder anyone has put something in
            raise
        return
    try:
        os.link(temporary, target)
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        # No hard links on this filesystem: reserve the name, then move over the reservation.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        handle = os.open(target, flags, 0o666)
        try:
            try:
                os.write(handle, reservation_text(temporary))
            finally:
                os.close(handle)
            os.replace(temporary, target)
        except BaseException:
            _remove_quietly(target.unlink)  # our reservation, made a moment ago
            raise
        return
    os.unlink(temporary)


# What link() says where a filesystem has no hard links (FAT and exFAT, Google Drive, SMB shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def _remove_quietly(remove):
    try:
        remove()
    except OSError:  # cleanup goes on with the next item; the error that started it is the one to show
        pass


def _remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:  # cleanup goes on with the next item; the error that started it is the one to show
        pass


def _advice(error):
    if error.errno == errno.ENAMETOOLONG:
        return "The name is too long for this filesystem: use a shorter name (or a shorter prompt), then save again."
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
    """`value` as indented JSON that any JSON reader takes, and that UTF-8 can always hold. Notebook 04.

    A byte that is not UTF-8 (in a file name, say) reaches Python as a lone surrogate, which
    UTF-8 cannot write: it is written as `\\xe9` rather than lose the finished video over it.
    """
    text = json.dumps(plain(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_escaped(plain(value)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return text


def _escaped(value):
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, str):
        try:  # a byte that is not UTF-8 becomes \xe9; half of a pair (no byte behind it) becomes \ud83e
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _write_new(path, data):
    """Write `data` to a new file at `path`: never through a link, never into something already there."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    with os.fdopen(handle, "wb") as file:
        file.write(data)


def file_kind(mode):
    """What a file's mode says it is, in words: 'a link', 'a FIFO', ... Notebook 04."""
    kinds = [(stat.S_ISLNK, "a link"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder")]
    return next((name for test, name in kinds if test(mode)), "not a plain file or folder")


def _folder_identity(folder):
    """(device, inode) of `folder` if it is a plain folder (not a link to one), else VideoExportError."""
    try:
        found = os.lstat(folder)
    except OSError as error:
        raise _export_error(error, Path(folder)) from None
    if not stat.S_ISDIR(found.st_mode):
        what = file_kind(found.st_mode)
        if stat.S_ISLNK(found.st_mode):
            what += f" to {os.readlink(folder)}"
        raise VideoExportError(
            f"{folder} is not a plain folder (it is {what}). The helpers write into a folder they make themselves, "
            "never through a link, so nothing was written there. Remove or rename it, or choose another output folder "
            "(out_dir=, or --out on the command line)."
        )
    return found.st_dev, found.st_ino


def own_folder(parent, name):
    """The folder `parent`/`name` that the helpers make and write into (the batch's line-007), never a link. Notebook 04.

    It is made if missing (mkdir never follows a link at its own name) and reused if it is a
    plain folder; a link (even to a folder), a file or a FIFO there raises VideoExportError.
    `parent` is the folder the user named, and is used as named, through a link if it is one.
    """
    parent = check_output_dir(parent, name="out_dir", create=True)
    path = parent / name
    with _export_errors(path), suppress(FileExistsError):  # made by an earlier run, or something planted there: checked next
        os.mkdir(path)
    _folder_identity(path)
    return path


def publish(folder, stem, writers, *, last=None, next_free=True, own=False):
    """Write each part, then publish all as `stem` + suffix, the first stem free for every suffix. Notebook 04.

    `writers` maps a suffix ('.mp4', '_frames') to `write(path)`, which must create `path`
    (a file or a folder). `last` = (suffix, text(paths)) is written after the others have
    their names (a sidecar naming them). With `next_free`, a taken name moves the set to
    `stem-2`, `stem-3`, ...; without, it raises FileExistsError. Returns {suffix: Path}.
    With `own`, `folder` is one the helpers made (`own_folder`): it must be a plain folder, not
    a link, and still the same folder when the names are given, or nothing is published.
    """
    if not isinstance(stem, str) or stem in ("", ".", "..") or Path(stem).name != stem or "/" in stem:
        raise SettingError("stem", stem, "is not a plain file name", "a name without folders in it",
                           "a name such as 'clip', and put the folder in out_dir")
    if own:
        folder = own_folder(Path(folder).expanduser().parent, Path(folder).name)
        identity = _folder_identity(folder)
    folder = check_output_dir(folder, name="out_dir", create=True)
    staged, published = {}, []
    writer = f"t2v-{_HOST}-{os.getpid()}-{os.urandom(4).hex()}"
    with _sigterm_as_ctrl_c(), writer_lock(folder / f".{stem}~{writer}"):
        try:
            sweep(folder)
            for suffix, write in writers.items():
                staged[suffix] = temporary_path(folder / (stem + suffix), writer=writer)
                with _export_errors(folder / (stem + suffix), keep=VideoExportError):
                    write(staged[suffix])
            if own and _folder_identity(folder) != identity:  # swapped for a link or another folder while we wrote
                raise VideoExportError(f"{folder} was replaced while the video was being written, so nothing was saved there. Save again.")
            return _give_names(folder, stem, writer, staged, published, last, next_free)
        except BaseException:
            for path, _ in published:
                _remove(path)
            for temporary in staged.values():
                _remove(temporary)
            raise


def _give_names(folder, stem, writer, staged, published, last, next_free):
    """Give the `staged` parts (and `last`, written now) the first free stem; `published` lists those that have their name."""
    suffixes = list(staged) + ([last[0]] if last else [])
    for number in itertools.count(1):
        name = stem if number == 1 else f"{stem}-{number}"
        if next_free and any(os.path.lexists(folder / (name + s)) for s in suffixes):
            continue
        paths = {suffix: folder / (name + suffix) for suffix in suffixes}
        try:
            for suffix in suffixes:
                if suffix not in staged:  # the last part, written now that the names are known
                    staged[suffix] = temporary_path(paths[suffix], writer=writer)
                    with _export_errors(paths[suffix]):
                        _write_new(staged[suffix], last[1](paths).encode("utf-8"))
                # Signals held, so a published name is always on the list to remove.
                with signals_held(), _export_errors(paths[suffix], keep=FileExistsError):
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


@contextmanager
def _export_errors(target, keep=()):
    """Inside the block an OSError, unless of a kind in `keep`, becomes a VideoExportError about writing `target`."""
    try:
        yield
    except keep:
        raise
    except OSError as error:
        raise _export_error(error, target) from None
