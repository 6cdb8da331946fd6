"""Bayesian inference over a few unknowns by the No-U-Turn sampler (blackjax).

The posterior is ``p(theta | y) ∝ exp(-neg_log_likelihood(theta)) p(theta)`` through the
differentiable forward model. The prior is either

* the problem's parameter box (a `HasSimulator`: uniform on ``z`` in the unit cube,
  ``theta = theta_from_unit(z)``; the sampler moves ``w = logit z`` and adds the log-Jacobian
  ``sum log z(1 - z)``), or
* a prior object (``prior.log_density_neg(theta)``, e.g. ``Tikhonov(alpha)`` is the Gaussian
  ``N(0, I / alpha)``) on the problem's unconstrained ``theta``.

One solver step is one NUTS transition (Hoffman & Gelman, JMLR 15, 2014); the step size and a
diagonal mass matrix are tuned in ``init`` by Stan's window adaptation over ``n_warmup``
transitions. The chain's position is float64 when x64 is on (reference sampler).
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._problem import HasForward, HasSimulator
from .._solution import RESULTS, Estimate
from .._solver import AbstractSolver, Requirement, check_nonneg
from ..priors import AbstractDensityPrior


class NUTSState(eqx.Module):
    chain: Any  # blackjax HMCState: position w, its log density and gradient
    step_size: jax.Array
    inverse_mass_matrix: Any
    samples: Any  # (n_samples, ...) positions w, filled step by step
    i: jax.Array
    key: jax.Array


class _BoxPrior(Requirement):
    """Without a prior object, the problem's parameter box (a `HasSimulator`) is the prior."""

    def unmet(self, problem):
        if isinstance(problem, HasSimulator):
            return None
        return (f"a prior on the unknowns, but {type(problem).__name__} has no prior bounds on its unknowns (it is "
                "not a HasSimulator with a parameter box) and no prior was given; pass a proper prior, e.g. "
                "NUTS(prior=inv.priors.Tikhonov(alpha)) for theta ~ N(0, I/alpha)")


class NUTS(AbstractSolver):
    """No-U-Turn sampler over the unknowns of a `HasForward` problem.

    Args:
        n_samples: posterior draws kept (one per solver step).
        n_warmup: window-adaptation transitions before sampling (step size and diagonal mass
            matrix; 0 keeps ``step_size`` and a unit mass matrix).
        prior: None for the problem's parameter box (a `HasSimulator`), or a prior with
            ``log_density_neg`` on the unconstrained unknown (a Gaussian `Tikhonov`, ...).
        theta0: starting point (unconstrained theta; None: ``problem.init_params()``). Set by
            ``DatabaseQuery.refine(NUTS(...))`` to the bank's best match.
        target_acceptance: the adaptation's target mean acceptance probability.
        max_tree_depth: NUTS doubles its trajectory at most this many times per step.

    `Solution.value` is the posterior mean in physical units, ``std`` the posterior standard
    deviation, ``samples`` the draws (leading axis ``n_samples``);
    ``Solution.credible_interval(0.9)`` gives equal-tailed intervals. History per step:
    ``acceptance``, ``divergent``, ``n_leapfrog``, ``log_density``.
    """

    n_samples: int = eqx.field(static=True, default=1000)
    n_warmup: int = eqx.field(static=True, default=500)
    prior: Any = None
    theta0: Any = None
    step_size: float = eqx.field(static=True, default=0.1)
    target_acceptance: float = eqx.field(static=True, default=0.8)
    max_tree_depth: int = eqx.field(static=True, default=10)

    needs_key: ClassVar = True

    def __check_init__(self):
        check_nonneg("NUTS n_samples", self.n_samples, integer=True, allow_none=False)
        check_nonneg("NUTS n_warmup", self.n_warmup, integer=True, allow_none=False)
        if self.n_samples < 2:
            raise ValueError(f"NUTS needs n_samples >= 2 to estimate a spread, got {self.n_samples}.")
        if not 0.0 < self.target_acceptance < 1.0:
            raise ValueError(f"NUTS target_acceptance must be in (0, 1), got {self.target_acceptance}.")
        if self.prior is not None and not isinstance(self.prior, AbstractDensityPrior):
            raise TypeError("NUTS prior must have a log density (an invsolve.priors.AbstractDensityPrior such as "
                            f"Tikhonov), got {type(self.prior).__name__}.")

    @property
    def requires(self):
        return (HasForward,) if self.prior is not None else (HasForward, _BoxPrior())

    # --- the sampling variable w and its log density ------------------------------------

    def _box(self, problem) -> bool:
        return self.prior is None

    def to_theta(self, problem, w):
        """The problem's unconstrained unknown for the sampler's position ``w``."""
        return problem.theta_from_unit(jax.nn.sigmoid(w)) if self._box(problem) else w

    def log_density(self, problem, w):
        """``log p(w | y)`` up to a constant."""
        theta = self.to_theta(problem, w)
        logp = -problem.neg_log_likelihood(theta)
        if self._box(problem):  # uniform z = sigmoid(w): dz/dw = z (1 - z)
            return logp + jnp.sum(jax.nn.log_sigmoid(w) + jax.nn.log_sigmoid(-w))
        return logp - self.prior(theta)

    def _start(self, problem):
        """The start, in the problem's own float dtype (a float32 bank start on a float64
        problem would change the chain's dtype mid-run)."""
        ref = problem.init_params()
        theta = ref if self.theta0 is None else jax.tree.map(lambda t, r: jnp.asarray(t, r.dtype), self.theta0, ref)
        if not self._box(problem):
            return theta
        z = problem.unit_from_theta(theta)
        return jnp.log(z) - jnp.log1p(-z)

    # --- init / step / terminate / postprocess ------------------------------------------
    def default_max_steps(self, problem):
        return self.n_samples

    def _kernel(self, problem, step_size, inverse_mass_matrix):
        import blackjax  # imported on use: importing blackjax starts the JAX backend, which must
        # wait for invsolve.distributed.initialize in a multi-process run
        return blackjax.nuts(lambda w: self.log_density(problem, w), step_size, inverse_mass_matrix,
                             max_num_doublings=self.max_tree_depth)

    def init(self, problem, key):
        import blackjax
        from blackjax.adaptation.base import get_filter_adapt_info_fn

        k_warm, key = jax.random.split(key)
        w0 = self._start(problem)
        logdensity = lambda w: self.log_density(problem, w)  # noqa: E731
        if self.n_warmup:
            adapt = blackjax.window_adaptation(
                blackjax.nuts, logdensity, target_acceptance_rate=self.target_acceptance,
                adaptation_info_fn=get_filter_adapt_info_fn(), max_num_doublings=self.max_tree_depth)
            (chain, params), _ = adapt.run(k_warm, w0, num_steps=self.n_warmup)
            step_size, imm = params["step_size"], params["inverse_mass_matrix"]
        else:
            from jax.flatten_util import ravel_pytree

            flat = ravel_pytree(w0)[0]
            step_size, imm = jnp.asarray(self.step_size, flat.dtype), jnp.ones_like(flat)
            chain = blackjax.nuts.init(w0, logdensity)
        samples = jax.tree.map(lambda x: jnp.zeros((self.n_samples, *jnp.shape(x)), jnp.result_type(x)), chain.position)
        return NUTSState(chain, jnp.asarray(step_size), imm, samples, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        key, k = jax.random.split(state.key)
        chain, info = self._kernel(problem, state.step_size, state.inverse_mass_matrix).step(k, state.chain)
        samples = jax.tree.map(lambda buf, x: buf.at[state.i].set(x), state.samples, chain.position)
        new = NUTSState(chain, state.step_size, state.inverse_mass_matrix, samples, state.i + 1, key)
        return new, {"acceptance": info.acceptance_rate, "divergent": info.is_divergent.astype(jnp.float32),
                     "n_leapfrog": info.num_integration_steps.astype(jnp.float32), "log_density": chain.logdensity}

    def terminate(self, problem, state):
        done = state.i >= self.n_samples
        return done, jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached).astype(jnp.int32)

    def postprocess(self, problem, state):
        n = jnp.maximum(state.i, 1)
        phys = jax.vmap(lambda w: problem.constrain(self.to_theta(problem, w)))(state.samples)
        # draws not taken yet (a budget below n_samples) are NaN, so they cannot pass for draws
        taken = jnp.arange(self.n_samples) < state.i
        phys = jax.tree.map(lambda x: jnp.where(taken.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.nan), phys)
        mean = jax.tree.map(lambda x: jnp.nansum(x, 0) / n, phys)
        std = jax.tree.map(lambda x, m: jnp.sqrt(jnp.nansum((x - m) ** 2, 0) / jnp.maximum(n - 1, 1)), phys, mean)
        return Estimate(mean, std=std, samples=phys)
