"""2D incompressible Navier-Stokes on the periodic box ``[0, 2 pi)^2`` in vorticity form, and
inverse problems built on it.

The equation (``x`` the first array axis, ``y`` the second, ``indexing="ij"``)::

    w_t + u . grad(w) = nu lap(w) - drag w + f,     u = (psi_y, -psi_x),   -lap(psi) = w

Discretisation: Fourier pseudo-spectral (``rfft2``); the nonlinear term ``div(u w)`` is a
product on the grid of fields truncated by the 2/3 rule (modes with ``|k_x| < n_x / 3`` and
``|k_y| < n_y / 3`` kept), and the product is truncated again, so the semi-discrete nonlinear
term is the exact Galerkin projection and conserves energy and enstrophy. Time: Crank-Nicolson
for the linear part (viscosity, drag) and Heun's method (explicit RK2) for advection and
forcing -- second order, the scheme of InverseBench's ``NavierStokes2d`` solver -- with a fixed
step ``dt`` checked against the CFL limit ``dt <= courant * h / max|u|`` (``h = 2 pi / n``).

Kolmogorov forcing and the test-set up mirror InverseBench (Zheng et al., ICLR 2025;
``devzhk/InverseBench``, ``configs/problem/navier-stokes.yaml``: Re 200, forward time 1.0,
downsample factor 2, box ``2 pi``; its ``ForwardNavierStokes2d`` forcing ``f = -4 cos(4 y)``
and no drag). Differences: 64^2 grid by default (InverseBench: 128^2), fixed ``dt`` (theirs
adaptive), block average pooling by default (``pool="subsample"`` takes every
``downsample``-th point as InverseBench does), and a periodic Gaussian random field as the
initial vorticity (InverseBench: states of a forced run at t = 5).

Precision: float64 under ``jax_enable_x64`` for float64 input, else float32. Every function is
jit/grad/vmap-safe in the arrays (``omega0``, ``nu``, ``forcing``, ``drag``); ``t``, ``dt`` and
``saveat`` are static (they fix the number of steps). Reverse mode stores only the states at
the ends of blocks of about ``sqrt(n_steps)`` steps (`jax.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator as _op

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import GaussianNoise, HasForward, check_finite_data, check_key, rms

__all__ = ["simulate", "kolmogorov", "random_vorticity", "colour", "velocity", "energy", "enstrophy", "cfl_limit",
           "initial_condition", "parameters", "VorticityInverse", "FlowParameters", "COURANT", "LENGTH"]

LENGTH = 2.0 * math.pi  # the box side
COURANT = 0.4  # default largest Courant number max|u| dt / h (measured: Heun + CN on a forced Re-200 flow blows up near 0.55)


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _check_shape(shape, owner="navier_stokes") -> tuple[int, int]:
    msg = (f"{owner}: shape must be 2 even integers >= 8 (a periodic grid on [0, 2 pi)^2; even for the "
           f"FFT's Nyquist mode), got {shape!r}.")
    try:
        entries = tuple(shape)
        out = tuple(_op.index(n) for n in entries if not isinstance(n, (bool, np.bool_)))
    except TypeError:
        raise ValueError(msg) from None
    if len(entries) != 2 or len(out) != 2 or min(out) < 8 or any(n % 2 for n in out):
        raise ValueError(msg)
    return out


def _number(owner, name, value, *, low=None, strict=True, what=""):
    """A concrete finite float (> low or >= low); traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return value
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a real number{what}, got {value!r}.") from None
    if a.ndim != 0 or not np.isfinite(a):
        raise ValueError(f"{owner}: {name} must be one finite real number{what}, got {value!r}.")
    if low is not None and (a <= low if strict else a < low):
        raise ValueError(f"{owner}: {name} must be {'>' if strict else '>='} {low:g}{what}, got {float(a):g}.")
    return float(a)


def _is_concrete(x):
    return not isinstance(x, jax.core.Tracer)


# --------------------------------------------------------------------------------------
# spectral helpers
# --------------------------------------------------------------------------------------
def _wavenumbers(shape, dtype):
    """Integer wavenumbers (the box is 2 pi): kx (n1, 1) full, ky (1, n2//2+1) half; first
    derivative versions with the Nyquist mode zeroed; the 2/3 mask."""
    n1, n2 = shape
    kx = np.fft.fftfreq(n1, 1.0 / n1)[:, None]
    ky = np.fft.rfftfreq(n2, 1.0 / n2)[None, :]
    dkx = np.where(np.abs(kx) == n1 // 2, 0.0, kx)
    dky = np.where(np.abs(ky) == n2 // 2, 0.0, ky)
    k2 = kx**2 + ky**2
    mask = (np.abs(kx) < n1 / 3.0) & (np.abs(ky) < n2 / 3.0)
    inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return c(dkx), c(dky), c(k2), c(inv_k2), c(mask)


def _velocity_hat(w_hat, dkx, dky, inv_k2):
    psi = w_hat * inv_k2
    return 1j * dky * psi, -1j * dkx * psi  # u = psi_y, v = -psi_x


def velocity(omega):
    """The velocity ``(u, v)`` (two arrays of ``omega``'s shape) of the vorticity ``omega`` on
    the periodic box ``[0, 2 pi)^2`` (the mean of ``omega`` does not enter)."""
    omega = jnp.asarray(omega)
    shape = _check_shape(omega.shape[-2:], "velocity")
    dkx, dky, _, inv_k2, _ = _wavenumbers(shape, omega.dtype)
    uh, vh = _velocity_hat(jnp.fft.rfft2(omega), dkx, dky, inv_k2)
    return jnp.fft.irfft2(uh, s=shape), jnp.fft.irfft2(vh, s=shape)


def energy(omega):
    """Kinetic energy per unit area ``E = mean(u^2 + v^2) / 2`` (the box average)."""
    u, v = velocity(omega)
    return 0.5 * jnp.mean(u * u + v * v, axis=(-2, -1))


def enstrophy(omega):
    """Enstrophy per unit area ``Z = mean(omega^2) / 2``; unforced, ``dE/dt = -2 nu Z``."""
    omega = jnp.asarray(omega)
    return 0.5 * jnp.mean(omega * omega, axis=(-2, -1))


def cfl_limit(omega, courant: float = COURANT):
    """The largest stable step for the vorticity ``omega``: ``courant * h / max|u|`` with
    ``h = 2 pi / max(shape)`` (``inf`` for a fluid at rest)."""
    u, v = velocity(omega)
    h = LENGTH / max(jnp.shape(omega)[-2:])
    s = jnp.max(jnp.sqrt(u * u + v * v))
    return jnp.where(s > 0, courant * h / jnp.where(s > 0, s, 1.0), jnp.inf)


def kolmogorov(shape=(64, 64), amplitude=4.0, k: int = 4, dtype=None):
    """Kolmogorov forcing ``f(x, y) = -amplitude * cos(k y)`` on the grid ``y_j = 2 pi j / n_y``
    (InverseBench's ``-4 cos(4 y)`` by default). ``amplitude`` may be traced (differentiable)."""
    shape = _check_shape(shape, "kolmogorov")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 0 < k < shape[1] / 3:
        raise ValueError(f"kolmogorov: k must be a positive integer below n_y / 3 = {shape[1] / 3:g} (resolved by "
                         f"the 2/3 rule), got {k!r}.")
    dtype = jnp.result_type(float) if dtype is None else dtype
    y = jnp.arange(shape[1], dtype=dtype) * (LENGTH / shape[1])
    return -jnp.asarray(amplitude, dtype) * jnp.broadcast_to(jnp.cos(k * y)[None, :], shape)


def random_vorticity(key, shape=(64, 64), *, alpha: float = 2.5, tau: float = 7.0, std: float = 5.0):
    """One initial vorticity: a zero-mean periodic Gaussian random field on ``[0, 2 pi)^2`` with
    power spectrum ``(4 pi^2 |k|^2 + tau^2)^(-alpha)`` over the integer wavenumbers ``k`` (the
    covariance ``(-lap + tau^2)^(-alpha)`` on the unit torus of the Fourier-neural-operator
    Navier-Stokes data, ``alpha = 2.5, tau = 7``, mapped to this box), rescaled to marginal standard deviation
    ``std`` (5, the scale by which InverseBench's config normalises its vorticity fields).

    The defaults are those of `initial_condition`'s default problem, so
    ``prior_samples=navier_stokes.random_vorticity`` draws from the prior that made the truth
    (for another ``shape``, ``functools.partial(random_vorticity, shape=...)``). Jit/vmap-safe
    in ``key``.
    """
    shape = _check_shape(shape, "random_vorticity")
    for name, value in (("alpha", alpha), ("tau", tau), ("std", std)):
        _number("random_vorticity", name, value, low=0.0)
    if _is_concrete(key):
        check_key("random_vorticity", key)
    return _grf(key, shape, float(alpha), float(tau), float(std))


def colour(white, *, alpha: float = 2.5, tau: float = 7.0, std: float = 5.0):
    """The linear map behind `random_vorticity`: white noise ``(n1, n2)`` (i.i.d. standard
    normal) to the Gaussian random field with that spectrum and marginal standard deviation
    ``std``. With it, ``omega0 = colour(xi)`` and ``xi ~ N(0, I)``: a `GradientMAP` on ``xi``
    with `invsolve.priors.Tikhonov` ``(1.0)`` is the MAP estimate under the exact prior that
    made the truth (the field has no mean: ``xi``'s zero mode has no effect)."""
    white = jnp.asarray(white)
    shape = _check_shape(white.shape, "colour")
    return std * jnp.fft.irfft2(jnp.fft.rfft2(white) * _amplitude(shape, float(alpha), float(tau)).astype(white.dtype),
                                s=shape)


@functools.lru_cache(maxsize=16)
def _amplitude(shape, alpha, tau):
    n1, n2 = shape
    kx = np.fft.fftfreq(n1, 1.0 / n1)[:, None]
    ky_full = np.fft.fftfreq(n2, 1.0 / n2)[None, :]
    amp_full = (4.0 * math.pi**2 * (kx**2 + ky_full**2) + tau**2) ** (-alpha / 2.0)
    amp_full[0, 0] = 0.0
    # white noise w: Var(irfft2(rfft2(w) a)) = sum_full(a^2) / (n1 n2) at every point
    norm = math.sqrt(float(np.sum(amp_full**2)) / (n1 * n2))
    return np.asarray(amp_full[:, : n2 // 2 + 1] / norm)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _grf(key, shape, alpha, tau, std):
    white = jax.random.normal(key, shape, jnp.result_type(float))
    return colour(white, alpha=alpha, tau=tau, std=std)


# --------------------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------------------
def _steps(t, dt, saveat, owner):
    """(dt_eff, steps per segment, n_segments): ``t`` split into ``saveat`` equal segments of
    ``m`` steps each, ``dt_eff = t / (saveat m) <= dt``."""
    n_seg = 1 if saveat is None else saveat
    m = max(1, math.ceil(t / (dt * n_seg) - 1e-9))
    if m * n_seg > 10_000_000:
        raise ValueError(f"{owner}: t / dt = {t / dt:.3g} steps is more than 10 million; use a larger dt or a "
                         f"shorter time.")
    return t / (m * n_seg), m, n_seg


def simulate(omega0, t: float, *, nu, dt: float, forcing=None, drag=0.0, saveat: int | None = None,
             courant: float = COURANT):
    """The vorticity at time ``t`` from ``omega0`` (shape ``(n_x, n_y)``, both even, >= 8).

    Args:
        omega0: initial vorticity on the grid ``x_i = 2 pi i / n_x``, ``y_j = 2 pi j / n_y``.
        t: final time (> 0; static).
        nu: kinematic viscosity ``1 / Re`` (>= 0; may be traced).
        dt: the largest time step (static): ``ceil(t / dt)`` equal steps of ``t / ceil(t / dt)``
            are taken. When ``omega0`` is concrete, ``dt`` is checked against `cfl_limit`
            (``courant * h / max|u|``) before the run and against the largest speed of the
            trajectory after it (a ``ValueError`` stating the limit). Inside jit/vmap/grad the
            check cannot see the values and is skipped.
        forcing: ``f`` (an array of ``omega0``'s shape, e.g. `kolmogorov`) or None.
        drag: linear drag coefficient (>= 0).
        saveat: None (return the state at ``t``) or ``n``: return ``(n, n_x, n_y)``, the states
            at ``t i / n``, ``i = 1..n``.
        courant: the largest Courant number ``max|u| dt / h`` (default 0.4); None skips the
            CFL check (the inverse problems' forward models, whose ``dt`` was checked on the
            truth).
    """
    omega0 = jnp.asarray(omega0)
    if omega0.ndim != 2:
        raise ValueError(f"simulate: omega0 must be one 2D field (n_x, n_y), got shape {omega0.shape}; "
                         "use jax.vmap for a batch.")
    shape = _check_shape(omega0.shape, "simulate")
    t = _number("simulate", "t", t, low=0.0, what=" (the final time)")
    dt = _number("simulate", "dt", dt, low=0.0, what=" (the time step)")
    _number("simulate", "nu", nu, low=0.0, strict=False, what=" (the viscosity)")
    _number("simulate", "drag", drag, low=0.0, strict=False)
    if courant is not None:
        courant = _number("simulate", "courant", courant, low=0.0)
    if saveat is not None and (isinstance(saveat, bool) or not isinstance(saveat, (int, np.integer)) or saveat < 1):
        raise ValueError(f"simulate: saveat must be None or a positive integer (snapshots at t i / n), got {saveat!r}.")
    if not jnp.issubdtype(omega0.dtype, jnp.floating):
        omega0 = omega0.astype(jnp.result_type(float))
    if forcing is not None:
        forcing = jnp.asarray(forcing, omega0.dtype)
        if forcing.shape != shape:
            raise ValueError(f"simulate: forcing has shape {forcing.shape}, expected omega0's {shape}.")
    if _is_concrete(omega0):
        check_finite_data("simulate", "omega0", omega0, "the initial vorticity")
    if _is_concrete(omega0) and courant is not None:
        limit = float(cfl_limit(omega0, courant))
        if dt > limit:
            raise ValueError(f"simulate: dt = {dt:g} exceeds the CFL limit {limit:.4g} (= {courant:g} h / max|u| "
                             f"for this omega0, h = 2 pi / {max(shape)}); use dt <= {limit:.4g}.")
    dt_eff, m, n_seg = _steps(t, dt, saveat, "simulate")
    f_hat = None if forcing is None else jnp.fft.rfft2(forcing)
    out, smax = _run(omega0, jnp.asarray(nu, omega0.dtype), jnp.asarray(drag, omega0.dtype), f_hat, dt_eff, m, n_seg)
    if _is_concrete(smax) and courant is not None:
        limit = courant * (LENGTH / max(shape)) / float(smax) if float(smax) > 0 else math.inf
        if dt_eff > limit:
            raise ValueError(f"simulate: the step {dt_eff:g} exceeds the CFL limit {limit:.4g} reached during the run "
                             f"(max|u| grew to {float(smax):.4g}); use dt <= {0.5 * limit:.4g}.")
    return out if saveat is not None else out[-1]


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _run(omega0, nu, drag, f_hat, dt, m, n_seg):
    shape = omega0.shape
    dkx, dky, k2, inv_k2, mask = _wavenumbers(shape, omega0.dtype)
    lin = -nu * k2 - drag  # the implicit (Crank-Nicolson) part
    denom = 1.0 / (1.0 - 0.5 * dt * lin)

    def nonlinear(w_hat):
        w_hat = w_hat * mask
        uh, vh = _velocity_hat(w_hat, dkx, dky, inv_k2)
        u, v, w = (jnp.fft.irfft2(a, s=shape) for a in (uh, vh, w_hat))
        adv = 1j * dkx * jnp.fft.rfft2(u * w) + 1j * dky * jnp.fft.rfft2(v * w)  # div(u w) = u . grad w
        n = -adv * mask
        return (n if f_hat is None else n + f_hat), jnp.max(u * u + v * v)

    def step(carry, _):
        w_hat, s2 = carry
        n1, s2a = nonlinear(w_hat)
        explicit = w_hat + 0.5 * dt * lin * w_hat
        w_tilde = (explicit + dt * n1) * denom
        n2, _ = nonlinear(w_tilde)
        return (( explicit + 0.5 * dt * (n1 + n2)) * denom, jnp.maximum(s2, s2a)), None

    def steps(carry, k):
        return jax.lax.scan(step, carry, None, length=k)[0]

    # reverse mode: store the state every `block` steps, recompute inside a block
    block = max(1, math.isqrt(m))
    n_blocks, rest = divmod(m, block)
    block_fn = jax.checkpoint(lambda c: steps(c, block))

    def segment(carry, _):
        carry = jax.lax.scan(lambda c, _: (block_fn(c), None), carry, None, length=n_blocks)[0]
        if rest:
            carry = jax.checkpoint(lambda c: steps(c, rest))(carry)
        return carry, jnp.fft.irfft2(carry[0], s=shape)

    w_hat0 = jnp.fft.rfft2(omega0)
    (_, s2), snaps = jax.lax.scan(segment, (w_hat0, jnp.zeros((), omega0.dtype)), None, length=n_seg)
    return snaps, jnp.sqrt(s2)


def _pool(w, factor, how):
    if factor == 1:
        return w
    if how == "subsample":
        return w[..., ::factor, ::factor]
    n1, n2 = w.shape[-2:]
    return w.reshape(w.shape[:-2] + (n1 // factor, factor, n2 // factor, factor)).mean(axis=(-3, -1))


def _check_downsample(downsample, shape, owner):
    if isinstance(downsample, (bool, np.bool_)) or not isinstance(downsample, (int, np.integer)) or downsample < 1:
        raise ValueError(f"{owner}: downsample must be a positive integer, got {downsample!r}.")
    if shape[0] % downsample or shape[1] % downsample:
        raise ValueError(f"{owner}: downsample = {downsample} does not divide the grid shape {shape}.")
    return int(downsample)


def _check_pool(pool, owner):
    if pool not in ("mean", "subsample"):
        raise ValueError(f"{owner}: pool must be 'mean' (block average) or 'subsample' (every downsample-th point, "
                         f"as InverseBench), got {pool!r}.")
    return pool


def _auto_dt(owner, omega0, t, nu, forcing, drag, dt, courant):
    """``dt`` checked (or chosen: a quarter of the CFL limit of ``omega0``, then halved until the
    whole trajectory respects it) for the true initial state. The margin is for the other
    states a solver visits (EKI members, MAP iterates), which may be faster than the truth."""
    if dt is not None:
        _number(owner, "dt", dt, low=0.0, what=" (the time step)")
        simulate(omega0, t, nu=nu, dt=dt, forcing=forcing, drag=drag, courant=courant)  # raises past the limit
        return float(dt)
    dt = min(0.25 * float(cfl_limit(omega0, courant)), t)
    for _ in range(8):
        try:
            simulate(omega0, t, nu=nu, dt=dt, forcing=forcing, drag=drag, courant=courant)
            return dt
        except ValueError:
            dt *= 0.5
    raise ValueError(f"{owner}: no stable time step found (the flow blows up); lower re or the forcing.")


# --------------------------------------------------------------------------------------
# inverse problems
# --------------------------------------------------------------------------------------
class VorticityInverse(HasForward):
    """Recover the initial vorticity ``omega0`` (``theta``, grid shape) from the vorticity at
    ``t_obs``, pooled by ``downsample``, plus Gaussian noise.

    Attributes:
        shape, t_obs, dt, downsample, pool: the grid, observation time, time step, pooling
            factor and kind (static).
        nu, drag: viscosity and drag; forcing: the forcing field (known).
        y_obs: data ``(n_x / downsample, n_y / downsample)``; noise: `GaussianNoise`.
        x_true: the true ``omega0`` or None. theta0: `init_params` (zeros: the prior mean).
    """

    shape: tuple[int, int] = eqx.field(static=True)
    t_obs: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    downsample: int = eqx.field(static=True)
    pool: str = eqx.field(static=True)
    nu: jax.Array
    drag: jax.Array
    forcing: jax.Array | None
    y_obs: jax.Array
    noise: GaussianNoise
    x_true: jax.Array | None
    theta0: jax.Array

    def __check_init__(self):
        want = (self.shape[0] // self.downsample, self.shape[1] // self.downsample)
        if tuple(self.y_obs.shape) != want:
            raise ValueError(f"VorticityInverse: y_obs has shape {tuple(self.y_obs.shape)}, expected {want}.")
        check_finite_data("VorticityInverse", "y_obs", self.y_obs)

    def forward(self, theta):
        w = simulate(theta, self.t_obs, nu=self.nu, dt=self.dt, forcing=self.forcing, drag=self.drag, courant=None)
        return _pool(w, self.downsample, self.pool)

    def init_params(self):
        return self.theta0

    def with_observations(self, y_obs) -> "VorticityInverse":
        return dataclasses.replace(self, y_obs=jnp.asarray(y_obs, self.y_obs.dtype))


def _noisy(owner, clean, noise, key):
    noise = _number(owner, "noise", noise, low=0.0, what=" (the relative noise level: sigma = noise * rms(data))")
    sigma = noise * float(rms(clean))
    if not sigma > 0:
        raise ValueError(f"{owner}: the noise-free data are all zero, so relative noise has no scale.")
    return clean + sigma * jax.random.normal(key, clean.shape, clean.dtype), GaussianNoise(sigma)


def initial_condition(shape=(64, 64), re: float = 200.0, t_obs: float = 1.0, downsample: int = 2,
                      noise: float = 0.01, *, key, forcing="kolmogorov", drag: float = 0.0, dt: float | None = None,
                      pool: str = "mean", omega0=None, std: float = 5.0) -> VorticityInverse:
    """InverseBench's Navier-Stokes task: the initial vorticity from the downsampled, noisy
    vorticity at ``t_obs``.

    Args:
        shape: the grid (2 even integers >= 8). re: Reynolds number, ``nu = 1 / re`` (> 0).
        t_obs: observation time (> 0). downsample: pooling factor (divides ``shape``).
        noise: relative noise level: ``sigma = noise * rms(clean data)`` (> 0).
        key: PRNG key (the true field and the noise).
        forcing: ``"kolmogorov"`` (``-4 cos(4 y)``), None, or an array of ``shape``.
        drag: linear drag (>= 0; InverseBench: 0). dt: time step, None: a quarter of the CFL
            limit of the true field (halved further if the flow speeds up).
        pool: ``"mean"`` (block average) or ``"subsample"`` (InverseBench). omega0: the true
            initial vorticity, None: ``random_vorticity(key, shape, std=std)``.
    """
    owner = "navier_stokes.initial_condition"
    shape = _check_shape(shape, owner)
    re = _number(owner, "re", re, low=0.0, what=" (the Reynolds number)")
    t_obs = _number(owner, "t_obs", t_obs, low=0.0, what=" (the observation time)")
    downsample = _check_downsample(downsample, shape, owner)
    pool = _check_pool(pool, owner)
    drag = _number(owner, "drag", drag, low=0.0, strict=False)
    check_key(owner, key)
    k_true, k_noise = jax.random.split(key)
    dtype = jnp.result_type(float)
    if omega0 is None:
        omega0 = random_vorticity(k_true, shape, std=std)
    omega0 = jnp.asarray(omega0, dtype)
    if omega0.shape != shape:
        raise ValueError(f"{owner}: omega0 has shape {omega0.shape}, expected {shape}.")
    f = _forcing(owner, forcing, shape, dtype)
    nu = 1.0 / re
    dt = _auto_dt(owner, omega0, t_obs, nu, f, drag, dt, COURANT)
    clean = _pool(simulate(omega0, t_obs, nu=nu, dt=dt, forcing=f, drag=drag), downsample, pool)
    y, nz = _noisy(owner, clean, noise, k_noise)
    return VorticityInverse(shape, t_obs, dt, downsample, pool, jnp.asarray(nu, dtype), jnp.asarray(drag, dtype), f,
                            y, nz, omega0, jnp.zeros(shape, dtype))


def _forcing(owner, forcing, shape, dtype):
    if forcing is None:
        return None
    if isinstance(forcing, str):
        if forcing != "kolmogorov":
            raise ValueError(f"{owner}: forcing must be 'kolmogorov', None or an array of the grid shape, got "
                             f"{forcing!r}.")
        return kolmogorov(shape, dtype=dtype)
    f = jnp.asarray(forcing, dtype)
    if f.shape != shape:
        raise ValueError(f"{owner}: forcing has shape {f.shape}, expected the grid shape {shape}.")
    return f


class FlowParameters(HasForward):
    """Recover ``(nu, A)``, the viscosity and the Kolmogorov forcing amplitude (forcing
    ``-A cos(k y)``), from the pooled noisy vorticity at ``t_obs`` of a known initial state.
    ``theta = (log nu, log A)``; `constrain` gives ``(nu, A)``; two unknowns, for NUTS or MAP.
    """

    shape: tuple[int, int] = eqx.field(static=True)
    t_obs: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    downsample: int = eqx.field(static=True)
    pool: str = eqx.field(static=True)
    k: int = eqx.field(static=True)
    omega0: jax.Array
    drag: jax.Array
    y_obs: jax.Array
    noise: GaussianNoise
    x_true: jax.Array | None
    theta0: jax.Array

    def forward(self, theta):
        nu, amp = jnp.exp(theta[0]), jnp.exp(theta[1])
        f = kolmogorov(self.shape, amp, self.k, self.omega0.dtype)
        w = simulate(self.omega0, self.t_obs, nu=nu, dt=self.dt, forcing=f, drag=self.drag, courant=None)
        return _pool(w, self.downsample, self.pool)

    def init_params(self):
        return self.theta0

    def constrain(self, theta):
        return jnp.exp(theta)

    def with_observations(self, y_obs) -> "FlowParameters":
        return dataclasses.replace(self, y_obs=jnp.asarray(y_obs, self.y_obs.dtype))


def parameters(shape=(32, 32), re: float = 200.0, amplitude: float = 4.0, t_obs: float = 1.0, downsample: int = 2,
               noise: float = 0.01, *, key, k: int = 4, drag: float = 0.0, dt: float | None = None,
               pool: str = "mean", guess=(100.0, 1.0), std: float = 5.0) -> FlowParameters:
    """The few-parameter problem: ``theta = (log nu, log A)`` with truth ``nu = 1 / re`` and
    ``A = amplitude``; the initial state ``random_vorticity(key, shape, std=std)`` is known.

    ``guess = (re, A)`` sets `init_params` (``(log(1 / 100), log 1)`` by default). ``dt`` (None:
    chosen for the truth) must stay stable for the parameters a solver visits: the CFL limit
    is checked on the truth only.
    """
    owner = "navier_stokes.parameters"
    shape = _check_shape(shape, owner)
    re = _number(owner, "re", re, low=0.0, what=" (the Reynolds number)")
    amplitude = _number(owner, "amplitude", amplitude, low=0.0, what=" (the forcing amplitude)")
    t_obs = _number(owner, "t_obs", t_obs, low=0.0, what=" (the observation time)")
    downsample = _check_downsample(downsample, shape, owner)
    pool = _check_pool(pool, owner)
    drag = _number(owner, "drag", drag, low=0.0, strict=False)
    g_re = _number(owner, "guess[0] (re)", guess[0], low=0.0)
    g_amp = _number(owner, "guess[1] (amplitude)", guess[1], low=0.0)
    check_key(owner, key)
    k_true, k_noise = jax.random.split(key)
    dtype = jnp.result_type(float)
    omega0 = random_vorticity(k_true, shape, std=std)
    f = kolmogorov(shape, amplitude, k, dtype)
    dt = _auto_dt(owner, omega0, t_obs, 1.0 / re, f, drag, dt, COURANT)
    clean = _pool(simulate(omega0, t_obs, nu=1.0 / re, dt=dt, forcing=f, drag=drag), downsample, pool)
    y, nz = _noisy(owner, clean, noise, k_noise)
    return FlowParameters(shape, t_obs, dt, downsample, pool, int(k), omega0, jnp.asarray(drag, dtype), y, nz,
                          jnp.asarray([1.0 / re, amplitude], dtype), jnp.log(jnp.asarray([1.0 / g_re, g_amp], dtype)))
