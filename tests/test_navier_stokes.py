"""2D periodic Navier-Stokes (vorticity form, pseudo-spectral, CN + Heun): an analytic
solution, the energy and enstrophy budgets, temporal and spatial convergence, gradients
against finite differences, the inverse problems, and the input errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.problems import navier_stokes as ns


def grid(n):
    x = jnp.arange(n) * (2 * math.pi / n)
    return jnp.meshgrid(x, x, indexing="ij")


def smooth_field(n):
    """A few low Fourier modes (band-limited, zero mean)."""
    X, Y = grid(n)
    return 3 * jnp.sin(X) * jnp.cos(2 * Y) + 2 * jnp.cos(3 * X + Y) - 1.5 * jnp.sin(2 * X - 2 * Y) + jnp.cos(Y)


def band_limited(w):
    """``w`` without the modes the 2/3 rule drops (|k| >= n/3 on either axis, Nyquist included)."""
    n1, n2 = w.shape
    kx = np.fft.fftfreq(n1, 1 / n1)[:, None]
    ky = np.fft.fftfreq(n2, 1 / n2)[None, :]
    keep = (np.abs(kx) < n1 / 3) & (np.abs(ky) < n2 / 3)
    return jnp.asarray(np.fft.ifft2(np.fft.fft2(np.asarray(w)) * keep).real)


def spectral_grad(w):
    """(w_x, w_y) by NumPy FFT, independent of the module."""
    n1, n2 = w.shape
    kx = np.fft.fftfreq(n1, 1 / n1)[:, None]
    ky = np.fft.fftfreq(n2, 1 / n2)[None, :]
    wh = np.fft.fft2(np.asarray(w))
    return np.fft.ifft2(1j * kx * wh).real, np.fft.ifft2(1j * ky * wh).real


# ----------------------------------------------------------------------------------------
# forward accuracy
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2])
def test_taylor_green_decays_exactly(k):
    # w = 2 k cos(kx) cos(ky) is a steady solution of the Euler equations (u . grad w = 0),
    # so it decays as exp(-2 nu k^2 t); the only error is Crank-Nicolson's (t/dt)(2 nu k^2 dt)^3/12.
    nu, t, dt = 0.05, 1.0, 0.01
    X, Y = grid(32)
    w0 = 2 * k * jnp.cos(k * X) * jnp.cos(k * Y)
    w = ns.simulate(w0, t, nu=nu, dt=dt)
    exact = w0 * math.exp(-2 * nu * k * k * t)
    err = float(jnp.linalg.norm(w - exact) / jnp.linalg.norm(exact))
    assert w.dtype == jnp.float64
    assert err <= 1e-6, err  # measured 8.3e-9 (k=1), 5.3e-7 (k=2): the CN formula above
    # the velocity is the Taylor-Green one: u = -cos(kx) sin(ky), v = sin(kx) cos(ky)
    u, v = ns.velocity(w0)
    np.testing.assert_allclose(u, -jnp.cos(k * X) * jnp.sin(k * Y), atol=1e-12)
    np.testing.assert_allclose(v, jnp.sin(k * X) * jnp.cos(k * Y), atol=1e-12)


def test_energy_and_enstrophy_budgets():
    # Unforced: dE/dt = -2 nu Z and dZ/dt = -nu P (P = mean |grad w|^2), because the
    # de-aliased nonlinear term conserves both. Central differences of the saved E(t), Z(t).
    # The start is band-limited to the 2/3 band (a Nyquist mode has no discrete derivative).
    nu, t, n_save, dt = 0.02, 0.4, 40, 0.001
    w0 = band_limited(ns.random_vorticity(jax.random.key(3), (32, 32)))
    ws = ns.simulate(w0, t, nu=nu, dt=dt, saveat=n_save)
    delta = t / n_save
    E, Z = np.asarray(ns.energy(ws)), np.asarray(ns.enstrophy(ws))
    P = np.array([np.mean(sum(g * g for g in spectral_grad(w))) for w in ws[2:-2]])
    d4 = lambda F: (-F[4:] + 8 * F[3:-1] - 8 * F[1:-3] + F[:-4]) / (12 * delta)  # noqa: E731  4th-order central
    dE, dZ = d4(E), d4(Z)
    err_E = np.max(np.abs(dE + 2 * nu * Z[2:-2])) / np.max(np.abs(dE))
    err_Z = np.max(np.abs(dZ + nu * P)) / np.max(np.abs(dZ))
    # measured 9.8e-7 and 7.5e-6 (dt 0.002: 7.8e-6, 5.9e-5 -- the O(dt^2) error of the scheme;
    # a random start with modes outside the 2/3 band: 3e-5, 2e-3, from the Nyquist modes)
    assert err_E < 3e-6 and err_Z < 3e-5, (err_E, err_Z)
    assert E[-1] < E[0] and Z[-1] < Z[0]
    # inviscid: energy and enstrophy conserved up to the time-stepping error
    wi = ns.simulate(w0, 0.2, nu=0.0, dt=0.001)
    assert abs(float(ns.energy(wi) / ns.energy(w0)) - 1) < 1e-6
    assert abs(float(ns.enstrophy(wi) / ns.enstrophy(w0)) - 1) < 1e-5


def test_second_order_in_time():
    w0 = ns.random_vorticity(jax.random.key(1), (32, 32))
    f = ns.kolmogorov((32, 32))
    run = lambda dt: ns.simulate(w0, 0.4, nu=1 / 200, dt=dt, forcing=f)  # noqa: E731
    ref = run(0.4 / 1920)
    errs = [float(jnp.linalg.norm(run(0.4 / n) - ref) / jnp.linalg.norm(ref)) for n in (60, 120, 240)]
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    # measured 1.48e-2, 3.38e-3, 8.27e-4: orders 2.13, 2.03 (CN + Heun is second order)
    assert all(1.9 < p < 2.2 for p in orders), (errs, orders)


@pytest.mark.slow  # 4-8 s: the fast tier keeps the cheaper checks of this module
def test_spectral_accuracy_in_space():
    # A band-limited start at nu = 0.05: the error against a 64^2 run (same dt, so the
    # time-stepping errors cancel) falls faster than any power of n.
    w = {n: ns.simulate(smooth_field(n), 0.5, nu=0.05, dt=0.004, forcing=ns.kolmogorov((n, n), k=2))
         for n in (12, 16, 24, 32, 64)}
    ref = w[64]
    err = {}
    for n in (12, 16, 24, 32):
        # compare the Fourier coefficients of the modes |k| < 4 (resolved by every grid)
        a = np.fft.fft2(np.asarray(w[n])) / n**2
        b = np.fft.fft2(np.asarray(ref)) / 64**2
        idx = np.r_[0:4, -3:0]
        err[n] = np.max(np.abs(a[np.ix_(idx, idx)] - b[np.ix_(idx, idx)]))
    # measured: 6.7e-2, 2.1e-3, 3.7e-5, 2.1e-7 -- effective algebraic orders 12, 10, 18
    orders = [math.log(err[a] / err[b]) / math.log(b / a) for a, b in ((12, 16), (16, 24), (24, 32))]
    assert err[32] < 1e-6 and min(orders) > 8, (err, orders)


def test_grad_matches_central_differences_and_vmap():
    w0 = ns.random_vorticity(jax.random.key(4), (16, 16))
    f = ns.kolmogorov((16, 16), k=2)
    g = jax.random.normal(jax.random.key(5), (16, 16))
    v = jax.random.normal(jax.random.key(6), (16, 16))

    def loss(w, log_nu, amp):
        return jnp.sum(g * jnp.tanh(ns.simulate(w, 0.3, nu=jnp.exp(log_nu), dt=0.01, forcing=amp * f)))

    args = (w0, jnp.log(0.02), 1.5)
    gw, gnu, ga = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)
    eps = 1e-4
    fd_w = (loss(w0 + eps * v, *args[1:]) - loss(w0 - eps * v, *args[1:])) / (2 * eps)
    fd_nu = (loss(w0, args[1] + eps, 1.5) - loss(w0, args[1] - eps, 1.5)) / (2 * eps)
    fd_a = (loss(w0, args[1], 1.5 + eps) - loss(w0, args[1], 1.5 - eps)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(gw, v), fd_w, rtol=1e-7)
    np.testing.assert_allclose(gnu, fd_nu, rtol=1e-7)
    np.testing.assert_allclose(ga, fd_a, rtol=1e-7)
    # vmap over initial states equals the loop
    batch = jnp.stack([w0, 0.5 * w0 + v])
    out = jax.vmap(lambda w: ns.simulate(w, 0.3, nu=0.02, dt=0.01, forcing=f))(batch)
    np.testing.assert_allclose(out[1], ns.simulate(batch[1], 0.3, nu=0.02, dt=0.01, forcing=f), rtol=0, atol=1e-12)


def test_random_vorticity_statistics():
    ws = jax.vmap(ns.random_vorticity)(jax.random.split(jax.random.key(0), 64))
    assert ws.shape == (64, 64, 64) and ws.dtype == jnp.float64
    assert abs(float(jnp.std(ws)) / 5.0 - 1) < 0.15
    np.testing.assert_allclose(jnp.mean(ws, axis=(1, 2)), 0, atol=1e-10)  # vorticity has zero mean
    f = ns.kolmogorov((16, 16))
    np.testing.assert_allclose(f[3], -4 * np.cos(4 * np.arange(16) * 2 * np.pi / 16), atol=1e-12)


# ----------------------------------------------------------------------------------------
# inverse problems
# ----------------------------------------------------------------------------------------
def test_initial_condition_problem_structure():
    p = ns.initial_condition(shape=(16, 16), re=200.0, t_obs=0.5, downsample=2, noise=0.01, key=jax.random.key(0))
    assert p.init_params().shape == (16, 16) and p.y_obs.shape == (8, 8) and p.x_true.shape == (16, 16)
    assert isinstance(p, inv.problems.HasForward)
    r = (p.forward(p.x_true) - p.y_obs) / p.noise.sigma
    assert 0.5 < float(jnp.mean(r * r)) < 1.6  # the data are the truth plus the stated noise
    sub = ns.initial_condition(shape=(16, 16), re=200.0, t_obs=0.5, downsample=4, noise=0.01, key=jax.random.key(0),
                               pool="subsample")
    w = ns.simulate(sub.x_true, 0.5, nu=1 / 200, dt=sub.dt, forcing=ns.kolmogorov((16, 16)))
    np.testing.assert_allclose(sub.forward(sub.x_true), w[::4, ::4], atol=1e-12)


@pytest.mark.slow  # 4-8 s: the fast tier keeps the cheaper checks of this module
def test_gradient_map_recovers_initial_vorticity():
    # 32^2 unknowns from 16^2 block means at t = 0.2 (~33 steps); a smoothness prior (the
    # truth is a smooth random field) fills in what the pooling hides.
    p = ns.initial_condition(shape=(32, 32), re=200.0, t_obs=0.2, downsample=2, noise=0.01, key=jax.random.key(2))
    upsampled = jnp.repeat(jnp.repeat(p.y_obs, 2, 0), 2, 1)
    sol = inv.solve(p, inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(0.01, order=1), max_steps=25))
    err = float(p.metrics(sol.value)["rel_l2"])
    print("MAP rel_l2:", err)
    # measured 0.108 (upsampled data 0.19, zeros 1.0); ~3-10 s
    assert err < 0.2 and err < float(p.metrics(upsampled)["rel_l2"]), err


@pytest.mark.slow  # 4-8 s: the fast tier keeps the cheaper checks of this module
def test_eki_example_runs_on_a_small_grid():
    shape = (16, 16)
    p = ns.initial_condition(shape=shape, re=200.0, t_obs=0.5, downsample=2, noise=0.01, key=jax.random.key(0))
    sol = inv.solve(p, inv.solvers.EKI(n_ensemble=256, prior_samples=functools.partial(ns.random_vorticity,
                                                                                        shape=shape)),
                    key=jax.random.key(1))
    err = float(p.metrics(sol.value)["rel_l2"])
    print("EKI rel_l2:", err, "chi2:", float(p.normalized_chi2(sol.value)))
    assert np.isfinite(err) and err < 2 * MEASURED_EKI, err


MEASURED_EKI = 0.21  # rel_l2 of the ensemble mean, 16^2, t_obs 0.5 (chi2 0.47); ~6 s


@pytest.mark.slow  # 4-8 s: the fast tier keeps the cheaper checks of this module
def test_parameters_recovered_by_gradient_map():
    # Laplace standard deviations at the truth (t_obs 0.5, noise 0.1 %): log nu 0.013, log A 0.0007
    p = ns.parameters(shape=(16, 16), re=200.0, amplitude=4.0, t_obs=0.5, noise=0.001, key=jax.random.key(0))
    sol = inv.solve(p, inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(1e-4), max_steps=30))
    nu, amp = np.asarray(sol.value)
    print("MAP nu * re, A / 4:", nu * 200, amp / 4)
    assert abs(math.log(nu * 200)) < 0.05 and abs(math.log(amp / 4)) < 0.003, (nu, amp)


@pytest.mark.slow  # 34 s
def test_parameters_posterior_by_nuts():
    # 16^2, t_obs 0.5, 1 % noise: Laplace std of log nu 0.126, of log A 0.0072
    p = ns.parameters(shape=(16, 16), re=200.0, amplitude=4.0, t_obs=0.5, noise=0.01, key=jax.random.key(0))
    sol = inv.solve(p, inv.solvers.NUTS(n_samples=150, n_warmup=100, prior=inv.priors.Tikhonov(0.01)),
                    key=jax.random.key(1))
    logs = np.log(np.asarray(sol.samples))
    mean, std = logs.mean(0), logs.std(0)
    truth = np.log([1 / 200, 4.0])
    print("NUTS mean, std of (log nu, log A):", mean, std)
    assert np.all(np.abs(mean - truth) < 3.5 * std), (mean, std)
    assert 0.05 < std[0] < 0.3 and 0.003 < std[1] < 0.015, std


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------
def test_dt_above_cfl_limit_states_it():
    w0 = ns.random_vorticity(jax.random.key(0), (16, 16))
    limit = float(ns.cfl_limit(w0))
    with pytest.raises(ValueError, match=f"exceeds the CFL limit {limit:.4g}"):
        ns.simulate(w0, 1.0, nu=0.01, dt=1.5 * limit)
    with pytest.raises(ValueError, match="CFL limit"):
        ns.initial_condition(shape=(16, 16), t_obs=0.5, key=jax.random.key(0), dt=1.5 * limit)


@pytest.mark.parametrize("call, match", [
    (lambda w: ns.simulate(w, 1.0, nu=-0.01, dt=0.01), "nu must be >= 0"),
    (lambda w: ns.simulate(w, 0.0, nu=0.01, dt=0.01), "t must be > 0"),
    (lambda w: ns.simulate(w, 1.0, nu=0.01, dt=0.0), "dt must be > 0"),
    (lambda w: ns.simulate(w[:, :15], 1.0, nu=0.01, dt=0.01), "2 even integers"),
    (lambda w: ns.simulate(w, 1.0, nu=0.01, dt=0.01, forcing=jnp.zeros((8, 8))), "forcing has shape"),
    (lambda w: ns.initial_condition(shape=(16, 16), re=0.0, key=jax.random.key(0)), "re must be > 0"),
    (lambda w: ns.initial_condition(shape=(16, 16), re=-5.0, key=jax.random.key(0)), "re must be > 0"),
    (lambda w: ns.initial_condition(shape=(15, 16), key=jax.random.key(0)), "2 even integers"),
    (lambda w: ns.initial_condition(shape=(16, 16), t_obs=0.0, key=jax.random.key(0)), "t_obs must be > 0"),
    (lambda w: ns.initial_condition(shape=(16, 16), t_obs=math.inf, key=jax.random.key(0)), "t_obs must be one finite"),
    (lambda w: ns.initial_condition(shape=(16, 16), downsample=3, key=jax.random.key(0)), "does not divide"),
    (lambda w: ns.initial_condition(shape=(16, 16), noise=0.0, key=jax.random.key(0)), "noise must be > 0"),
    (lambda w: ns.initial_condition(shape=(16, 16), pool="max", key=jax.random.key(0)), "pool must be"),
    (lambda w: ns.parameters(shape=(16, 16), amplitude=-1.0, key=jax.random.key(0)), "amplitude must be > 0"),
    (lambda w: ns.kolmogorov((16, 16), k=6), "k must be a positive integer"),
])
def test_bad_inputs_fail_clearly(call, match):
    w = ns.random_vorticity(jax.random.key(0), (16, 16))
    with pytest.raises(ValueError, match=match):
        call(w)


def test_colour_is_the_linear_map_behind_random_vorticity():
    """``random_vorticity(key) == colour(normal(key))`` exactly; ``colour`` is linear, and the
    field it makes has the requested marginal standard deviation (measured 4.96 over 64 draws
    of 32^2; bound 5 %)."""
    key = jax.random.key(3)
    white = jax.random.normal(key, (32, 32))
    np.testing.assert_array_equal(ns.colour(white), ns.random_vorticity(key, (32, 32)))
    other = jax.random.normal(jax.random.key(4), (32, 32))
    np.testing.assert_allclose(ns.colour(2 * white - other), 2 * ns.colour(white) - ns.colour(other), atol=1e-5)
    draws = jax.vmap(lambda k: ns.colour(jax.random.normal(k, (32, 32))))(jax.random.split(key, 64))
    assert abs(float(jnp.std(draws)) - 5.0) < 0.25
    with pytest.raises(ValueError, match="colour: shape must be 2 even integers"):
        ns.colour(jnp.zeros((7, 8)))
