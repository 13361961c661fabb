"""The Colab badges, set-up cells, README table and colab_link.md come from pyproject.toml and the notebooks."""

import re
import shutil
import tomllib
from pathlib import Path

import nbformat
import pytest

from tools import links

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_generated_links_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path in links.stale_files(ROOT)]
    assert not stale, f"stale: {stale}; run `python tools/links.py` and commit the result"


def test_no_link_points_to_a_missing_notebook():
    assert links.broken_links(ROOT) == []


def test_fields_come_from_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert links.project_fields(ROOT) == (project["urls"]["Repository"], project["version"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_set_up_cell_installs_the_release_tag_and_keeps_torch(path):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and "%pip" in c.source]
    assert len(cells) == 1
    lines = cells[0].splitlines()
    guard = next(i for i, line in enumerate(lines) if line.startswith("if importlib.util.find_spec(\"t2v_helpers\") is None"))
    install = next(i for i, line in enumerate(lines) if "%pip install" in line)
    assert install > guard and lines[install].startswith("    "), "the install runs only where t2v_helpers is missing"
    assert f"[colab] @ git+https://github.com/" in lines[install] and lines[install].endswith(f'@v{version}"')
    assert "torch" not in lines[install]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_set_up_cell_name_the_same_release(path):
    """Issue 18 item 8: a badge that opened `main` while the cell installed `v0.1.0` let the two drift apart."""
    cells = nbformat.read(path, as_version=4).cells
    badges = re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([^/]+)/notebooks/([\w.-]+)", cells[0].source)
    installs = re.findall(r'git\+https://github\.com/([\w.-]+/[\w.-]+)@([^"\s]+)"', next(c.source for c in cells if "%pip" in c.source))
    assert len(badges) == 1 and len(installs) == 1
    (badge_repo, badge_ref, name), (install_repo, install_ref) = badges[0], installs[0]
    assert name == path.name
    assert (badge_repo, badge_ref) == (install_repo, install_ref)
    assert badge_ref == links.release_ref(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def copy_project(tmp_path):
    """The files the tool reads and writes, in a scratch folder."""
    for name in ("pyproject.toml", "README.md", "colab_link.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("outputs", ".ipynb_checkpoints"))
    return tmp_path


def test_a_new_notebook_is_linked_everywhere_and_others_are_kept_exactly(tmp_path):
    root = copy_project(tmp_path)
    first = sorted((root / "notebooks").glob("*.ipynb"))[0]
    nb = nbformat.read(first, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("# ", "# Measure memory and speed\n\nOld title: ", 1)
    # An output and execution count the tool must not touch.
    code = next(c for c in nb.cells if c.cell_type == "code" and "%pip" not in c.source)
    code.execution_count = 1
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    new = root / "notebooks" / "99_measure_memory_and_speed.ipynb"
    nbformat.write(nb, new)
    before = nbformat.read(new, as_version=4)

    assert links.main(["--check", "--root", str(root)]) == 1
    assert links.main(["--root", str(root)]) == 0
    assert links.main(["--check", "--root", str(root)]) == 0

    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    url = f"https://colab.research.google.com/github/t2v-tutorial/text-to-video-tutorial/blob/v{version}/notebooks/99_measure_memory_and_speed.ipynb"
    assert f"| 99 | [Measure memory and speed](notebooks/99_measure_memory_and_speed.ipynb) | [![Open In Colab]" in (root / "README.md").read_text()
    assert f"| 99 Measure memory and speed | {url} |" in (root / "colab_link.md").read_text()
    after = nbformat.read(new, as_version=4)
    assert after.cells[0].source.splitlines()[2] == f"[![Open In Colab]({links.BADGE_IMAGE})]({url})"
    for old, kept in zip(before.cells[1:], after.cells[1:]):
        if "%pip" not in old.get("source", ""):
            assert old == kept


def test_a_removed_notebook_leaves_no_link_behind(tmp_path):
    root = copy_project(tmp_path)
    gone = sorted((root / "notebooks").glob("*.ipynb"))[-1]
    gone.unlink()
    assert links.broken_links(root), "README and colab_link.md still link to the removed notebook"
    assert links.main(["--check", "--root", str(root)]) == 1
    links.main(["--root", str(root)])
    assert links.broken_links(root) == []
    assert gone.name not in (root / "README.md").read_text() + (root / "colab_link.md").read_text()


def test_a_hand_written_link_to_a_missing_notebook_fails_the_check(tmp_path, capsys):
    root = copy_project(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nSee [the old lesson](notebooks/09_gone.ipynb).\n")
    assert links.main(["--check", "--root", str(root)]) == 1
    assert "README.md links to notebooks/09_gone.ipynb" in capsys.readouterr().out


def test_a_new_repository_url_or_version_reaches_every_file(tmp_path):
    root = copy_project(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text().replace("t2v-tutorial/text-to-video-tutorial", "someone/fork")
    pyproject.write_text(re.sub(r'^version = "[^"]+"', 'version = "9.8.7"', text, count=1, flags=re.MULTILINE))
    links.main(["--root", str(root)])
    for path in [root / "README.md", root / "colab_link.md", *sorted((root / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        if path.name == "README.md":  # only its table is generated; the prose around it is hand-written
            text = text[text.index(links.README_START) : text.index(links.README_END)]
        assert "t2v-tutorial/text-to-video-tutorial" not in text, path.name
        assert "github/someone/fork/blob/v9.8.7/notebooks/" in text, path.name
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        assert "git+https://github.com/someone/fork@v9.8.7" in path.read_text()


def test_a_repository_that_colab_cannot_open_is_refused(tmp_path):
    root = copy_project(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("https://github.com/t2v-tutorial/text-to-video-tutorial", "https://gitlab.com/a/b"))
    with pytest.raises(ValueError, match="Repository.*not a GitHub repository URL"):
        links.project_fields(root)
