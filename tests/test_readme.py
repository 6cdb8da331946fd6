"""The README's Python examples run as written (in order, one namespace)."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # the blocks assert their own numbers; check that the last one really ran
    assert namespace["tv"].value.shape == (128, 128)


def test_readme_starts_with_the_two_commands_ci_runs():
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert [c.split("#")[0].strip() for c in first] == [
        "pip install -e . && invsolve run poisson-inverse --quick --out runs/poisson",
        'pip install -e ".[test]" && pytest',
    ]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in ci
