"""Plug-and-play reconstruction: proximal gradient and ADMM with a prior's proximal operator.

Any prior with a ``prox`` serves (`invsolve.priors.AbstractProxPrior`: the learned
`invsolve.priors.LPN`, `TV`, `L1`): ``prox(v) = argmin_x 1/2 ||x - v||^2 + R(x)`` at the
prior's own strength. The data term is the problem's negative log-likelihood
``D(x) = problem.neg_log_likelihood(x)`` (for Gaussian noise ``1/2 ||(A x - y) / sigma||^2``).

* `PnPPGD`: ``x_{k+1} = prox(x_k - eta grad D(x_k))``, proximal gradient on
  ``F(x) = D(x) + R(x) / eta``.
* `PnPADMM`: ``x = argmin D(x) + rho/2 ||x - (z - u)||^2`` (a Newton step solved by ``cg_steps``
  conjugate-gradient steps, exact for a linear forward model), ``z = prox(x + u)``,
  ``u += x - z``: ADMM on ``F(z) = D(z) + rho R(z)``.

Because an LPN's ``R`` can be evaluated (`LPN.log_prior`), the objective ``F`` of the
iterates is available (`objective`; ``track_objective=True`` records it every step, at the
cost of one network inversion per step). Fang, Buchanan, Sulam (ICLR 2024, Sec. 4) prove that
both iterations with an LPN converge to stationary points of ``F`` under conditions on the
step: PGD for ``eta < 1/L`` with ``L`` the Lipschitz constant of ``grad D`` (the default step
is ``0.99 / L`` from power iterations on the Hessian of ``D``), ADMM for a penalty ``rho``
large enough relative to ``L``. The LPN of noise level ``sigma`` has ``R = sigma^2 (-log p)``,
so ``rho = 1 / sigma^2`` (the default when the prior knows its ``sigma``) makes ``F`` the
MAP objective of that prior. Computes in the dtype of the data; ``x`` has the unknown's shape.
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp

from .._problem import HasForward
from .._solution import RESULTS, Estimate
from .._solver import AbstractSolver, ArrayUnknown, check_nonneg
from ..priors import AbstractProxPrior
from ..linalg.krylov import cg_fixed
from ..linalg.least_squares import check_power_iterations, power_norm_sq


def _check_prior(solver, prior):
    if not isinstance(prior, AbstractProxPrior):
        raise TypeError(f"{solver} needs a prior with a proximal operator (an invsolve.priors.AbstractProxPrior "
                        f"such as LPN, TV or L1); got {type(prior).__name__}, which has none.")


def _hvp(D, x):
    return lambda v: jax.jvp(jax.grad(D), (x,), (v,))[1]


class PnPState(eqx.Module):
    x: jax.Array
    z: jax.Array
    u: jax.Array
    step_size: jax.Array  # eta (PGD) or 1 / rho (ADMM)
    change: jax.Array
    data: jax.Array


def _change(new, old):
    dn, n = jnp.linalg.norm(new - old), jnp.linalg.norm(new)
    return jnp.where(n > 0, dn / jnp.where(n > 0, n, 1), jnp.where(dn > 0, jnp.inf, 0)).astype(dn.dtype)


class _PnP(AbstractSolver):
    prior: AbstractProxPrior
    max_steps: int | None = 100
    rtol: float | None = None
    track_objective: bool = False

    @property
    def requires(self):
        return (HasForward, ArrayUnknown(self.prior))

    def default_max_steps(self, problem):
        return 100

    def terminate(self, problem, state):
        bad = jnp.isnan(state.change)  # inf marks "no step yet"; non-finite iterates give NaN
        done = jnp.array(False) if self.rtol is None else state.change <= self.rtol
        ok = RESULTS.successful if self.rtol is None else jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached)
        return done | bad, jnp.where(bad, RESULTS.nonfinite, ok).astype(jnp.int32)

    def objective(self, problem, x, step_size=None):
        """``F(x) = D(x) + R(x) / t`` with ``t`` the solver's step (``eta`` or ``1 / rho``)."""
        t = self._step_size(problem, jnp.asarray(problem.init_params())) if step_size is None else step_size
        return problem.neg_log_likelihood(x) + self.prior.log_density_neg(x) / t

    def _info(self, problem, st, x):
        info = {"change": st.change, "data": st.data}
        if self.track_objective:
            info["objective"] = self.objective(problem, x, st.step_size)
        return info


class PnPPGD(_PnP):
    """Plug-and-play proximal gradient: ``x_{k+1} = prox(x_k - eta grad D(x_k))`` from ``x_0``
    = the problem's ``init_params()`` (zeros for a linear inverse problem).

    Args:
        prior: a prior with ``prox`` (`LPN`, `TV`, `L1`, ...).
        eta: the step size; None (default) takes ``0.99 / L``, ``L`` estimated by
            ``power_iterations`` power iterations on the Hessian of ``D`` at ``x_0`` (exact
            for a linear forward model).
        max_steps: iterations (default 100). rtol: stop when ``||x_{k+1} - x_k|| <= rtol
            ||x_{k+1}||`` (None: run all steps).
        track_objective: record ``F(x_k) = D + R / eta`` every step (needs ``R``).
    History: ``change``, ``data`` (= ``D(x_k)``) and, if tracked, ``objective``.
    """

    eta: float | None = None
    power_iterations: int = 30

    def __check_init__(self):
        _check_prior("PnPPGD", self.prior)
        check_nonneg("PnPPGD max_steps", self.max_steps, integer=True)
        check_nonneg("PnPPGD rtol", self.rtol)
        check_nonneg("PnPPGD eta", self.eta)
        if self.eta is not None and not isinstance(self.eta, jax.core.Tracer) and not float(self.eta) > 0:
            raise ValueError(f"PnPPGD eta (the step size) must be positive, got {self.eta!r}.")
        check_power_iterations("PnPPGD", self.power_iterations)

    def _step_size(self, problem, x0):
        if self.eta is not None:
            return jnp.asarray(self.eta, x0.dtype)
        L = power_norm_sq(_hvp(problem.neg_log_likelihood, x0), x0.shape, x0.dtype, self.power_iterations)
        return (0.99 / jnp.where(L > 0, L, 1)).astype(x0.dtype)

    def init(self, problem, key=None):
        x0 = jnp.asarray(problem.init_params())
        D = problem.neg_log_likelihood
        inf = jnp.full((), jnp.inf, x0.dtype)
        return PnPState(x0, x0, jnp.zeros_like(x0), self._step_size(problem, x0), inf, D(x0).astype(x0.dtype))

    def step(self, problem, state):
        D = problem.neg_log_likelihood
        x = self.prior.prox(state.x - state.step_size * jax.grad(D)(state.x)).astype(state.x.dtype)
        new = PnPState(x, x, state.u, state.step_size, _change(x, state.x), D(x).astype(x.dtype))
        return new, self._info(problem, new, x)

    def postprocess(self, problem, state):
        return Estimate(problem.constrain(state.x))


class PnPADMM(_PnP):
    """Plug-and-play ADMM (scaled form), from ``x_0 = z_0`` = ``init_params()``, ``u_0 = 0``::

        x_{k+1} = argmin_x D(x) + rho/2 ||x - (z_k - u_k)||^2
        z_{k+1} = prox(x_{k+1} + u_k)
        u_{k+1} = u_k + x_{k+1} - z_{k+1}

    The x-update is one Newton step from ``x_k``, its system ``(H_D + rho I) d = -grad``
    solved by ``cg_steps`` conjugate-gradient steps with Hessian-vector products (exact for
    a linear forward model once CG has converged). The estimate is ``z`` (in the range of
    the prox, where ``R`` is finite).

    Args:
        prior: a prior with ``prox``.
        rho: the penalty, the weight of ``R`` against ``D`` in ``F = D + rho R``; None uses
            ``1 / prior.sigma**2`` when the prior has a noise level (an LPN).
        max_steps (default 100), rtol (on ``z``), track_objective: as `PnPPGD`.
        cg_steps: CG steps per x-update (default 20).
    History: ``change`` (of ``z``), ``data`` (= ``D(z_k)``) and, if tracked, ``objective``.
    """

    rho: float | None = None
    cg_steps: int = 20

    def __check_init__(self):
        _check_prior("PnPADMM", self.prior)
        check_nonneg("PnPADMM max_steps", self.max_steps, integer=True)
        check_nonneg("PnPADMM rtol", self.rtol)
        check_nonneg("PnPADMM cg_steps", self.cg_steps, integer=True, allow_none=False)
        if self.rho is None:
            if getattr(self.prior, "sigma", None) is None:
                raise ValueError("PnPADMM needs rho (the penalty) for a prior without a noise level sigma; "
                                 "pass rho=... (larger rho: stronger prior).")
        else:
            check_nonneg("PnPADMM rho", self.rho)
            if not isinstance(self.rho, jax.core.Tracer) and not float(self.rho) > 0:
                raise ValueError(f"PnPADMM rho must be positive, got {self.rho!r}.")

    def _rho(self, dtype):
        rho = 1.0 / self.prior.sigma**2 if self.rho is None else self.rho
        return jnp.asarray(rho, dtype)

    def _step_size(self, problem, x0):
        return 1.0 / self._rho(x0.dtype)

    def init(self, problem, key=None):
        x0 = jnp.asarray(problem.init_params())
        inf = jnp.full((), jnp.inf, x0.dtype)
        D = problem.neg_log_likelihood(x0).astype(x0.dtype)
        return PnPState(x0, x0, jnp.zeros_like(x0), self._step_size(problem, x0), inf, D)

    def step(self, problem, state):
        D = problem.neg_log_likelihood
        rho = 1.0 / state.step_size
        v = state.z - state.u
        hvp = _hvp(D, state.x)
        g = jax.grad(D)(state.x) + rho * (state.x - v)
        d = cg_fixed(lambda w: hvp(w) + rho * w, -g, self.cg_steps)
        x = state.x + d
        z = self.prior.prox(x + state.u).astype(x.dtype)
        u = state.u + x - z
        new = PnPState(x, z, u, state.step_size, _change(z, state.z), D(z).astype(z.dtype))
        return new, self._info(problem, new, z)

    def postprocess(self, problem, state):
        return Estimate(problem.constrain(state.z))

