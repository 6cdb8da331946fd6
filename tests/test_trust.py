"""No silent wrong answers (issue 18, section 1-2): another run's checkpoint, an overflowing
norm, a diverging optimizer, a sampler that misses the data, a cut-short schedule, a bad key or
state. Each case failed silently (``successful``) or deep inside JAX before."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve import _train
from invsolve.io import CheckpointError
from invsolve.priors import GaussianMixture
from invsolve.problems import poisson


@pytest.fixture(scope="module")
def A():
    return poisson.operator((8, 8))


# --- checkpoint identity ---------------------------------------------------------------------
def test_a_checkpoint_of_another_run_is_refused_and_the_same_run_resumes(A, tmp_path):
    ck = str(tmp_path / "cg.npz")
    b = jnp.ones((8, 8))
    first = inv.solve(inv.LinearSystem(A, b), inv.solvers.CG(), driver=inv.HostLoop(checkpoint=ck))
    # the same shapes, other data: before, the b = +1 answer came back as successful
    with pytest.raises(CheckpointError, match="another run"):
        inv.solve(inv.LinearSystem(A, -b), inv.solvers.CG(), driver=inv.HostLoop(checkpoint=ck))
    with pytest.raises(CheckpointError, match="another run"):  # other solver settings
        inv.solve(inv.LinearSystem(A, b), inv.solvers.CG(rtol=1e-3), driver=inv.HostLoop(checkpoint=ck))
    again = inv.solve(inv.LinearSystem(A, b), inv.solvers.CG(), driver=inv.HostLoop(checkpoint=ck))
    assert again.result == inv.RESULTS.successful
    np.testing.assert_array_equal(np.asarray(again.value), np.asarray(first.value))


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04truncated"])
def test_an_unreadable_checkpoint_or_bank_names_the_file(A, tmp_path, content):
    ck = tmp_path / "bad.npz"
    ck.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{ck}.*cannot be read.*start over"):
        inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(), driver=inv.HostLoop(checkpoint=str(ck)))
    with pytest.raises(CheckpointError, match=f"bank {ck} cannot be read"):
        inv.solvers.DatabaseQuery.load(str(ck))


def test_a_training_checkpoint_of_other_data_is_refused(tmp_path):
    ck = str(tmp_path / "train.npz")

    def make(data):
        def update(carry, k):
            w, step = carry
            return (w - 0.1 * (w - data[k % data.shape[0]]), step + 1), jnp.sum((w - data[0]) ** 2)
        return update

    carry = (jnp.zeros(3), jnp.zeros((), jnp.int32))
    data = jnp.arange(12.0).reshape(4, 3)
    (w1, _), losses, _ = _train.fit(make(data), carry, 5, name="t", checkpoint=ck, identity=data)
    (w2, _), losses2, _ = _train.fit(make(data), carry, 5, name="t", checkpoint=ck, identity=data)  # finished: resumes
    np.testing.assert_array_equal(np.asarray(w1), np.asarray(w2))
    assert losses2.shape == (5,)
    with pytest.raises(CheckpointError, match="another run"):
        _train.fit(make(-data), carry, 5, name="t", checkpoint=ck, identity=-data)


# --- overflow and NaN are not convergence or breakdown -------------------------------------------
def test_an_overflowing_norm_is_nonfinite_not_successful(A):
    b = jnp.full((8, 8), 1e20, jnp.float32)  # ||b||^2 overflows float32; before: x = 0, successful
    for solver in (inv.solvers.CG(), inv.solvers.PCG(inv.solvers.Jacobi())):
        sol = inv.solve(inv.LinearSystem(A, b), solver, throw=False)
        assert sol.result == inv.RESULTS.nonfinite
    with pytest.raises(inv.SolveError, match="NaN or infinity"):
        inv.solve(inv.LinearSystem(A, b), inv.solvers.CG())


def test_nan_data_is_nonfinite_not_breakdown(A):
    b = jnp.ones((8, 8)).at[2, 3].set(jnp.nan)
    with pytest.raises(ValueError, match="right-hand side contains NaN"):  # concrete: refused at the boundary
        inv.LinearSystem(A, b)
    state = inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(max_steps=0), throw=False).state
    nan_state = type(state)(**{**{f: getattr(state, f) for f in state.__dataclass_fields__},
                               "r": state.r.at[2, 3].set(jnp.nan), "rnorm": jnp.asarray(jnp.nan)})
    done, result = inv.solvers.CG().terminate(None, nan_state)  # before: reported as breakdown
    assert bool(done) and int(result) == inv.RESULTS.nonfinite


def test_linear_solve_propagates_a_failed_inner_solve(A):
    b = jnp.ones((8, 8))
    x = inv.linalg.linear_solve(A, b, inv.solvers.CG(max_steps=2, rtol=1e-12))  # cannot converge in 2 steps
    assert bool(jnp.all(jnp.isnan(x)))
    x = inv.linalg.linear_solve(A, b, inv.solvers.CG(rtol=1e-12))
    np.testing.assert_allclose(np.asarray(A.mv(x)), np.asarray(b), atol=1e-9)


# --- divergence and data misfit ---------------------------------------------------------------
@pytest.fixture(scope="module")
def source_problem():
    return poisson.source_identification(shape=(16, 16), n_sensors=50, noise=0.01, key=jax.random.key(0))


def test_a_diverging_optimizer_reports_diverged(source_problem):
    # before: the loss went 2e5 -> 4e21 -> 1e87, and the run said successful with rel_l2 = inf
    sol = inv.solve(source_problem, inv.solvers.GradientMAP(optax.sgd(1e4), max_steps=50), throw=False)
    assert sol.result == inv.RESULTS.diverged
    assert sol.stats["num_steps"] <= 3
    with pytest.raises(inv.SolveError, match="diverged"):
        inv.solve(source_problem, inv.solvers.GradientMAP(optax.sgd(1e4), max_steps=50))
    ok = inv.solve(source_problem, inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=100))  # a sane rate
    assert ok.result == inv.RESULTS.successful


@pytest.fixture(scope="module")
def mixture_problem():
    gm = GaussianMixture.random(jax.random.key(0), 8, 3, spread=2.0, scale=0.5)
    Amat = jax.random.normal(jax.random.key(4), (4, 8)) / np.sqrt(8)
    x_true = gm.draw(jax.random.key(6), 1)[0]
    y = Amat @ x_true + 0.1 * jax.random.normal(jax.random.key(7), (4,))
    return gm, inv.LinearInverse(inv.MatrixOperator.from_array(Amat), y, inv.GaussianNoise(0.1), x_true)


def test_a_sampler_that_misses_the_data_reports_data_misfit(mixture_problem):
    gm, prob = mixture_problem
    key = jax.random.key(1)
    good = inv.solve(prob, inv.solvers.DPS(gm, n_steps=50, zeta=1.0, n_samples=16), key=key)
    assert good.result == inv.RESULTS.successful  # measured chi-square 20
    # an absurd guidance weight leaves finite particles far from the data (measured chi-square
    # 1.8e7); before: successful
    bad = inv.solve(prob, inv.solvers.DPS(gm, n_steps=50, zeta=1e3, n_samples=16), key=key, throw=False)
    assert bad.result == inv.RESULTS.data_misfit


def test_a_fixed_schedule_cut_short_reports_max_steps_reached(mixture_problem):
    gm, prob = mixture_problem
    sol = inv.solve(prob, inv.solvers.DPS(gm, n_steps=20, zeta=0.05, n_samples=4), key=jax.random.key(1),
                    max_steps=5, throw=False)
    assert sol.result == inv.RESULTS.max_steps_reached and sol.stats["num_steps"] == 5


# --- errors at the boundary ---------------------------------------------------------------------
@pytest.mark.parametrize("key", [3, "a", np.ones(3, np.float32)])
def test_a_key_that_is_not_a_jax_key_is_refused(A, key):
    with pytest.raises(TypeError, match="key must be one JAX random key"):
        inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(), key=key)


def test_a_state_from_another_problem_is_refused(A, source_problem):
    state = inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG()).state
    small = poisson.operator((4, 4))
    with pytest.raises(ValueError, match=r"state= does not fit CG.*\(8, 8\) where \(4, 4\)"):
        inv.solve(inv.LinearSystem(small, jnp.ones((4, 4))), inv.solvers.CG(), state=state)
    with pytest.raises(ValueError, match="state= does not fit GradientMAP"):
        inv.solve(source_problem, inv.solvers.GradientMAP(optax.adam(1e-2)), state=state)
    again = inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(), state=state)
    assert again.result == inv.RESULTS.successful and again.stats["num_steps"] == 0


def test_problems_import_no_method():
    root = os.path.join(os.path.dirname(inv.__file__), "problems")
    for name in os.listdir(root):
        if name.endswith(".py"):
            text = open(os.path.join(root, name)).read()
            assert "solvers" not in "".join(line for line in text.splitlines() if "import" in line), name


# --- found by tests/scripts/reliability_probe.py ---------------------------------------------
def test_an_ascending_optimizer_reports_diverged(source_problem):
    # a negative learning rate climbs steadily (the loss x 78 in 30 steps), never the x 1e4 jump
    # the per-step watch looks for; before: successful, the estimate far from the truth
    sol = inv.solve(source_problem, inv.solvers.GradientMAP(optax.adam(-0.1), max_steps=30), throw=False)
    assert sol.result == inv.RESULTS.diverged
    assert sol.history["loss"][-1] > 10 * sol.history["loss"][0]
    ok = inv.solve(source_problem, inv.solvers.GradientMAP(optax.adam(1.0), max_steps=30))  # overshoots x 2.3, recovers
    assert ok.result == inv.RESULTS.successful


def test_a_tolerance_that_zero_meets_is_refused(A):
    for make in (lambda: inv.solvers.CG(rtol=1e10), lambda: inv.solvers.PCG(rtol=1.0),
                 lambda: inv.solvers.CGLS(rtol=2.0)):
        with pytest.raises(ValueError, match=r"rtol must be a non-negative number below 1 .*met by x = 0"):
            make()  # before: x = 0 after 0 steps, successful
    assert inv.solvers.CG(rtol=0.5).rtol == 0.5


@pytest.mark.parametrize("make,match", [
    (lambda: inv.solvers.CG(rtol="1e-6"), "CG rtol must be a non-negative number below 1 .*got '1e-6'"),
    (lambda: inv.solvers.ChambollePock(lam="1"), "ChambollePock lam must be a non-negative finite number, got '1'"),
    (lambda: inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=True), "max_steps must be a non-negative integer"),
    (lambda: inv.solvers.PCG("jacobi"), "PCG preconditioner must be an invsolve.solvers preconditioner"),
    (lambda: inv.HostLoop(callback=1), "HostLoop: callback must be a function"),
    (lambda: inv.HostLoop(checkpoint=123), "HostLoop: checkpoint must be a file path"),
    (lambda: inv.HostLoop(chunk_size="a"), "HostLoop: chunk_size must be a positive integer"),
])
def test_settings_of_the_wrong_type_are_refused(make, match):
    # before: accepted (float("1e-6"), int(True)), failing later or never
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_solve_arguments_out_of_reach(A):
    prob = inv.LinearSystem(A, jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="max_steps must be a non-negative integer"):
        inv.solve(prob, inv.solvers.CG(), max_steps=True, throw=False)  # before: one step
    with pytest.raises(ValueError, match=r"max_steps must be at most 2\*\*31 - 1"):
        inv.solve(prob, inv.solvers.CG(max_steps=10**12))  # before: OverflowError from NumPy
    with pytest.raises(TypeError, match="solve: driver must be invsolve.HostLoop"):
        inv.solve(prob, inv.solvers.CG(), driver="host")


def test_theta0_of_the_wrong_shape_is_named(source_problem):
    with pytest.raises(ValueError, match=r"GradientMAP theta0 must have the shapes .* \(4, 4\) where \(16, 16\)"):
        inv.solve(source_problem, inv.solvers.GradientMAP(optax.adam(1e-2), theta0=jnp.zeros((4, 4))))


def test_a_misspelt_pinn_weight_is_refused():
    prob = inv.problems.tumor.FisherKPP1D(n_ic=8, n_bc=4, n_eval=5)
    solver = inv.solvers.PINN(hidden=(4,), n_collocation=8, steps=1, warmup_steps=0, weights={"resdual": 10.0})
    with pytest.raises(ValueError, match=r"PINN weights name 'resdual'.*terms are 'bc', 'ic', 'residual'"):
        inv.solve(prob, solver, key=jax.random.key(0))  # before: ignored, an unweighted loss


def test_metrics_of_large_values_and_constant_references():
    with jax.enable_x64(False):
        ref = jnp.full((16,), 1e20, jnp.float32)  # squares overflow float32: before rel_l2 = 0, psnr = inf
        assert float(inv.metrics.rel_l2(1.01 * ref, ref)) == pytest.approx(0.01, rel=1e-3)
        img = jnp.linspace(0.0, 1.0, 64, dtype=jnp.float32).reshape(8, 8)
        assert float(inv.metrics.psnr(1e20 * img + 1e18, 1e20 * img)) == pytest.approx(
            float(inv.metrics.psnr(img + 0.01, img)), abs=1e-3)
    with pytest.raises(ValueError, match="psnr: the reference is constant.*pass data_range"):
        inv.metrics.psnr(jnp.ones((8, 8)), jnp.zeros((8, 8)))  # before: -inf
    assert float(inv.metrics.psnr(jnp.ones((8, 8)), jnp.zeros((8, 8)), data_range=1.0)) == 0.0


@pytest.mark.slow  # 150 s on two cores
def test_reliability_probe_finds_no_silent_wrong_answer_and_no_unhelpful_error():
    import subprocess
    import sys
    from pathlib import Path

    probe = Path(__file__).parent / "scripts" / "reliability_probe.py"
    proc = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=1200)
    summary = proc.stdout[-3000:]
    assert proc.returncode == 0, summary + proc.stderr[-2000:]
    assert "silent-wrong" in summary and "unhelpful-error" in summary, summary
