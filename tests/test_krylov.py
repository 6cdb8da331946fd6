"""CG / PCG (Jacobi, multigrid) against scipy on the same systems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg as spla

import invsolve as inv
from invsolve.problems import poisson


def _system(shape, bc="dirichlet", obstacles=False, seed=0):
    rng = np.random.default_rng(seed)
    kappa = np.exp(0.5 * rng.normal(size=shape))
    solid = None
    if obstacles:
        solid = np.zeros(shape, bool)
        solid[tuple(slice(n // 4, n // 2) for n in shape)] = True
    A = poisson.operator(shape, kappa=kappa, bc=bc, obstacles=solid)
    b = rng.normal(size=shape)
    if solid is not None:
        b[solid] = 0.0
    return A, jnp.asarray(b)


SOLVERS = {
    "cg": inv.solvers.CG(rtol=1e-11),
    "pcg-jacobi": inv.solvers.PCG(rtol=1e-11),
    "pcg-multigrid": inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-11),
    "pcg-amg": inv.solvers.PCG(inv.solvers.AMG(max_coarse=64), rtol=1e-11),
}


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("shape,obstacles", [((32, 24), False), ((16, 16, 8), True)])
def test_matches_spsolve(name, shape, obstacles):
    A, b = _system(shape, obstacles=obstacles)
    sol = inv.solve(poisson.linear_system(A, b), SOLVERS[name])
    ref = spla.spsolve(A.to_scipy().tocsc(), np.asarray(b).ravel()).reshape(shape)
    assert sol.result == inv.RESULTS.successful
    assert np.linalg.norm(sol.value - ref) / np.linalg.norm(ref) < 4e-11  # measured 2.3e-12 .. 1.6e-11
    h = sol.history["residual"]
    assert h.shape == (sol.stats["num_steps"],) and h[-1] <= 1e-11


def test_multigrid_needs_few_iterations_and_is_symmetric():
    A, b = _system((64, 64), bc=("dirichlet", "neumann", "dirichlet", "neumann"))
    mg = inv.solve(poisson.linear_system(A, b), SOLVERS["pcg-multigrid"])
    cg = inv.solve(poisson.linear_system(A, b), SOLVERS["cg"])
    assert mg.stats["num_steps"] <= 20 < cg.stats["num_steps"] / 5  # measured 14 and 441
    # the V-cycle is a symmetric positive definite operator (required by PCG)
    M = inv.solvers.Multigrid().build(poisson.operator((16, 16), kappa=np.exp(np.random.default_rng(3).normal(size=(16, 16)))))
    x, y = jax.random.normal(jax.random.key(0), (2, 16, 16))
    assert abs(jnp.vdot(M(x), y) - jnp.vdot(x, M(y))) < 1e-12 * abs(jnp.vdot(M(x), y))
    assert jnp.vdot(M(x), x) > 0


def test_cg_iteration_count_matches_scipy():
    A, b = _system((48, 40))
    counts = []
    spla.cg(A.to_scipy(), np.asarray(b).ravel(), rtol=1e-8, maxiter=10_000,
            callback=lambda xk: counts.append(1))
    sol = inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-8))
    assert abs(sol.stats["num_steps"] - len(counts)) <= 2, (sol.stats["num_steps"], len(counts))


def test_neumann_consistent_system():
    """Pure Neumann is singular; CG still converges on a mean-zero right-hand side."""
    A, b = _system((24, 24), bc="neumann")
    b = b - b.mean()
    sol = inv.solve(poisson.linear_system(A, b), inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-10))
    assert np.linalg.norm(A.mv(sol.value) - b) <= 8e-11 * np.linalg.norm(b)  # measured 3.5e-11


def test_device_loop_matches_host_loop_and_vmaps():
    A, b = _system((24, 20))
    host = inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-9))
    dev = jax.jit(lambda b: inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-9),
                                      driver=inv.DeviceLoop()))(b)
    n = int(dev.stats["num_steps"])
    assert n == host.stats["num_steps"]
    np.testing.assert_allclose(dev.value, host.value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dev.history["residual"][:n], host.history["residual"], rtol=1e-10)
    assert np.all(np.isnan(dev.history["residual"][n:]))
    bs = jnp.stack([b, 2 * b, -b])
    xs = jax.vmap(lambda b: inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-9)).value)(bs)
    np.testing.assert_allclose(xs[1], 2 * host.value, rtol=1e-8)


def test_max_steps_reached_raises_or_reports():
    A, b = _system((32, 32))
    problem = poisson.linear_system(A, b)
    with pytest.raises(inv.SolveError, match="max_steps"):
        inv.solve(problem, inv.solvers.CG(rtol=1e-12, max_steps=5))
    sol = inv.solve(problem, inv.solvers.CG(rtol=1e-12), max_steps=5, throw=False)
    assert sol.result == inv.RESULTS.max_steps_reached and sol.stats["num_steps"] == 5


class _Indefinite(inv.AbstractLinearOperator):
    d: jax.Array

    def mv(self, x):
        return self.d * x

    def transpose(self):
        return self

    in_shape = property(lambda self: self.d.shape)
    out_shape = property(lambda self: self.d.shape)
    dtype = property(lambda self: self.d.dtype)
    symmetric = property(lambda self: True)
    positive_definite = property(lambda self: True)  # a lie that CG must detect


def test_breakdown_on_indefinite_operator():
    d = jnp.array([1.0, -2.0, 3.0, -4.0])
    sol = inv.solve(inv.LinearSystem(_Indefinite(d), jnp.ones(4)), inv.solvers.CG(), throw=False)
    assert sol.result == inv.RESULTS.breakdown and sol.stats["num_steps"] == 1  # b^T A b = -2
    d = jnp.array([1.0, -1.0])  # p^T A p = 0 for b = (1, 1): division by zero, still "breakdown"
    sol = inv.solve(inv.LinearSystem(_Indefinite(d), jnp.ones(2)), inv.solvers.CG(), throw=False)
    assert sol.result == inv.RESULTS.breakdown
    with pytest.raises(inv.SolveError, match="positive definite"):
        inv.solve(inv.LinearSystem(_Indefinite(d), jnp.ones(2)), inv.solvers.CG())
