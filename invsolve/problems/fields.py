"""Random coefficient fields: generators of log-permeability maps for Darcy flow.

Each generator is a pure JAX function ``(key, n, shape, ...) -> (n, *shape)`` on the unit
box (cell centres ``(i + 1/2) / N``), so it runs under ``jit`` and ``vmap`` and can feed a
training loop directly (`invsolve.priors.ScorePrior.train` takes it as its ``dataset``):

* `gaussian_random_field`: a stationary Gaussian field with the Matern spectral density
  ``S(k) ~ (1 / l^2 + 4 pi^2 |k|^2)^(-(nu + d / 2))`` (Lindgren, Rue & Lindstrom, JRSS-B
  2011, eq. 2), drawn by FFT on a twice larger periodic grid and cropped (so the result is
  not periodic), scaled to the marginal std ``sigma``; any dimension.
* `channelized`: 2D sinuous high-permeability channels (random orientation, amplitude,
  wavelength and phase) in a low-permeability background with smooth (logistic) banks, the
  classic fluvial-reservoir test case of subsurface flow.
* `log_permeability`: one or the other per sample (``kind="mixed"``), the training
  distribution of the shipped ``darcy-32`` score prior.

Values are log-permeability (dimensionless, ``kappa = exp(theta)``); the dtype is JAX's
default float.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._problem import check_key

KINDS = ("grf", "channels", "mixed")


def _check(name, key, n, shape, dims=None):
    check_key(f"fields.{name}", key)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"fields.{name}: n must be a positive integer, got {n!r}.")
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"fields.{name}: shape must be a tuple of ints, got {shape!r}.") from None
    if dims is not None and len(shape) not in dims or not shape or min(shape) < 4:
        want = "(H, W)" if dims == (2,) else "(N1, ..., Nd)"
        raise ValueError(f"fields.{name}: shape must be {want} with every side >= 4, got {shape!r}.")
    return int(n), shape


def _positive(name, **values):
    for k, v in values.items():
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"fields.{name}: {k} must be a positive number, got {v!r}.")


def gaussian_random_field(key, n: int, shape, *, length: float = 0.15, nu: float = 2.0, sigma: float = 1.0,
                          mean: float = 0.0):
    """``n`` samples ``(n, *shape)`` of a zero-mean Matern field plus ``mean``.

    Args:
        key: PRNG key. n: number of samples. shape: grid (any dimension, unit box).
        length: correlation length ``l`` (box units). nu: smoothness (2: twice
            differentiable samples). sigma: marginal standard deviation. mean: added.
    """
    n, shape = _check("gaussian_random_field", key, n, shape)
    _positive("gaussian_random_field", length=length, nu=nu, sigma=sigma)
    big = tuple(2 * s for s in shape)
    k2 = sum(g * g for g in jnp.meshgrid(*[jnp.fft.fftfreq(m, d=1.0 / s) for m, s in zip(big, shape)],
                                         indexing="ij"))
    spec = (1.0 / length**2 + 4.0 * math.pi**2 * k2) ** (-(nu + len(shape) / 2.0))
    amp = jnp.sqrt(spec / jnp.sum(spec))  # unit marginal variance of the periodic field
    white = jax.random.normal(key, (n, *big))
    axes = tuple(range(1, len(shape) + 1))
    g = jnp.fft.ifftn(jnp.fft.fftn(white, axes=axes) * amp, axes=axes).real * math.sqrt(math.prod(big))
    return mean + sigma * g[(slice(None), *(slice(0, s) for s in shape))]


def channelized(key, n: int, shape=(32, 32), *, n_channels: int = 2, width: float = 0.12,
                low: float = -1.0, high: float = 1.5, edge: float = 0.02):
    """``n`` 2D channel maps ``(n, H, W)``: ``low`` outside, ``high`` inside the channels.

    Each of ``n_channels`` channels is a band of ``width`` around the centre line
    ``v = c + A sin(2 pi u / lambda + phi)`` in coordinates ``(u, v)`` rotated by a random
    angle (uniform), with ``A`` in [0.03, 0.12], ``lambda`` in [0.4, 1.2], ``c`` in
    [0.15, 0.85]; the banks are logistic with scale ``edge`` (box units).
    """
    n, shape = _check("channelized", key, n, shape, dims=(2,))
    _positive("channelized", width=width, edge=edge)
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
        raise ValueError(f"fields.channelized: n_channels must be a positive integer, got {n_channels!r}.")
    h, w = shape
    r, c = jnp.meshgrid((jnp.arange(h) + 0.5) / h - 0.5, (jnp.arange(w) + 0.5) / w - 0.5, indexing="ij")
    ka, kc, kamp, klam, kphi = jax.random.split(key, 5)
    size = (n, n_channels, 1, 1)
    ang = jax.random.uniform(ka, size, minval=0.0, maxval=math.pi)
    centre = jax.random.uniform(kc, size, minval=-0.35, maxval=0.35)
    amp = jax.random.uniform(kamp, size, minval=0.03, maxval=0.12)
    lam = jax.random.uniform(klam, size, minval=0.4, maxval=1.2)
    phi = jax.random.uniform(kphi, size, minval=0.0, maxval=2 * math.pi)
    u = jnp.cos(ang) * c + jnp.sin(ang) * r
    v = -jnp.sin(ang) * c + jnp.cos(ang) * r
    dist = jnp.abs(v - centre - amp * jnp.sin(2 * math.pi * u / lam + phi))
    inside = jnp.max(jax.nn.sigmoid((width / 2 - dist) / edge), axis=1)
    return low + (high - low) * inside


def log_permeability(key, n: int, shape=(32, 32), kind: str = "mixed"):
    """``n`` log-permeability maps ``(n, H, W)``: ``"grf"`` (`gaussian_random_field` with the
    defaults: l = 0.15, nu = 2, std 1), ``"channels"`` (`channelized` with the defaults) or
    ``"mixed"`` (each sample one of the two with probability 1/2)."""
    if kind not in KINDS:
        raise ValueError(f"fields.log_permeability: kind must be one of {KINDS}, got {kind!r}.")
    n, shape = _check("log_permeability", key, n, shape, dims=(2,))
    kg, kc, kw = jax.random.split(key, 3)
    if kind == "grf":
        return gaussian_random_field(kg, n, shape)
    if kind == "channels":
        return channelized(kc, n, shape)
    pick = jax.random.bernoulli(kw, 0.5, (n, 1, 1))
    return jnp.where(pick, gaussian_random_field(kg, n, shape), channelized(kc, n, shape))


__all__ = ["gaussian_random_field", "channelized", "log_permeability", "KINDS"]
