"""CGLS, Landweber and Chambolle-Pock against independent references (numpy/scipy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import invsolve as inv
from invsolve.solvers.linear_ls import divergence, gradient, tv_iso
from helpers import count_compilations


def _problem(M, y, sigma=1.0, in_shape=None, out_shape=None, x_true=None):
    A = inv.MatrixOperator.from_array(jnp.asarray(M), in_shape=in_shape, out_shape=out_shape)
    y = jnp.asarray(y).reshape(A.out_shape)
    return inv.LinearInverse(A, y, inv.GaussianNoise(jnp.asarray(sigma)), x_true)


def _random_ls(m=60, n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n)), rng.normal(size=m)


def _rel(a, b):
    return np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b))


# --------------------------------------------------------------------------------------
# CGLS
# --------------------------------------------------------------------------------------
def test_cgls_matches_lstsq_and_ridge():
    M, y = _random_ls()
    sol = inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=1e-12))
    assert sol.result == inv.RESULTS.successful
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 1.5e-13  # measured 6.0e-14
    h = sol.history
    assert h["residual"].shape == h["misfit"].shape == (sol.stats["num_steps"],) and h["residual"][-1] <= 1e-12
    np.testing.assert_allclose(h["misfit"][-1], np.linalg.norm(M @ sol.value - y) / np.linalg.norm(y), rtol=1e-10)

    damp = 3.0
    sol = inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=1e-12, damp=damp))
    ridge = np.linalg.solve(M.T @ M + damp**2 * np.eye(M.shape[1]), M.T @ y)
    assert _rel(sol.value, ridge) < 4e-12  # measured 1.8e-12


def test_cgls_noise_weighting_and_operator_shapes():
    """The data term is the likelihood: a data-shaped sigma gives weighted least squares;
    the operator maps (6, 5) images to (8, 10) "sinograms"."""
    rng = np.random.default_rng(1)
    M, y = rng.normal(size=(80, 30)), rng.normal(size=80)
    sigma = rng.uniform(0.5, 2.0, size=80)
    pb = _problem(M, y, sigma.reshape(8, 10), in_shape=(6, 5), out_shape=(8, 10))
    sol = inv.solve(pb, inv.solvers.CGLS(rtol=1e-12, damp=0.5))
    Mw, yw = M / sigma[:, None], y / sigma
    ref = np.linalg.solve(Mw.T @ Mw + 0.25 * np.eye(30), Mw.T @ yw)
    assert sol.value.shape == (6, 5) and _rel(sol.value, ref.reshape(6, 5)) < 7e-13  # measured 2.9e-13
    # a scalar sigma does not change the undamped least-squares solution
    sol = inv.solve(_problem(M, y, 0.1), inv.solvers.CGLS(rtol=1e-12))
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 5e-13  # measured 1.9e-13


def test_cgls_few_iterations_when_well_conditioned():
    rng = np.random.default_rng(2)
    m, n = 80, 50
    U, _ = np.linalg.qr(rng.normal(size=(m, n)))
    V, _ = np.linalg.qr(rng.normal(size=(n, n)))
    y = rng.normal(size=m)
    # singular values in [1, 2]: CG bound ((2 - 1) / (2 + 1))^k -> k ~ 22 for 1e-10
    M = U @ np.diag(np.linspace(1.0, 2.0, n)) @ V.T
    sol = inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=1e-10))
    assert sol.stats["num_steps"] <= 25 < n  # measured 21
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 1.5e-10  # measured 6.3e-11
    # four distinct singular values: exact in four steps (up to rounding)
    M = U @ np.diag(np.repeat([1.0, 2.0, 5.0, 10.0], n // 4 + 1)[:n]) @ V.T
    sol = inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=1e-10))
    assert sol.stats["num_steps"] <= 5  # measured 4


def test_cgls_early_stopping_and_max_steps():
    M, y = _random_ls()
    sol = inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=None, max_steps=3))
    assert sol.result == inv.RESULTS.successful and sol.stats["num_steps"] == 3
    with pytest.raises(inv.SolveError, match="max_steps"):
        inv.solve(_problem(M, y), inv.solvers.CGLS(rtol=1e-14, max_steps=3))
    # data with A^T y = 0: x = 0 is the answer, reached in zero steps
    sol = inv.solve(_problem(M, np.zeros(60)), inv.solvers.CGLS())
    assert sol.stats["num_steps"] == 0 and np.all(sol.value == 0)


def test_cgls_jit_vmap_and_float32():
    M, y = _random_ls()
    pb = _problem(M, y)
    ys = jnp.stack([jnp.asarray(y), 3.0 * jnp.asarray(y) + 1.0])
    xs = jax.jit(jax.vmap(lambda y: inv.solve(pb.with_observations(y), inv.solvers.CGLS(rtol=1e-12)).value))(ys)
    for x, yy in zip(xs, ys):
        assert _rel(x, np.linalg.lstsq(M, np.asarray(yy), rcond=None)[0]) < 5e-13  # measured 7.6e-14, 1.9e-13
    pb32 = _problem(M.astype(np.float32), y.astype(np.float32), np.float32(1.0))
    sol = inv.solve(pb32, inv.solvers.CGLS(rtol=1e-5))
    assert sol.value.dtype == jnp.float32
    assert all(leaf.dtype in (jnp.float32, jnp.bool_) for leaf in jax.tree.leaves(sol.state))
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 3e-5  # measured 1.25e-5


# --------------------------------------------------------------------------------------
# Landweber
# --------------------------------------------------------------------------------------
def test_landweber_converges_to_lstsq_and_step_size():
    M, y = _random_ls(60, 20, seed=3)
    sol = inv.solve(_problem(M, y), inv.solvers.Landweber(max_steps=500))
    smax = np.linalg.svd(M, compute_uv=False)[0]
    assert abs(float(sol.state.step_size) * smax**2 - 1) < 1.5e-9  # measured 6.2e-10
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 5e-15  # measured 1.0e-15
    misfit = sol.history["misfit"]
    assert misfit.shape == (500,) and np.all(np.diff(misfit) <= 1e-12)  # monotone for omega <= 1/||A||^2
    # a given step, passed as step= or step_size=
    s = 0.5 / smax**2
    a = inv.solve(_problem(M, y), inv.solvers.Landweber(step_size=s, max_steps=5))
    b = inv.solve(_problem(M, y), inv.solvers.Landweber(s, max_steps=5))
    assert float(a.state.step_size) == s and np.array_equal(a.value, b.value)


def test_landweber_nonneg_matches_nnls():
    M, y = _random_ls(60, 20, seed=4)
    ref, _ = scipy.optimize.nnls(M, y)
    assert np.sum(ref == 0) >= 3  # the constraint is active
    sol = inv.solve(_problem(M, y), inv.solvers.Landweber(max_steps=1000, nonneg=True))
    assert np.all(sol.value >= 0) and _rel(sol.value, ref) < 5e-15  # measured 6.6e-16


# --------------------------------------------------------------------------------------
# Chambolle-Pock
# --------------------------------------------------------------------------------------
def _difference_matrices(shape):
    """Forward differences built entry by entry (zero row at the last index of each axis)."""
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    Ds = []
    for a in range(len(shape)):
        D = np.zeros((n, n))
        for i in np.ndindex(*shape):
            if i[a] < shape[a] - 1:
                j = list(i)
                j[a] += 1
                D[idx[i], idx[tuple(j)]], D[idx[i], idx[i]] = 1.0, -1.0
        Ds.append(D)
    return Ds


def _tv_newton_reference(M, y, lam, shape):
    """Minimise 1/2||Mx - y||^2 + lam sum sqrt(|Dx|^2 + eps^2) by damped Newton with a dense
    Hessian, eps -> 1e-9 by continuation. Returns x and the unsmoothed objective; the
    smoothing moves the optimal value by at most lam * n * eps."""
    Ds = _difference_matrices(shape)
    H0, g0 = M.T @ M, M.T @ y
    x = np.linalg.lstsq(M, y, rcond=None)[0]

    def f(x, eps):
        s = np.sqrt(sum((D @ x) ** 2 for D in Ds) + eps**2)
        return 0.5 * np.sum((M @ x - y) ** 2) + lam * np.sum(s)

    for eps in 10.0 ** -np.arange(1, 10):
        for _ in range(50):
            g = [D @ x for D in Ds]
            s = np.sqrt(sum(gi**2 for gi in g) + eps**2)
            grad = H0 @ x - g0 + lam * sum(D.T @ (gi / s) for D, gi in zip(Ds, g))
            H = H0.copy()
            for a, Da in enumerate(Ds):
                for b, Db in enumerate(Ds):
                    H += lam * Da.T @ ((float(a == b) / s - g[a] * g[b] / s**3)[:, None] * Db)
            dx = np.linalg.solve(H, -grad)
            t, f0 = 1.0, f(x, eps)
            while f(x + t * dx, eps) > f0 + 1e-4 * t * (grad @ dx) and t > 1e-10:
                t /= 2
            x = x + t * dx
            if abs(grad @ dx) < 1e-22:
                break
    return x, f(x, 0.0)


def _tv_problem():
    rng = np.random.default_rng(0)
    n = 12
    xt = np.zeros((n, n))
    xt[3:9, 2:7] = 1.0
    xt[6:11, 5:10] += 0.5
    M = rng.normal(size=(200, n * n)) / np.sqrt(200)
    y = M @ xt.ravel() + 0.05 * rng.normal(size=200)
    pb = _problem(M, y, in_shape=(n, n), out_shape=(20, 10), x_true=jnp.asarray(xt))
    return pb, M, y, xt


def test_chambolle_pock_tv_matches_newton_reference():
    pb, M, y, xt = _tv_problem()
    lam = 0.05
    xr, Fr = _tv_newton_reference(M, y, lam, (12, 12))
    sol = inv.solve(pb, inv.solvers.ChambollePock(lam=lam, max_steps=3000, nonneg=False))
    x = np.asarray(sol.value).ravel()
    Ds = _difference_matrices((12, 12))
    F = 0.5 * np.sum((M @ x - y) ** 2) + lam * np.sum(np.sqrt(sum((D @ x) ** 2 for D in Ds)))
    assert abs(F - Fr) <= 5e-9 * Fr, (F, Fr)  # measured 2.2e-9
    np.testing.assert_allclose(sol.history["primal"][-1], F, rtol=1e-12)
    assert np.max(np.abs(x - xr)) < 6e-7  # measured 2.6e-7
    assert xr.min() < -1e-3  # the unconstrained minimiser is not >= 0 here
    assert sol.metrics["rel_l2"] < 0.15  # and it is a good reconstruction (measured 0.091)
    # first-order optimality with CP's dual q: M^T(Mx - y) + D^T q = 0, |q_i| <= lam,
    # <q, Dx> = lam TV(x); CP's dual is for the scaled block s*grad, so the TV dual is s*q
    q = float(sol.state.scale) * np.asarray(sol.state.q).reshape(2, -1)
    stationarity = M.T @ (M @ x - y) + sum(D.T @ qa for D, qa in zip(Ds, q))
    assert np.linalg.norm(stationarity) < 6e-10 * np.linalg.norm(M.T @ y)  # measured 2.5e-10
    assert np.max(np.sqrt(np.sum(q**2, axis=0))) <= lam * (1 + 1e-12)
    tv = np.sum(np.sqrt(sum((D @ x) ** 2 for D in Ds)))
    np.testing.assert_allclose(sum(qa @ (D @ x) for D, qa in zip(Ds, q)), lam * tv, rtol=7e-9)  # measured 3.1e-9


def test_chambolle_pock_least_squares_and_nonneg_limits():
    pb, M, y, _ = _tv_problem()
    sol = inv.solve(pb, inv.solvers.ChambollePock(lam=0.0, max_steps=2000, nonneg=False))
    assert _rel(sol.value, np.linalg.lstsq(M, y, rcond=None)[0]) < 3e-10  # measured 1.4e-10
    M2, y2 = _random_ls(60, 20, seed=4)
    ref, _ = scipy.optimize.nnls(M2, y2)
    sol = inv.solve(_problem(M2, y2), inv.solvers.ChambollePock(lam=0.0, max_steps=2000))  # nonneg default
    assert np.all(sol.value >= 0) and _rel(sol.value, ref) < 5e-15  # measured 1.4e-15


def test_chambolle_pock_3d_denoising_large_lam_gives_mean():
    """A = I and lam large: the TV minimiser is the constant mean(y) (gradient over all
    three axes); stops on rtol."""
    shape = (4, 5, 6)
    y = np.random.default_rng(5).normal(size=shape)
    pb = _problem(np.eye(120), y, in_shape=shape, out_shape=shape)
    sol = inv.solve(pb, inv.solvers.ChambollePock(lam=10.0, max_steps=5000, nonneg=False, rtol=1e-10))
    assert sol.result == inv.RESULTS.successful and sol.stats["num_steps"] < 2000  # measured 1045
    np.testing.assert_allclose(sol.value, np.full(shape, y.mean()), atol=3e-9)  # measured 1.5e-9
    assert np.all(np.diff(sol.history["primal"][-50:]) <= 1e-12)


@pytest.mark.parametrize("shape", [(7,), (5, 6), (3, 4, 5)])
def test_gradient_divergence_adjoint_and_tv(shape):
    @jax.jit  # one compile instead of one per eager op
    def compute(key):
        kx, kq = jax.random.split(key)
        x = jax.random.normal(kx, shape, jnp.float64)
        q = jax.random.normal(kq, (len(shape), *shape), jnp.float64)
        return x, jnp.vdot(gradient(x), q), jnp.vdot(x, -divergence(q)), gradient(x), tv_iso(x), \
            inv.priors.TV(1.0, eps=0.0)(x)

    x, lhs, rhs, g, tv, tv_prior = compute(jax.random.key(0))
    assert abs(lhs - rhs) <= 1e-13 * abs(lhs)
    Ds = _difference_matrices(shape)
    np.testing.assert_allclose(g, np.stack([D @ np.asarray(x).ravel() for D in Ds]).reshape(g.shape), atol=1e-14)
    np.testing.assert_allclose(tv, tv_prior, rtol=1e-13)  # the discretisation of priors.TV


# --------------------------------------------------------------------------------------
# contracts and errors
# --------------------------------------------------------------------------------------
SOLVERS = {
    "cgls": lambda: inv.solvers.CGLS(),
    "landweber": lambda: inv.solvers.Landweber(nonneg=True),
    "chambolle-pock": lambda: inv.solvers.ChambollePock(lam=0.1),
}


def _avals(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x), getattr(jax.typeof(x), "weak_type", None)), tree)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_state_types_stable_and_incompatible_problem(name):
    M, y = _random_ls(24, 16)
    pb = _problem(M, y, in_shape=(4, 4), out_shape=(4, 6))
    solver = SOLVERS[name]().prepare(pb)
    state = jax.eval_shape(lambda: solver.init(pb, None))
    new_state, info = jax.eval_shape(lambda s: solver.step(pb, s), state)
    assert _avals(state) == _avals(new_state)
    assert all(jnp.shape(v) == () for v in info.values())
    with count_compilations() as c:  # init + one chunk + postprocess
        sol = inv.solve(pb, solver, max_steps=3, throw=False, driver=inv.HostLoop(chunk_size=1))
    assert c["lower"] <= 3, c
    assert sol.value.shape == (4, 4) and sol.stats["num_steps"] == 3

    from invsolve.problems import poisson

    pde = poisson.coefficient_identification((8, 8), None, 0.01, key=jax.random.key(1))
    with pytest.raises(inv.ProblemSolverIncompatible, match=type(solver).__name__):
        inv.solve(pde, solver)


@pytest.mark.parametrize("make", [
    lambda: inv.solvers.CGLS(rtol=-1.0),
    lambda: inv.solvers.CGLS(atol=float("nan")),
    lambda: inv.solvers.CGLS(damp=-0.1),
    lambda: inv.solvers.CGLS(max_steps=2.5),
    lambda: inv.solvers.Landweber(step_size=0.0),
    lambda: inv.solvers.Landweber(step_size=-1.0),
    lambda: inv.solvers.Landweber(max_steps=-3),
    lambda: inv.solvers.Landweber(power_iterations=0),
    lambda: inv.solvers.ChambollePock(lam=-1.0),
    lambda: inv.solvers.ChambollePock(lam="big"),
    lambda: inv.solvers.ChambollePock(lam=0.1, rtol=float("inf")),
    lambda: inv.solvers.ChambollePock(lam=0.1, op_norm=0.0),
    lambda: inv.solvers.ChambollePock(lam=0.1, power_iterations=1.5),
])
def test_bad_hyperparameters_raise(make):
    with pytest.raises(ValueError):
        make()
