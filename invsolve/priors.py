"""Priors (regularizers) ``R(x)``: the negative log prior density up to a constant.

A prior belongs to the solver (a modelling choice of the method), not to the problem.
Sums run over all grid cells in index units; for a 2D grid that makes the order-1 terms
independent of the resolution (the cell area cancels the squared spacing).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._solver import check_nonneg


def _forward_differences(x):
    """Forward differences along every axis, zero across the last face (Neumann)."""
    return [jnp.diff(x, axis=a, append=jnp.take(x, jnp.array([-1]), axis=a)) for a in range(x.ndim)]


class AbstractPrior(eqx.Module):
    def __call__(self, x):
        return sum(self.log_density_neg(leaf) for leaf in jax.tree.leaves(x))

    def log_density_neg(self, x):
        raise NotImplementedError


class Tikhonov(AbstractPrior):
    """Quadratic prior ``alpha/2 * ||L x||^2``.

    ``order=0``: ``L = I`` (small values); ``order=1``: ``L`` = forward differences
    (smoothness, the H1 semi-norm on a grid); ``order=2``: ``L`` = the 5/7-point Laplacian
    with reflecting edges (curvature, the H2 semi-norm).
    """

    alpha: jax.Array = eqx.field(converter=jnp.asarray)
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


class TV(AbstractPrior):
    """Smoothed isotropic total variation ``alpha * sum sqrt(|grad x|^2 + eps^2)``."""

    alpha: jax.Array = eqx.field(converter=jnp.asarray)
    eps: jax.Array = eqx.field(default=1e-3, converter=jnp.asarray)

    def __check_init__(self):
        check_nonneg("TV alpha", self.alpha, allow_none=False)
        check_nonneg("TV eps", self.eps, allow_none=False)

    def log_density_neg(self, x):
        g2 = sum(d * d for d in _forward_differences(x))
        return self.alpha * jnp.sum(jnp.sqrt(g2 + self.eps**2))
