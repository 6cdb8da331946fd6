"""Test images for tomography and imaging problems: Shepp-Logan, random ellipses, MNI152 brain.

Conventions shared by the 2D images here: a ``(size, size)`` array of the default float dtype
(float64 with ``jax_enable_x64``, else float32), dimensionless intensities in [0, 1], indexed
``[row, col]`` as an image (row 0 at the top). The normalised frame puts ``x`` to the right and
``y`` up, with ``[-1, 1]^2`` spanning the image from the centre of its first pixel to the
centre of its last (``x = linspace(-1, 1, size)``, as scikit-image's Shepp-Logan phantom is
sampled); images are sampled at pixel centres. Every 2D image is zero outside the inscribed
disk of radius ``size // 2`` centred at pixel ``(size // 2, size // 2)``, the support that
``skimage.transform.radon(circle=True)`` assumes.
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np

from .._problem import check_key, check_memory, real_number

__all__ = ["shepp_logan", "shepp_logan_3d", "random_ellipses", "brain_slice", "brain_volume"]

# Modified Shepp-Logan (Toft 1996; Jain 1989 geometry, Toft's higher-contrast
# intensities): intensity, semi-axis along x, semi-axis along y, centre x, centre y, and the
# rotation in degrees, counter-clockwise from the x axis.
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18.0),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0.0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0.0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0.0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0.0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0.0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0.0),
)

_BRAIN_KINDS = {"t1": "load_mni152_template", "gm": "load_mni152_gm_template",
                "wm": "load_mni152_wm_template"}


def _float():
    """The default float dtype now (float64 under x64, else float32)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _check_size(size, name="size"):
    if isinstance(size, bool):
        raise ValueError(f"{name} must be an int >= 8, got {size!r}")
    try:
        size = operator.index(size)
    except TypeError:
        raise ValueError(f"{name} must be an int >= 8, got {size!r}") from None
    if size < 8:
        raise ValueError(f"{name} must be an int >= 8, got {size}")
    return size


def _grid(size, dtype):
    """Pixel-centre coordinates: x (1, size) to the right, y (size, 1) up, both in [-1, 1]."""
    c = jnp.linspace(-1.0, 1.0, size, dtype=dtype)
    return c[None, :], -c[:, None]


def _disk(size):
    """Boolean (size, size) mask of the disk radon(circle=True) keeps."""
    i = np.arange(size) - size // 2
    return jnp.asarray(i[:, None] ** 2 + i[None, :] ** 2 <= (size // 2) ** 2)


def _inside(x, y, ax, ay, x0, y0, phi):
    """Whether (x, y) lies in the ellipse with semi-axes (ax, ay) rotated by phi (radians)."""
    dx, dy = x - x0, y - y0
    c, s = jnp.cos(phi), jnp.sin(phi)
    u, v = dx * c + dy * s, dy * c - dx * s
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def shepp_logan(size: int = 128):
    """The modified Shepp-Logan phantom (Toft 1996), shape ``(size, size)``, values in [0, 1].

    Sum of the ten ellipse indicators times their intensities, evaluated at pixel centres (no
    anti-aliasing): skull 1, brain 0.2, ventricles 0, small features 0.1-0.4. Oriented as
    ``skimage.data.shepp_logan_phantom()`` (top of the head at row 0, the larger ventricle on
    the left); the outer ellipse reaches 0.92 of the half-width, inside the inscribed disk.
    """
    size = _check_size(size)
    dtype = _float()
    check_memory(f"shepp_logan({size})", 4 * size**2 * jnp.dtype(dtype).itemsize)  # grids, image, mask
    x, y = _grid(size, dtype)
    img = jnp.zeros((size, size), dtype)
    for val, ax, ay, x0, y0, deg in _SHEPP_LOGAN:
        img = img + val * _inside(x, y, ax, ay, x0, y0, math.radians(deg))
    # The table's sums are exact up to rounding; clip that away, and honour the disk at tiny sizes.
    return jnp.where(_disk(size), jnp.clip(img, 0.0, 1.0), 0.0).astype(dtype)


def random_ellipses(key, n: int, size: int, n_ellipses: int = 6, *,
                    axes=(0.05, 0.5), intensities=(0.1, 0.8), p_on=0.75, radius=0.9):
    """A batch of random-ellipse images, shape ``(n, size, size)``, values in [0, 1].

    Each image sums up to ``n_ellipses`` ellipses, each present with probability ``p_on``
    (the first always is), then clips to [0, 1]. Semi-axes are uniform in ``axes`` and
    intensities in ``intensities`` (normalised units, half-width = 1; negative intensities
    carve holes); angles are uniform; centres are uniform over the disk that keeps the whole
    ellipse within ``radius`` of the centre. Pure JAX: deterministic in ``key``, and
    ``jax.jit`` (with ``n``, ``size``, ``n_ellipses`` static) and ``jax.vmap`` over keys work.
    """
    size = _check_size(size)
    if not all(isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1
               for m in (n, n_ellipses)):
        raise ValueError(f"n and n_ellipses must be ints >= 1, got n={n}, n_ellipses={n_ellipses}")
    check_memory(f"random_ellipses of {n} images of size {size}", 4 * n * size**2 * jnp.dtype(_float()).itemsize,
                 "use fewer or smaller images")
    lo, hi = axes
    if not 0 < lo <= hi < radius <= 1:
        raise ValueError(f"need 0 < axes[0] <= axes[1] < radius <= 1, got axes={axes}, radius={radius}")
    p = real_number(p_on)
    if p is None or not 0 <= p <= 1:
        raise ValueError(f"p_on (the probability that an ellipse is present) must be in [0, 1], got {p_on!r}")
    i_lo, i_hi = (real_number(v) for v in intensities)
    if i_lo is None or i_hi is None or not (np.isfinite(i_lo) and np.isfinite(i_hi) and i_lo <= i_hi):
        raise ValueError(f"intensities must be two finite numbers (low, high) with low <= high, got {intensities!r}")
    check_key("random_ellipses", key)
    return _random_ellipses(key, int(n), size, int(n_ellipses), tuple(map(float, axes)),
                            tuple(map(float, intensities)), float(p_on), float(radius), _float())


@functools.partial(jax.jit, static_argnums=tuple(range(1, 9)))
def _random_ellipses(key, n, size, n_ellipses, axes, intensities, p_on, radius, dtype):
    lo, hi = axes
    k_ax, k_r, k_t, k_phi, k_val, k_on = jax.random.split(key, 6)
    shape = (n, n_ellipses)
    ab = jax.random.uniform(k_ax, shape + (2,), dtype, lo, hi)
    r = (radius - jnp.max(ab, -1)) * jnp.sqrt(jax.random.uniform(k_r, shape, dtype))
    t = jax.random.uniform(k_t, shape, dtype, 0.0, 2 * jnp.pi)
    phi = jax.random.uniform(k_phi, shape, dtype, 0.0, jnp.pi)
    val = jax.random.uniform(k_val, shape, dtype, *intensities)
    on = jax.random.bernoulli(k_on, p_on, shape).at[:, 0].set(True)
    val = jnp.where(on, val, 0.0)
    x, y = _grid(size, dtype)
    img = jnp.zeros((n, size, size), dtype)
    for j in range(n_ellipses):
        p = [q[:, j, None, None] for q in (ab[..., 0], ab[..., 1], r * jnp.cos(t), r * jnp.sin(t), phi)]
        img = img + val[:, j, None, None] * _inside(x, y, *p)
    return jnp.where(_disk(size), jnp.clip(img, 0.0, 1.0), 0.0)


def _require_nilearn(caller):
    try:
        import nilearn.datasets  # noqa: F401
    except ImportError:
        raise ImportError(f"{caller} needs nilearn, which ships the MNI152 templates: "
                          "pip install -e \".[brain]\" from a checkout (or pip install nilearn)") from None


def _check_kind(kind):
    if kind not in _BRAIN_KINDS:
        raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(map(repr, _BRAIN_KINDS))}")


@functools.lru_cache(maxsize=None)
def _template(kind):
    """The 1 mm MNI152 template (197, 233, 189) as a read-only float64 array, RAS axes."""
    import nilearn.datasets

    img = getattr(nilearn.datasets, _BRAIN_KINDS[kind])(resolution=1)
    data = np.asarray(img.get_fdata(), np.float64)
    data.setflags(write=False)
    return data


def _normalise(a):
    a = jnp.clip(a, 0.0, None)
    top = jnp.max(a)
    return jnp.where(top > 0, a / jnp.where(top > 0, top, 1.0), 0.0)


def brain_slice(size: int = 128, index: float = 0.5, axis: int = 2, kind: str = "t1"):
    """A slice of the 1 mm MNI152 template shipped with nilearn, shape ``(size, size)``.

    ``axis`` picks the slice normal: 2 axial, 1 coronal, 0 sagittal; ``index`` in [0, 1] is
    the relative position along it (voxel ``round(index * (n - 1))``). ``kind`` is "t1" (the
    T1 template), "gm" or "wm" (grey / white matter probability maps). Displayed in the
    neurological convention: axial rows run anterior to posterior and coronal / sagittal rows
    superior to inferior; columns run from the subject's left to right (axial, coronal) or
    posterior to anterior (sagittal). The slice is zero-padded to a square (1 mm voxels, so
    the aspect ratio is kept), resampled with antialiased linear interpolation, masked to the
    inscribed disk and divided by its maximum (all zeros if the slice is empty). Needs nilearn
    (``pip install -e ".[brain]"`` from a checkout); the template is loaded once and cached.
    """
    size = _check_size(size)
    if isinstance(index, bool) or not isinstance(index, (int, float, np.floating, np.integer)) \
            or not 0.0 <= index <= 1.0:
        raise ValueError(f"index must be a number in [0, 1], got {index!r}")
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        raise ValueError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}")
    _check_kind(kind)
    _require_nilearn("brain_slice")
    vol = _template(kind)
    return _resample_slice(vol, int(round(float(index) * (vol.shape[axis] - 1))), axis, size)


def _resample_slice(vol, k, axis, size):
    sl = np.take(vol, k, axis=axis)  # the two remaining RAS axes, in order
    sl = sl[:, ::-1].T  # rows: the second (y or z) from high to low; columns: the first
    h, w = sl.shape
    m = max(h, w)
    sq = np.zeros((m, m))
    sq[(m - h) // 2:(m - h) // 2 + h, (m - w) // 2:(m - w) // 2 + w] = sl
    img = jax.image.resize(jnp.asarray(sq, _float()), (size, size), "linear", antialias=True)
    return _normalise(jnp.where(_disk(size), img, 0.0))


# The split of the 189 axial slices (1 mm, z voxel index) used by the learned priors: a
# held-out test slab through the lateral ventricles, a validation slab for tuning, and
# 4-slice guards around both (neighbouring 1 mm slices are nearly identical).
AXIAL_SPLIT = {"test": range(88, 112), "val": range(128, 136)}
_AXIAL_RANGE = range(20, 170)  # slices with enough brain in them
_GUARD = 4


def axial_slices(split: str = "train", size: int = 64, kind: str = "t1"):
    """The MNI152 axial slices of one split, ``(n, size, size)`` (each as `brain_slice`),
    and their z voxel indices. ``split``: ``"test"`` (z 88-111), ``"val"`` (z 128-135) or
    ``"train"`` (the other slices of z 20-169, minus 4 on each side of the two held-out
    slabs). Needs nilearn."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    size = _check_size(size)
    _check_kind(kind)
    _require_nilearn("axial_slices")
    if split == "train":
        held = {z for r in AXIAL_SPLIT.values() for z in range(r.start - _GUARD, r.stop + _GUARD)}
        zs = [z for z in _AXIAL_RANGE if z not in held]
    else:
        zs = list(AXIAL_SPLIT[split])
    vol = _template(kind)
    return jnp.stack([_resample_slice(vol, z, 2, size) for z in zs]), np.array(zs)


def orthogonal_slices(size: int = 64, kind: str = "t1"):
    """Coronal and sagittal MNI152 training slices that share no voxel with the held-out
    slabs: the axial planes of the test and validation slabs and their 4-slice guards
    (z 84-115 and 124-139) are cut out of the volume and the rest closed up (141 of 189
    planes), then every second coronal plane of y 35-195 and sagittal plane of x 30-164 is
    taken as `brain_slice` takes one. ``(n, size, size)`` with ``n = 149``; with
    `axial_slices` ``("train")`` the three-orientation training set of the ``mni-64``
    score prior. Needs nilearn."""
    size = _check_size(size)
    _check_kind(kind)
    _require_nilearn("orthogonal_slices")
    held = {z for r in AXIAL_SPLIT.values() for z in range(r.start - _GUARD, r.stop + _GUARD)}
    vol = _template(kind)
    vol = vol[:, :, [z for z in range(vol.shape[2]) if z not in held]]
    return jnp.stack([_resample_slice(vol, k, axis, size)
                      for axis, ks in ((1, range(35, 196, 2)), (0, range(30, 165, 2))) for k in ks])


def axial_stack(z_start: int, n: int, size: int = 64, kind: str = "t1"):
    """``n`` consecutive MNI152 axial slices from voxel ``z_start``, ``(n, size, size)`` (each
    as `brain_slice`): a volume of slices for 3D reconstruction. ``axial_stack(84, 32)``
    is the test slab with its guard slices, none of which the shipped priors saw."""
    size = _check_size(size)
    _check_kind(kind)
    _require_nilearn("axial_stack")
    vol = _template(kind)
    if not (0 <= z_start and z_start + n <= vol.shape[2] and n >= 1):
        raise ValueError(f"axial_stack: slices z_start..z_start+n-1 must lie in 0..{vol.shape[2] - 1}, "
                         f"got z_start={z_start}, n={n}.")
    return jnp.stack([_resample_slice(vol, z, 2, size) for z in range(z_start, z_start + n)])


def brain_volume(shape=(64, 64, 64), kind: str = "t1"):
    """The whole 1 mm MNI152 template resampled to ``shape = (nx, ny, nz)``, values in [0, 1].

    Axes are RAS voxel axes (x to the subject's right, y anterior, z superior), as nilearn
    stores them; each axis is resampled independently (antialiased linear interpolation, so
    the aspect ratio follows ``shape``) and the result divided by its maximum. ``kind`` as in
    :func:`brain_slice`. Needs nilearn.
    """
    try:
        shape = tuple(_check_size(s, "each entry of shape") for s in shape)
    except TypeError:
        raise ValueError(f"shape must be three ints >= 8, got {shape!r}") from None
    if len(shape) != 3:
        raise ValueError(f"shape must be three ints >= 8, got {shape!r}")
    _check_kind(kind)
    _require_nilearn("brain_volume")
    vol = jnp.asarray(_template(kind), _float())
    return _normalise(jax.image.resize(vol, shape, "linear", antialias=True))


# --------------------------------------------------------------------------------------
# 3D Shepp-Logan
# --------------------------------------------------------------------------------------
# 3D modified Shepp-Logan, the "Modified Shepp-Logan" of Schabel's MATLAB ``phantom3d`` (File
# Exchange 9416; TIGRE's ``sheppLogan3D`` and its "toft-schabel" table): the 2D geometry of
# Kak & Slaney (1988, p. 55) and Jain (1989, p. 439) with z semi-axes and centres added, and
# Toft's (1996) higher-contrast intensities. Columns: intensity, semi-axes (x, y, z), centre
# (x, y, z), rotation about the z axis in degrees (counter-clockwise from x). Differences from
# that table: each ellipsoid turns about its own centre, as in the 2D `phantoms.shepp_logan`
# (so a slice through z = 0 shows the 2D phantom, less the three off-plane ellipsoids 5-7),
# and the ventricles' third Euler angle (10 degrees) is left out.
_SHEPP_LOGAN_3D = (
    (1.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
    (-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
)


def shepp_logan_3d(size: int = 128):
    """The 3D modified Shepp-Logan phantom, shape ``(size, size, size)``, values in [0, 1].

    The ten ellipsoids of ``_SHEPP_LOGAN_3D`` (Schabel's 3D extension of Kak & Slaney's head,
    Toft's 1996 intensities; skull 1, brain 0.2, ventricles 0, small features 0.1-0.3),
    evaluated at voxel centres: ``vol[k, row, col]`` at ``z = linspace(-1, 1, size)[k]``, ``y``
    up (row 0 at the top) and ``x`` right, the frame of the 2D `phantoms.shepp_logan`.
    Zero outside the inscribed ball of radius ``size // 2`` about voxel ``(size // 2,) * 3``.
    Default float dtype (float64 under x64).
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    size = int(size)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    check_memory(f"shepp_logan_3d({size})", 4 * size**3 * jnp.dtype(dtype).itemsize, "use a smaller size")
    g = jnp.linspace(-1.0, 1.0, size, dtype=dtype)
    z, y, x = g[:, None, None], -g[None, :, None], g[None, None, :]
    vol = jnp.zeros((size,) * 3, dtype)
    for val, ax, ay, az, x0, y0, z0, deg in _SHEPP_LOGAN_3D:
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        dx, dy = x - x0, y - y0
        p, q = dx * c + dy * s, dy * c - dx * s
        vol = vol + val * (((p / ax) ** 2 + (q / ay) ** 2 + ((z - z0) / az) ** 2) <= 1.0)
    i = np.arange(size) - size // 2
    ball = i[:, None, None] ** 2 + i[None, :, None] ** 2 + i[None, None, :] ** 2 <= (size // 2) ** 2
    return jnp.where(jnp.asarray(ball), jnp.clip(vol, 0.0, 1.0), 0.0).astype(dtype)
