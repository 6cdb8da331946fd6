"""Diffusion posterior samplers that split prior and data: DDS, DiffPIR, DAPS, PnP-DM, and
STSL's second-order guidance.

Same contract as `invsolve.solvers.diffusion` (a score prior, ``n_samples`` particles under
``vmap``, `Solution` with the particles' mean, standard deviation and the particles; the
dtype of the problem's unknown). They differ in how the data enter:

* `DDS` and `DiffPIR` correct Tweedie's estimate by a data-consistency solve (CGLS / CG) and
  continue the reverse process from the corrected estimate (no back-propagation through the
  network);
* `DAPS` and `PnPDM` alternate between the prior (a denoising run of the diffusion model from
  a noise level) and the likelihood (Langevin dynamics, or an exact Gaussian draw) while the
  noise level anneals;
* `STSL` is DPS with the second-order Tweedie correction: it guides by the expected data
  misfit under the Gaussian ``N(x0_hat, Cov[x_0 | x_t])``, whose covariance term is a
  Hutchinson estimate through the network.

Noise levels ``sigma`` are in the units of the unknown: ``z = x_0 + sigma e``. A VP prior
denoises ``z`` at ``t(sigma)`` with ``s(t) / a(t) = sigma`` after scaling by ``a(t)``
(`denoise_at`). Data terms are whitened by the noise's ``sigma`` (``GaussianNoise``), so a
weighted least-squares problem is handled like a plain one.

Every sampler reports its work in ``sol.stats``: ``nfe`` (network evaluations per particle;
a back-propagation through the network is not counted, ``network_gradients`` counts those)
and ``n_forward`` (applications of the forward model or its adjoint/transpose per particle).
"""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp

from .._problem import HasLinearOperator, check_finite_data
from .._solution import Estimate
from .._solver import ArrayUnknown, check_nonneg
from .._linop import linearize
from ..linalg.krylov import cg_fixed, cgls_fixed
from ..linalg.least_squares import power_norm_sq
from ..priors.score import _clip, _times, ancestral
from .diffusion import DiffusionState, _Diffusion, _dz, _dzT


# --------------------------------------------------------------------------------------
# noise levels and whitened data terms
# --------------------------------------------------------------------------------------
def denoise_at(prior, z, sigma):
    """``E[x_0 | x_0 + sigma e = z]`` from the score prior (``z``: ``(..., *prior.shape)``)."""
    t = prior.sde.t_of_sigma(sigma).astype(z.dtype)
    a, _ = prior.sde.mean_std(t)
    return prior.denoise(a * z, t)


def _whitened(problem, x):
    """``(J, J^T, r)`` of the whitened data term ``||(y - forward(x)) / sigma||^2 / 2`` at ``x``:
    ``J = d forward / sigma``, ``r = (y - forward(x)) / sigma``."""
    sig = problem.noise.sigma
    y, J, JT = linearize(problem.forward, x)
    return (lambda v: J(v) / sig), (lambda w: JT(w / sig)), (problem.y_obs - y) / sig


def _geometric(hi, lo, k, n):
    """``hi (lo / hi)^(k / (n - 1))``, ``k = 0 .. n - 1`` (``hi`` when ``n == 1``)."""
    return hi * (lo / hi) ** (jnp.asarray(k, jnp.result_type(float)) / max(n - 1, 1))


def _norm_sq(v):
    return jnp.sum(v * v)


class _Sampler(_Diffusion):
    """The common checks: a score prior, the unknown of its shape, Gaussian noise, finite data.
    One particle by default; ``clip``: ``(lo, hi)`` bounds for Tweedie's estimates, or None."""

    n_samples: int = 1
    clip: tuple | None = None

    def prepare(self, problem):
        name = type(self).__name__
        check_finite_data(name, "y_obs", problem.y_obs, "y_obs (the measurements)")
        if not hasattr(getattr(problem, "noise", None), "sigma"):
            raise TypeError(f"{name} needs Gaussian measurement noise (problem.noise.sigma), got "
                            f"{type(getattr(problem, 'noise', None)).__name__}.")
        return self

    def _check_counts(self, *names):
        for n in names:
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{type(self).__name__}: {n} must be a positive integer, got {v!r}.")

    def _check_nonneg(self, *names):
        for n in names:
            check_nonneg(f"{type(self).__name__} {n}", getattr(self, n), allow_none=False)


# --------------------------------------------------------------------------------------
# DDS
# --------------------------------------------------------------------------------------
class DDS(_Sampler):
    """Decomposed diffusion sampling (Chung, Lee & Ye, ICLR 2024, Alg. 1): DDIM with
    stochasticity ``eta`` in which Tweedie's estimate ``x0 = E[x_0 | x_t]`` is replaced by
    ``x0 + d``, ``d`` from ``cg_steps`` CGLS iterations on ``min ||(A (x0 + d) - y) / sigma||``
    from ``d = 0`` (the Krylov subspace around ``x0``; few steps keep it near the data
    manifold), no gradient through the network. The step from ``t`` to ``s < t``::

        eps = (x_t - a_t x0) / s_t;  c = eta sqrt(v_ts) s_s / s_t
        x_s = a_s (x0 + d) + sqrt(s_s^2 - c^2) eps + c z

    (``eta = 1``: the ancestral step's variance). The last step returns ``x0 + d``. Needs a
    linear forward model (`HasLinearOperator`). ``tv_z > 0`` (an unknown that is a stack of
    slices ``(n_slices, *prior.shape)``): the data step is ``admm_steps`` ADMM iterations of
    ``1/2 ||(A x - y) / sigma||^2 + tv_z ||D_z x||_1`` from ``x0`` with ``cg_steps`` CG steps
    each (the paper's 3D variant, TV along the slices).

    Paper: 50 steps (NFE 50), M = 5 CG steps, eta 0.15 (CT; images in [-1, 1]).
    Cost per step: 1 network evaluation, ``2 cg_steps + 2`` applications of ``A`` or ``A^T``.
    """

    n_steps: int = 50
    cg_steps: int = 5
    eta: float = 0.15
    tv_z: float = 0.0
    rho: float = 1.0
    admm_steps: int = 1

    def __check_init__(self):
        self._check()
        self._check_counts("cg_steps", "admm_steps")
        self._check_nonneg("eta", "tv_z", "rho")

    @property
    def requires(self):
        return (HasLinearOperator, ArrayUnknown(self.prior, stack=self.tv_z > 0))

    def step_cost(self, problem):
        k = self.admm_steps if self.tv_z > 0 else 1
        return {"nfe": 1, "n_forward": k * (2 * self.cg_steps + 2), "network_gradients": 0}

    def init(self, problem, key):
        x, key = self._start(problem, key)
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        t, a, s, a_n, s_n = _times(self.prior.sde, state.i, self.n_steps, state.x.dtype)
        shape = state.x.shape
        flat = state.x.reshape(-1, *self.prior.shape)
        x0 = _clip(self.prior.denoise(flat, t), self.clip).reshape(shape)
        eps = (state.x - a * x0) / s
        x0d = jax.vmap(lambda v: self._data_step(problem, v))(x0)
        key, kz = jax.random.split(state.key)
        v_ts = jnp.maximum(s**2 - (a / a_n) ** 2 * s_n**2, 0.0)
        c = self.eta * jnp.sqrt(v_ts) * s_n / s
        z = jax.random.normal(kz, shape, state.x.dtype)
        x = a_n * x0d + jnp.sqrt(jnp.maximum(s_n**2 - c**2, 0.0)) * eps + c * z
        return DiffusionState(x, x0d, state.i + 1, key), {"residual": self._residual(problem, x0d)}

    def _data_step(self, problem, x0):
        J, JT, r = _whitened(problem, x0)
        if self.tv_z == 0:
            return x0 + cgls_fixed(J, JT, r, self.cg_steps)
        rho, lam = self.rho, self.tv_z
        N = lambda v: JT(J(v)) + rho * _dzT(_dz(v), v.shape)  # noqa: E731

        def admm(carry, _):
            x, z, u = carry
            b = JT(r - J(x - x0)) + rho * _dzT(z - u - _dz(x), x.shape)
            x = x + cg_fixed(N, b, self.cg_steps)
            v = _dz(x) + u
            z = jnp.sign(v) * jnp.maximum(jnp.abs(v) - lam / rho, 0.0)
            return (x, z, u + _dz(x) - z), None

        dz = _dz(x0)
        (x, _, _), _ = jax.lax.scan(admm, (x0, dz, jnp.zeros_like(dz)), None, length=self.admm_steps)
        return x


# --------------------------------------------------------------------------------------
# DiffPIR
# --------------------------------------------------------------------------------------
class DiffPIR(_Sampler):
    """Diffusion plug-and-play image restoration (Zhu et al., CVPRW 2023, Alg. 1): half-
    quadratic splitting along the reverse process. At ``t`` with noise level
    ``sigma_t = s_t / a_t``: ``x0 = E[x_0 | x_t]``, then the data sub-problem

        x0_hat = argmin_x ||(A x - y) / sigma||^2 + lam / sigma_t^2 ||x - x0||^2

    (the paper's ``rho_t = lam sigma_y^2 / sigma_t^2``, eq. 13), solved by ``cg_steps`` CG
    steps on the normal equations (exact for linear models once converged; a non-linear model
    is linearised at ``x0``: one Gauss-Newton step), then the re-noising step with the
    effective noise ``eps_hat = (x_t - a_t x0_hat) / s_t`` mixed with fresh noise ``z``::

        x_s = a_s x0_hat + s_s (sqrt(1 - zeta) eps_hat + sqrt(zeta) z)

    The last step returns ``x0_hat``. Paper: 100 steps (NFE 100), lam 1-10, zeta 0.3-1.
    Cost per step: 1 network evaluation, ``2 cg_steps + 2`` forward/adjoint applications.
    """

    n_steps: int = 100
    lam: float = 1.0
    zeta: float = 0.3
    cg_steps: int = 10

    def __check_init__(self):
        self._check()
        self._check_counts("cg_steps")
        self._check_nonneg("lam", "zeta")
        if self.zeta > 1:
            raise ValueError(f"DiffPIR: zeta mixes fresh noise into the re-noising step and must be in [0, 1], "
                             f"got {self.zeta!r}.")

    def step_cost(self, problem):
        return {"nfe": 1, "n_forward": 2 * self.cg_steps + 2, "network_gradients": 0}

    def init(self, problem, key):
        x, key = self._start(problem, key)
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        t, a, s, a_n, s_n = _times(self.prior.sde, state.i, self.n_steps, state.x.dtype)
        x0 = _clip(self.prior.denoise(state.x, t), self.clip)
        mu = self.lam * (a / s) ** 2

        def data(v):
            J, JT, r = _whitened(problem, v)
            return v + cg_fixed(lambda d: JT(J(d)) + mu * d, JT(r), self.cg_steps)

        x0h = jax.vmap(data)(x0)
        eps = (state.x - a * x0h) / s
        key, kz = jax.random.split(state.key)
        z = jax.random.normal(kz, state.x.shape, state.x.dtype)
        x = a_n * x0h + s_n * (math.sqrt(1.0 - self.zeta) * eps + math.sqrt(self.zeta) * z)
        return DiffusionState(x, x0h, state.i + 1, key), {"residual": self._residual(problem, x0h)}


# --------------------------------------------------------------------------------------
# Langevin on a Gaussian-tilted likelihood (DAPS; PnP-DM for non-linear models)
# --------------------------------------------------------------------------------------
def _lipschitz(problem, x, iters: int = 20):
    """``||J^T J||`` of the whitened data term at ``x`` by power iteration (set-up, once)."""
    J, JT, _ = _whitened(problem, x)
    return power_norm_sq(lambda v: JT(J(v)), x.shape, x.dtype, iters)


def _langevin(problem, x, center, r, lr, lip, n, key):
    """``n`` unadjusted Langevin steps on ``log pi(x) = -||x - center||^2 / (2 r^2) -
    ||(forward(x) - y) / sigma||^2 / 2``, step ``lr / (1 / r^2 + lip)`` (``lip``: the data
    term's curvature bound), for one particle."""
    sig = problem.noise.sigma
    h = lr / (1.0 / r**2 + lip)

    def grad_log(v):
        g = jax.grad(lambda w: 0.5 * _norm_sq((problem.forward(w) - problem.y_obs) / sig))(v)
        return -(v - center) / r**2 - g

    def body(k, v):
        z = jax.random.normal(jax.random.fold_in(key, k), v.shape, v.dtype)
        return v + h * grad_log(v) + jnp.sqrt(2.0 * h) * z

    return jax.lax.fori_loop(0, n, body, x)


# --------------------------------------------------------------------------------------
# DAPS
# --------------------------------------------------------------------------------------
class DAPS(_Sampler):
    """Decoupled annealing posterior sampling (Zhang et al., CVPR 2025, Alg. 1). Noise levels
    anneal ``sigma_k = sigma_max (sigma_min / sigma_max)^(k / (n_anneal - 1))``; at each,
    from ``x_k = x_0 + sigma_k e``:

    1. ``x0_hat``: the probability-flow ODE from ``sigma_k`` towards 0 in ``n_ode`` Euler
       steps (``dx/dsigma = (x - D(x, sigma)) / sigma`` on a geometric grid down to
       ``sigma_min``, then ``D``): ``n_ode`` network evaluations;
    2. ``n_langevin`` Langevin steps on ``p(x_0 | x_k, y) ~ N(x_0; x0_hat, r_k^2 I) p(y | x_0)``
       with ``r_k = r_scale sigma_k`` and step ``lr / (1 / r_k^2 + L)`` (``L``: the whitened
       data term's curvature at the start, by power iteration): only gradients of the
       likelihood, so any differentiable forward model works;
    3. ``x_{k+1} = x_0 + sigma_{k+1} e``.

    The last level returns ``x_0``. Paper (InverseBench): 200 levels x 5 ODE steps, 100
    Langevin steps each; sigma 100 -> 0.1 for images in [-1, 1].
    Cost per level: ``n_ode`` network evaluations, ``2 n_langevin`` forward/adjoint applications.
    """

    n_anneal: int = 100
    n_ode: int = 5
    n_langevin: int = 50
    lr: float = 0.5
    r_scale: float = 1.0
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    n_steps: int = 0  # set from n_anneal

    def __post_init__(self):
        object.__setattr__(self, "n_steps", self.n_anneal)

    def __check_init__(self):
        self._check_counts("n_anneal", "n_ode", "n_langevin")
        self._check()
        self._check_nonneg("lr", "r_scale", "sigma_max", "sigma_min")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"DAPS: need 0 < sigma_min < sigma_max, got {self.sigma_min!r} and {self.sigma_max!r}.")

    def step_cost(self, problem):
        return {"nfe": self.n_ode, "n_forward": 2 * self.n_langevin, "network_gradients": 0}

    def init(self, problem, key):
        x0 = jnp.asarray(problem.init_params())
        k0, key = jax.random.split(key)
        x = self.sigma_max * jax.random.normal(k0, (self.n_samples, *x0.shape), x0.dtype)
        lip = _lipschitz(problem, x0)
        return DiffusionState(x, jnp.zeros_like(x), jnp.zeros((), jnp.int32), key, lip)

    def _sigma(self, k):
        return _geometric(self.sigma_max, self.sigma_min, k, self.n_anneal)

    def step(self, problem, state):
        dt = state.x.dtype
        sig = self._sigma(state.i).astype(dt)
        x = state.x
        for j in range(self.n_ode - 1):  # Euler steps of the probability-flow ODE
            sj = _geometric(sig, jnp.asarray(self.sigma_min, dt), j, self.n_ode).astype(dt)
            sn = _geometric(sig, jnp.asarray(self.sigma_min, dt), j + 1, self.n_ode).astype(dt)
            x = x + (sn - sj) * (x - denoise_at(self.prior, x, sj)) / sj
        s_last = _geometric(sig, jnp.asarray(self.sigma_min, dt), self.n_ode - 1, self.n_ode).astype(dt)
        x0h = _clip(denoise_at(self.prior, x, s_last), self.clip)
        key, kl, kz = jax.random.split(state.key, 3)
        r = self.r_scale * sig
        keys = jax.random.split(kl, x.shape[0])
        x0 = jax.vmap(lambda v, k: _langevin(problem, v, v, r, self.lr, state.extra, self.n_langevin, k))(x0h, keys)
        nxt = self._sigma(state.i + 1).astype(dt)
        x = x0 + nxt * jax.random.normal(kz, x.shape, dt)
        return DiffusionState(x, x0, state.i + 1, key, state.extra), {"residual": self._residual(problem, x0)}

    def postprocess(self, problem, state):
        x = jax.vmap(problem.constrain)(state.x0)
        return Estimate(jnp.mean(x, axis=0), jnp.std(x, axis=0), x)

    def check_result(self, problem, state, result):
        return super().check_result(problem, DiffusionState(state.x0, state.x0, state.i, state.key), result)


# --------------------------------------------------------------------------------------
# PnP-DM
# --------------------------------------------------------------------------------------
class PnPDM(_Sampler):
    """Plug-and-play diffusion models, split Gibbs sampling (Wu et al., NeurIPS 2024, Alg. 1)
    of ``p(x, z | y) ~ p(y | x) exp(-||x - z||^2 / (2 rho^2)) p(z)`` with the coupling
    ``rho_k = rho_max (rho_min / rho_max)^(k / (n_steps - 1))`` annealed:

    * likelihood step ``x ~ p(x | z, y)``: for a linear model with Gaussian noise, exact by
      perturb-and-optimise: ``y' = y + sigma e1``, ``z' = z + rho e2``, ``x = argmin
      ||(A x - y') / sigma||^2 + ||x - z'||^2 / rho^2`` (``cg_steps`` CG steps; exact once
      converged); otherwise ``n_langevin`` Langevin steps;
    * prior step ``z ~ p(z | x)``, ``x = z + rho e``: the reverse diffusion from the noise
      level ``rho`` (``x_t = a(t_rho) x``) in ``n_prior`` ancestral steps down to ``t_min``,
      then Tweedie.

    Returns the last ``z``. Paper: 40-100 iterations, rho 10 -> 0.1 (images in [-1, 1]),
    EDM denoising runs of a few steps. Cost per iteration: ``n_prior`` network evaluations,
    ``2 cg_steps + 2`` (or ``2 n_langevin``) forward/adjoint applications.
    """

    n_steps: int = 40
    rho_max: float = 5.0
    rho_min: float = 0.02
    n_prior: int = 10
    cg_steps: int = 20
    n_langevin: int = 50
    lr: float = 0.5

    def __check_init__(self):
        self._check()
        self._check_counts("n_prior", "cg_steps", "n_langevin")
        self._check_nonneg("rho_max", "rho_min", "lr")
        if not 0 < self.rho_min <= self.rho_max:
            raise ValueError(f"PnPDM: need 0 < rho_min <= rho_max, got {self.rho_min!r} and {self.rho_max!r}.")

    def _linear(self, problem):
        return isinstance(problem, HasLinearOperator)

    def step_cost(self, problem):
        data = 2 * self.cg_steps + 2 if self._linear(problem) else 2 * self.n_langevin
        return {"nfe": self.n_prior, "n_forward": data, "network_gradients": 0}

    def init(self, problem, key):
        z, key = self._start(problem, key)
        x0 = jnp.asarray(problem.init_params())
        lip = jnp.zeros((), x0.dtype) if self._linear(problem) else _lipschitz(problem, x0)
        return DiffusionState(z, z, jnp.zeros((), jnp.int32), key, lip)

    def step(self, problem, state):
        dt = state.x.dtype
        rho = _geometric(self.rho_max, self.rho_min, state.i, self.n_steps).astype(dt)
        key, kl, kp = jax.random.split(state.key, 3)
        keys = jax.random.split(kl, state.x.shape[0])
        x = jax.vmap(lambda z, k: self._likelihood(problem, z, rho, k, state.extra))(state.x, keys)
        z = self._prior_step(x, rho, kp)
        return DiffusionState(z, x, state.i + 1, key, state.extra), {"residual": self._residual(problem, z)}

    def _likelihood(self, problem, z, rho, key, lip):
        """One draw of ``x ~ p(x | z, y)`` (one particle)."""
        if not self._linear(problem):
            return _langevin(problem, z, z, rho, self.lr, lip, self.n_langevin, key)
        k1, k2 = jax.random.split(key)
        J, JT, r = _whitened(problem, z)
        zp = z + rho * jax.random.normal(k2, z.shape, z.dtype)
        rp = r + jax.random.normal(k1, r.shape, r.dtype) - J(zp - z)  # whitened y' - A z'
        return zp + cg_fixed(lambda d: JT(J(d)) + d / rho**2, JT(rp), self.cg_steps)

    def _prior_step(self, x, rho, key):
        sde, dt = self.prior.sde, x.dtype
        t0 = sde.t_of_sigma(rho).astype(dt)
        a0, _ = sde.mean_std(t0)
        xt = a0 * x

        def body(xt, j):
            t = t0 + (sde.t_min - t0) * j / self.n_prior
            tn = t0 + (sde.t_min - t0) * (j + 1) / self.n_prior
            a, s = sde.mean_std(t)
            an, sn = sde.mean_std(tn)
            last = j + 1 >= self.n_prior
            an, sn = jnp.where(last, 1.0, an).astype(dt), jnp.where(last, 0.0, sn).astype(dt)
            x0 = _clip(self.prior.denoise(xt, t), self.clip)
            z = jax.random.normal(jax.random.fold_in(key, j), xt.shape, dt)
            return ancestral(xt, x0, a, s, an, sn, z), None

        return jax.lax.scan(body, xt, jnp.arange(self.n_prior, dtype=dt))[0]


# --------------------------------------------------------------------------------------
# STSL
# --------------------------------------------------------------------------------------
class STSL(_Sampler):
    """Second-order Tweedie guidance (after Rout et al., CVPR 2024, in pixel space). With
    ``x0 = E[x_0 | x_t]`` and the second-order Tweedie covariance
    ``C = Cov[x_0 | x_t] = (s^2 / a^2) (I + s^2 H)``, ``H = grad^2 log p_t(x_t)``, the expected
    whitened misfit under ``N(x0, C)`` is ``E||W(A x_0 - y)||^2 = ||W(A x0 - y)||^2 + tr(W A C A^T W)``.
    Each step is DPS's (`invsolve.solvers.DPS`) with this surrogate in place of the first-order
    misfit::

        x_s = ancestral(x_t, x0) - zeta grad_{x_t} sqrt(||W(A x0 - y)||^2 + omega v^T W A C A^T W v)

    with one Hutchinson probe ``v ~ N(0, I)`` in data space per step (``C u = (s^2 / a) J u``,
    ``J`` the Jacobian of Tweedie's denoiser, by one Jacobian-vector product). The term is
    used while the noise level ``s / a`` is at most ``sigma_2nd``: above it the cancellation in
    ``I + s^2 H`` multiplies the network's error by ``s^2 / a^2`` (up to 1e4 at ``t = 1``) and
    the one-probe estimate overflows (our choice; the paper works in a latent space and does
    not say). ``omega = 0`` is DPS with a whitened residual.
    ``zeta`` is in image units per unit of whitened misfit norm (0.01 for 64^2 CT of images in
    [0, 1], 30 views, 1 % noise; the whitened residual is ``sqrt(m)`` times larger than DPS's
    relative one). Cost per step: 2 network evaluations (Tweedie, the Jacobian-vector product)
    and their back-propagation, 4 forward/adjoint applications.
    """

    n_steps: int = 200
    zeta: float = 0.01
    omega: float = 1.0
    sigma_2nd: float = 1.0

    def __check_init__(self):
        self._check()
        self._check_nonneg("zeta", "omega", "sigma_2nd")

    def step_cost(self, problem):
        return {"nfe": 2 if self.omega else 1, "n_forward": 4 if self.omega else 2,
                "network_gradients": 2 if self.omega else 1}

    def init(self, problem, key):
        x, key = self._start(problem, key)
        return DiffusionState(x, x, jnp.zeros((), jnp.int32), key)

    def step(self, problem, state):
        t, a, s, a_n, s_n = _times(self.prior.sde, state.i, self.n_steps, state.x.dtype)
        key, kz, kv = jax.random.split(state.key, 3)
        prior, omega = self.prior, self.omega

        def surrogate(x, v):  # one particle
            x0 = prior.denoise(x, t)
            _, JT, r = _whitened(problem, x0)
            loss = _norm_sq(r)
            if omega:
                u = JT(v)
                Ju = jax.jvp(lambda w: prior.denoise(w, t), (x,), (u,))[1]  # (I + s^2 H) u / a
                # a covariance's trace is >= 0; the one-probe estimate through a network need not be
                second = jnp.maximum(omega * (s**2 / a) * jnp.vdot(u, Ju), 0.0)
                loss = loss + jnp.where(s / a <= self.sigma_2nd, second, 0.0)
            return jnp.sqrt(loss), x0

        v = jax.random.normal(kv, (state.x.shape[0], *jnp.shape(problem.y_obs)), state.x.dtype)
        (_, x0), g = jax.vmap(jax.value_and_grad(surrogate, has_aux=True))(state.x, v)
        z = jax.random.normal(kz, state.x.shape, state.x.dtype)
        x = ancestral(state.x, _clip(x0, self.clip), a, s, a_n, s_n, z) - self.zeta * g
        return DiffusionState(x, x0, state.i + 1, key), {"residual": self._residual(problem, x0)}
