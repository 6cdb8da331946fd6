"""Result codes and the `Solution` returned by `invsolve.solve`."""

from __future__ import annotations

import enum
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp


class RESULTS(enum.IntEnum):
    """Why a solve stopped. Stored as an int32 code inside compiled loops."""

    successful = 0
    max_steps_reached = 1
    nonfinite = 2
    breakdown = 3
    diverged = 4
    data_misfit = 5

    def __str__(self) -> str:
        return f"RESULTS.{self.name}"

    __repr__ = __str__

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    RESULTS.successful: "the solve succeeded",
    RESULTS.max_steps_reached: "the solver did not reach its tolerance within max_steps "
    "(raise max_steps, loosen the tolerance, or pass throw=False to get the last iterate)",
    RESULTS.nonfinite: "a NaN or infinity appeared in the iterates (lower the step size, "
    "check the data for non-finite values)",
    RESULTS.breakdown: "the method broke down (for CG and DCDM: a search direction p has "
    "p.A p <= 0, so the operator is not positive definite)",
    RESULTS.diverged: "the iteration diverged: the loss grew far above the best value seen "
    "(lower the step size or learning rate)",
    RESULTS.data_misfit: "the estimate does not fit the data: its normalised chi-square "
    "||(forward(x) - y) / sigma||^2 / m is far above 1 (a guidance weight or step size too large, or "
    "a prior that overrides the data)",
}


class SolveError(RuntimeError):
    """Raised by `solve(..., throw=True)` when the result is not `RESULTS.successful`."""


class Estimate(eqx.Module):
    """What a solver's `postprocess` returns: the point estimate and, for samplers, spread."""

    value: Any
    std: Any = None
    samples: Any = None


class Solution(eqx.Module):
    """The outcome of `invsolve.solve`.

    Attributes:
        value: the estimate of the unknown, in physical units (pytree of arrays).
        result: a `RESULTS` member (host driver) or an int32 array of codes (device driver).
        history: per-step diagnostics, e.g. ``{"loss": (num_steps,), "residual": ...}``.
        stats: ``num_steps``; the host driver adds ``wall_time_s`` and ``compile_time_s``.
        metrics: errors against the ground truth when the problem knows it (``rel_l2``, ...).
        std, samples: posterior spread, for sampling solvers; otherwise ``None``.
        state: the final solver state (pass it back as ``solve(..., state=...)`` to continue).
    """

    value: Any
    result: Any
    history: dict
    stats: dict
    metrics: dict
    std: Any = None
    samples: Any = None
    state: Any = None

    def credible_interval(self, level: float = 0.9, axis: int = 0):
        """Equal-tailed ``level`` intervals ``(lo, hi)`` from ``samples`` (pytrees like
        ``value``): the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles over the sample axis
        (``axis=1`` for a `solve_batch` result)."""
        if self.samples is None:
            raise ValueError("credible_interval: this solution has no samples; use a sampling solver "
                             "(NUTS, DPS, ...).")
        if not 0.0 < level < 1.0:
            raise ValueError(f"credible_interval: level must be in (0, 1), got {level}.")
        q = jnp.asarray([(1 - level) / 2, (1 + level) / 2])
        both = jax.tree.map(lambda x: jnp.quantile(x, q, axis=axis), self.samples)
        return jax.tree.map(lambda b: b[0], both), jax.tree.map(lambda b: b[1], both)
