"""The benchmark command (benchmarks/bench.py): a smoke run on the tiny pipeline (no timing assertions) and the committed results (t2v_helpers.measured)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench  # benchmarks/bench.py: pyproject.toml puts benchmarks/ on pytest's sys.path
import t2v_helpers as t2v
from t2v_helpers import measured

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(model="tiny", device="cpu", dtype="float32", offload="none", frames=4, size=32, steps=2)


def test_command_writes_json_and_markdown(tmp_path):
    # PYTHONPATH: the command measures this checkout's package, as `PYTHONPATH=. python benchmarks/bench.py` does.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "cpu-tiny.json").read_text())
    (run,) = results["runs"]
    assert "error" not in run, run
    for key in ("step_s", "decode_s", "end_to_end_s", "estimated_25_steps_s", "load_before", "load_after"):
        assert run[key] >= 0, key
    assert run["peak_rss_denoise"] > 0 and run["rss_after_load"] > 0
    table = (tmp_path / "cpu-tiny.md").read_text()
    assert results["machine"]["cpu"] in table and "no GPU" in table
    assert "| tiny | float32 | none | on | 4 | 32 | 2 |" in table


def test_each_setting_gets_its_own_process_and_a_result_never_overwrites_another(tmp_path):
    configs = [dict(SMALL, vae_slicing=True), dict(SMALL, vae_slicing=False)]
    first, (json_path, md_path) = bench.run("tiny", tmp_path, configs=configs, with_overhead=False)
    before = json_path.read_text()
    _, (again, _) = bench.run("tiny", tmp_path, configs=configs[:1], with_overhead=False)
    assert again.name == "cpu-tiny-2.json" and json_path.read_text() == before
    assert [r["vae_slicing"] for r in first["runs"]] == [True, False]
    assert all("error" not in r for r in first["runs"])
    assert md_path.exists()


def test_overhead_is_a_ratio_from_interleaved_runs():
    result = bench.overhead(rounds=2, frames=4, size=32, steps=1)
    assert len(result["raw_s"]) == len(result["helper_s"]) == 2
    assert result["ratio_median"] > 0


def test_a_failing_setting_is_reported_not_raised(tmp_path):
    results, _ = bench.run("tiny", tmp_path, configs=[dict(SMALL, vae_slicing=True, dtype="no_such_dtype")], with_overhead=False)
    assert "no_such_dtype" in results["runs"][0]["error"]


def test_unknown_set_is_refused():
    with pytest.raises(ValueError, match="which='huge'.*'tiny' or 'full'"):
        bench.run("huge")


def test_committed_full_size_cpu_results_are_complete():
    results = t2v.measured.load_results("cpu-full")
    runs = results["runs"]
    assert runs and all("error" not in r for r in runs), [r.get("error") for r in runs]
    assert {(r["dtype"], r["vae_slicing"]) for r in runs} >= {("float32", True), ("float32", False)}
    assert all(r["model"] == "full" and r["load_before"] is not None for r in runs)
    assert any("GPU" in note for note in results["notes"])  # says there was no GPU
    assert results["overhead"]["ratio_median"] > 0
    assert results["total_s"] < 15 * 60, "the full-size CPU set must finish within 15 minutes"
    assert measured.markdown(results) == (measured.RESULTS_DIR / "cpu-full.md").read_text()


@pytest.mark.parametrize("name", ["cpu-full", "cpu-tiny"])
def test_the_table_has_no_heading_of_its_own(name):
    """Notebook 07 shows it inside a step: a heading there would outrank the notebook's own."""
    results = json.loads((measured.RESULTS_DIR / f"{name}.json").read_text())
    table = measured.markdown(results)
    assert not [line for line in table.splitlines() if line.lstrip().startswith("#")], table[:200]
    assert table.startswith(f"**{results['title']}**\n")
    assert table == (measured.RESULTS_DIR / f"{name}.md").read_text()


@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_script_imports_what_exists(script):
    """The scripts that made the committed results must still run against today's package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_fast_set_counts_unet_evaluations_and_times_the_first_call(tmp_path):
    configs = [dict(c, frames=2, size=32) for c in bench._fast_configs("cpu", "tiny") if not c["compile"]]
    assert [(c["scheduler"], c["guidance"], c["video_steps"]) for c in configs] == [("dpm", 9.0, 25), ("lcm", 1.0, 4)]
    results, (_, md_path) = bench.run("fast-tiny", tmp_path, configs=configs, with_overhead=False)
    dpm, lcm = results["runs"]
    assert "error" not in dpm and "error" not in lcm, (dpm, lcm)
    assert (dpm["unet_batch"], dpm["unet_evaluations_per_video"]) == (2, 50)
    assert (lcm["unet_batch"], lcm["unet_evaluations_per_video"]) == (1, 4)
    assert lcm["first_call_s"] > 0 and lcm["estimated_video_s"] > 0
    assert results["attention"]["median_s"], results["attention"]
    table = md_path.read_text()
    assert "| tiny | float32 | 2 | 32 | lcm | 1 | off | 4 | 4 | 4 x 1 | 4 |" in table and "SDPA" in table


def test_every_set_has_a_cuda_configuration_ready_for_a_gpu():
    for which, configs in bench.SETS.items():
        assert all(c["device"] == "cuda" for c in configs("cuda")), which
    assert {c["compile"] for c in bench._fast_configs("cuda", "full")} == {False, True}


def test_an_unknown_results_name_lists_the_committed_ones():
    with pytest.raises(ValueError, match="name='cpu-nothing' is not a results file.*cpu-full"):
        measured.load_results("cpu-nothing")


def test_the_benchmark_writes_where_the_package_reads_in_a_checkout():
    """benchmarks/results/ is both where new results go and what the wheel ships as t2v_helpers/results/."""
    assert bench.OUT_DIR == ROOT / "benchmarks" / "results"
    assert measured.RESULTS_DIR in (bench.OUT_DIR, Path(measured.__file__).parent / "results")
