"""The notebooks (issue 10, items 6-7): committed without outputs, and each one runs top to
bottom on a fresh kernel without raising (nbclient).

Measured on 2 cores (shared with other jobs): 5-22 s per notebook, kernel start included,
35-80 s for the six (the budget per notebook is generous so that a slow machine fails on
errors, not on time)."""

from __future__ import annotations

import pathlib
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Seconds a notebook may take on a 2-core machine (each measured under 20 s).
BUDGET = 60


def test_there_are_six_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for i, cell in enumerate(book.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in book.metadata, f"{path.name} stores widget state"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_fresh_kernel(path, tmp_path):
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=BUDGET,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files it writes land here
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, when one raises
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET, f"{path.name} took {elapsed:.0f} s"
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    # every notebook shows results (printed text, rich displays, figures)
    shown = [out for cell in book.cells if cell.cell_type == "code" for out in cell.outputs]
    assert len(shown) >= 5
    mimes = {mime for out in shown for mime in out.get("data", {})}
    if any("viz." in cell.source for cell in book.cells):
        assert "image/png" in mimes  # the figures were drawn
    if any("explore(" in cell.source for cell in book.cells):
        assert "application/vnd.jupyter.widget-view+json" in mimes
