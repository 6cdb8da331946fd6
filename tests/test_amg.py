"""Smoothed-aggregation AMG: hierarchy against SciPy, solutions against spsolve, iteration
counts against pyamg's published behaviour, obstacles, jit/vmap/grad, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import invsolve as inv
from invsolve._problem import LinearSystem
from invsolve.linalg import AMG, PCG, SparseOperator, linear_solve
from invsolve.linalg.amg import _aggregate, _strength
from invsolve.problems import poisson


def obstacles(shape, seed=12345, k=4):
    """The DCDM benchmark's solids (random balls and boxes, walled-in fluid filled in)."""
    return np.asarray(poisson.smoke_obstacles(shape, jax.random.key(seed), n_obstacles=k))


def lap1d(n):
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])


def poisson_matrix(n, dim):
    """pyamg.gallery.poisson((n,) * dim): the 5-/7-point Dirichlet Laplacian (unscaled)."""
    eye, L = sp.eye(n), lap1d(n)
    if dim == 2:
        return sp.csr_matrix(sp.kron(eye, L) + sp.kron(L, eye))
    return sp.csr_matrix(sp.kron(sp.kron(eye, eye), L) + sp.kron(sp.kron(eye, L), eye) + sp.kron(sp.kron(L, eye), eye))


def solve_sparse(A, b, amg, rtol=1e-8):
    sol = inv.solve(LinearSystem(SparseOperator(A), jnp.asarray(b)), PCG(amg, rtol=rtol, max_steps=1000))
    return np.asarray(sol.value), int(sol.stats["num_steps"])


def ell_to_scipy(cols, vals, n_cols):
    cols, vals = np.asarray(cols), np.asarray(vals)
    n, w = cols.shape
    return sp.csr_matrix((vals.ravel(), (np.repeat(np.arange(n), w), cols.ravel())), shape=(n, n_cols))


def test_galerkin_coarse_operators_equal_scipy_rap_and_p_is_the_smoothed_aggregate():
    A = poisson.operator((32, 32), obstacles=obstacles((32, 32))).to_scipy()
    amg = AMG(max_coarse=20).setup(A)
    h = amg.hierarchy
    assert len(h.levels) >= 2 and h.sizes[-1] <= 20
    fine = A
    for i, lvl in enumerate(h.levels):
        P = ell_to_scipy(*lvl.P, h.sizes[i + 1])
        np.testing.assert_allclose(ell_to_scipy(*lvl.R, h.sizes[i]).toarray(), P.T.toarray(), atol=0)
        rap = (P.T @ fine @ P).toarray()
        coarse = ell_to_scipy(*h.levels[i + 1].A, h.sizes[i + 1]) if i + 1 < len(h.levels) else None
        if coarse is not None:
            np.testing.assert_allclose(coarse.toarray(), rap, rtol=1e-12, atol=1e-12 * abs(rap).max())
        else:
            np.testing.assert_allclose(np.asarray(h.coarse), np.linalg.pinv(rap, hermitian=True), rtol=1e-8,
                                       atol=1e-10 * abs(np.asarray(h.coarse)).max())
        if i == 0:  # P = (I - 4/(3 rho) D^-1 A) T with T the aggregates' indicator
            agg = _aggregate(_strength(fine, 0.0))
            rows = np.flatnonzero(agg >= 0)
            T = sp.csr_matrix((np.ones(rows.size), (rows, agg[rows])), shape=(fine.shape[0], agg.max() + 1))
            omega = 4.0 / 3.0 / float(lvl.rho)
            expected = T - omega * sp.diags(1 / fine.diagonal()) @ fine @ T
            np.testing.assert_allclose(P.toarray(), expected.toarray(), atol=1e-12)
            solid = np.asarray(obstacles((32, 32))).ravel()
            assert np.all(agg[solid] == -1)  # identity rows (solids) join no aggregate
            assert np.all(agg[~solid] >= 0)
        fine = sp.csr_matrix(rap)


@pytest.mark.parametrize("shape", [(48, 48), (16, 16, 16)])
def test_pcg_amg_equals_spsolve_with_obstacles(shape):
    m = obstacles(shape)
    A = poisson.operator(shape, obstacles=m)
    b = jnp.where(m, 0.0, jnp.asarray(np.random.default_rng(1).standard_normal(shape)))
    sol = inv.solve(poisson.linear_system(A, b), PCG(AMG(), rtol=1e-12))
    x = spla.spsolve(A.to_scipy().tocsc(), np.asarray(b).ravel())
    assert np.linalg.norm(np.asarray(sol.value).ravel() - x) <= 1e-8 * np.linalg.norm(x)


def test_obstacle_iteration_targets_at_256_squared():
    """Issue 24's target: <= 15 PCG iterations (rtol 1e-6) with the DCDM benchmark's obstacles
    at 256^2, where the geometric multigrid needs 146 and pyamg 8. Measured 11 (64^3: 9, below)."""
    m = obstacles((256, 256))
    A = poisson.operator((256, 256), obstacles=m)
    b = jnp.where(m, 0.0, jax.random.normal(jax.random.key(0), (256, 256), jnp.float64))
    sol = inv.solve(poisson.linear_system(A, b), PCG(AMG(), rtol=1e-6))
    assert sol.result == inv.RESULTS.successful
    assert sol.stats["num_steps"] <= 13


def test_obstacle_iteration_target_at_64_cubed():
    m = obstacles((64, 64, 64))
    A = poisson.operator((64, 64, 64), obstacles=m)
    b = jnp.where(m, 0.0, jax.random.normal(jax.random.key(0), (64,) * 3, jnp.float64))
    sol = inv.solve(poisson.linear_system(A, b), PCG(AMG(), rtol=1e-6))
    assert sol.result == inv.RESULTS.successful
    assert sol.stats["num_steps"] <= 11  # measured 9; geometric multigrid 59, pyamg 7


# pyamg 5.3's smoothed_aggregation_solver(A, strength=("symmetric", {"theta": theta})) with
# accel="cg", tol=1e-8, b ~ N(0, 1) seed 0, measured here (benchmarks/poisson.py prints both):
# PCG iterations 8 (2D Poisson 200^2), 8 (3D Poisson 40^3), 26 (anisotropic eps = 0.01, 150^2,
# theta = 0.25). The target: within 2x of pyamg's.
PYAMG_ITERATIONS = {"poisson-2d": 8, "poisson-3d": 8, "anisotropic": 26}


@pytest.mark.parametrize("name", sorted(PYAMG_ITERATIONS))
def test_iterations_within_twice_pyamg_on_its_gallery_matrices(name):
    if name == "poisson-2d":
        A, theta = poisson_matrix(200, 2), 0.0
    elif name == "poisson-3d":
        A, theta = poisson_matrix(40, 3), 0.0
    else:
        A, theta = sp.csr_matrix(0.01 * sp.kron(sp.eye(150), lap1d(150)) + sp.kron(lap1d(150), sp.eye(150))), 0.25
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    x, steps = solve_sparse(A, b, AMG(strength=theta))
    assert steps <= 2 * PYAMG_ITERATIONS[name]  # measured 14, 11, 25
    assert np.linalg.norm(A @ x - b) <= 1e-8 * np.linalg.norm(b)


def test_linear_solve_with_amg_is_differentiable_and_a_batch_of_fields_reuses_one_setup():
    shape = (24, 24)
    m = obstacles(shape, k=3)
    kappa0 = jnp.ones(shape)
    amg = AMG().setup(poisson.operator(shape, kappa0, obstacles=m))  # host set-up, once
    solver = PCG(amg, rtol=1e-12)
    b = jnp.where(m, 0.0, 1.0)

    @jax.jit
    def u_of(kappa):
        return linear_solve(poisson.operator(shape, kappa, obstacles=m), b, solver)

    kappas = jnp.stack([kappa0, 1.0 + 0.5 * jnp.asarray(np.random.default_rng(2).uniform(size=shape))])
    batch = jax.vmap(u_of)(kappas)
    for k, u in zip(kappas, batch):
        x = spla.spsolve(poisson.operator(shape, k, obstacles=m).to_scipy().tocsc(), np.asarray(b).ravel())
        np.testing.assert_allclose(np.asarray(u).ravel(), x, rtol=1e-9, atol=1e-12)

    def loss(kappa):
        return jnp.sum(u_of(kappa) ** 2)

    g = jax.grad(loss)(kappas[1])
    d = jnp.asarray(np.random.default_rng(3).standard_normal(shape))
    eps = 1e-6
    fd = (loss(kappas[1] + eps * d) - loss(kappas[1] - eps * d)) / (2 * eps)
    assert abs(float(jnp.vdot(g, d)) - float(fd)) <= 1e-6 * abs(float(fd))


def _hierarchy_matrices(h):
    """``(P, rho)`` per level and the coarsest operator, as SciPy/NumPy arrays."""
    Ps = [(ell_to_scipy(*lvl.P, h.sizes[i + 1]), float(lvl.rho)) for i, lvl in enumerate(h.levels)]
    return Ps, np.linalg.pinv(np.asarray(h.coarse), hermitian=True)


def _two_fields():
    """Two coefficient fields on one grid with obstacles (kappa = 1, and kappa spanning ~1e5),
    and an AMG set up on the first."""
    shape = (40, 40)
    m = obstacles(shape, k=3)
    A1 = poisson.operator(shape, jnp.ones(shape), obstacles=m)
    kappa2 = jnp.asarray(np.exp(3.0 * np.random.default_rng(0).standard_normal(shape)))  # spans ~1e5
    A2 = poisson.operator(shape, kappa2, obstacles=m)
    amg = AMG(max_coarse=20).setup(A1)
    return m, A1, A2, amg


def test_refresh_in_jax_equals_the_host_setup_and_builds_each_fields_galerkin_hierarchy():
    m, A1, A2, amg = _two_fields()
    assert len(amg.hierarchy.levels) == 2

    # the same operator: the JAX numeric set-up reproduces the host one
    (host, host_c), (jx, jx_c) = _hierarchy_matrices(amg.hierarchy), _hierarchy_matrices(amg.refresh(A1).hierarchy)
    for (P0, rho0), (P1, rho1) in zip(host, jx):
        assert abs(P0 - P1).max() <= 1e-14 and abs(rho0 - rho1) <= 1e-12 * rho0  # measured 7e-16, 4e-16
    np.testing.assert_allclose(jx_c, host_c, rtol=1e-10, atol=1e-10 * abs(host_c).max())
    plain = AMG(max_coarse=20, smooth=False).setup(A1)  # plain aggregation: P = T
    host_p, jx_p = (_hierarchy_matrices(a.hierarchy)[0] for a in (plain, plain.refresh(A1)))
    for (P0, _), (P1, _) in zip(host_p, jx_p):
        assert abs(P0 - P1).max() == 0
    assert jx_p[0][0].count_nonzero() == m.size - m.sum()  # a single 1 per fluid cell, nothing else

    # another field: P = (I - 4/(3 rho) D^-1 A2) T and A_c = P^T A2 P, assembled in SciPy
    h2 = amg.refresh(A2).hierarchy
    fine = A2.to_scipy()
    for i, (P, rho) in enumerate(_hierarchy_matrices(h2)[0]):
        if i == 0:  # A1 and A2 share their pattern, so their aggregates
            T = _tentative(fine)
            expected = T - 4.0 / 3.0 / rho * sp.diags(1 / fine.diagonal()) @ fine @ T
            assert abs(P - expected).max() <= 1e-12  # measured 1e-16
        rap = (P.T @ fine @ P).toarray()
        nxt = (ell_to_scipy(*h2.levels[i + 1].A, h2.sizes[i + 1]).toarray() if i + 1 < len(h2.levels)
               else _hierarchy_matrices(h2)[1])
        np.testing.assert_allclose(nxt, rap, rtol=0, atol=1e-10 * abs(rap).max())  # measured 3e-15
        fine = sp.csr_matrix(rap)


def test_a_refreshed_hierarchy_converges_like_a_fresh_setup_and_a_reused_one_does_not():
    m, A1, A2, amg = _two_fields()
    b = jnp.where(m, 0.0, 1.0)

    def steps(M):
        sol = inv.solve(poisson.linear_system(A2, b), PCG(M, rtol=1e-8, max_steps=150), throw=False)
        return int(sol.stats["num_steps"]), sol.result

    fresh, refreshed, stale = steps(AMG()), steps(amg), steps(AMG(max_coarse=20, refresh_numeric=False).setup(A1))
    assert fresh[1] == refreshed[1] == inv.RESULTS.successful
    assert refreshed[0] <= 1.3 * fresh[0]  # measured 31 against 28
    assert stale[1] != inv.RESULTS.successful  # measured: not converged after 150 steps (nor 16000)


def _tentative(A):
    agg = _aggregate(_strength(A, 0.0))
    rows = np.flatnonzero(agg >= 0)
    return sp.csr_matrix((np.ones(rows.size), (rows, agg[rows])), shape=(A.shape[0], agg.max() + 1))


def test_amg_without_obstacles_and_in_float32():
    A = poisson.operator((64, 64), kappa=jnp.ones((64, 64), jnp.float32))
    b = jnp.ones((64, 64), jnp.float32)
    sol = inv.solve(poisson.linear_system(A, b), PCG(AMG(), rtol=1e-5))
    assert sol.value.dtype == jnp.float32 and sol.stats["num_steps"] <= 12  # measured 8


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match=r"strength threshold must be in \[0, 1\)"):
        AMG(strength=1.0)
    with pytest.raises(ValueError, match=r"strength threshold must be in \[0, 1\)"):
        AMG(strength=-0.2)
    with pytest.raises(ValueError, match="degree"):
        AMG(degree=0)
    nonsym = sp.csr_matrix(poisson_matrix(8, 2) + sp.diags(np.ones(63), 1))
    with pytest.raises(ValueError, match="symmetric"):
        AMG().setup(nonsym)
    with pytest.raises(ValueError, match="symmetric"):
        AMG().setup(SparseOperator(nonsym))
    with pytest.raises(TypeError, match="sparse matrix"):
        AMG().setup(inv.MatrixOperator.from_array(np.eye(3), symmetric=True))
    A = poisson.operator((16, 16))
    with pytest.raises(ValueError, match="set up for 256 unknowns"):
        inv.solve(poisson.linear_system(poisson.operator((8, 8)), jnp.ones((8, 8))),
                  PCG(AMG(max_coarse=10).setup(A)))

    @jax.jit
    def traced(kappa):
        return linear_solve(poisson.operator((16, 16), kappa), jnp.ones((16, 16)), PCG(AMG()))

    with pytest.raises(ValueError, match=r"AMG\(\)\.setup\(A_example\)"):
        traced(jnp.ones((16, 16)))
    A8 = poisson_matrix(8, 2)
    amg = AMG(max_coarse=10).setup(SparseOperator(A8))
    with pytest.raises(ValueError, match="sparsity pattern differs"):
        amg.refresh(SparseOperator(A8 + sp.diags(np.ones(56), 8) + sp.diags(np.ones(56), -8)))
    with pytest.raises(ValueError, match="refresh_numeric=True"):
        AMG(max_coarse=10, refresh_numeric=False).setup(SparseOperator(A8)).refresh(SparseOperator(A8))
