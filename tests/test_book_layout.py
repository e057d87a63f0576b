"""The conventions that scripts/run_chapters.py and the book build rely on.

Cheap checks on the source notebooks, so that a missing parameters cell or a
chapter left out of the table of contents fails here rather than an hour into
`make book`.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [entry["file"] for entry in toc.get("chapters", [])]


@pytest.fixture(params=CHAPTERS, ids=lambda path: path.stem)
def chapter(request: pytest.FixtureRequest) -> Path:
    return request.param


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_kernel_is_recsys_book(chapter: Path) -> None:
    spec = read(chapter).metadata.get("kernelspec", {})
    assert spec.get("name") == "recsys-book"
    assert spec.get("display_name") == "Python (recsys-book)"


def test_one_parameters_cell(chapter: Path) -> None:
    cells = read(chapter).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_committed_without_outputs(chapter: Path) -> None:
    # Outputs in the sources would bloat diffs and could disagree with the book.
    dirty = [
        i
        for i, cell in enumerate(read(chapter).cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not dirty, f"cells with outputs: {dirty}"


def test_has_small_parameters(chapter: Path) -> None:
    path = ROOT / "params" / "small" / f"{chapter.stem}.yaml"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    assert isinstance(yaml.safe_load(path.read_text()) or {}, dict)


def test_in_table_of_contents(chapter: Path) -> None:
    assert f"book/chapters/{chapter.stem}" in toc_files()


def test_toc_chapters_have_sources() -> None:
    for entry in toc_files():
        if entry.startswith("book/chapters/"):
            stem = entry.removeprefix("book/chapters/")
            assert (ROOT / "notebooks" / f"{stem}.ipynb").is_file(), entry


def test_chapters_a_notebook_reads_are_among_its_needs(chapter: Path) -> None:
    """run_chapters.py runs chapters in parallel; a chapter that reads another's
    results must list it under ``recsys.needs`` or it may run too early.
    Reading its published parameters needs only the notebook itself, which
    exists before any chapter runs."""
    notebook = read(chapter)
    source = "\n".join(cell.source for cell in notebook.cells)
    source = re.sub(r'published_parameters\("\w+"\)', "", source)
    stems = {path.stem for path in CHAPTERS}
    mentioned = {
        stem for stem in stems if f'"{stem}"' in source and stem != chapter.stem
    }
    needs = set(notebook.metadata.get("recsys", {}).get("needs", []))
    assert mentioned <= needs, f"add {sorted(mentioned - needs)} to recsys.needs"
    assert needs <= stems
    earlier = {path.stem for path in CHAPTERS if path.stem < chapter.stem}
    assert needs <= earlier, "a chapter can only need chapters before it"
