"""Noise-prediction networks ``eps(x_t, c)`` for diffusion models (flax NNX).

``c`` is the log noise-to-signal ratio ``log(s(t) / a(t))`` of the diffusion at time ``t``
(one number per sample), which serves variance-preserving and variance-exploding SDEs alike.

* `ScoreUNet`: images ``(batch, H, W, 1)``; a U-Net of residual blocks (group norm, SiLU,
  3x3 convolutions, the noise embedding added after the first convolution), average
  pooling down, nearest upsampling and concatenated skips up, optional single-head
  self-attention at the coarsest resolution (the DDPM / NCSN++ layout at small width).
* `ScoreMLP`: vectors ``(batch, dim)``; a residual MLP with the same noise embedding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .unet import _pool, _upsample


def noise_embedding(c, dim: int):
    """Sinusoidal features of the log noise ratio ``c`` (batch,) -> (batch, dim); frequencies
    geometric in [0.05, 20] cover ``c`` in about [-10, 6]."""
    freqs = jnp.exp(jnp.linspace(jnp.log(0.05), jnp.log(20.0), dim // 2)).astype(c.dtype)
    arg = c[:, None] * freqs
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


def _groups(ch):
    return next(g for g in (8, 4, 2, 1) if ch % g == 0)


class _Block(nnx.Module):
    def __init__(self, cin, cout, temb, *, rngs, dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.n1 = nnx.GroupNorm(cin, num_groups=_groups(cin), **kw)
        self.c1 = nnx.Conv(cin, cout, (3, 3), padding="SAME", **kw)
        self.t = nnx.Linear(temb, cout, **kw)
        self.n2 = nnx.GroupNorm(cout, num_groups=_groups(cout), **kw)
        self.c2 = nnx.Conv(cout, cout, (3, 3), padding="SAME", **kw)
        self.skip = nnx.Conv(cin, cout, (1, 1), **kw) if cin != cout else None

    def __call__(self, h, emb):
        r = self.c1(jax.nn.silu(self.n1(h))) + self.t(emb)[:, None, None, :]
        r = self.c2(jax.nn.silu(self.n2(r)))
        return r + (h if self.skip is None else self.skip(h))


class _Attention(nnx.Module):
    def __init__(self, ch, *, rngs, dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.norm = nnx.GroupNorm(ch, num_groups=_groups(ch), **kw)
        self.qkv = nnx.Linear(ch, 3 * ch, **kw)
        self.out = nnx.Linear(ch, ch, **kw)

    def __call__(self, h):
        b, hh, ww, ch = h.shape
        q, k, v = jnp.split(self.qkv(self.norm(h)).reshape(b, hh * ww, 3 * ch), 3, axis=-1)
        w = jax.nn.softmax(jnp.einsum("bic,bjc->bij", q, k) / jnp.sqrt(ch).astype(h.dtype), axis=-1)
        return h + self.out(jnp.einsum("bij,bjc->bic", w, v)).reshape(h.shape)


class ScoreUNet(nnx.Module):
    """``eps(x (batch, H, W, 1), c (batch,)) -> (batch, H, W, 1)``; ``channels[l]`` features
    at resolution ``H / 2**l``; sides must be multiples of ``2**(len(channels) - 1)``."""

    def __init__(self, channels=(16, 32, 64, 64), attention: bool = True, *, rngs: nnx.Rngs,
                 dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype)
        c0, temb = channels[0], 4 * channels[0]
        self.t1 = nnx.Linear(c0, temb, **kw)
        self.t2 = nnx.Linear(temb, temb, **kw)
        self.lift = nnx.Conv(1, c0, (3, 3), padding="SAME", **kw)
        ins = (c0, *channels[:-1])
        self.down = nnx.List([_Block(ci, co, temb, rngs=rngs, dtype=dtype) for ci, co in zip(ins, channels)])
        self.mid = _Block(channels[-1], channels[-1], temb, rngs=rngs, dtype=dtype)
        self.attn = _Attention(channels[-1], rngs=rngs, dtype=dtype) if attention else None
        self.up = nnx.List([_Block(channels[l + 1] + channels[l], channels[l], temb, rngs=rngs, dtype=dtype)
                            for l in range(len(channels) - 1)])
        self.norm = nnx.GroupNorm(c0, num_groups=_groups(c0), **kw)
        self.project = nnx.Conv(c0, 1, (3, 3), padding="SAME", **kw)
        self.c0 = c0

    def __call__(self, x, c):
        emb = self.t2(jax.nn.silu(self.t1(noise_embedding(c, self.c0))))
        h = self.lift(x)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = _pool(h, 2)
            h = block(h, emb)
            skips.append(h)
        h = self.mid(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        for level in reversed(range(len(self.up))):
            h = self.up[level](jnp.concatenate([_upsample(h, 2), skips[level]], axis=-1), emb)
        return self.project(jax.nn.silu(self.norm(h)))


class ScoreMLP(nnx.Module):
    """``eps(x (batch, dim), c (batch,)) -> (batch, dim)``: ``depth`` residual SiLU layers of
    width ``hidden``, the noise embedding added to each."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, *, rngs: nnx.Rngs, dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.emb_dim = hidden
        self.inp = nnx.Linear(dim, hidden, **kw)
        self.t = nnx.Linear(hidden, hidden, **kw)
        self.layers = nnx.List([nnx.Linear(hidden, hidden, **kw) for _ in range(depth)])
        self.out = nnx.Linear(hidden, dim, **kw)

    def __call__(self, x, c):
        emb = self.t(noise_embedding(c, self.emb_dim))
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(jax.nn.silu(h + emb))
        return self.out(jax.nn.silu(h))
