"""Acoustic waves: the constant-density acoustic wave equation and full-waveform inversion.

``u_tt = v(x)^2 laplace(u) + s(t) delta(x - x_s)`` in 2D (or 3D: every routine is written for
either), ``v`` the velocity [m/s] on a regular grid of spacing ``h = spacing_m``.

Conventions:
    * arrays are indexed ``v[iz, ix]`` (``v[iz, iy, ix]`` in 3D): axis 0 is depth, pointing
      down; node ``i`` of an axis sits at ``i * h``, so the model spans ``[0, (n - 1) h]``.
    * positions (sources, receivers) are in metres in the same axis order, ``(z, x)``; they
      need not lie on nodes (multilinear interpolation, see below).
    * time sample ``n`` is ``t = n dt``; traces have shape ``(n_shots, n_t, n_rec)``.

Discretisation:
    * space: central differences of order 4 or 8 for each ``d^2/dx_i^2`` (the standard
      Taylor coefficients; order 8 reaches about 1 % phase error at ~4 points per wavelength).
    * time: the second-order leapfrog ``u+ = 2u - u- + dt^2 (v^2 L u + s)``; stable for
      ``dt <= 2 h / (v_max sqrt(ndim * lam))``, ``lam`` the largest eigenvalue of the 1D stencil
      (``h^2 |D2|``): 16/3 for order 4, 6.5016 for order 8 (`stencil_eigenvalue`), so the
      limit is ``0.61 h / v_max`` (order 4, 2D) or ``0.55 h / v_max`` (order 8, 2D).
    * sources: ``s(t_n)`` is spread onto the 2^ndim nodes around ``x_s`` with multilinear
      (bilinear in 2D) weights divided by ``h^ndim`` (a point source of unit strength);
      receivers read ``u`` with the same weights (the adjoint of the injection).
    * absorbing boundaries: a sponge (damping layer) of ``sponge`` cells around the model
      (not on top with ``free_surface=True``), in which the equation becomes
      ``u_tt + gamma u_t = v^2 laplace(u)`` with ``gamma = gamma_max (d / L)^2`` (``d`` the
      distance into the layer, ``L`` its width) and ``gamma_max = 3 v ln(1 / reflection) / L``:
      by a weak-damping estimate the two-way amplitude decay of a plane wave at normal
      incidence is ``reflection`` (Cerjan et al., Geophysics 50(4), 1985, damp
      multiplicatively; the same idea). Stronger damping is not better: the ramp itself
      reflects, most at low frequencies. Measured (tests/test_wave.py, a Ricker of 10 grid
      points per wavelength at its peak frequency, ``reflection=1e-2``, the default): the
      spurious arrivals at a receiver 10 cells from the layer peak at about 2 % of the direct
      wave with 20 cells (the default, two peak wavelengths), 1 % with 30, 0.3 % with 40;
      rigid walls (``sponge=0``) give 33 %.
      Outside the layer ``u = 0``.
    * free surface (``free_surface=True``): ``u = 0`` on the top row (``z = 0``) by an odd
      mirror image, so surface multiples and source/receiver ghosts appear.

Reverse mode: a hand-written discrete adjoint (``jax.custom_vjp``, `_adjoint_shot`). The
forward keeps the wavefield pair ``(u_prev, u)`` at the start of every block of
``B = ceil(sqrt(n_t))`` steps; the backward pass, shot by shot and block by block in
reverse, recomputes the block's forward wavefields from its pair and runs the exact
transpose of the leapfrog step backwards (the adjoint wavefield driven by the trace
cotangents at the receivers), so memory is about ``2 n_t / B`` wavefields per shot plus
``B`` for the block being reversed, instead of ``3 n_t``. It gives the gradient w.r.t. the
velocity (the sponge's damping, proportional to ``v``, included), the wavelet and the source
and receiver positions, equal to autodiff's to round-off. Measured (benchmarks/wave.py's
case: 100 x 200 grid, 10 m, 8 Hz Ricker, order 8, 1000 steps, float32, CPU):
``value_and_grad`` costs 2.5-3.0x the forward with 1 or 8 shots (autodiff through a
checkpointed scan: 4.0-4.3x with 1 shot, 7.8-9.5x with 8). Forward mode (``jvp``,
``linearize``) needs ``adjoint="autodiff"``: JAX autodiff through a checkpointed ``lax.scan``.

Everything follows the inputs' dtype: float64 under ``jax_enable_x64`` (the tests), else float32.
Shots are a batch axis (``vmap`` over shots); shard the source arrays over devices to spread
them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import (
    GaussianNoise,
    HasForward,
    as_array,
    as_int,
    check_key,
    real_number,
    rms,
)

# central-difference coefficients of d^2/dx^2 (times h^2): c0, c1, ..., c_{order/2}
_COEFFS = {
    2: (-2.0, 1.0),
    4: (-5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0),
    8: (-205.0 / 72.0, 8.0 / 5.0, -1.0 / 5.0, 8.0 / 315.0, -1.0 / 560.0),
}
ORDERS = (2, 4, 8)
MIN_POINTS_PER_WAVELENGTH = 5.0


# --------------------------------------------------------------------------------------
# wavelets, stability
# --------------------------------------------------------------------------------------
def _positive(owner: str, name: str, value, what: str) -> float:
    """``value`` as a float, or a ValueError: ``owner: name (what) must be a positive number``."""
    x = real_number(value)
    if x is None or not (math.isfinite(x) and x > 0):
        raise ValueError(f"{owner}: {name} ({what}) must be a positive number, got {value!r}.")
    return x


def ricker(freq_hz, dt, n_t, delay=None):
    """The Ricker wavelet ``(1 - 2 (pi f tau)^2) exp(-(pi f tau)^2)``, ``tau = n dt - delay``,
    sampled at ``n = 0 .. n_t - 1``; ``freq_hz`` is the peak frequency of its spectrum, ``delay``
    [s] defaults to ``1.5 / freq_hz`` (the wavelet starts at ~1e-9 of its peak). Its spectrum
    holds 99.9 % of the energy below ~2.6 ``freq_hz``."""
    f = _positive("ricker", "freq_hz", freq_hz, "the peak frequency in Hz")
    step = _positive("ricker", "dt", dt, "the time step in s")
    n = as_int(n_t)
    if n is None or n < 1:
        raise ValueError(f"ricker: n_t (the number of time samples) must be a positive integer, got {n_t!r}.")
    t0 = 1.5 / f if delay is None else real_number(delay)
    if t0 is None or not math.isfinite(t0):
        raise ValueError(f"ricker: delay must be a number of seconds or None, got {delay!r}.")
    a = (np.pi * f * (np.arange(n) * step - t0)) ** 2
    return jnp.asarray((1.0 - 2.0 * a) * np.exp(-a), jnp.result_type(float))


def stencil_eigenvalue(order: int = 8) -> float:
    """The largest eigenvalue of ``-h^2 D2`` for the 1D stencil (at the Nyquist wavenumber):
    4 (order 2), 16/3 (order 4), ~6.50 (order 8)."""
    c = _COEFFS[_check_order(order)]
    return float(-c[0] - 2.0 * sum(ck * (-1.0) ** k for k, ck in enumerate(c[1:], 1)))


def cfl_limit(v_max, spacing_m, order: int = 8, ndim: int = 2) -> float:
    """The largest stable leapfrog time step [s]: ``2 h / (v_max sqrt(ndim * lam))``, ``lam``
    = `stencil_eigenvalue` (a von Neumann analysis; the sponge only adds damping)."""
    return 2.0 * float(spacing_m) / (float(v_max) * math.sqrt(ndim * stencil_eigenvalue(order)))


def _check_order(order):
    if as_int(order) not in ORDERS:
        raise ValueError(f"order (of the spatial stencil) must be one of {ORDERS}, got {order!r}.")
    return int(order)


# --------------------------------------------------------------------------------------
# the propagator
# --------------------------------------------------------------------------------------
def _laplacian(u, coeffs, free_surface):
    """``h^2 laplace(u)`` with ``u = 0`` beyond the array (and an odd mirror about row 0 of
    axis 0 when ``free_surface``)."""
    r = len(coeffs) - 1
    out = coeffs[0] * u.ndim * u
    for ax in range(u.ndim):
        pad = [(0, 0)] * u.ndim
        pad[ax] = (r, r)
        up = jnp.pad(u, pad)
        if free_surface and ax == 0:  # u(-z) = -u(z): the ghost rows above the surface
            mirror = -jnp.flip(jax.lax.slice_in_dim(u, 1, r + 1, axis=0), axis=0)
            up = jnp.concatenate([mirror, jax.lax.slice_in_dim(up, r, up.shape[0], axis=0)], axis=0)
        n = u.shape[ax]
        for k in range(1, r + 1):
            lo = jax.lax.slice_in_dim(up, r - k, r - k + n, axis=ax)
            hi = jax.lax.slice_in_dim(up, r + k, r + k + n, axis=ax)
            out = out + coeffs[k] * (lo + hi)
    return out


def _interp_weights(pos, h, offset, shape):
    """Flat indices ``(..., 2^ndim)`` and multilinear weights of positions ``(..., ndim)`` [m]
    on the padded grid (``offset`` cells of padding before the model on each axis)."""
    ndim = len(shape)
    f = pos / h + jnp.asarray(offset, pos.dtype)
    i0 = jnp.clip(jnp.floor(f), 0, jnp.asarray(shape, pos.dtype) - 2)
    t = f - i0
    i0 = i0.astype(jnp.int32)
    idx, w = [], []
    for corner in np.ndindex(*(2,) * ndim):
        c = jnp.asarray(corner, jnp.int32)
        idx.append(jnp.ravel_multi_index(tuple(jnp.moveaxis(i0 + c, -1, 0)), shape, mode="clip"))
        w.append(jnp.prod(jnp.where(jnp.asarray(corner, bool), t, 1.0 - t), axis=-1))
    return jnp.stack(idx, -1), jnp.stack(w, -1)


def _damping(shape_pad, pads, h, width, v_pad, reflection):
    """``gamma(x)`` [1/s] of the sponge on the padded grid."""
    if width == 0:
        return jnp.zeros(shape_pad, v_pad.dtype)
    L = width * h
    d2 = jnp.zeros(shape_pad, v_pad.dtype)
    for ax, (lo, hi) in enumerate(pads):
        i = jnp.arange(shape_pad[ax], dtype=v_pad.dtype)
        d = jnp.maximum(jnp.maximum(lo - i, i - (shape_pad[ax] - 1 - hi)), 0.0) * h  # distance into the layer
        d2 = d2 + (d / L).reshape([-1 if a == ax else 1 for a in range(len(shape_pad))]) ** 2
    return 3.0 * v_pad * math.log(1.0 / reflection) / L * d2


def _block_size(n_t):
    return max(1, int(math.ceil(math.sqrt(n_t))))


ADJOINTS = ("hand", "autodiff")
_UNROLL = 2  # the forward runs two steps per loop iteration (measured 12 % faster; not the adjoint: 20 % slower)


def _pads(ndim, sponge, free_surface):
    return [(0 if free_surface else sponge, sponge)] + [(sponge, sponge)] * (ndim - 1)


def _coefficients(v_pad, pads, h, dt, sponge, reflection):
    """The leapfrog's ``(c1, c2, c3)``: ``u+ = c1 u - c2 u- + c3 h^2 laplace(u)``, pointwise
    functions of ``v_pad`` (the sponge's ``gamma`` is proportional to ``v_pad``)."""
    gamma = _damping(v_pad.shape, pads, h, sponge, v_pad, reflection)
    a = 0.5 * gamma * dt
    return 2.0 / (1.0 + a), (1.0 - a) / (1.0 + a), (v_pad * dt / h) ** 2 / (1.0 + a)


def _leapfrog(u_prev, u, s_n, c, s_idx, s_w, coeffs, free_surface, lu=None):
    """One time step: ``(u_next, L u)`` (``lu``: ``L u`` if already known)."""
    c1, c2, c3 = c
    if lu is None:
        lu = _laplacian(u, coeffs, free_surface)
    u_next = c1 * u - c2 * u_prev + c3 * lu
    u_next = u_next.reshape(-1).at[s_idx].add(s_w * s_n, mode="promise_in_bounds").reshape(u.shape)
    if free_surface:
        u_next = u_next.at[0].set(0.0)
    return u_next, lu


# cfg = (h, dt, order, sponge, reflection, free_surface): static, hashable
def _forward_shot(c, cfg, s_idx, s_w, r_idx, r_w, w, save):
    """Traces ``(nb, block, R)`` of one shot (``w``: ``(nb, block)``) and, if ``save``, the pair
    ``(u_prev, u)`` at every block start ``(nb, 2, *shape)``."""
    coeffs, fs = _COEFFS[cfg[2]], cfg[5]

    def step(carry, s_n):
        u_prev, u = carry
        trace = jnp.sum(u.reshape(-1)[r_idx] * r_w, axis=-1)
        return (u, _leapfrog(u_prev, u, s_n, c, s_idx, s_w, coeffs, fs)[0]), trace

    def run_block(carry, w_blk):
        out, traces = jax.lax.scan(step, carry, w_blk, unroll=_UNROLL)
        return out, (traces, jnp.stack(carry) if save else None)

    zero = jnp.zeros(c[0].shape, c[0].dtype)
    _, (traces, ckpt) = jax.lax.scan(run_block, (zero, zero), w)
    return traces, ckpt


def _adjoint_shot(c, dc, cfg, s_idx, s_w, r_idx, r_w, w, ckpt, g):
    """The discrete adjoint of one shot, block by block in reverse: each block's forward
    wavefields are recomputed from its saved pair, then the transposed steps run backwards.

    With ``w_n = c1 u_n - c2 u_{n-1} + c3 L u_n + S s_n`` and ``u_{n+1} = P w_n`` (``P``
    zeroes the free-surface row, else the identity), ``trace_n = R u_n``, and ``mu_n``
    the adjoint of ``w_{n-1}``:
    ``mu_n = P (R^T g_n + c1 mu_{n+1} + L^T (c3 mu_{n+1}) - c2 mu_{n+2})``, ``mu_N = mu_{N+1} = 0``.
    ``L`` is symmetric with zero padding; with the free surface's odd mirror it is not
    (the mirror couples row 0 to rows 1..r one way), but ``P L^T P = P L P`` and ``L``
    only ever acts on ``P``-projected fields here, so ``L`` serves as its own transpose.
    Returns ``dJ/dv_pad = sum_n mu_{n+1} dw_n/dv_pad`` (``dw_n/dv_pad`` is pointwise:
    ``dc1 u_n - dc2 u_{n-1} + dc3 L u_n``), ``mu_{n+1}`` at the source nodes ``(N, 2^d)``
    and ``u_n`` at the receiver nodes ``(N, R, 2^d)``."""
    c1, c2, c3 = c
    d1, d2, d3 = dc
    coeffs, fs = _COEFFS[cfg[2]], cfg[5]
    shape = c1.shape

    def fstep(carry, s_n):
        # L u rides in the carry, so it is materialised once: read by both u_next and q
        # (else XLA fuses the stencil into each of the two and computes it twice)
        u_prev, u, lu = carry
        u_next, _ = _leapfrog(u_prev, u, s_n, c, s_idx, s_w, coeffs, fs, lu=lu)
        q = d1 * u - d2 * u_prev + d3 * lu
        return (u, u_next, _laplacian(u_next, coeffs, fs)), (q, u.reshape(-1)[r_idx])

    def bstep(carry, x):
        mu1, mu2, grad = carry  # mu_{n+1}, mu_{n+2}
        q, g_n = x
        lam = c1 * mu1 - c2 * mu2 + _laplacian(c3 * mu1, coeffs, fs)
        lam = lam.reshape(-1).at[r_idx].add(g_n[:, None] * r_w, mode="promise_in_bounds").reshape(shape)
        if fs:
            lam = lam.at[0].set(0.0)
        return (lam, mu1, grad + mu1 * q), mu1.reshape(-1)[s_idx]

    def block(carry, x):
        pair, g_blk, w_blk = x
        _, (q, samples) = jax.lax.scan(fstep, (pair[0], pair[1], _laplacian(pair[1], coeffs, fs)), w_blk)
        carry, at_src = jax.lax.scan(bstep, carry, (q, g_blk), reverse=True)
        return carry, (at_src, samples)

    zero = jnp.zeros(shape, c1.dtype)
    (_, _, grad), (at_src, samples) = jax.lax.scan(block, (zero, zero, zero), (ckpt, g, w), reverse=True)
    return grad, at_src.reshape(-1, at_src.shape[-1]), samples.reshape((-1,) + samples.shape[2:])


def _static_coefficients(v, cfg):
    h, dt, _, sponge, reflection, fs = cfg
    pads = _pads(v.ndim, sponge, fs)
    return _coefficients(jnp.pad(v, pads, mode="edge"), pads, h, dt, sponge, reflection)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _propagate(cfg, v, s_idx, s_w, r_idx, r_w, w):
    """Traces ``(S, nb, block, R)`` with the hand-written adjoint (`_adjoint_shot`) as its VJP.
    ``s_w`` (S, 2^d) and ``r_w`` (S, R, 2^d) are the interpolation weights (``s_w`` times
    ``dt^2 / h^d``), ``w`` (S, nb, block) the zero-padded wavelets."""
    c = _static_coefficients(v, cfg)
    run = lambda si, sw, ri, rw, wi: _forward_shot(c, cfg, si, sw, ri, rw, wi, False)[0]
    return jax.vmap(run)(s_idx, s_w, r_idx, r_w, w)


def _propagate_fwd(cfg, v, s_idx, s_w, r_idx, r_w, w):
    c = _static_coefficients(v, cfg)
    run = lambda si, sw, ri, rw, wi: _forward_shot(c, cfg, si, sw, ri, rw, wi, True)
    traces, ckpt = jax.vmap(run)(s_idx, s_w, r_idx, r_w, w)
    return traces, (v, s_idx, s_w, r_idx, r_w, w, ckpt)


def _propagate_bwd(cfg, res, g):
    v, s_idx, s_w, r_idx, r_w, w, ckpt = res
    h, dt, _, sponge, reflection, fs = cfg
    pads = _pads(v.ndim, sponge, fs)
    v_pad, pad_vjp = jax.vjp(lambda x: jnp.pad(x, pads, mode="edge"), v)
    # the coefficients are pointwise in v_pad: one JVP along ones gives their derivatives
    c, dc = jax.jvp(lambda x: _coefficients(x, pads, h, dt, sponge, reflection), (v_pad,), (jnp.ones_like(v_pad),))
    run = lambda si, sw, ri, rw, wi, ck, gi: _adjoint_shot(c, dc, cfg, si, sw, ri, rw, wi, ck, gi)
    grad, at_src, samples = jax.lax.map(lambda a: run(*a), (s_idx, s_w, r_idx, r_w, w, ckpt, g))  # shot by shot: cache
    S, nb, block = w.shape
    g_flat = g.reshape(S, nb * block, -1)
    d_s_w = jnp.einsum("sn,snk->sk", w.reshape(S, -1), at_src)
    d_w = jnp.einsum("snk,sk->sn", at_src, s_w).reshape(w.shape)
    d_r_w = jnp.einsum("snr,snrk->srk", g_flat, samples)
    return pad_vjp(jnp.sum(grad, axis=0))[0], None, d_s_w, None, d_r_w, d_w


_propagate.defvjp(_propagate_fwd, _propagate_bwd)


@functools.partial(jax.jit, static_argnames=("h", "dt", "order", "sponge", "reflection", "free_surface", "block",
                                             "adjoint"))
def _simulate(v, src, rec, wavelet, *, h, dt, order, sponge, reflection, free_surface, block, adjoint="hand"):
    ndim = v.ndim
    dtype = v.dtype
    pads = _pads(ndim, sponge, free_surface)
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(v.shape, pads))
    offset = [p[0] for p in pads]
    coeffs = _COEFFS[order]
    src_idx, src_w = _interp_weights(src.astype(dtype), h, offset, shape)  # (S, 2^d)
    rec_idx, rec_w = _interp_weights(rec.astype(dtype), h, offset, shape)  # (S, R, 2^d)
    src_w = src_w * (dt * dt / h**ndim)  # sources sit in the model, where the damping is zero
    n_t = wavelet.shape[-1]
    nb = -(-n_t // block)
    wav = jnp.pad(wavelet.astype(dtype), [(0, 0), (0, nb * block - n_t)]).reshape(-1, nb, block)
    if adjoint == "hand":
        cfg = (h, dt, order, sponge, reflection, free_surface)
        traces = _propagate(cfg, v, src_idx, src_w, rec_idx, rec_w, wav)
        return traces.reshape(traces.shape[0], nb * block, -1)[:, :n_t]

    c = _coefficients(jnp.pad(v, pads, mode="edge"), pads, h, dt, sponge, reflection)

    def shot(s_idx, s_w, r_idx, r_w, w):
        def step(carry, s_n):
            u_prev, u = carry
            trace = jnp.sum(u.reshape(-1)[r_idx] * r_w, axis=-1)
            return (u, _leapfrog(u_prev, u, s_n, c, s_idx, s_w, coeffs, free_surface)[0]), trace

        @jax.checkpoint
        def run_block(carry, w_blk):
            return jax.lax.scan(step, carry, w_blk)

        zero = jnp.zeros(shape, dtype)
        _, traces = jax.lax.scan(run_block, (zero, zero), w)
        return traces.reshape(nb * block, -1)[:n_t]

    return jax.vmap(shot)(src_idx, src_w, rec_idx, rec_w, wav)


def _concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _positions(name, p, n_shots, ndim, extent, per_shot_ok):
    """Positions as a float array ``(S, ndim)`` (sources) or ``(S, R, ndim)`` (receivers)."""
    p = as_array(p, f"simulate: {name} must be an array of positions in metres")
    want = "(n_shots, ndim)" if not per_shot_ok else "(n_rec, ndim) or (n_shots, n_rec, ndim)"
    if p.ndim == 1 and not per_shot_ok:
        p = p[None]
    if p.shape[-1:] != (ndim,) or p.ndim not in ((2,) if not per_shot_ok else (2, 3)):
        raise ValueError(f"simulate: {name} must have shape {want} with ndim = {ndim} coordinates in metres "
                         f"(z first), got shape {tuple(p.shape)}.")
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    if _concrete(p):
        a = np.asarray(p)
        out = ~np.all(np.isfinite(a) & (a >= 0) & (a <= np.asarray(extent) + 1e-9 * max(extent)), axis=-1)
        if np.any(out):
            bad = a[out][0]
            raise ValueError(f"simulate: {name} {tuple(np.round(bad, 3).tolist())} m lies outside the grid "
                             f"[0, {tuple(round(e, 3) for e in extent)}] m (z first); move it inside.")
    return p


def simulate(v, src_positions, rec_positions, wavelet, *, spacing_m, dt, order: int = 8, sponge: int = 20,
             reflection: float = 1e-2, free_surface: bool = False, block: int | None = None, adjoint: str = "hand"):
    """Receiver traces of the acoustic wave equation, one shot per source position.

    Args:
        v: velocity [m/s], shape ``(nz, nx)`` or ``(nz, ny, nx)``; every entry positive.
        src_positions: ``(n_shots, ndim)`` source positions [m], ``(z, x)`` order; one
            source per shot, inside the model box ``[0, (n - 1) h]``.
        rec_positions: ``(n_rec, ndim)`` (the same receivers for every shot) or
            ``(n_shots, n_rec, ndim)`` receiver positions [m].
        wavelet: the source time function, ``(n_t,)`` (every shot) or ``(n_shots, n_t)``,
            e.g. `ricker`; sample ``n`` is applied at ``t = n dt``.
        spacing_m: grid spacing ``h`` [m] (the same on every axis).
        dt: time step [s]; at most `cfl_limit` ``(max v, h, order, ndim)``.
        order: spatial order, 2, 4 or 8.
        sponge: width of the absorbing layer in cells (0: rigid ``u = 0`` walls).
        reflection: the sponge's nominal two-way amplitude reflection (see the module doc).
        free_surface: ``u = 0`` at ``z = 0`` (no sponge on top) instead of an absorbing top.
        block: time steps per checkpointed block (default ``ceil(sqrt(n_t))``).
        adjoint: ``"hand"`` (default): reverse mode by the hand-written discrete adjoint
            (see the module doc), exact and cheaper, but reverse mode only: ``jax.jvp`` /
            ``jax.linearize`` / ``jacfwd`` raise "can't apply forward-mode autodiff (jvp) to a
            custom_vjp function". ``"autodiff"``: JAX autodiff through the time loop
            (forward and reverse mode). Both give the same traces and gradients (w.r.t.
            ``v``, the wavelet and the source and receiver positions).

    Returns:
        traces ``(n_shots, n_t, n_rec)``: ``u`` at the receivers at ``t = n dt``.

    Pure JAX (jit/grad/vmap-safe; checks on values run only on concrete inputs). Warns when
    the model holds fewer than 5 points per wavelength at the wavelet's peak frequency
    (``min v / (f_peak h)``).
    """
    v = as_array(v, "simulate: v (the velocity in m/s) must be an array")
    if v.ndim not in (2, 3):
        raise ValueError(f"simulate: v must be a 2D or 3D velocity grid, got shape {tuple(v.shape)}.")
    if min(v.shape) < 2:
        raise ValueError(f"simulate: v needs at least 2 nodes per axis, got shape {tuple(v.shape)}.")
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.result_type(float))
    order = _check_order(order)
    h = _positive("simulate", "spacing_m", spacing_m, "the grid spacing in m")
    step = _positive("simulate", "dt", dt, "the time step in s")
    width = as_int(sponge)
    if width is None or width < 0:
        raise ValueError(f"simulate: sponge (the absorbing layer's width in cells) must be an integer >= 0, got {sponge!r}.")
    refl = real_number(reflection)
    if refl is None or not (0 < refl < 1):
        raise ValueError(f"simulate: reflection must be a number in (0, 1) such as 1e-2, got {reflection!r}.")
    ndim = v.ndim
    extent = tuple((n - 1) * h for n in v.shape)
    src = _positions("source position", src_positions, None, ndim, extent, per_shot_ok=False)
    n_shots = src.shape[0]
    rec = _positions("receiver position", rec_positions, n_shots, ndim, extent, per_shot_ok=True)
    if rec.ndim == 2:
        rec = jnp.broadcast_to(rec, (n_shots,) + rec.shape)
    elif rec.shape[0] != n_shots:
        raise ValueError(f"simulate: per-shot receivers have {rec.shape[0]} shots but there are {n_shots} sources.")
    w = as_array(wavelet, "simulate: wavelet must be an array of samples (n_t,) or (n_shots, n_t)")
    if w.ndim == 1:
        w = jnp.broadcast_to(w, (n_shots, w.shape[0]))
    if w.ndim != 2 or w.shape[0] != n_shots or w.shape[1] < 1:
        raise ValueError(f"simulate: wavelet must have shape (n_t,) or (n_shots={n_shots}, n_t), got {tuple(w.shape)}.")
    if _concrete(v):
        a = np.asarray(v)
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ValueError(f"simulate: the velocity must be positive and finite everywhere; its minimum is "
                             f"{np.nanmin(a):g} m/s" + ("" if np.all(np.isfinite(a)) else " and it has NaN/inf entries") + ".")
        limit = cfl_limit(a.max(), h, order, ndim)
        if step > limit:
            raise ValueError(f"simulate: dt = {step:.4g} s exceeds the CFL limit {limit:.4g} s of the order-{order} "
                             f"stencil in {ndim}D at v_max = {a.max():g} m/s and h = {h:g} m "
                             f"(dt <= 2 h / (v_max sqrt({ndim} * {stencil_eigenvalue(order):.3f}))); use a smaller dt.")
        if _concrete(w):
            f_peak = peak_frequency(np.asarray(w[0]), step)
            if f_peak > 0:
                ppw = a.min() / (f_peak * h)
                if ppw < MIN_POINTS_PER_WAVELENGTH:
                    warnings.warn(f"simulate: only {ppw:.2f} grid points per wavelength (v_min = {a.min():g} m/s, "
                                  f"peak frequency {f_peak:.3g} Hz, h = {h:g} m); use >= {MIN_POINTS_PER_WAVELENGTH:g} "
                                  "(a smaller spacing or a lower frequency) or the result is dominated by dispersion.",
                                  stacklevel=2)
    n_t = int(w.shape[1])
    blk = _block_size(n_t) if block is None else as_int(block)
    if blk is None or blk < 1:
        raise ValueError(f"simulate: block must be a positive integer or None, got {block!r}.")
    if adjoint not in ADJOINTS:
        raise ValueError(f"simulate: adjoint must be one of {ADJOINTS}, got {adjoint!r}.")
    return _simulate(v, src, rec, w.astype(v.dtype), h=float(h), dt=float(step), order=order, sponge=int(width),
                     reflection=float(refl), free_surface=bool(free_surface), block=int(blk), adjoint=adjoint)


def peak_frequency(wavelet, dt) -> float:
    """The frequency [Hz] of the largest amplitude in the wavelet's spectrum (zero-padded FFT)."""
    w = np.asarray(wavelet, float)
    n = max(4096, 4 * w.size)
    spec = np.abs(np.fft.rfft(w, n))
    return float(np.fft.rfftfreq(n, dt)[int(np.argmax(spec))])


# --------------------------------------------------------------------------------------
# velocity models
# --------------------------------------------------------------------------------------
def _grid(owner, shape, spacing_m):
    try:
        s = tuple(as_int(n) for n in shape)
    except TypeError:
        s = (None,)
    if len(s) not in (2, 3) or any(n is None or n < 2 for n in s):
        raise ValueError(f"{owner}: shape must be 2 or 3 integers >= 2 (depth first), got {shape!r}.")
    h = real_number(spacing_m)
    if h is None or not (math.isfinite(h) and h > 0):
        raise ValueError(f"{owner}: spacing_m (the grid spacing in m) must be a positive number, got {spacing_m!r}.")
    z = np.arange(s[0]) * h
    lateral = np.meshgrid(*[np.arange(n) * h for n in s[1:]], indexing="ij")
    return s, h, z.reshape((-1,) + (1,) * (len(s) - 1)), lateral


def _layer_velocities(owner, velocities):
    vel = np.asarray(velocities, float).ravel()
    if vel.size < 1 or not np.all(np.isfinite(vel) & (vel > 0)):
        raise ValueError(f"{owner}: velocities must be positive numbers in m/s, got {velocities!r}.")
    return vel


def layered(shape, spacing_m: float, velocities: Sequence[float] = (1500.0, 2000.0, 2500.0, 3000.0, 3500.0),
            dip_deg: float = 0.0, undulation: float = 0.0):
    """Horizontal (or dipping, gently undulating) layers of the given ``velocities`` [m/s], top
    to bottom, of equal thickness. ``dip_deg`` tilts the interfaces along the last axis;
    ``undulation`` (fraction of a layer's thickness) bends them by one sine period across
    the model. Returns a float array of ``shape`` (depth first)."""
    s, h, z, lat = _grid("layered", shape, spacing_m)
    vel = _layer_velocities("layered", velocities)
    depth = (s[0] - 1) * h
    x = lat[-1]
    width = max((s[-1] - 1) * h, h)
    thick = depth / vel.size
    shift = np.tan(np.radians(dip_deg)) * (x - width / 2) + undulation * thick * np.sin(2 * np.pi * x / width)
    k = np.clip(np.floor((z - shift[None]) / thick), 0, vel.size - 1).astype(int)
    return jnp.asarray(vel[k], jnp.result_type(float))


def faulted(shape, spacing_m: float, velocities: Sequence[float] = (1500.0, 2000.0, 2500.0, 3000.0, 3500.0),
            throw: float = 0.5, fault_dip_deg: float = 60.0, dip_deg: float = 5.0):
    """`layered` dipping layers cut by a normal fault through the model's centre that dips at
    ``fault_dip_deg``; the hanging wall (right of the fault) drops by ``throw`` layer
    thicknesses."""
    s, h, z, lat = _grid("faulted", shape, spacing_m)
    vel = _layer_velocities("faulted", velocities)
    depth, width = (s[0] - 1) * h, max((s[-1] - 1) * h, h)
    x = lat[-1][None]
    thick = depth / vel.size
    fault_x = width / 2 + (z - depth / 2) / np.tan(np.radians(fault_dip_deg))
    shift = np.tan(np.radians(dip_deg)) * (x - width / 2) + np.where(x > fault_x, throw * thick, 0.0)
    k = np.clip(np.floor((z - shift) / thick), 0, vel.size - 1).astype(int)
    v = vel[k]
    v[: max(1, s[0] // (2 * vel.size))] = vel[0]  # keep the top (water) layer flat
    return jnp.asarray(v, jnp.result_type(float))


def layered_salt(shape, spacing_m: float, velocities: Sequence[float] = (1500.0, 2000.0, 2500.0, 3000.0, 3500.0),
                 salt_velocity: float = 4500.0, salt_centre=(0.55, 0.5), salt_size=(0.22, 0.18)):
    """Gently undulating sediment layers (1500-3500 m/s, top to bottom) with a salt body of
    ``salt_velocity`` [m/s]: a dome (a superellipse with a flat base) centred at
    ``salt_centre`` (fractions of depth and width), semi-axes ``salt_size`` (fractions)."""
    s, h, z, lat = _grid("layered_salt", shape, spacing_m)
    v = np.array(layered(shape, spacing_m, velocities, dip_deg=2.0, undulation=0.3))
    sv = real_number(salt_velocity)
    if sv is None or not sv > 0:
        raise ValueError(f"layered_salt: salt_velocity must be a positive number in m/s, got {salt_velocity!r}.")
    depth, width = (s[0] - 1) * h, max((s[-1] - 1) * h, h)
    zc, xc = salt_centre[0] * depth, salt_centre[1] * width
    az, ax = salt_size[0] * depth, salt_size[1] * width
    rr = sum(np.abs((c - xc) / ax) ** 2.5 for c in lat)[None]
    top = np.abs((z - zc) / az) ** 2.0
    inside = (top + rr <= 1.0) | ((z >= zc) & (z <= zc + 0.5 * az) & (rr <= 1.0))
    v[inside] = sv
    return jnp.asarray(v, jnp.result_type(float))


def smoothed(v, sigma_m: float, spacing_m: float = 1.0):
    """``v`` smoothed by a Gaussian of standard deviation ``sigma_m`` [m] (``spacing_m`` the
    grid spacing; pass ``sigma_m`` in cells with the default 1), edges extended: a starting
    model for `fwi`. Smooths the slowness ``1/v`` (travel times are kept better)."""
    import scipy.ndimage as ndi

    a = np.asarray(as_array(v, "smoothed: v must be an array of velocities"), float)
    s, h = real_number(sigma_m), real_number(spacing_m)
    if s is None or not (math.isfinite(s) and s >= 0) or h is None or not h > 0:
        raise ValueError(f"smoothed: sigma_m must be a number >= 0 and spacing_m > 0, got {sigma_m!r}, {spacing_m!r}.")
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"smoothed: v must be positive and finite everywhere; its minimum is {np.nanmin(a):g}.")
    out = 1.0 / ndi.gaussian_filter(1.0 / a, s / h, mode="nearest")
    return jnp.asarray(out, jnp.result_type(float))


# --------------------------------------------------------------------------------------
# the inverse problem
# --------------------------------------------------------------------------------------
class FWI(HasForward):
    """Full-waveform inversion: recover the velocity ``v`` on the grid from receiver traces.

    The unknown ``theta`` (unconstrained, grid-shaped) maps to the velocity by a scaled
    sigmoid, ``v = v_min + (v_max - v_min) sigmoid(theta)`` (`constrain`), so every iterate
    stays within the physical bounds ``(v_min, v_max)`` and the time step ``dt`` (chosen for
    ``v_max``) stays stable. ``forward(theta)`` = `simulate` traces ``(n_shots, n_t, n_rec)``;
    metrics: ``rel_l2`` of ``v`` against ``x_true``.
    """

    y_obs: jax.Array
    noise: GaussianNoise
    x_true: jax.Array | None
    v_init: jax.Array
    src: jax.Array
    rec: jax.Array
    wavelet: jax.Array
    spacing_m: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    v_min: float = eqx.field(static=True)
    v_max: float = eqx.field(static=True)
    order: int = eqx.field(static=True, default=8)
    sponge: int = eqx.field(static=True, default=20)
    free_surface: bool = eqx.field(static=True, default=False)
    adjoint: str = eqx.field(static=True, default="hand")  # `simulate`'s; "autodiff" for forward mode

    def constrain(self, theta):
        return self.v_min + (self.v_max - self.v_min) * jax.nn.sigmoid(theta)

    def unconstrain(self, v):
        """The inverse of `constrain` (``v`` strictly inside ``(v_min, v_max)``)."""
        p = (jnp.asarray(v) - self.v_min) / (self.v_max - self.v_min)
        return jnp.log(p) - jnp.log1p(-p)

    def forward(self, theta):
        return simulate(self.constrain(theta), self.src, self.rec, self.wavelet, spacing_m=self.spacing_m, dt=self.dt,
                        order=self.order, sponge=self.sponge, free_surface=self.free_surface, adjoint=self.adjoint)

    def init_params(self):
        return self.unconstrain(self.v_init)

    @property
    def has_forward_mode(self) -> bool:
        """Whether ``jax.jvp`` works through `forward` (only with ``adjoint="autodiff"``);
        solvers that need Jacobian products then transpose the hand adjoint instead
        (`invsolve._linop.linearize`)."""
        return self.adjoint == "autodiff"

    def with_observations(self, y_obs) -> FWI:
        """The same problem with other data (e.g. another noise draw)."""
        return dataclasses.replace(self, y_obs=jnp.asarray(y_obs, self.y_obs.dtype))


def fwi(v_true, n_shots: int = 8, freq_hz: float = 8.0, noise: float = 0.01, *, key, spacing_m: float = 10.0,
        init: Any = "smoothed", smooth_m: float | None = None, bounds=(1400.0, 5000.0), t_max: float | None = None,
        n_rec: int | None = None, depth_m: float | None = None, order: int = 8, sponge: int = 20,
        free_surface: bool = False, cfl: float = 0.9) -> FWI:
    """A synthetic full-waveform inversion problem (2D or 3D).

    ``v_true`` may be a velocity array or the output of `layered_salt` / `layered` /
    `faulted`; ``spacing_m`` must be the grid spacing it was built with (default 10 m).
    ``n_shots`` Ricker sources of peak frequency ``freq_hz`` evenly spaced along the surface
    (the last axis; in 3D a line along it) at ``depth_m`` (default 2 cells), ``n_rec``
    receivers (default one per column) at the same depth. ``dt = cfl * cfl_limit(v_max)``;
    ``t_max`` (default: the time to cross the model's diagonal at the start model's mean
    velocity, times 1.2). Data = traces + Gaussian noise of standard deviation
    ``noise * rms(traces)``. ``key`` seeds the noise.

    ``init``: ``"smoothed"`` (`smoothed` true model, ``smooth_m`` default one wavelength at
    ``v_min`` of the truth, i.e. ``min(v_true) / freq_hz``), ``"linear"`` (a 1D gradient from
    ``min`` to ``max`` of the smoothed model with depth), or a velocity array. ``bounds`` =
    ``(v_min, v_max)`` m/s of `FWI.constrain`; the truth and the start must lie strictly inside.
    """
    check_key("wave.fwi", key)
    v_true = as_array(v_true, "fwi: v_true must be a velocity array")
    if v_true.ndim not in (2, 3) or not jnp.issubdtype(v_true.dtype, jnp.floating):
        raise ValueError(f"fwi: v_true must be a 2D or 3D float velocity array, got shape {tuple(v_true.shape)}.")
    vt = np.asarray(v_true)
    if not np.all(np.isfinite(vt) & (vt > 0)):
        raise ValueError(f"fwi: v_true must be positive and finite everywhere; its minimum is {np.nanmin(vt):g} m/s.")
    ns = as_int(n_shots)
    if ns is None or ns < 1:
        raise ValueError(f"fwi: n_shots must be a positive integer, got {n_shots!r}.")
    f = real_number(freq_hz)
    if f is None or not (math.isfinite(f) and f > 0):
        raise ValueError(f"fwi: freq_hz (the Ricker peak frequency) must be a positive number, got {freq_hz!r}.")
    level = real_number(noise)
    if level is None or not (math.isfinite(level) and level > 0):
        raise ValueError(f"fwi: noise must be a positive relative noise level such as 0.01, got {noise!r}.")
    h = real_number(spacing_m)
    if h is None or not (math.isfinite(h) and h > 0):
        raise ValueError(f"fwi: spacing_m must be a positive number of metres, got {spacing_m!r}.")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"fwi: bounds must be two numbers (v_min, v_max) in m/s, got {bounds!r}.") from None
    if not 0 < lo < hi:
        raise ValueError(f"fwi: bounds must satisfy 0 < v_min < v_max, got {bounds!r}.")
    if not (vt.min() > lo and vt.max() < hi):
        raise ValueError(f"fwi: v_true spans {vt.min():g}-{vt.max():g} m/s, outside bounds ({lo:g}, {hi:g}); "
                         "pass wider bounds=(v_min, v_max).")
    dtype = v_true.dtype
    shape = vt.shape
    if isinstance(init, str):
        if init not in ("smoothed", "linear"):
            raise ValueError(f"fwi: init must be 'smoothed', 'linear' or a velocity array, got {init!r}.")
        sm = vt.min() / f if smooth_m is None else smooth_m
        v0 = np.asarray(smoothed(vt, sm, h))
        if init == "linear":
            prof = np.linspace(v0.min(), v0.max(), shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
            v0 = np.broadcast_to(prof, shape).copy()
    else:
        v0 = np.asarray(as_array(init, "fwi: init must be 'smoothed', 'linear' or a velocity array"), float)
        if v0.shape != shape:
            raise ValueError(f"fwi: an init array must have v_true's shape {shape}, got {v0.shape}.")
    v0 = np.clip(v0, lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo))
    dt = cfl * cfl_limit(hi, h, order, len(shape))
    extent = [(n - 1) * h for n in shape]
    z = 2 * h if depth_m is None else float(depth_m)
    if t_max is None:
        t_max = 1.2 * math.sqrt(sum(e * e for e in extent)) / float(np.mean(v0)) + 1.5 / f
    n_t = int(math.ceil(t_max / dt)) + 1
    width = extent[-1]
    sx = (np.arange(ns) + 0.5) / ns * width
    mid = [e / 2 for e in extent[1:-1]]
    src = np.stack([np.full(ns, z), *[np.full(ns, m) for m in mid], sx], -1)
    nr = shape[-1] if n_rec is None else int(n_rec)
    rx = np.linspace(0.0, width, nr)
    rec = np.stack([np.full(nr, z), *[np.full(nr, m) for m in mid], rx], -1)
    wav = ricker(f, dt, n_t)
    clean = simulate(v_true, src, rec, wav, spacing_m=h, dt=dt, order=order, sponge=sponge, free_surface=free_surface)
    sigma = level * rms(clean)
    y = clean + sigma * jax.random.normal(key, clean.shape, dtype)
    return FWI(y_obs=y, noise=GaussianNoise(sigma), x_true=jnp.asarray(vt, dtype), v_init=jnp.asarray(v0, dtype),
               src=jnp.asarray(src, dtype), rec=jnp.asarray(rec, dtype), wavelet=wav.astype(dtype), spacing_m=float(h),
               dt=float(dt), v_min=lo, v_max=hi, order=order, sponge=sponge, free_surface=bool(free_surface))
