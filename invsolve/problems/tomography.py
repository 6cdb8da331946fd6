"""X-ray tomography: parallel- and fan-beam projectors, filtered back-projection, CT problems.

Geometry (scikit-image's ``radon(circle=True)`` convention, angles in radians here):
an image ``x`` of shape ``(N, N)`` is indexed ``x[row, col]``; pixel centres sit at
``X = col - N//2``, ``Y = row - N//2`` (pixel units). The parallel ray at angle ``theta`` and
detector offset ``t`` is the line ``X cos(theta) - Y sin(theta) = t``; detector bin ``j`` has
``t = j - n_detectors//2``. A sinogram has shape ``(n_angles, n_detectors)`` (scikit-image's
is the transpose, with angles in degrees). The object must lie inside the inscribed circle.

Two discrete models of the line integral:

* ``"joseph"`` (default): ray-driven, Joseph's method (Joseph 1982): the ray steps one pixel
  along its major axis, interpolating linearly between the two nearest pixels of that row
  or column, times the path length per step. Forward and exact adjoint are both gathers
  (fast on CPU and GPU). Agrees with scikit-image to about 0.5% (relative L2 on
  Shepp-Logan), the usual spread between CT packages.
* ``"rotate"``: scikit-image's own model (rotate the image bilinearly, sum the columns);
  agrees with ``skimage.transform.radon`` to about 1e-6. Its adjoint is JAX's exact
  transpose (a scatter-add, slower). For comparisons with scikit-image.

Units: a sinogram value is the line integral of ``x`` in pixel lengths. dtype follows the
input (float64 for reference tests, float32 by default).
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._linop import MatrixFreeRectangular
from .._problem import (GaussianNoise, LinearInverse, as_array, check_key, check_memory, check_value, real_number,
                        rms)

MODELS = ("joseph", "rotate")
FILTERS = ("ramp", "shepp-logan", "cosine", "hann", "hamming", None)
DETECTORS = ("flat", "equiangular")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _check_size(size) -> int:
    if not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer image side of at least 2 pixels, got {size!r}.")
    return int(size)


MAX_ANGLE = 2 * np.pi * (1 + 1e-6)  # |angle| above this is not radians (degrees, most likely)


def _check_angles(angles) -> jax.Array:
    """A 1D float array of finite angles in radians, ``|angle| <= 2 pi`` (checked with
    `eqx.error_if` when traced)."""
    a = as_array(angles, "angles must be a 1D array of projection angles in radians")
    if a.ndim != 1 or a.shape[0] < 1:
        raise ValueError(f"angles must be a 1D array of projection angles in radians, got shape {a.shape}.")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    a = check_value(a, ~jnp.all(jnp.isfinite(a)), "angles contain NaN or infinite values")
    return check_value(a, jnp.max(jnp.abs(a)) > MAX_ANGLE,
                       "angles must be in radians, each |angle| <= 2 pi (degrees? pass np.deg2rad(angles))",
                       got=lambda: f"a largest |angle| of {float(jnp.max(jnp.abs(a))):g}")


def _as_float(x, dtype):
    """Integer and boolean input becomes ``dtype`` (the operator's float dtype); float and
    complex input keeps its own dtype."""
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(dtype)


def _check_image(x, size, name="image"):
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be a square 2D image (or a stack of them), got shape {x.shape}.")
    if size is not None and x.shape[-1] != size:
        raise ValueError(f"{name} has side {x.shape[-1]}, but the operator was built for size {size}.")
    return x


def _check_fits(op):
    """Refuse a geometry whose image and sinogram would not fit in memory."""
    n = 1 if op.slices is None else op.slices
    itemsize = jnp.dtype(op.dtype).itemsize
    check_memory(f"a {type(op).__name__} of size {op.size} ({n} slice(s), {op.sino_shape[0]} angles)",
                 n * (op.size**2 + op.sino_shape[0] * op.n_detectors) * itemsize, "use a smaller size")


# --------------------------------------------------------------------------------------
# Joseph's method for an arbitrary set of lines  X cos(phi) - Y sin(phi) = t
# --------------------------------------------------------------------------------------
def _line_coefficients(phi, t, c):
    """Per ray: along the major axis ``k`` the ray crosses the minor axis at
    ``p = c + t * a + (k - c) * b``; ``w`` is the path length per step; ``flip`` says the
    major axis is the column index (then ``x.T`` plays the role of ``x``)."""
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    flip = jnp.abs(sin) > jnp.abs(cos)
    den = jnp.where(flip, -sin, cos)  # select the coefficients first, then one formula
    num = jnp.where(flip, -cos, sin)
    return c + t / den, num / den, 1.0 / jnp.abs(den), flip


def _joseph_forward(x, phi, t):
    """Line integrals of image ``x`` (N, N) along rays ``phi, t`` (any equal shapes).

    A loop over the ``N`` steps along the major axis; each step gathers the two pixels every
    ray crosses and accumulates, one fused element-wise pass over the rays. (Measured at
    256², 180 angles, float32: 10.6 ms, vs 25 ms for one fused gather-and-reduce per view and
    more for all views at once, which materialises ``views x bins x N`` temporaries.)"""
    n = x.shape[-1]
    c = n // 2
    # x and x.T one after the other, each row padded by a zero on both ends: index 0 and
    # n + 1 of a row are zeros, so a position clipped to [0, n + 1] reads zeros outside
    stacked = jnp.pad(jnp.stack([x, x.T]), ((0, 0), (0, 0), (1, 1))).reshape(-1)
    p0, b, w, flip = _line_coefficients(phi, t, c)
    offset = flip.astype(jnp.int32) * (n * (n + 2))  # rows of x.T when the major axis is the column

    def step(k, acc):
        p = jnp.clip(p0 + 1 + (k - c) * b, 0, n + 1)  # padded coordinate along row k
        i0 = jnp.floor(p)
        f = p - i0
        i0 = i0.astype(jnp.int32)
        lo = offset + k * (n + 2) + i0
        hi = lo + jnp.minimum(1, n + 1 - i0)  # stays in the row at its last (zero) entry
        return acc + (1 - f) * jnp.take(stacked, lo) + f * jnp.take(stacked, hi)

    return w * jax.lax.fori_loop(0, n, step, jnp.zeros(p0.shape, x.dtype))


def _parallel_adjoint(s, angles, n, n_det):
    """Exact transpose of `_joseph_forward` for parallel rays, written as a gather.

    For angle ``a`` and pixel ``(k, i)`` (major, minor index) the forward weight of ray
    ``j`` is ``w_a * max(0, 1 - |p_a(j, k) - i|)``; since ``|dp/dj| = |a| >= 1``, only the
    two bins around ``j* = p_a^{-1}(i)`` can be nonzero. Angles are summed in a loop (one
    fused gather over the image each)."""
    c, cd = n // 2, n_det // 2
    p1, b, w, flip = _line_coefficients(angles, jnp.ones_like(angles), c)
    a = p1 - c  # dp/dt
    rows = jnp.arange(n, dtype=s.dtype)[:, None]
    cols = jnp.arange(n, dtype=s.dtype)[None, :]
    sp = jnp.pad(s, ((0, 0), (1, 1)))  # zero bins beyond the detector

    def one(ai, acc):
        k = jnp.where(flip[ai], cols, rows)  # major index of pixel (row, col)
        i = jnp.where(flip[ai], rows, cols)
        jstar = (i - c - (k - c) * b[ai]) / a[ai] + cd
        j0 = jnp.floor(jstar)
        out = 0.0
        for j in (j0, j0 + 1):
            weight = jnp.maximum(0.0, 1.0 - jnp.abs(a[ai]) * jnp.abs(j - jstar))
            jj = jnp.clip(j.astype(jnp.int32) + 1, 0, n_det + 1)
            out = out + weight * sp[ai, jj]
        return acc + w[ai] * out

    return jax.lax.fori_loop(0, angles.shape[0], one, jnp.zeros((n, n), s.dtype))


# --------------------------------------------------------------------------------------
# scikit-image's model: rotate bilinearly, sum columns
# --------------------------------------------------------------------------------------
def _rotate_forward(x, angles, n_det):
    n = x.shape[-1]
    c = n // 2
    t = jnp.arange(n_det, dtype=x.dtype) - n_det // 2  # detector offset (output column)
    s = jnp.arange(n, dtype=x.dtype) - c  # along the ray (output row)
    xp = jnp.pad(x, 1)

    def one(theta):
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        col = c + t[None, :] * cos + s[:, None] * sin
        row = c - t[None, :] * sin + s[:, None] * cos
        r0, c0 = jnp.floor(row), jnp.floor(col)
        fr, fc = row - r0, col - c0
        r0 = jnp.clip(r0.astype(jnp.int32) + 1, 0, n + 1)
        c0 = jnp.clip(c0.astype(jnp.int32) + 1, 0, n + 1)
        r1, c1 = jnp.minimum(r0 + 1, n + 1), jnp.minimum(c0 + 1, n + 1)
        v = ((1 - fr) * ((1 - fc) * xp[r0, c0] + fc * xp[r0, c1])
             + fr * ((1 - fc) * xp[r1, c0] + fc * xp[r1, c1]))
        return jnp.sum(v, axis=0)

    return jax.vmap(one)(angles)


# --------------------------------------------------------------------------------------
# operators
# --------------------------------------------------------------------------------------
class _AbstractProjector(MatrixFreeRectangular):
    """Shared parts: batching over leading axes (images or slices) and the adjoint."""

    # subclasses: size, n_detectors, slices (static) and _forward/_adjoint on one image

    def _batched(self, fn, x, core_ndim):
        if x.ndim == core_ndim:
            return fn(x)
        return jax.vmap(lambda xi: self._batched(fn, xi, core_ndim))(x)

    def mv(self, x):
        x = _as_float(_check_image(x, self.size), self.dtype)
        return _project(self, x, False)

    def rmv(self, s):
        s = _as_float(jnp.asarray(s), self.dtype)
        if s.ndim < 2 or s.shape[-2:] != self.sino_shape:
            raise ValueError(
                f"the sinogram has shape {tuple(s.shape)}; expected (..., {self.sino_shape[0]}, "
                f"{self.sino_shape[1]}) (one row per angle, one column per detector bin)."
            )
        return _project(self, s, True)

    def _adjoint(self, s):
        spec = jax.ShapeDtypeStruct((self.size, self.size), s.dtype)
        return jax.linear_transpose(self._forward, spec)(s)[0]

    @property
    def in_shape(self):
        return (*(() if self.slices is None else (self.slices,)), self.size, self.size)

    @property
    def out_shape(self):
        return (*(() if self.slices is None else (self.slices,)), *self.sino_shape)

    @property
    def sino_shape(self):
        return (int(self.angles.shape[0]), self.n_detectors)

    @property
    def dtype(self):
        return self.angles.dtype


@eqx.filter_jit
def _project(op, x, adjoint: bool):
    """``A x`` (or ``A^T x``) over the leading axes, compiled once per geometry and shape: run
    eagerly, op by op, a projection compiles dozens of small programs."""
    return op._batched(op._adjoint if adjoint else op._forward, x, 2)




def _defaults(size, n_detectors, slices):
    size = _check_size(size)
    n_det = size if n_detectors is None else int(n_detectors)
    if n_det < size:
        raise ValueError(
            f"n_detectors={n_det} is smaller than the image size {size}: the detector must cover "
            "the object (the inscribed circle); use n_detectors >= size."
        )
    if slices is not None and (not isinstance(slices, (int, np.integer)) or slices < 1):
        raise ValueError(f"slices must be a positive integer or None, got {slices!r}.")
    return size, n_det


class ParallelBeam(_AbstractProjector):
    """2D parallel-beam projector ``x (N, N) -> sinogram (n_angles, n_detectors)``.

    Args:
        size: image side ``N`` (pixels).
        angles: projection angles in radians, shape ``(n_angles,)``.
        n_detectors: detector bins of one pixel each (default ``N``, as scikit-image).
        model: ``"joseph"`` (default; exact adjoint as a fast gather) or ``"rotate"``
            (scikit-image's model).
        slices: if given, the operator acts on volumes ``(slices, N, N)`` slice by slice
            (3D parallel beam); leading batch axes are always allowed in ``mv``/``rmv``.

    ``op.mv(x)`` is the sinogram; ``op.transpose().mv(s)`` the exact adjoint (back-projection).
    """

    angles: jax.Array
    size: int = eqx.field(static=True)
    n_detectors: int = eqx.field(static=True)
    model: str = eqx.field(static=True)
    slices: int | None = eqx.field(static=True)

    def __init__(self, size, angles, n_detectors=None, model="joseph", slices=None):
        self.size, self.n_detectors = _defaults(size, n_detectors, slices)
        self.angles = _check_angles(angles)
        if model not in MODELS:
            raise ValueError(f"unknown projector model {model!r}; expected one of {MODELS}.")
        self.model = model
        self.slices = slices
        _check_fits(self)

    def _forward(self, x):
        if self.model == "rotate":
            return _rotate_forward(x, self.angles.astype(x.dtype), self.n_detectors)
        t = jnp.arange(self.n_detectors, dtype=x.dtype) - self.n_detectors // 2
        phi = jnp.broadcast_to(self.angles.astype(x.dtype)[:, None], self.sino_shape)
        return _joseph_forward(x, phi, jnp.broadcast_to(t, self.sino_shape))

    def _adjoint(self, s):
        if self.model == "rotate":
            return super()._adjoint(s)
        return _parallel_adjoint(s, self.angles.astype(s.dtype), self.size, self.n_detectors)


class FanBeam(_AbstractProjector):
    """2D fan-beam projector (Joseph's method along each diverging ray).

    The source circles the centre at distance ``source_distance`` (pixels); at view angle
    ``beta`` it sits at ``-source_distance * (sin beta, cos beta)`` in ``(X, Y)``, so the
    central ray is the parallel ray of angle ``beta``. The detector faces it at
    ``detector_distance`` beyond the centre. Bin ``j`` (``u = j - n_detectors//2``) is at
    ``u * detector_spacing`` along the detector (``"flat"``, spacing in pixels at the
    detector) or at fan angle ``u * detector_spacing`` (``"equiangular"``, radians).

    Args:
        size, angles, n_detectors, slices: as `ParallelBeam` (``angles`` are the view
            angles ``beta``, radians; a full scan covers ``2 pi``).
        source_distance: default ``2 N``; detector_distance: default ``N``.
        detector: ``"flat"`` or ``"equiangular"``.
        detector_spacing: default one pixel at the centre of rotation (magnified).
    The adjoint is JAX's exact transpose of the forward (a scatter-add).
    """

    angles: jax.Array
    size: int = eqx.field(static=True)
    n_detectors: int = eqx.field(static=True)
    source_distance: float = eqx.field(static=True)
    detector_distance: float = eqx.field(static=True)
    detector: str = eqx.field(static=True)
    detector_spacing: float = eqx.field(static=True)
    slices: int | None = eqx.field(static=True)

    def __init__(self, size, angles, n_detectors=None, source_distance=None, detector_distance=None,
                 detector="flat", detector_spacing=None, slices=None):
        size = _check_size(size)
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}.")
        dso = 2.0 * size if source_distance is None else float(source_distance)
        dod = 1.0 * size if detector_distance is None else float(detector_distance)
        if not dso > size / np.sqrt(2) or not dod >= 0:
            raise ValueError(
                f"source_distance ({dso}) must exceed the image's half-diagonal {size / np.sqrt(2):.1f} "
                f"and detector_distance ({dod}) must be non-negative (pixels)."
            )
        if detector_spacing is None:
            detector_spacing = (dso + dod) / dso if detector == "flat" else 1.0 / dso
        gamma_needed = np.arcsin((size / 2 + 1) / dso)  # the outermost ray clears the circle
        if n_detectors is None:
            u = np.tan(gamma_needed) * (dso + dod) if detector == "flat" else gamma_needed
            n_detectors = max(size, 2 * int(np.ceil(u / detector_spacing)) + 1)
        self.size, self.n_detectors = _defaults(size, n_detectors, slices)
        self.angles = _check_angles(angles)
        half = (self.n_detectors // 2) * detector_spacing
        gamma = np.arctan(half / (dso + dod)) if detector == "flat" else half
        if dso * np.sin(min(gamma, np.pi / 2)) < self.size / 2:
            raise ValueError(
                f"the fan ({self.n_detectors} bins of {detector_spacing:g}) does not cover the image "
                f"of size {self.size}: use more detectors, a wider spacing or a larger source_distance."
            )
        self.source_distance, self.detector_distance = dso, dod
        self.detector, self.detector_spacing = detector, float(detector_spacing)
        self.slices = slices
        _check_fits(self)

    def fan_angles(self, dtype=None):
        """The angle ``gamma`` of each bin's ray to the central ray, shape ``(n_detectors,)``."""
        u = (jnp.arange(self.n_detectors) - self.n_detectors // 2) * self.detector_spacing
        g = jnp.arctan(u / (self.source_distance + self.detector_distance)) if self.detector == "flat" else u
        return g.astype(dtype or self.dtype)

    def rays(self, dtype=None):
        """``(phi, t)`` of every ray, each ``(n_angles, n_detectors)``: the line
        ``X cos(phi) - Y sin(phi) = t`` with ``phi = beta + gamma``, ``t = D sin(gamma)``."""
        dtype = dtype or self.dtype
        gamma = self.fan_angles(dtype)
        beta = self.angles.astype(dtype)
        phi = beta[:, None] + gamma[None, :]
        t = jnp.broadcast_to(self.source_distance * jnp.sin(gamma), phi.shape)
        return phi, t

    def _forward(self, x):
        phi, t = self.rays(x.dtype)
        return _joseph_forward(x, phi, t)


# --------------------------------------------------------------------------------------
# filtered back-projection
# --------------------------------------------------------------------------------------
def _fourier_filter(size, name, dtype):
    """Kak & Slaney (1988) eq. 3.61: the ramp from its band-limited spatial kernel, times a window."""
    n = np.concatenate([np.arange(1, size // 2 + 1, 2), np.arange(size // 2 - 1, 0, -2)])
    f = np.zeros(size)
    f[0] = 0.25
    f[1::2] = -1.0 / (np.pi * n) ** 2
    filt = 2 * np.real(np.fft.fft(f))
    if name == "shepp-logan":
        omega = np.pi * np.fft.fftfreq(size)[1:]
        filt[1:] *= np.sin(omega) / omega
    elif name == "cosine":
        filt *= np.fft.fftshift(np.sin(np.linspace(0, np.pi, size, endpoint=False)))
    elif name == "hann":
        filt *= np.fft.fftshift(np.hanning(size))
    elif name == "hamming":
        filt *= np.fft.fftshift(np.hamming(size))
    elif name is None:
        filt[:] = 1.0
    return jnp.asarray(filt, dtype)


def filter_sinogram(sino, filter="ramp"):
    """Filter each projection (last axis) for FBP, zero-padded as scikit-image's ``iradon``."""
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; expected one of {FILTERS}.")
    n_det = sino.shape[-1]
    diag = int(np.ceil(np.sqrt(2) * n_det))
    size = max(64, int(2 ** np.ceil(np.log2(2 * diag))))
    filt = _fourier_filter(size, filter, sino.dtype)
    spec = jnp.fft.fft(sino, n=size, axis=-1) * filt
    return jnp.real(jnp.fft.ifft(spec, axis=-1))[..., :n_det].astype(sino.dtype)


def backproject(sino, angles, size):
    """Pixel-driven back-projection with linear interpolation (as scikit-image's ``iradon``):
    ``sum_a s_a(X cos a - Y sin a)`` for each pixel; zero outside the inscribed circle."""
    n_det = sino.shape[-1]
    c = size // 2
    Y, X = jnp.meshgrid(jnp.arange(size) - c, jnp.arange(size) - c, indexing="ij")
    X, Y = X.astype(sino.dtype), Y.astype(sino.dtype)
    sp = jnp.pad(sino, ((0, 0), (1, 1)))

    def one(s, a):
        j = X * jnp.cos(a) - Y * jnp.sin(a) + n_det // 2
        j0 = jnp.floor(j)
        f = j - j0
        i = jnp.clip(j0.astype(jnp.int32) + 1, 0, n_det + 1)
        return (1 - f) * s[i] + f * s[jnp.minimum(i + 1, n_det + 1)]

    img = jnp.sum(jax.vmap(one)(sp, angles.astype(sino.dtype)), axis=0)
    return jnp.where(X**2 + Y**2 > c**2, 0.0, img)


def rebin_fan_to_parallel(sino, op: FanBeam, n_angles=None):
    """Resample a full-scan (2 pi, uniformly spaced views) fan-beam sinogram onto parallel
    rays ``(theta, t)``, ``theta`` in ``[0, pi)``, ``t`` on the unit detector grid, by bilinear
    interpolation in (view, bin): the parallel ray is the fan ray with
    ``gamma = arcsin(t / D)``, ``beta = theta - gamma``. Leading axes of ``sino`` batch.
    Returns ``(sinogram, thetas)``."""
    beta = np.asarray(op.angles, float)
    nv = beta.size
    steps = np.diff(np.concatenate([beta, [beta[0] + 2 * np.pi]]))
    if nv < 2 or not np.allclose(steps, 2 * np.pi / nv, rtol=1e-6, atol=1e-9):
        raise ValueError(
            "fbp of a fan-beam sinogram needs a full 360-degree scan of uniformly spaced views "
            "(rebinning to parallel rays); use an iterative method for short or sparse scans."
        )
    n_angles = nv // 2 if n_angles is None else int(n_angles)
    dtype = sino.dtype
    thetas = jnp.arange(n_angles, dtype=dtype) * (np.pi / n_angles)
    t = jnp.arange(op.size, dtype=dtype) - op.size // 2
    gamma = jnp.arcsin(jnp.clip(t / op.source_distance, -1, 1))
    b = (thetas[:, None] - gamma[None, :] - beta[0]) / (2 * np.pi / nv)
    if op.detector == "flat":
        u = jnp.tan(gamma) * (op.source_distance + op.detector_distance) / op.detector_spacing
    else:
        u = gamma / op.detector_spacing
    j = jnp.broadcast_to(u + op.n_detectors // 2, b.shape)
    b0, j0 = jnp.floor(b), jnp.floor(j)
    fb, fj = b - b0, j - j0
    b0 = jnp.mod(b0.astype(jnp.int32), nv)
    b1 = jnp.mod(b0 + 1, nv)
    sp = jnp.pad(sino, [(0, 0)] * (sino.ndim - 1) + [(1, 1)])
    j0 = jnp.clip(j0.astype(jnp.int32) + 1, 0, op.n_detectors + 1)
    j1 = jnp.minimum(j0 + 1, op.n_detectors + 1)
    par = ((1 - fb) * ((1 - fj) * sp[..., b0, j0] + fj * sp[..., b0, j1])
           + fb * ((1 - fj) * sp[..., b1, j0] + fj * sp[..., b1, j1]))
    return par, thetas


def fbp(problem_or_sinogram, op=None, filter: str | None = "ramp"):
    """Filtered back-projection (Kak & Slaney 1988, ch. 3): ``x = pi/(2 A) * B F s``.

    Args:
        problem_or_sinogram: a CT problem (from `sparse_view`, `limited_angle`, `low_dose`)
            or a sinogram ``(..., n_angles, n_detectors)`` together with ``op``.
        op: the `ParallelBeam` or `FanBeam` geometry when a sinogram is passed.
        filter: ``"ramp"``, ``"shepp-logan"``, ``"cosine"``, ``"hann"``, ``"hamming"`` or None.
    Parallel beam follows scikit-image's ``iradon(circle=True)``. Fan beam (full 360-degree
    scans) is rebinned to parallel rays first. Angles of a parallel scan should cover ``[0, pi)``.
    """
    if op is None:
        if not isinstance(problem_or_sinogram, LinearInverse):
            raise TypeError("fbp: pass a CT problem, or a sinogram together with op=ParallelBeam/FanBeam.")
        op, sino = problem_or_sinogram.A, problem_or_sinogram.y_obs
    else:
        sino = jnp.asarray(problem_or_sinogram)
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; expected one of {FILTERS}.")
    if not isinstance(op, (ParallelBeam, FanBeam)):
        raise TypeError(f"fbp needs a ParallelBeam or FanBeam operator, got {type(op).__name__}.")
    sino = _as_float(sino, op.dtype)
    if tuple(sino.shape[-2:]) != op.sino_shape:
        raise ValueError(f"the sinogram has shape {tuple(sino.shape)}; the geometry expects (..., {op.sino_shape[0]}, "
                         f"{op.sino_shape[1]}).")
    if isinstance(op, FanBeam):  # checks the scan on the host, so outside the compiled part
        sino, angles = rebin_fan_to_parallel(sino, op)
    else:
        angles = op.angles
    return _fbp(op, sino, angles, filter)


@eqx.filter_jit
def _fbp(op, sino, angles, filter):
    filtered = filter_sinogram(sino, filter)
    img = op._batched(lambda s: backproject(s, angles, op.size), filtered, 2)
    return img * (np.pi / (2 * angles.shape[0]))


# --------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------
def _geometry(x, angles, geometry, **kw):
    x = _check_image(x, None)
    size = x.shape[-1]
    slices = x.shape[0] if x.ndim == 3 else None
    if x.ndim > 3:
        raise ValueError(f"the image must be (N, N) or a volume (slices, N, N), got shape {x.shape}.")
    if geometry == "parallel":
        return ParallelBeam(size, angles, slices=slices, **kw)
    if geometry == "fan":
        return FanBeam(size, angles, slices=slices, **kw)
    raise ValueError(f"unknown geometry {geometry!r}; expected 'parallel' or 'fan'.")


def _finite_truth(x):
    """The true image as a float array; NaN or infinite pixels are refused (they would
    make the data non-finite)."""
    x = jnp.asarray(x, jnp.result_type(float))
    return check_value(x, ~jnp.all(jnp.isfinite(x)), "the true image x contains NaN or infinite values; it must be finite")


def relative_gaussian(x, op, noise, key, owner: str = "relative_gaussian"):
    """``y = A x + sigma e`` with ``sigma = noise * rms(A x)`` (``noise`` relative, >= 0)."""
    level = real_number(noise)
    if level is None or not (np.isfinite(level) and level >= 0):
        raise ValueError(f"noise must be a non-negative relative noise level such as 0.01, got {noise!r}.")
    check_key(owner, key)
    x = _finite_truth(x)
    clean = op.mv(x)
    sigma = noise * rms(clean)
    y = clean + sigma * jax.random.normal(key, clean.shape, clean.dtype)
    return LinearInverse(op, y, GaussianNoise(jnp.where(sigma > 0, sigma, 1.0)), x)


def sparse_view(x, n_angles: int = 30, noise: float = 0.01, *, key, geometry: str = "parallel",
                **geometry_kw) -> LinearInverse:
    """Sparse-view CT: ``n_angles`` views evenly spread over ``[0, pi)`` (parallel) or
    ``[0, 2 pi)`` (fan), Gaussian noise ``sigma = noise * rms(clean sinogram)``.

    ``x``: the true image ``(N, N)`` or volume ``(slices, N, N)`` (then parallel beam per slice).
    ``geometry_kw`` go to `ParallelBeam` / `FanBeam` (e.g. ``model``, ``detector``).
    """
    if not isinstance(n_angles, (int, np.integer)) or n_angles < 1:
        raise ValueError(f"n_angles must be a positive integer, got {n_angles!r}.")
    arc = np.pi if geometry == "parallel" else 2 * np.pi
    angles = jnp.linspace(0.0, arc, n_angles, endpoint=False)
    return relative_gaussian(x, _geometry(x, angles, geometry, **geometry_kw), noise, key, "sparse_view")


def limited_angle(x, wedge: float = 90.0, n_angles: int | None = None, noise: float = 0.01, *, key,
                  geometry: str = "parallel", **geometry_kw) -> LinearInverse:
    """Limited-angle CT: views only over ``[0, wedge)`` degrees (e.g. 90 or 120 of the 180
    a parallel scan needs), one per degree unless ``n_angles`` is given."""
    w = real_number(wedge)
    if w is None or not (np.isfinite(w) and 0 < w <= 360):
        raise ValueError(f"wedge must be an angle in degrees in (0, 360], got {wedge!r}.")
    if w <= 2 * np.pi:
        raise ValueError(f"wedge is in degrees, and {wedge!r} degrees is no scan (radians? pass np.rad2deg(wedge)); "
                         "limited-angle CT scans arcs of tens of degrees, e.g. wedge=90.")
    n_angles = int(round(wedge)) if n_angles is None else n_angles
    if not isinstance(n_angles, (int, np.integer)) or n_angles < 1:
        raise ValueError(f"n_angles must be a positive integer, got {n_angles!r}.")
    angles = jnp.linspace(0.0, np.deg2rad(wedge), n_angles, endpoint=False)
    return relative_gaussian(x, _geometry(x, angles, geometry, **geometry_kw), noise, key, "limited_angle")


def low_dose(x, n_angles: int = 180, photons: float = 1e4, *, key, max_attenuation: float = 3.0,
             geometry: str = "parallel", **geometry_kw) -> LinearInverse:
    """Low-dose CT with Poisson photon noise (Beer-Lambert).

    The sinogram is scaled so that its largest line integral is ``max_attenuation``
    (``mu = max_attenuation / max(A x)``); counts ``n ~ Poisson(photons * exp(-mu A x))``; the
    data are ``y = -log(max(n, 1) / photons) / mu`` in the units of ``A x``, with the usual
    Gaussian approximation ``sigma = 1 / (mu sqrt(photons exp(-mu y_clean)))`` per ray
    (weighted least squares).
    """
    count, att = real_number(photons), real_number(max_attenuation)
    if count is None or not (np.isfinite(count) and count > 0):
        raise ValueError(f"photons (incident counts per ray, I0) must be positive, got {photons!r}.")
    if att is None or not (np.isfinite(att) and att > 0):
        raise ValueError(f"max_attenuation must be positive, got {max_attenuation!r}.")
    if not isinstance(n_angles, (int, np.integer)) or n_angles < 1:
        raise ValueError(f"n_angles must be a positive integer, got {n_angles!r}.")
    check_key("low_dose", key)
    angles = jnp.linspace(0.0, np.pi if geometry == "parallel" else 2 * np.pi, n_angles, endpoint=False)
    op = _geometry(x, angles, geometry, **geometry_kw)
    x = _finite_truth(x)
    clean = op.mv(x)
    if not isinstance(clean, jax.core.Tracer) and not float(jnp.max(clean)) > 0:
        raise ValueError("low_dose: the image x attenuates nothing (its projections are not positive anywhere); "
                         "a CT image holds non-negative attenuation values, not all zero.")
    mu = max_attenuation / jnp.max(clean)
    expected = photons * jnp.exp(-mu * clean)
    counts = jax.random.poisson(key, expected).astype(clean.dtype)
    y = -jnp.log(jnp.maximum(counts, 1.0) / photons) / mu
    sigma = 1.0 / (mu * jnp.sqrt(expected))
    return LinearInverse(op, y, GaussianNoise(sigma), x)


from .conebeam import ConeBeam, fdk  # noqa: E402,F401  (last: conebeam imports from this module)
