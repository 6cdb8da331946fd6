"""Multilayer perceptron (flax NNX)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"tanh": jnp.tanh, "sin": jnp.sin, "gelu": jax.nn.gelu, "silu": jax.nn.silu, "softplus": jax.nn.softplus}


class MLP(nnx.Module):
    """``in_size -> hidden... -> out_size`` fully connected network.

    Glorot-normal weights and zero biases (the PINN literature's default, e.g. FlamePINN-1D);
    ``activation`` after every hidden layer, none after the last. Maps one input vector
    ``(in_size,)`` (or a batch ``(..., in_size)``) to ``(out_size,)``. Parameters in
    ``dtype`` (float32 by default).
    """

    def __init__(self, in_size: int, out_size: int, hidden: Sequence[int] = (64, 64, 64),
                 activation: str = "tanh", *, rngs: nnx.Rngs, dtype=jnp.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        sizes = (in_size, *hidden, out_size)
        init = nnx.initializers.glorot_normal()
        self.layers = nnx.List([
            nnx.Linear(a, b, kernel_init=init, bias_init=nnx.initializers.zeros_init(),
                       param_dtype=dtype, dtype=dtype, rngs=rngs)
            for a, b in zip(sizes[:-1], sizes[1:])
        ])
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)
