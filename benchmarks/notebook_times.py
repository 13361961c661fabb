"""How long each notebook takes at its own defaults on this CPU, as a learner without a GPU runs it.

    .venv/bin/python benchmarks/notebook_times.py          every notebooks/NN_*.ipynb, one at a time
    .venv/bin/python benchmarks/notebook_times.py 03 10    only the notebooks whose names start so
    .venv/bin/python benchmarks/notebook_times.py --write-notebooks 09 10 11   and update their sentences

Each notebook runs as `jupyter nbconvert --execute` under `nice`, in a temporary copy of
notebooks/, with no T2V_* variable but T2V_OUTPUT_DIR (a temporary folder) and with
HF_HUB_OFFLINE=1: so each Settings cell picks its own values and the tiny models stand in,
as tests/test_learner_defaults.py runs them. The tiny models are built first, untimed (a
learner builds them once). Each notebook's entry in results/cpu-notebook-times.json is
replaced by the new run; the other entries are kept, and entries of notebooks that no longer
exist are dropped. Every notebook's "What you need" quotes its seconds in the sentence that
tests/test_prose_figures.py checks; `--write-notebooks` writes it into the notebooks just timed.
The load average before and after each run is recorded: on a shared machine the times are noisy.
"""

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import t2v_helpers as t2v

from bench import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "benchmarks" / "results" / "cpu-notebook-times.json"
TIMEOUT_S = 1800


def notebooks():
    """Every lesson notebook, in order: notebooks/NN_*.ipynb."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def learner_environment(output_dir):
    """This environment without the T2V_* settings (T2V_CACHE, where the tiny models are kept, stays), offline, no GPU visible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CACHE"}
    return {**env, "HF_HUB_OFFLINE": "1", "T2V_OUTPUT_DIR": str(output_dir), "CUDA_VISIBLE_DEVICES": ""}


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children and the processes they waited for
    return usage.ru_utime + usage.ru_stime


def time_notebook(path):
    """Run one notebook as a learner does; returns its entry for the results file."""
    with tempfile.TemporaryDirectory(prefix="t2v-notebook-times-") as scratch:
        work = Path(scratch) / "notebooks"
        shutil.copytree(NOTEBOOKS, work)
        command = ["nice", sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                   f"--ExecutePreprocessor.timeout={TIMEOUT_S}", "--output-dir", str(Path(scratch) / "executed"), path.name]
        load_before = load_average()
        cpu_before = _children_cpu_seconds()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=work, env=learner_environment(Path(scratch) / "outputs"), capture_output=True, text=True)
        seconds = time.perf_counter() - start
    entry = {
        "seconds": round(seconds, 1),
        # CPU time of nbconvert and its kernel: less swayed than `seconds` by other work on a busy machine.
        "cpu_seconds": round(_children_cpu_seconds() - cpu_before, 1),
        "ok": done.returncode == 0,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if done.returncode:
        entry["error"] = done.stderr[-2000:]
    return entry


# The sentence each notebook's "What you need" says; tests/test_prose_figures.py checks it (NOTEBOOK_TIME_SENTENCE).
SENTENCE = "On a {cores}-core CPU, at these settings, this notebook runs in about {seconds} s (`benchmarks/results/cpu-notebook-times.json`)."


def write_sentence(path, entry):
    """Put the time sentence, as its own bullet line, at the end of the notebook's "## What you need" section (replacing an older one)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and "## What you need" in c.source)
    line = "- " + SENTENCE.format(cores=entry["cores"], seconds=round(entry["seconds"]))
    lines = [old for old in cell.source.split("\n") if not (old.startswith("- On a ") and "this notebook runs in about" in old)]
    start = next(i for i, text in enumerate(lines) if text.startswith("## What you need"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():  # after the section's last line, before its blank lines
        end -= 1
    cell.source = "\n".join(lines[:end] + [line] + lines[end:])
    nbformat.write(nb, path)


def save(times):
    """Write the results file whole (a new run's figures replace the old ones by design)."""
    results = {
        "what": "seconds to run each notebook at its own defaults on the CPU, as a learner without a GPU runs it "
                "(python benchmarks/notebook_times.py; load averages show how busy the machine was)",
        "notebooks": dict(sorted(times.items())),
    }
    staging = RESULTS.with_suffix(".json.tmp")
    staging.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, RESULTS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run only the notebooks whose file names start with these (e.g. 03 10)")
    parser.add_argument("--write-notebooks", action="store_true",
                        help="also write each timed notebook's sentence into its \"What you need\" (only for notebooks that ran without error)")
    args = parser.parse_args(argv)
    chosen = [p for p in notebooks() if not args.only or any(p.name.startswith(prefix) for prefix in args.only)]
    if not chosen:
        sys.exit(f"No notebook in {NOTEBOOKS} starts with {' or '.join(args.only)}.")

    for name, model in t2v.families.models().items():  # untimed: a learner builds each tiny model once
        if model.tiny:
            t2v.model_path(name)
    about = machine()
    described = {"machine": about["cpu"], "cores": about["cores"], "torch": torch.__version__}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing = {p.name for p in notebooks()}
    times = {name: entry for name, entry in results.get("notebooks", {}).items() if name in existing}
    for path in chosen:
        print(f"{path.name} ...", end=" ", flush=True)
        times[path.name] = {**time_notebook(path), **described}
        print(f"{times[path.name]['seconds']} s" + ("" if times[path.name]["ok"] else " FAILED"), flush=True)
        save(times)  # after each notebook, so a stopped run keeps what it measured
    if args.write_notebooks:
        for path in chosen:
            if times[path.name]["ok"]:
                write_sentence(path, times[path.name])
    print(f"Wrote {RESULTS.relative_to(ROOT)}" + ("" if args.write_notebooks else "; --write-notebooks updates the notebooks' sentences"))
    return 0 if all(times[p.name]["ok"] for p in chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
