"""Matrix-free linear operators with an exact transpose."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


class AbstractLinearOperator(eqx.Module):
    """A linear map between arrays of ``in_shape`` and ``out_shape``.

    Subclasses implement ``mv`` and ``transpose``; ``symmetric`` and ``positive_definite``
    are structural tags that solvers check (CG needs both).
    """

    @abc.abstractmethod
    def mv(self, x): ...

    @abc.abstractmethod
    def transpose(self) -> "AbstractLinearOperator": ...

    @property
    @abc.abstractmethod
    def in_shape(self) -> tuple[int, ...]: ...

    @property
    @abc.abstractmethod
    def out_shape(self) -> tuple[int, ...]: ...

    @property
    @abc.abstractmethod
    def dtype(self): ...

    @property
    @abc.abstractmethod
    def symmetric(self) -> bool: ...

    @property
    @abc.abstractmethod
    def positive_definite(self) -> bool:
        """True if SPD for sure; a semidefinite (e.g. pure Neumann) operator says False."""

    @property
    def T(self):
        return self.transpose()

    def as_matrix(self) -> jax.Array:
        """Dense (prod(out_shape), prod(in_shape)) matrix; for tests and small problems."""
        n = int(np.prod(self.in_shape))
        eye = jnp.eye(n, dtype=self.dtype).reshape((n, *self.in_shape))
        cols = jax.vmap(self.mv)(eye).reshape(n, -1)
        return cols.T


class HasDiagonal(AbstractLinearOperator):
    """An operator that knows its diagonal (what `invsolve.linalg.Jacobi` needs)."""

    @abc.abstractmethod
    def diagonal(self) -> jax.Array:
        """``diag(A)`` as an array of ``in_shape``."""


class GridOperator(HasDiagonal):
    """A square operator on a structured grid that can build itself on a grid with half the
    cells per axis (what geometric multigrid, `invsolve.linalg.Multigrid`, needs). Subclasses
    have a ``shape`` (the grid, ``in_shape == out_shape == shape``)."""

    @abc.abstractmethod
    def coarsen(self) -> "GridOperator":
        """The same operator on the grid with half the cells per axis (even sizes)."""


class HasSolids(AbstractLinearOperator):
    """An operator that is the identity on some cells (obstacles): ``solid`` is the boolean
    mask of those cells, or None (what `invsolve.solvers.DCDM` uses to work on the fluid only).
    Subclasses have a ``solid`` field or property. (Not declared here as an abstract field: a
    field declared in a base class would come first in the subclass's constructor.)"""


class MatrixOperator(AbstractLinearOperator):
    """A dense matrix acting on arrays: ``mv(x) = (M @ x.ravel()).reshape(out_shape)``.

    For tests and small problems. ``M`` has shape ``(prod(out_shape), prod(in_shape))``.
    """

    matrix: jax.Array
    shapes: tuple[tuple[int, ...], tuple[int, ...]] = eqx.field(static=True)  # (in, out)
    tags: tuple[bool, bool] = eqx.field(default=(False, False), static=True)  # (symmetric, pd)

    @classmethod
    def from_array(cls, matrix, in_shape=None, out_shape=None, symmetric=False, positive_definite=False):
        m = jnp.asarray(matrix)
        if m.ndim != 2:
            raise ValueError(f"MatrixOperator needs a 2D matrix, got shape {m.shape}.")
        in_shape = (m.shape[1],) if in_shape is None else tuple(in_shape)
        out_shape = (m.shape[0],) if out_shape is None else tuple(out_shape)
        if (int(np.prod(out_shape)), int(np.prod(in_shape))) != m.shape:
            raise ValueError(f"matrix of shape {m.shape} does not map {in_shape} to {out_shape}.")
        return cls(m, (in_shape, out_shape), (bool(symmetric), bool(positive_definite)))

    def mv(self, x):
        return (self.matrix @ x.reshape(-1)).reshape(self.out_shape)

    def transpose(self):
        return MatrixOperator(self.matrix.T, self.shapes[::-1], self.tags)

    @property
    def in_shape(self):
        return self.shapes[0]

    @property
    def out_shape(self):
        return self.shapes[1]

    @property
    def dtype(self):
        return self.matrix.dtype

    @property
    def symmetric(self):
        return self.tags[0]

    @property
    def positive_definite(self):
        return self.tags[1]
