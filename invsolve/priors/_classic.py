"""The hand-made priors: Tikhonov, total variation, L1, and TV's gradient/divergence pair."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._problem import as_array
from .._solver import check_nonneg


def _number(name: str):
    """A field converter: a real number (or array of them) as a JAX array; None, a string, ...
    raise ``ValueError`` naming the field (before JAX's own error)."""
    return lambda v: as_array(v, f"{name} must be a non-negative finite number")


def _forward_differences(x):
    """Forward differences along every axis, zero across the last face (Neumann)."""
    return [jnp.diff(x, axis=a, append=jnp.take(x, jnp.array([-1]), axis=a)) for a in range(x.ndim)]


class AbstractPrior(eqx.Module):
    """A prior on a solver's unknown. What a prior can do is said by its class, and solvers
    ask for the class they need: `AbstractDensityPrior` (a regularizer ``R(x)``: MAP, NUTS),
    `AbstractProxPrior` (also a proximal operator: plug-and-play), and
    `invsolve.priors.AbstractScorePrior` (a noise prediction: the diffusion samplers)."""

    def shape_error(self, shape) -> str | None:
        """None if the prior takes an unknown of ``shape``, else why not (a learned prior is
        tied to what it was trained on). Default: any shape."""
        return None


class AbstractDensityPrior(AbstractPrior):
    """A regularizer ``R(x)``, the negative log prior density up to a constant;
    ``prior(x)`` sums `log_density_neg` over the leaves of ``x``."""

    def __call__(self, x):
        return sum(self.log_density_neg(leaf) for leaf in jax.tree.leaves(x))

    @abc.abstractmethod
    def log_density_neg(self, x):
        """``R(x)`` for one array ``x``."""


class AbstractProxPrior(AbstractDensityPrior):
    """A prior with a proximal operator, what plug-and-play solvers need:
    ``prox(v) = argmin_x 1/2 ||x - v||^2 + R(x)`` (the prior's strength is its own; a
    PnP solver weighs the data against it)."""

    @abc.abstractmethod
    def prox(self, v):
        """``argmin_x 1/2 ||x - v||^2 + R(x)``."""


class Tikhonov(AbstractDensityPrior):
    """Quadratic prior ``alpha/2 * ||L x||^2``.

    ``order=0``: ``L = I`` (small values); ``order=1``: ``L`` = forward differences
    (smoothness, the H1 semi-norm on a grid); ``order=2``: ``L`` = the 5/7-point Laplacian
    with reflecting edges (curvature, the H2 semi-norm).
    """

    alpha: jax.Array = eqx.field(converter=_number("Tikhonov alpha"))
    order: int = eqx.field(default=0, static=True)

    def __check_init__(self):
        check_nonneg("Tikhonov alpha", self.alpha, allow_none=False)
        if self.order not in (0, 1, 2):
            raise ValueError(f"Tikhonov order must be 0, 1 or 2, got {self.order!r}.")

    def log_density_neg(self, x):
        if self.order == 0:
            return 0.5 * self.alpha * jnp.sum(x * x)
        if self.order == 1:
            return 0.5 * self.alpha * sum(jnp.sum(d * d) for d in _forward_differences(x))
        lap = sum(jnp.diff(jnp.pad(x, [(1, 1) if b == a else (0, 0) for b in range(x.ndim)], mode="edge"), 2, axis=a)
                  for a in range(x.ndim))
        return 0.5 * self.alpha * jnp.sum(lap * lap)


class TV(AbstractProxPrior):
    """Smoothed isotropic total variation ``alpha * sum sqrt(|grad x|^2 + eps^2)``.

    `prox` is that of the unsmoothed ``alpha * TV`` (``eps`` = 0), computed by ``prox_steps``
    steps of FISTA on the dual (Beck & Teboulle, IEEE TIP 18, 2009).
    """

    alpha: jax.Array = eqx.field(converter=_number("TV alpha"))
    eps: jax.Array = eqx.field(default=1e-3, converter=_number("TV eps"))

    def __check_init__(self):
        check_nonneg("TV alpha", self.alpha, allow_none=False)
        check_nonneg("TV eps", self.eps, allow_none=False)

    prox_steps: int = eqx.field(default=100, static=True)

    def log_density_neg(self, x):
        g2 = sum(d * d for d in _forward_differences(x))
        return self.alpha * jnp.sum(jnp.sqrt(g2 + self.eps**2))

    def prox(self, v):
        """``argmin_x 1/2 ||x - v||^2 + alpha TV(x)``: ``x = v + div q`` with the dual
        ``q`` (``|q_i| <= alpha``) minimising ``1/2 ||v + div q||^2`` by FISTA, step
        ``1 / (4 ndim)`` (``||grad||^2 <= 4 ndim``)."""
        alpha = jnp.asarray(self.alpha, v.dtype)
        tau = 1.0 / (4.0 * v.ndim)

        def body(_, c):
            q, w, t = c
            q_new = project_balls(w + tau * gradient(v + divergence(w)), alpha)
            t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
            return q_new, q_new + ((t - 1) / t_new) * (q_new - q), t_new

        q0 = jnp.zeros((v.ndim, *v.shape), v.dtype)
        q, _, _ = jax.lax.fori_loop(0, self.prox_steps, body, (q0, q0, jnp.ones((), v.dtype)))
        return v + divergence(q)


class L1(AbstractProxPrior):
    """Sparsity ``lam * sum |x_i|``; its prox is soft-thresholding at ``lam``."""

    lam: jax.Array = eqx.field(converter=_number("L1 lam"))

    def __check_init__(self):
        check_nonneg("L1 lam", self.lam, allow_none=False)

    def log_density_neg(self, x):
        return self.lam * jnp.sum(jnp.abs(x))

    def prox(self, v):
        return soft_threshold(v, self.lam)


def soft_threshold(v, lam):
    """``sign(v) max(|v| - lam, 0)``, the prox of ``lam |.|``."""
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - lam, 0)


# --------------------------------------------------------------------------------------
# gradient / divergence pair (the discretisation of TV)
# --------------------------------------------------------------------------------------
def gradient(x):
    """Forward differences of ``x`` along every axis, shape ``(x.ndim, *x.shape)``.

    ``gradient(x)[a][..., i, ...] = x[i + 1] - x[i]`` along axis ``a`` and 0 at the last
    index (Neumann), exactly the differences of `invsolve.priors.TV`.
    """
    return jnp.stack(_forward_differences(x))


def divergence(q):
    """The negative adjoint of `gradient`: ``<gradient(x), q> = -<x, divergence(q)>``.

    ``q`` has shape ``(ndim, *shape)``; returns an array of ``shape``. Along each axis,
    ``div q[i] = q[i] - q[i - 1]`` with ``q[-1] = 0`` and the last entry of ``q`` (which the
    gradient never produces) treated as 0.
    """
    out = jnp.zeros(q.shape[1:], q.dtype)
    for a in range(q.shape[0]):
        qa = q[a].at[(slice(None),) * a + (-1,)].set(0)
        out = out + jnp.diff(qa, axis=a, prepend=jnp.zeros_like(jnp.take(qa, jnp.array([0]), axis=a)))
    return out


def tv_iso(x):
    """Isotropic total variation ``sum_i |gradient(x)_i|_2`` (not smoothed)."""
    return jnp.sum(jnp.sqrt(jnp.sum(jnp.square(gradient(x)), axis=0)))


def project_balls(q, lam):
    """Project each ``q[:, i]`` onto the ball ``|q_i|_2 <= lam``."""
    norm = jnp.sqrt(jnp.sum(jnp.square(q), axis=0))
    over = norm > lam
    scale = jnp.where(over, lam / jnp.where(over, norm, 1), 1)
    return q * scale
