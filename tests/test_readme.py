"""The Python examples of the README and of the documentation pages (``docs/**/*.md``) run as
written. Each ``## `` section of a page is self-contained (its blocks run in order in one fresh
namespace), so the sections run in parallel; a block whose first line is ``# slow`` runs alone,
in the slow tier (``pytest -m slow``). ``docs/own-problem.md`` has its own test, and
``docs/architecture.md`` shows signatures, not examples."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
# own-problem.md is tested on its own; architecture.md's Python blocks are signatures, not examples
SKIP = {"own-problem.md", "architecture.md"}
PAGES = [README] + sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name not in SKIP)


def _sections() -> dict[str, list[str]]:
    """``"page: section title"`` -> its Python blocks, in order, over every page."""
    found = {}
    for page in PAGES:
        parts = re.split(r"^## (.+)$", page.read_text(), flags=re.M)
        for title, body in zip(parts[1::2], parts[2::2]):
            blocks = re.findall(r"```python\n(.*?)```", body, flags=re.S)
            if blocks:
                found[f"{page.relative_to(ROOT)}: {title.strip()}"] = blocks
    return found


SECTIONS = _sections()
FAST = {t: [b for b in bs if not b.startswith("# slow")] for t, bs in SECTIONS.items()}
SLOW = [(t, i) for t, bs in SECTIONS.items() for i, b in enumerate(bs) if b.startswith("# slow")]


def _run(blocks, name):
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, name, "exec"), namespace)
    return namespace


# the blocks assert their own numbers; these check that the last block of a section really ran
def _check(name, ns):
    title = name.split(": ", 1)[1]
    if title == "Tomography":
        assert ns["tv"].value.shape == (128, 128)
    elif title.startswith("Learned Krylov"):
        assert ns["cg"].stats["num_steps"] > 100
    elif title.startswith("Scale out"):
        assert ns["batch"].value.shape == (16, 12, 12) and ns["uq"].samples.shape == (1000, 3)


def _check_slow(ns):
    if "match" in ns:  # the 2D tumour example (asserts its own numbers)
        assert ns["u"].shape == (3, 50, 63)
    if "sol2" in ns:  # the tumour example: both routes fit the scan
        for sol in (ns["sol"], ns["sol2"]):
            assert sol.metrics["dice_edema"] > 0.9 and sol.metrics["dice_core"] > 0.85, sol.metrics
    if "A_family" in ns:  # the DCDM example: converged at 64^3, and a model came out of train
        assert ns["sol"].result == 0 and ns["sol"].history["residual"][-1] <= 1e-4
        assert ns["model"].ndim == 3 and dict(ns["model"].info)["steps"] == 5
    if "mbir" in ns:  # the diffusion example: samples, a RED-diff estimate, a volume
        assert dict(ns["prior"].info)["recipe"] == "ellipses-64"
        assert ns["sol"].samples.shape == (4, 64, 64) and ns["sol"].std.shape == (64, 64)
        assert ns["red"].value.shape == (64, 64) and ns["mbir"].value.shape == (8, 64, 64)
    elif "dataset" in ns:  # the LPN example: a trained model, and a reconstruction with its prior value
        assert dict(ns["lpn"].info)["recipe"] == "ellipses-64"
        assert ns["sol"].value.shape == (64, 64) and ns["sol"].result == 0
    if "pnp" in ns:  # the LPN example on a held-out slice
        assert ns["pnp"].value.shape == (64, 64)
    if "sols" in ns:  # the scale-out example: 64 batched solves, a tumour posterior
        assert ns["sols"].value.shape == (64, 32, 32) and ns["post"].samples["D_white"].shape == (1000,)
    if "tik" in ns:  # the Darcy example: DAPS samples of kappa and the Tikhonov baseline
        assert ns["sol"].samples.shape == (4, 32, 32) and ns["tik"].result == 0
    if "ref" in ns:  # the flame example: the reference speed and the PINN's three unknowns
        assert abs(float(ns["ref"].s_L) - 0.292786) < 1e-5  # measured 0.2927861; converged to 1e-7
        assert set(ns["sol"].value) >= {"s_L", "lambda", "Ea"}


def test_readme_has_its_sections():
    # the examples that moved from the README to docs/ (21 blocks in 10 sections, 10 of them slow)
    # plus the README's own first example; none may be lost
    assert len(SECTIONS) >= 11 and sum(map(len, SECTIONS.values())) >= 22 and len(SLOW) >= 10
    titles = {name.split(": ", 1)[1] for name in SECTIONS}
    assert {"Tomography", "Learned Krylov directions (DCDM)", "Scale out and quantify uncertainty"} <= titles
    assert any(n.startswith("README.md: ") for n in SECTIONS)  # the landing page keeps a runnable example


@pytest.mark.parametrize("name", [t for t, bs in FAST.items() if bs])
def test_readme_section_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _check(name, _run(FAST[name], name))


@pytest.mark.slow
@pytest.mark.parametrize("name,index", SLOW, ids=[f"{t}-{i}" for t, i in SLOW])
def test_readme_slow_example_runs(name, index, tmp_path):
    """Each slow example in a fresh Python process (it inherits the test environment): the
    state of a long-lived test worker cannot leak into it, and a crash fails this test alone
    (in-process, the flame example crashed an xdist worker twice on 2026-12-06, after other
    slow tests, while it passed on its own)."""
    script = SECTIONS[name][index] + "\n\n" + inspect.getsource(_check_slow) + "\n_check_slow(globals())\n"
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{name} (exit {r.returncode}):\n{r.stderr[-4000:]}"


def test_readme_starts_with_the_two_commands_ci_runs():
    text = README.read_text()
    assert text.index('pip install -e ".[test]" && pytest') < 3000  # the landing page opens with them
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert [c.split("#")[0].strip() for c in first] == [
        "pip install -e . && invsolve run poisson-inverse --quick --out runs/poisson",
        'pip install -e ".[test]" && pytest',
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    # the README's test command (the fast tier), then the slow tier
    assert ci.index('pip install -e ".[test]" && pytest') < ci.index("pytest -m slow")
