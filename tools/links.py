"""Regenerate every link to the notebooks from pyproject.toml and the notebooks' own titles. README: Layout.

    python tools/links.py            rewrite what is stale
    python tools/links.py --check    only say what is stale (exit 1), as tests/test_links.py does

The repository URL (`[project.urls] Repository`) and the version are written once, in
pyproject.toml. Every link names the release tag `vX.Y.Z` (`release_ref`): a badge opens the
notebook as it is at that tag, and its set-up cell installs the package from the same tag,
so the two never drift apart. From them and each notebook's H1 this writes: the Colab badge
under each H1, each notebook's set-up cell, the README's table between its
`notebooks:start`/`notebooks:end` markers, and colab_link.md. Run it after adding or renaming
a notebook or changing either field; RELEASING.md says when.
"""

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
README_START, README_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
COLAB_INTRO = (
    "# Open the notebooks in Colab\n\n"
    "Choose *Runtime → Change runtime type → T4 GPU* first: the real model needs a GPU. "
    "Each notebook's first code cell installs what Colab lacks.\n"
)


def project_fields(root=ROOT):
    """(repository URL, version) from pyproject.toml. README: Layout."""
    # A regex rather than tomllib (Python 3.11+), so the tool runs wherever the package does.
    text = (Path(root) / "pyproject.toml").read_text()
    repository = re.search(r'^\[project\.urls\][^\[]*?^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE | re.DOTALL)
    version = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.MULTILINE | re.DOTALL)
    if not repository or not version:
        raise ValueError(f"{root}/pyproject.toml needs [project] version and [project.urls] Repository = \"https://github.com/OWNER/NAME\"")
    url = repository[1].rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[project.urls] Repository = {url!r} is not a GitHub repository URL; Colab opens notebooks only from https://github.com/OWNER/NAME")
    return url, version[1]


def release_ref(version):
    """The git tag of a release, which both the badges and the set-up cells name. README: Layout."""
    return f"v{version}"


def colab_url(repository, notebook, version):
    """The Colab address that opens `notebooks/<notebook>` as it is at the release tag. README: Layout."""
    owner_name = repository.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{release_ref(version)}/notebooks/{notebook}"


def badge(repository, notebook, version):
    """The markdown Colab badge for one notebook. README: Layout."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repository, notebook, version)})"


def setup_cell(repository, version):
    """The source of every notebook's set-up cell: the package at the badge's release tag, only what Colab lacks. README: Layout."""
    return (
        "import importlib.util\n"
        "\n"
        "if importlib.util.find_spec(\"t2v_helpers\") is None:  # only on a fresh machine such as Colab\n"
        f"    # The helpers at release {release_ref(version)}, the tag this notebook was opened from, and the libraries\n"
        "    # Colab lacks or has too old; Colab's own torch, numpy, IPython and ipywidgets stay, so no restart is needed.\n"
        f"    %pip install -q \"t2v-helpers[colab] @ git+{repository}@{release_ref(version)}\""
    )


@dataclass
class Notebook:
    """One lesson notebook: its file, its two-digit number and its H1 title. README: Layout."""

    path: Path
    number: str
    title: str


def notebooks(root=ROOT):
    """Every notebooks/NN_*.ipynb with its number and H1 title, in lesson order. README: Layout."""
    found = []
    for path in sorted((Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        if not first.startswith("# "):
            raise ValueError(f"{path.name}: its first markdown cell must start with the H1 title ('# ...')")
        found.append(Notebook(path, path.name[:2], first.splitlines()[0][2:].strip()))
    return found


def readme_table(repository, version, books):
    """The README's notebook table (between the markers). README: Layout."""
    rows = ["| # | notebook | Colab |", "|---|---|---|"]
    for book in books:
        name = book.path.name
        rows.append(f"| {int(book.number)} | [{book.title}](notebooks/{name}) | {badge(repository, name, version)} |")
    return "\n".join(rows) + "\n"


def colab_links(repository, version, books):
    """The whole text of colab_link.md. README: Layout."""
    rows = ["| notebook | open in Colab |", "|---|---|"]
    rows += [f"| {book.number} {book.title} | {colab_url(repository, book.path.name, version)} |" for book in books]
    return COLAB_INTRO + "\n" + "\n".join(rows) + "\n"


def _updated_notebook(book, repository, version):
    """The notebook's new JSON text, changing only the badge line under the H1 and the set-up cell."""
    nb = nbformat.read(book.path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    lines = first.source.split("\n")
    at = next((i for i, line in enumerate(lines[1:], 1) if line.strip()), None)
    wanted = badge(repository, book.path.name, version)
    if at is not None and "colab-badge.svg" in lines[at]:
        lines[at] = wanted
    else:  # no badge yet: put it right under the H1
        lines[1:1] = ["", wanted]
    first.source = "\n".join(lines)
    setups = [c for c in nb.cells if c.cell_type == "code" and "%pip install" in c.source and "find_spec" in c.source]
    if len(setups) != 1:
        raise ValueError(f"{book.path.name}: expected one set-up cell (a code cell with find_spec and %pip install), found {len(setups)}")
    setups[0].source = setup_cell(repository, version)
    return nbformat.writes(nb) + "\n"


def _updated_readme(text, table):
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs the markers {README_START} and {README_END}, in that order, around the notebook table")
    return text[: start + len(README_START)] + "\n" + table + "\n" + text[end:]


def stale_files(root=ROOT):
    """{path: the text it should have} for every generated file whose text differs. README: Layout."""
    root = Path(root)
    repository, version = project_fields(root)
    books = notebooks(root)
    wanted = {book.path: _updated_notebook(book, repository, version) for book in books}
    readme = root / "README.md"
    wanted[readme] = _updated_readme(readme.read_text(), readme_table(repository, version, books))
    wanted[root / "colab_link.md"] = colab_links(repository, version, books)
    return {path: text for path, text in wanted.items() if not path.exists() or path.read_text() != text}


def broken_links(root=ROOT):
    """[(file, 'notebooks/NN_x.ipynb'), ...]: links in README.md, colab_link.md or a notebook to a notebook that does not exist. README: Layout."""
    root = Path(root)
    texts = {name: (root / name).read_text() for name in ("README.md", "colab_link.md") if (root / name).exists()}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        texts[f"notebooks/{path.name}"] = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    broken = []
    for name, text in texts.items():
        for target in sorted(set(re.findall(r"notebooks/[\w.-]+\.ipynb", text))):
            if not (root / target).is_file():
                broken.append((name, target))
    return broken


def main(argv=None):
    """Rewrite the stale generated files, or with --check only list them (exit status 1). README: Layout."""
    parser = argparse.ArgumentParser(prog="python tools/links.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    parser.add_argument("--root", default=ROOT, type=Path, help="the repository folder (default: this checkout)")
    args = parser.parse_args(argv)
    stale = stale_files(args.root)
    broken = broken_links(args.root) if args.check else []
    for name, target in broken:
        print(f"broken: {name} links to {target}, which does not exist")
    for path, text in stale.items():
        if args.check:
            print(f"stale: {path.relative_to(args.root)}")
        else:
            path.write_text(text)
            print(f"updated {path.relative_to(args.root)}")
    if stale and args.check:
        print("Run `python tools/links.py` to regenerate the stale files.")
    return 1 if args.check and (stale or broken) else 0


if __name__ == "__main__":
    sys.exit(main())
