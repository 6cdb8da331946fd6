"""Error metrics between an estimate and a reference (pytrees of arrays allowed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rel_l2(estimate, reference):
    """||estimate - reference||_2 / ||reference||_2 over all leaves."""
    num = sum(jnp.sum(jnp.square(jnp.asarray(a) - b)) for a, b in
              zip(jax.tree.leaves(estimate), jax.tree.leaves(reference)))
    den = sum(jnp.sum(jnp.square(b)) for b in jax.tree.leaves(reference))
    return jnp.sqrt(num / den)


def mse(estimate, reference):
    return jnp.mean(jnp.square(jnp.asarray(estimate) - reference))


def psnr(estimate, reference, data_range=None):
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's range."""
    reference = jnp.asarray(reference)
    if data_range is None:
        data_range = jnp.max(reference) - jnp.min(reference)
    return 10.0 * jnp.log10(data_range**2 / mse(estimate, reference))
