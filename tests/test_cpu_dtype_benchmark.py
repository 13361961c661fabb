"""benchmarks/cpu_fp16_vs_fp32.py writes what notebook 02 quotes: machine, versions, load, every run, medians, spread."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("cpu_fp16_vs_fp32", ROOT / "benchmarks" / "cpu_fp16_vs_fp32.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_a_results_file_and_never_overwrites_one(tmp_path, monkeypatch):
    bench = load_benchmark()
    monkeypatch.setattr(bench, "SETTING", dict(num_inference_steps=1, num_frames=2, height=32, width=32))
    (tmp_path / "cpu-fp16-vs-fp32.json").write_text("{}")  # an earlier result stays as it is
    bench.main(["--runs", "2", "--out", str(tmp_path)])
    assert (tmp_path / "cpu-fp16-vs-fp32.json").read_text() == "{}"
    results = json.loads((tmp_path / "cpu-fp16-vs-fp32-2.json").read_text())
    assert set(results["machine"]["versions"]) >= {"torch", "diffusers"}
    assert isinstance(results["machine"]["bfloat16_instructions"], bool)
    assert {"load_before", "load_after", "method"} <= set(results)
    for name in bench.DTYPES:
        runs = results["times_s"][name]
        assert len(runs) == 2 and results["spread_s"][name] == [min(runs), max(runs)]
        assert min(runs) <= results["median_s"][name] <= max(runs)
        assert results["ratio_to_float32"][name] == results["median_s"][name] / results["median_s"]["float32"]


def test_the_committed_result_is_complete():
    results = json.loads((ROOT / "benchmarks/results/cpu-fp16-vs-fp32.json").read_text())
    assert set(results["median_s"]) == {"float32", "float16", "bfloat16"}
    assert len({len(runs) for runs in results["times_s"].values()}) == 1
