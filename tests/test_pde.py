"""Periodic PINN benchmarks (Allen-Cahn, advection, KdV): the spectral references converge
(step halving, more modes), agree with an independent finite-difference + BDF solution, keep
the invariants they must, and the residuals / conditions are the stated equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from invsolve.problems import pde

jax.config.update("jax_enable_x64", True)


def solve_with(problem, n_modes=None, dt=None):
    """The spectral reference of ``problem`` with a given number of modes / step."""
    return pde.reference(problem, n_modes=n_modes, dt=dt)


@pytest.mark.parametrize("make", [pde.allen_cahn_1d, pde.kdv_1d])
def test_reference_converged_in_time(make):
    p = make()
    u = pde.reference(p)
    assert u.shape == (p.nt_eval, p.nx_eval) and u.dtype == np.float64 and np.all(np.isfinite(u))
    assert pde.reference(make()) is u  # cached: a second problem does not recompute
    half = solve_with(p, dt=p._dt / 2)
    diff = np.max(np.abs(half - u))
    assert diff < 1e-8, diff


def test_kdv_reference_converged_in_space_and_conserves_mass():
    p = pde.kdv_1d()
    u = pde.reference(p)
    assert np.max(np.abs(solve_with(p, n_modes=2 * p._n_modes) - u)) < 1e-10
    mean = u.mean(axis=1)  # exact for the trigonometric interpolant on the periodic grid
    assert np.max(np.abs(mean - mean[0])) < 1e-10
    assert abs(mean[0]) < 1e-12  # the mean of cos(pi x)
    assert 2.0 < u[-1].max() < 3.0  # solitons taller than the initial cosine


def test_allen_cahn_range_and_final_profile():
    p = pde.allen_cahn_1d()
    u = pde.reference(p)
    x, _ = p.grid()
    np.testing.assert_allclose(u[0], x**2 * np.cos(np.pi * x), rtol=0, atol=1e-15)
    assert np.max(np.abs(u)) <= 1.0 + 1e-9  # maximum principle: |u0| <= 1
    final = u[-1]
    assert final.min() < -0.999 and final.max() > 0.99  # the stable states -1 and +1
    assert np.mean(np.abs(final) > 0.95) > 0.7  # mostly in a phase, thin interfaces between


def _fd6_laplacian(n, h):
    w = [-49 / 18, 3 / 2, -3 / 20, 1 / 90]  # sixth-order central second difference
    offsets, values = [0], [w[0]]
    for j in range(1, 4):
        for o in (j, -j, n - j, -(n - j)):  # periodic wrap in the corners
            offsets.append(o)
            values.append(w[j])
    return sp.diags(values, offsets, shape=(n, n), format="csc") / h**2


def _allen_cahn_fd_bdf(n, eps, a, t):
    """Method of lines: sixth-order finite differences on ``n`` points, scipy BDF (rtol 1e-10)."""
    h = 2.0 / n
    x = -1.0 + h * np.arange(n)
    lap = _fd6_laplacian(n, h)
    rhs = lambda _, u: eps * (lap @ u) + a * u - a * u**3
    jac = lambda _, u: (eps * lap + sp.diags(a - 3 * a * u**2)).tocsc()
    sol = solve_ivp(rhs, (0.0, t[-1]), x**2 * np.cos(np.pi * x), method="BDF", jac=jac, rtol=1e-10, atol=1e-12,
                    t_eval=t)
    assert sol.success
    return sol.y.T


def test_allen_cahn_matches_finite_differences_and_bdf():
    p = pde.allen_cahn_1d()
    ref = pde.reference(p)
    _, t = p.grid()
    errs, us = [], []
    for n in (4096, 8192):
        u = _allen_cahn_fd_bdf(n, p.eps, p.a, t)[:, :: n // p.nx_eval]
        us.append(u)
        errs.append(np.max(np.abs(u - ref)))
    # the corner of u0 at x = +-1 (u0' jumps) makes finite differences second order early on
    assert errs[1] < 1e-5 and 3.0 < errs[0] / errs[1] < 5.0, errs
    richardson = (4 * us[1] - us[0]) / 3
    assert np.max(np.abs(richardson - ref)) < 1e-6
    assert np.max(np.abs(us[1][-1] - ref[-1])) < 1e-8  # the corner's error has diffused away by t = 1


def test_advection_reference_is_exact():
    p = pde.advection_1d()
    x, t = p.grid()
    assert x.shape == (256,) and t.shape == (201,) and x[0] == 0.0 and x[-1] < 2 * np.pi and t[-1] == 1.0
    np.testing.assert_array_equal(pde.reference(p), np.sin(x[None, :] - 80.0 * t[:, None]))
    assert p.x_true.dtype == jnp.float64 and p.x_true.shape == (201, 256)


def test_advection_exact_residual_conditions_and_metrics():
    p = pde.advection_1d()
    u = lambda xt: jnp.sin(xt[:, :1] - p.c * xt[:, 1:])
    xt = p.collocation(500, jax.random.key(1))
    r = p.residual(u, {}, xt)
    assert r.shape == (500,) and float(jnp.max(jnp.abs(r))) < 1e-11
    cond = p.conditions(u, {})
    assert cond["ic"].shape == (p.n_ic,) and cond["bc"].shape == (p.n_bc,)
    assert float(jnp.max(jnp.abs(cond["ic"]))) < 1e-13 and float(jnp.max(jnp.abs(cond["bc"]))) < 1e-12
    value = p.evaluate(u, {})
    assert value["u"].shape == (p.nt_eval, p.nx_eval)
    assert float(p.metrics(value)["rel_l2"]) < 1e-12
    assert float(p.metrics({"u": 0.5 * value["u"]})["rel_l2"]) == pytest.approx(0.5)
    np.testing.assert_allclose(p.lower, [0.0, 0.0])
    np.testing.assert_allclose(p.upper, [2 * np.pi, 1.0])
    assert p.y_obs is None and p.n_out == 1 and p.time_axis == 1 and p.periodic_axes == (0,)


def _manufactured(xt):
    return jnp.sin(jnp.pi * xt[:, :1]) * jnp.cos(xt[:, 1:])


def test_allen_cahn_residual_of_manufactured_field():
    p = pde.allen_cahn_1d(eps=3e-3, a=2.0)
    xt = p.collocation(300, jax.random.key(2))
    x, t = xt[:, 0], xt[:, 1]
    v = jnp.sin(jnp.pi * x) * jnp.cos(t)
    u_t = -jnp.sin(jnp.pi * x) * jnp.sin(t)
    u_xx = -jnp.pi**2 * v
    expected = u_t - 3e-3 * u_xx + 2.0 * v**3 - 2.0 * v
    np.testing.assert_allclose(p.residual(_manufactured, {}, xt), expected, rtol=0, atol=1e-12)


def test_kdv_residual_of_manufactured_field():
    p = pde.kdv_1d(eta=1.5, mu=0.05)
    xt = p.collocation(300, jax.random.key(3))
    x, t = xt[:, 0], xt[:, 1]
    v = jnp.sin(jnp.pi * x) * jnp.cos(t)
    u_t = -jnp.sin(jnp.pi * x) * jnp.sin(t)
    u_x = jnp.pi * jnp.cos(jnp.pi * x) * jnp.cos(t)
    u_xxx = -jnp.pi**3 * jnp.cos(jnp.pi * x) * jnp.cos(t)
    expected = u_t + 1.5 * v * u_x + 0.05**2 * u_xxx
    np.testing.assert_allclose(p.residual(_manufactured, {}, xt), expected, rtol=0, atol=1e-11)


def test_conditions_measure_initial_and_periodic_mismatch():
    p = pde.kdv_1d(n_ic=64, n_bc=32)
    u = lambda xt: jnp.cos(jnp.pi * xt[:, :1]) + 0.1 * xt[:, :1] * xt[:, 1:]  # right u0, not periodic for t > 0
    cond = p.conditions(u, {})
    assert float(jnp.max(jnp.abs(cond["ic"]))) < 1e-14
    t = jnp.linspace(0.0, 1.0, 32)
    np.testing.assert_allclose(cond["bc"], -0.2 * t, atol=1e-14)


@pytest.mark.parametrize("call, match", [
    (lambda: pde.allen_cahn_1d(eps=0.0), "allen_cahn_1d: eps must be positive"),
    (lambda: pde.allen_cahn_1d(eps=float("nan")), "eps must be finite"),
    (lambda: pde.allen_cahn_1d(a="x"), "a must be a real number"),
    (lambda: pde.kdv_1d(mu=-0.1), "kdv_1d: mu must be positive"),
    (lambda: pde.kdv_1d(nx_eval=0), "nx_eval must be an integer >= 2"),
    (lambda: pde.kdv_1d(nt_eval=1), "nt_eval must be an integer >= 2"),
    (lambda: pde.advection_1d(nx_eval=2.5), "nx_eval must be an integer"),
    (lambda: pde.advection_1d(n_ic=0), "n_ic must be an integer >= 1"),
    (lambda: pde.advection_1d(t_end=0.0), "t_end must be positive"),
    (lambda: pde.advection_1d(c=float("inf")), "c must be finite"),
    (lambda: pde.AllenCahn1D(eps=-1.0), "AllenCahn1D: eps must be positive"),
    (lambda: pde.KdV1D(t_end=-1.0), "KdV1D: t_end must be positive"),
    (lambda: pde.reference(pde.kdv_1d(), dt=0.0), "reference: dt must be positive"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
