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
from ..problems import phantoms


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


def image_data(data: str, size: int):
    """``(dataset, augment)`` for the ``train`` of `LPN` or `ScorePrior`: ``"ellipses"`` (a
    sampling function of fresh ``size`` x ``size`` `phantoms.random_ellipses`, no
    augmentation) or ``"mni"`` (the ``"train"`` split of `phantoms.axial_slices` at ``size``,
    with `augment_slices`)."""
    if data == "ellipses":
        return functools.partial(phantoms.random_ellipses, size=size), None
    if data == "mni":
        return np.asarray(phantoms.axial_slices("train", size)[0]), augment_slices
    raise ValueError(f"recipe data must be 'ellipses' or 'mni', got {data!r}.")


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
    to ``lr / 20``; EMA 0.999."""

    channels: tuple[int, ...] = (16, 32, 64, 64)

    def train(self, checkpoint=None, progress: bool | None = None) -> ScorePrior:
        """Train the prior (or resume from ``checkpoint``); its ``info`` starts with ``("data", data)``."""
        dataset, augment = image_data(self.data, self.size)
        opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, self.lr, min(200, self.steps // 10 + 1), self.steps,
                                                             self.lr / 20))
        model = ScorePrior.train(dataset, "vp", opt, jax.random.key(self.seed), steps=self.steps,
                                 batch_size=self.batch_size, augment=augment, checkpoint=checkpoint,
                                 progress=progress, channels=tuple(self.channels))
        return dataclasses.replace(model, info=(("data", self.data), *model.info))
