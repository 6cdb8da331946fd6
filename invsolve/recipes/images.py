"""The image-prior recipes: random-ellipse phantoms or MNI152 brain slices, an `LPN` or a
`ScorePrior` trained on them."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..priors import LPN, ScorePrior
from ..problems import fields, phantoms


def augment_slices(key, x):
    """Random flips (each axis), circular shifts of up to 3 pixels and intensity scaling in
    [0.75, 1.25] of a batch ``(n, H, W)``."""
    kf, ks, ki = jax.random.split(key, 3)
    n = x.shape[0]
    flips = jax.random.bernoulli(kf, 0.5, (2, n))
    x = jnp.where(flips[0][:, None, None], x[:, :, ::-1], x)
    x = jnp.where(flips[1][:, None, None], x[:, ::-1, :], x)
    shifts = jax.random.randint(ks, (n, 2), -3, 4)
    x = jax.vmap(lambda im, s: jnp.roll(jnp.roll(im, s[0], 0), s[1], 1))(x, shifts)
    return x * jax.random.uniform(ki, (n, 1, 1), x.dtype, 0.75, 1.25)


def augment_deform(key, x, *, rotate_deg: float = 10.0, scale: float = 0.1, elastic_px: float = 1.5,
                   gain=(0.75, 1.25), gamma=(0.8, 1.25)):
    """Random left-right flips, rotations by up to ``rotate_deg`` degrees, isotropic scaling
    by ``1 +- scale``, a smooth elastic displacement (an 8 x 8 grid of N(0, ``elastic_px``^2)
    pixel offsets, cubic upsampling), all in one bilinear resampling about the image centre,
    then intensity ``gain * x ** gamma`` (each uniform in its range; values clipped at 0) of a
    batch ``(n, H, W)``. Augments the ``mni3`` data (`image_data`)."""
    n, h, w = x.shape
    kf, kr, ks, ke, kg, kp = jax.random.split(key, 6)
    x = jnp.where(jax.random.bernoulli(kf, 0.5, (n,))[:, None, None], x[:, :, ::-1], x)
    ang = jnp.deg2rad(rotate_deg) * jax.random.uniform(kr, (n,), x.dtype, -1.0, 1.0)
    zoom = 1.0 + scale * jax.random.uniform(ks, (n,), x.dtype, -1.0, 1.0)
    disp = jax.image.resize(elastic_px * jax.random.normal(ke, (n, 2, 8, 8), x.dtype), (n, 2, h, w), "cubic")
    r, c = jnp.meshgrid(jnp.arange(h, dtype=x.dtype) - (h - 1) / 2, jnp.arange(w, dtype=x.dtype) - (w - 1) / 2,
                        indexing="ij")

    def warp(im, a, z, d):
        cos, sin = jnp.cos(a) / z, jnp.sin(a) / z
        rows = cos * r - sin * c + (h - 1) / 2 + d[0]
        cols = sin * r + cos * c + (w - 1) / 2 + d[1]
        return jax.scipy.ndimage.map_coordinates(im, [rows, cols], order=1, mode="constant")

    x = jax.vmap(warp)(x, ang, zoom, disp)
    g = jax.random.uniform(kg, (n, 1, 1), x.dtype, *gain)
    p = jax.random.uniform(kp, (n, 1, 1), x.dtype, *gamma)
    return g * jnp.clip(x, 0.0, None) ** p


def image_data(data: str, size: int):
    """``(dataset, augment)`` for the ``train`` of `LPN` or `ScorePrior`: ``"ellipses"`` (a
    sampling function of fresh ``size`` x ``size`` `phantoms.random_ellipses`, no
    augmentation), ``"mni"`` (the ``"train"`` split of `phantoms.axial_slices` at ``size``,
    with `augment_slices`) or ``"mni3"`` (those 102 axial slices and the 149
    `phantoms.orthogonal_slices`, with `augment_deform`) or ``"darcy"`` (fresh
    `fields.log_permeability` maps, ``kind="mixed"``, every step)."""
    if data == "ellipses":
        return functools.partial(phantoms.random_ellipses, size=size), None
    if data == "mni":
        return np.asarray(phantoms.axial_slices("train", size)[0]), augment_slices
    if data == "mni3":
        return np.concatenate([np.asarray(phantoms.axial_slices("train", size)[0]),
                               np.asarray(phantoms.orthogonal_slices(size))]), augment_deform
    if data == "darcy":
        return functools.partial(fields.log_permeability, shape=(size, size)), None
    raise ValueError(f"recipe data must be 'ellipses', 'mni', 'mni3' or 'darcy', got {data!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageRecipe:
    """What the image recipes share: ``data`` and ``size`` (`image_data`), ``steps``
    optimizer steps of ``batch_size`` images, the peak learning rate ``lr``, PRNG ``seed``."""

    data: str
    size: int = 64
    steps: int
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LPNRecipe(ImageRecipe):
    """A shipped `LPN`: denoises noise of std ``sigma``; a `ConvICNN` of width ``hidden`` and
    ``depth`` halvings; the paper's schedule with the ``steps`` split evenly between L1
    pre-training at Adam ``lr`` and proximal matching at ``lr / 10``."""

    sigma: float = 0.1
    hidden: int = 32
    depth: int = 3

    def train(self, checkpoint=None, progress: bool | None = None) -> LPN:
        """Train the prior (or resume from ``checkpoint``); its ``info`` starts with ``("data", data)``."""
        dataset, augment = image_data(self.data, self.size)
        opt = optax.adam(optax.piecewise_constant_schedule(self.lr, {self.steps // 2: 0.1}))
        model = LPN.train(dataset, self.sigma, opt, "proximal_matching", jax.random.key(self.seed), steps=self.steps,
                          batch_size=self.batch_size, augment=augment, checkpoint=checkpoint, progress=progress,
                          hidden=self.hidden, depth=self.depth)
        return dataclasses.replace(model, info=(("data", self.data), *model.info))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoreRecipe(ImageRecipe):
    """A shipped `ScorePrior`: a `ScoreUNet` with ``channels`` per resolution, VP SDE, AdamW
    with a linear warm-up to ``lr`` over ``min(200, steps // 10 + 1)`` steps, then cosine decay
    to ``lr / 20``; EMA ``ema``. ``precond``, ``data_std`` and ``noise`` as `ScorePrior.init`
    and `ScorePrior.train` (``None``: times uniform in ``[t_min, 1]``)."""

    channels: tuple[int, ...] = (16, 32, 64, 64)
    data_std: float = 0.5
    precond: str = "eps"
    noise: tuple[float, float] | None = None
    ema: float = 0.999

    def train(self, checkpoint=None, progress: bool | None = None) -> ScorePrior:
        """Train the prior (or resume from ``checkpoint``); its ``info`` starts with ``("data", data)``."""
        dataset, augment = image_data(self.data, self.size)
        opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, self.lr, min(200, self.steps // 10 + 1), self.steps,
                                                             self.lr / 20))
        model = ScorePrior.train(dataset, "vp", opt, jax.random.key(self.seed), steps=self.steps,
                                 batch_size=self.batch_size, augment=augment, checkpoint=checkpoint,
                                 progress=progress, channels=tuple(self.channels), precond=self.precond,
                                 data_std=self.data_std,
                                 noise=None if self.noise is None else tuple(self.noise), ema=self.ema)
        return dataclasses.replace(model, info=(("data", self.data), *model.info))
