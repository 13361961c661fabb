"""Every measured number in the prose comes from a committed results file that the text names.

Each Figure says where a number is written (a notebook's markdown or the README), the
words around it with `{}` where the number stands, and which value of which results file
it is. The test formats the value and looks for the sentence, so a re-measured results
file whose numbers no longer match the prose fails here until the prose is updated.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    doc: str  # the file whose prose holds the number, relative to the repository
    text: str  # the words around the number, with {} where it stands
    source: str  # the committed results file, relative to the repository
    key: str  # where in it: dotted keys and [i] indexes, e.g. "runs[0].step_s"
    fmt: str = ".3g"  # how the prose writes it (a format spec)
    scale: float = 1.0  # multiply before formatting (bytes to GiB: 2**-30)


# One section per document, so that each lesson's figures sit together.
FIGURES = [
    # README.md
    Figure("README.md", "took {} times as long as a raw", "benchmarks/results/cpu-tiny.json", "overhead.ratio_median", ".3f"),
    # notebooks/01_set_up.ipynb
    # notebooks/02_build_the_pipeline.ipynb
    # notebooks/03_swap_schedulers.ipynb
    # notebooks/04_generate_and_display.ipynb
    # notebooks/05_play_in_the_studio.ipynb
    # notebooks/06_watch_the_video_emerge.ipynb
    # notebooks/07_memory_and_speed.ipynb
    # notebooks/08_make_it_fast.ipynb
    Figure("notebooks/08_make_it_fast.ipynb", '{} CPU cores that other jobs shared', "benchmarks/results/cpu-fast-full.json", "machine.cores", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", '{} frames', "benchmarks/results/cpu-fast-full.json", "runs[0].frames", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", "The article's setting needs {} UNet evaluations per video", "benchmarks/results/cpu-fast-full.json", "runs[0].unet_evaluations_per_video", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and an estimated {} s', "benchmarks/results/cpu-fast-full.json", "runs[0].estimated_video_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", '; the few-step setting needs {} evaluations', "benchmarks/results/cpu-fast-full.json", "runs[1].unet_evaluations_per_video", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and {} s.', "benchmarks/results/cpu-fast-full.json", "runs[1].estimated_video_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' One DPM step with guidance took {} s', "benchmarks/results/cpu-fast-full.json", "runs[0].step_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", ' and one LCM step without guidance {} s', "benchmarks/results/cpu-fast-full.json", "runs[1].step_s", ".0f"),
    Figure("notebooks/08_make_it_fast.ipynb", " {} s with SDPA, torch's choice", "benchmarks/results/cpu-fast-full.json", "attention.median_s.SDPA, torch's choice", ".3g"),
    Figure("notebooks/08_make_it_fast.ipynb", ' {} s with SDPA, math kernel', "benchmarks/results/cpu-fast-full.json", "attention.median_s.SDPA, math kernel", ".3g"),
    Figure("notebooks/08_make_it_fast.ipynb", ' {} s with AttnProcessor (no SDPA)', "benchmarks/results/cpu-fast-full.json", "attention.median_s.AttnProcessor (no SDPA)", ".3g"),
]


def prose(doc):
    """The text a reader reads: a notebook's markdown cells, or a Markdown file, with whitespace collapsed."""
    path = ROOT / doc
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    return " ".join(text.split())


def value_at(data, key):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    return data


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{Path(f.doc).stem}:{f.text[:40]}")
def test_prose_quotes_its_results_file(figure):
    value = value_at(json.loads((ROOT / figure.source).read_text()), figure.key)
    sentence = figure.text.format(format(value * figure.scale, figure.fmt))
    text = prose(figure.doc)
    assert sentence in text, f"{figure.doc} should say {sentence!r} (from {figure.source} {figure.key})"
    assert Path(figure.source).stem in text, f"{figure.doc} quotes {figure.source} without naming it"
