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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

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


class _Level(eqx.Module):
    A: eqx.Module
    inv_diag: jax.Array
    red: jax.Array


class MultigridHierarchy(eqx.Module):
    """One V-cycle ``M r ~ A^{-1} r`` (a pytree of the level operators)."""

    levels: tuple[_Level, ...]
    coarse_inverse: jax.Array
    pre_smooth: int = eqx.field(static=True)
    post_smooth: int = eqx.field(static=True)

    def _prolong(self, A_fine, c):
        for a in range(c.ndim):
            lo = -1.0 if A_fine.bc[2 * a] == "dirichlet" else 1.0
            hi = -1.0 if A_fine.bc[2 * a + 1] == "dirichlet" else 1.0
            c = _prolong_axis(c, a, lo, hi)
        if A_fine.solid is not None:
            c = jnp.where(A_fine.solid, 0.0, c)
        return c

    def _restrict(self, A_fine, r, coarse_shape):
        spec = jax.ShapeDtypeStruct(coarse_shape, r.dtype)
        (rc,) = jax.linear_transpose(lambda c: self._prolong(A_fine, c), spec)(r)
        return rc / 2 ** r.ndim

    def _smooth(self, lvl, x, b, colors):
        for color in colors:
            mask = lvl.red if color else ~lvl.red
            x = jnp.where(mask, x + lvl.inv_diag * (b - lvl.A.mv(x)), x)
        return x

    def _cycle(self, i, b):
        if i == len(self.levels):
            return (self.coarse_inverse @ b.ravel()).reshape(b.shape)
        lvl = self.levels[i]
        x = self._smooth(lvl, jnp.zeros_like(b), b, (True, False) * self.pre_smooth)
        r = b - lvl.A.mv(x)
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
    coarsest: int = 512

    def __check_init__(self):
        for name in ("pre_smooth", "post_smooth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Multigrid {name} must be at least 1.")
        if not 1 <= int(self.coarsest) <= 4096:
            raise ValueError("Multigrid coarsest must be between 1 and 4096 cells.")

    def build(self, operator) -> MultigridHierarchy:
        if not hasattr(operator, "coarsen"):
            raise TypeError(
                f"Multigrid needs a structured-grid operator with coarsen() (a poisson.operator); "
                f"got {type(operator).__name__}."
            )
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
