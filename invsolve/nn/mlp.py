"""Multilayer perceptrons (flax NNX), with the PINN literature's options: random weight
factorisation and exact periodic / random Fourier feature embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"tanh": jnp.tanh, "sin": jnp.sin, "gelu": jax.nn.gelu, "silu": jax.nn.silu, "softplus": jax.nn.softplus}


class FactorizedLinear(nnx.Module):
    """A dense layer with random weight factorisation (Wang et al. 2023, "An expert's guide
    to training PINNs", Sec. 5.2): the kernel ``W = V diag(exp(s))``, both trained, with
    ``s ~ N(mu, sigma)`` per output and ``V = W0 / exp(s)`` for a Glorot-normal ``W0`` (so the
    layer starts as the plain one). ``x (..., a) -> (..., b)``."""

    def __init__(self, a: int, b: int, mu: float, sigma: float, *, rngs: nnx.Rngs, dtype=jnp.float32):
        w0 = nnx.initializers.glorot_normal()(rngs.params(), (a, b), dtype)
        s = mu + sigma * jax.random.normal(rngs.params(), (b,), dtype)
        self.v = nnx.Param(w0 / jnp.exp(s))
        self.s = nnx.Param(s)
        self.bias = nnx.Param(jnp.zeros((b,), dtype))

    def __call__(self, x):
        return x @ (self.v[...] * jnp.exp(self.s[...])) + self.bias[...]


def _dense(a, b, factorized, rngs, dtype):
    """A Glorot-normal dense layer ``a -> b`` with zero bias, factorised when ``factorized``."""
    if factorized is not None:
        return FactorizedLinear(a, b, *factorized, rngs=rngs, dtype=dtype)
    return nnx.Linear(a, b, kernel_init=nnx.initializers.glorot_normal(), bias_init=nnx.initializers.zeros_init(),
                      param_dtype=dtype, dtype=dtype, rngs=rngs)


class MLP(nnx.Module):
    """``in_size -> hidden... -> out_size`` fully connected network.

    Glorot-normal weights and zero biases (the PINN literature's default, e.g. FlamePINN-1D);
    ``activation`` after every hidden layer, none after the last. Maps one input vector
    ``(in_size,)`` (or a batch ``(..., in_size)``) to ``(out_size,)``. Parameters in
    ``dtype`` (float32 by default). ``factorized=(mu, sigma)`` makes every layer a
    `FactorizedLinear` (jaxpi and FlamePINN-1D use ``(1.0, 0.1)``).
    """

    def __init__(self, in_size: int, out_size: int, hidden: Sequence[int] = (64, 64, 64),
                 activation: str = "tanh", *, rngs: nnx.Rngs, dtype=jnp.float32,
                 factorized: tuple[float, float] | None = None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        sizes = (in_size, *hidden, out_size)
        self.layers = nnx.List([_dense(a, b, factorized, rngs, dtype) for a, b in zip(sizes[:-1], sizes[1:])])
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


class Embedding(nnx.Module):
    """Input features for a PINN: exact periodic embedding then random Fourier features.

    ``periodic``: axes of the input whose coordinate ``z`` (scaled so one period spans
    [-1, 1]) is replaced by ``(cos(pi z), sin(pi z))``, which makes the network exactly
    periodic along them (Dong & Ni 2021; jaxpi). ``fourier=(scale, dim)``: then
    ``z -> [cos(z B), sin(z B)]`` with a fixed ``B ~ N(0, scale^2)`` of shape
    ``(features, dim // 2)`` (Tancik et al. 2020; Wang, Wang & Perdikaris 2021); ``B`` is not
    trained (its gradient is stopped). ``time_periodic``: one more axis (time) embedded as
    ``(cos(w z), sin(w z))`` with a *trained* angular frequency ``w`` that starts at ``pi`` (one
    period over the box), jaxpi's trainable time period: a travelling wave ``sin(x - c t)`` is
    periodic in time, and the period can move to one of its multiples. ``x (..., in_size) ->
    (..., out_size)``.
    """

    def __init__(self, in_size: int, periodic: Sequence[int] = (), fourier: tuple[float, int] | None = None, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, time_periodic: int | None = None):
        self.periodic = tuple(int(a) for a in periodic)
        self.time_periodic = None if time_periodic is None else int(time_periodic)
        if self.time_periodic is not None:
            if self.time_periodic in self.periodic or not 0 <= self.time_periodic < in_size:
                raise ValueError(f"Embedding: time_periodic axis {time_periodic!r} must be an input axis "
                                 f"(0..{in_size - 1}) that is not in periodic {self.periodic}.")
            self.omega = nnx.Param(jnp.asarray(jnp.pi, dtype))
        self.in_size = in_size
        wavy = self.periodic + (() if self.time_periodic is None else (self.time_periodic,))
        size = in_size + len(wavy)
        self.fourier = fourier is not None
        if self.fourier:
            scale, dim = fourier
            self.B = nnx.Param(scale * jax.random.normal(rngs.params(), (size, dim // 2), dtype))
            size = 2 * (dim // 2)
        self.out_size = size

    def __call__(self, x):
        if self.periodic or self.time_periodic is not None:
            freq = {i: jnp.pi for i in self.periodic}
            if self.time_periodic is not None:
                freq[self.time_periodic] = self.omega[...]
            keep = [x[..., i:i + 1] for i in range(self.in_size) if i not in freq]
            waves = [f(w * x[..., i:i + 1]) for i, w in freq.items() for f in (jnp.cos, jnp.sin)]
            x = jnp.concatenate(waves + keep, axis=-1)
        if self.fourier:
            z = x @ jax.lax.stop_gradient(self.B[...])
            x = jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)
        return x


class FieldNet(nnx.Module):
    """`Embedding` followed by an `MLP`: the network of `invsolve.solvers.PINN`."""

    def __init__(self, in_size: int, out_size: int, hidden: Sequence[int], activation: str, *, rngs: nnx.Rngs,
                 dtype=jnp.float32, factorized=None, periodic: Sequence[int] = (), fourier=None,
                 time_periodic: int | None = None):
        self.embed = Embedding(in_size, periodic, fourier, rngs=rngs, dtype=dtype, time_periodic=time_periodic)
        self.mlp = MLP(self.embed.out_size, out_size, hidden, activation, rngs=rngs, dtype=dtype,
                       factorized=factorized)

    def __call__(self, x):
        return self.mlp(self.embed(x))


class PirateNet(nnx.Module):
    """PirateNet (Wang, Li, Chen & Perdikaris 2024, "PirateNets: physics-informed deep learning
    with residual adaptive networks", Eqs. 4.1-4.6): an `Embedding` ``phi`` of size ``width``,
    gates ``U = act(phi W_u)`` and ``V = act(phi W_v)``, then ``blocks`` residual blocks of three
    dense layers each,

        f = act(x W1),  z = f U + (1 - f) V,  g = act(z W2),  z = g U + (1 - g) V,
        h = act(z W3),  x <- alpha h + (1 - alpha) x,

    with a trainable ``alpha`` per block starting at 0, so the network starts as a linear
    map of the embedding and deepens as training moves the ``alpha``. A dense output layer
    follows. Dense layers are `FactorizedLinear` with ``factorized=(mu, sigma)``. The
    physics-informed initialisation of the output layer (a least-squares fit to the initial
    condition) is not done here. ``x (..., in_size) -> (..., out_size)``."""

    def __init__(self, in_size: int, out_size: int, width: int, blocks: int, activation: str = "tanh", *,
                 rngs: nnx.Rngs, dtype=jnp.float32, factorized=None, periodic: Sequence[int] = (),
                 fourier_scale: float = 1.0, time_periodic: int | None = None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"PirateNet activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        if width < 2 or width % 2 or blocks < 1:
            raise ValueError(f"PirateNet needs an even width >= 2 and blocks >= 1, got width {width}, blocks {blocks}.")
        def dense(a, b):
            return _dense(a, b, factorized, rngs, dtype)

        self.embed = Embedding(in_size, periodic, (fourier_scale, width), rngs=rngs, dtype=dtype,
                               time_periodic=time_periodic)
        self.gate_u, self.gate_v = dense(width, width), dense(width, width)
        self.layers = nnx.List([nnx.List([dense(width, width) for _ in range(3)]) for _ in range(blocks)])
        self.alpha = nnx.Param(jnp.zeros((blocks,), dtype))
        self.out = dense(width, out_size)
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        x = self.embed(x)
        U, V = act(self.gate_u(x)), act(self.gate_v(x))
        for k, (l1, l2, l3) in enumerate(self.layers):
            f = act(l1(x))
            z = f * U + (1 - f) * V
            g = act(l2(z))
            z = g * U + (1 - g) * V
            h = act(l3(z))
            a = self.alpha[...][k]
            x = a * h + (1 - a) * x
        return self.out(x)
