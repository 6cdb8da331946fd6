"""Random coefficient fields (invsolve.problems.fields) against their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from invsolve.problems import fields


def _matern_correlation(r, length, nu):
    """The Matern correlation whose spectral density is (1/l^2 + |w|^2)^(-(nu + d/2)):
    2^(1-nu) / Gamma(nu) (r/l)^nu K_nu(r/l) (Lindgren, Rue & Lindstrom 2011, eq. 1-2)."""
    z = np.asarray(r) / length
    return 2 ** (1 - nu) / scipy.special.gamma(nu) * z**nu * scipy.special.kv(nu, z)


def test_gaussian_random_field_has_the_matern_covariance():
    """Marginal std and the correlation at lags of 1-8 cells along both axes against the
    continuous Matern formula (scipy's Bessel K): 4000 fields, 32^2. The periodic draw on a
    twice larger grid and the sampling error leave < 0.01
    (measured 0.004); a wrong length scale (0.1 or 0.2) misses by > 0.1."""
    length, nu = 0.15, 2.0
    g = np.asarray(fields.gaussian_random_field(jax.random.key(0), 4000, (32, 32), length=length, nu=nu,
                                                sigma=2.0, mean=1.0), np.float64)
    assert abs(g.mean() - 1.0) < 0.05 and abs(g.std() - 2.0) < 0.05
    z = (g - 1.0) / 2.0
    lags = np.arange(1, 9)
    for axis in (1, 2):
        emp = np.array([np.mean((z[:, :32 - k] * z[:, k:]) if axis == 1 else (z[:, :, :32 - k] * z[:, :, k:]))
                        for k in lags])
        want = _matern_correlation(lags / 32, length, nu)
        assert np.max(np.abs(emp - want)) < 0.01, (axis, emp, want)
        assert np.max(np.abs(emp - _matern_correlation(lags / 32, 0.1, nu))) > 0.1


def test_gaussian_random_field_runs_in_3d_and_under_jit():
    g = jax.jit(lambda k: fields.gaussian_random_field(k, 2, (8, 8, 8)))(jax.random.key(0))
    assert g.shape == (2, 8, 8, 8) and bool(jnp.all(jnp.isfinite(g)))


def test_channelized_maps_are_low_with_high_channels_of_the_given_width():
    """Values in [low, high]; with sharp banks the area fraction of one channel is about its
    width times its length inside the box (about one box side): for width 0.12 measured a mean
    of 0.124 and 0.08-0.16 per map."""
    x = np.asarray(fields.channelized(jax.random.key(1), 200, (64, 64), n_channels=1, width=0.12, low=-1.0,
                                      high=2.0, edge=1e-3))
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 2.0 + 1e-6
    frac = (x > 0.5).mean(axis=(1, 2))
    assert 0.11 < frac.mean() < 0.14, frac.mean()
    assert (frac > 0.05).all()  # every map has its channel in the box


def test_log_permeability_mixes_the_two_kinds():
    x = np.asarray(fields.log_permeability(jax.random.key(2), 400, (32, 32)))
    channel_like = np.mean(np.isclose(x, -1.0, atol=0.02), axis=(1, 2)) > 0.3  # flat background
    assert 0.4 < channel_like.mean() < 0.6
    np.testing.assert_array_equal(fields.log_permeability(jax.random.key(2), 400, (32, 32)), x)  # deterministic


@pytest.mark.parametrize("call, match", [
    (lambda: fields.gaussian_random_field(jax.random.key(0), 0, (8, 8)), "n must be a positive integer"),
    (lambda: fields.gaussian_random_field(jax.random.key(0), 1, (8, 2)), "every side >= 4"),
    (lambda: fields.gaussian_random_field(jax.random.key(0), 1, (8, 8), length=-1.0), "length must be a positive"),
    (lambda: fields.channelized(jax.random.key(0), 1, (8, 8, 8)), r"shape must be \(H, W\)"),
    (lambda: fields.channelized(jax.random.key(0), 1, (8, 8), n_channels=0), "n_channels must be a positive"),
    (lambda: fields.log_permeability(jax.random.key(0), 1, (8, 8), kind="gauss"), "kind must be one of"),
    (lambda: fields.log_permeability(0, 1, (8, 8)), "key"),
])
def test_bad_input_gets_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
