"""Smoothed-aggregation algebraic multigrid (AMG), a `PCG` preconditioner that sees obstacles.

Geometric multigrid (`Multigrid`) builds its coarse grids by re-discretisation, so its
coarse levels do not see solid cells and it slows down with obstacles. AMG builds them
from the matrix (Vaněk, Mandel & Brezina 1996, "Algebraic multigrid by smoothed
aggregation"; the defaults follow pyamg's ``smoothed_aggregation_solver``):

1. strength of connection (symmetric): ``|a_ij| >= theta sqrt(|a_ii a_jj|)``;
2. aggregation: the roots are a maximal independent set of the strength graph's square
   (a distance-2 MIS, found by Luby's randomised rounds, each a sparse max-reduction, as
   parallel AMG codes do), every node joins a root's aggregate within one or two hops;
   isolated nodes (e.g. solid cells, whose rows are the identity) join none;
3. tentative prolongation ``T`` (piecewise constant on aggregates) and the smoothed
   prolongation ``P = (I - omega D^-1 A) T`` with ``omega = 4 / (3 rho(D^-1 A))``;
4. Galerkin coarse operators ``A_c = P^T A P``, down to at most ``max_coarse`` unknowns,
   where a dense pseudo-inverse solves exactly.

The V-cycle smooths with a Chebyshev polynomial in ``D^-1 A`` on ``[rho/30, 1.1 rho]``
(Adams et al. 2003, "Parallel multigrid smoothing: polynomial versus Gauss-Seidel"), the
same polynomial before and after the coarse correction, so the cycle is symmetric positive
definite: a valid CG preconditioner. The cycle runs in JAX (each matrix stored in ELL form:
per row a fixed number of column indices and values, so a product is one gather), on the
fine level through the operator's own matrix-free ``mv``.

The setup (steps 1-4) runs once on the host with NumPy/SciPy, from a concrete operator:
`AMG.setup` (called by `PCG` before tracing). The hierarchy is then a pytree of arrays
that works unchanged under ``jit``/``vmap``; reused for another operator of the same
sparsity pattern (another coefficient field) it stays a valid, SPD preconditioner whose
coarse levels were built from the first operator. dtype: float64 (tests) or float32, from
the operator.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .._linop import AbstractLinearOperator, HasSparseMatrix
from .._solver import OperatorIs
from .krylov import AbstractPreconditioner


# --------------------------------------------------------------------------------------
# a sparse matrix as an operator (ELL storage: a product is one gather)
# --------------------------------------------------------------------------------------
def _ell(A: sp.spmatrix, dtype) -> tuple[jax.Array, jax.Array]:
    """``(cols, vals)`` of shape ``(n_rows, width)``, rows padded with zeros (column 0)."""
    A = sp.csr_matrix(A)
    A.sort_indices()
    counts = np.diff(A.indptr)
    width = max(1, int(counts.max(initial=0)))
    n = A.shape[0]
    pos = np.arange(A.nnz) - np.repeat(A.indptr[:-1], counts)
    cols = np.zeros((n, width), np.int32)
    vals = np.zeros((n, width), np.dtype(dtype))
    rows = np.repeat(np.arange(n), counts)
    cols[rows, pos] = A.indices
    vals[rows, pos] = A.data
    return jnp.asarray(cols), jnp.asarray(vals)


def _ell_mv(cols, vals, x):
    return jnp.sum(vals * x[cols], axis=-1)


class SparseOperator(HasSparseMatrix):
    """A SciPy sparse matrix ``(n, n)`` as an operator on vectors of shape ``(n,)`` (ELL
    storage: ``mv`` is one gather and a row sum). For `CG`/`PCG`/`AMG` on matrices that do
    not come from a grid (e.g. pyamg's gallery)."""

    cols: jax.Array
    vals: jax.Array
    n: int = eqx.field(static=True)
    is_symmetric: bool = eqx.field(static=True)

    def __init__(self, matrix, dtype=None):
        if not sp.issparse(matrix) and not isinstance(matrix, np.ndarray):
            raise TypeError(f"SparseOperator needs a scipy.sparse matrix, got {type(matrix).__name__}.")
        A = sp.csr_matrix(matrix)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"SparseOperator needs a square matrix, got shape {A.shape}.")
        dtype = dtype or jnp.result_type(float)
        self.cols, self.vals = _ell(A, dtype)
        self.n = int(A.shape[0])
        self.is_symmetric = bool(_is_symmetric(A))

    def mv(self, x):
        return _ell_mv(self.cols, self.vals, x)

    def transpose(self):
        if self.is_symmetric:
            return self
        raise NotImplementedError("SparseOperator.transpose: only symmetric matrices are supported.")

    def to_scipy(self):
        n, w = self.cols.shape
        A = sp.csr_matrix((np.array(self.vals).ravel(), np.array(self.cols).ravel(),
                           np.arange(0, n * w + 1, w)), shape=(n, n))
        A.eliminate_zeros()
        return A

    in_shape = property(lambda self: (self.n,))
    out_shape = property(lambda self: (self.n,))
    dtype = property(lambda self: self.vals.dtype)
    symmetric = property(lambda self: self.is_symmetric)
    positive_definite = property(lambda self: False)  # not known; CG checks curvature


def _is_symmetric(A: sp.spmatrix, rtol: float = 1e-10) -> bool:
    diff = abs(A - A.T)
    scale = abs(A).max() if A.nnz else 0.0
    return diff.nnz == 0 or diff.max() <= rtol * scale


# --------------------------------------------------------------------------------------
# setup (host, NumPy/SciPy)
# --------------------------------------------------------------------------------------
def _strength(A: sp.csr_matrix, theta: float) -> sp.csr_matrix:
    """Symmetric strength graph without the diagonal: ``|a_ij| >= theta sqrt(|a_ii a_jj|)``."""
    S = sp.csr_matrix(A, copy=True)
    S.setdiag(0)
    if theta > 0:
        d = np.sqrt(np.abs(A.diagonal()))
        rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
        S.data[np.abs(S.data) < theta * d[rows] * d[S.indices]] = 0
    S.eliminate_zeros()
    S.data[:] = 1
    return S


class _Graph:
    """Sparse max-reductions over a graph's neighbourhoods (CSR, empty rows skipped)."""

    def __init__(self, S: sp.csr_matrix):
        self.indices = S.indices
        self.rows = np.flatnonzero(np.diff(S.indptr))
        self.starts = S.indptr[self.rows]
        self.isolated = np.diff(S.indptr) == 0

    def max(self, v: np.ndarray) -> np.ndarray:
        """``max(v_i, max_{j ~ i} v_j)`` per node."""
        out = v.copy()
        if self.rows.size:
            out[self.rows] = np.maximum(v[self.rows], np.maximum.reduceat(v[self.indices], self.starts))
        return out


def _aggregate(S: sp.csr_matrix, seed: int = 0) -> np.ndarray:
    """Aggregate index per node (``-1`` for isolated nodes) from a distance-2 MIS of ``S``."""
    n = S.shape[0]
    g = _Graph(S)
    prio = np.random.default_rng(seed).permutation(n).astype(np.int32) + 1
    undecided = ~g.isolated
    root = np.zeros(n, bool)
    while undecided.any():
        p = np.where(undecided, prio, 0)
        new = undecided & (p == g.max(g.max(p)))
        root |= new
        undecided &= g.max(g.max(new.astype(np.int8))) == 0  # not within two hops of a new root
    agg = np.full(n, -1, np.int64)
    agg[root] = np.arange(int(root.sum()))
    # one hop: join the root neighbour of highest priority; two hops: a joined neighbour's
    for _ in range(2):
        key = np.where(agg >= 0, prio.astype(np.int64) * (n + 1) + agg + 1, 0)  # priority then aggregate id
        best = g.max(key)
        join = (agg < 0) & ~g.isolated & (best > 0)
        agg[join] = (best[join] % (n + 1)) - 1
    return agg


def _spectral_radius(A: sp.csr_matrix, dinv: np.ndarray, iterations: int = 15) -> float:
    """``rho(D^-1 A)`` by power iteration on the symmetric ``D^-1/2 A D^-1/2``, times 1.05
    (an upper estimate; norms by element-wise sums, which avoid BLAS thread start-up)."""
    s = np.sqrt(dinv)
    x = np.random.default_rng(1).standard_normal(A.shape[0])
    lam = 1.0
    for _ in range(iterations):
        x = x / np.sqrt((x * x).sum())
        y = s * (A @ (s * x))
        lam = float(np.sqrt((y * y).sum()))
        x = y
    return 1.05 * lam


class _Level(eqx.Module):
    A: tuple[jax.Array, jax.Array] | None  # ELL (cols, vals), None on the fine level
    dinv: jax.Array
    P: tuple[jax.Array, jax.Array]  # ELL of P (n_fine, width)
    R: tuple[jax.Array, jax.Array]  # ELL of P^T (n_coarse, width)
    rho: jax.Array


class AMGHierarchy(eqx.Module):
    """The levels of a smoothed-aggregation hierarchy and its V-cycle (a callable pytree:
    ``M(r)`` approximates ``A^{-1} r``)."""

    levels: tuple[_Level, ...]
    coarse: jax.Array  # dense pseudo-inverse of the coarsest operator
    sizes: tuple[int, ...] = eqx.field(static=True)
    nnz: tuple[int, ...] = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    fine: Any = None  # the fine operator (matrix-free mv), set by `AMG.build`

    def _mv(self, i, x):
        if i == 0:
            return self.fine.mv(x.reshape(self.fine.in_shape)).reshape(-1)
        return _ell_mv(*self.levels[i].A, x)

    def _smooth(self, i, x, b):
        """Chebyshev iteration of ``degree`` steps for ``D^-1 A`` on ``[rho/30, 1.1 rho]``
        (Saad, "Iterative methods for sparse linear systems", Alg. 12.1)."""
        lvl = self.levels[i]
        upper, lower = 1.1 * lvl.rho, lvl.rho / 30.0
        theta, delta = (upper + lower) / 2, (upper - lower) / 2
        sigma = theta / delta
        rho_k = 1.0 / sigma
        r = lvl.dinv * (b - self._mv(i, x))
        d = r / theta
        for _ in range(self.degree):
            x = x + d
            r = r - lvl.dinv * self._mv(i, d)
            rho_next = 1.0 / (2 * sigma - rho_k)
            d = rho_next * rho_k * d + 2 * rho_next / delta * r
            rho_k = rho_next
        return x

    def _cycle(self, i, b):
        if i == len(self.levels):
            return self.coarse @ b
        lvl = self.levels[i]
        x = self._smooth(i, jnp.zeros_like(b), b)
        rc = _ell_mv(*lvl.R, b - self._mv(i, x))
        x = x + _ell_mv(*lvl.P, self._cycle(i + 1, rc))
        return self._smooth(i, x, b)

    def __call__(self, r):
        return self._cycle(0, r.reshape(-1)).reshape(r.shape)


def _to_scipy(operator) -> sp.csr_matrix:
    if sp.issparse(operator):
        return sp.csr_matrix(operator)
    if hasattr(operator, "to_scipy"):
        return sp.csr_matrix(operator.to_scipy())
    raise TypeError(f"AMG needs the operator's sparse matrix: a scipy.sparse matrix or an operator with "
                    f"to_scipy() (poisson.operator, SparseOperator); got {type(operator).__name__}.")


def _is_concrete(tree) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


class AMG(AbstractPreconditioner):
    """Smoothed-aggregation AMG V-cycle (module docstring) for symmetric positive (semi)definite
    operators with a sparse matrix form (`poisson.operator` with or without obstacles,
    `SparseOperator`).

    Args:
        strength: ``theta`` of the strength test, in ``[0, 1)`` (0, pyamg's default: every
            nonzero is a strong connection).
        degree: Chebyshev smoothing steps before and after each coarse correction.
        max_coarse: coarsen until at most this many unknowns remain (dense solve there).
        max_levels: at most this many levels.
        smooth: smooth the tentative prolongation (True: smoothed aggregation; False: plain
            aggregation, cheaper set-up, more iterations).

    `PCG` sets the hierarchy up on the host before its loop is traced (`AMG.setup`); inside
    ``jit``, pass ``AMG().setup(A_example)`` instead, which any operator of the same
    sparsity pattern can reuse.
    """

    strength: float = 0.0
    degree: int = 3
    max_coarse: int = 300
    max_levels: int = 12
    smooth: bool = True
    hierarchy: AMGHierarchy | None = None
    requires: ClassVar = (OperatorIs(HasSparseMatrix, "AMG"),)

    def __check_init__(self):
        if not (isinstance(self.strength, (int, float)) and 0.0 <= float(self.strength) < 1.0):
            raise ValueError(f"AMG strength threshold must be in [0, 1) (a fraction of sqrt(|a_ii a_jj|)), "
                             f"got {self.strength!r}.")
        if int(self.degree) < 1:
            raise ValueError(f"AMG degree (Chebyshev smoothing steps) must be at least 1, got {self.degree!r}.")
        if int(self.max_coarse) < 1 or int(self.max_levels) < 2:
            raise ValueError("AMG max_coarse must be at least 1 and max_levels at least 2.")

    def prepare(self, operator) -> "AMG":
        """The hierarchy for ``operator`` if it is concrete (host-side), else ``self``."""
        if self.hierarchy is not None or not _is_concrete(operator):
            return self
        return self.setup(operator)

    def setup(self, operator) -> "AMG":
        """Build the hierarchy on the host (NumPy/SciPy) from a concrete operator or a
        ``scipy.sparse`` matrix; returns a copy of this preconditioner holding it."""
        if isinstance(operator, AbstractLinearOperator) and not operator.symmetric:
            raise ValueError(f"AMG needs a symmetric operator; {type(operator).__name__} is not symmetric "
                             "(use GMRES-type solvers, or symmetrise the problem).")
        if not _is_concrete(operator):
            raise ValueError("AMG.setup needs a concrete operator (its sparse matrix is read on the host); "
                             "call it outside jit/vmap and pass the result in.")
        A = _to_scipy(operator).astype(float)
        if not _is_symmetric(A):
            raise ValueError("AMG needs a symmetric matrix; this one is not (|A - A^T| is not ~0).")
        dtype = getattr(operator, "dtype", np.float64)
        levels, sizes, nnz = [], [A.shape[0]], [A.nnz]
        for depth in range(int(self.max_levels) - 1):
            if A.shape[0] <= self.max_coarse:
                break
            d = A.diagonal()
            if np.any(d <= 0):
                raise ValueError(f"AMG needs a positive diagonal (an SPD operator); {int(np.sum(d <= 0))} diagonal "
                                 f"entries are <= 0 on level {depth} (e.g. a fluid cell walled in by solids).")
            dinv = 1.0 / d
            rho = _spectral_radius(A, dinv)
            agg = _aggregate(_strength(A, float(self.strength)))
            n_c = int(agg.max()) + 1
            if n_c == 0 or n_c >= A.shape[0]:
                break
            rows = np.flatnonzero(agg >= 0)
            T = sp.csr_matrix((np.ones(rows.size), (rows, agg[rows])), shape=(A.shape[0], n_c))
            P = T - (4.0 / 3.0 / rho) * sp.diags(dinv) @ (A @ T) if self.smooth else T
            P = sp.csr_matrix(P)
            A_c = sp.csr_matrix(P.T @ A @ P)
            levels.append(_Level(None if depth == 0 else _ell(A, dtype), jnp.asarray(dinv, dtype),
                                 _ell(P, dtype), _ell(P.T, dtype), jnp.asarray(rho, dtype)))
            A = A_c
            sizes.append(A.shape[0])
            nnz.append(A.nnz)
        coarse = np.linalg.pinv(A.toarray(), hermitian=True)
        h = AMGHierarchy(tuple(levels), jnp.asarray(coarse, dtype), tuple(sizes), tuple(nnz), int(self.degree))
        return eqx.tree_at(lambda s: s.hierarchy, self, h, is_leaf=lambda x: x is None)

    def build(self, operator) -> AMGHierarchy:
        amg = self.prepare(operator)
        if amg.hierarchy is None:
            raise ValueError("AMG: the operator is traced (inside jit/vmap/grad), so its hierarchy cannot be set up "
                             "here; build it outside with amg = AMG().setup(A_example) and pass amg.")
        h = amg.hierarchy
        if int(np.prod(operator.in_shape)) != h.sizes[0]:
            raise ValueError(f"AMG: the hierarchy was set up for {h.sizes[0]} unknowns, the operator has "
                             f"{int(np.prod(operator.in_shape))}.")
        if not h.levels:  # small enough for the dense solve alone
            return h
        return eqx.tree_at(lambda t: t.fine, h, operator, is_leaf=lambda x: x is None)

    def operator_complexity(self) -> float:
        """Sum of the levels' nonzeros over the fine level's (pyamg's operator complexity)."""
        if self.hierarchy is None:
            raise ValueError("AMG.operator_complexity: set the hierarchy up first (AMG().setup(A)).")
        return sum(self.hierarchy.nnz) / self.hierarchy.nnz[0]
