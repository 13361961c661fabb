"""The lesson names the article it follows and quotes its code word for word (notebook 01, README)."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TITLE = "Text-2-Video Generation: Step-by-Step Guide"
AUTHOR = "Muhammad Arham"
# Every line of code in the article, in its order, as the article prints it.
ARTICLE_CODE = [
    "pip install diffusers transformers accelerate torch",
    "import torch",
    "from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler",
    "from diffusers.utils import export_to_video",
    'pipe = DiffusionPipeline.from_pretrained("damo-vilab/text-to-video-ms-1.7b", torch_dtype=torch.float16, variant="fp16")',
    "pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)",
    "pipe.enable_model_cpu_offload()",
    'prompt = "Spiderman is surfing"',
    "video_frames = pipe(prompt, num_inference_steps=25).frames",
    "video_path = export_to_video(video_frames)",
]


def markdown(path):
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def article_code_block(text):
    """The lines of the fenced code block that follows the heading "The article's code"."""
    found = re.search(r"^## The article's code\n.*?^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert found, "notebook 01 has no '## The article's code' section with a python code block"
    return [line for line in found.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("doc", ["notebooks/01_set_up.ipynb", "README.md"])
def test_names_the_article_and_its_author_where_the_lesson_starts(doc):
    path = ROOT / doc
    text = markdown(path) if path.suffix == ".ipynb" else path.read_text()
    for name in (TITLE, AUTHOR, "KDnuggets"):
        assert name in text, f"{doc} should name {name!r}"


def test_notebook_01_quotes_the_article_code_word_for_word_and_nothing_else():
    assert article_code_block(markdown(ROOT / "notebooks/01_set_up.ipynb")) == ARTICLE_CODE


NEGATED = re.compile(r"not (in|from) the article|the article (does not|doesn't|did not)", re.IGNORECASE)
ARTICLE = re.compile(r"\barticle", re.IGNORECASE)


def attributions(text):
    """(what is attributed, the words that attribute it) in a markdown text: a fenced code block
    and the paragraph before it, a table row and its header, a sentence and itself."""
    pieces = []
    for fence in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        before = text[: fence.start()].rstrip().split("\n\n")[-1]
        pieces.append((fence.group(1), before))
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for table in re.findall(r"(?:^\|.*\n?)+", prose, re.MULTILINE):
        header, *rows = table.splitlines()
        pieces += [(row, header) for row in rows]
    prose = re.sub(r"(?:^\|.*\n?)+", "", prose, flags=re.MULTILINE)
    pieces += [(sentence, sentence) for sentence in re.split(r"(?<=[.!?:])\s+|\n", prose)]
    return pieces


def test_attributions_are_found_in_code_blocks_tables_and_sentences():
    text = "The article ended with:\n\n```python\npipe.x()\n```\n\n| the article | today |\n|---|---|\n| `pipe.y()` | z |\n\nThe article calls `pipe.w()`."
    found = attributions(text)
    assert ("pipe.x()\n", "The article ended with:") in found
    assert ("| `pipe.y()` | z |", "| the article | today |") in found
    assert ("The article calls `pipe.w()`.", "The article calls `pipe.w()`.") in found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_attributes_enable_vae_slicing_to_the_article(path):
    """It comes from the model card's long-video example; the article never calls it."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            pieces = [(line, line) for line in cell.source.splitlines()]  # a line and its comment
        else:
            pieces = attributions(cell.source)
        for piece, words in pieces:
            if "enable_vae_slicing" in piece and ARTICLE.search(words) and "model card" not in piece:
                assert NEGATED.search(words), f"{path.name} {cell.id}: the article does not call enable_vae_slicing: {words!r}"
