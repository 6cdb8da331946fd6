"""Bring your own problem: FunctionOperator, LinearInverse from a matrix, ForwardProblem, the noise
models (against scipy.stats and finite differences), and the docs page `docs/own-problem.md`."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
import scipy.stats

import invsolve as inv
from helpers import count_compilations, dot_product_test

jax.config.update("jax_enable_x64", True)  # conftest does too; the references are float64
DOC = Path(__file__).parents[1] / "docs" / "own-problem.md"


def _matrix_op(M, in_shape, out_shape, rmv=True):
    M = jnp.asarray(M)
    mv = lambda x: (M @ x.reshape(-1)).reshape(out_shape)  # noqa: E731
    rmv = (lambda r: (M.T @ r.reshape(-1)).reshape(in_shape)) if rmv else None  # noqa: E731
    return inv.FunctionOperator(mv, rmv, in_shape, out_shape, dtype=jnp.float64)


# --------------------------------------------------------------------------------------
# FunctionOperator
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("given_rmv", [True, False], ids=["rmv", "linear_transpose"])
def test_function_operator_matches_its_matrix_and_passes_the_adjoint_test(given_rmv):
    M = np.random.default_rng(0).normal(size=(10, 12))
    A = _matrix_op(M, (3, 4), (5, 2), rmv=given_rmv)
    assert (A.in_shape, A.out_shape, A.dtype) == ((3, 4), (5, 2), jnp.float64)
    np.testing.assert_allclose(A.as_matrix(), M, rtol=0, atol=1e-14)
    np.testing.assert_allclose(A.T.as_matrix(), M.T, rtol=0, atol=1e-14)
    assert dot_product_test(A, jax.random.key(0)) < 1e-13  # measured 1e-16 (rmv), 6e-16 (linear_transpose)
    assert A.T.T.in_shape == (3, 4) and not A.symmetric


def test_function_operator_heat_step_adjoint():
    """The heat operator of the docs page (explicit steps, then every other point) and its
    hand-written transpose: assembled, ``A^T`` equals the transpose of ``A``'s matrix."""
    n, r = 16, 0.25
    heat = lambda u: jax.lax.scan(lambda v, _: (v + r * jnp.diff(jnp.pad(v, 1), 2), None), u, None, length=5)[0]  # noqa: E731
    A = inv.FunctionOperator(lambda u: heat(u)[::2], lambda d: heat(jnp.zeros(n).at[::2].set(d)), n, n // 2)
    np.testing.assert_allclose(A.T.as_matrix(), A.as_matrix().T, rtol=0, atol=1e-15)
    assert dot_product_test(A, jax.random.key(1)) < 1e-13


def test_function_operator_symmetric_tag_feeds_cg():
    M = np.random.default_rng(1).normal(size=(6, 6))
    S = M @ M.T + 6 * np.eye(6)
    A = inv.FunctionOperator(lambda x: jnp.asarray(S) @ x, lambda x: jnp.asarray(S) @ x, 6, 6,
                             symmetric=True, positive_definite=True)
    b = np.arange(6.0)
    sol = inv.solve(inv.LinearSystem(A, b), inv.solvers.CG(rtol=1e-12))
    np.testing.assert_allclose(sol.value, np.linalg.solve(S, b), rtol=1e-10)


@pytest.mark.parametrize("kw,err,match", [
    (dict(out_shape=(4,)), ValueError, r"mv maps an input of shape \(6,\) to shape \(5,\), but \(4,\) was declared"),
    (dict(rmv=lambda r: jnp.zeros(7)), ValueError, r"rmv maps an input of shape \(5,\) to shape \(7,\), but \(6,\)"),
    (dict(mv=lambda x: x.reshape(2, 2)), ValueError, r"mv fails on an input of shape \(6,\)"),
    (dict(mv=lambda x: (x[:5], x[:5])), ValueError, r"mv must return one array"),
    (dict(dtype=jnp.int32), TypeError, r"dtype must be a floating dtype"),
    (dict(in_shape="six"), ValueError, r"in_shape must be a tuple of non-negative ints"),
    (dict(mv="M"), TypeError, r"mv and rmv must be functions"),
    (dict(symmetric=True), ValueError, r"a symmetric operator maps a shape to itself"),
])
def test_function_operator_refuses_bad_input(kw, err, match):
    M = jnp.ones((5, 6))
    args = dict(mv=lambda x: M @ x, rmv=lambda r: M.T @ r, in_shape=(6,), out_shape=(5,)) | kw
    with pytest.raises(err, match=match):
        inv.FunctionOperator(**args)


# --------------------------------------------------------------------------------------
# LinearInverse from a matrix and a number
# --------------------------------------------------------------------------------------
def test_linear_inverse_from_a_dense_matrix_and_a_float_sigma():
    rng = np.random.default_rng(2)
    M, y = rng.normal(size=(40, 15)), rng.normal(size=40)
    prob = inv.LinearInverse(M, y, noise=0.3)
    assert isinstance(prob.A, inv.MatrixOperator) and isinstance(prob.noise, inv.GaussianNoise)
    assert float(prob.noise.sigma) == 0.3 and prob.A.in_shape == (15,)
    sol = inv.solve(prob, inv.solvers.CGLS(rtol=1e-12))
    ref = np.linalg.lstsq(M, y, rcond=None)[0]
    assert np.linalg.norm(sol.value - ref) / np.linalg.norm(ref) < 1e-12  # measured 5e-15
    # a per-datum sigma array (weighted least squares) and a jax matrix of ints
    w = rng.uniform(0.5, 2.0, size=40)
    sol_w = inv.solve(inv.LinearInverse(jnp.asarray(M), y, noise=w), inv.solvers.CGLS(rtol=1e-12))
    ref_w = np.linalg.lstsq(M / w[:, None], y / w, rcond=None)[0]
    assert np.linalg.norm(sol_w.value - ref_w) / np.linalg.norm(ref_w) < 1e-12
    assert inv.LinearInverse(np.eye(3, dtype=int), np.ones(3), 1.0).A.dtype == jnp.float64
    # the same through a FunctionOperator
    sol_f = inv.solve(inv.LinearInverse(_matrix_op(M, (15,), (40,)), y, noise=0.3), inv.solvers.CGLS(rtol=1e-12))
    np.testing.assert_allclose(sol_f.value, ref, rtol=1e-10)


def test_linear_inverse_bad_operator_or_noise():
    with pytest.raises(TypeError, match=r"LinearInverse: A must be a linear operator .*or a 2-D matrix.*shape \(3,\)"):
        inv.LinearInverse(np.ones(3), np.ones(3), 0.1)
    with pytest.raises(TypeError, match=r"LinearInverse: noise must be a noise model"):
        inv.LinearInverse(np.eye(3), np.ones(3), "0.1")
    with pytest.raises(ValueError, match=r"sigma \(the noise standard deviation\) must be positive"):
        inv.LinearInverse(np.eye(3), np.ones(3), -1.0)
    with pytest.raises(ValueError, match=r"data have shape \(4,\) but the operator maps to shape \(3,\)"):
        inv.LinearInverse(np.eye(3), np.ones(4), 0.1)
    prob = inv.LinearInverse(np.eye(3), np.ones(3), inv.PoissonNoise())
    with pytest.raises(TypeError, match=r"need Gaussian noise .*got PoissonNoise"):
        inv.solve(prob, inv.solvers.CGLS())


# --------------------------------------------------------------------------------------
# ForwardProblem
# --------------------------------------------------------------------------------------
T = np.linspace(0.0, 4.0, 25)


def _decay_data():
    rng = np.random.default_rng(3)
    return 2.0 * np.exp(-0.7 * T) + 0.05 * rng.normal(size=T.size)


def test_forward_problem_map_matches_scipy_curve_fit():
    """Fit ``a exp(-k t)`` with theta a dict of logs (a pytree), constrain = exp: GradientMAP
    with L-BFGS reaches scipy's least-squares fit."""
    y = _decay_data()
    forward = lambda th: jnp.exp(th["log_a"]) * jnp.exp(-jnp.exp(th["log_k"]) * T)  # noqa: E731
    prob = inv.ForwardProblem(forward, y, 0.05, init={"log_a": 0.0, "log_k": 0.0},
                              constrain=lambda th: jax.tree.map(jnp.exp, th))
    solver = inv.solvers.GradientMAP(optax.lbfgs(), max_steps=100, gtol=1e-10)
    sol = inv.solve(prob, solver)
    (a, k), _ = scipy.optimize.curve_fit(lambda t, a, k: a * np.exp(-k * t), T, y, p0=(1.0, 1.0))
    assert abs(float(sol.value["log_a"]) - a) / a < 1e-7 and abs(float(sol.value["log_k"]) - k) / k < 1e-7  # 4e-9, 9e-9
    assert float(prob.normalized_chi2(jax.tree.map(jnp.log, sol.value))) < 2.0  # measured 1.33
    with count_compilations() as n:  # the same problem and solver again: no recompilation
        inv.solve(prob, solver)
    assert n["lower"] == 0


def test_forward_problem_nuts_matches_the_gaussian_posterior():
    """Linear forward, Gaussian noise, Tikhonov prior: NUTS's mean and std against the exact
    posterior ``N((A^T A / s^2 + alpha I)^-1 A^T y / s^2, (A^T A / s^2 + alpha I)^-1)``."""
    rng = np.random.default_rng(4)
    M, s, alpha = rng.normal(size=(8, 3)), 0.5, 1.0
    y = M @ np.array([1.0, -0.5, 0.3]) + s * rng.normal(size=8)
    prob = inv.ForwardProblem(lambda th: jnp.asarray(M) @ th, y, inv.GaussianNoise(s), init=np.zeros(3))
    sol = inv.solve(prob, inv.solvers.NUTS(n_samples=2000, n_warmup=300, prior=inv.priors.Tikhonov(alpha)),
                    key=jax.random.key(0))
    H = M.T @ M / s**2 + alpha * np.eye(3)
    mean, std = np.linalg.solve(H, M.T @ y / s**2), np.sqrt(np.diag(np.linalg.inv(H)))
    assert np.max(np.abs(sol.value - mean) / std) < 0.15  # measured 0.035 posterior std (Monte Carlo error ~0.03)
    assert np.max(np.abs(sol.std / std - 1)) < 0.05  # measured 0.011


def test_forward_problem_poisson_counts_map_is_the_mean():
    """Counts with rate ``exp(theta)`` in every bin: the Poisson maximum-likelihood rate is the
    mean count (a closed form); with a background b it is ``mean - b``."""
    y = np.random.default_rng(5).poisson(7.0, size=50).astype(float)
    for bg in (0.0, 2.0):
        prob = inv.ForwardProblem(lambda th: jnp.exp(th) * jnp.ones(50), y, inv.PoissonNoise(background=bg),
                                  init=jnp.zeros(()), constrain=jnp.exp)
        sol = inv.solve(prob, inv.solvers.GradientMAP(optax.lbfgs(), max_steps=100, gtol=1e-12))
        assert abs(float(sol.value) - (y.mean() - bg)) < 1e-8  # measured 9e-16


@pytest.mark.parametrize("kw,err,match", [
    (dict(y=np.ones(7)), ValueError, r"^ForwardProblem: forward\(init\) has shape \(5,\) but the data y have shape \(7,\)"),
    (dict(y=np.r_[1.0, np.nan, 1, 1, 1]), ValueError, r"y \(the data\) contains NaN or infinite values"),
    (dict(init=np.zeros(4)), ValueError, r"forward\(init\) fails: TypeError"),
    (dict(init=None), ValueError, r"init must be an array or a pytree of arrays"),
    (dict(noise="gauss"), TypeError, r"ForwardProblem: noise must be a noise model"),
    (dict(noise=np.ones(3)), ValueError, r"noise sigma has shape \(3,\), which does not fit the data of shape \(5,\)"),
    (dict(forward=None), TypeError, r"forward must be a function"),
    (dict(x_true=np.ones(3)), ValueError, r"x_true has shape \(3,\), expected the shape of constrain\(init\): \(5,\)"),
])
def test_forward_problem_refuses_bad_input(kw, err, match):
    M = jnp.eye(5)
    args = dict(forward=lambda th: M @ th, y=np.ones(5), noise=0.1, init=np.zeros(5)) | kw
    with pytest.raises(err, match=match):
        inv.ForwardProblem(**args)


# --------------------------------------------------------------------------------------
# noise models: negative log-likelihoods against scipy.stats, gradients against differences
# --------------------------------------------------------------------------------------
def _differences(nll, lam, y):
    """``nll(lam_i) - nll(lam_0)`` for a set of rate vectors: the constant drops out."""
    return np.array([float(nll(jnp.asarray(l), jnp.asarray(y)) - nll(jnp.asarray(lam[0]), jnp.asarray(y))) for l in lam])


RATES = np.random.default_rng(6).uniform(0.5, 20.0, size=(4, 30))
COUNTS = np.random.default_rng(7).poisson(8.0, size=30).astype(float)


def test_poisson_nll_matches_scipy():
    for bg in (0.0, 1.5):
        ours = _differences(inv.PoissonNoise(background=bg).neg_log_likelihood, RATES, COUNTS)
        ref = np.array([-np.sum(scipy.stats.poisson.logpmf(COUNTS, l + bg)) for l in RATES])
        np.testing.assert_allclose(ours, ref - ref[0], rtol=1e-12, atol=1e-10)
    # a zero rate: fine where the count is zero (0 log 0 = 0), impossible (+inf) where it is not
    assert float(inv.PoissonNoise().neg_log_likelihood(jnp.zeros(2), jnp.array([0.0, 0.0]))) == 0.0
    assert float(inv.PoissonNoise().neg_log_likelihood(jnp.zeros(2), jnp.array([0.0, 3.0]))) == np.inf


def test_poisson_gaussian_nll_matches_scipy():
    s = 2.0  # read noise; s^2 = 4 keeps y + s^2 an integer for scipy's Poisson pmf
    y = COUNTS + np.random.default_rng(8).integers(-3, 4, size=30)  # integer stand-ins for noisy counts
    shifted = _differences(inv.PoissonGaussianNoise(s).neg_log_likelihood, RATES, y)
    ref = np.array([-np.sum(scipy.stats.poisson.logpmf(y + s**2, l + s**2)) for l in RATES])
    np.testing.assert_allclose(shifted, ref - ref[0], rtol=1e-12, atol=1e-10)
    gauss = _differences(inv.PoissonGaussianNoise(s, background=0.5, approximation="gaussian").neg_log_likelihood,
                         RATES, y)
    ref = np.array([-np.sum(scipy.stats.norm.logpdf(y, l + 0.5, np.sqrt(l + 0.5 + s**2))) for l in RATES])
    np.testing.assert_allclose(gauss, ref - ref[0], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("noise", [
    inv.GaussianNoise(0.7), inv.PoissonNoise(background=0.3), inv.PoissonGaussianNoise(1.3),
    inv.PoissonGaussianNoise(np.linspace(0.5, 2.0, 30), approximation="gaussian"),
], ids=["gaussian", "poisson", "shifted-poisson", "gaussian-approx"])
def test_noise_gradients_match_finite_differences(noise):
    lam, y = jnp.asarray(RATES[1]), jnp.asarray(COUNTS)
    f = lambda l: noise.neg_log_likelihood(l, y)  # noqa: E731
    g = jax.grad(f)(lam)
    v = jnp.asarray(np.random.default_rng(9).normal(size=30))
    eps = 1e-5
    fd = (f(lam + eps * v) - f(lam - eps * v)) / (2 * eps)
    assert abs(float(jnp.vdot(g, v) - fd)) < 1e-8 * abs(float(fd))  # measured 3e-11 to 8e-10 relative


def test_noise_models_refuse_bad_parameters():
    with pytest.raises(ValueError, match=r"PoissonNoise: background must be non-negative"):
        inv.PoissonNoise(background=-1.0)
    with pytest.raises(ValueError, match=r"read_sigma must be positive"):
        inv.PoissonGaussianNoise(0.0)
    with pytest.raises(ValueError, match=r"approximation must be 'shifted_poisson' or 'gaussian'"):
        inv.PoissonGaussianNoise(1.0, approximation="exact")
    with pytest.raises(ValueError, match=r"noise background has shape \(3,\), which does not fit the data"):
        inv.LinearInverse(np.eye(4), np.ones(4), inv.PoissonNoise(background=np.ones(3)))


# --------------------------------------------------------------------------------------
# the docs page runs as written (its blocks assert their own numbers)
# --------------------------------------------------------------------------------------
def test_docs_page_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2 and all(not b.startswith("# slow") for b in blocks)
    code = [ln for ln in blocks[0].splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(code) < 30  # the promise of the page: three solvers in under 30 lines
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), ns)
    assert ns["map_"].value.shape == ns["cgls"].value.shape == ns["nuts"].value.shape == (64,)
