"""Every teaching notebook runs top to bottom on its quick settings, and matches its generator."""

import runpy
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# the longest (1-2 minutes each on two cores) run with `pytest -m slow`, to keep CI within
# its budget; their generators are still checked below, and 00_tour covers the solve() loop
SLOW = {"01_poisson", "03_flame_pinn", "05_dcdm", "06_lpn", "07_diffusion"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p
                                  for p in NOTEBOOKS], ids=lambda p: p.stem)
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
