"""The command line: list, run, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from invsolve import cli


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "poisson-inverse" in out and "poisson-kappa" in out


def test_version_prints_the_package_version(capsys):
    import invsolve

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"invsolve {invsolve.__version__}"


def test_the_project_has_its_license_and_citation():
    """pyproject says Apache-2.0: the LICENSE file is that text; CITATION.cff names the
    library, its version and the licence."""
    import invsolve

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    with open(os.path.join(root, "CITATION.cff")) as f:
        cff = f.read()
    assert "cff-version: 1.2.0" in cff and f"version: {invsolve.__version__}" in cff and "license: Apache-2.0" in cff


def test_unknown_experiment_exits_nonzero_and_lists_known_ones():
    proc = subprocess.run([sys.executable, "-m", "invsolve.cli", "run", "no-such-thing"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown experiment 'no-such-thing'" in proc.stderr
    assert "poisson-inverse" in proc.stderr and "poisson-kappa" in proc.stderr


@pytest.mark.slow  # 25 s on a quiet 2-core machine, cold cache
def test_run_writes_metrics_solution_and_figures(tmp_path, capsys):
    out = tmp_path / "kappa"
    assert cli.main(["run", "poisson-kappa", "--quick", "--out", os.fspath(out), "--seed", "1"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    for key in ("experiment", "quick", "seed", "metrics", "paper", "wall_time_s", "stats", "versions", "device"):
        assert key in record
    assert record["experiment"] == "poisson-kappa" and record["quick"] is True and record["seed"] == 1
    assert 0 < record["metrics"]["rel_l2"] < 0.3
    assert {"num_steps", "wall_time_s", "compile_time_s"} <= set(record["stats"])
    assert record["versions"]["jax"] and record["device"]["platform"] == "cpu"
    with np.load(out / "solution.npz") as z:
        assert z["value"].shape == (32, 32) and z["field/truth"].shape == (32, 32)
        assert z["history/loss"].shape == (record["stats"]["num_steps"],)
    for png in ("fields.png", "history.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # 24 s on a quiet 2-core machine, cold cache
def test_flame_inverse_run_honours_set_and_writes_the_results_contract(tmp_path):
    out = tmp_path / "flame"
    args = ["run", "flame-inverse", "--quick", "--out", os.fspath(out), "--set", "steps=50", "--set", "noise=0.0"]
    assert cli.main(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["steps"] == 50 and record["config"]["noise"] == 0.0
    m = record["metrics"]
    for key in ("sL_rel_err", "rel_err_s_L", "rel_err_lambda", "rel_err_Ea", "mean_rel_err_Ea", "T_rel_l2"):
        assert np.isfinite(m[key]), key
    # the verdict judges the metrics written beside it
    for c in record["verdict"]["criteria"]:
        v, t = c["value"], c["threshold"]
        ok = {"<=": v <= t, "<": v < t, ">=": v >= t, ">": v > t, "|<=": abs(v) <= t}[c["op"]]
        assert v == m[c["metric"]] and c["pass"] == ok, c
    with np.load(out / "solution.npz") as z:
        assert z["history/loss"].shape == (50,)


def test_set_rejects_unknown_fields(capsys):
    assert cli.main(["run", "flame-inverse", "--quick", "--set", "nosuch=1"]) == 2
    assert "NAME one of" in capsys.readouterr().err


def test_a_sampler_setting_out_of_range_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["run", "ct-dds", "--quick", "--out", str(tmp_path), "--set", "cg_steps=0"]) == 2
    err = capsys.readouterr().err
    assert "DDS: cg_steps must be a positive integer, got 0." in err and "Traceback" not in err


@pytest.mark.slow  # 34 s on a quiet 2-core machine, cold cache
def test_tumor_runs_write_the_results_contract(tmp_path):
    out = tmp_path / "tg"
    assert cli.main(["run", "tumor-gradient", "--quick", "--out", os.fspath(out), "--set", "max_steps=300"]) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["dice_edema"] > 0.9 and m["dice_core"] > 0.9 and m["rel_err_D"] < 0.3 and m["rel_err_rho"] < 0.2, m
    out = tmp_path / "td"
    args = ["run", "tumor-database", "--quick", "--out", os.fspath(out), "--set", "n_database=2000",
            "--set", "max_steps=200", "--set", "t_end_known=False"]
    assert cli.main(args) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["n_database"] == 2000 and m["build_time_s"] > 0 and 0 < m["query_time_s"] < m["gradient_time_s"]
    for key in ("dice_edema", "dice_core", "rel_err_lambda", "rel_err_mu", "refined_rel_err_lambda"):
        assert np.isfinite(m[key]), key
    assert m["dice_edema"] > 0.7 and m["refined_dice_edema"] > 0.9, m
    assert (out / "fields.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_rejects_an_unknown_model(capsys):
    assert cli.main(["train", "dcdm-poisson5d", "--out", "x.npz"]) == 2
    assert "known: dcdm-poisson2d-64, dcdm-poisson3d-32, lpn-ellipses-64, lpn-mni-64" in capsys.readouterr().err


def test_train_writes_a_model_that_loads(tmp_path):
    from invsolve.solvers import dcdm

    out = tmp_path / "m.npz"
    args = ["train", "dcdm-poisson2d-64", "--out", os.fspath(out), "--set", "steps=3", "--set", "n_vectors=80",
            "--set", "n_lanczos=40", "--set", "n_layouts=1", "--set", "features=4"]
    assert cli.main(args) == 0
    model = dcdm.DCDMModel.load(out)
    assert model.config == (4, 1, 2) and dict(model.info)["recipe"] == "poisson2d-64"


@pytest.mark.slow  # 15 s on a quiet 2-core machine, cold cache
def test_train_an_lpn_recipe_writes_a_model_that_loads(tmp_path):
    from invsolve.priors import LPN

    out = tmp_path / "lpn.npz"
    args = ["train", "lpn-mni-64", "--out", os.fspath(out), "--set", "steps=2", "--set", "hidden=4",
            "--set", "size=16", "--set", "batch_size=2"]
    assert cli.main(args) == 0
    lpn = LPN.load(out)
    assert lpn.shape == (16, 16) and lpn.config[0] == 4 and lpn.sigma == 0.1
    assert dict(lpn.info)["recipe"] == "mni-64" and dict(lpn.info)["data"] == "mni"



@pytest.mark.slow  # 19 s on a quiet 2-core machine, cold cache
def test_train_a_score_recipe_writes_a_prior_that_loads(tmp_path):
    from invsolve.priors import ScorePrior

    out = tmp_path / "score.npz"
    args = ["train", "score-ellipses-64", "--out", os.fspath(out), "--set", "steps=2", "--set", "channels=(4, 8)",
            "--set", "size=16", "--set", "batch_size=2"]
    assert cli.main(args) == 0
    prior = ScorePrior.load(out)
    assert prior.shape == (16, 16) and prior.config[1] == (4, 8)
    assert dict(prior.info)["recipe"] == "ellipses-64" and dict(prior.info)["steps"] == 2


def test_reproduce_writes_a_report_keeps_finished_runs_and_records_failures(tmp_path, capsys, monkeypatch):
    from invsolve import experiments

    out = os.fspath(tmp_path)
    assert cli.main(["reproduce", "--quick", "--only", "poisson-kappa", "--out", out]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "| [poisson-kappa](#poisson-kappa) | PASS | 1/1 | successful | rel_l2 0.0233 |" in report
    assert "**Verdict: PASS** (solver: successful)" in report
    assert "| PASS | `rel_l2 <= 0.05` | 0.0233 | ours: " in report
    assert "quick run: " in report and "wall time" in report and "device cpu" in report
    assert "![poisson-kappa](poisson-kappa/fields.png)" in report
    assert (tmp_path / "poisson-kappa" / "fields.png").stat().st_size > 1000

    ok = experiments.get("poisson-kappa")
    broken = experiments.Experiment("broken", "always fails", lambda cfg, seed: 1 / 0, ok.quick, ok.full,
                                    criteria=ok.criteria)
    monkeypatch.setitem(experiments.REGISTRY, "broken", broken)
    capsys.readouterr()
    assert cli.main(["reproduce", "--quick", "--only", "poisson-kappa", "broken", "--out", out]) == 1
    err = capsys.readouterr().err
    assert "kept poisson-kappa" in err and "failed: broken" in err  # the finished run is not redone
    report = (tmp_path / "REPORT.md").read_text()
    assert "| [broken](#broken) | **failed** | | | ZeroDivisionError" in report
    (tmp_path / "REPORT.md").unlink()  # every experiment kept: the report is still written
    assert cli.main(["reproduce", "--quick", "--only", "poisson-kappa", "--out", out]) == 0
    assert "| [poisson-kappa](#poisson-kappa) | PASS |" in (tmp_path / "REPORT.md").read_text()
    assert cli.main(["reproduce", "--only", "nosuch"]) == 2


# --- misuse: one line on stderr, exit 2, nothing created ------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--set", "noise=0"], "poisson-inverse: ValueError: noise must be a positive relative noise level"),
    (["--set", "noise=abc"], "--set noise=abc: noise must be float, e.g. noise=0.01; got 'abc' (str)."),
    (["--set", "shape=64"], "--set shape=64: shape must be tuple[int, ...], e.g. shape=(64, 64); got 64 (int)."),
    (["--set", "n_sensors=2.5"], "n_sensors must be int | None"),
    (["--set", "order"], "--set expects NAME=VALUE"),
])
def test_a_bad_set_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert cli.main(["run", "poisson-inverse", "--quick", "--out", os.fspath(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_a_bad_out_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in [(afile, "exists and is not a folder"), (afile / "sub", "is a file, not a folder")]:
        assert cli.main(["run", "poisson-inverse", "--quick", "--out", os.fspath(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == ["afile"]


def test_show_describes_fields_runtime_extras_and_criteria(capsys):
    assert cli.main(["show", "tumor-gradient"]) == 0
    out = capsys.readouterr().out
    assert "tumor-gradient: Tumour D, rho and seed" in out
    assert "runtime on 2 CPU cores: quick 5 s" in out and 'extras: brain (pip install -e ".[brain]"' in out
    assert "axial_slice    float | None: quick 0.5, full None" in out
    assert "|rel_err_D| <= 0.03 | |rel_err_D| <= 0.2" in out
    assert cli.main(["show", "nosuch"]) == 2


def test_list_has_runtime_and_extras_columns(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["experiment", "quick", "full", "extras"]
    row = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert row["poisson-inverse"][1:4] == ["10", "s", "not"] and row["tumor-nuts"][5] == "brain"
    assert row["ct-sparse-view"][5] == "-" and row["lpn-laplacian"][3:5] == ["10", "min"]


def test_a_finished_run_is_kept_unless_forced_and_an_unfinished_one_resumes(tmp_path, capsys):
    """`_choose_out`: a finished run (metrics.json) or another run's start goes to OUT-2, ...;
    the same run's unfinished folder is resumed; --force clears ours and reuses OUT."""
    out = os.fspath(tmp_path / "r")
    me = {"experiment": "poisson-inverse", "quick": True, "seed": 0, "config": {"noise": 0.01}}
    other = {**me, "seed": 1}
    assert cli._choose_out(out, me, False) == (out, False)  # nothing there yet
    os.makedirs(out)
    (tmp_path / "r" / "run.json").write_text(json.dumps(me))
    assert cli._choose_out(out, me, False) == (out, True)  # my own unfinished run: resume
    assert cli._choose_out(out, other, False) == (out + "-2", False)  # someone else's: kept
    (tmp_path / "r" / "metrics.json").write_text("{}")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    os.makedirs(tmp_path / "r" / "checkpoints")
    assert cli._choose_out(out, me, False) == (out + "-2", False)  # finished: kept
    os.makedirs(out + "-2")
    (tmp_path / "r-2" / "metrics.json").write_text("{}")
    assert cli._choose_out(out, me, False) == (out + "-3", False)
    assert "writing to" in capsys.readouterr().err
    assert cli._choose_out(out, me, True) == (out, False)  # --force: our files go, others stay
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_summary_says_one_shot_and_ends_with_the_verdict():
    record = {"experiment": "x", "quick": True, "result": "successful", "wall_time_s": 82.0, "compile_time_s": 7.5,
              "stats": {"num_steps": 0}, "metrics": {"dice": 0.9, "cases": [1, 2]},
              "verdict": {"pass": False, "criteria": [{"pass": False, "metric": "dice", "value": 0.9,
                                                       "rule": "dice >= 0.95"}]}}
    text = cli.summary_text(record)
    assert "a one-shot method (no iterations); 82.0 s in all (compiling 7.5 s)" in text
    assert "metrics: dice=0.9\n" in text and "cases" not in text
    assert text.splitlines()[-2:] == ["  verdict: MISS (0 of 1 criteria at the quick setting)",
                                      "    MISS  dice = 0.9, needs dice >= 0.95"]


def test_the_compile_cache_is_on_by_default_and_can_be_turned_off(monkeypatch, tmp_path):
    import jax

    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("XDG_CACHE_HOME", os.fspath(tmp_path))
    try:
        monkeypatch.setenv("INVSOLVE_NO_CACHE", "1")
        cli._compile_cache(False)
        assert jax.config.jax_compilation_cache_dir == before
        monkeypatch.delenv("INVSOLVE_NO_CACHE")
        cli._compile_cache(True)  # --no-cache
        assert jax.config.jax_compilation_cache_dir == before
        cli._compile_cache(False)
        assert jax.config.jax_compilation_cache_dir == os.fspath(tmp_path / "invsolve" / "jax") == cli.cache_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.mark.slow  # about 60 s (quiet machine): an uninterrupted run, an interrupted one and its resumption
def test_ctrl_c_then_the_same_command_resumes_and_gives_the_same_metrics(tmp_path):
    import re
    import signal

    env = dict(os.environ, INVSOLVE_PROGRESS="1")
    base = [sys.executable, "-m", "invsolve.cli", "run", "poisson-inverse", "--quick", "--set", "max_steps=2000"]
    ref = subprocess.run([*base, "--out", os.fspath(tmp_path / "ref")], capture_output=True, text=True, env=env)
    assert ref.returncode == 0, ref.stderr[-2000:]
    cmd = [*base, "--out", os.fspath(tmp_path / "cut")]
    # pytest-xdist workers ignore SIGINT, and an ignored signal stays ignored in a child: give the
    # run the default disposition a terminal's Ctrl-C meets
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""  # read as it comes (only the tail is searched: a reader that lags would see a finished run)
    while not re.search(r"GradientMAP:\s+([5-9]|[1-9]\d)%", seen[-200:]):  # 5 % or more of the steps done
        chunk = os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        assert chunk, seen[-2000:]
        seen += chunk
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"the run ended before Ctrl-C reached it: {err[-500:]}"
    last = err.strip().splitlines()[-1]
    step = int(re.fullmatch(r"invsolve: interrupted at step (\d+) of GradientMAP; rerun the same command to "
                            r"resume", last).group(1))
    assert 50 <= step < 2000 and "Traceback" not in err
    assert (tmp_path / "cut" / "checkpoints" / "solve-000.npz").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming GradientMAP from step {step}" in again.stderr and "resuming poisson-inverse" in again.stdout
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ref", "cut"))
    assert a["metrics"] == b["metrics"] and b["stats"]["num_steps"] == 2000
    assert not (tmp_path / "cut" / "checkpoints").exists()  # cleared once finished


def test_reproduce_resumes_inside_an_interrupted_experiment(tmp_path, capsys, monkeypatch):
    """Ctrl-C after an experiment's first solve: the rerun resumes that experiment, and the
    finished solve comes back from its checkpoint instead of running again."""
    import jax.numpy as jnp

    import invsolve as inv
    from invsolve import experiments
    from invsolve.problems import poisson

    calls = []

    def run(cfg, seed):
        A = poisson.operator((16, 16))
        first = inv.solve(poisson.linear_system(A, jnp.ones((16, 16))), inv.solvers.CG(rtol=1e-10))
        calls.append(first.stats["num_steps"])
        if len(calls) == 1:
            raise KeyboardInterrupt
        return experiments.Outcome(first, {"u": first.value})

    ok = experiments.get("poisson-kappa")
    monkeypatch.setitem(experiments.REGISTRY, "two-step", experiments.Experiment(
        "two-step", "a solve, then Ctrl-C", run, ok.quick, ok.full, criteria=ok.criteria))
    out = os.fspath(tmp_path)
    assert cli.main(["reproduce", "--quick", "--only", "two-step", "--out", out]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted; rerun the same command to resume")
    assert os.listdir(tmp_path / "two-step" / "checkpoints") == ["solve-000.npz"]
    assert cli.main(["reproduce", "--quick", "--only", "two-step", "--out", out]) == 0
    cap = capsys.readouterr()
    n = calls[0]
    assert n > 10 and calls == [n, n]
    assert "resuming two-step" in cap.out and f"resuming CG from step {n}" in cap.err
    assert (tmp_path / "two-step" / "metrics.json").exists() and not (tmp_path / "two-step" / "checkpoints").exists()


def test_a_failing_run_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    from invsolve import experiments

    ok = experiments.get("poisson-kappa")

    def fail(cfg, seed):
        raise RuntimeError("the solver diverged")

    monkeypatch.setitem(experiments.REGISTRY, "fails", experiments.Experiment(
        "fails", "always fails", fail, ok.quick, ok.full, criteria=ok.criteria))
    assert cli.main(["run", "fails", "--quick", "--out", os.fspath(tmp_path / "f")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("invsolve: fails failed: RuntimeError: the solver diverged") and "\n" not in err
    assert not (tmp_path / "f" / "metrics.json").exists()
