"""Build a tiny model's folder once in the cache, safely when several processes ask at once. Notebook 02.

The tiny random-weight models themselves (their configs, laid out like the real repositories)
are described beside their families in `t2v_helpers.families`; this module only builds and
caches the folders, for them and for the tiny LoRA of notebook 08.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import SettingError


def cache_dir():
    """Where built artefacts are cached (`T2V_CACHE`, else ~/.cache/t2v_helpers; `~` is your home folder). Notebook 02."""
    return Path(os.environ.get("T2V_CACHE") or Path.home() / ".cache" / "t2v_helpers").expanduser()


def build_tiny(model, path=None, *, rebuild=False):
    """Build (once) the tiny model `model` (a families.Model with `build`) and return its folder. Notebook 09.

    Any number of processes may call it at once (torchrun ranks, two notebooks): one builds,
    holding a lock file `.NAME.lock` beside the folder, and the others wait for it and
    reuse its model. A model only ever appears at `path` whole, by renaming a finished
    `.NAME.xxxxxxxx` folder into place (one left by a killed build is removed next time),
    and a rebuild swaps the new folder in rather than deleting the one a reader may be loading.
    """
    path = Path(path) if path else cache_dir() / f"{model.name}-text-to-video-v{model.version}"

    def save(folder):
        _save_from_any_process(model, folder)
        note = {"what": "random weights for offline tests; its videos are noise", "model": model.name, "version": model.version}
        (folder / "TINY_MODEL.json").write_text(json.dumps(note, indent=2))

    return build_once(path, save, marker="TINY_MODEL.json", version=model.version, what="tiny model", rebuild=rebuild)


def build_once(path, save, *, marker, version, what, rebuild=False):
    """Build the folder `path` once with `save(folder)`, safely under concurrent processes. Notebook 02.

    `save` writes the files and, last, `marker`: a JSON file whose "version" says which recipe
    built it. Used by `build_tiny` and `fast.build_tiny_lora`; the guarantees are theirs
    (one builder at a time, a whole folder or none, a rebuild swapped in, a folder that is not
    ours never touched). A finished folder is used without taking the lock (it only ever
    appears whole), so a read-only cache that holds it works; a cache that cannot be used for
    building raises SettingError naming T2V_CACHE (or `path`, if one was given).
    """
    if not rebuild and _version_built_here(path / marker) == version:
        return path
    try:
        return _build_locked(path, save, marker, version, what, rebuild)
    except _NotOurs as error:
        raise FileExistsError(str(error)) from None
    except OSError as error:
        raise _cache_error(path, error) from None


class _NotOurs(Exception):
    """A folder at the model's path that this package did not build."""


def _cache_error(path, error):
    reason = error.strerror or str(error)
    if path.parent == cache_dir():
        return SettingError(
            "T2V_CACHE", str(path.parent), f"cannot be used to build the tiny models in ({reason})",
            "a folder you can write to (the default is ~/.cache/t2v_helpers)",
            "T2V_CACHE=/a/folder/you/can/write, or unset T2V_CACHE to use the default",
        )
    return SettingError("path", str(path), f"cannot be used to build a tiny model in ({reason})",
                        "a folder you can write to", "another folder, such as path='tiny-model'")


def _build_locked(path, save, marker, version, what, rebuild):
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        _remove_killed_builds(path)
        built = _version_built_here(path / marker)
        if built is None and path.exists():  # not ours: a user's folder is never touched
            raise _NotOurs(f"{path} exists and is not a {what} built here; choose another path.")
        if built == version and not rebuild:
            return path
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
        try:
            save(staging)
            if path.exists():
                _swap(staging, path)  # `staging` now holds the old folder
            else:
                staging.rename(path)
        finally:
            # Readers that opened the old files keep them (POSIX keeps deleted files open);
            # new readers find the new folder at `path`.
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _save_from_any_process(model, folder):
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # transformers writes a model's weights on distributed rank 0 only, so another rank (a
        # torchrun batch) would build a model without them: save from a fresh process instead,
        # which finds the model by name (this module sits below the families and names none).
        package_parent = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
        code = "import sys; from pathlib import Path; from t2v_helpers.families import find_model; find_model(sys.argv[1]).build(Path(sys.argv[2]))"
        # Its library notices would break into the batch's own lines: keep them, and show them only if it fails.
        done = subprocess.run([sys.executable, "-c", code, model.name, str(folder)], capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"Building the tiny model {model.name!r} failed:\n{done.stderr[-2000:]}")
    else:
        model.build(folder)


def _version_built_here(marker):
    try:
        return json.loads(marker.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _staging_prefix(path):
    return f".tiny-{path.name}."


def _remove_killed_builds(path):
    # Called under the lock, so a staging folder of this target's naming is from a build
    # that was killed; tempfile.mkdtemp adds 8 characters of [a-z0-9_].
    pattern = re.compile(re.escape(_staging_prefix(path)) + r"[a-z0-9_]{8}")
    for entry in path.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _swap(new, old):
    # Linux swaps two folders in one step (renameat2 RENAME_EXCHANGE), so `old` never goes
    # missing for a reader; elsewhere two renames leave it missing for a moment.
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        exchange = libc.renameat2
    except (OSError, AttributeError):
        exchange = None
    if exchange is not None:
        at_cwd, rename_exchange = -100, 2
        if exchange(at_cwd, os.fsencode(new), at_cwd, os.fsencode(old), rename_exchange) == 0:
            return
    aside = Path(tempfile.mkdtemp(prefix=_staging_prefix(old), dir=old.parent))
    aside.rmdir()
    old.rename(aside)
    new.rename(old)
    aside.rename(new)


@contextmanager
def _lock(path):
    """Hold an exclusive lock on building `path`, shared by every process on this machine."""
    lock = path.with_name(_staging_prefix(path) + "lock")
    while True:
        handle = open(lock, "a")
        _acquire(handle)
        try:
            # The holder before us deletes the lock file as it leaves: if it did, lock the new one.
            if os.name == "nt" or os.path.samestat(os.fstat(handle.fileno()), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        if os.name != "nt":  # so nothing is left beside the model; Windows cannot delete an open file
            lock.unlink(missing_ok=True)
        handle.close()  # closing releases the lock


def _acquire(handle):
    if os.name == "nt":
        import msvcrt

        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s: try again
                return
            except OSError:
                continue
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
