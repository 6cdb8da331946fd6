"""The Poisson operator against an independently assembled scipy matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invsolve.problems import poisson
from helpers import assemble_poisson, dot_product_test

CASES = [
    # shape, bc, obstacles?, lengths
    ((12, 9), "dirichlet", False, 1.0),
    ((12, 9), "neumann", False, (2.0, 1.5)),
    ((10, 8), ("dirichlet", "neumann", "neumann", "dirichlet"), True, 1.0),
    ((6, 5, 7), "dirichlet", True, 1.0),
    ((6, 5, 4), ("neumann", "neumann", "dirichlet", "neumann", "neumann", "neumann"), False, (1.0, 2.0, 3.0)),
]


def _case(shape, bc, with_obstacles, seed=0):
    rng = np.random.default_rng(seed)
    kappa = np.exp(rng.normal(size=shape))  # variable, strongly varying
    solid = None
    if with_obstacles:
        solid = np.zeros(shape, bool)
        solid[tuple(slice(n // 3, n // 3 + 2) for n in shape)] = True
    return kappa, solid


@pytest.mark.parametrize("shape,bc,obst,lengths", CASES)
def test_operator_matches_assembled_matrix(shape, bc, obst, lengths):
    kappa, solid = _case(shape, bc, obst)
    A = poisson.operator(shape, kappa=kappa, bc=bc, obstacles=solid, lengths=lengths)
    sides = (bc,) * (2 * len(shape)) if isinstance(bc, str) else bc
    M = assemble_poisson(shape, kappa, sides, solid, lengths)
    u = np.random.default_rng(1).normal(size=shape)
    np.testing.assert_allclose(np.asarray(A.mv(jnp.asarray(u))).ravel(), M @ u.ravel(), rtol=1e-12,
                               atol=1e-12 * abs(M).max())
    np.testing.assert_allclose(A.to_scipy().toarray(), M.toarray(), rtol=1e-12, atol=1e-12 * abs(M).max())
    np.testing.assert_allclose(np.asarray(A.diagonal()).ravel(), M.diagonal(), rtol=1e-12)
    assert dot_product_test(A, jax.random.key(2)) < 1e-13


@pytest.mark.parametrize("shape,bc,obst,lengths", CASES)
def test_symmetric_and_definiteness(shape, bc, obst, lengths):
    kappa, solid = _case(shape, bc, obst)
    A = poisson.operator(shape, kappa=kappa, bc=bc, obstacles=solid, lengths=lengths)
    D = np.asarray(A.as_matrix())
    np.testing.assert_allclose(D, D.T, rtol=0, atol=1e-12 * abs(D).max())
    eig = np.linalg.eigvalsh(D)
    if A.positive_definite:
        assert eig.min() > 1e-8 * eig.max()
    else:  # pure Neumann: one zero eigenvalue (constants), the rest positive
        assert abs(eig[0]) < 1e-9 * eig.max() and eig[1] > 1e-8 * eig.max()


def test_constant_kappa_is_the_five_point_laplacian():
    n = 8
    A = poisson.operator((n, n), kappa=1.0, bc="dirichlet")
    h2 = (1.0 / n) ** 2
    D = np.asarray(A.as_matrix()) * h2
    i = np.ravel_multi_index((3, 4), (n, n))
    assert D[i, i] == pytest.approx(4.0)
    assert D[i, np.ravel_multi_index((2, 4), (n, n))] == pytest.approx(-1.0)
    corner = np.ravel_multi_index((0, 0), (n, n))
    assert D[corner, corner] == pytest.approx(2 + 2 * 2.0)  # two interior faces + two walls at h/2


def test_second_order_accuracy_on_manufactured_solution():
    """u = sin(pi x) sin(pi y), kappa = 1 + x y: error falls by ~4x per refinement."""
    errs = []
    for n in (16, 32, 64):
        x = (jnp.arange(n) + 0.5) / n
        X, Y = jnp.meshgrid(x, x, indexing="ij")
        u = jnp.sin(jnp.pi * X) * jnp.sin(jnp.pi * Y)
        k = 1 + X * Y
        # -div(k grad u) = k * 2 pi^2 u - (grad k . grad u)
        f = k * 2 * jnp.pi**2 * u - (Y * jnp.pi * jnp.cos(jnp.pi * X) * jnp.sin(jnp.pi * Y)
                                     + X * jnp.pi * jnp.sin(jnp.pi * X) * jnp.cos(jnp.pi * Y))
        A = poisson.operator((n, n), kappa=k)
        import scipy.sparse.linalg as spla

        uh = spla.spsolve(A.to_scipy().tocsc(), np.asarray(f).ravel()).reshape(n, n)
        errs.append(np.abs(uh - np.asarray(u)).max())
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.8), rates


def test_coarsen_halves_grid_and_stays_consistent():
    kappa, solid = _case((16, 12), "dirichlet", True)
    A = poisson.operator((16, 12), kappa=kappa, obstacles=solid)
    C = A.coarsen()
    assert C.shape == (8, 6)
    D = np.asarray(C.as_matrix())
    np.testing.assert_allclose(D, D.T, atol=1e-12 * abs(D).max())
    # constant kappa: re-discretisation on the coarse grid equals the direct coarse operator
    A1 = poisson.operator((16, 12), kappa=2.5, bc=("dirichlet", "neumann", "dirichlet", "dirichlet"))
    np.testing.assert_allclose(
        np.asarray(A1.coarsen().as_matrix()),
        np.asarray(poisson.operator((8, 6), kappa=2.5, bc=A1.bc).as_matrix()), rtol=1e-12,
    )
