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

The set-up (steps 1-4) runs on the host with NumPy/SciPy, from a concrete operator:
`AMG.prepare` (called by `PCG` before tracing) or `AMG.setup`. The hierarchy is then a
pytree of arrays that works unchanged under ``jit``/``vmap``.

For a batch of operators with one sparsity pattern (coefficient fields on the same grid and
obstacles), `AMG.setup` also keeps the symbolic part: the aggregates and, per level, index
arrays for every product of steps 3-4 (CSR entry positions of ``A T``, ``A P`` and
``P^T (A P)``). `AMG.refresh` then recomputes the numeric part in JAX, as gathers and
segment sums over those indices (AmgX calls this a re-setup): diagonals, spectral radii,
smoothed prolongations, Galerkin operators and the coarse pseudo-inverse. It traces, so
``jit``/``vmap`` over fields compile one program that gives each field its own hierarchy
(`PCG` calls it on every operator when the hierarchy came from `AMG.setup`). With
``strength=0`` (the default) the aggregates depend on the pattern only, so the refreshed
hierarchy is the one a host set-up of that field builds (up to numerical zeros a host
set-up drops). Memory: about 6 million products at 512² and 60 million at 96³, three
int32 indices each. dtype: float64 (tests) or float32, from the operator.
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
    return _host(cols, np.int32), _host(vals, vals.dtype)


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

    def sparse_entries(self):
        if not _is_concrete(self.cols):
            raise ValueError("SparseOperator.sparse_entries: the column indices are traced (the operator is an "
                             "argument of jit/vmap), so its pattern is unknown here; close over it instead, or use "
                             "AMG(refresh_numeric=False).")
        n, w = self.cols.shape
        return np.repeat(np.arange(n), w), np.asarray(self.cols).ravel(), self.vals.ravel()

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


def _start(n: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(n)


def _spectral_radius(mv, dinv, x, xp=np, iterations: int = 15):
    """``rho(D^-1 A)`` by power iteration on the symmetric ``D^-1/2 A D^-1/2`` from ``x``
    (`_start`), times 1.05 (an upper estimate). ``mv``: the product with ``A``; ``xp``: NumPy
    (host set-up) or ``jax.numpy`` (`AMG.refresh`)."""
    s = xp.sqrt(dinv)
    lam = 1.0
    for _ in range(iterations):
        x = x / xp.sqrt((x * x).sum())
        y = s * mv(s * x)
        lam = xp.sqrt((y * y).sum())
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
    plan: Any = None  # `_Refresh`: what `AMG.refresh` needs (set by `AMG.setup`)

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


# --------------------------------------------------------------------------------------
# numeric set-up in JAX for a fixed sparsity pattern (`AMG.refresh`)
# --------------------------------------------------------------------------------------
def _pattern(rows, cols, n_cols):
    """The sorted unique ``(row, col)`` of some entries (CSR order), and each entry's position."""
    keys, pos = np.unique(rows.astype(np.int64) * n_cols + cols, return_inverse=True)
    r, c = np.divmod(keys, n_cols)
    return r, c, pos.reshape(-1)


def _indptr(r, n_rows):
    return np.searchsorted(r, np.arange(n_rows + 1))


def _expand(indptr, which):
    """Every pair (entry ``e``, position ``l`` in row ``which[e]`` of a CSR pattern)."""
    counts = indptr[which + 1] - indptr[which]
    e = np.repeat(np.arange(which.size), counts)
    first = np.repeat(indptr[which] - (np.cumsum(counts) - counts), counts)
    return e, np.arange(e.size) + first


def _ell_layout(r, c, n_rows):
    """Each CSR entry's slot in an ELL array ``(n_rows, width)`` (flat), and the ELL columns."""
    indptr = _indptr(r, n_rows)
    width = max(1, int(np.diff(indptr).max(initial=0)))
    slot = r * width + np.arange(r.size) - indptr[r]
    cols = np.zeros(n_rows * width, np.int32)
    cols[slot] = c
    return slot, cols.reshape(n_rows, width)


def _host(x, dtype):
    return jax.device_put(np.asarray(x, dtype))  # converted on the host: no compile


def _i32(*xs):
    return tuple(_host(x, np.int32) for x in xs)


class _Plan(eqx.Module):
    """Index arrays of one level's numeric set-up, built on the host once per sparsity
    pattern. Entries are numbered in CSR order; ``*_slot`` are flat ELL positions."""

    diag: jax.Array  # the entry a_ii of each row
    a_slot: jax.Array
    a_cols: jax.Array
    at: tuple[jax.Array, jax.Array]  # A's entry (i, j) adds into P's (i, agg_j): the product A T
    t_pos: jax.Array  # P's entries (i, agg_i): T
    p_rows: jax.Array
    p_slot: jax.Array
    p_cols: jax.Array
    r_slot: jax.Array  # P's entries in P^T's ELL
    r_cols: jax.Array
    ap: tuple[jax.Array, jax.Array, jax.Array]  # (A entry, P entry) -> AP entry
    rap: tuple[jax.Array, jax.Array, jax.Array]  # (P entry, AP entry) -> A_c entry
    x0: jax.Array  # power iteration start
    sizes: tuple[int, int, int] = eqx.field(static=True)  # nnz of P, AP, A_c


def _plan(r, c, n, agg, smooth: bool):
    """The `_Plan` of a level with pattern ``(r, c)`` (``n`` rows, CSR order) and aggregates
    ``agg``; also the coarse operator's pattern. ``smooth=False``: P is T's pattern alone."""
    diag = np.flatnonzero(r == c)
    if diag.size != n:
        raise ValueError("AMG needs every diagonal entry in the sparsity pattern.")
    n_c = int(agg.max()) + 1
    t_rows = np.flatnonzero(agg >= 0)
    at_src = np.flatnonzero(agg[c] >= 0) if smooth else np.zeros(0, np.int64)
    p_r, p_c, pos = _pattern(np.concatenate([t_rows, r[at_src]]), np.concatenate([agg[t_rows], agg[c[at_src]]]), n_c)
    e, l = _expand(_indptr(p_r, n), c)  # A's entry (i, j) times P's row j
    ap_r, ap_c, ap_dst = _pattern(r[e], p_c[l], n_c)
    e2, l2 = _expand(_indptr(ap_r, n), p_r)  # P's entry (i, I) times AP's row i
    c_r, c_c, c_dst = _pattern(p_c[e2], ap_c[l2], n_c)
    order = np.lexsort((p_r, p_c))  # P^T's entries in CSR order
    r_slot, r_cols = _ell_layout(p_c[order], p_r[order], n_c)
    plan = _Plan(*_i32(diag, *_ell_layout(r, c, n)), _i32(at_src, pos[t_rows.size:]), *_i32(pos[:t_rows.size], p_r),
                 *_i32(*_ell_layout(p_r, p_c, n), r_slot[np.argsort(order)], r_cols), _i32(e, l, ap_dst),
                 _i32(e2, l2, c_dst), _host(_start(n), np.float64), (p_r.size, ap_r.size, c_r.size))
    return plan, (c_r, c_c)


def _ell_values(v, slot, cols):
    return jnp.zeros(cols.size, v.dtype).at[slot].set(v).reshape(cols.shape)


def _refresh_level(plan: _Plan, a, fine: bool, smooth: bool):
    """One level from the values ``a`` of its operator (CSR order): `_Level` and ``A_c``'s values."""
    n_p, n_ap, n_c = plan.sizes
    dinv = 1.0 / a[plan.diag]
    A = (plan.a_cols, _ell_values(a, plan.a_slot, plan.a_cols))
    rho = _spectral_radius(lambda x: _ell_mv(*A, x), dinv, plan.x0.astype(a.dtype), jnp)
    p = jnp.zeros(n_p, a.dtype).at[plan.t_pos].set(1.0)
    if smooth:  # P = (I - 4/(3 rho) D^-1 A) T
        at = jax.ops.segment_sum(a[plan.at[0]], plan.at[1], n_p)
        p = p - (4.0 / 3.0 / rho) * dinv[plan.p_rows] * at
    ap = jax.ops.segment_sum(a[plan.ap[0]] * p[plan.ap[1]], plan.ap[2], n_ap)
    a_c = jax.ops.segment_sum(p[plan.rap[0]] * ap[plan.rap[1]], plan.rap[2], n_c)
    level = _Level(None if fine else A, dinv, (plan.p_cols, _ell_values(p, plan.p_slot, plan.p_cols)),
                   (plan.r_cols, _ell_values(p, plan.r_slot, plan.r_cols)), rho)
    return level, a_c


class _Refresh(eqx.Module):
    """What `AMG.refresh` needs: the plans of all levels and where the operator's entries go."""

    entries: jax.Array  # position of each of the operator's sparse entries in level 0's pattern
    plans: tuple[_Plan, ...]
    coarse: jax.Array  # flat (row * n + col) of the coarsest operator's entries
    n0: int = eqx.field(static=True)  # entries in level 0's pattern
    fingerprint: tuple[int, int] = eqx.field(static=True)  # (number of entries, checksum of their positions)
    smooth: bool = eqx.field(static=True)


def _fingerprint(rows, cols, n):
    return int(rows.size), int(np.sum((rows.astype(np.int64) * n + cols) % 1_000_003))


@eqx.filter_jit
def _refreshed(h: AMGHierarchy, vals) -> AMGHierarchy:
    """`AMG.refresh`'s numeric set-up from the operator's sparse entries ``vals``."""
    R = h.plan
    a = jax.ops.segment_sum(vals, R.entries, R.n0)
    levels = []
    for i, plan in enumerate(R.plans):
        level, a = _refresh_level(plan, a, fine=i == 0, smooth=R.smooth)
        levels.append(level)
    n_c = h.sizes[-1]
    dense = jnp.zeros(n_c * n_c, a.dtype).at[R.coarse].add(a).reshape(n_c, n_c)
    return eqx.tree_at(lambda t: (t.levels, t.coarse), h, (tuple(levels), jnp.linalg.pinv(dense, hermitian=True)))


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

        refresh_numeric: with a hierarchy set up by `AMG.setup` for one operator, recompute
            its numeric part in JAX for each operator it is applied to (`AMG.refresh`);
            False: reuse the set-up operator's hierarchy as it is (still a valid
            preconditioner) and skip building the index arrays that need.

    `PCG` sets the hierarchy up on the host before its loop is traced (`AMG.prepare`). Inside
    ``jit``/``vmap`` over coefficient fields, pass ``AMG().setup(A_example)``: its symbolic
    part (aggregates, sparsity patterns) is built once on the host, and each field gets its
    own numeric hierarchy in JAX, one compiled program for the whole batch.
    """

    strength: float = 0.0
    degree: int = 3
    max_coarse: int = 300
    max_levels: int = 12
    smooth: bool = True
    refresh_numeric: bool = eqx.field(default=True, static=True)
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
        return self._setup(operator, plans=False)

    def setup(self, operator) -> "AMG":
        """Build the hierarchy on the host (NumPy/SciPy) from a concrete operator or a
        ``scipy.sparse`` matrix; returns a copy of this preconditioner holding it, which
        operators of the same sparsity pattern reuse (`AMG.refresh`)."""
        return self._setup(operator, plans=self.refresh_numeric)

    def _setup(self, operator, plans: bool) -> "AMG":
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
        pattern = None
        if plans and isinstance(operator, HasSparseMatrix):  # the structural pattern, zeros included
            rows, cols, _ = operator.sparse_entries()
            r, c, entries = _pattern(rows, cols, A.shape[0])
            pattern, all_plans = (r, c), []
            refresh = dict(entries=_i32(entries)[0], n0=int(r.size),
                           fingerprint=_fingerprint(rows, cols, A.shape[0]), smooth=bool(self.smooth))
        levels, sizes, nnz = [], [A.shape[0]], [A.nnz]
        for depth in range(int(self.max_levels) - 1):
            if A.shape[0] <= self.max_coarse:
                break
            d = A.diagonal()
            if np.any(d <= 0):
                raise ValueError(f"AMG needs a positive diagonal (an SPD operator); {int(np.sum(d <= 0))} diagonal "
                                 f"entries are <= 0 on level {depth} (e.g. a fluid cell walled in by solids).")
            dinv = 1.0 / d
            rho = float(_spectral_radius(lambda x: A @ x, dinv, _start(A.shape[0])))
            agg = _aggregate(_strength(A, float(self.strength)))
            n_c = int(agg.max()) + 1
            if n_c == 0 or n_c >= A.shape[0]:
                break
            if pattern is not None:
                plan, pattern = _plan(*pattern, A.shape[0], agg, bool(self.smooth))
                all_plans.append(plan)
            rows = np.flatnonzero(agg >= 0)
            T = sp.csr_matrix((np.ones(rows.size), (rows, agg[rows])), shape=(A.shape[0], n_c))
            P = T - (4.0 / 3.0 / rho) * sp.diags(dinv) @ (A @ T) if self.smooth else T
            P = sp.csr_matrix(P)
            A_c = sp.csr_matrix(P.T @ A @ P)
            levels.append(_Level(None if depth == 0 else _ell(A, dtype), _host(dinv, dtype),
                                 _ell(P, dtype), _ell(P.T, dtype), _host(rho, dtype)))
            A = A_c
            sizes.append(A.shape[0])
            nnz.append(A.nnz)
        coarse = np.linalg.pinv(A.toarray(), hermitian=True)
        plan = None
        if pattern is not None:
            plan = _Refresh(plans=tuple(all_plans), coarse=_i32(pattern[0] * A.shape[0] + pattern[1])[0],
                            **refresh)
        h = AMGHierarchy(tuple(levels), _host(coarse, dtype), tuple(sizes), tuple(nnz), int(self.degree),
                         plan=plan)
        return eqx.tree_at(lambda s: s.hierarchy, self, h, is_leaf=lambda x: x is None)

    def refresh(self, operator) -> "AMG":
        """This preconditioner with its hierarchy's numeric part (diagonals, spectral radii,
        smoothed prolongations, Galerkin operators, the coarse pseudo-inverse) recomputed in
        JAX for ``operator``, which must have the sparsity pattern `AMG.setup` saw (e.g. the
        same grid and obstacles, another coefficient field). The aggregates stay those of the
        set-up operator (with ``strength=0``, the default, they depend on the pattern only).
        Traces: ``jit``/``vmap`` over operators compile it once. No gradient flows through it."""
        h = self.hierarchy
        if h is None or h.plan is None:
            raise ValueError("AMG.refresh needs a hierarchy set up by AMG().setup(A_example) from an operator "
                             "with sparse_entries() (e.g. poisson.operator), with refresh_numeric=True.")
        R = h.plan
        rows, cols, vals = operator.sparse_entries()
        if _fingerprint(rows, cols, h.sizes[0]) != R.fingerprint:
            raise ValueError(f"AMG.refresh: the operator's sparsity pattern differs from the one set up "
                             f"({rows.size} entries; set up: {R.fingerprint[0]}); set up AMG for it.")
        return eqx.tree_at(lambda s: s.hierarchy, self, _refreshed(h, jax.lax.stop_gradient(vals)))

    def build(self, operator) -> AMGHierarchy:
        amg = self.prepare(operator)
        if amg.hierarchy is None:
            raise ValueError("AMG: the operator is traced (inside jit/vmap/grad), so its hierarchy cannot be set up "
                             "here; build it outside with amg = AMG().setup(A_example) and pass amg.")
        if int(np.prod(operator.in_shape)) != amg.hierarchy.sizes[0]:
            raise ValueError(f"AMG: the hierarchy was set up for {amg.hierarchy.sizes[0]} unknowns, the operator "
                             f"has {int(np.prod(operator.in_shape))}.")
        if amg.hierarchy.plan is not None and isinstance(operator, HasSparseMatrix):
            amg = amg.refresh(operator)
        h = amg.hierarchy
        if h.plan is not None:  # the V-cycle does not need the set-up's index arrays: do not carry them
            h = eqx.tree_at(lambda t: t.plan, h, None)
        if not h.levels:  # small enough for the dense solve alone
            return h
        return eqx.tree_at(lambda t: t.fine, h, operator, is_leaf=lambda x: x is None)

    def operator_complexity(self) -> float:
        """Sum of the levels' nonzeros over the fine level's (pyamg's operator complexity)."""
        if self.hierarchy is None:
            raise ValueError("AMG.operator_complexity: set the hierarchy up first (AMG().setup(A)).")
        return sum(self.hierarchy.nnz) / self.hierarchy.nnz[0]
