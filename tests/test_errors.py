"""Bad input gets a clear error naming what was wrong and what was expected."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.problems import poisson


@pytest.fixture(scope="module")
def prob():
    return poisson.source_identification(shape=(16, 16), n_sensors=20, noise=0.01, key=jax.random.key(0))


def test_kappa_shape_and_rank():
    with pytest.raises(ValueError, match=r"kappa has shape \(4, 4\), expected .*\(8, 8\)"):
        poisson.operator((8, 8), kappa=np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"kappa has shape \(8, 8, 1\)"):
        poisson.operator((8, 8), kappa=np.ones((8, 8, 1)))


def test_grid_shape():
    with pytest.raises(ValueError, match="2 or 3 positive integers"):
        poisson.operator((8,))
    with pytest.raises(ValueError, match="2 or 3 positive integers"):
        poisson.operator((8, 0))


def test_non_positive_or_nonfinite_kappa():
    k = np.ones((8, 8))
    k[2, 3] = -1.0
    with pytest.raises(ValueError, match="kappa must be strictly positive.*-1"):
        poisson.operator((8, 8), kappa=k)
    with pytest.raises(ValueError, match="kappa must be strictly positive"):
        poisson.operator((8, 8), kappa=0.0)
    k[2, 3] = np.nan
    with pytest.raises(ValueError, match="kappa contains NaN"):
        poisson.operator((8, 8), kappa=k)


def test_unknown_boundary_type():
    with pytest.raises(ValueError, match=r"unknown boundary type 'periodic'; expected one of \('dirichlet', 'neumann'\)"):
        poisson.operator((8, 8), bc="periodic")
    with pytest.raises(ValueError, match="sequence of 4"):
        poisson.operator((8, 8), bc=("dirichlet", "neumann"))


def test_rhs_and_source_shapes():
    A = poisson.operator((8, 8))
    with pytest.raises(ValueError, match=r"b has shape \(64,\), expected .*\(8, 8\)"):
        poisson.linear_system(A, jnp.ones(64))
    with pytest.raises(ValueError, match=r"source has shape \(8, 9\)"):
        poisson.source_identification((8, 8), 10, 0.01, key=jax.random.key(0), source=np.ones((8, 9)))
    with pytest.raises(ValueError, match="obstacles has shape"):
        poisson.operator((8, 8), obstacles=np.zeros((8, 4), bool))


def test_observations_shape_and_finiteness(prob):
    with pytest.raises(ValueError, match=r"y_obs has shape \(19,\), expected \(20,\)"):
        prob.with_observations(jnp.ones(19))
    bad = prob.y_obs.at[3].set(jnp.nan)
    with pytest.raises(ValueError, match="y_obs contains NaN or infinite values"):
        prob.with_observations(bad)


def test_sensors_and_noise_arguments():
    with pytest.raises(ValueError, match="n_sensors must be an integer between 1 and the number of fluid cells"):
        poisson.source_identification((8, 8), 100, 0.01, key=jax.random.key(0))
    with pytest.raises(ValueError, match="noise must be a positive relative noise level"):
        poisson.source_identification((8, 8), 10, -0.1, key=jax.random.key(0))


def test_capability_mismatch_names_both_sides(prob):
    with pytest.raises(inv.ProblemSolverIncompatible, match="CG needs a problem with HasLinearOperator, but PoissonInverse has only HasForward"):
        inv.solve(prob, inv.solvers.CG())


@pytest.mark.parametrize("make", [
    lambda: inv.solvers.CG(rtol=-1e-6),
    lambda: inv.solvers.CG(atol=float("nan")),
    lambda: inv.solvers.PCG(max_steps=-3),
    lambda: inv.solvers.CG(max_steps=2.5),
    lambda: inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=-1),
    lambda: inv.solvers.GradientMAP(optax.adam(1e-2), gtol=-1.0),
    lambda: inv.priors.Tikhonov(-1.0),
    lambda: inv.priors.TV(1.0, eps=-1.0),
])
def test_negative_tolerances_and_step_counts(make):
    with pytest.raises(ValueError, match="must be a non-negative"):
        make()


def test_solve_arguments(prob):
    with pytest.raises(ValueError, match="max_steps must be a non-negative integer"):
        inv.solve(prob, inv.solvers.GradientMAP(optax.adam(1e-2)), max_steps=-1)
    with pytest.raises(TypeError, match="optax GradientTransformation"):
        inv.solvers.GradientMAP("adam")
    with pytest.raises(TypeError, match="problem must be an invsolve problem"):
        inv.solve(np.ones(3), inv.solvers.CG())
    with pytest.raises(ValueError, match="Tikhonov order must be 0, 1 or 2"):
        inv.priors.Tikhonov(1.0, order=3)
