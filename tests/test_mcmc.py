"""NUTS: the analytic linear-Gaussian posterior, a tumour posterior from a database start,
chains with `solve_batch`, clear errors, and (slow) calibration over repeated draws."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.problems import flame, poisson, tumor
from helpers import check_grad

D, M, SIGMA, ALPHA = 3, 5, 0.3, 2.0


@pytest.fixture(scope="module")
def gaussian():
    """y = A x + 0.3 e with x ~ N(0, I/2): the posterior is N(m, C), C = (A^T A/s^2 + 2 I)^-1."""
    A = jax.random.normal(jax.random.key(0), (M, D))
    x = jax.random.normal(jax.random.key(1), (D,)) / np.sqrt(ALPHA)
    y = A @ x + SIGMA * jax.random.normal(jax.random.key(2), (M,))
    prob = inv.LinearInverse(inv.MatrixOperator.from_array(A), y, inv.GaussianNoise(SIGMA), x)
    cov = jnp.linalg.inv(A.T @ A / SIGMA**2 + ALPHA * jnp.eye(D))
    return prob, cov @ A.T @ y / SIGMA**2, cov


def test_nuts_matches_the_analytic_gaussian_posterior(gaussian):
    prob, mean, cov = gaussian
    sol = inv.solve(prob, inv.solvers.NUTS(n_samples=2000, n_warmup=500, prior=inv.priors.Tikhonov(ALPHA)),
                    key=jax.random.key(3))
    assert sol.samples.shape == (2000, D) and sol.result == inv.RESULTS.successful
    ess = inv.metrics.effective_sample_size(sol.samples)
    assert np.all(ess > 500), ess  # measured 1504 .. 1608
    # the mean within 4 Monte Carlo standard errors
    z = (sol.value - mean) / jnp.sqrt(jnp.diag(cov) / ess)
    assert np.all(np.abs(z) < 4), z  # measured |z| <= 1.6
    # the covariance: whitened by the exact one, the sample covariance is I to ~ 1/sqrt(ess)
    L = jnp.linalg.cholesky(cov)
    W = jnp.linalg.solve(L, jnp.linalg.solve(L, jnp.cov(sol.samples.T)).T)
    np.testing.assert_allclose(W, np.eye(D), atol=0.15)  # measured 0.051
    np.testing.assert_allclose(sol.std, jnp.sqrt(jnp.diag(cov)), rtol=0.06)  # measured 0.025; 2.4x margin
    # equal-tailed 90 % intervals against the Gaussian quantiles (+-1.645 sd)
    lo, hi = sol.credible_interval(0.9)
    assert float(inv.metrics.coverage(lo, hi, mean)) == 1.0
    assert float(inv.metrics.coverage(lo, hi, mean.at[0].set(1e3))) == pytest.approx(2 / 3)
    sd = jnp.sqrt(jnp.diag(cov))
    np.testing.assert_allclose(lo, mean - 1.6449 * sd, atol=0.15 * float(sd.max()))  # measured 0.048 sd
    np.testing.assert_allclose(hi, mean + 1.6449 * sd, atol=0.15 * float(sd.max()))  # measured 0.012 sd
    assert 0.8 < np.mean(sol.history["acceptance"]) <= 1.0  # measured 0.94
    assert np.sum(sol.history["divergent"]) == 0


@pytest.mark.slow  # 14 s on a quiet 2-core machine, cold cache
def test_chains_run_as_a_batch_and_each_equals_its_own_solve(gaussian):
    prob = gaussian[0]
    nuts = inv.solvers.NUTS(n_samples=50, n_warmup=50, prior=inv.priors.Tikhonov(ALPHA))
    keys = jax.random.split(jax.random.key(4), 2)
    chains = inv.solve_batch([prob, prob], nuts, keys)
    assert chains.samples.shape == (2, 50, D)
    one = inv.solve(prob, nuts, key=keys[1])
    np.testing.assert_allclose(chains.samples[1], one.samples, rtol=0, atol=1e-10)
    assert not np.allclose(chains.samples[0], chains.samples[1])
    lo, hi = chains.credible_interval(0.9, axis=1)
    assert lo.shape == (2, D) and np.all(lo < hi)
    fixed = inv.solve(prob, inv.solvers.NUTS(n_samples=20, n_warmup=0, step_size=0.2, prior=inv.priors.Tikhonov(ALPHA)),
                      key=jax.random.key(5))  # no warm-up: the given step size, unit mass matrix
    assert fixed.samples.shape == (20, D) and np.all(np.isfinite(fixed.samples))


@pytest.fixture(scope="module")
def tumour():
    """A 2D tumour on a coarse ellipse brain (6 mm voxels), D, rho and the seed unknown."""
    brain = tumor.ellipsoid_brain((24, 28), spacing_mm=6.0)
    truth = tumor.Params(0.3, 0.03, (0.55, 0.5), 200.0)
    return tumor.segmentation_inverse(brain, truth, (0.25, 0.6))


@pytest.mark.slow  # 13 s on a quiet 2-core machine, cold cache
def test_nuts_on_the_tumour_from_a_database_start(tumour):
    db = inv.solvers.DatabaseQuery.build(tumour, 64, jax.random.key(0))
    nuts = inv.solvers.NUTS(n_samples=60, n_warmup=60)
    start = db.refine(nuts).prepare(tumour).solver.theta0  # the bank's best match becomes the start
    assert set(start) == {"D_white", "rho", "origin"}
    sol = inv.solve(tumour, db.refine(nuts), key=jax.random.key(1))
    assert sol.samples["D_white"].shape == (60,) and sol.samples["origin"].shape == (60, 2)
    # measured 0.131 and 0.040 (2x and 2.5x margins), Dice 1.0 and 0.989
    assert sol.metrics["rel_err_D"] < 0.25 and sol.metrics["rel_err_rho"] < 0.1, sol.metrics
    assert sol.metrics["dice_edema"] > 0.97 and sol.metrics["dice_core"] > 0.97, sol.metrics
    lo, hi = sol.credible_interval(0.9)
    assert np.all(np.asarray(lo["origin"]) < np.asarray(hi["origin"])) and float(lo["D_white"]) < float(hi["D_white"])
    assert np.all(np.isfinite(sol.history["log_density"]))


def test_bad_input_gives_clear_errors(gaussian):
    prob = gaussian[0]
    with pytest.raises(inv.ProblemSolverIncompatible, match="NUTS needs a prior.*no prior bounds on its unknowns"):
        inv.solve(prob, inv.solvers.NUTS(n_samples=10, n_warmup=10), key=jax.random.key(0))
    p = poisson.coefficient_identification((8, 8), key=jax.random.key(0))
    with pytest.raises(inv.ProblemSolverIncompatible, match="PoissonInverse has no prior bounds"):
        inv.solve(p, inv.solvers.NUTS(n_samples=10, n_warmup=10), key=jax.random.key(0))
    with pytest.raises(ValueError, match="stochastic"):
        inv.solve(prob, inv.solvers.NUTS(prior=inv.priors.Tikhonov(1.0)))
    with pytest.raises(ValueError, match="n_samples >= 2"):
        inv.solvers.NUTS(n_samples=1)
    with pytest.raises(ValueError, match="n_warmup"):
        inv.solvers.NUTS(n_warmup=-5)
    with pytest.raises(TypeError, match="log density"):
        inv.solvers.NUTS(prior="gaussian")
    sol = inv.solve(prob, inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.Tikhonov(1.0)), max_steps=5, throw=False)
    with pytest.raises(ValueError, match="no samples"):
        sol.credible_interval()


def test_flame_kinetics_forward_fits_the_truth_and_its_gradient_matches_finite_differences():
    """T and u at 10 probes through Newton continued from the nominal flame: at the true
    (lambda, Ea) the misfit is the noise's (chi^2 / 2 ~ n / 2 = 10), far larger at the nominal
    start; the implicit gradient matches central differences; unreachable flames give NaN."""
    case = flame.FreelyPropagating(phi=0.46)
    ref = flame.solve_reference(case, n_grid=201, rtol=1e-3)
    prob = flame.kinetics_inverse(case, 10, 0.02, key=jax.random.key(0), n_grid=201, reference=ref)
    truth = {k: jnp.log(prob.x_true[k] / prob.nominal[k]) for k in prob.names}
    nll = jax.jit(lambda th: prob.neg_log_likelihood(th))
    assert float(nll(truth)) < 25 and float(nll(prob.init_params())) > 2000  # measured 8.8 and 5619
    vec = lambda v: {"lam": v[0], "Ea": v[1]}  # noqa: E731
    check_grad(lambda v: nll(vec(v)), jnp.array([-0.1, -0.2]), jax.random.key(1), eps=1e-6, rtol=1e-5)  # measured 3.0e-6
    assert np.isnan(float(nll(vec(jnp.array([1.0, 1.0])))))
    with pytest.raises(ValueError, match="s_L is an output"):
        flame.kinetics_inverse(case, key=jax.random.key(0), unknown=("s_L",), reference=ref)
    with pytest.raises(ValueError, match="nominal value for"):
        flame.kinetics_inverse(case, key=jax.random.key(0), unknown=("nu",), reference=ref)


@pytest.mark.slow
def test_calibration_of_poisson_log_kappa_over_twenty_draws():
    """log kappa ~ N(0, 0.3^2 I) on a 4x4 grid, u observed everywhere with 2 % noise, 20 draws
    solved as one batch: the 90 % intervals of the grid mean of log kappa cover its truth in
    >= 16 of 20 draws, and cover the 16 coefficients 80-97 % of the time on average (35 s)."""
    from invsolve.experiments import get

    exp = get("poisson-kappa-nuts")
    out = exp.run(exp.quick, 0).extra_metrics
    assert out["draws_covering_mean_log_kappa"] >= 16, out
    assert 0.8 <= out["coverage_all"] <= 0.97, out
    assert out["divergences"] == 0
