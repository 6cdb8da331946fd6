"""A small fully convolutional U-Net on 2D or 3D grids (flax NNX)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _pool(h, nd):
    """2x average pooling over the ``nd`` spatial axes of ``(batch, *spatial, C)``."""
    shape = h.shape
    new = [shape[0]]
    for n in shape[1:1 + nd]:
        new += [n // 2, 2]
    h = h.reshape(*new, shape[-1])
    return h.mean(axis=tuple(2 + 2 * i for i in range(nd)))


def _upsample(h, nd):
    """Nearest-neighbour 2x upsampling (the transpose of `_pool` up to a factor)."""
    for a in range(1, 1 + nd):
        h = jnp.repeat(h, 2, axis=a)
    return h


class _Residual(nnx.Module):
    """``h + relu(conv(relu(conv(h))))``, the residual pair of Kaneda et al.'s network."""

    def __init__(self, nd, features, *, rngs, dtype):
        k = (3,) * nd
        self.a = nnx.Conv(features, features, k, padding="SAME", rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.b = nnx.Conv(features, features, k, padding="SAME", rngs=rngs, dtype=dtype, param_dtype=dtype)

    def __call__(self, h):
        return h + jax.nn.relu(self.b(jax.nn.relu(self.a(h))))


class ConvUNet(nnx.Module):
    """``(batch, *spatial, in_channels) -> (batch, *spatial, out_channels)`` on a 2D or 3D grid.

    A linear 3^d convolution lifts the input to ``features`` channels; each of
    ``levels + 1`` resolutions (2x average pooling between them) applies ``blocks`` residual
    pairs of ReLU convolutions on the way down and (except the coarsest) on the way up,
    after nearest-neighbour upsampling added to the skip of that level; a 1x1 convolution
    maps back to ``out_channels``. This is the architecture of Kaneda et al. (ICML 2023,
    one pooling level, 16 channels) with the number of levels as a parameter: each level
    doubles the receptive field. Spatial sizes that are not multiples of ``2**levels``
    are zero-padded and cropped. Fully convolutional: it applies to any grid size.
    Parameters in ``dtype`` (float32 by default).
    """

    def __init__(self, ndim: int, in_channels: int = 1, out_channels: int = 1, features: int = 16,
                 levels: int = 2, blocks: int = 2, *, rngs: nnx.Rngs, dtype=jnp.float32):
        if ndim not in (1, 2, 3):
            raise ValueError(f"ConvUNet ndim must be 1, 2 or 3, got {ndim!r}.")
        self.ndim, self.levels = ndim, levels
        k = (3,) * ndim
        self.lift = nnx.Conv(in_channels, features, k, padding="SAME", rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.down = nnx.List([
            nnx.List([_Residual(ndim, features, rngs=rngs, dtype=dtype) for _ in range(blocks)])
            for _ in range(levels + 1)
        ])
        self.up = nnx.List([
            nnx.List([_Residual(ndim, features, rngs=rngs, dtype=dtype) for _ in range(blocks)])
            for _ in range(levels)
        ])
        self.project = nnx.Conv(features, out_channels, (1,) * ndim, rngs=rngs, dtype=dtype, param_dtype=dtype)

    def __call__(self, x):
        nd, m = self.ndim, 2 ** self.levels
        spatial = x.shape[1:1 + nd]
        pad = [(0, 0)] + [(0, -n % m) for n in spatial] + [(0, 0)]
        h = self.lift(jnp.pad(x, pad))
        skips = []
        for level, blocks in enumerate(self.down):
            if level:
                h = _pool(h, nd)
            for block in blocks:
                h = block(h)
            skips.append(h)
        for level in reversed(range(self.levels)):
            h = _upsample(h, nd) + skips[level]
            for block in self.up[level]:
                h = block(h)
        out = self.project(h)
        return out[(slice(None), *(slice(0, n) for n in spatial))]
