"""Implicit differentiation of linear solves: gradients and memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import invsolve as inv
from invsolve.problems import poisson
from helpers import check_grad

SHAPE = (16, 12)


def _loss_kappa(z, b, solver=None):
    A = poisson.operator(SHAPE, kappa=jnp.exp(z), bc=("dirichlet", "neumann", "dirichlet", "dirichlet"))
    u = inv.linalg.linear_solve(A, b, solver)
    return jnp.sum(jnp.sin(u) * jnp.arange(u.size).reshape(u.shape) / u.size)


@pytest.mark.slow  # 15 s on a quiet 2-core machine, cold cache
def test_grad_wrt_coefficient_matches_finite_differences():
    """Central differences need the inner solve exact to ~1e-13 (its error is divided by the
    step 1e-6), so the reference runs CG to rtol 1e-13; the default inner solve (CG at 1e-10
    on this small grid) and multigrid-preconditioned CG give the same gradient to 1e-7."""
    z = 0.3 * jax.random.normal(jax.random.key(0), SHAPE)
    b = jax.random.normal(jax.random.key(1), SHAPE)
    tight = inv.solvers.CG(rtol=1e-13)
    check_grad(lambda z: _loss_kappa(z, b, tight), z, jax.random.key(2), rtol=1.5e-8)  # measured 4.9e-9
    g_ref = jax.grad(_loss_kappa)(z, b, tight)
    for solver in (None, inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-10)):
        # measured 2.4e-8 (default) and 2.8e-9 (multigrid), element-wise
        np.testing.assert_allclose(jax.grad(_loss_kappa)(z, b, solver), g_ref, rtol=5e-8, atol=1e-12)


def test_grad_wrt_rhs_and_solution_accuracy():
    z = 0.3 * jax.random.normal(jax.random.key(0), SHAPE)
    b = jax.random.normal(jax.random.key(1), SHAPE)
    check_grad(lambda b: _loss_kappa(z, b), b, jax.random.key(3), rtol=1e-6)  # measured 4.7e-7
    A = poisson.operator(SHAPE, kappa=jnp.exp(z))
    x = inv.linalg.linear_solve(A, b)
    ref = np.linalg.solve(np.asarray(A.as_matrix()), np.asarray(b).ravel()).reshape(SHAPE)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1.5e-12)  # measured max |x - ref| 6.6e-13, |ref| <= 0.01


def test_memory_does_not_grow_with_iterations():
    """Reverse-mode through a 100+ iteration CG stores no iterates: the compiled gradient's
    temporary memory is a few vectors, and equal for 1e-3 and 1e-12 tolerances."""
    shape = (64, 64)
    b = jnp.ones(shape)
    z = jnp.zeros(shape)
    n_bytes = b.size * 8

    def temp_bytes(rtol):
        solver = inv.solvers.CG(rtol=rtol)
        f = jax.jit(jax.grad(lambda z: _loss_kappa_shape(z, b, shape, solver)))
        return f.lower(z).compile().memory_analysis().temp_size_in_bytes

    steps = inv.solve(poisson.linear_system(poisson.operator(shape), b), inv.solvers.CG(rtol=1e-12)).stats["num_steps"]
    assert steps > 100
    tight, loose = temp_bytes(1e-12), temp_bytes(1e-3)
    assert tight == loose
    # measured 16.3 n_bytes; storing the iterates would need > steps * n_bytes
    assert tight < 24 * n_bytes, (tight / n_bytes, n_bytes)


def _loss_kappa_shape(z, b, shape, solver):
    A = poisson.operator(shape, kappa=jnp.exp(z))
    return jnp.sum(inv.linalg.linear_solve(A, b, solver) ** 2)
