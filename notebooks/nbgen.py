"""Shared scaffolding of the notebook generators ``make_*.py``: collect cells, then build a
notebook without outputs whose cell ids are stable (regenerating gives an identical file)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


class Cells(list):
    def md(self, text):
        self.append(new_markdown_cell(text.strip()))

    def code(self, text):
        self.append(new_code_cell(text.strip()))

    def notebook(self):
        for i, cell in enumerate(self):
            cell.id = f"cell-{i:02d}"
        return new_notebook(cells=list(self), metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        })


def write(nb, generator: str) -> None:
    """Write ``nb`` beside the generator file, named after it without the ``make_`` prefix."""
    out = Path(generator).with_name(Path(generator).stem.removeprefix("make_") + ".ipynb")
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")
