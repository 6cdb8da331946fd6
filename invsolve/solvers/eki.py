"""Ensemble Kalman inversion: derivative-free, needs only ``forward``.

An ensemble ``u_1..u_J`` of unconstrained unknowns moves by the Kalman update (Iglesias, Law &
Stuart, Inverse Problems 29, 045001, 2013, eq. 8 with perturbed observations)::

    u_j <- u_j + C^{uG} (C^{GG} + alpha Gamma)^{-1} (y + sqrt(alpha) eta_j - G(u_j)),   eta_j ~ N(0, Gamma)

with the ensemble covariances ``C^{uG}``, ``C^{GG}`` and the noise covariance ``Gamma =
diag(sigma^2)``. ``alpha = 1 / h`` is the inverse step: fixed, or chosen each step by the
data-misfit controller of Iglesias & Yang (Inverse Problems 37, 025008, 2021)::

    h_n = min(max(M / (2 mean(Phi)), sqrt(M / (2 var(Phi)))), 1 - t_n),   t_{n+1} = t_n + h_n

(``Phi_j = ||Gamma^{-1/2} (y - G(u_j))||^2 / 2`` over ``M`` data), which stops when the
pseudo-time ``t`` reaches 1. Tikhonov EKI (Chada, Stuart & Tong, SIAM J. Numer. Anal. 58,
2020) appends the prior ``u ~ N(m0, diag(s0^2))`` as data: ``G~(u) = [G(u), u]``,
``y~ = [y, m0]``. Everything is computed in whitened coordinates with a ``J x J`` solve
(Woodbury), so the cost per step is ``J`` forward runs plus ``O(J^2 (M + N))``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._problem import HasForward
from .._solution import RESULTS, Estimate
from .._solver import AbstractSolver, Requirement, check_nonneg


class _GaussianNoise(Requirement):
    def unmet(self, problem):
        noise = getattr(problem, "noise", None)
        if getattr(noise, "sigma", None) is None or hasattr(noise, "read_sigma"):
            has = "no noise model" if noise is None else type(noise).__name__
            return (f"Gaussian noise (a noise model with sigma), but {type(problem).__name__} has {has}; the "
                    "Kalman update assumes Gaussian errors")
        return None


class EKIState(eqx.Module):
    u: jax.Array  # (J, N) the ensemble, flattened unconstrained unknowns
    t: jax.Array  # pseudo-time reached (the adaptive step stops at 1)
    m0: jax.Array  # (N,) prior mean (Tikhonov EKI)
    s0: jax.Array  # (N,) prior standard deviation (Tikhonov EKI)
    key: jax.Array


class EKI(AbstractSolver):
    """Ensemble Kalman inversion over the unknowns of a `HasForward` problem with Gaussian noise.

    Args:
        n_ensemble: ensemble size ``J`` (>= 2); the update moves in the span of the initial
            ensemble, so ``J`` above the number of unknowns makes it exact for linear problems.
        prior_samples: ``prior_samples(key) -> theta`` draws one unconstrained unknown (the
            structure of ``problem.init_params()``); the initial ensemble. None: ``init_params()
            + prior_std * N(0, I)``.
        prior_std: the spread of that default ensemble (unconstrained units).
        step_size: ``"adaptive"`` (the data-misfit controller; stops at pseudo-time 1) or a
            fixed step ``h > 0`` (runs ``max_steps``).
        tikhonov: add the prior as data (Tikhonov EKI). Its mean and per-coordinate standard
            deviation are those of the initial ensemble.
        perturb: perturbed observations (the stochastic EKI of Iglesias et al.); False gives the
            deterministic update, whose ensemble collapses onto the (regularised) least-squares
            solution in its span.
        max_steps: step budget (default 50 adaptive, 100 fixed).

    Precision: the problem's (float64 under x64). `Solution.value` is ``constrain`` of the
    ensemble mean, ``std`` and ``samples`` the spread and members in physical units. History
    per step: ``loss`` (mean ``Phi`` before the step), ``chi2`` (``2 mean(Phi) / M``),
    ``spread`` (RMS standard deviation of the unconstrained ensemble), ``h`` (step), ``t``.
    ``sol.stats["n_forward"]`` counts forward runs (``J`` per step).
    """

    n_ensemble: int = eqx.field(static=True, default=100)
    prior_samples: Callable | None = eqx.field(static=True, default=None)
    prior_std: float = eqx.field(static=True, default=1.0)
    step_size: Any = eqx.field(static=True, default="adaptive")
    tikhonov: bool = eqx.field(static=True, default=False)
    perturb: bool = eqx.field(static=True, default=True)
    max_steps: int | None = None

    needs_key: ClassVar = True
    requires: ClassVar = (HasForward, _GaussianNoise())

    def __check_init__(self):
        if isinstance(self.n_ensemble, bool) or not isinstance(self.n_ensemble, int) or self.n_ensemble < 2:
            raise ValueError(f"EKI n_ensemble must be an integer >= 2 (the update needs a spread), got "
                             f"{self.n_ensemble!r}.")
        if self.prior_samples is not None and not callable(self.prior_samples):
            raise TypeError("EKI prior_samples must be a function key -> theta, got "
                            f"{type(self.prior_samples).__name__}.")
        if not (isinstance(self.prior_std, (int, float)) and self.prior_std > 0):
            raise ValueError(f"EKI prior_std must be a positive number, got {self.prior_std!r}.")
        if self.step_size != "adaptive" and not (isinstance(self.step_size, (int, float))
                                                 and not isinstance(self.step_size, bool) and self.step_size > 0):
            raise ValueError(f"EKI step_size must be 'adaptive' or a positive number, got {self.step_size!r}.")
        check_nonneg("EKI max_steps", self.max_steps, integer=True)

    def default_max_steps(self, problem):
        return 50 if self.step_size == "adaptive" else 100

    def step_cost(self, problem):
        return {"n_forward": self.n_ensemble}

    # --- helpers --------------------------------------------------------------------------
    def _unravel(self, problem):
        return ravel_pytree(problem.init_params())[1]

    def _whitened_residual(self, problem, u_flat):
        """``Gamma^{-1/2} (y - G(u))`` flattened, (M,)."""
        pred = problem.forward(self._unravel(problem)(u_flat))
        r = jax.tree.map(lambda y, p: (y - p) / problem.noise.sigma, problem.y_obs, pred)
        return ravel_pytree(r)[0]

    # --- init / step / terminate / postprocess ----------------------------------------------
    def init(self, problem, key):
        flat0, unravel = ravel_pytree(problem.init_params())
        k_init, key = jax.random.split(key)
        keys = jax.random.split(k_init, self.n_ensemble)
        if self.prior_samples is None:
            u = flat0 + self.prior_std * jax.random.normal(k_init, (self.n_ensemble, flat0.size), flat0.dtype)
        else:
            u = jax.vmap(lambda k: ravel_pytree(self.prior_samples(k))[0].astype(flat0.dtype))(keys)
            if u.shape != (self.n_ensemble, flat0.size):
                raise ValueError(f"EKI prior_samples(key) must return an unknown like problem.init_params() "
                                 f"({flat0.size} numbers), got {u.shape[1:]} numbers.")
        m0 = jnp.mean(u, 0)
        s0 = jnp.maximum(jnp.std(u, 0), jnp.finfo(u.dtype).eps)
        return EKIState(u, jnp.zeros((), u.dtype), m0, s0, key)

    def step(self, problem, state):
        u, J = state.u, self.n_ensemble
        r = jax.vmap(lambda v: self._whitened_residual(problem, v))(u)  # (J, M)
        M = r.shape[1]
        phi = 0.5 * jnp.sum(r * r, 1)
        if self.step_size == "adaptive":
            h = jnp.minimum(jnp.maximum(M / (2 * jnp.mean(phi)), jnp.sqrt(M / (2 * jnp.maximum(jnp.var(phi),
                                                                                             jnp.finfo(u.dtype).tiny)))),
                            1.0 - state.t)
        else:
            h = jnp.asarray(self.step_size, u.dtype)
        alpha = 1.0 / h
        key, k_eta, k_prior = jax.random.split(state.key, 3)
        # anomalies /sqrt(J-1): U (J, N); A = whitened G anomalies = -(r - mean r) since r = Gamma^-1/2 (y - G)
        U = (u - jnp.mean(u, 0)) / jnp.sqrt(J - 1.0)
        A = -(r - jnp.mean(r, 0)) / jnp.sqrt(J - 1.0)
        res = r
        if self.perturb:
            res = res + jnp.sqrt(alpha) * jax.random.normal(k_eta, r.shape, r.dtype)
        if self.tikhonov:  # the prior as data: residual (m0 - u) / s0, anomalies U / s0
            rp = (state.m0 - u) / state.s0
            if self.perturb:
                rp = rp + jnp.sqrt(alpha) * jax.random.normal(k_prior, u.shape, u.dtype)
            A = jnp.concatenate([A, U / state.s0], 1)
            res = jnp.concatenate([res, rp], 1)
        # u_j += U^T (A A^T + alpha I)^{-1} A res_j  (Woodbury: a J x J solve)
        K = A @ A.T + alpha * jnp.eye(J, dtype=u.dtype)
        w = jnp.linalg.solve(K, A @ res.T)  # (J, J): column j for member j
        new = u + (U.T @ w).T
        spread = jnp.sqrt(jnp.mean(jnp.var(u, 0)))
        info = {"loss": jnp.mean(phi), "chi2": 2 * jnp.mean(phi) / M, "spread": spread, "h": h, "t": state.t + h}
        return EKIState(new, state.t + h, state.m0, state.s0, key), info

    def terminate(self, problem, state):
        if self.step_size == "adaptive":
            done = state.t >= 1.0 - 1e-6
            return done, jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached).astype(jnp.int32)
        return jnp.zeros((), bool), jnp.asarray(RESULTS.successful, jnp.int32)

    def postprocess(self, problem, state):
        unravel = self._unravel(problem)
        members = jax.vmap(lambda v: problem.constrain(unravel(v)))(state.u)
        value = problem.constrain(unravel(jnp.mean(state.u, 0)))
        std = jax.tree.map(lambda m: jnp.std(m, 0), members)
        return Estimate(value, std=std, samples=members)
