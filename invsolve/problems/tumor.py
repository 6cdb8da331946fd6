"""Tumour growth: the Fisher-Kolmogorov (Fisher-KPP) reaction-diffusion equation.

``u_t = D u_xx + rho u (1 - u)``: ``u`` the normalised tumour cell density, ``D`` the
diffusivity, ``rho`` the proliferation rate (Fisher 1937; Kolmogorov, Petrovsky and
Piskunov 1937; the glioma model of Lipkova et al. 2019 in 2D/3D).
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import (HasResidual, HasSimulator, as_array, as_int, check_key, check_value, directional_derivatives,
                        real_number)


def _positive(owner, name, unit=""):
    """A field converter: the value as an array, refused unless positive and finite
    (``ValueError`` when concrete, `eqx.error_if` when traced)."""

    def convert(v):
        v = as_array(v, f"{owner}: {name} must be a positive finite number{unit}")
        return check_value(v, ~jnp.all(jnp.isfinite(v) & (v > 0)),
                           f"{owner}: {name} must be positive and finite{unit}", got=lambda: repr(np.asarray(v).tolist()))

    return convert


def travelling_wave(x, t, D, rho):
    """Exact Fisher-KPP solution (Ablowitz & Zeppetella 1979):
    ``u = (1 + exp(sqrt(rho / (6 D)) (x - c t)))^-2`` with ``c = 5 sqrt(rho D / 6)``."""
    k = jnp.sqrt(rho / (6.0 * D))
    c = 5.0 * jnp.sqrt(rho * D / 6.0)
    return 1.0 / (1.0 + jnp.exp(k * (x - c * t))) ** 2


class FisherKPP1D(HasResidual):
    """1D Fisher-KPP in space-time, ``(x, t) in [x_min, x_max] x [0, t_end]``, for a PINN:
    initial and Dirichlet boundary data from the exact travelling wave `travelling_wave`, so
    the network's error against it is measurable. Points are ``(x, t)`` rows. Conditions
    ``"ic"`` (``n_ic`` points at t = 0) and ``"bc"`` (``n_bc`` per side); `Solution.value`
    is ``{"u": u on an (n_eval, n_eval) (x, t) grid}``; metrics ``rel_l2``.
    """

    n_out: ClassVar[int] = 1
    time_axis: ClassVar[int] = 1
    D: jax.Array = eqx.field(default=1.0, converter=_positive("FisherKPP1D", "D"))
    rho: jax.Array = eqx.field(default=1.0, converter=_positive("FisherKPP1D", "rho"))
    x_min: float = eqx.field(static=True, default=-10.0)
    x_max: float = eqx.field(static=True, default=10.0)
    t_end: float = eqx.field(static=True, default=2.0)
    n_ic: int = eqx.field(static=True, default=128)
    n_bc: int = eqx.field(static=True, default=64)
    n_eval: int = eqx.field(static=True, default=41)

    def __check_init__(self):
        if not (self.x_max > self.x_min and self.t_end > 0):
            raise ValueError("FisherKPP1D: need x_max > x_min and t_end > 0.")

    @property
    def lower(self):
        return jnp.array([self.x_min, 0.0])

    @property
    def upper(self):
        return jnp.array([self.x_max, self.t_end])

    @property
    def y_obs(self):
        return None

    def _exact(self, xt):
        return travelling_wave(xt[:, 0], xt[:, 1], self.D, self.rho)

    def _grid(self):
        x = jnp.linspace(self.x_min, self.x_max, self.n_eval)
        t = jnp.linspace(0.0, self.t_end, self.n_eval)
        return jnp.stack(jnp.meshgrid(x, t, indexing="ij"), -1).reshape(-1, 2)

    @property
    def x_true(self):
        return self._exact(self._grid()).reshape(self.n_eval, self.n_eval)

    def residual(self, u, theta, xt):
        f = lambda y: u(y)[:, 0]
        ex = jnp.zeros_like(xt).at[:, 0].set(1.0)
        et = jnp.zeros_like(xt).at[:, 1].set(1.0)
        v, _, u_xx = directional_derivatives(f, xt, ex)
        _, u_t = jax.jvp(f, (xt,), (et,))
        return u_t - self.D * u_xx - self.rho * v * (1.0 - v)

    def conditions(self, u, theta):
        x0 = jnp.linspace(self.x_min, self.x_max, self.n_ic)
        ic = jnp.stack([x0, jnp.zeros_like(x0)], -1)
        t = jnp.linspace(0.0, self.t_end, self.n_bc)
        bc = jnp.concatenate([jnp.stack([jnp.full_like(t, self.x_min), t], -1),
                              jnp.stack([jnp.full_like(t, self.x_max), t], -1)])
        return {"ic": u(ic)[:, 0] - self._exact(ic), "bc": u(bc)[:, 0] - self._exact(bc)}

    def evaluate(self, u, theta):
        return {"u": u(self._grid())[:, 0].reshape(self.n_eval, self.n_eval)}

    def metrics(self, value):
        from ..metrics import rel_l2

        return {"rel_l2": rel_l2(value["u"], self.x_true)}


# ======================================================================================
# Fisher-Kolmogorov on brain anatomy (Lipkova et al. 2019; Ezhov et al. 2023)
# ======================================================================================
GREY_OVER_WHITE = 0.1  # D_grey / D_white (Lipkova et al.; the for-loop repository)


def _concrete(x) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(x))


def _probability_map(name, m):
    m = as_array(m, f"Anatomy: {name} must be an array of probabilities in [0, 1]")
    return check_value(m, ~jnp.all((m >= 0) & (m <= 1)),
                       f"Anatomy: white and grey are probabilities; values must lie in [0, 1] ({name} does not)",
                       got=lambda: f"{name} from {float(jnp.min(m)):g} to {float(jnp.max(m)):g}")


class Anatomy(eqx.Module):
    """Tissue probability maps on a regular grid of isotropic voxels.

    Attributes:
        white, grey: white / grey matter probabilities in [0, 1], shape ``(nx, ny[, nz])``
            (1D, 2D or 3D). The diffusivity is ``D(x) = D_white (white + grey / 10)`` inside
            the brain (``white + grey >= tissue_min``) and zero outside.
        spacing_mm: voxel edge [mm].
    Float dtype: the maps' (float32 or float64); the simulation runs in it.
    """

    white: jax.Array = eqx.field(converter=lambda m: _probability_map("white", m))
    grey: jax.Array = eqx.field(converter=lambda m: _probability_map("grey", m))
    spacing_mm: float = eqx.field(static=True)
    tissue_min: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        if jnp.shape(self.white) != jnp.shape(self.grey) or not 1 <= jnp.ndim(self.white) <= 3:
            raise ValueError("Anatomy: white and grey must be arrays of one shape with 1-3 axes, got "
                             f"{jnp.shape(self.white)} and {jnp.shape(self.grey)}.")
        h = real_number(self.spacing_mm)
        if h is None or not (math.isfinite(h) and h > 0):
            raise ValueError(f"Anatomy: spacing_mm (the voxel edge in mm) must be a positive number, got "
                             f"{self.spacing_mm!r}.")
        if _concrete((self.white, self.grey)):  # traced maps: their range is checked by the converter
            w, g = np.asarray(self.white), np.asarray(self.grey)
            if not np.any(w + g >= self.tissue_min):
                raise ValueError("Anatomy: no voxel has tissue (white + grey >= tissue_min).")

    @property
    def shape(self):
        return tuple(self.white.shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def brain(self):
        """Boolean mask of the voxels that hold tissue."""
        return (self.white + self.grey) >= self.tissue_min

    @property
    def relative_diffusivity(self):
        """``D(x) / D_white``: ``white + grey / 10`` in the brain, 0 outside."""
        return jnp.where(self.brain, self.white + GREY_OVER_WHITE * self.grey, 0.0)

    def faces(self):
        """Per axis, ``D / D_white`` on the interior faces (the mean of the two voxels; zero
        where either lies outside the brain, which is the no-flux boundary)."""
        return _faces(self.relative_diffusivity, self.brain)

    def max_rate(self):
        """Largest sum of a voxel's face coefficients: the diagonal of ``-div(m grad .) h^2``."""
        total = sum(_pad_axis(f, ax, 0, 1) + _pad_axis(f, ax, 1, 0) for ax, f in enumerate(self.faces()))
        return float(np.max(np.asarray(total)))

    def position(self, origin):
        """Relative coordinates in [0, 1]^ndim -> position [mm] (voxel i spans [i, i+1] h)."""
        return jnp.asarray(origin, self.white.dtype) * jnp.asarray(self.shape, self.white.dtype) * self.spacing_mm


@jax.jit  # one compiled program per grid (eagerly, each slice and product compiles apart)
def _faces(m, inside):
    out = []
    for ax in range(m.ndim):
        lo = [slice(None)] * m.ndim
        hi = [slice(None)] * m.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        both = inside[lo] & inside[hi]
        out.append(jnp.where(both, 0.5 * (m[lo] + m[hi]), 0.0))
    return tuple(out)


def _pad_axis(x, ax, before, after):
    pad = [(0, 0)] * x.ndim
    pad[ax] = (before, after)
    return jnp.pad(x, pad)


def _divergence(u, faces):
    """``sum_axes diff(face * diff(u))`` with zero flux at the ends: the conservative stencil
    ``div(m grad u) h^2`` (no flux across the box or the brain boundary)."""
    out = jnp.zeros_like(u)
    for ax, f in enumerate(faces):
        flux = f * jnp.diff(u, axis=ax)
        out = out + _pad_axis(flux, ax, 0, 1) - _pad_axis(flux, ax, 1, 0)
    return out


def _step(u, faces, a, b):
    """One explicit Euler step ``u + a div(m grad u) h^2 + b u (1 - u)``,
    ``a = D_white dt / h^2``, ``b = rho dt``."""
    return u + a * _divergence(u, faces) + b * u * (1.0 - u)


def _run(u, faces, a, b, n):
    return jax.lax.fori_loop(0, n, lambda _, v: _step(v, faces, a, b), u)


def _block_size(n):
    return max(1, int(math.ceil(math.sqrt(n))))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _integrate(u0, faces, a, b, n: int):
    """``n`` explicit steps from ``u0``. Reverse mode: a hand-written adjoint stencil over
    checkpointed blocks of ~sqrt(n) steps (memory: ~2 sqrt(n) states)."""
    return _run(u0, faces, a, b, n)


def _integrate_fwd(u0, faces, a, b, n):
    blk = _block_size(n)
    nb, r = divmod(n, blk)
    u = _run(u0, faces, a, b, r)  # a short first block, then nb full ones

    def block(v, _):
        return _run(v, faces, a, b, blk), v

    u_end, starts = jax.lax.scan(block, u, None, length=nb)
    return u_end, (u0, starts, faces, a, b)


def _adjoint_block(start, g, ga, gb, buf, faces, a, b, steps):
    """Recompute ``steps`` states from ``start`` into ``buf`` (one buffer of a block's states,
    reused by every block: no per-block allocation) and pull ``g`` back through them."""
    if steps == 0:
        return g, ga, gb, buf
    buf = buf.at[0].set(start)
    buf = jax.lax.fori_loop(
        0, steps - 1, lambda i, s: jax.lax.dynamic_update_index_in_dim(s, _step(s[i], faces, a, b), i + 1, 0), buf)

    def back(j, carry):
        g, ga, gb = carry
        u = buf[steps - 1 - j]
        div_g = _divergence(g, faces)  # the stencil is symmetric: <g, div u> = <div g, u>
        ga = ga + jnp.sum(div_g * u)
        gb = gb + jnp.sum(g * (u - u * u))  # written without a constant: XLA would broadcast it per step
        return g + a * div_g + b * (1.0 - 2.0 * u) * g, ga, gb

    g, ga, gb = jax.lax.fori_loop(0, steps, back, (g, ga, gb))
    return g, ga, gb, buf


def _integrate_bwd(n, res, g):
    u0, starts, faces, a, b = res
    blk = _block_size(n)
    nb, r = divmod(n, blk)
    zero = jnp.zeros((), g.dtype)
    buf = jnp.zeros((blk,) + g.shape, g.dtype)

    def block(k, carry):
        return _adjoint_block(starts[nb - 1 - k], *carry, faces, a, b, blk)

    g, ga, gb, buf = jax.lax.fori_loop(0, nb, block, (g, zero, zero, buf))
    g, ga, gb, _ = _adjoint_block(u0, g, ga, gb, buf, faces, a, b, r)
    return g, jax.tree.map(jnp.zeros_like, faces), ga.astype(jnp.result_type(a)), gb.astype(jnp.result_type(b))


_integrate.defvjp(_integrate_fwd, _integrate_bwd)


def _relative_origin(o):
    msg = "Params: origin must be relative coordinates, a 1D array with each entry in [0, 1]"
    o = as_array(o, msg)
    if o.ndim != 1:
        raise ValueError(f"{msg}; got shape {o.shape}.")
    return check_value(o, ~jnp.all((o >= 0) & (o <= 1)), msg, got=lambda: repr(np.asarray(o).tolist()))


class Params(eqx.Module):
    """Tumour parameters. ``D_white`` [mm^2/day] (white-matter diffusivity; grey matter has a
    tenth), ``rho`` [1/day] (proliferation), ``origin`` (seed position in relative grid
    coordinates, each in [0, 1]), ``t_end`` [days] (time from seeding to the scan).
    ``lam = sqrt(D_white / rho)`` [mm] and ``mu = rho t_end`` are what one scan identifies."""

    D_white: jax.Array = eqx.field(converter=_positive("Params", "D_white", " [mm^2/day]"))
    rho: jax.Array = eqx.field(converter=_positive("Params", "rho", " [1/day]"))
    origin: jax.Array = eqx.field(converter=_relative_origin)
    t_end: jax.Array = eqx.field(converter=_positive("Params", "t_end", " [days]"))

    @property
    def lam(self):
        return jnp.sqrt(self.D_white / self.rho)

    @property
    def mu(self):
        return self.rho * self.t_end


def seed(anatomy: Anatomy, origin, sigma_mm=None):
    """Initial density: a Gaussian ``exp(-|x - x0|^2 / (2 sigma^2))`` (peak 1) at ``origin``
    (relative coordinates), zero outside the brain; ``sigma_mm`` defaults to one voxel."""
    h = anatomy.spacing_mm
    sigma = h if sigma_mm is None else sigma_mm
    x0 = anatomy.position(origin)
    r2 = 0.0
    for ax, n in enumerate(anatomy.shape):
        x = (jnp.arange(n, dtype=anatomy.white.dtype) + 0.5) * h - x0[ax]
        r2 = r2 + x.reshape([-1 if i == ax else 1 for i in range(anatomy.ndim)]) ** 2
    return jnp.where(anatomy.brain, jnp.exp(-r2 / (2.0 * sigma**2)), 0.0)


def stable_dt(anatomy: Anatomy, D_white, rho):
    """The largest explicit step [days] that keeps ``u`` in [0, 1] (discrete maximum
    principle): ``dt <= 1 / (D_white c / h^2 + rho)``, ``c`` the largest sum of a voxel's face
    coefficients (``2 ndim`` for homogeneous white matter; the for-loop code's
    ``dt = 0.99 h^2 / (6 D)`` is the 3D diffusion part)."""
    h2 = anatomy.spacing_mm**2
    return 1.0 / (float(np.max(D_white)) * anatomy.max_rate() / h2 + float(np.max(rho)))


def stable_steps(anatomy: Anatomy, D_white, rho, t_end, safety: float = 0.99) -> int:
    """Steps to reach ``t_end`` stably with the largest ``D_white``, ``rho``, ``t_end`` given
    (scalars or bounds): ``ceil(t_end / (safety * stable_dt))``."""
    return max(1, int(math.ceil(float(np.max(t_end)) / (safety * stable_dt(anatomy, D_white, rho)))))


def _check_origin_inside(anatomy, origin):
    if not _concrete((anatomy, origin)):
        return
    o = np.asarray(origin, float)
    if o.shape != (anatomy.ndim,):
        raise ValueError(f"origin has {o.size} coordinates but the anatomy has {anatomy.ndim} axes.")
    idx = tuple(min(int(c * n), n - 1) for c, n in zip(o, anatomy.shape))
    if not bool(np.asarray(anatomy.brain)[idx]):
        raise ValueError(f"origin {tuple(o.round(3))} (voxel {idx}) lies outside the brain; "
                         "the seed must be placed in tissue (white + grey >= tissue_min).")


def simulate(anatomy: Anatomy, params: Params, *, n_steps: int | None = None, dt=None,
             save_at=None, seed_sigma_mm=None):
    """Tumour cell density ``u`` at ``params.t_end`` (or at each time in ``save_at``).

    Solves ``u_t = div(D(x) grad u) + rho u (1 - u)`` (Lipkova et al. 2019, eq. 1;
    ``D = D_white (p_white + p_grey / 10)``, no flux across the brain boundary) by explicit
    Euler on the conservative 2n+1-point stencil, from `seed` at ``params.origin``.
    ``dt`` [days] defaults to 0.99 `stable_dt`; a larger one is refused. Under
    ``jit``/``grad``/``vmap`` pass ``n_steps`` (static; e.g. from `stable_steps` over the
    parameter bounds; with ``save_at``, steps per interval between saves), then
    ``dt = t_end / n_steps``: the caller keeps it below the limit. ``jax.grad`` runs a hand-written adjoint
    with checkpointed blocks (memory ~2 sqrt(n_steps) states).

    Returns ``u`` with the anatomy's shape and dtype, or ``(len(save_at), *shape)``.
    """
    if not isinstance(anatomy, Anatomy):
        raise TypeError(f"simulate: anatomy must be a tumor.Anatomy (e.g. tumor.ellipsoid_brain(...)), got "
                        f"{type(anatomy).__name__}.")
    if not isinstance(params, Params):
        raise TypeError(f"simulate: params must be tumor.Params(D_white, rho, origin, t_end), got "
                        f"{type(params).__name__}.")
    _check_origin_inside(anatomy, params.origin)
    u = seed(anatomy, params.origin, seed_sigma_mm)
    faces = anatomy.faces()
    h2 = anatomy.spacing_mm**2
    dtype = anatomy.white.dtype
    if n_steps is not None and int(n_steps) < 1:
        raise ValueError(f"simulate: n_steps must be a positive integer, got {n_steps!r}.")
    if n_steps is None and not _concrete(params):
        raise ValueError("simulate: under jit/grad/vmap pass n_steps (static), e.g. "
                         "tumor.stable_steps(anatomy, D_max, rho_max, t_end_max).")
    times = [params.t_end] if save_at is None else list(save_at)
    if _concrete((params, times)):
        limit = stable_dt(anatomy, params.D_white, params.rho)
        if n_steps is not None:
            dt = float(np.max(np.diff(np.concatenate([[0.0], np.asarray(times, float)])))) / int(n_steps)
        if dt is None:
            dt = 0.99 * limit
        elif not 0 < float(dt) <= limit * (1 + 1e-6):
            raise ValueError(f"simulate: dt = {float(dt):.4g} days exceeds the stability limit "
                             f"{limit:.4g} days (1 / (D_white c / h^2 + rho)); use a smaller dt or more steps.")
    out, t_prev = [], 0.0
    for t in times:
        span = jnp.asarray(t, dtype) - t_prev
        n = int(n_steps) if n_steps is not None else max(1, int(math.ceil(float(span) / float(dt) - 1e-9)))
        step = span / n
        a = (params.D_white * step / h2).astype(dtype)
        b = (params.rho * step).astype(dtype)
        u = _integrate(u, faces, a, b, n)
        out.append(u)
        t_prev = jnp.asarray(t, dtype)
    return out[0] if save_at is None else jnp.stack(out)


# --------------------------------------------------------------------------------------
# anatomies
# --------------------------------------------------------------------------------------
def _float_dtype(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)


def _grid_shape(owner, shape, least) -> tuple[int, ...]:
    """1-3 integers of at least ``least`` (``8.5`` is refused, not truncated)."""
    try:
        entries = tuple(shape)
    except TypeError:
        entries = None
    ints = None if entries is None else tuple(as_int(n) for n in entries)
    if ints is None or None in ints or not 1 <= len(ints) <= 3 or min(ints) < least:
        raise ValueError(f"{owner}: shape must be 1-3 integers of at least {least} voxels, got {shape!r}.")
    return ints


def homogeneous_box(shape, spacing_mm: float = 1.0, dtype=None) -> Anatomy:
    """Uniform white matter filling a box (``D = D_white`` everywhere, no flux at the walls)."""
    shape = _grid_shape("homogeneous_box", shape, 2)
    dt = _float_dtype(dtype)
    return Anatomy(jnp.ones(shape, dt), jnp.zeros(shape, dt), float(spacing_mm))


def ellipsoid_brain(shape=(40, 48, 40), spacing_mm: float = 4.0, dtype=None) -> Anatomy:
    """A synthetic brain for fast tests: an ellipsoid filling 90% of the box, white matter in
    its inner 70%, a grey-matter shell (with a linear white/grey transition), and an
    ellipsoidal ventricle (no tissue) near the centre. 1D-3D."""
    shape = _grid_shape("ellipsoid_brain", shape, 4)
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n * 2 - 1 for n in shape], indexing="ij")
    r = np.sqrt(sum((g / 0.9) ** 2 for g in grids))
    v = np.sqrt(sum((g / s) ** 2 for g, s in zip(grids, (0.12, 0.25, 0.15))))
    white = np.clip((0.8 - r) / 0.2, 0, 1) * (v > 1)
    grey = np.where((r <= 1) & (v > 1), 1 - white, 0.0)
    dt = _float_dtype(dtype)
    return Anatomy(jnp.asarray(white, dt), jnp.asarray(grey, dt), float(spacing_mm))


def _crop_to_tissue(w, g, tissue_min=0.1):
    """Crop the maps to the tissue's bounding box plus a one-voxel margin."""
    tissue = (w + g) >= tissue_min
    box = []
    for ax in range(w.ndim):
        idx = np.nonzero(np.any(tissue, axis=tuple(j for j in range(w.ndim) if j != ax)))[0]
        box.append(slice(max(0, idx[0] - 1), min(w.shape[ax], idx[-1] + 2)))
    return w[tuple(box)], g[tuple(box)]


@functools.lru_cache(maxsize=None)
def _mni_maps(resolution_mm: int):
    from .phantoms import _require_nilearn, _template

    _require_nilearn("mni152_brain")
    maps = []
    for kind in ("wm", "gm"):
        vol = np.clip(_template(kind), 0.0, 1.0)
        k = resolution_mm
        n = [s // k * k for s in vol.shape]
        vol = vol[: n[0], : n[1], : n[2]]
        maps.append(vol.reshape(n[0] // k, k, n[1] // k, k, n[2] // k, k).mean(axis=(1, 3, 5)))
    return _crop_to_tissue(*maps)


def mni152_brain(resolution_mm: int = 3, axial_slice: float | None = None, dtype=None) -> Anatomy:
    """White/grey matter probability maps of the MNI152 template (the 1 mm maps nilearn
    ships), averaged over ``resolution_mm``^3 blocks (1-4 mm voxels) and cropped to the brain
    with a one-voxel margin; RAS axes (x right, y anterior, z superior). 3 mm: (51, 63, 53)
    voxels. ``axial_slice`` in [0, 1] gives the 2D axial slice at that relative height
    (cropped to its own tissue; 3 mm, 0.5: (50, 63)).
    Needs nilearn (``pip install -e ".[brain]"`` from a checkout)."""
    if resolution_mm not in (1, 2, 3, 4):
        raise ValueError(f"mni152_brain: resolution_mm must be 1, 2, 3 or 4, got {resolution_mm!r}.")
    w, g = _mni_maps(int(resolution_mm))
    if axial_slice is not None:
        if not 0.0 <= float(axial_slice) <= 1.0:
            raise ValueError(f"mni152_brain: axial_slice must be in [0, 1], got {axial_slice!r}.")
        k = int(round(float(axial_slice) * (w.shape[2] - 1)))
        w, g = _crop_to_tissue(w[:, :, k], g[:, :, k])
    dt = _float_dtype(dtype)
    return Anatomy(jnp.asarray(w, dt), jnp.asarray(g, dt), float(resolution_mm))


# --------------------------------------------------------------------------------------
# observation model: segmentations
# --------------------------------------------------------------------------------------
def _check_thresholds(thresholds):
    try:
        lo, hi = (float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be two numbers (edema, core), got {thresholds!r}.") from None
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"thresholds must satisfy 0 < edema < core < 1 (e.g. (0.2, 0.6) as in the for-loop "
                         f"code; literature ranges FLAIR 0.05-0.5, T1Gd 0.5-0.85), got {thresholds!r}.")
    return lo, hi


def segment(u, thresholds=(0.2, 0.6), *, noise: float = 0.0, key=None):
    """The two masks a scan shows: whole tumour / oedema (FLAIR, ``u >= thresholds[0]``) and
    enhancing core (T1Gd, ``u >= thresholds[1]``), stacked as ``(2, *u.shape)`` booleans.
    ``noise > 0`` jitters each voxel's thresholds by ``noise * N(0, 1)`` (boundary noise:
    only voxels with ``u`` near a threshold can flip); it needs ``key``."""
    lo, hi = _check_thresholds(thresholds)
    u = as_array(u, "segment: u (the tumour cell density) must be an array")
    if not jnp.issubdtype(u.dtype, jnp.floating):
        u = u.astype(jnp.result_type(float))
    level = real_number(noise)
    if level is None or not (math.isfinite(level) and level >= 0):
        raise ValueError(f"segment: noise (threshold jitter) must be a non-negative number such as 0.02, got {noise!r}.")
    th = jnp.asarray([lo, hi], u.dtype).reshape((2,) + (1,) * u.ndim)
    if level:
        if key is None:
            raise ValueError("segment: noise > 0 needs key=jax.random.key(...).")
        check_key("segment", key)
        th = th + noise * jax.random.normal(key, (2, *u.shape), u.dtype)
    return u[None] >= th


def _logit(p):
    return jnp.log(p) - jnp.log1p(-p)


class SegmentationInverse(HasSimulator):
    """Find the tumour parameters from one scan's two segmentation masks.

    Unknowns (``theta``, unconstrained; each bounded through ``lo (hi / lo)^sigmoid(theta)``,
    the origin through ``sigmoid``): with ``t_end`` known, ``D_white`` [mm^2/day], ``rho``
    [1/day] and ``origin``; with ``t_end=None``, the identifiable ``lam = sqrt(D/rho)`` [mm],
    ``mu = rho t_end`` and ``origin``. The model runs `n_steps` explicit steps (static, stable
    over the whole box). The likelihood is Bernoulli on every brain voxel with the soft
    masks ``sigmoid((u - threshold) / softness)`` (a differentiable surrogate for the
    thresholds, in the spirit of Lipkova et al.'s Bernoulli likelihood). ``y_obs``:
    ``(2, *shape)`` masks as floats (oedema, core).
    Database features: the density in a ``window_mm`` window around the tumour (`features`,
    `match`). Metrics: ``dice_edema``, ``dice_core`` of the estimate's masks against ``y_obs``; with a
    known truth ``rel_err_D``, ``rel_err_rho`` (or ``rel_err_lambda``, ``rel_err_mu``) and
    ``origin_err_mm``.
    """

    anatomy: Anatomy
    y_obs: jax.Array
    truth: Params | None
    thresholds: tuple = eqx.field(static=True)
    bounds: tuple = eqx.field(static=True)  # ((name, lo, hi), ...) for the scalar unknowns
    origin_box: tuple = eqx.field(static=True)  # ((lo, hi), ...) per axis, relative coordinates
    t_end: float | None = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    softness: float = eqx.field(static=True, default=0.01)
    seed_sigma_mm: float | None = eqx.field(static=True, default=None)
    window_mm: float = eqx.field(static=True, default=90.0)

    @property
    def x_true(self):
        """The true unknowns (physical units), or None."""
        t = self.truth
        if t is None:
            return None
        if self.t_end is not None:
            return {"D_white": t.D_white, "rho": t.rho, "origin": t.origin}
        return {"lam": t.lam, "mu": t.mu, "origin": t.origin}

    @property
    def noise(self):  # the likelihood is Bernoulli, see neg_log_likelihood
        return None

    # --- parametrization -------------------------------------------------------------
    @property
    def box_dim(self):
        return len(self.bounds) + self.anatomy.ndim

    def theta_from_unit(self, z):
        z = jnp.clip(z, 1e-6, 1.0 - 1e-6)
        k = len(self.bounds)
        theta = {name: _logit(z[i]) for i, (name, _, _) in enumerate(self.bounds)}
        theta["origin"] = _logit(z[k:])
        return theta

    def unit_from_theta(self, theta):
        return jax.nn.sigmoid(jnp.concatenate([jnp.stack([theta[name] for name, _, _ in self.bounds]),
                                               jnp.asarray(theta["origin"])]))

    def _origin_range(self, dtype):
        lo, hi = (jnp.asarray([b[i] for b in self.origin_box], dtype) for i in (0, 1))
        return lo, hi - lo

    def constrain(self, theta):
        out = {name: lo * (hi / lo) ** jax.nn.sigmoid(theta[name]) for name, lo, hi in self.bounds}
        lo, width = self._origin_range(theta["origin"].dtype)
        out["origin"] = lo + width * jax.nn.sigmoid(theta["origin"])
        return out

    def unconstrain(self, phys):
        """Inverse of `constrain`."""
        theta = {name: _logit(jnp.clip((jnp.log(phys[name]) - math.log(lo)) / math.log(hi / lo), 1e-6, 1 - 1e-6))
                 for name, lo, hi in self.bounds}
        o = jnp.asarray(phys["origin"])
        lo, width = self._origin_range(o.dtype)
        theta["origin"] = _logit(jnp.clip((o - lo) / width, 1e-6, 1 - 1e-6))
        return theta

    def init_params(self):
        """The rates at the (geometric) centre of their box; the origin at the centroid of the
        core mask (of the oedema if the core is empty), kept inside the origin box."""
        dtype = self.anatomy.white.dtype
        theta = {name: jnp.zeros((), dtype) for name, _, _ in self.bounds}
        ref = jnp.where(jnp.sum(self.y_obs[1]) > 0, self.y_obs[1], self.y_obs[0])
        grids = jnp.meshgrid(*[(jnp.arange(n, dtype=dtype) + 0.5) / n for n in self.anatomy.shape], indexing="ij")
        centroid = jnp.stack([jnp.sum(g * ref) / jnp.sum(ref) for g in grids])
        lo, width = self._origin_range(dtype)
        theta["origin"] = _logit(jnp.clip((centroid - lo) / width, 0.01, 0.99))
        return theta

    def _coefficients(self, phys):
        """``(D t_end, rho t_end)`` = ``(lam^2 mu, mu)``: all a single-time solution needs."""
        if self.t_end is not None:
            return phys["D_white"] * self.t_end, phys["rho"] * self.t_end
        return phys["lam"] ** 2 * phys["mu"], phys["mu"]

    def density(self, theta):
        """Tumour cell density at the scan, for unconstrained ``theta``."""
        phys = self.constrain(theta)
        dT, rT = self._coefficients(phys)
        dtype = self.anatomy.white.dtype
        a = (dT / (self.n_steps * self.anatomy.spacing_mm**2)).astype(dtype)
        b = (rT / self.n_steps).astype(dtype)
        u0 = seed(self.anatomy, phys["origin"], self.seed_sigma_mm)
        return _integrate(u0, self.anatomy.faces(), a, b, self.n_steps)

    def _logits(self, u):
        th = jnp.asarray(self.thresholds, u.dtype).reshape((2,) + (1,) * u.ndim)
        return (u[None] - th) / self.softness

    def forward(self, theta):
        """Soft masks ``sigmoid((u - threshold) / softness)``, shape ``(2, *anatomy.shape)``."""
        return jax.nn.sigmoid(self._logits(self.density(theta)))

    def neg_log_likelihood(self, theta):
        logit = self._logits(self.density(theta))
        y = self.y_obs
        nll = y * jax.nn.softplus(-logit) + (1.0 - y) * jax.nn.softplus(logit)
        return jnp.sum(jnp.where(self.anatomy.brain[None], nll, 0.0))

    # --- database features -----------------------------------------------------------
    @property
    def window(self):
        """Voxels per axis of the feature window (``window_mm``, odd, at most the grid)."""
        w = int(math.ceil(self.window_mm / self.anatomy.spacing_mm)) // 2 * 2 + 1
        return tuple(min(w, n - (1 - n % 2)) for n in self.anatomy.shape)

    def _centroid(self, mask):
        """Centroid of a mask ``(*shape)`` in voxel coordinates, and its size."""
        size = jnp.sum(mask)
        idx = [jnp.arange(n, dtype=mask.dtype) for n in self.anatomy.shape]
        c = [jnp.sum(jnp.sum(mask, axis=tuple(a for a in range(mask.ndim) if a != ax)) * x) for ax, x in enumerate(idx)]
        return jnp.stack(c) / jnp.maximum(size, 1e-6), size

    def _crop(self, x, centre):
        """The window of ``x`` (leading axes kept) centred on the voxel nearest ``centre``."""
        lead = x.ndim - self.anatomy.ndim
        half = [w // 2 for w in self.window]
        x = jnp.pad(x, [(0, 0)] * lead + [(h, h) for h in half])
        start = [0] * lead + list(jnp.clip(jnp.round(centre).astype(jnp.int32), 0,
                                           jnp.asarray(self.anatomy.shape) - 1))
        return jax.lax.dynamic_slice(x, start, x.shape[:lead] + self.window)

    def features(self, theta):
        """The density in a ``window_mm`` window centred on the tumour (the centroid of its
        oedema mask; the seed if nothing is visible), flattened, then that centroid in voxel
        coordinates and the seed's: a description that does not depend on where the tumour
        is, so `match` can compare a simulation with a scan anywhere."""
        u = self.density(theta)
        seed_vox = self.constrain(theta)["origin"] * jnp.asarray(self.anatomy.shape, u.dtype) - 0.5
        c, size = self._centroid((u >= self.thresholds[0]).astype(u.dtype))
        c = jnp.where(size > 0, c, seed_vox)
        return jnp.concatenate([self._crop(u, c).ravel(), c - seed_vox])

    def match(self, features, unit):
        """Score a bank against the data, each entry moved onto the observed tumour.

        An entry's window (see `features`) is compared with the observed masks in the same
        window around the observed oedema's centroid: the score is the mean Dice of the two
        masks. The entry's origin moves by the same offset (observed centroid - simulated
        centroid), so one simulation stands for every seed position; the anatomy around the
        moved seed differs, which the score does not see but the refinement does. Entries
        without a visible tumour score 0. Returns ``(scores (n,), unit (n, box_dim))``.
        """
        d = self.anatomy.ndim
        win = features[:, :-d].astype(jnp.float32)
        offset = features[:, -d:].astype(jnp.float32)  # simulated centroid - seed, voxels
        obs = self.y_obs.astype(jnp.float32)
        c_obs, _ = self._centroid(obs[0])
        obs_win = self._crop(obs, c_obs).reshape(2, -1)
        scores = []
        for i, th in enumerate(self.thresholds):
            m = (win >= th).astype(jnp.float32)
            scores.append(2.0 * (m @ obs_win[i]) / jnp.maximum(jnp.sum(m, axis=1) + jnp.sum(obs_win[i]), 1e-6))
        visible = jnp.max(win, axis=1) >= self.thresholds[0]
        score = jnp.where(visible, 0.5 * (scores[0] + scores[1]), 0.0)
        k = len(self.bounds)
        lo, width = self._origin_range(jnp.float32)
        shape = jnp.asarray(self.anatomy.shape, jnp.float32)
        seed_rel = (c_obs - offset + 0.5) / shape  # the seed that puts the simulated centroid on the observed one
        moved = (seed_rel - lo) / width
        return score, unit.at[:, k:].set(jnp.clip(moved, 1e-6, 1 - 1e-6))

    def signature(self):
        """What a database must share with this problem to be queried for it."""
        return {"shape": list(self.anatomy.shape), "spacing_mm": self.anatomy.spacing_mm,
                "bounds": [list(b) for b in self.bounds], "origin_box": [list(b) for b in self.origin_box], "t_end": self.t_end, "n_steps": self.n_steps,
                "window": list(self.window), "thresholds": list(self.thresholds), "seed_sigma_mm": self.seed_sigma_mm,
                "anatomy_sum": round(float(np.asarray(self.anatomy.relative_diffusivity, np.float64).sum()), 3)}

    # --- metrics -----------------------------------------------------------------------
    def metrics(self, value):
        from ..metrics import dice

        u = self.density(self.unconstrain(value))
        masks = u[None] >= jnp.asarray(self.thresholds, u.dtype).reshape((2,) + (1,) * u.ndim)
        out = {"dice_edema": dice(masks[0], self.y_obs[0]), "dice_core": dice(masks[1], self.y_obs[1])}
        if self.truth is not None:
            names = {"D_white": "D", "rho": "rho", "lam": "lambda", "mu": "mu"}
            for name, true in self.x_true.items():
                if name != "origin":
                    out[f"rel_err_{names[name]}"] = jnp.abs(value[name] - true) / true
            d = self.anatomy.position(value["origin"]) - self.anatomy.position(self.truth.origin)
            out["origin_err_mm"] = jnp.sqrt(jnp.sum(d * d))
        return out


_PAPER_BOUNDS = {"D_white": (0.02, 1.5), "rho": (0.002, 0.2), "t_end": (50.0, 1500.0)}  # for-loop ranges, mm


def default_bounds(t_end=None):
    """The for-loop paper's ranges (D_w 2e-4-1.5e-2 cm^2/day = 0.02-1.5 mm^2/day, rho
    0.002-0.2 /day, T 50-1500 days; Ezhov et al. 2023) as the unknowns' box: ``(D_white, rho)``
    with ``t_end`` known, else ``lam in [sqrt(D_lo/rho_hi), 10 mm]`` and ``mu in [1, 30]``
    (tumours with a visible core that do not fill the brain)."""
    if t_end is not None:
        return (("D_white", *_PAPER_BOUNDS["D_white"]), ("rho", *_PAPER_BOUNDS["rho"]))
    lam_lo = math.sqrt(_PAPER_BOUNDS["D_white"][0] / _PAPER_BOUNDS["rho"][1])
    return (("lam", lam_lo, 10.0), ("mu", 1.0, 30.0))


def _box_steps(anatomy, bounds, t_end):
    b = {name: (lo, hi) for name, lo, hi in bounds}
    if t_end is not None:
        return stable_steps(anatomy, b["D_white"][1], b["rho"][1], t_end)
    # dt in units of 1/rho: lam^2 c / h^2 + 1 <= 1 / dtau, over tau in [0, mu]
    rate = b["lam"][1] ** 2 * anatomy.max_rate() / anatomy.spacing_mm**2 + 1.0
    return max(1, int(math.ceil(b["mu"][1] * rate / 0.99)))


def from_segmentation(anatomy: Anatomy, edema, core, thresholds=(0.2, 0.6), *, t_end=None, bounds=None,
                      origin_radius_mm: float | None = 15.0, truth: Params | None = None,
                      n_steps: int | None = None, softness: float = 0.01, seed_sigma_mm=None,
                      window_mm: float = 90.0) -> SegmentationInverse:
    """The inverse problem for observed masks (booleans of the anatomy's shape): oedema (whole
    tumour) and core. ``t_end`` [days] if known; ``bounds`` as in `default_bounds`. The origin
    is searched within ``origin_radius_mm`` (per axis) of the core's centroid (the oedema's if
    the core is empty), or over the whole grid with ``origin_radius_mm=None``."""
    lo, hi = _check_thresholds(thresholds)
    masks = []
    for name, m in (("edema", edema), ("core", core)):
        m = np.asarray(m)
        if m.shape != anatomy.shape:
            raise ValueError(f"from_segmentation: the {name} mask has shape {m.shape} but the anatomy has "
                             f"shape {anatomy.shape}; resample the segmentation to the anatomy's grid.")
        m = m.astype(bool)
        n_in = int(np.sum(m & np.asarray(anatomy.brain)))
        if n_in == 0:
            raise ValueError(f"from_segmentation: the {name} mask is empty inside the brain; a tumour must be "
                             "visible in both masks (is the scan too early, or the threshold too high?).")
        if n_in == int(np.sum(np.asarray(anatomy.brain))):
            raise ValueError(f"from_segmentation: the {name} mask covers the whole brain; nothing to fit "
                             "(is the scan too late, or the threshold too low?).")
        masks.append(m)
    if t_end is not None and not float(t_end) > 0:
        raise ValueError(f"from_segmentation: t_end must be positive [days], got {t_end!r}.")
    bounds = default_bounds(t_end) if bounds is None else tuple((str(n), float(a), float(b)) for n, a, b in bounds)
    for name, a, b in bounds:
        if not 0 < a < b:
            raise ValueError(f"from_segmentation: bounds for {name} must satisfy 0 < lo < hi, got ({a}, {b}).")
    want = {"D_white", "rho"} if t_end is not None else {"lam", "mu"}
    if {b[0] for b in bounds} != want:
        raise ValueError(f"from_segmentation: bounds must name {sorted(want)} when t_end is "
                         f"{'known' if t_end is not None else 'unknown'}, got {[b[0] for b in bounds]}.")
    t_end = None if t_end is None else float(t_end)
    n = _box_steps(anatomy, bounds, t_end) if n_steps is None else int(n_steps)
    if origin_radius_mm is None:
        origin_box = ((0.0, 1.0),) * anatomy.ndim
    else:
        ref = masks[1] if masks[1].any() else masks[0]
        centre = [float((np.nonzero(ref)[ax].mean() + 0.5) / n_ax) for ax, n_ax in enumerate(anatomy.shape)]
        r = [float(origin_radius_mm) / (n_ax * anatomy.spacing_mm) for n_ax in anatomy.shape]
        origin_box = tuple((round(max(0.0, c - w), 6), round(min(1.0, c + w), 6)) for c, w in zip(centre, r))
    y = jnp.asarray(np.stack(masks), anatomy.white.dtype)
    return SegmentationInverse(anatomy, y, truth, (lo, hi), bounds, origin_box, t_end, n, float(softness),
                               seed_sigma_mm, float(window_mm))


def segmentation_inverse(anatomy: Anatomy, truth: Params, thresholds=(0.2, 0.6), *, key=None,
                         noise: float = 0.0, t_end_known: bool = True, bounds=None,
                         origin_radius_mm: float | None = 15.0, n_steps: int | None = None,
                         softness: float = 0.01, seed_sigma_mm=None, window_mm: float = 90.0):
    """A synthetic case: simulate ``truth`` on ``anatomy``, segment at ``thresholds`` (with
    boundary ``noise``, see `segment`), and pose the inverse problem (`from_segmentation`).
    The data are simulated with the problem's own ``n_steps`` (stable over the box)."""
    _check_thresholds(thresholds)
    t_end = float(truth.t_end) if t_end_known else None
    bounds_ = default_bounds(t_end) if bounds is None else bounds
    b = {n: (lo, hi) for n, lo, hi in bounds_}
    phys = ({"D_white": truth.D_white, "rho": truth.rho} if t_end_known else {"lam": truth.lam, "mu": truth.mu})
    for name, v in phys.items():
        if name in b and not b[name][0] <= float(v) <= b[name][1]:
            raise ValueError(f"segmentation_inverse: the truth's {name} = {float(v):.4g} lies outside the "
                             f"bounds {b[name]}; widen bounds=.")
    n = _box_steps(anatomy, bounds_, t_end) if n_steps is None else int(n_steps)
    if n_steps is None and not t_end_known:  # the data need a stable step for the truth too
        n = max(n, stable_steps(anatomy, truth.D_white, truth.rho, truth.t_end))
    u = simulate(anatomy, truth, n_steps=n, seed_sigma_mm=seed_sigma_mm)
    masks = segment(u, thresholds, noise=noise, key=key) & anatomy.brain[None]
    return from_segmentation(anatomy, masks[0], masks[1], thresholds, t_end=t_end, bounds=bounds_,
                             origin_radius_mm=origin_radius_mm, truth=truth, n_steps=n, softness=softness,
                             seed_sigma_mm=seed_sigma_mm, window_mm=window_mm)
