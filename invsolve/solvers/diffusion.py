"""Diffusion posterior samplers: score-SDE with projection, DPS, RED-diff, DiffusionMBIR.

All take a score prior (`invsolve.priors.ScorePrior`, or the analytic
`invsolve.priors.GaussianMixture`) and a problem with a forward model
(``y = forward(x) + sigma e``), and run ``n_samples`` particles at once (``vmap``; the
particle axis shards like any batch axis). One solver step is one reverse-diffusion step
from ``t_i`` to ``t_{i+1}`` on the grid ``t_i = 1 - (1 - t_min) i / (n_steps - 1)``, the
last step going to ``t = 0``. The `invsolve.Solution` holds the posterior mean (``value``),
the pixel-wise standard deviation over particles (``std``) and the particles (``samples``,
``(n_samples, *shape)``). They compute in the dtype of the problem's unknown.

Every reverse step uses the *ancestral* update: given ``x_t`` and Tweedie's estimate
``x0 = E[x_0 | x_t]``, draw ``x_s`` (``s < t``) from the Gaussian ``q(x_s | x_t, x_0 = x0)`` of
the forward process (DDPM's posterior step for `VP`, SMLD's reverse-diffusion step for
`VE`): mean ``(a_ts s_s^2 x_t + a_s v_ts x0) / s_t^2``, variance ``v_ts s_s^2 / s_t^2``, with
``a_ts = a_t / a_s`` and ``v_ts = s_t^2 - a_ts^2 s_s^2``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._problem import HasForward, check_finite_data
from .._solution import RESULTS, Estimate
from .._solver import AbstractOptaxSolver, AbstractSolver, ArrayUnknown, check_nonneg, key_optimizer
from .._linop import linearize
from ..linalg.krylov import cg_fixed, cgls_fixed
from ..priors.score import AbstractScorePrior, _check_steps, _clip, _pc_step, _times, ancestral


# --------------------------------------------------------------------------------------
# the shared pieces
# --------------------------------------------------------------------------------------
def _check_prior(name, prior):
    if not isinstance(prior, AbstractScorePrior):
        raise TypeError(f"{name} needs a score prior (invsolve.priors.ScorePrior or GaussianMixture), "
                        f"got {type(prior).__name__}.")


def _linear_parts(problem, x):
    """``(J, J^T)`` of the forward model at ``x`` (the operator itself when it is linear)."""
    _, J, JT = linearize(problem.forward, x)
    return J, JT


# A posterior sample's normalised chi-square is about 1; an under-guided sampler (close to the
# prior) may sit at 10-100 on few data; a run whose particles miss the data by a hundred noise
# standard deviations per datum on average has not sampled the posterior.
MISFIT_LIMIT = 1e4


class DiffusionState(eqx.Module):
    x: jax.Array  # (n_samples, *shape) particles
    x0: jax.Array  # Tweedie estimate of the last step
    i: jax.Array
    key: jax.Array
    extra: Any = None  # solver-specific (optimizer state, ADMM variables)


class _Diffusion(AbstractSolver):
    needs_key: ClassVar = True
    prior: Any
    n_steps: int = 500
    n_samples: int = 8

    def _check(self):
        name = type(self).__name__
        _check_prior(name, self.prior)
        _check_steps(name, self.n_steps)
        if not (isinstance(self.n_samples, int) and self.n_samples >= 1):
            raise ValueError(f"{name}: n_samples must be a positive integer, got {self.n_samples!r}.")

    @property
    def requires(self):
        return (HasForward, ArrayUnknown(self.prior))

    def prepare(self, problem):
        check_finite_data(type(self).__name__, "y_obs", problem.y_obs, "y_obs (the measurements)")
        return self

    def default_max_steps(self, problem):
        return self.n_steps

    def terminate(self, problem, state):
        bad = ~jnp.all(jnp.isfinite(state.x))
        finished = state.i >= self.n_steps  # a fixed schedule: cut short, it has not sampled the posterior
        result = jnp.where(bad, RESULTS.nonfinite, jnp.where(finished, RESULTS.successful, RESULTS.max_steps_reached))
        return finished | bad, result.astype(jnp.int32)

    def check_result(self, problem, state, result):
        """A finished run whose particles do not fit the data (mean normalised chi-square
        ``||(forward(x) - y) / sigma||^2 / m`` above `MISFIT_LIMIT`) reports
        ``data_misfit``: e.g. an absurd guidance weight, which leaves a finite but wrong answer."""
        chi2 = jnp.mean(jax.vmap(problem.normalized_chi2)(state.x))
        return jnp.where((result == RESULTS.successful) & (chi2 > MISFIT_LIMIT), RESULTS.data_misfit, result)

    def postprocess(self, problem, state):
        x = jax.vmap(problem.constrain)(state.x)
        return Estimate(jnp.mean(x, axis=0), jnp.std(x, axis=0), x)

    def _residual(self, problem, x):
        y = problem.y_obs
        r = jax.vmap(problem.forward)(x) - y
        return jnp.mean(jnp.sqrt(jnp.sum(r.reshape(r.shape[0], -1) ** 2, axis=1))) / jnp.linalg.norm(y)

    def _start(self, problem, key, shape=None):
        x0 = jnp.asarray(problem.init_params())
        shape = (self.n_samples, *(x0.shape if shape is None else shape))
        k0, key = jax.random.split(key)
        x = self.prior.sde.terminal(k0, shape, x0.dtype)
        return x, key


# --------------------------------------------------------------------------------------
# DPS
# --------------------------------------------------------------------------------------
class DPS(_Diffusion):
    """Diffusion posterior sampling (Chung et al., ICLR 2023, Alg. 1):
    ``x_{i+1} = ancestral(x_i, x0(x_i)) - zeta grad_{x_i} ||y - A(x0(x_i))||`` with Tweedie's
    ``x0`` (the gradient through the score network, per particle; note the norm, not its
    square, as in the authors' code, so ``zeta`` is in image units per unit of the
    forward model's gain).

    Args:
        prior: a score prior whose ``shape`` is the unknown's shape.
        n_steps: reverse steps (the paper: 1000). zeta: guidance step (paper: 0.3-1.0 for
            images in [-1, 1] and unit-gain operators; scale it by the gain of yours).
        n_samples: particles. clip: ``(lo, hi)`` bounds for ``x0`` in the ancestral step
            (the authors clip to the data range), or None.
    History: ``residual`` (mean ``||A x0 - y|| / ||y||``).
    """

    zeta: float = 1.0
    clip: tuple | None = None

    def __check_init__(self):
        self._check()
        check_nonneg("DPS zeta", self.zeta)
        if self.zeta is None:
            raise ValueError("DPS zeta must be a non-negative number, got None.")

    def step_cost(self, problem):
        return {"nfe": 1, "n_forward": 2, "network_gradients": 1}

    def init(self, problem, key):
        x, key = self._start(problem, key)
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        t, a, s, a_n, s_n = _times(self.prior.sde, state.i, self.n_steps, state.x.dtype)
        y = problem.y_obs

        def norms(x):
            x0 = self.prior.denoise(x, t)
            r = jax.vmap(problem.forward)(x0) - y
            nrm = jnp.sqrt(jnp.sum(r.reshape(r.shape[0], -1) ** 2, axis=1))
            return jnp.sum(nrm), (x0, nrm)

        (_, (x0, nrm)), g = jax.value_and_grad(norms, has_aux=True)(state.x)
        key, kz = jax.random.split(state.key)
        z = jax.random.normal(kz, state.x.shape, state.x.dtype)
        x = ancestral(state.x, _clip(x0, self.clip), a, s, a_n, s_n, z) - self.zeta * g
        return DiffusionState(x, x0, state.i + 1, key), {"residual": jnp.mean(nrm) / jnp.linalg.norm(y)}


# --------------------------------------------------------------------------------------
# score-SDE with projection
# --------------------------------------------------------------------------------------
class ScoreSDE(_Diffusion):
    """Predictor-corrector sampling with a data-consistency projection after every step
    (Song et al., ICLR 2021, App. I.2; Song et al., ICLR 2022 for linear measurements): the
    ancestral predictor, ``n_corrector`` Langevin steps (signal-to-noise ``snr``, paper 0.16),
    then ``x <- x + lam d`` with ``d`` from ``cg_steps`` CGLS iterations on
    ``min ||A d - (y_t - A x)||``, where ``y_t = a_t y + s_t A z`` is the data diffused to the
    current time (``z ~ N(0, I)``; at the last step ``y_t = y``). ``lam = 1`` with converged
    CG is the exact projection onto ``{A x = y_t}``. Nonlinear forward models use their
    linearisation at ``x``. With ``skip_last_projection`` (default) the last step returns
    the predictor's output at ``t = 0`` (Tweedie's estimate) unprojected: projecting onto
    noisy data fits the noise. Chosen on the validation slab (64^2 CT, 30 views, 1 % noise,
    500 steps, 8 samples, the 8 slices z 128-135): 37.71 dB unprojected against 35.84 dB
    projected, better on every slice (``python benchmarks/validate_score_sde.py``).

    History: ``residual``.
    """

    snr: float = 0.16
    n_corrector: int = 1
    lam: float = 1.0
    cg_steps: int = 5
    clip: tuple | None = None
    skip_last_projection: bool = True

    def __check_init__(self):
        self._check()
        for name in ("snr", "lam"):
            check_nonneg(f"ScoreSDE {name}", getattr(self, name), allow_none=False)
        for name in ("n_corrector", "cg_steps"):
            check_nonneg(f"ScoreSDE {name}", getattr(self, name), integer=True, allow_none=False)

    def step_cost(self, problem):  # CGLS: 2 cg_steps + 1, the residual and the diffused data: 2
        return {"nfe": 1 + self.n_corrector, "n_forward": 2 * self.cg_steps + 3, "network_gradients": 0}

    def init(self, problem, key):
        x, key = self._start(problem, key)
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        key, kp, kz = jax.random.split(state.key, 3)
        x, x0 = _pc_step(self.prior, state.x, state.i, kp, self.n_steps, self.snr, self.n_corrector, self.clip)
        _, _, _, a_n, s_n = _times(self.prior.sde, state.i, self.n_steps, x.dtype)
        projected = self._project(problem, x, a_n, s_n, kz)
        x = jnp.where(s_n > 0, projected, x) if self.skip_last_projection else projected
        return DiffusionState(x, x0, state.i + 1, key), {"residual": self._residual(problem, x0)}

    def _project(self, problem, x, a, s, key):
        y = problem.y_obs
        zero = jnp.zeros_like(x[0])

        def one(xi, zi):
            J, JT = _linear_parts(problem, xi)
            A0, _ = _linear_parts(problem, zero)
            yt = a * y + s * A0(zi)
            d = cgls_fixed(J, JT, yt - problem.forward(xi), self.cg_steps)
            return xi + self.lam * d

        return jax.vmap(one)(x, jax.random.normal(key, x.shape, x.dtype))


# --------------------------------------------------------------------------------------
# RED-diff
# --------------------------------------------------------------------------------------
class REDDiff(AbstractOptaxSolver, _Diffusion):
    """RED-diff (Mardani et al., ICLR 2024, Alg. 1): variational posterior mode-seeking.
    Each step draws ``t`` (descending from 1 to ``t_min``) and ``e``, forms
    ``x_t = a mu + s e`` and takes one ``optimizer`` step on
    ``lam (s / a) <sg(eps(x_t, t) - e), mu> + 1/2 ||y - A mu||^2``
    (the denoiser-weighted regularisation; sums over pixels and data), from
    ``mu_0 = A^+ y`` (``init_cg_steps`` CGLS iterations; the authors' choice). Particles
    (``n_samples``) differ in their noise draws.

    Args:
        optimizer: any optax transformation (paper: Adam, lr 0.1 for images in [-1, 1]).
        lam: regularisation weight (paper: 0.25 with mean-normalised losses).
    History: ``residual`` (``||A mu - y|| / ||y||``), ``loss``.
    """

    optimizer: Any = None
    lam: float = 0.25
    init_cg_steps: int = 30
    n_samples: int = 1

    def __check_init__(self):
        self._check()
        if self.optimizer is None:
            raise ValueError("REDDiff needs an optax optimizer, e.g. optimizer=optax.adam(0.1).")
        check_nonneg("REDDiff lam", self.lam, allow_none=False)
        check_nonneg("REDDiff init_cg_steps", self.init_cg_steps, integer=True, allow_none=False)

    def step_cost(self, problem):  # (the starting CGLS, 2 init_cg_steps + 2, is not included)
        return {"nfe": 1, "n_forward": 2, "network_gradients": 0}

    def init_params(self, problem):
        x0 = jnp.asarray(problem.init_params())
        return jnp.zeros((self.n_samples, *x0.shape), x0.dtype)

    def prepare(self, problem):
        _Diffusion.prepare(self, problem)
        return eqx.tree_at(lambda s: s.optimizer, self,
                           key_optimizer(self.optimizer, jax.eval_shape(self.init_params, problem)))

    def init(self, problem, key):
        x0 = jnp.asarray(problem.init_params())
        J, JT = _linear_parts(problem, x0)
        mu = x0 + cgls_fixed(J, JT, problem.y_obs - problem.forward(x0), self.init_cg_steps)
        mu = jnp.broadcast_to(mu, (self.n_samples, *mu.shape))
        return DiffusionState(mu, mu, jnp.zeros((), jnp.int32), key, self.optimizer.init(mu))

    def step(self, problem, state):
        t, a, s, _, _ = _times(self.prior.sde, state.i, self.n_steps, state.x.dtype)
        key, ke = jax.random.split(state.key)
        e = jax.random.normal(ke, state.x.shape, state.x.dtype)
        e_hat = jax.lax.stop_gradient(self.prior.eps(a * state.x + s * e, t))
        y = problem.y_obs

        def loss(mu):
            r = jax.vmap(problem.forward)(mu) - y
            return self.lam * (s / a) * jnp.sum((e_hat - e) * mu) + 0.5 * jnp.sum(r * r)

        val, g = jax.value_and_grad(loss)(state.x)
        upd, opt_state = self.optimizer.update(g, state.extra, state.x)
        mu = optax.apply_updates(state.x, upd)
        return (DiffusionState(mu, mu, state.i + 1, key, opt_state),
                {"residual": self._residual(problem, mu), "loss": val / self.n_samples})


# --------------------------------------------------------------------------------------
# DiffusionMBIR
# --------------------------------------------------------------------------------------
def _dz(x):
    """Differences along the slices of one stack ``(n_slices, ...)``."""
    return x[1:] - x[:-1]


class DiffusionMBIR(_Diffusion):
    """3D reconstruction with a 2D prior (Chung et al., CVPR 2023): the unknown is a stack
    ``(n_slices, H, W)`` with ``(H, W)`` the prior's shape; every step applies the
    predictor-corrector step to all slices at once (independently, the 2D prior), then one
    ADMM iteration for ``1/2 ||A x - y||^2 + tv_z ||D_z x||_1`` (``D_z``: differences along
    the slices) from the current ``x``::

        x <- x + cg_steps CG steps on (A^T A + rho D_z^T D_z) dx = A^T (y - A x) + rho D_z^T (z - u - D_z x)
        z <- shrink(D_z x + u, tv_z / rho);   u <- u + D_z x - z

    ``tv_z = 0`` gives per-slice sampling with data consistency (the independent baseline).
    Paper: lambda 0.04, rho 10 (their operator scaling), one CG step.
    """

    tv_z: float = 0.04
    rho: float = 10.0
    cg_steps: int = 1
    snr: float = 0.16
    n_corrector: int = 1
    n_samples: int = 1
    clip: tuple | None = None

    def __check_init__(self):
        self._check()
        for name in ("tv_z", "rho", "snr"):
            check_nonneg(f"DiffusionMBIR {name}", getattr(self, name), allow_none=False)
        for name in ("cg_steps", "n_corrector"):
            check_nonneg(f"DiffusionMBIR {name}", getattr(self, name), integer=True, allow_none=False)

    def step_cost(self, problem):  # per slice stack: nfe per slice
        return {"nfe": 1 + self.n_corrector, "n_forward": 2 * self.cg_steps + 2, "network_gradients": 0}

    @property
    def requires(self):
        return (HasForward, ArrayUnknown(self.prior, stack=True))

    def init(self, problem, key):
        x, key = self._start(problem, key)
        dz = jnp.zeros_like(jax.vmap(_dz)(x))
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key, (dz, dz))

    def step(self, problem, state):
        n, nz = state.x.shape[:2]
        key, kp = jax.random.split(state.key)
        flat = state.x.reshape(n * nz, *self.prior.shape)
        x, x0 = _pc_step(self.prior, flat, state.i, kp, self.n_steps, self.snr, self.n_corrector, self.clip)
        x, x0 = x.reshape(state.x.shape), x0.reshape(state.x.shape)
        z, u = state.extra
        y, rho, lam = problem.y_obs, self.rho, self.tv_z

        def admm(xi, zi, ui):
            J, JT = _linear_parts(problem, xi)
            N = lambda v: JT(J(v)) + rho * _dzT(_dz(v), v.shape)
            b = JT(y - problem.forward(xi)) + rho * _dzT(zi - ui - _dz(xi), xi.shape)
            xi = xi + cg_fixed(N, b, self.cg_steps)
            v = _dz(xi) + ui
            zi = jnp.sign(v) * jnp.maximum(jnp.abs(v) - lam / rho, 0.0)
            return xi, zi, ui + _dz(xi) - zi

        x, z, u = jax.vmap(admm)(x, z, u)
        return DiffusionState(x, x0, state.i + 1, key, (z, u)), {"residual": self._residual(problem, x0)}


def _dzT(d, shape):
    """The adjoint of `_dz` (one stack)."""
    zero = jnp.zeros((1, *shape[1:]), d.dtype)
    return jnp.concatenate([zero, d]) - jnp.concatenate([d, zero])

