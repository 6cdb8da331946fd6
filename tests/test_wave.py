"""Acoustic wave equation and FWI: against the analytic 2D/3D Green's functions, convergence
orders in space and time, the sponge's reflection, gradients against finite differences,
input errors, and a small full-waveform inversion."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sp

import invsolve as inv
from invsolve.problems import wave
from invsolve.problems.wave import _COEFFS, _laplacian


def green_2d(c, r, wav, dt, n_t):
    """u(r, t) of u_tt = c^2 laplace(u) + delta(x) w(t) in 2D: the Green's function
    H(t - r/c) / (2 pi c^2 sqrt(t^2 - r^2/c^2)) convolved with w, done in the frequency domain
    (numpy's e^{-i w t} convention: G(w) = conj(i/4 H0^(1)(w r / c)) / c^2), zero-padded 8x."""
    n = 8 * n_t
    S = np.fft.rfft(np.asarray(wav), n)
    w = 2 * np.pi * np.fft.rfftfreq(n, dt)
    G = np.zeros_like(S)
    G[1:] = np.conj(0.25j * sp.hankel1(0, w[1:] * r / c)) / c**2
    return np.fft.irfft(G * S, n)[:n_t]


def homogeneous_traces(h=10.0, c=2000.0, f=20.0, frac=0.25, order=8, offsets=(100.0, 200.0, 300.0), L=1000.0):
    n = int(round(L / h)) + 1
    dt = frac * wave.cfl_limit(c, h, order)
    n_t = int((max(offsets) / c + 3.0 / f) / dt) + 1
    wav = wave.ricker(f, dt, n_t)
    src = np.array([[L / 2, L / 2]])
    rec = np.array([[L / 2, L / 2 + o] for o in offsets])
    d = np.asarray(wave.simulate(jnp.full((n, n), c), src, rec, wav, spacing_m=h, dt=dt, order=order))[0]
    return d, wav, dt, n_t


def test_homogeneous_2d_matches_analytic_green_function():
    """10 points per wavelength at the peak frequency (20 Hz, c = 2000 m/s, h = 10 m), order 8,
    dt = CFL / 4: measured relative L2 errors 0.29 %, 0.57 %, 0.86 % at 1, 2, 3 wavelengths
    (the leapfrog's phase error dominates: 1.3-3.9 % at dt = CFL / 2, 0.12-0.32 % at CFL / 10)."""
    offsets = (100.0, 200.0, 300.0)
    d, wav, dt, n_t = homogeneous_traces(offsets=offsets)
    assert d.dtype == np.float64 and d.shape == (n_t, 3)
    errs = [np.linalg.norm(d[:, j] - green_2d(2000.0, o, wav, dt, n_t)) / np.linalg.norm(green_2d(2000.0, o, wav, dt, n_t))
            for j, o in enumerate(offsets)]
    assert max(errs) < 0.01, errs
    assert errs[0] < 0.004


def test_homogeneous_3d_matches_analytic_green_function():
    """3D: u = w(t - r/c) / (4 pi c^2 r); 10 points per wavelength at the peak frequency
    (10 Hz, h = 20 m), offset one wavelength, order 8, dt = CFL / 4: measured 0.23 %."""
    h, c, f, n = 20.0, 2000.0, 10.0, 41
    L = (n - 1) * h
    dt = 0.25 * wave.cfl_limit(c, h, 8, ndim=3)
    n_t = int((200.0 / c + 3.0 / f) / dt) + 1
    wav = wave.ricker(f, dt, n_t)
    src = np.array([[L / 2, L / 2, L / 2]])
    rec = np.array([[L / 2, L / 2, L / 2 + 200.0]])
    d = np.asarray(wave.simulate(jnp.full((n, n, n), c), src, rec, wav, spacing_m=h, dt=dt, sponge=10))[0, :, 0]
    t = np.arange(n_t) * dt
    exact = np.asarray(wave.ricker(f, dt, n_t, delay=1.5 / f + 200.0 / c)) / (4 * np.pi * c**2 * 200.0)
    err = np.linalg.norm(d - exact) / np.linalg.norm(exact)
    assert t[-1] > 0.35 and err < 0.01, err


@pytest.mark.parametrize("order", [4, 8])
def test_stencil_converges_at_its_order(order):
    """h^-2 * _laplacian of sin(k x) sin(k z) against -2 k^2 sin sin away from the walls:
    the error falls like h^order."""
    errs = []
    for n in (24, 48):
        h = 1.0 / n
        x = np.arange(3 * n) * h
        X, Z = np.meshgrid(x, x, indexing="ij")
        k = 2 * np.pi
        u = np.sin(k * X) * np.sin(k * Z)
        lap = np.asarray(_laplacian(jnp.asarray(u), _COEFFS[order], False)) / h**2
        inner = (slice(n, 2 * n), slice(n, 2 * n))
        errs.append(np.max(np.abs(lap[inner] + 2 * k**2 * u[inner])) / (2 * k**2))
    rate = np.log2(errs[0] / errs[1])
    assert abs(rate - order) < 0.3, (errs, rate)


def test_time_stepping_is_second_order():
    """Self-convergence at dt, dt/2, dt/4 (same grid, traces compared at common times):
    (u_dt - u_dt/2) / (u_dt/2 - u_dt/4) -> 2^2."""
    h, c, f, n = 10.0, 2000.0, 20.0, 61
    L = (n - 1) * h
    dt0 = 0.8 * wave.cfl_limit(c, h)
    T = 0.2
    src = np.array([[L / 2, L / 2]])
    rec = np.array([[L / 2, L / 2 + 150.0]])
    out = []
    for m in (1, 2, 4):
        dt = dt0 / m
        n_t = int(round(T / dt0)) * m + 1
        d = wave.simulate(jnp.full((n, n), c), src, rec, wave.ricker(f, dt, n_t), spacing_m=h, dt=dt)
        out.append(np.asarray(d)[0, ::m, 0])
    ratio = np.linalg.norm(out[0] - out[1]) / np.linalg.norm(out[1] - out[2])
    assert 3.5 < ratio < 4.5, ratio


def test_sponge_reflection_below_documented_level():
    """A 61 x 61 grid with the sponge against a 301 x 301 one without (its wall reflections
    arrive after the window): the largest spurious arrival at receivers 10 cells from the
    layer, relative to the direct wave's peak there. Measured: 1.6-2.3 % (20 cells),
    0.3 % (40 cells), 33 % for rigid walls."""
    h, c, f = 10.0, 2000.0, 20.0
    dt = 0.5 * wave.cfl_limit(c, h)
    n_t = int(0.6 / dt)
    wav = wave.ricker(f, dt, n_t)

    def traces(n, sponge):
        L = (n - 1) * h
        src = np.array([[L / 2, L / 2]])
        rec = np.array([[L / 2, L / 2 + 200.0], [L / 2 - 200.0, L / 2 + 200.0]])
        return np.asarray(wave.simulate(jnp.full((n, n), c), src, rec, wav, spacing_m=h, dt=dt, sponge=sponge))[0]

    big = traces(301, 0)

    def reflection(sponge):
        small = traces(61, sponge)
        return max(np.abs(small[:, j] - big[:, j]).max() / np.abs(big[:, j]).max() for j in range(2))

    assert reflection(20) < 0.03
    assert reflection(40) < 0.005
    assert reflection(0) > 0.2


def _small_setup(free_surface=False, adjoint="hand"):
    h, f = 10.0, 15.0
    v = wave.smoothed(wave.layered_salt((30, 40), h), 30.0, h)
    dt = 0.5 * wave.cfl_limit(4600.0, h)
    wav = wave.ricker(f, dt, 120)
    src = jnp.array([[20.0, 105.0], [20.0, 290.0]])
    rec = jnp.stack([jnp.full(20, 15.0), jnp.linspace(0, 390, 20)], -1)
    sim = lambda v: wave.simulate(v, src, rec, wav, spacing_m=h, dt=dt, free_surface=free_surface, adjoint=adjoint)
    return v, sim


@pytest.mark.parametrize("free_surface", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_gradient_matches_finite_differences_and_adjoint_is_consistent(free_surface):
    """Measured: |FD - grad| / |grad| ~ 1e-4 (central differences, step 0.1 m/s x a random
    direction of 10 m/s); <J dv, dd> = <dv, J^T dd> to ~1e-15 (J dv by forward-mode
    autodiff, J^T dd by the hand adjoint)."""
    v, sim = _small_setup(free_surface)
    sim = jax.jit(sim)
    sim_autodiff = _small_setup(free_surface, adjoint="autodiff")[1]
    d_obs = sim(v * 1.02)
    J = jax.jit(lambda v: 0.5 * jnp.sum((sim(v) - d_obs) ** 2))
    dv = 10.0 * jax.random.normal(jax.random.key(1), v.shape)
    eps = 1e-2
    fd = (J(v + eps * dv) - J(v - eps * dv)) / (2 * eps)
    an = jnp.vdot(jax.grad(J)(v), dv)
    assert abs(fd - an) <= 1e-4 * abs(an), (fd, an)
    dd = jax.random.normal(jax.random.key(2), d_obs.shape)
    _, jv = jax.jvp(sim_autodiff, (v,), (dv,))
    _, pullback = jax.vjp(sim, v)
    lhs, rhs = jnp.vdot(jv, dd), jnp.vdot(dv, pullback(dd)[0])
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_free_surface_is_zero_at_the_surface_and_shots_vmap():
    v, _ = _small_setup(free_surface=True)
    h = 10.0
    dt = 0.5 * wave.cfl_limit(4600.0, h)
    wav = wave.ricker(15.0, dt, 150)
    src = jnp.array([[20.0, 105.0], [20.0, 290.0]])
    rec = jnp.array([[0.0, 100.0], [30.0, 100.0]])
    d = wave.simulate(v, src, rec, wav, spacing_m=h, dt=dt, free_surface=True)
    assert float(jnp.max(jnp.abs(d[:, :, 0]))) == 0.0 and float(jnp.max(jnp.abs(d[:, :, 1]))) > 0
    one = wave.simulate(v, src[1:], rec, wav, spacing_m=h, dt=dt, free_surface=True)
    np.testing.assert_allclose(np.asarray(one[0]), np.asarray(d[1]), rtol=0, atol=1e-15)
    batched = jax.vmap(lambda s: wave.simulate(v, s[None], rec, wav, spacing_m=h, dt=dt, free_surface=True)[0])(src)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(d), rtol=0, atol=1e-15)


def test_velocity_models():
    v = wave.layered_salt((50, 100), 10.0)
    assert v.shape == (50, 100) and v.dtype == jnp.float64
    assert float(v.min()) == 1500.0 and float(v.max()) == 4500.0 and 0.02 < float(jnp.mean(v == 4500.0)) < 0.3
    lay = wave.layered((50, 100), 10.0)
    assert np.all(np.diff(np.asarray(lay), axis=0) >= 0) and float(lay[0, 0]) == 1500.0
    flt = wave.faulted((50, 100), 10.0)
    assert not np.allclose(np.asarray(flt[:, 10]), np.asarray(flt[:, 90]))
    s = wave.smoothed(v, 50.0, 10.0)
    rough = lambda a: float(jnp.sum(jnp.diff(a, axis=0) ** 2) + jnp.sum(jnp.diff(a, axis=1) ** 2))
    assert rough(s) < 0.1 * rough(v) and float(s.min()) >= 1500.0 - 1e-9 and float(s.max()) <= 4500.0 + 1e-9
    assert wave.layered((8, 10, 12), 10.0).shape == (8, 10, 12)


def test_bad_inputs_fail_with_one_line_messages():
    h, c = 10.0, 2000.0
    v = jnp.full((30, 30), c)
    lim = wave.cfl_limit(c, h, 8)
    wav = wave.ricker(15.0, 0.5 * lim, 50)
    src, rec = np.array([[100.0, 100.0]]), np.array([[50.0, 200.0]])
    ok = {"spacing_m": h, "dt": 0.5 * lim}
    with pytest.raises(ValueError, match=r"exceeds the CFL limit .* order-8") as e:
        wave.simulate(v, src, rec, wav, spacing_m=h, dt=1.1 * lim)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="order-4"):
        wave.simulate(v, src, rec, wav, spacing_m=h, dt=1.1 * wave.cfl_limit(c, h, 4), order=4)
    with pytest.raises(ValueError, match="source position .* outside the grid"):
        wave.simulate(v, np.array([[100.0, 300.0]]), rec, wav, **ok)
    with pytest.raises(ValueError, match="receiver position .* outside the grid"):
        wave.simulate(v, src, np.array([[-1.0, 100.0]]), wav, **ok)
    with pytest.raises(ValueError, match="positive and finite everywhere; its minimum is -2000"):
        wave.simulate(v.at[3, 3].set(-c), src, rec, wav, **ok)
    with pytest.raises(ValueError, match="order .* must be one of"):
        wave.simulate(v, src, rec, wav, order=6, **ok)
    with pytest.warns(UserWarning, match=r"only 3.33 grid points per wavelength"):
        wave.simulate(v, src, rec, wave.ricker(60.0, 0.5 * lim, 50), **ok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wave.simulate(v, src, rec, wav, **ok)  # 13 points per wavelength: no warning
    with pytest.raises(ValueError, match="outside bounds"):
        wave.fwi(wave.layered_salt((20, 30), 10.0), n_shots=2, key=jax.random.key(0), bounds=(1400.0, 4000.0))


def test_fwi_problem_structure():
    vt = wave.layered_salt((20, 40), 25.0)
    prob = wave.fwi(vt, n_shots=2, freq_hz=5.0, noise=0.01, spacing_m=25.0, key=jax.random.key(0), t_max=0.4)
    theta0 = prob.init_params()
    v0 = prob.constrain(theta0)
    assert isinstance(prob, inv.problems.HasForward)
    assert prob.y_obs.shape == prob.forward(theta0).shape == (2, prob.wavelet.shape[0], 40)
    np.testing.assert_allclose(np.asarray(v0), np.asarray(prob.v_init), rtol=1e-10)
    assert float(prob.constrain(jnp.full((20, 40), 50.0)).max()) <= prob.v_max
    assert float(prob.constrain(jnp.full((20, 40), -50.0)).min()) >= prob.v_min
    assert 0.05 < float(prob.metrics(v0)["rel_l2"]) < 0.5
    assert np.isfinite(float(prob.normalized_chi2(theta0)))


@pytest.mark.slow
def test_fwi_reduces_velocity_error_on_a_small_grid():
    """40 x 80 grid (25 m), 4 shots at 6 Hz, 20 L-BFGS steps with TV(1e-3): measured
    rel. error of v 0.210 (smoothed start) -> 0.175, ~80 s on one core."""
    prob = wave.fwi(wave.layered_salt(shape=(40, 80), spacing_m=25.0), spacing_m=25.0, n_shots=4, freq_hz=6.0,
                    noise=0.01, init="smoothed", key=jax.random.key(0))
    start = float(prob.metrics(prob.constrain(prob.init_params()))["rel_l2"])
    sol = inv.solve(prob, inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.TV(1e-3), max_steps=20))
    end = float(prob.metrics(sol.value)["rel_l2"])
    assert end < 0.9 * start, (start, end)
    assert float(sol.value.min()) >= prob.v_min and float(sol.value.max()) <= prob.v_max


# --------------------------------------------------------------------------------------
# the hand-written adjoint (simulate's reverse mode) against autodiff and finite differences
# --------------------------------------------------------------------------------------
def _tiny_setup(ndim, order, free_surface):
    """A random 2D (12 x 14) or 3D (8 x 9 x 10) model, 3 sponge cells, 37 steps in blocks of
    5 (the last block padded), 2 shots, 3 receivers (one on the free surface), off-node
    positions, and a random linear functional of the traces."""
    h = 10.0
    shape = (12, 14) if ndim == 2 else (8, 9, 10)
    v = jnp.asarray(2000.0 + 300.0 * np.random.default_rng(0).random(shape))
    dt = 0.5 * wave.cfl_limit(2400.0, h, order, ndim)
    wav = wave.ricker(25.0, dt, 37)
    mid = [(n - 1) * h / 2 for n in shape[1:]]
    src = jnp.array([[13.0, *mid], [27.0, *[m + 12.3 for m in mid]]])
    rec = jnp.array([[5.0, *[m - 31.0 for m in mid]], [0.0, *mid], [66.0, *[m + 7.0 for m in mid]]])
    kw = {"spacing_m": h, "dt": dt, "order": order, "sponge": 3, "free_surface": free_surface, "block": 5}
    d = jax.random.normal(jax.random.key(0), (2, 37, 3))
    J = lambda v, src, rec, wav, adjoint="hand": jnp.sum(d * wave.simulate(v, src, rec, wav, adjoint=adjoint, **kw))
    return (v, src, rec, wav), J, kw


FAST_ADJOINT = {(2, 8, True), (3, 4, False)}  # the fast tier's cases; the slow tier runs the other ten


@pytest.mark.parametrize("ndim,order,free_surface", [
    pytest.param(d, o, f, marks=[] if (d, o, f) in FAST_ADJOINT else [pytest.mark.slow])
    for d in (2, 3) for o in (2, 4, 8) for f in (False, True)])
def test_hand_adjoint_equals_autodiff_and_finite_differences(ndim, order, free_surface):
    """The hand adjoint is the exact discrete adjoint: its gradients w.r.t. the velocity, the
    source and receiver positions and the wavelet equal JAX autodiff's (through the
    checkpointed scan) to round-off (measured <= 2e-15 relative), and the velocity gradient
    matches central differences (measured ~1e-9: the differences' own error)."""
    args, J, _ = _tiny_setup(ndim, order, free_surface)
    grad = jax.jit(jax.grad(J, argnums=(0, 1, 2, 3)), static_argnums=4)
    hand, auto = grad(*args, "hand"), grad(*args, "autodiff")
    for name, a, b in zip(("v", "src", "rec", "wavelet"), hand, auto):
        assert float(jnp.linalg.norm(a - b)) <= 1e-10 * float(jnp.linalg.norm(b)), name
    v = args[0]
    dv = 10.0 * jax.random.normal(jax.random.key(1), v.shape)
    Jv = jax.jit(lambda v: J(v, *args[1:]))
    eps = 1e-3
    fd = (Jv(v + eps * dv) - Jv(v - eps * dv)) / (2 * eps)
    an = jnp.vdot(hand[0], dv)
    assert abs(float(fd - an)) <= 1e-6 * abs(float(an)), (fd, an)


def test_hand_adjoint_under_jit_and_vmap():
    """vmap over shots of the per-shot gradient sums to the batched gradient; the same under jit."""
    (v, src, rec, wav), _, kw = _tiny_setup(2, 8, True)
    d = jax.random.normal(jax.random.key(3), (2, 37, 3))
    one = lambda v, s, dd: jnp.sum(dd * wave.simulate(v, s[None], rec, wav, **kw)[0])
    per_shot = jax.jit(jax.vmap(jax.grad(one), in_axes=(None, 0, 0)))(v, src, d)
    total = jax.grad(lambda v: jnp.sum(d * wave.simulate(v, src, rec, wav, **kw)))(v)
    auto = jax.grad(lambda v: jnp.sum(d * wave.simulate(v, src, rec, wav, adjoint="autodiff", **kw)))(v)
    assert per_shot.shape == (2,) + v.shape
    np.testing.assert_allclose(np.asarray(per_shot.sum(0)), np.asarray(total), rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.asarray(total), np.asarray(auto), rtol=1e-10, atol=0)
    vals, grads = jax.jit(jax.vmap(jax.value_and_grad(lambda v: jnp.sum(wave.simulate(v, src, rec, wav, **kw) ** 2))))(
        jnp.stack([v, 1.01 * v]))
    assert vals.shape == (2,) and grads.shape == (2,) + v.shape and bool(jnp.all(jnp.isfinite(grads)))


def test_forward_mode_needs_the_autodiff_adjoint():
    """The hand adjoint is reverse mode only (a custom_vjp): jvp raises, adjoint="autodiff"
    gives forward mode, and its tangents are the hand adjoint's transpose."""
    (v, src, rec, wav), _, kw = _tiny_setup(2, 4, False)
    dv = jax.random.normal(jax.random.key(1), v.shape)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda v: wave.simulate(v, src, rec, wav, **kw), (v,), (dv,))
    _, jv = jax.jvp(lambda v: wave.simulate(v, src, rec, wav, adjoint="autodiff", **kw), (v,), (dv,))
    dd = jax.random.normal(jax.random.key(2), jv.shape)
    _, pullback = jax.vjp(lambda v: wave.simulate(v, src, rec, wav, **kw), v)
    lhs, rhs = jnp.vdot(jv, dd), jnp.vdot(dv, pullback(dd)[0])
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    with pytest.raises(ValueError, match="adjoint must be one of"):
        wave.simulate(v, src, rec, wav, adjoint="manual", **kw)


def test_jacobian_products_of_the_hand_adjoint_match_forward_mode():
    """`invsolve._linop.linearize` on an FWI problem (hand adjoint: no forward mode) gives J by
    transposing the VJP; it equals the forward-mode J of the autodiff path to round-off
    (measured 1e-15), and J^T passes the dot-product test. This is what lets the diffusion
    samplers and DiffusionMBIR take FWI problems."""
    import dataclasses

    from invsolve._linop import linearize

    with jax.enable_x64(True):
        p = wave.fwi(wave.layered((10, 12), 25.0, (1500.0, 2000.0)), 2, 10.0, 0.01, key=jax.random.key(0),
                     spacing_m=25.0, sponge=3, t_max=0.08)
        assert not p.has_forward_mode and dataclasses.replace(p, adjoint="autodiff").has_forward_mode
        x = p.init_params() + 0.1 * jax.random.normal(jax.random.key(1), p.init_params().shape)
        v = jax.random.normal(jax.random.key(2), x.shape)
        y, J, JT = linearize(p.forward, x)
        w = jax.random.normal(jax.random.key(3), y.shape)
        jv_ref = jax.jvp(dataclasses.replace(p, adjoint="autodiff").forward, (x,), (v,))[1]
        assert float(jnp.linalg.norm(J(v) - jv_ref) / jnp.linalg.norm(jv_ref)) < 1e-10
        lhs, rhs = float(jnp.vdot(J(v), w)), float(jnp.vdot(v, JT(w)))
        assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_multiscale_band_filters_data_and_wavelet_alike():
    """`experiments.seismic.band`: the low-passed data are, up to the noise, the data of the
    low-passed wavelet (the wave equation is linear and time-invariant in its source, and the
    filter is causal); measured relative difference 1e-6 (the data's 1e-6 noise)."""
    from invsolve.experiments import seismic

    p = wave.fwi(wave.layered_salt((30, 60), 25.0), 2, 6.0, 1e-6, key=jax.random.key(0), spacing_m=25.0)
    b = seismic.band(p, 3.0)
    clean = wave.simulate(p.x_true, p.src, p.rec, b.wavelet, spacing_m=25.0, dt=p.dt)
    rel = float(jnp.linalg.norm(b.y_obs - clean) / jnp.linalg.norm(clean))
    assert rel < 1e-4, rel
    spec = jnp.abs(jnp.fft.rfft(b.wavelet, 4096))
    f = jnp.fft.rfftfreq(4096, p.dt)
    assert float(f[jnp.argmax(spec)]) < 3.5  # the peak moved from 6 Hz below the 3 Hz cut-off's edge
