"""Error metrics between an estimate and a reference (pytrees of arrays allowed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _same_shapes(fn, **arrays):
    """Refuse arguments (arrays or pytrees of them) whose structures or leaf shapes differ:
    a metric must not broadcast silently."""
    (first, a), *rest = arrays.items()
    for name, b in rest:
        sa, sb = jax.tree.structure(a), jax.tree.structure(b)
        if sa != sb:
            raise ValueError(f"{fn}: {first} and {name} have different structures, {sa} vs {sb}; "
                             "pass arrays (or pytrees) of one structure.")
        for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            if jnp.shape(la) != jnp.shape(lb):
                raise ValueError(f"{fn}: shapes differ, {first} has shape {tuple(jnp.shape(la))} but {name} has "
                                 f"shape {tuple(jnp.shape(lb))}; pass arrays of one shape (no broadcasting).")


def _arrays(fn, **arrays):
    """The arguments of an array metric as arrays of one shape (nested lists are arrays here,
    not pytrees)."""
    out = []
    for name, a in arrays.items():
        try:
            out.append(jnp.asarray(a))
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: {name} must be an array, got {type(a).__name__}.") from None
    _same_shapes(fn, **dict(zip(arrays, out)))
    return out


def rel_l2(estimate, reference):
    """||estimate - reference||_2 / ||reference||_2 over all leaves (pytrees of one structure).
    Computed relative to the reference's largest magnitude, so squares of large values do not
    overflow (float32 above 1.8e19)."""
    _same_shapes("rel_l2", estimate=estimate, reference=reference)
    pairs = [(jnp.asarray(a), jnp.asarray(b)) for a, b in zip(jax.tree.leaves(estimate), jax.tree.leaves(reference))]
    scale = jnp.max(jnp.stack([jnp.max(jnp.abs(b)) for _, b in pairs]))
    s = jnp.where(scale > 0, scale, 1)
    num = sum(jnp.sum(jnp.square((a - b) / s)) for a, b in pairs)
    den = sum(jnp.sum(jnp.square(b / s)) for _, b in pairs)
    return jnp.sqrt(num / den)


def mse(estimate, reference):
    """Mean squared error of two arrays of one shape."""
    estimate, reference = _arrays("mse", estimate=estimate, reference=reference)
    return jnp.mean(jnp.square(estimate - reference))


def psnr(estimate, reference, data_range=None):
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's range (a
    constant reference has none: pass ``data_range``). Computed in units of ``data_range``, so
    it does not overflow for large values."""
    estimate, reference = _arrays("psnr", estimate=estimate, reference=reference)
    if data_range is None:
        data_range = jnp.max(reference) - jnp.min(reference)
        if not isinstance(data_range, jax.core.Tracer) and not float(data_range) > 0:
            raise ValueError("psnr: the reference is constant, so its range (the default data_range) is 0 and the "
                             "PSNR is undefined; pass data_range= (e.g. 1.0 for images in [0, 1]).")
    dtype = jnp.result_type(estimate, reference, float)
    r = jnp.asarray(data_range, dtype)
    return -10.0 * jnp.log10(jnp.mean(jnp.square((estimate.astype(dtype) - reference.astype(dtype)) / r)))


def _box_mean(x, w):
    """Mean over every full ``w`` x ``w`` window of a 2D array (a "valid" separable box filter)."""
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (w, 1), (1, 1), "VALID")
    return jax.lax.reduce_window(s, 0.0, jax.lax.add, (1, w), (1, 1), "VALID") / (w * w)


def _ssim2d(x, y, data_range, win_size, k1, k2):
    mx, my = _box_mean(x, win_size), _box_mean(y, win_size)
    c = win_size**2 / (win_size**2 - 1.0)  # sample (co)variance
    vx = c * (_box_mean(x * x, win_size) - mx * mx)
    vy = c * (_box_mean(y * y, win_size) - my * my)
    vxy = c * (_box_mean(x * y, win_size) - mx * my)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return jnp.mean(s)


def ssim(estimate, reference, data_range=None, *, win_size=7, k1=0.01, k2=0.03):
    """Mean structural similarity (SSIM) of a 2D image, or of a 3D volume slice by slice.

    Matches ``skimage.metrics.structural_similarity(reference, estimate, data_range=...,
    gaussian_weights=False)`` for 2D images: local means, sample variances and covariance over
    a uniform ``win_size`` x ``win_size`` window (N/(N-1) correction), K1 = 0.01, K2 = 0.03,
    averaged over the pixels whose window lies fully inside the image (scikit-image's crop of
    ``(win_size - 1) // 2`` on each side). A 3D array is treated as a stack of 2D slices along
    its first axis and the mean of the per-slice SSIMs is returned (scikit-image would use a
    3D window instead). ``data_range`` defaults to the reference's max - min (over the whole
    array), as in :func:`psnr`. Differentiable, and works under ``jit`` and ``vmap``.
    """
    estimate, reference = _arrays("ssim", estimate=estimate, reference=reference)
    dtype = jnp.result_type(estimate, reference, float)
    estimate, reference = estimate.astype(dtype), reference.astype(dtype)
    _same_shapes("ssim", estimate=estimate, reference=reference)
    if reference.ndim not in (2, 3) or min(reference.shape[-2:]) < win_size:
        raise ValueError(f"ssim needs a 2D image or 3D stack of slices at least {win_size} x "
                         f"{win_size}, got shape {reference.shape}")
    if data_range is None:
        data_range = jnp.max(reference) - jnp.min(reference)
    f = lambda x, y: _ssim2d(x, y, data_range, win_size, k1, k2)  # noqa: E731
    if reference.ndim == 3:
        return jnp.mean(jax.vmap(f)(estimate, reference))
    return f(estimate, reference)


def dice(a, b):
    """Dice coefficient 2|a & b| / (|a| + |b|) of two boolean masks (nonzero = True); 1.0 if
    both are empty. Equals ``1 - scipy.spatial.distance.dice(a.ravel(), b.ravel())``."""
    a, b = _arrays("dice", a=a, b=b)
    a, b = a.astype(bool), b.astype(bool)
    inter = jnp.sum(a & b).astype(float)
    total = (jnp.sum(a) + jnp.sum(b)).astype(float)
    return jnp.where(total > 0, 2.0 * inter / jnp.where(total > 0, total, 1.0), 1.0)


def effective_sample_size(samples):
    """Effective sample size of one chain's draws, per component: ``samples`` ``(n, ...)`` ->
    ``(...)``; Geyer's initial monotone sequence estimator as in Stan (blackjax's)."""
    from blackjax.diagnostics import effective_sample_size as ess

    x = jnp.asarray(samples)
    return ess(x.reshape(1, x.shape[0], -1)).reshape(x.shape[1:])


def coverage(lo, hi, truth):
    """Fraction of the components of ``truth`` inside ``[lo, hi]`` (pytrees of one structure)."""
    _same_shapes("coverage", lo=lo, hi=hi, truth=truth)
    inside = jax.tree.leaves(jax.tree.map(lambda a, b, t: ((a <= t) & (t <= b)).ravel(), lo, hi, truth))
    return jnp.mean(jnp.concatenate(inside).astype(float))
