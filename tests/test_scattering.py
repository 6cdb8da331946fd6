"""Inverse scattering: the Born operator against a dense matrix built with scipy's hankel1,
its adjoint, the Green's function, TV reconstructions, the Lippmann-Schwinger model against a
dense solve, and input errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dot_product_test
from scipy.integrate import quad
from scipy.special import hankel1

import invsolve as inv
from invsolve.problems import phantoms
from invsolve.problems import scattering as S


def _psnr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return 10 * np.log10((b.max() - b.min()) ** 2 / np.mean((a - b) ** 2))


def _complex_data(y):
    y = np.asarray(y)
    return y[0] + 1j * y[1]


# --------------------------------------------------------------------------------------
# Born operator
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("incident", S.INCIDENT)
def test_dot_product_adjoint(incident):
    op = S.BornOperator.build(S.geometry(24, 5, 30, incident=incident), jnp.float64)
    assert op.in_shape == (24, 24) and op.out_shape == (2, 5, 30)
    assert dot_product_test(op, jax.random.key(1)) < 1e-12  # measured ~1e-16


def test_adjoint_batches_and_matches_jax_transpose():
    op = S.BornOperator.build(S.geometry(12, 3, 10), jnp.float64)
    r = jax.random.normal(jax.random.key(0), (2, *op.out_shape))
    (ref,) = jax.linear_transpose(op.mv, jnp.zeros(op.in_shape))(r[1])
    got = op.T.mv(r)
    assert got.shape == (2, 12, 12)
    np.testing.assert_allclose(got[1], ref, rtol=1e-12, atol=1e-12 * float(jnp.abs(ref).max()))
    x = jax.random.normal(jax.random.key(1), (3, 12, 12))
    np.testing.assert_allclose(op.mv(x)[2], op.mv(x[2]), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("incident", S.INCIDENT)
def test_born_matches_dense_hankel_matrix(incident):
    """Every entry from explicit positions and scipy's hankel1 (n = 16, 3 x 7 sensors)."""
    n, n_tx, n_rx = 16, 3, 7
    geo = S.geometry(n, n_tx, n_rx, side=0.1, radius=0.5, incident=incident)
    k0, h = geo.wavenumber, 0.1 / n
    c = (np.arange(n) - n // 2) * h
    X, Y = np.meshgrid(c, c)  # X[row, col] = c[col], Y[row, col] = c[row]
    ang_t, ang_r = 2 * np.pi * np.arange(n_tx) / n_tx, 2 * np.pi * np.arange(n_rx) / n_rx
    M = np.zeros((n_tx, n_rx, n * n), complex)
    for t, a in enumerate(ang_t):
        tx, ty = 0.5 * np.cos(a), 0.5 * np.sin(a)
        if incident == "point":
            u = 0.25j * hankel1(0, k0 * np.hypot(X - tx, Y - ty))
        else:
            u = np.exp(1j * k0 * (-np.cos(a) * X - np.sin(a) * Y))
        for m, b in enumerate(ang_r):
            g = 0.25j * hankel1(0, k0 * np.hypot(X - 0.5 * np.cos(b), Y - 0.5 * np.sin(b)))
            M[t, m] = (k0**2 * h**2 * g * u).ravel()
    ref = np.concatenate([M.real.reshape(-1, n * n), M.imag.reshape(-1, n * n)])
    A = np.asarray(S.BornOperator.build(geo, jnp.float64).as_matrix())
    assert np.abs(A - ref).max() < 1e-10 * np.abs(ref).max()  # measured ~5e-14


def test_green_function_solves_helmholtz_away_from_the_source():
    k0 = 40.0
    d = 1e-3 / k0
    rng = np.random.default_rng(0)
    for _ in range(5):
        px, py = rng.uniform(0.05, 0.3, 2) * rng.choice([-1, 1], 2)

        def G(dx, dy, px=px, py=py):
            return S.green(np.hypot(px + dx, py + dy), k0)

        lap = (G(d, 0) + G(-d, 0) + G(0, d) + G(0, -d) - 4 * G(0, 0)) / d**2
        assert abs(lap + k0**2 * G(0, 0)) < 1e-4 * k0**2 * abs(G(0, 0))  # O(d^2) truncation + rounding
    r = np.array([0.01, 0.3, 2.0, 40.0])
    np.testing.assert_allclose(S.green(r, 3.0), 0.25j * hankel1(0, 3.0 * r), rtol=1e-13)


def test_self_term_is_the_disk_average():
    """Richmond's closed form against quadrature of the (log-singular) Green's function."""
    k0, h = 50.0, 0.01
    a = h / np.sqrt(np.pi)
    re = quad(lambda r: (0.25j * hankel1(0, k0 * r)).real * 2 * np.pi * r, 0, a, limit=200)[0]
    im = quad(lambda r: (0.25j * hankel1(0, k0 * r)).imag * 2 * np.pi * r, 0, a, limit=200)[0]
    np.testing.assert_allclose(S.self_term(k0, h), k0**2 * (re + 1j * im), rtol=1e-6)  # measured 7.5e-8 (quad's)


def test_born_reciprocity():
    """With point sources and the same circle for both, swapping transmitter and receiver
    leaves the data unchanged: s[t, m] = s[m, t]."""
    x = phantoms.random_ellipses(jax.random.key(5), 1, 20)[0]
    op = S.BornOperator.build(S.geometry(20, 9, 9), jnp.float64)
    s = _complex_data(op.mv(x))
    np.testing.assert_allclose(s, s.T, rtol=1e-12, atol=1e-14 * np.abs(s).max())


# --------------------------------------------------------------------------------------
# problems and reconstructions
# --------------------------------------------------------------------------------------
def test_born_problem_noise_and_truth():
    x = phantoms.shepp_logan(16)
    sc = S.born(x, n_transmitters=4, n_receivers=12, noise=0.05, key=jax.random.key(0))
    clean = sc.A.mv(x)
    assert sc.y_obs.shape == (2, 4, 12) and sc.y_obs.dtype == jnp.float64
    np.testing.assert_allclose(sc.noise.sigma, 0.05 * np.sqrt(np.mean(np.asarray(clean) ** 2)), rtol=1e-12)
    assert 0.02 < float(jnp.linalg.norm(sc.y_obs - clean) / jnp.linalg.norm(clean)) < 0.08
    assert sc.x_true is not None and np.array_equal(sc.x_true, x)
    assert np.array_equal(S.born(x, 4, 12, noise=0.0, key=jax.random.key(0)).y_obs, clean)


def test_example_small_grid():
    """The issue's example as written, on a 32² phantom (6 pixels per wavelength)."""
    x = phantoms.shepp_logan(32)
    sc = S.born(x, n_transmitters=20, n_receivers=360, noise=0.01, key=jax.random.key(0))
    tv = inv.solve(sc, inv.solvers.ChambollePock(lam=1.0, max_steps=300))
    assert tv.value.shape == (32, 32)
    p = _psnr(tv.value, x)
    np.testing.assert_allclose(float(tv.metrics["psnr"]), p, rtol=1e-9)
    assert p > 25.0, p  # measured 27.1 dB


@pytest.mark.slow
def test_tv_reconstruction_held_out_64():
    """TV (lam = 3, chosen on a random-ellipse image of another key) on held-out phantoms,
    64², 20 x 360, 1 % noise. Measured: Shepp-Logan 31.7 dB, held-out ellipses 43.4 dB."""
    images = {"shepp_logan": (phantoms.shepp_logan(64), 31.7),
              "ellipses": (phantoms.random_ellipses(jax.random.key(2024), 1, 64)[0], 43.4)}
    for name, (x, measured) in images.items():
        sc = S.born(x, n_transmitters=20, n_receivers=360, noise=0.01, key=jax.random.key(0))
        tv = inv.solve(sc, inv.solvers.ChambollePock(lam=3.0, max_steps=300))
        assert _psnr(tv.value, x) > measured - 2.0, (name, _psnr(tv.value, x))


@pytest.mark.slow
def test_example_128():
    """The issue's example at InverseBench's size (128², 20 x 360)."""
    x = phantoms.shepp_logan(128)
    sc = S.born(x, n_transmitters=20, n_receivers=360, noise=0.01, key=jax.random.key(0))
    tv = inv.solve(sc, inv.solvers.ChambollePock(lam=1.0, max_steps=300))
    assert _psnr(tv.value, x) > PSNR_128 - 2.0


PSNR_128 = 33.6  # measured, Shepp-Logan 128², lam = 1, 300 steps (lam = 3: 36.7)


# --------------------------------------------------------------------------------------
# Lippmann-Schwinger
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ls16():
    x = 0.5 * phantoms.shepp_logan(16)
    prob = S.lippmann_schwinger(x, 6, 6, noise=0.0, key=jax.random.key(0))
    geo = prob.born.geometry
    X, Y = geo.pixels()
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, 1.0)
    K = geo.wavenumber**2 * geo.pixel_size**2 * 0.25j * hankel1(0, geo.wavenumber * d)
    np.fill_diagonal(K, S.self_term(geo.wavenumber, geo.pixel_size))
    return prob, x, K, geo.incident_fields().reshape(6, -1), geo.receiver_green()


def _dense_forward(K, u_inc, R, x):
    xv = x.ravel().astype(complex)
    u = jnp.linalg.solve(jnp.eye(xv.size) - K * xv[None, :], u_inc.T).T
    s = (u * xv) @ R.T
    return jnp.stack([s.real, s.imag]), u


def test_lippmann_schwinger_matches_dense_solve(ls16):
    """FFT convolution + GMRES against the assembled (I - K diag(x)) solved densely, n = 16,
    contrast up to 0.5 (there the total field differs from the incident one by 79 %)."""
    prob, x, K, u_inc, R = ls16
    ref, u = jax.jit(_dense_forward)(K, u_inc, R, x)
    got = prob.fields(x).reshape(6, -1)
    assert float(jnp.abs(got - u).max() / jnp.abs(u).max()) < 1e-9  # measured 7e-16
    assert float(jnp.abs(prob.forward(x) - ref).max() / jnp.abs(ref).max()) < 1e-9
    assert float(jnp.abs(u - u_inc).max() / jnp.abs(u).max()) > 0.5  # far from Born


def test_lippmann_schwinger_gradient_is_implicit_and_exact(ls16):
    prob, x, K, u_inc, R = ls16
    w = jax.random.normal(jax.random.key(3), prob.y_obs.shape)
    g = jax.jit(jax.grad(lambda z: jnp.sum(w * prob.forward(z))))(x)
    ref = jax.jit(jax.grad(lambda z: jnp.sum(w * _dense_forward(K, u_inc, R, z)[0])))(x)
    assert float(jnp.abs(g - ref).max() / jnp.abs(ref).max()) < 1e-8  # measured 6e-16


def test_born_is_the_weak_contrast_limit(ls16):
    prob = ls16[0]
    x = phantoms.shepp_logan(16)
    gaps = [float(jnp.linalg.norm(prob.forward(c * x) - prob.born.mv(c * x)) / jnp.linalg.norm(prob.born.mv(c * x)))
            for c in (1e-3, 1e-2)]
    assert gaps[0] < 2e-3 and 8 < gaps[1] / gaps[0] < 12, gaps  # O(contrast): measured 8.5e-4, 8.5e-3


def test_lippmann_schwinger_reciprocity(ls16):
    """Point sources and receivers on the same 6 angles: s[t, m] = s[m, t] for the full model."""
    prob = ls16[0]
    x = 0.3 * phantoms.random_ellipses(jax.random.key(5), 1, 16)[0]
    s = _complex_data(prob.forward(x))
    np.testing.assert_allclose(s, s.T, rtol=1e-9, atol=1e-11 * np.abs(s).max())


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [S.born, S.lippmann_schwinger])
@pytest.mark.parametrize("kw, match", [
    ({"x": np.zeros((8, 9))}, "square 2D image"),
    ({"x": np.zeros((2, 8, 8))}, "square 2D image"),
    ({"radius": 0.1}, "must lie outside the imaging domain"),
    ({"n_transmitters": 0}, "n_transmitters must be an integer >= 1"),
    ({"n_receivers": 2.5}, "n_receivers must be an integer >= 1"),
    ({"wavenumber": 0.0}, "wavenumber must be a positive number"),
    ({"wavenumber": -3.0}, "wavenumber must be a positive number"),
    ({"side": -1.0}, "side must be a positive number"),
    ({"incident": "spherical"}, "unknown incident field"),
    ({"noise": -0.1}, "noise must be a non-negative"),
])
def test_bad_input(builder, kw, match):
    args = {"x": np.zeros((8, 8)), "n_transmitters": 2, "n_receivers": 4, "key": jax.random.key(0)}
    args.update(kw)
    x = args.pop("x")
    with pytest.raises(ValueError, match=match):
        builder(x, **args)


def test_bad_key_and_data_shape():
    with pytest.raises(TypeError, match="key must be one JAX random key"):
        S.born(np.zeros((8, 8)), 2, 4, key=0)
    op = S.BornOperator.build(S.geometry(8, 2, 4))
    with pytest.raises(ValueError, match=r"expects \(\.\.\., 8, 8\)"):
        op.mv(jnp.zeros((9, 9)))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 2, 2, 4\)"):
        op.T.mv(jnp.zeros((2, 4, 2)))


def test_too_few_points_per_wavelength_warns_with_the_number():
    with pytest.warns(UserWarning, match=r"only 3\.00 pixels per wavelength"):
        geo = S.geometry(16, 2, 4, side=0.1, wavenumber=2 * np.pi / (3 * 0.1 / 16))
    assert geo.points_per_wavelength == pytest.approx(3.0)
    with pytest.warns(UserWarning, match=r"only 3\.00 pixels per wavelength"):
        S.born(np.zeros((16, 16)), 2, 4, side=0.1, wavenumber=2 * np.pi / (3 * 0.1 / 16), key=jax.random.key(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S.geometry(16, 2, 4)  # the default, 6 per wavelength, is quiet
