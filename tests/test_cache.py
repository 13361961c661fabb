"""The tiny models' cache (T2V_CACHE): a read-only cache that holds a model still loads it; an unusable one says so."""

import os
import shutil
import subprocess
import sys

import pytest

import t2v_helpers as t2v
from t2v_helpers import tiny
from t2v_helpers.errors import SettingError
from t2v_helpers.families import find_model


@pytest.mark.parametrize("kind", ["a file", "under /proc"])
def test_an_unusable_cache_is_a_setting_error_naming_t2v_cache(tmp_path, monkeypatch, kind):
    if kind == "a file":
        cache = tmp_path / "cache"
        cache.write_text("")
    else:
        if not os.path.isdir("/proc/self"):
            pytest.skip("no /proc on this system")
        cache = "/proc/t2v-cache"
    monkeypatch.setenv("T2V_CACHE", str(cache))
    with pytest.raises(SettingError, match="T2V_CACHE=.* cannot be used") as error:
        tiny.build_tiny(find_model("tiny"))
    assert "unset T2V_CACHE" in str(error.value)


def test_the_command_line_says_so_with_exit_2(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("")
    run = subprocess.run([sys.executable, "-m", "t2v_helpers", "a fox", "--model", "tiny", "--steps", "1", "--frames", "1", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "T2V_CACHE": str(cache), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2 and "T2V_CACHE" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_complete_model_in_a_read_only_cache_loads_without_a_lock_file(tmp_path, monkeypatch):
    model = find_model("tiny")
    name = f"{model.name}-text-to-video-v{model.version}"
    cache = tmp_path / "cache"
    shutil.copytree(tiny.build_tiny(model), cache / name)
    monkeypatch.setenv("T2V_CACHE", str(cache))

    def read_only(path):  # what a read-only cache (a shared, mounted one) does to the lock file
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(tiny, "_lock", read_only)
    assert tiny.build_tiny(model) == cache / name
    pipe = t2v.load_pipeline("tiny", verbose=False)
    assert pipe.t2v_model_id == "tiny"


def test_a_read_only_cache_that_lacks_the_model_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()

    def read_only(path):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(tiny, "_lock", read_only)
    with pytest.raises(SettingError, match="Read-only file system"):
        tiny.build_tiny(find_model("tiny"))


def test_a_tilde_in_t2v_cache_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("T2V_CACHE", "~/cache")
    assert tiny.cache_dir() == tmp_path / "cache"
