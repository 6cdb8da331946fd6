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
