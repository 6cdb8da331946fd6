"""Maximum a posteriori estimation by gradient descent through the forward model."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._problem import HasForward
from .._solution import RESULTS, Estimate
from .._solver import AbstractOptaxSolver, check_nonneg
from ..priors import AbstractDensityPrior


# A descent that ends this many times the starting loss's magnitude above it has gone uphill.
ASCENT_FACTOR = 10.0


class MAPState(eqx.Module):
    theta: Any
    opt_state: Any
    loss: jax.Array
    grad_norm: jax.Array
    grad_norm0: jax.Array


def _tree_norm(t):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(t)))


class GradientMAP(AbstractOptaxSolver):
    """Minimise ``-log p(y | theta) - log p(theta)`` with an optax optimizer.

    The objective is ``problem.neg_log_likelihood(theta) + prior(theta)`` (for Gaussian noise
    ``0.5 ||(forward(theta) - y) / sigma||^2 + R(theta)``), differentiated with ``jax.grad``
    through the forward model (linear solves inside it are differentiated implicitly).
    Works for ``optax.lbfgs`` too: ``value``, ``grad`` and ``value_fn`` are passed to
    ``update``.

    Args:
        optimizer: an optax ``GradientTransformation``, e.g. ``optax.adam(1e-2)``.
        prior: an `invsolve.priors` prior on ``theta`` (None: maximum likelihood).
        max_steps: optimizer steps (default 1000).
        gtol: stop when ``||grad|| <= gtol * ||grad_0||``; None runs all ``max_steps`` and
            reports success.
        theta0: the starting ``theta`` (unconstrained, the structure of
            ``problem.init_params()``); None uses ``problem.init_params()``.
    History: ``loss`` (objective before each step), ``grad_norm``.
    """

    requires: ClassVar = (HasForward,)
    optimizer: Any
    prior: AbstractDensityPrior | None = None
    max_steps: int | None = 1000
    gtol: float | None = None
    theta0: Any = None

    def __check_init__(self):
        check_nonneg("GradientMAP max_steps", self.max_steps, integer=True)
        check_nonneg("GradientMAP gtol", self.gtol)
        if self.prior is not None and not isinstance(self.prior, AbstractDensityPrior):
            raise TypeError("GradientMAP prior must be a regularizer with a log density (an "
                            f"invsolve.priors.AbstractDensityPrior such as Tikhonov or TV), got {type(self.prior).__name__}.")
        if not isinstance(self.optimizer, optax.GradientTransformation) and not hasattr(self.optimizer, "update"):
            raise TypeError(
                "GradientMAP optimizer must be an optax GradientTransformation, e.g. optax.adam(1e-2); "
                f"got {self.optimizer!r}."
            )

    def init_params(self, problem):
        default = problem.init_params()
        if self.theta0 is None:
            return default
        if jax.tree.structure(self.theta0) != jax.tree.structure(default):
            raise ValueError(f"GradientMAP theta0 must have the structure of problem.init_params(): "
                             f"{jax.tree.structure(default)}, got {jax.tree.structure(self.theta0)}.")
        for x, d in zip(jax.tree.leaves(self.theta0), jax.tree.leaves(default)):
            if jnp.size(x) != jnp.size(d):
                raise ValueError(f"GradientMAP theta0 must have the shapes of problem.init_params(): an array of shape "
                                 f"{tuple(jnp.shape(x))} where {tuple(jnp.shape(d))} is expected.")
        return jax.tree.map(lambda x, d: jnp.asarray(x, d.dtype).reshape(d.shape), self.theta0, default)

    def _objective(self, problem):
        def f(theta):
            loss = problem.neg_log_likelihood(theta)
            if self.prior is not None:
                loss = loss + self.prior(theta)
            return loss

        return f

    def init(self, problem, key=None):
        theta = self.init_params(problem)
        dtype = jnp.result_type(*jax.tree.leaves(theta))
        inf = jnp.full((), jnp.inf, dtype)
        return MAPState(theta, self.optimizer.init(theta), inf, inf, inf)

    def step(self, problem, state):
        f = self._objective(problem)
        loss, grad = jax.value_and_grad(f)(state.theta)
        updates, opt_state = self.optimizer.update(grad, state.opt_state, state.theta, value=loss, grad=grad, value_fn=f)
        theta = optax.apply_updates(state.theta, updates)
        gnorm = _tree_norm(grad).astype(loss.dtype)
        g0 = jnp.where(jnp.isinf(state.grad_norm0), gnorm, state.grad_norm0)
        return MAPState(theta, opt_state, loss, gnorm, g0), {"loss": loss, "grad_norm": gnorm}

    def terminate(self, problem, state):
        if self.gtol is None:
            return jnp.array(False), jnp.array(RESULTS.successful, jnp.int32)
        done = jnp.isfinite(state.grad_norm0) & (state.grad_norm <= self.gtol * state.grad_norm0)
        return done, jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached).astype(jnp.int32)

    def check_result(self, problem, state, result):
        """A run that ends with its loss far above where it started (`ASCENT_FACTOR` times the
        starting loss's magnitude) went uphill, e.g. with a negative learning rate, and reports
        ``diverged``: the driver's per-step watch only catches a loss that explodes."""
        f0 = self._objective(problem)(self.init_params(problem)).astype(state.loss.dtype)
        scale = jnp.maximum(jnp.abs(f0), jnp.finfo(state.loss.dtype).tiny)
        rose = jnp.isfinite(state.loss) & (state.loss > f0 + ASCENT_FACTOR * scale)
        return jnp.where((result == RESULTS.successful) & rose, RESULTS.diverged, result)

    def postprocess(self, problem, state):
        return Estimate(problem.constrain(state.theta))
