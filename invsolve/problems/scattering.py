"""2D inverse scattering (microwave / ultrasound tomography): the Born operator and the full
Lippmann-Schwinger model.

Geometry (InverseBench's ``inv-scatter`` task, ``configs/problem/inv-scatter.yaml`` and
``inverse_problems/inverse_scatter.py`` of devzhk/InverseBench, scaled to the image size):
an object ``x`` of shape ``(n, n)`` (real permittivity contrast, ``eps_r - 1``) fills a square
domain of side ``side`` (default 0.18 m), pixel size ``h = side / n``. As in
`invsolve.problems.tomography`, pixel ``[row, col]`` has its centre at
``X = (col - n//2) h``, ``Y = (row - n//2) h``. ``n_transmitters`` and ``n_receivers`` sit
on the circle of radius ``radius`` (default 1.6 m) at angles ``2 pi j / n`` (counter-clockwise
from the ``X`` axis). The background wavenumber is ``wavenumber`` (default ``2 pi / (6 h)``:
six pixels per wavelength, InverseBench's ``wave: 6``). InverseBench's defaults are 128²,
20 transmitters, 360 receivers.

Physics (time dependence ``exp(-i omega t)``, Helmholtz ``(Laplace + k0² (1 + x)) u = 0``):
the 2D outgoing Green's function ``G(r) = (i/4) H0^(1)(k0 |r|)`` solves
``(Laplace + k0²) G = -delta``. Transmitter ``t`` is a line source at ``r_t``:
``u_inc_t(r) = G(r - r_t)`` (``incident="point"``, InverseBench's choice) or a plane wave
``exp(i k0 d_t . r)`` travelling towards the centre (``incident="plane"``). The total field
solves the Lippmann-Schwinger equation::

    u_t(r) = u_inc_t(r) + k0² integral G(r - r') x(r') u_t(r') dr'

and receiver ``m`` measures the scattered field ``s[t, m] = k0² sum_p G(r_m - r_p) x_p u_t(r_p) h²``
(pixels as point scatterers of area ``h²``: the midpoint rule, as InverseBench). The Born
approximation replaces ``u_t`` by ``u_inc_t``: linear in ``x``.

Complex data are stored as real arrays ``(2, n_transmitters, n_receivers)`` (real part,
imaginary part), so the real least-squares solvers (CGLS, ChambollePock, GradientMAP) apply.
The transpose of the real-stacked operator is ``r -> Re(A^H (r[0] + i r[1]))``.

Differences from InverseBench's code (by choice): the sensor angles are ``2 pi j / n``
(InverseBench: ``linspace(0, 359, n)`` degrees, identical for 360 receivers; for 20
transmitters theirs puts the first and last one 1 degree apart); the data are
``G u_inc x`` (theirs is its complex conjugate for real ``x``, ``conj(x u_inc) G``, a sign
flip of the imaginary part); the self-cell of the domain Green's function is Richmond's
closed form below (theirs integrates ``|Re G|`` and ``|Im G|`` numerically over the square cell).

Self-term (Richmond, IEEE Trans. Antennas Propag. 13(3), 1965, "Scattering by a dielectric
cylinder of arbitrary cross-section shape"): ``G`` is singular (logarithmically) at 0, so the
domain convolution uses its average over the cell, the square replaced by the disk of the same
area, radius ``a = h / sqrt(pi)``::

    k0² integral_{|r| < a} G(r) dr = (i pi k0 a / 2) H1^(1)(k0 a) - 1

Memory: the Born operator stores the receiver Green's matrix ``(n_receivers, n²)`` and the
incident fields ``(n_transmitters, n²)``, complex: at 128², 360 receivers, 20 transmitters,
complex128, 94 MB + 5 MB (the dense ``(n_tx n_rx, n²)`` matrix would be 1.9 GB). One ``mv`` or
its transpose is one complex matrix product ``(n_tx, n²) x (n², n_rx)``: about 0.94 GFLOP at
128². The Lippmann-Schwinger model adds the FFT of the domain Green's function on the
padded ``(2n, 2n)`` grid.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sps

from .._linop import MatrixFreeRectangular
from .._problem import (
    GaussianNoise,
    HasForward,
    LinearInverse,
    check_key,
    check_memory,
    real_number,
    rms,
)
from .tomography import _finite_truth, relative_gaussian

__all__ = [
    "MIN_POINTS_PER_WAVELENGTH",
    "BornOperator",
    "LippmannSchwinger",
    "born",
    "green",
    "lippmann_schwinger",
    "self_term",
]

INCIDENT = ("point", "plane")
MIN_POINTS_PER_WAVELENGTH = 5.0  # fewer pixels per wavelength than this warns


# --------------------------------------------------------------------------------------
# Green's function (host, NumPy/SciPy: constants computed at construction)
# --------------------------------------------------------------------------------------
def _h0(z):
    """``H0^(1)(z) = J0(z) + i Y0(z)`` for real ``z > 0`` (scipy's Cephes j0/y0: much faster
    than ``hankel1`` on millions of points, equal to it to ~1e-15)."""
    return sps.j0(z) + 1j * sps.y0(z)


def green(r, wavenumber):
    """The 2D outgoing Helmholtz Green's function ``(i/4) H0^(1)(k0 r)`` at distances ``r > 0``
    (NumPy, complex128): ``(Laplace + k0²) G = -delta``."""
    return 0.25j * _h0(wavenumber * np.asarray(r, float))


def self_term(wavenumber, pixel_size):
    """``k0² * integral of G`` over a cell of area ``h²`` (Richmond 1965, the equal-area disk
    of radius ``a = h / sqrt(pi)``): ``(i pi k0 a / 2) H1^(1)(k0 a) - 1``. The cell's weight in
    the domain convolution (which multiplies ``G`` by ``k0² h²`` elsewhere)."""
    a = pixel_size / np.sqrt(np.pi)
    ka = wavenumber * a
    return 0.5j * np.pi * ka * sps.hankel1(1, ka) - 1.0


# --------------------------------------------------------------------------------------
# geometry and input checks
# --------------------------------------------------------------------------------------
def _positive(name, value, what):
    v = real_number(value)
    if v is None or not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number ({what}), got {value!r}.")
    return v


def _count(name, value, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 ({what}), got {value!r}.")
    return int(value)


def _check_object(x):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or x.shape[0] < 2:
        raise ValueError(f"the object x must be a square 2D image (n, n) with n >= 2, got shape {tuple(x.shape)}.")
    return x


class Geometry(eqx.Module):
    """Host-side description of a scattering set-up (all lengths in the same unit, metres by
    default). Built by `geometry`; holds no large arrays."""

    size: int = eqx.field(static=True)
    side: float = eqx.field(static=True)
    wavenumber: float = eqx.field(static=True)
    radius: float = eqx.field(static=True)
    n_transmitters: int = eqx.field(static=True)
    n_receivers: int = eqx.field(static=True)
    incident: str = eqx.field(static=True)

    @property
    def pixel_size(self):
        return self.side / self.size

    @property
    def points_per_wavelength(self):
        return 2 * np.pi / (self.wavenumber * self.pixel_size)

    def pixels(self):
        """Pixel-centre coordinates ``(X, Y)``, each ``(n, n)``."""
        c = (np.arange(self.size) - self.size // 2) * self.pixel_size
        return np.meshgrid(c, c, indexing="xy")  # X[row, col] = c[col], Y[row, col] = c[row]

    def sensors(self, n):
        phi = 2 * np.pi * np.arange(n) / n
        return self.radius * np.cos(phi), self.radius * np.sin(phi)

    def transmitters(self):
        """``(X, Y)`` of the transmitters, each ``(n_transmitters,)``."""
        return self.sensors(self.n_transmitters)

    def receivers(self):
        """``(X, Y)`` of the receivers, each ``(n_receivers,)``."""
        return self.sensors(self.n_receivers)

    def incident_fields(self):
        """``u_inc`` at the pixel centres, ``(n_transmitters, n, n)`` complex128."""
        X, Y = self.pixels()
        tx, ty = self.transmitters()
        if self.incident == "point":
            return green(np.hypot(X[None] - tx[:, None, None], Y[None] - ty[:, None, None]), self.wavenumber)
        d = -np.stack([tx, ty]) / self.radius  # unit direction from the transmitter towards the centre
        return np.exp(1j * self.wavenumber * (d[0][:, None, None] * X[None] + d[1][:, None, None] * Y[None]))

    def receiver_green(self):
        """``k0² h² G(r_m - r_p)``, ``(n_receivers, n²)`` complex128."""
        X, Y = self.pixels()
        rx, ry = self.receivers()
        r = np.hypot(X.reshape(1, -1) - rx[:, None], Y.reshape(1, -1) - ry[:, None])
        return self.wavenumber**2 * self.pixel_size**2 * green(r, self.wavenumber)

    def domain_kernel(self):
        """The domain convolution kernel ``k0² h² G(h (i, j))`` for offsets ``i, j`` in
        ``[-n, n)``, on the ``(2n, 2n)`` grid with offset 0 at index ``(0, 0)`` (FFT order); the
        zero offset holds `self_term`."""
        n, h = self.size, self.pixel_size
        off = np.fft.ifftshift(np.arange(-n, n)) * h
        r = np.hypot(off[:, None], off[None, :])
        r[0, 0] = 1.0  # replaced below
        g = self.wavenumber**2 * h**2 * green(r, self.wavenumber)
        g[0, 0] = self_term(self.wavenumber, h)
        return g


def geometry(size, n_transmitters=20, n_receivers=360, *, side=0.18, wavenumber=None, radius=1.6,
             incident="point") -> Geometry:
    """Check and build a `Geometry` (see the module docstring for the conventions).

    Args:
        size: the image side ``n`` (pixels).
        n_transmitters, n_receivers: sensors on the circle (InverseBench: 20 and 360).
        side: the domain's side length (default 0.18, metres, as InverseBench's ``Lx``).
        wavenumber: ``k0`` in the background (rad per length unit); default six pixels per
            wavelength, ``2 pi / (6 side / n)``. Fewer than 5 pixels per wavelength warns.
        radius: the sensor circle (default 1.6, InverseBench's ``sensorRadius``); must lie
            outside the domain (``radius > side / sqrt(2)``).
        incident: ``"point"`` (line sources at the transmitters) or ``"plane"`` (plane waves).
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer image side of at least 2 pixels, got {size!r}.")
    n_tx = _count("n_transmitters", n_transmitters, "the number of transmitters on the circle")
    n_rx = _count("n_receivers", n_receivers, "the number of receivers on the circle")
    side = _positive("side", side, "the side length of the square imaging domain")
    radius = _positive("radius", radius, "of the sensor circle, in the units of side")
    if wavenumber is None:
        wavenumber = 2 * np.pi / (6 * side / size)
    k0 = _positive("wavenumber", wavenumber, "k0 = 2 pi / wavelength in the background, in 1 / units of side")
    if incident not in INCIDENT:
        raise ValueError(f"unknown incident field {incident!r}; expected one of {INCIDENT}.")
    if radius <= side / np.sqrt(2):
        raise ValueError(f"the sensor circle (radius={radius:g}) must lie outside the imaging domain: need radius > "
                         f"side / sqrt(2) = {side / np.sqrt(2):g} (the domain's half-diagonal).")
    geo = Geometry(int(size), float(side), float(k0), float(radius), n_tx, n_rx, incident)
    ppw = geo.points_per_wavelength
    if ppw < MIN_POINTS_PER_WAVELENGTH:
        warnings.warn(f"scattering: only {ppw:.2f} pixels per wavelength (wavenumber={k0:g}, pixel size {side / size:g}); "
                      f"below {MIN_POINTS_PER_WAVELENGTH:g} the pixel discretisation of the fields is inaccurate: "
                      "use a smaller wavenumber or more pixels.", stacklevel=3)
    return geo


# --------------------------------------------------------------------------------------
# Born operator
# --------------------------------------------------------------------------------------
def _complex(dtype):
    return jnp.result_type(dtype, jnp.complex64)


class BornOperator(MatrixFreeRectangular):
    """The Born scattering operator ``x (n, n) -> data (2, n_transmitters, n_receivers)``:
    ``s[t, m] = sum_p [k0² h² G(r_m - r_p)] u_inc_t(r_p) x_p``, real part in ``data[0]``, imaginary
    part in ``data[1]``. Exact transpose: ``r -> Re(A^H (r[0] + i r[1]))``. Leading batch axes
    are allowed in ``mv`` and its transpose.

    Build it with ``BornOperator.build(geometry, dtype)`` or through `born`. Fields:
    ``receiver_green`` ``(n_rx, n²)`` and ``incident`` ``(n_tx, n²)`` (complex), ``geometry``.
    """

    receiver_green: jax.Array
    incident: jax.Array
    geometry: Geometry

    @classmethod
    def build(cls, geo: Geometry, dtype=None):
        dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        cdt = _complex(dtype)
        n2 = geo.size**2
        check_memory(f"a BornOperator on a {geo.size}² grid with {geo.n_transmitters} x {geo.n_receivers} sensors",
                     (geo.n_receivers + geo.n_transmitters) * n2 * jnp.dtype(cdt).itemsize * 3,
                     "use a smaller image or fewer receivers")
        g = jnp.asarray(geo.receiver_green(), cdt)
        inc = jnp.asarray(geo.incident_fields().reshape(geo.n_transmitters, n2), cdt)
        return cls(g, inc, geo)

    @property
    def size(self):
        return self.geometry.size

    def mv(self, x):
        x = jnp.asarray(x)
        if x.ndim < 2 or x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"the object x has shape {tuple(x.shape)}; the operator expects (..., {self.size}, "
                             f"{self.size}).")
        return _born_mv(self, x.astype(self.dtype) if not jnp.issubdtype(x.dtype, jnp.floating) else x)

    def rmv(self, r):
        r = jnp.asarray(r)
        if r.ndim < 3 or r.shape[-3:] != self.out_shape:
            raise ValueError(f"the data have shape {tuple(r.shape)}; expected (..., {', '.join(map(str, self.out_shape))}) "
                             "(real and imaginary part, transmitter, receiver).")
        return _born_rmv(self, r)

    def complex_mv(self, x):
        """The complex scattered field ``(n_tx, n_rx)`` (or batched) for a real or complex contrast."""
        w = self.incident * x.reshape(*x.shape[:-2], 1, -1)
        return jnp.einsum("...tp,mp->...tm", w, self.receiver_green)

    @property
    def in_shape(self):
        return (self.size, self.size)

    @property
    def out_shape(self):
        return (2, self.geometry.n_transmitters, self.geometry.n_receivers)

    @property
    def dtype(self):
        return self.receiver_green.real.dtype


@eqx.filter_jit
def _born_mv(op, x):
    s = op.complex_mv(x.astype(op.dtype))
    return jnp.stack([s.real, s.imag], axis=-3)


@eqx.filter_jit
def _born_rmv(op, r):
    r = r.astype(op.dtype)
    c = r[..., 0, :, :] + 1j * r[..., 1, :, :]  # (..., n_tx, n_rx)
    # Re(A^H c)_p = Re(sum_t conj(u_t,p) sum_m conj(R_m,p) c_t,m) = Re(sum_t u_t,p (conj(c) R)_t,p):
    # no conjugated copy of the large receiver matrix
    z = jnp.einsum("...tm,mp->...tp", jnp.conj(c), op.receiver_green)
    out = jnp.real(jnp.sum(op.incident * z, axis=-2))
    return out.reshape(*out.shape[:-1], op.size, op.size)




def _dtype_of(x):
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)


def born(x, n_transmitters: int = 20, n_receivers: int = 360, noise: float = 0.01, *, key, side: float = 0.18,
         wavenumber: float | None = None, radius: float = 1.6, incident: str = "point") -> LinearInverse:
    """Linear (Born) inverse scattering: recover the contrast ``x`` from scattered fields.

    ``y = A x + sigma e`` with ``A`` the `BornOperator` of the geometry (module docstring;
    defaults mirror InverseBench's ``inv-scatter``: 20 transmitters, 360 receivers, side
    0.18, radius 1.6, six pixels per wavelength) and ``sigma = noise * rms(A x)`` (relative
    Gaussian noise, as `invsolve.problems.tomography.sparse_view`). Data shape
    ``(2, n_transmitters, n_receivers)`` (real, imaginary). ``x_true`` is ``x``.
    """
    x = _check_object(x)
    geo = geometry(x.shape[0], n_transmitters, n_receivers, side=side, wavenumber=wavenumber, radius=radius,
                   incident=incident)
    op = BornOperator.build(geo, _dtype_of(x))
    return relative_gaussian(jnp.asarray(x, op.dtype), op, noise, key, "scattering.born")


# --------------------------------------------------------------------------------------
# Lippmann-Schwinger (full, non-linear) model
# --------------------------------------------------------------------------------------
def _convolve(kernel_hat, v):
    """``sum_q g(p - q) v_q`` on the ``(n, n)`` grid: zero-pad ``v`` to ``(2n, 2n)``, multiply
    by the FFT of the kernel (`Geometry.domain_kernel`), crop (a linear, not circular,
    convolution, since offsets lie in ``(-n, n)``)."""
    n = v.shape[-1]
    vp = jnp.pad(v, [(0, 0)] * (v.ndim - 2) + [(0, n), (0, n)])
    return jnp.fft.ifft2(jnp.fft.fft2(vp) * kernel_hat)[..., :n, :n]


def total_field(kernel_hat, x, u_inc, tol=1e-10, restart=30, maxiter=50):
    """Solve ``u - g * (x u) = u_inc`` for each transmitter (GMRES, JAX's
    ``jax.scipy.sparse.linalg.gmres``, with FFT convolutions). ``x`` real ``(n, n)``,
    ``u_inc`` ``(n_tx, n, n)`` complex. Differentiable in ``x`` and ``u_inc`` implicitly: the
    solve is a ``lax.custom_linear_solve``, whose derivatives solve the transposed system
    (no differentiation through the iterations)."""
    xc = x.astype(u_inc.dtype)

    def matvec(u):
        return u - _convolve(kernel_hat, xc * u)

    def one(b):
        u, _ = jax.scipy.sparse.linalg.gmres(matvec, b, x0=b, tol=tol, atol=0.0, restart=restart, maxiter=maxiter,
                                             solve_method="batched")
        return u

    return jax.vmap(one)(u_inc)


class LippmannSchwinger(HasForward):
    """Full-wave inverse scattering: ``y = forward(x) + noise`` with the total field from the
    Lippmann-Schwinger equation (module docstring). ``forward(x)`` returns
    ``(2, n_tx, n_rx)`` (real, imaginary part of ``s[t, m] = sum_p [k0² h² G(r_m - r_p)]
    x_p u_t(r_p)``); the unknown ``x`` is the real contrast ``(n, n)`` (``init_params``: zeros).
    ``born`` is the Born operator of the same geometry (its linearisation at ``x = 0``).

    Built by `lippmann_schwinger`. GMRES settings: ``tol`` (relative residual), ``restart``,
    ``maxiter`` (restart cycles).
    """

    born: BornOperator
    kernel_hat: jax.Array  # FFT of the (2n, 2n) domain kernel
    y_obs: jax.Array
    noise: GaussianNoise
    x_true: jax.Array | None = None
    tol: float = eqx.field(default=1e-10, static=True)
    restart: int = eqx.field(default=30, static=True)
    maxiter: int = eqx.field(default=50, static=True)

    def fields(self, x):
        """Total fields ``(n_tx, n, n)`` (complex) for contrast ``x``."""
        return _fields(self, x)

    def _fields(self, x):
        n = self.born.size
        u_inc = self.born.incident.reshape(-1, n, n)
        return total_field(self.kernel_hat, x, u_inc, self.tol, self.restart, self.maxiter)

    def forward(self, theta):
        return _forward(self, theta)  # compiled once per problem even when called eagerly

    def init_params(self):
        return jnp.zeros((self.born.size, self.born.size), self.born.dtype)

    def metrics(self, value) -> dict:
        out = super().metrics(value)
        if self.x_true is not None:
            from ..metrics import psnr

            span = jnp.max(self.x_true) - jnp.min(self.x_true)
            out["psnr"] = jnp.where(span > 0, psnr(value, self.x_true, jnp.where(span > 0, span, 1.0)), jnp.nan)
        return out

    def with_observations(self, y_obs) -> LippmannSchwinger:
        return eqx.tree_at(lambda p: p.y_obs, self, jnp.asarray(y_obs, self.y_obs.dtype))


def _scatter(op: BornOperator, x, u):
    """``s[t, m] = sum_p R[m, p] x_p u_t(p)``."""
    w = x.reshape(1, -1).astype(u.dtype) * u.reshape(u.shape[0], -1)
    return w @ op.receiver_green.T


@eqx.filter_jit
def _fields(problem, x):
    return problem._fields(x)


@eqx.filter_jit
def _forward(problem, x):
    u = problem._fields(x)
    s = _scatter(problem.born, x, u)
    return jnp.stack([s.real, s.imag])


def lippmann_schwinger(x, n_transmitters: int = 20, n_receivers: int = 360, noise: float = 0.01, *, key,
                       side: float = 0.18, wavenumber: float | None = None, radius: float = 1.6,
                       incident: str = "point", tol: float = 1e-10, restart: int = 30,
                       maxiter: int = 50) -> LippmannSchwinger:
    """Full-wave (Lippmann-Schwinger) inverse scattering, the non-linear counterpart of `born`
    (same geometry arguments): data ``forward(x) + sigma e``, ``sigma = noise * rms(forward(x))``.
    Solve with a `HasForward` solver (e.g. `invsolve.solvers.GradientMAP`); gradients of the
    forward model go through the field solve implicitly."""
    x = _check_object(x)
    level = real_number(noise)
    if level is None or not (np.isfinite(level) and level >= 0):
        raise ValueError(f"noise must be a non-negative relative noise level such as 0.01, got {noise!r}.")
    check_key("scattering.lippmann_schwinger", key)
    for name, v in (("restart", restart), ("maxiter", maxiter)):
        _count(name, v, "a GMRES setting")
    _positive("tol", tol, "the GMRES relative residual tolerance")
    geo = geometry(x.shape[0], n_transmitters, n_receivers, side=side, wavenumber=wavenumber, radius=radius,
                   incident=incident)
    dtype = _dtype_of(x)
    op = BornOperator.build(geo, dtype)
    kernel_hat = jnp.fft.fft2(jnp.asarray(geo.domain_kernel(), _complex(dtype)))
    x = _finite_truth(x).astype(dtype)
    shape = jax.ShapeDtypeStruct(op.out_shape, dtype)
    prob = LippmannSchwinger(op, kernel_hat, jnp.zeros(shape.shape, dtype), GaussianNoise(1.0), x, float(tol),
                             int(restart), int(maxiter))
    clean = _forward(prob, x)
    sigma = level * rms(clean)
    y = clean + sigma * jax.random.normal(key, clean.shape, clean.dtype)
    return LippmannSchwinger(op, kernel_hat, y, GaussianNoise(jnp.where(sigma > 0, sigma, 1.0)), x, float(tol),
                             int(restart), int(maxiter))
