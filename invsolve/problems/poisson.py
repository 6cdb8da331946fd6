"""Poisson problems: ``-div(kappa grad u) = f`` on a 2D or 3D box.

Discretisation: cell-centred finite volumes on ``shape`` cells of size ``h = lengths/shape``
(5-point stencil in 2D, 7-point in 3D). The coefficient on a face is the harmonic mean of
the two cells' ``kappa``; a Dirichlet wall (``u = 0``) sits half a cell from the boundary
cell, so its face coefficient is ``2 kappa / h``; a Neumann wall has zero flux. Obstacles
(solid cells, as in a fluid pressure projection) have no-flux faces and decouple: the
operator is the identity on them, so ``u = f`` there (pass ``f = 0`` in solids).

Everything is float64 when ``jax_enable_x64`` is on and the inputs are float64 (the tests),
else float32. Units: ``kappa`` [conductivity], ``f`` [source per volume], ``u`` [f * L^2 / kappa].
"""

from __future__ import annotations

import dataclasses
import functools
import operator as _op
from typing import Any, ClassVar, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._linop import GridOperator, HasSolids, HasSparseMatrix
from .._problem import (GaussianNoise, HasForward, HasResidual, LinearSystem, as_array, check_finite_data, check_key,
                        check_memory, directional_derivatives, real_number, rms)

BOUNDARY_TYPES = ("dirichlet", "neumann")


# --------------------------------------------------------------------------------------
# input checks (clear errors before anything is traced)
# --------------------------------------------------------------------------------------
def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _integer(n) -> int | None:
    """``n`` as an int if it is one (a Python or NumPy integer, not a bool), else None."""
    if isinstance(n, (bool, np.bool_)):
        return None
    try:
        return _op.index(n)
    except TypeError:
        return None


def _check_shape(shape) -> tuple[int, ...]:
    """2 or 3 positive integers (``8.5`` or ``8.0`` are refused, not truncated)."""
    msg = f"shape must be a tuple of 2 or 3 positive integers, got {shape!r}"
    try:
        entries = tuple(shape)
    except TypeError:
        raise ValueError(msg + ".") from None
    shape = tuple(_integer(n) for n in entries)
    bad = [e for e, n in zip(entries, shape) if n is None]
    if bad:
        raise ValueError(f"{msg}: {bad[0]!r} is not an integer.")
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(msg + ".")
    return shape


def _check_grid_memory(what, shape, n_arrays):
    """Refuse a grid whose ``n_arrays`` main arrays (float, one value per cell) would not fit
    in memory, before anything is allocated."""
    n_bytes = n_arrays * float(np.prod(shape, dtype=float)) * jnp.dtype(jnp.result_type(float)).itemsize
    check_memory(f"{what} on a {shape} grid", n_bytes, "use a smaller shape")


def _check_field(name, value, shape, *, positive=False, dtype=None):
    """A scalar or an array of ``shape``; finite (and > 0 if ``positive``)."""
    arr = as_array(value, f"{name} must be a number or an array of numbers")
    arr = arr if dtype is None else arr.astype(dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim != 0 and tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}, expected a scalar or an array of the grid "
            f"shape {tuple(shape)}."
        )
    # Traced values are not checked: kappa = exp(theta) is traced in every forward solve of
    # `PoissonInverse`, where a non-finite value must end as the solver's ``nonfinite``
    # result (and NaN through `linear_solve`), not as an error in the middle of a solve.
    if _is_concrete(arr):
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values.")
        if positive and not np.all(a > 0):
            raise ValueError(f"{name} must be strictly positive everywhere; its minimum is {a.min():g}.")
    return jnp.broadcast_to(arr, shape)


def _check_bc(bc, ndim) -> tuple[str, ...]:
    """'dirichlet', 'neumann', or one entry per wall: (x_lo, x_hi, y_lo, y_hi[, z_lo, z_hi])."""
    try:
        sides = (bc,) * (2 * ndim) if isinstance(bc, str) else tuple(bc)
    except TypeError:  # not a sequence (None, a number)
        sides = ()
    if len(sides) != 2 * ndim or any(not isinstance(s, str) for s in sides):
        raise ValueError(
            f"bc must be one of {BOUNDARY_TYPES} or a sequence of {2 * ndim} of them "
            f"(low and high wall per axis), got {bc!r}."
        )
    sides = tuple(s.lower() for s in sides)
    bad = [s for s in sides if s not in BOUNDARY_TYPES]
    if bad:
        raise ValueError(f"unknown boundary type {bad[0]!r}; expected one of {BOUNDARY_TYPES}.")
    return sides


def _check_lengths(lengths, ndim) -> tuple[float, ...]:
    """The box size per axis: one positive finite number, or one per axis."""
    msg = f"lengths must be one positive number or {ndim} of them (the box size per axis), got {lengths!r}"
    try:
        L = np.asarray(lengths, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(msg + ".") from None
    if L.ndim > 1 or (L.ndim == 1 and L.size not in (1, ndim)) or not np.all(np.isfinite(L) & (L > 0)):
        raise ValueError(msg + ".")
    return tuple(float(x) for x in np.broadcast_to(L.reshape(-1) if L.ndim else L, (ndim,)))


# --------------------------------------------------------------------------------------
# the operator
# --------------------------------------------------------------------------------------
def _shift_pad(x, axis, lo, hi):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (lo, hi)
    return jnp.pad(x, pad)


class PoissonOperator(GridOperator, HasSolids, HasSparseMatrix):
    """Matrix-free ``A u = -div(kappa grad u)``, symmetric; positive definite unless all
    walls are Neumann and there is no Dirichlet wall (then singular with constant null space).

    Attributes:
        faces: per axis, face coefficients ``kappa_face / h^2`` of shape ``shape`` with
            ``shape[axis] + 1`` along ``axis`` (walls included; zero where no flux).
        solid: boolean mask of obstacle cells, or None.
        shape: grid shape (static).
        bc: wall types, low and high per axis (static).
    """

    faces: tuple[jax.Array, ...]
    solid: jax.Array | None
    shape: tuple[int, ...] = eqx.field(static=True)
    bc: tuple[str, ...] = eqx.field(static=True)

    def mv(self, u):
        return _mv(self, u)

    def transpose(self):
        return self

    def diagonal(self):
        d = sum(
            jax.lax.slice_in_dim(c, 0, n, axis=a) + jax.lax.slice_in_dim(c, 1, n + 1, axis=a)
            for a, (c, n) in enumerate(zip(self.faces, self.shape))
        )
        if self.solid is not None:
            d = jnp.where(self.solid, 1.0, d)
        return d

    @property
    def in_shape(self):
        return self.shape

    @property
    def out_shape(self):
        return self.shape

    @property
    def dtype(self):
        return self.faces[0].dtype

    @property
    def symmetric(self):
        return True

    @property
    def positive_definite(self):
        return "dirichlet" in self.bc

    def sparse_entries(self):
        """The matrix as entries ``(rows, cols, vals)`` (C-order flattening, duplicates none):
        ``rows``/``cols`` are NumPy (the full stencil, fixed by the grid shape, zero faces
        included), ``vals`` a JAX array that traces (``jit``/``vmap`` over coefficient fields)."""
        n = int(np.prod(self.shape))
        idx = np.arange(n).reshape(self.shape)
        rows, cols, vals = [np.arange(n)], [np.arange(n)], [self.diagonal().ravel()]
        for a, c in enumerate(self.faces):
            m = self.shape[a]
            inner = jax.lax.slice_in_dim(c, 1, m, axis=a).ravel()  # faces between cell i-1 and i
            lo = np.take(idx, np.arange(0, m - 1), axis=a).ravel()
            hi = np.take(idx, np.arange(1, m), axis=a).ravel()
            rows += [lo, hi]
            cols += [hi, lo]
            vals += [-inner, -inner]
        return np.concatenate(rows), np.concatenate(cols), jnp.concatenate(vals)

    def coarsen(self) -> "PoissonOperator":
        """The operator on a grid with half the cells per axis (all sizes must be even).

        Face coefficients of a coarse face are the mean of the fine faces it covers, divided
        by 4 for the doubled spacing; a coarse cell is solid when all its fine cells are.
        Used by the geometric multigrid preconditioner.
        """
        faces = []
        for a, c in enumerate(self.faces):
            c = jax.lax.slice_in_dim(c, 0, c.shape[a], stride=2, axis=a)
            for b in range(len(self.shape)):
                if b != a:
                    c = c.reshape(c.shape[:b] + (c.shape[b] // 2, 2) + c.shape[b + 1:]).mean(axis=b + 1)
            faces.append(c / 4.0)
        solid = None
        if self.solid is not None:
            s = self.solid
            for b in range(len(self.shape)):
                s = s.reshape(s.shape[:b] + (s.shape[b] // 2, 2) + s.shape[b + 1:]).all(axis=b + 1)
            solid = s
        shape = tuple(n // 2 for n in self.shape)
        return PoissonOperator(tuple(faces), solid, shape, self.bc)


@eqx.filter_jit  # one compiled stencil per grid (eagerly, each of its ops would compile apart)
def _mv(op, u):
    # Per axis: c_lo (u - u_prev) + c_hi (u - u_next), the flux balance of the cell with
    # zero ghosts beyond the walls. Written with shifted slices of u (each padded by one
    # zero), not as diff(c * diff(pad(u))), so that XLA fuses the whole stencil into one
    # loop without materialising padded copies or the face fluxes (2-5x faster on CPU,
    # same floating-point result).
    out = None
    for axis, c in enumerate(op.faces):
        n = op.shape[axis]
        c_lo = jax.lax.slice_in_dim(c, 0, n, axis=axis)
        c_hi = jax.lax.slice_in_dim(c, 1, n + 1, axis=axis)
        u_prev = _shift_pad(jax.lax.slice_in_dim(u, 0, n - 1, axis=axis), axis, 1, 0)
        u_next = _shift_pad(jax.lax.slice_in_dim(u, 1, n, axis=axis), axis, 0, 1)
        term = c_lo * (u - u_prev) + c_hi * (u - u_next)
        out = term if out is None else out + term
    if op.solid is not None:
        out = jnp.where(op.solid, u, out)
    return out


def operator(
    shape: Sequence[int],
    kappa: Any = 1.0,
    bc: str | Sequence[str] = "dirichlet",
    obstacles: Any = None,
    lengths: float | Sequence[float] = 1.0,
) -> PoissonOperator:
    """Build the matrix-free operator ``-div(kappa grad .)`` on ``shape`` cells.

    Args:
        shape: ``(nx, ny)`` or ``(nx, ny, nz)`` cells.
        kappa: positive coefficient, scalar or array of ``shape`` (cell values).
        bc: ``"dirichlet"`` (u = 0 on the walls), ``"neumann"`` (no flux), or one per wall
            ``(x_lo, x_hi, y_lo, y_hi[, z_lo, z_hi])``.
        obstacles: boolean array of ``shape``, True in solid cells (no-flux faces).
        lengths: physical box size per axis (scalar: the same for all).
    """
    shape = _check_shape(shape)
    nd = len(shape)
    _check_grid_memory("poisson.operator", shape, nd + 2)  # kappa, the face coefficients, the result of mv
    sides = _check_bc(bc, nd)
    kappa = _check_field("kappa", kappa, shape, positive=True)
    L = np.asarray(_check_lengths(lengths, nd))
    h = L / np.asarray(shape)
    solid = None
    if obstacles is not None:
        solid = jnp.asarray(obstacles)
        if solid.shape != shape:
            raise ValueError(f"obstacles has shape {tuple(solid.shape)}, expected the grid shape {shape}.")
        solid = solid.astype(bool)
        if _is_concrete(solid) and bool(np.all(np.asarray(solid))):
            raise ValueError("obstacles covers every cell; at least one fluid cell is needed.")
        kappa = jnp.where(solid, 0.0, kappa)
    faces = _faces(kappa, tuple(float(v) for v in h), sides)
    return PoissonOperator(faces, solid, shape, sides)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _faces(kappa, h, sides):
    """Face coefficients ``kappa_face / h^2`` per axis (harmonic mean inside, the wall cell's
    value at a Dirichlet wall, 0 at a Neumann wall), compiled once per grid and walls."""
    faces = []
    for a in range(kappa.ndim):
        k_lo = _shift_pad(kappa, a, 1, 0)  # cell on the low side of each face
        k_hi = _shift_pad(kappa, a, 0, 1)  # cell on the high side
        interior = 2.0 * k_lo * k_hi / jnp.where(k_lo + k_hi > 0, k_lo + k_hi, 1.0)
        n = kappa.shape[a]
        lo_wall = 2.0 * jax.lax.slice_in_dim(kappa, 0, 1, axis=a) * (sides[2 * a] == "dirichlet")
        hi_wall = 2.0 * jax.lax.slice_in_dim(kappa, n - 1, n, axis=a) * (sides[2 * a + 1] == "dirichlet")
        c = jnp.concatenate([lo_wall, jax.lax.slice_in_dim(interior, 1, n, axis=a), hi_wall], axis=a)
        faces.append(c / h[a] ** 2)
    return tuple(faces)


def linear_system(A: PoissonOperator, b, x_true=None) -> LinearSystem:
    """The problem ``A x = b`` for the Krylov solvers (`CG`, `PCG`)."""
    if not isinstance(A, PoissonOperator):
        raise TypeError(f"linear_system expects a PoissonOperator, got {type(A).__name__}.")
    b = _check_field("b", b, A.shape)
    return LinearSystem(A, b.astype(A.dtype), x_true)


# --------------------------------------------------------------------------------------
# inverse problems
# --------------------------------------------------------------------------------------
UNKNOWNS = ("source", "kappa")


class PoissonInverse(HasForward):
    """Recover the source ``f`` or the coefficient ``kappa`` from noisy values of ``u``.

    ``forward(theta)`` solves ``-div(kappa grad u) = f`` (multigrid-preconditioned CG,
    differentiated implicitly) and returns ``u`` at the sensor cells. For
    ``unknown="source"``, ``theta = f`` (grid shape); for ``unknown="kappa"``,
    ``theta = log kappa`` and `constrain` returns ``kappa = exp(theta)``.

    Attributes:
        unknown: ``"source"`` or ``"kappa"`` (static).
        shape, bc, lengths: the grid, walls and box size (static; see `operator`).
        kappa: known coefficient (unknown="source"); source: known f (unknown="kappa").
        obstacles: boolean solid-cell mask or None.
        sensors: flat (C-order) indices of the observed cells, or None for all cells.
        y_obs: observations, shape ``(len(sensors),)`` or the grid shape if ``sensors`` is None.
        noise: `GaussianNoise` with the noise standard deviation.
        x_true: the true unknown (physical: f or kappa), or None.
        theta0: starting point of the unconstrained unknown.
        linear_solver: Krylov solver for the forward solves (None: the default of
            `invsolve.linalg.linear_solve`).
    """

    unknown: str = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)
    bc: tuple[str, ...] = eqx.field(static=True)
    lengths: tuple[float, ...] = eqx.field(static=True)
    kappa: jax.Array | None
    source: jax.Array | None
    obstacles: jax.Array | None
    sensors: jax.Array | None
    y_obs: jax.Array
    noise: GaussianNoise
    x_true: jax.Array | None
    theta0: jax.Array
    linear_solver: Any = None

    def __check_init__(self):
        if self.unknown not in UNKNOWNS:
            raise ValueError(f"unknown must be one of {UNKNOWNS}, got {self.unknown!r}.")
        need = "kappa" if self.unknown == "source" else "source"
        if getattr(self, need) is None:
            raise ValueError(f"PoissonInverse with unknown={self.unknown!r} needs the known {need}.")
        expected = self.shape if self.sensors is None else (int(self.sensors.shape[0]),)
        if tuple(self.y_obs.shape) != tuple(expected):
            raise ValueError(
                f"y_obs has shape {tuple(self.y_obs.shape)}, expected {tuple(expected)} "
                f"({'one value per sensor' if self.sensors is not None else 'the grid shape'})."
            )
        check_finite_data("PoissonInverse", "y_obs", self.y_obs)
        if tuple(self.theta0.shape) != tuple(self.shape):
            raise ValueError(f"theta0 has shape {tuple(self.theta0.shape)}, expected {self.shape}.")

    def _operator(self, kappa):
        return operator(self.shape, kappa, self.bc, self.obstacles, self.lengths)

    @eqx.filter_jit  # one compiled program per problem structure (eagerly, a solve compiles each op)
    def solve_state(self, theta):
        """The full field ``u`` for unknown ``theta``."""
        from ..linalg import linear_solve

        if self.unknown == "source":
            return linear_solve(self._operator(self.kappa), theta, self.linear_solver)
        return linear_solve(self._operator(jnp.exp(theta)), self.source, self.linear_solver)

    def forward(self, theta):
        u = self.solve_state(theta)
        return u if self.sensors is None else u.ravel()[self.sensors]

    def init_params(self):
        return self.theta0

    def constrain(self, theta):
        return jnp.exp(theta) if self.unknown == "kappa" else theta

    def with_observations(self, y_obs) -> "PoissonInverse":
        """The same problem with other data (e.g. another noise draw)."""
        return dataclasses.replace(self, y_obs=jnp.asarray(y_obs, self.y_obs.dtype))


def smooth_field(key, shape, n_bumps: int = 3, width: float = 0.2):
    """A sum of ``n_bumps`` Gaussian bumps on the unit box, centres in [0.25, 0.75]^d,
    widths ``width * U(0.8, 1.2)``, amplitudes in [0.5, 1], tapered by ``prod sin(pi x_i)``
    so that it vanishes on the walls; float of the default dtype."""
    shape = _check_shape(shape)
    check_key("poisson.smooth_field", key)
    _check_grid_memory("poisson.smooth_field", shape, 2 * n_bumps + 2 * len(shape) + 1)
    return _smooth_field(key, shape, int(n_bumps), float(width))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _smooth_field(key, shape, n_bumps, width):
    kc, kw, ka = jax.random.split(key, 3)
    d = len(shape)
    centres = jax.random.uniform(kc, (n_bumps, d), minval=0.25, maxval=0.75)
    widths = width * jax.random.uniform(kw, (n_bumps,), minval=0.8, maxval=1.2)
    amps = jax.random.uniform(ka, (n_bumps,), minval=0.5, maxval=1.0)
    grids = jnp.meshgrid(*[(jnp.arange(n) + 0.5) / n for n in shape], indexing="ij")
    x = jnp.stack(grids, -1)
    r2 = jnp.sum((x[None] - centres.reshape((n_bumps,) + (1,) * d + (d,))) ** 2, -1)
    w = widths.reshape((-1,) + (1,) * d)
    a = amps.reshape((-1,) + (1,) * d)
    taper = jnp.prod(jnp.sin(jnp.pi * x), axis=-1)
    return taper * jnp.sum(a * jnp.exp(-0.5 * r2 / w**2), axis=0)


def smoke_obstacles(shape, key, n_obstacles: int = 4, size: tuple[float, float] = (0.08, 0.18)):
    """Solid obstacles like those of a smoke simulation (Kaneda et al.'s test scenes): a
    boolean mask of ``shape`` (an int ``n`` means the cube ``(n, n, n)``), True in solid
    cells, made of ``n_obstacles`` random balls and boxes with radii / half-widths in
    ``size`` (fractions of the box) and centres in [0.2, 0.8]^d. Fluid pockets cut off from
    the walls are filled in, so that a Dirichlet operator on the fluid stays nonsingular.
    The same ``key`` gives the same layout at every resolution."""
    import scipy.ndimage as ndi

    shape = (int(shape),) * 3 if isinstance(shape, (int, np.integer)) else _check_shape(shape)
    d = len(shape)
    u = np.asarray(jax.random.uniform(key, (n_obstacles, 2 + d), dtype=jnp.float32), np.float64)
    x = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij"), -1)
    solid = np.zeros(shape, bool)
    for kind, rad, *c in u:
        r = size[0] + (size[1] - size[0]) * rad
        dx = x - (0.2 + 0.6 * np.asarray(c))
        solid |= (np.sqrt((dx**2).sum(-1)) <= r) if kind < 0.5 else (np.abs(dx).max(-1) <= r)
    labels, _ = ndi.label(~solid)
    border = np.zeros(shape, bool)
    for a in range(d):
        border[(slice(None),) * a + (0,)] = border[(slice(None),) * a + (-1,)] = True
    open_to_walls = np.setdiff1d(np.unique(labels[border]), [0])
    solid |= ~np.isin(labels, open_to_walls)
    return jnp.asarray(solid)


def _sensors(key, n_sensors, shape, obstacles):
    n_cells = int(np.prod(shape))
    fluid = np.ones(n_cells, bool) if obstacles is None else ~np.asarray(obstacles, bool).ravel()
    if n_sensors is None:
        return None
    if not isinstance(n_sensors, (int, np.integer)) or n_sensors < 1 or n_sensors > fluid.sum():
        raise ValueError(
            f"n_sensors must be an integer between 1 and the number of fluid cells ({int(fluid.sum())}), "
            f"got {n_sensors!r}."
        )
    p = jnp.asarray(fluid / fluid.sum())
    return jnp.sort(jax.random.choice(key, n_cells, (n_sensors,), replace=False, p=p))


def _build(unknown, shape, n_sensors, noise, key, kappa, source, bc, obstacles, lengths, theta_true,
           x_true, theta0, linear_solver):
    level = real_number(noise)
    if level is None or not (np.isfinite(level) and level > 0):
        raise ValueError(f"noise must be a positive relative noise level such as 0.01, got {noise!r}.")
    k_sens, k_noise = jax.random.split(key)
    sensors = _sensors(k_sens, n_sensors, shape, obstacles)
    sides = _check_bc(bc, len(shape))
    L = _check_lengths(lengths, len(shape))
    dtype = jnp.result_type(float)
    fields = dict(
        unknown=unknown, shape=shape, bc=sides, lengths=L,
        kappa=None if kappa is None else kappa.astype(dtype),
        source=None if source is None else source.astype(dtype),
        obstacles=None if obstacles is None else jnp.asarray(obstacles, bool),
        sensors=sensors, noise=GaussianNoise(1.0), x_true=x_true.astype(dtype),
        theta0=jnp.asarray(theta0, dtype), linear_solver=linear_solver,
    )
    n_obs = int(np.prod(shape)) if sensors is None else int(sensors.shape[0])
    y_shape = shape if sensors is None else (n_obs,)
    probe = PoissonInverse(y_obs=jnp.zeros(y_shape, dtype), **fields)
    clean = probe.forward(theta_true.astype(dtype))
    if not isinstance(clean, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(clean))):
        raise ValueError(f"poisson: the observations simulated from the true {unknown} are not finite (the {unknown} "
                         f"or kappa overflow {jnp.dtype(dtype).name}, or the forward solve failed); scale the "
                         "source and kappa to moderate values.")
    sigma = noise * rms(clean)
    y = clean + sigma * jax.random.normal(k_noise, clean.shape, dtype)
    return PoissonInverse(y_obs=y, **{**fields, "noise": GaussianNoise(sigma)})


def source_identification(
    shape: Sequence[int] = (64, 64),
    n_sensors: int | None = 200,
    noise: float = 0.01,
    *,
    key: jax.Array,
    kappa: Any = 1.0,
    source: Any = None,
    bc: str | Sequence[str] = "dirichlet",
    obstacles: Any = None,
    lengths: float | Sequence[float] = 1.0,
    linear_solver: Any = None,
) -> PoissonInverse:
    """Synthetic source identification: recover ``f`` from ``u`` at ``n_sensors`` random cells.

    Args:
        shape: grid, 2D or 3D.
        n_sensors: number of observed cells (None: every cell).
        noise: relative noise level: ``sigma = noise * rms(clean observations)``.
        key: seeds the true source (if not given), the sensor positions and the noise.
        kappa: known coefficient (scalar or grid array, > 0).
        source: the true ``f`` (default `smooth_field`: three Gaussian bumps).
        bc, obstacles, lengths: see `operator`.
    """
    shape = _check_shape(shape)
    _check_grid_memory("poisson.source_identification", shape, len(shape) + 12)  # operator, fields, data, CG vectors
    check_key("poisson.source_identification", key)
    k_truth, k_rest = jax.random.split(key)
    kappa = _check_field("kappa", kappa, shape, positive=True)
    f = smooth_field(k_truth, shape) if source is None else _check_field("source", source, shape)
    if obstacles is not None:
        f = jnp.where(jnp.asarray(obstacles, bool), 0.0, f)
    return _build("source", shape, n_sensors, noise, k_rest, kappa, None, bc, obstacles, lengths,
                  theta_true=f, x_true=f, theta0=jnp.zeros(shape), linear_solver=linear_solver)


def coefficient_identification(
    shape: Sequence[int] = (32, 32),
    n_sensors: int | None = None,
    noise: float = 0.01,
    *,
    key: jax.Array,
    kappa: Any = None,
    source: Any = 10.0,
    kappa_init: float = 1.0,
    bc: str | Sequence[str] = "dirichlet",
    obstacles: Any = None,
    lengths: float | Sequence[float] = 1.0,
    linear_solver: Any = None,
) -> PoissonInverse:
    """Synthetic coefficient identification: recover ``kappa > 0`` from noisy ``u``.

    The unknown is ``theta = log kappa`` (so kappa stays positive); ``sol.value`` is kappa.

    Args:
        shape: grid, 2D or 3D.
        n_sensors: observed cells (None: all cells, the classic full-field setting).
        noise: relative noise level, as in `source_identification`.
        key: seeds the true kappa (if not given), the sensors and the noise.
        kappa: the true coefficient (default ``1 + smooth_field``, between 1 and about 2).
        source: known right-hand side (scalar or grid array).
        kappa_init: constant starting value of kappa.
        bc, obstacles, lengths: see `operator`.
    """
    shape = _check_shape(shape)
    _check_grid_memory("poisson.coefficient_identification", shape, len(shape) + 12)  # operator, fields, data, CG vectors
    check_key("poisson.coefficient_identification", key)
    k_truth, k_rest = jax.random.split(key)
    kappa = 1.0 + smooth_field(k_truth, shape, n_bumps=2, width=0.2) if kappa is None else kappa
    kappa = _check_field("kappa", kappa, shape, positive=True)
    f = _check_field("source", source, shape)
    k0 = real_number(kappa_init)
    if k0 is None or not (np.isfinite(k0) and k0 > 0):
        raise ValueError(f"kappa_init must be a positive number, got {kappa_init!r}.")
    return _build("kappa", shape, n_sensors, noise, k_rest, None, f, bc, obstacles, lengths,
                  theta_true=jnp.log(kappa), x_true=kappa, theta0=jnp.full(shape, np.log(kappa_init)),
                  linear_solver=linear_solver)


# --------------------------------------------------------------------------------------
# a physics-informed (mesh-free) Poisson problem with a manufactured solution
# --------------------------------------------------------------------------------------
def manufactured_solution(x):
    """``u*(x, y) = sin(pi x) sin(pi y) + x y`` on the unit square (x: (n, 2))."""
    return jnp.sin(jnp.pi * x[:, 0]) * jnp.sin(jnp.pi * x[:, 1]) + x[:, 0] * x[:, 1]


class PoissonPINN(HasResidual):
    """``-laplace(u) = f`` on ``[0, 1]^2``, ``u = g`` on the boundary, with the manufactured
    solution `manufactured_solution` (``f = 2 pi^2 sin(pi x) sin(pi y)``, ``g = x y``): a
    mesh-free problem for `invsolve.solvers.PINN`. With ``hard_bc`` the network's output
    ``z`` becomes ``u = x y + x (1 - x) y (1 - y) z``, which meets the boundary condition
    exactly; otherwise ``n_boundary`` boundary points are penalised (condition ``"bc"``).
    `Solution.value` is ``{"u": u on an n_eval x n_eval grid}``; metrics ``rel_l2``.
    """

    n_out: ClassVar[int] = 1
    hard_bc: bool = eqx.field(static=True, default=False)
    n_boundary: int = eqx.field(static=True, default=128)
    n_eval: int = eqx.field(static=True, default=33)

    @property
    def lower(self):
        return jnp.zeros(2)

    @property
    def upper(self):
        return jnp.ones(2)

    @property
    def y_obs(self):
        return None

    def _grid(self):
        t = jnp.linspace(0.0, 1.0, self.n_eval)
        return jnp.stack(jnp.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)

    @property
    def x_true(self):
        return manufactured_solution(self._grid()).reshape(self.n_eval, self.n_eval)

    def transform(self, x, out, theta):
        if not self.hard_bc:
            return out
        bubble = x[:, 0] * (1 - x[:, 0]) * x[:, 1] * (1 - x[:, 1])
        return (x[:, 0] * x[:, 1] + bubble * out[:, 0])[:, None]

    def residual(self, u, theta, x):
        f = lambda y: u(y)[:, 0]
        lap = 0.0
        for axis in range(2):
            _, _, d2 = directional_derivatives(f, x, jnp.zeros_like(x).at[:, axis].set(1.0))
            lap = lap + d2
        source = 2 * jnp.pi**2 * jnp.sin(jnp.pi * x[:, 0]) * jnp.sin(jnp.pi * x[:, 1])
        return -lap - source

    def conditions(self, u, theta):
        if self.hard_bc:
            return {}
        s = (jnp.arange(self.n_boundary) + 0.5) / self.n_boundary * 4.0  # perimeter coordinate
        side, t = jnp.floor(s), s - jnp.floor(s)
        xb = jnp.stack([jnp.select([side == 0, side == 1, side == 2], [t, 1.0, 1 - t], 0.0),
                        jnp.select([side == 0, side == 1, side == 2], [0.0, t, 1.0], 1 - t)], -1)
        return {"bc": u(xb)[:, 0] - xb[:, 0] * xb[:, 1]}

    def evaluate(self, u, theta):
        return {"u": u(self._grid())[:, 0].reshape(self.n_eval, self.n_eval)}

    def metrics(self, value):
        from ..metrics import rel_l2

        return {"rel_l2": rel_l2(value["u"], self.x_true)}
