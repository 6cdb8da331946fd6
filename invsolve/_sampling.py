"""Low-discrepancy point sets for collocation."""

from __future__ import annotations

import numpy as np

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)


def _radical_inverse(i: np.ndarray, base: int) -> np.ndarray:
    out = np.zeros(i.shape, float)
    f = 1.0 / base
    i = i.copy()
    while np.any(i > 0):
        out += f * (i % base)
        i //= base
        f /= base
    return out


def hammersley(n: int, dim: int) -> np.ndarray:
    """``n`` Hammersley points in ``[0, 1)^dim`` (n, dim): the first coordinate
    ``(i + 1/2) / n``, the others radical inverses of ``i + 1`` in bases 2, 3, 5, ..."""
    if dim > len(_PRIMES) + 1:
        raise ValueError(f"hammersley supports up to {len(_PRIMES) + 1} dimensions, got {dim}.")
    i = np.arange(n)
    cols = [(i + 0.5) / n] + [_radical_inverse(i + 1, b) for b in _PRIMES[: dim - 1]]
    return np.stack(cols, axis=1)
