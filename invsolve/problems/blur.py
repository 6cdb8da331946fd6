"""Deblurring: a Gaussian blur operator with an exact adjoint, and the inverse problem."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._linop import AbstractLinearOperator
from .._problem import LinearInverse, real_number


MAX_RADIUS = 1e7  # pixels: the largest kernel radius (truncate * width) accepted


def gaussian_kernel(width: float, truncate: float = 4.0, dtype=None) -> jax.Array:
    """The normalised 1D Gaussian of standard deviation ``width`` pixels, cut at
    ``truncate * width`` (radius ``int(truncate * width + 0.5)``, as `scipy.ndimage`)."""
    r = int(truncate * width + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / width) ** 2)
    return jnp.asarray(k / k.sum(), dtype or jnp.result_type(float))


class GaussianBlur(AbstractLinearOperator):
    """Blur of ``shape`` images (the last two axes; leading axes batch) by a separable
    Gaussian of standard deviation ``width`` pixels, with zero boundary (the image is 0
    outside): ``scipy.ndimage.gaussian_filter(x, width, mode="constant", truncate=4)``.

    The kernel is symmetric, so the matrix ``A_ij = k(i - j)`` is symmetric: the operator is
    its own exact transpose. Dtype: float64 under x64, else float32.
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    width: float = eqx.field(static=True)
    truncate: float = eqx.field(default=4.0, static=True)

    def __check_init__(self):
        if not (len(self.shape) >= 2 and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                                             for n in self.shape)):
            raise ValueError(f"GaussianBlur shape must be (..., H, W) positive ints, got {self.shape!r}.")
        width = real_number(self.width)
        if width is None or not (math.isfinite(width) and width > 0):
            raise ValueError(f"GaussianBlur width (pixels) must be a positive number, got {self.width!r}.")
        if width * self.truncate > MAX_RADIUS:
            raise ValueError(f"GaussianBlur width = {width:g} pixels is wider than any image (its kernel would have "
                             f"{2 * int(width * self.truncate) + 1:,} taps); a blur this wide is flat: use a width below "
                             f"{MAX_RADIUS / self.truncate:g}.")

    def mv(self, x):
        return _blur(self, jnp.asarray(x))

    def transpose(self):
        return self

    @property
    def in_shape(self):
        return self.shape

    @property
    def out_shape(self):
        return self.shape

    @property
    def dtype(self):
        return jnp.result_type(float)

    @property
    def symmetric(self):
        return True

    @property
    def positive_definite(self):
        return False  # a Gaussian's sampled spectrum is positive, but a truncated one may not be


@eqx.filter_jit  # one compiled program per operator and image shape
def _blur(op, x):
    k = gaussian_kernel(op.width, op.truncate, jnp.result_type(x.dtype, float))
    r = (k.shape[0] - 1) // 2
    for axis in (x.ndim - 2, x.ndim - 1):
        n = x.shape[axis]
        # taps farther than n - 1 pixels only ever meet the zero padding: leave them out (exact,
        # and a blur wider than the image costs O(n) taps, not O(width))
        m = min(r, n - 1)
        kk = k[r - m:r + m + 1]
        xp = jnp.pad(x, [(m, m) if a == axis else (0, 0) for a in range(x.ndim)])
        x = sum(kk[j] * jax.lax.slice_in_dim(xp, j, j + n, axis=axis) for j in range(2 * m + 1))
    return x


def deblur(x, width: float = 1.5, noise: float = 0.01, *, key) -> LinearInverse:
    """Deblurring: ``y = GaussianBlur(width) x + sigma e`` with ``sigma = noise * rms(A x)``.

    ``x``: the true image ``(H, W)`` (or a stack ``(..., H, W)``); ``width`` in pixels.
    """
    from .tomography import relative_gaussian

    x = jnp.asarray(x, jnp.result_type(float))
    w = real_number(width)
    if w is None or not (math.isfinite(w) and w > 0):
        raise ValueError(f"deblur: width (pixels) must be a positive number, got {width!r}.")
    return relative_gaussian(x, GaussianBlur(tuple(int(n) for n in x.shape), w), noise, key, "deblur")
