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


class Transposed(AbstractLinearOperator):
    """The exact transpose of an operator ``op`` that defines ``rmv`` (matrix-free projectors,
    the Born operator): ``mv = op.rmv``, shapes swapped, its transpose ``op`` itself."""

    op: AbstractLinearOperator

    def mv(self, r):
        return self.op.rmv(r)

    def transpose(self):
        return self.op

    in_shape = property(lambda self: self.op.out_shape)
    out_shape = property(lambda self: self.op.in_shape)
    dtype = property(lambda self: self.op.dtype)
    symmetric = property(lambda self: False)
    positive_definite = property(lambda self: False)


class MatrixFreeRectangular(AbstractLinearOperator):
    """A matrix-free operator that defines ``mv`` and its exact transpose ``rmv`` (projectors,
    the Born operator): the transpose is `Transposed`, and it is neither symmetric nor
    positive definite."""

    def transpose(self):
        return Transposed(self)

    symmetric = property(lambda self: False)
    positive_definite = property(lambda self: False)


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


class HasSparseMatrix(AbstractLinearOperator):
    """An operator that can write itself as a sparse matrix (what `invsolve.linalg.AMG` needs):
    ``sparse_entries()`` gives ``(rows, cols, vals)`` with NumPy ``rows``/``cols`` (the sparsity
    pattern, fixed by the operator's static structure) and JAX ``vals`` that trace."""

    @abc.abstractmethod
    def sparse_entries(self):
        """``(rows, cols, vals)`` of the matrix ``(prod(out_shape), prod(in_shape))``."""

    def to_scipy(self):
        """The operator as a ``scipy.sparse.csr_matrix`` (explicit zeros dropped); host only."""
        import scipy.sparse as sp

        rows, cols, vals = self.sparse_entries()
        shape = (int(np.prod(self.out_shape)), int(np.prod(self.in_shape)))
        A = sp.coo_matrix((np.asarray(vals), (rows, cols)), shape=shape).tocsr()
        A.eliminate_zeros()
        return A


class HasSolids(AbstractLinearOperator):
    """An operator that is the identity on some cells (obstacles): ``solid`` is the boolean
    mask of those cells, or None (what `invsolve.solvers.DCDM` uses to work on the fluid only).
    Subclasses have a ``solid`` field or property. (Not declared here as an abstract field: a
    field declared in a base class would come first in the subclass's constructor.)"""


class _StoredShapes(AbstractLinearOperator):
    """An operator that stores ``shapes = (in_shape, out_shape)`` and ``tags = (symmetric,
    positive_definite)`` as fields."""

    @property
    def in_shape(self):
        return self.shapes[0]

    @property
    def out_shape(self):
        return self.shapes[1]

    @property
    def symmetric(self):
        return self.tags[0]

    @property
    def positive_definite(self):
        return self.tags[1]


class MatrixOperator(_StoredShapes):
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
    def dtype(self):
        return self.matrix.dtype


class FunctionOperator(_StoredShapes):
    """A matrix-free linear operator from two JAX functions: ``mv(x)`` and its transpose ``rmv(r)``.

    ``mv`` maps an array of ``in_shape`` to one of ``out_shape``; ``rmv`` maps ``out_shape`` back
    to ``in_shape`` and must be the exact transpose (``<mv(x), r> == <x, rmv(r)>``: the
    least-squares solvers and gradients rely on it). ``rmv=None`` derives it from ``mv`` with
    ``jax.linear_transpose`` (exact, at the cost of tracing ``mv`` once more per call). Both
    functions must be linear, pure and jit/vmap-safe. Shapes are checked at construction with
    ``jax.eval_shape`` (nothing is computed).

    Args:
        mv: ``x (in_shape) -> A x (out_shape)``.
        rmv: ``r (out_shape) -> A^T r (in_shape)``, or None.
        in_shape, out_shape: the shapes of the unknown and of the data (tuples of ints; an int
            is a 1-D shape).
        dtype: the operator's floating dtype (default: JAX's default float, float64 under x64).
        symmetric, positive_definite: structural tags (CG needs both; ``symmetric`` needs
            ``in_shape == out_shape``).
    """

    matvec: object = eqx.field(static=True)
    rmatvec: object = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], tuple[int, ...]] = eqx.field(static=True)  # (in, out)
    dtype_: object = eqx.field(static=True)
    tags: tuple[bool, bool] = eqx.field(static=True)  # (symmetric, pd)

    def __init__(self, mv, rmv, in_shape, out_shape, dtype=None, symmetric=False, positive_definite=False):
        if not callable(mv) or not (rmv is None or callable(rmv)):
            raise TypeError(f"FunctionOperator: mv and rmv must be functions (rmv may be None), got "
                            f"{type(mv).__name__} and {type(rmv).__name__}.")
        in_shape, out_shape = _shape("in_shape", in_shape), _shape("out_shape", out_shape)
        dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"FunctionOperator: dtype must be a floating dtype such as jnp.float64, got {dtype}.")
        if symmetric and in_shape != out_shape:
            raise ValueError(f"FunctionOperator: a symmetric operator maps a shape to itself, got in_shape "
                             f"{in_shape} and out_shape {out_shape}.")
        _check_map("mv", mv, in_shape, out_shape, dtype)
        if rmv is not None:
            _check_map("rmv", rmv, out_shape, in_shape, dtype)
        self.matvec, self.rmatvec = mv, rmv
        self.shapes, self.dtype_ = (in_shape, out_shape), dtype
        self.tags = (bool(symmetric), bool(positive_definite))

    def mv(self, x):
        return self.matvec(x)

    def _rmv(self, r):
        if self.rmatvec is not None:
            return self.rmatvec(r)
        (xt,) = jax.linear_transpose(self.matvec, jax.ShapeDtypeStruct(self.in_shape, self.dtype_))(r)
        return xt

    def transpose(self):
        return FunctionOperator(self._rmv, self.matvec, self.out_shape, self.in_shape, self.dtype_, *self.tags)

    @property
    def dtype(self):
        return self.dtype_


def _shape(name, shape) -> tuple[int, ...]:
    try:
        out = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        out = None
    if out is None or any(s < 0 for s in out):
        raise ValueError(f"FunctionOperator: {name} must be a tuple of non-negative ints, got {shape!r}.")
    return out


def _check_map(name, fn, shape_in, shape_out, dtype) -> None:
    """``fn`` maps an array of ``shape_in`` to one of ``shape_out`` (checked by ``jax.eval_shape``)."""
    try:
        got = jax.eval_shape(fn, jax.ShapeDtypeStruct(shape_in, dtype))
    except Exception as e:  # noqa: BLE001 -- any failure of the user's function: say where it happened
        raise ValueError(f"FunctionOperator: {name} fails on an input of shape {shape_in} and dtype {dtype}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if not hasattr(got, "shape"):
        raise ValueError(f"FunctionOperator: {name} must return one array, got {jax.tree.structure(got)}.")
    if tuple(got.shape) != shape_out:
        raise ValueError(f"FunctionOperator: {name} maps an input of shape {shape_in} to shape {tuple(got.shape)}, "
                         f"but {shape_out} was declared ({'out_shape' if name == 'mv' else 'in_shape'}); fix the "
                         "shapes or the function.")


def linearize(f, x):
    """``(f(x), J, J^T)``: ``v -> Df(x) v`` and ``w -> Df(x)^T w`` at ``x``.

    Forward mode where ``f`` has it (``jax.linearize``, its transpose for ``J^T``). A problem's
    ``forward`` with a hand-written reverse mode (a ``jax.custom_vjp``, e.g. `wave.FWI`'s
    adjoint) has none and says so by ``has_forward_mode = False``: there ``J^T`` is its VJP and
    ``J`` that VJP's transpose (exact: the VJP is linear in the cotangent)."""
    if getattr(getattr(f, "__self__", None), "has_forward_mode", True):
        y, jvp = jax.linearize(f, x)
        jt = jax.linear_transpose(jvp, x)
        return y, jvp, (lambda w: jt(w)[0])
    y, vjp = jax.vjp(f, x)
    jt = lambda w: vjp(w)[0]  # noqa: E731
    j = jax.linear_transpose(jt, y)
    return y, (lambda v: j(v)[0]), jt
