"""The README's Python examples run as written (in order, one namespace)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch):
    """Every block but those marked ``# slow`` (those run in the test below)."""
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert len(blocks) >= 7
    namespace: dict = {}
    for block in blocks:
        if block.startswith("# slow"):
            continue
        exec(compile(block, str(README), "exec"), namespace)
    # the blocks assert their own numbers; check that the last one really ran
    assert namespace["tv"].value.shape == (128, 128)
    assert namespace["cg"].stats["num_steps"] > 100  # the DCDM block
    assert namespace["pnp"].value.shape == (64, 64)  # the LPN block
    # the scale-out blocks, the last ones: 64 batched solves, a tumour posterior, the exact Gaussian check
    assert namespace["sols"].value.shape == (64, 32, 32) and namespace["post"].samples["D_white"].shape == (1000,)
    assert namespace["batch"].value.shape == (16, 12, 12) and namespace["uq"].samples.shape == (1000, 3)


def test_readme_starts_with_the_two_commands_ci_runs():
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert [c.split("#")[0].strip() for c in first] == [
        "pip install -e . && invsolve run poisson-inverse --quick --out runs/poisson",
        'pip install -e ".[test]" && pytest',
    ]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in ci


@pytest.mark.slow
def test_readme_slow_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    slow = [b for b in _blocks() if b.startswith("# slow")]
    assert slow
    for block in slow:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)
        if "sol2" in namespace:  # the tumour example: both routes fit the scan
            for sol in (namespace["sol"], namespace["sol2"]):
                assert sol.metrics["dice_edema"] > 0.9 and sol.metrics["dice_core"] > 0.85, sol.metrics
        if "A_family" in namespace:  # the DCDM example: converged at 64^3, and a model came out of train
            sol = namespace["sol"]
            assert sol.result == 0 and sol.history["residual"][-1] <= 1e-4
            assert namespace["model"].ndim == 3 and dict(namespace["model"].info)["steps"] == 20
        if "mbir" in namespace:  # the diffusion example: samples, a RED-diff estimate, a volume
            assert dict(namespace["prior"].info)["recipe"] == "ellipses-64"
            assert namespace["sol"].samples.shape == (8, 64, 64) and namespace["sol"].std.shape == (64, 64)
            assert namespace["red"].value.shape == (64, 64) and namespace["mbir"].value.shape == (8, 64, 64)
            continue
        if "dataset" in namespace:  # the LPN example: a trained model, and a reconstruction with its prior value
            assert dict(namespace["lpn"].info)["recipe"] == "ellipses-64"
            assert namespace["sol"].value.shape == (64, 64) and namespace["sol"].result == 0
