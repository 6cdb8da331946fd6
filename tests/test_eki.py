"""Ensemble Kalman inversion: the linear-Gaussian limits (least squares, Tikhonov), the
adaptive step, a nonlinear fit against scipy, determinism and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import invsolve as inv


@pytest.fixture(scope="module")
def linear():
    """y = G u + N(0, 1), 30 data, 6 unknowns; the ensemble (40 members) spans the unknowns."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((30, 6))
    u_true = rng.standard_normal(6)
    y = G @ u_true + rng.standard_normal(30)
    prob = inv.ForwardProblem(lambda u: jnp.asarray(G) @ u, y, 1.0, init=jnp.zeros(6), x_true=jnp.asarray(u_true))
    return G, y, prob


def _eki(prob, **kw):
    return inv.solve(prob, inv.solvers.EKI(n_ensemble=40, prior_std=0.3, perturb=False, **kw), key=jax.random.key(1))


def test_deterministic_eki_converges_to_least_squares_and_tikhonov_eki_to_the_tikhonov_solution(linear):
    """Without perturbations the ensemble collapses onto the minimiser in its span (here the
    whole space): plain EKI -> least squares, Tikhonov EKI -> the Tikhonov solution with the
    initial ensemble's mean and spread as the prior. The two answers differ by 34 %."""
    G, y, prob = linear
    u_ls = np.linalg.lstsq(G, y, rcond=None)[0]
    errs = {}
    for tik in (False, True):
        for h, n in ((1.0, 200), (100.0, 200)):
            sol = _eki(prob, step_size=h, tikhonov=tik, max_steps=n)
            m0, s0 = np.asarray(sol.state.m0), np.asarray(sol.state.s0)
            u_tik = np.linalg.solve(G.T @ G + np.diag(1 / s0**2), G.T @ y + m0 / s0**2)
            ref = u_tik if tik else u_ls
            errs[tik, h] = np.linalg.norm(np.asarray(sol.value) - ref) / np.linalg.norm(ref)
    assert np.linalg.norm(u_tik - u_ls) / np.linalg.norm(u_ls) > 0.3
    assert errs[False, 100.0] < 7e-3 and errs[True, 100.0] < 5e-3  # measured 3.4e-3, 2.4e-3
    assert errs[False, 100.0] < errs[False, 1.0] / 5 and errs[True, 100.0] < errs[True, 1.0] / 5  # converging


def test_the_adaptive_step_stops_at_pseudo_time_one_near_the_noise_level(linear):
    _, _, prob = linear
    sol = inv.solve(prob, inv.solvers.EKI(n_ensemble=40), key=jax.random.key(1))
    h, t, chi2 = sol.history["h"], sol.history["t"], sol.history["chi2"]
    assert sol.result == inv.RESULTS.successful and abs(t[-1] - 1.0) < 1e-9 and np.all(h > 0)
    assert sol.stats["num_steps"] <= 8 and sol.stats["n_forward"] == 40 * sol.stats["num_steps"]  # measured 3
    final = float(prob.normalized_chi2(jnp.mean(sol.state.u, 0)))
    assert chi2[0] > 5 * final and 0.3 < final < 2.0, (chi2, final)  # to the noise, not beyond (measured 7.9 -> 0.75)
    assert sol.samples.shape == (40, 6) and np.all(np.asarray(sol.std) > 0)
    again = inv.solve(prob, inv.solvers.EKI(n_ensemble=40), key=jax.random.key(1))
    np.testing.assert_array_equal(again.value, sol.value)  # deterministic for a fixed key


def test_a_nonlinear_fit_without_gradients_matches_scipy_curve_fit():
    """y = a exp(-k t) + noise, theta = (log a, log k): the adaptive EKI mean against
    scipy.optimize.curve_fit, within the fit's own standard error."""
    from scipy.optimize import curve_fit

    t = np.linspace(0, 4, 25)
    rng = np.random.default_rng(3)
    y = 2.0 * np.exp(-0.7 * t) + 0.02 * rng.standard_normal(t.size)
    popt, pcov = curve_fit(lambda t, a, k: a * np.exp(-k * t), t, y, p0=(1.0, 1.0), sigma=np.full(t.size, 0.02),
                           absolute_sigma=True)
    prob = inv.ForwardProblem(lambda th: jnp.exp(th[0]) * jnp.exp(-jnp.exp(th[1]) * jnp.asarray(t)), y, 0.02,
                              init=jnp.zeros(2), constrain=jnp.exp)
    sol = inv.solve(prob, inv.solvers.EKI(n_ensemble=100, prior_std=1.0), key=jax.random.key(0))
    z = np.abs(np.asarray(sol.value) - popt) / np.sqrt(np.diag(pcov))
    assert sol.result == inv.RESULTS.successful and np.all(z < 2.0), (sol.value, popt, z)


@pytest.mark.parametrize("kw, message", [
    (dict(n_ensemble=1), "EKI n_ensemble must be an integer >= 2"),
    (dict(step_size=0.0), "EKI step_size must be 'adaptive' or a positive number"),
    (dict(step_size="fast"), "EKI step_size must be 'adaptive' or a positive number"),
    (dict(prior_std=-1.0), "EKI prior_std must be a positive number"),
])
def test_bad_settings_are_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        inv.solvers.EKI(**kw)


def test_non_gaussian_noise_and_wrong_prior_samples_are_refused(linear):
    G, y, _ = linear
    counts = inv.ForwardProblem(lambda u: jnp.exp(jnp.asarray(G) @ u), np.ones(30), inv.PoissonNoise(), init=jnp.zeros(6))
    with pytest.raises(inv.ProblemSolverIncompatible, match="EKI needs Gaussian noise"):
        inv.solve(counts, inv.solvers.EKI(), key=jax.random.key(0))
    prob = linear[2]
    with pytest.raises(ValueError, match=r"prior_samples\(key\) must return an unknown like"):
        inv.solve(prob, inv.solvers.EKI(prior_samples=lambda k: jnp.zeros(3)), key=jax.random.key(0))
