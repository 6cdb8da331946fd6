"""Geometric multigrid V-cycle, used as a preconditioner for `PCG` on Poisson operators.

Cell-centred multigrid (Trottenberg, Oosterlee & Schüller, "Multigrid", 2001, ch. 2.8):
coarse operators by re-discretisation (`PoissonOperator.coarsen`), cell-centred
(bi/tri)linear prolongation ``P`` (weights 3/4, 1/4 per axis), restriction
``R = P^T / 2^d``, red-black Gauss-Seidel smoothing (red then black before the coarse
correction, black then red after it, so the cycle is a symmetric operator), and an exact
dense solve on the coarsest grid. The V-cycle is then symmetric positive definite and a
valid CG preconditioner.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._linop import GridOperator
from .._solver import OperatorIs
from .krylov import AbstractPreconditioner


def _prolong_axis(c, axis, lo_sign, hi_sign):
    """Cell-centred linear interpolation to twice the cells along ``axis``.

    Ghost values beyond a wall are ``sign * c[edge]``: -1 for Dirichlet (zero on the wall),
    +1 for Neumann (zero slope)."""
    n = c.shape[axis]
    first = jax.lax.slice_in_dim(c, 0, 1, axis=axis)
    last = jax.lax.slice_in_dim(c, n - 1, n, axis=axis)
    left = jnp.concatenate([lo_sign * first, jax.lax.slice_in_dim(c, 0, n - 1, axis=axis)], axis=axis)
    right = jnp.concatenate([jax.lax.slice_in_dim(c, 1, n, axis=axis), hi_sign * last], axis=axis)
    even = 0.75 * c + 0.25 * left
    odd = 0.75 * c + 0.25 * right
    fine = jnp.stack([even, odd], axis=axis + 1)
    return fine.reshape(c.shape[:axis] + (2 * n,) + c.shape[axis + 1:])


def _restrict_axis(f, axis, lo_sign, hi_sign):
    """The transpose of `_prolong_axis`: half the cells along ``axis``.

    Coarse cell ``i`` collects ``3/4`` of its two fine cells ``2i, 2i+1`` and ``1/4`` of the
    outer neighbours ``2i-1, 2i+2``; at a wall the ghost weight ``sign/4`` falls back on the
    edge cell."""
    m = f.shape[axis] // 2
    pairs = f.reshape(f.shape[:axis] + (m, 2) + f.shape[axis + 1:])
    even = jax.lax.index_in_dim(pairs, 0, axis + 1, keepdims=False)
    odd = jax.lax.index_in_dim(pairs, 1, axis + 1, keepdims=False)
    left = jnp.concatenate(
        [lo_sign * jax.lax.slice_in_dim(even, 0, 1, axis=axis), jax.lax.slice_in_dim(odd, 0, m - 1, axis=axis)],
        axis=axis)
    right = jnp.concatenate(
        [jax.lax.slice_in_dim(even, 1, m, axis=axis), hi_sign * jax.lax.slice_in_dim(odd, m - 1, m, axis=axis)],
        axis=axis)
    return 0.75 * (even + odd) + 0.25 * (left + right)


def _ghost_signs(A, axis):
    """Ghost-value signs beyond the low and high wall: -1 Dirichlet, +1 Neumann."""
    return tuple(-1.0 if A.bc[2 * axis + k] == "dirichlet" else 1.0 for k in (0, 1))


class _Level(eqx.Module):
    A: eqx.Module
    inv_diag: jax.Array
    red: jax.Array


class MultigridHierarchy(eqx.Module):
    """One V-cycle ``M r ~ A^{-1} r`` (a pytree of the level operators).

    Performance note (XLA on CPU): XLA fuses element-wise producers into consumers that read
    them at several offsets and then recomputes the producer for every read. A stencil
    consuming a stencil (one smoothing sweep after another, the restriction of a residual)
    would then cost 7x-64x its own work. So the sweeps of each level run in a
    ``lax.fori_loop`` whose carry is materialised between sweeps, and the residual handed to
    the restriction is a loop output too; the restriction is written directly (not with
    ``jax.linear_transpose``, which produced slow pad/scatter-like code).
    """

    levels: tuple[_Level, ...]
    coarse_inverse: jax.Array
    pre_smooth: int = eqx.field(static=True)
    post_smooth: int = eqx.field(static=True)

    def _prolong(self, A_fine, c):
        for a in range(c.ndim):
            c = _prolong_axis(c, a, *_ghost_signs(A_fine, a))
        if A_fine.solid is not None:
            c = jnp.where(A_fine.solid, 0.0, c)
        return c

    def _restrict(self, A_fine, r, coarse_shape):
        """``P^T r / 2^d`` with ``P`` = `_prolong` (the axes in reverse order, as a transpose)."""
        if A_fine.solid is not None:
            r = jnp.where(A_fine.solid, 0.0, r)
        for a in reversed(range(r.ndim)):
            r = _restrict_axis(r, a, *_ghost_signs(A_fine, a))
        assert r.shape == tuple(coarse_shape)
        return r / 2 ** r.ndim

    @staticmethod
    def _sweep(lvl, x, b, mask):
        """Gauss-Seidel update of the cells in ``mask`` (one colour: they do not couple)."""
        return jnp.where(mask, x + lvl.inv_diag * (b - lvl.A.mv(x)), x)

    def _smooth(self, lvl, x, b, colors):
        """Red (True) / black (False) sweeps in the order of ``colors``."""
        if not colors:
            return x
        first = bool(colors[0])
        if any(bool(c) != ((k % 2 == 0) == first) for k, c in enumerate(colors)):  # not alternating
            for color in colors:
                x = self._sweep(lvl, x, b, lvl.red if color else ~lvl.red)
            return x

        def body(k, x):
            return self._sweep(lvl, x, b, lvl.red == ((k % 2 == 0) == first))

        return jax.lax.fori_loop(0, len(colors), body, x)

    def _pre_smooth_residual(self, lvl, b):
        """Pre-smoothing from ``x = 0`` (red, black, red, ...), then ``r = b - A x``.

        The first red sweep from zero is ``inv_diag * b`` on red cells. Each loop step
        computes ``b - A x`` once and uses it both for its sweep and as the residual it
        carries; the last step updates no cell, so its residual is that of the final ``x``.
        """
        n = 2 * self.pre_smooth - 1  # sweeps after the first
        x = jnp.where(lvl.red, lvl.inv_diag * b, 0.0)

        def body(k, carry):
            x, _ = carry
            r = b - lvl.A.mv(x)
            mask = (lvl.red == (k % 2 == 1)) & (k < n)  # black, red, ..., then none
            return jnp.where(mask, x + lvl.inv_diag * r, x), r

        return jax.lax.fori_loop(0, n + 1, body, (x, jnp.zeros_like(b)))

    def _cycle(self, i, b):
        if i == len(self.levels):
            return (self.coarse_inverse @ b.ravel()).reshape(b.shape)
        lvl = self.levels[i]
        x, r = self._pre_smooth_residual(lvl, b)
        coarse_shape = tuple(n // 2 for n in b.shape)
        e = self._cycle(i + 1, self._restrict(lvl.A, r, coarse_shape))
        x = x + self._prolong(lvl.A, e)
        return self._smooth(lvl, x, b, (False, True) * self.post_smooth)

    def __call__(self, r):
        return self._cycle(0, r)


class Multigrid(AbstractPreconditioner):
    """Geometric multigrid V(pre, post) cycle for `invsolve.problems.poisson` operators.

    Args:
        pre_smooth, post_smooth: red-black Gauss-Seidel sweeps before/after the coarse
            correction.
        coarsest: stop coarsening when a grid has at most this many cells (or an odd size);
            that grid is solved exactly with a dense pseudo-inverse (so at most 4096 cells).
    """

    pre_smooth: int = 1
    post_smooth: int = 1
    coarsest: int = 64
    requires: ClassVar = (OperatorIs(GridOperator, "Multigrid"),)

    def __check_init__(self):
        for name in ("pre_smooth", "post_smooth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Multigrid {name} must be at least 1.")
        if not 1 <= int(self.coarsest) <= 4096:
            raise ValueError("Multigrid coarsest must be between 1 and 4096 cells.")

    def build(self, operator) -> MultigridHierarchy:
        if not isinstance(operator, GridOperator):
            raise TypeError(f"Multigrid needs a structured-grid operator that coarsens (a GridOperator such as "
                            f"poisson.operator); got {type(operator).__name__}.")
        levels = []
        A = operator
        while int(np.prod(A.shape)) > self.coarsest and all(n % 2 == 0 and n >= 4 for n in A.shape):
            red = (sum(jnp.indices(A.shape)) % 2) == 0
            levels.append(_Level(A, 1.0 / A.diagonal(), red))
            A = A.coarsen()
        n = int(np.prod(A.shape))
        if n > 4096:
            raise ValueError(
                f"Multigrid: the grid {operator.shape} coarsens only to {A.shape} ({n} cells), too "
                "large for the dense coarse solve; use sizes with more factors of 2."
            )
        coarse = jnp.linalg.pinv(A.as_matrix(), hermitian=True)
        return MultigridHierarchy(tuple(levels), coarse, int(self.pre_smooth), int(self.post_smooth))
