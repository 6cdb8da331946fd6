"""Least squares on the normal equations, ``min ||A x - y||^2 + damp^2 ||x||^2``, and the
pieces every linear least-squares solver shares (whitening by the noise sigma, the power-iteration
norm estimate).

Noise weighting: the data term is the problem's negative log-likelihood
``1/2 ||(A x - y) / sigma||^2`` with ``sigma = problem.noise.sigma`` (a scalar, or an array
of the data's shape for weighted least squares). The equations are written for the
whitened operator and data ``A <- A / sigma``, ``y <- y / sigma``; for ``sigma = 1`` they are
the plain ones. So a scalar ``sigma`` changes nothing for undamped `CGLS`, while ``damp`` is a
weight relative to the likelihood (``CGLS(damp)`` is MAP with ``priors.Tikhonov(damp**2)``).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._problem import GaussianNoise, HasLinearOperator
from .._solution import RESULTS, Estimate
from .._solver import AbstractSolver, check_nonneg, check_rtol
from .krylov import safe_div, vdot


class Whitened(eqx.Module):
    """``A / sigma``, its transpose and ``y / sigma`` in the dtype of the data."""

    A: object
    At: object
    w: jax.Array  # 1 / sigma, scalar or data-shaped
    y: jax.Array  # whitened data

    @property
    def dtype(self):
        return self.y.dtype

    def mv(self, x):
        return (self.A.mv(x) * self.w).astype(self.dtype)

    def rmv(self, r):
        return self.At.mv(r * self.w).astype(self.dtype)


def whiten(problem) -> Whitened:
    A = problem.operator()
    y = jnp.asarray(problem.y_obs)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise TypeError(f"linear least-squares solvers need real floating-point data, got dtype {y.dtype}.")
    noise = getattr(problem, "noise", None)
    if noise is not None and not isinstance(noise, GaussianNoise):
        raise TypeError(f"the linear least-squares solvers (CGLS, Landweber, ChambollePock) need Gaussian noise "
                        f"(invsolve.GaussianNoise), got {type(noise).__name__}; use GradientMAP for other likelihoods.")
    sigma = getattr(noise, "sigma", None)
    w = jnp.ones((), y.dtype) if sigma is None else (1.0 / jnp.asarray(sigma)).astype(y.dtype)
    return Whitened(A, A.transpose(), w, y * w)


def _start_vector(shape, dtype):
    """The fixed start vector of the power iterations (unit norm, deterministic)."""
    v = jax.random.normal(jax.random.key(0), shape, dtype)
    return v / jnp.linalg.norm(v)


# Power iteration approaches ||K|| from below, slowly when the top singular values cluster
# (30 iterations: up to ~2% low); Chambolle-Pock needs tau sigma ||K||^2 < 1, so the estimate
# is inflated by this margin (as is common practice, e.g. ODL's examples use 10%).
NORM_MARGIN = 1.05


def check_power_iterations(solver: str, n) -> None:
    check_nonneg(f"{solver} power_iterations", n, integer=True, allow_none=False)
    if int(n) < 1:
        raise ValueError(f"{solver} power_iterations must be at least 1.")


def power_norm_sq(normal, shape, dtype, iterations: int) -> jax.Array:
    """Estimate ``lambda_max(M) = ||K||^2`` for ``M = K^T K`` given as ``normal(v) = M v``.

    Power iteration from `_start_vector`; returns ``||M v_k||`` for the last unit vector
    ``v_k``: a lower bound on ``||K||^2`` that converges to it.
    """
    v0 = _start_vector(shape, dtype)

    def body(_, carry):
        v, _ = carry
        w = normal(v)
        wn = jnp.linalg.norm(w)
        return jnp.where(wn > 0, w / jnp.where(wn > 0, wn, 1), v), wn

    _, est = jax.lax.fori_loop(0, int(iterations), body, (v0, jnp.zeros((), dtype)))
    return est


# --------------------------------------------------------------------------------------
# CGLS
# --------------------------------------------------------------------------------------
class CGLSState(eqx.Module):
    x: jax.Array
    r: jax.Array  # y - A x (data shape)
    s: jax.Array  # A^T r - damp^2 x, the normal-equation residual
    p: jax.Array
    gamma: jax.Array  # ||s||^2
    snorm: jax.Array
    s0norm: jax.Array  # ||A^T y||
    ynorm: jax.Array
    curvature_ok: jax.Array


class CGLS(AbstractSolver):
    """Conjugate gradients for least squares, ``min_x ||A x - y||^2 + damp^2 ||x||^2``.

    Solves the normal equations ``(A^T A + damp^2 I) x = A^T y`` without forming
    ``A^T A``: CG (Hestenes & Stiefel 1952) rewritten with the data residual ``r = y - A x``
    updated recursively (the stable "CGLS" variant; Björck, *Numerical Methods for Least
    Squares Problems*, SIAM 1996, Alg. 7.4.1; Paige & Saunders, ACM TOMS 8, 1982). From
    ``x_0 = 0``, ``r_0 = y``, ``s_0 = p_0 = A^T y``, ``gamma_0 = ||s_0||^2``::

        q = A p_k;   alpha = gamma_k / (||q||^2 + damp^2 ||p_k||^2)
        x_{k+1} = x_k + alpha p_k;   r_{k+1} = r_k - alpha q
        s_{k+1} = A^T r_{k+1} - damp^2 x_{k+1};   gamma_{k+1} = ||s_{k+1}||^2
        p_{k+1} = s_{k+1} + (gamma_{k+1} / gamma_k) p_k

    One ``A`` and one ``A^T`` application per iteration. For ``damp = 0`` and
    rank-deficient ``A`` it converges to the minimum-norm least-squares solution.
    Stopping early is itself a regularisation (semi-convergence, e.g. in CT): set a small
    ``max_steps`` and ``rtol=None``. ``A`` and ``y`` are whitened by the noise sigma (see the
    module docstring). Shapes: ``x`` has ``A.in_shape``, the data ``A.out_shape``; dtype of
    the data.

    Args:
        rtol, atol: stop when ``||A^T r - damp^2 x|| <= max(rtol ||A^T y||, atol)``.
            ``rtol=None``: run exactly ``max_steps`` steps and report success.
        damp: Tikhonov damping (>= 0).
        max_steps: iteration budget (None: 100).
    History: ``residual`` = ``||A^T r - damp^2 x|| / ||A^T y||`` and ``misfit`` =
    ``||y - A x|| / ||y||`` after each step.
    """

    requires: ClassVar = (HasLinearOperator,)
    rtol: float | None = 1e-6
    atol: float = 0.0
    damp: float = 0.0
    max_steps: int | None = None

    def __check_init__(self):
        check_rtol("CGLS rtol", self.rtol, allow_none=True)
        check_nonneg("CGLS atol", self.atol, allow_none=False)
        check_nonneg("CGLS damp", self.damp, allow_none=False)
        check_nonneg("CGLS max_steps", self.max_steps, integer=True)

    def default_max_steps(self, problem):
        return 100

    def init(self, problem, key=None):
        op = whiten(problem)
        dtype = op.dtype
        x = jnp.zeros(problem.operator().in_shape, dtype)
        s = op.rmv(op.y)
        snorm = jnp.linalg.norm(s)
        return CGLSState(
            x=x, r=op.y, s=s, p=s, gamma=snorm**2, snorm=snorm, s0norm=snorm,
            ynorm=jnp.linalg.norm(op.y), curvature_ok=jnp.array(True),
        )

    def step(self, problem, state):
        op = whiten(problem)
        damp2 = jnp.square(jnp.asarray(self.damp, op.dtype))
        q = op.mv(state.p)
        delta = vdot(q, q) + damp2 * vdot(state.p, state.p)
        alpha = safe_div(state.gamma, delta)
        x = state.x + alpha * state.p
        r = state.r - alpha * q
        s = op.rmv(r) - damp2 * x
        gamma = vdot(s, s)
        p = s + safe_div(gamma, state.gamma) * state.p
        snorm = jnp.sqrt(gamma)
        new = CGLSState(
            x=x, r=r, s=s, p=p, gamma=gamma, snorm=snorm, s0norm=state.s0norm, ynorm=state.ynorm,
            curvature_ok=(delta > 0) | (state.gamma == 0),
        )
        rnorm = jnp.linalg.norm(r)
        return new, {"residual": safe_div(snorm, state.s0norm), "misfit": safe_div(rnorm, state.ynorm)}

    def terminate(self, problem, state):
        finite = jnp.isfinite(state.snorm) & jnp.isfinite(state.s0norm)  # NaN data, or an overflowing norm
        broke = finite & ~state.curvature_ok
        stop = broke | ~finite
        failed = jnp.where(finite, RESULTS.breakdown, RESULTS.nonfinite)
        if self.rtol is None:
            return stop, jnp.where(stop, failed, RESULTS.successful).astype(jnp.int32)
        converged = finite & (state.snorm <= jnp.maximum(self.rtol * state.s0norm, self.atol))
        result = jnp.where(converged, RESULTS.successful, jnp.where(stop, failed, RESULTS.max_steps_reached))
        return converged | stop, result.astype(jnp.int32)

    def postprocess(self, problem, state):
        return Estimate(state.x)
