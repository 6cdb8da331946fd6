"""Every teaching notebook runs top to bottom on its quick settings, and matches its generator."""

import runpy
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# Running a notebook takes 0.5-2 minutes on two cores: every notebook runs in the slow tier
# (`pytest -m slow`, which CI runs after the fast tier); the fast tier checks the generators.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_generator(path):
    """Notebooks are generated from ``make_*.py`` (reviewable diffs); the committed file is current."""
    gen = path.with_name(f"make_{path.stem}.py")
    sys.path.insert(0, str(gen.parent))  # the generators share notebooks/nbgen.py
    try:
        nb = runpy.run_path(str(gen), run_name="not_main")["nb"]
    finally:
        sys.path.remove(str(gen.parent))
    assert nbformat.writes(nb).strip() == path.read_text().strip()
