"""Score-based (diffusion) priors: the forward SDEs, a trained noise-prediction network, and
an analytic Gaussian mixture with the same interface.

A diffusion prior perturbs clean data ``x_0`` by ``x_t = a(t) x_0 + s(t) eps``,
``eps ~ N(0, I)``, ``t`` in ``[0, 1]`` (Song et al., ICLR 2021, Sec. 3.4):

* `VP` (variance preserving, DDPM): ``beta(t) = beta_min + t (beta_max - beta_min)``,
  ``a = exp(-1/2 int_0^t beta)``, ``s^2 = 1 - a^2``; ``dx = -beta/2 x dt + sqrt(beta) dw``.
* `VE` (variance exploding, SMLD): ``a = 1``, ``s = sigma_min (sigma_max / sigma_min)^t``;
  ``dx = s sqrt(2 log(sigma_max / sigma_min)) dw``.

Every score prior provides ``eps(x, t)``, the noise prediction ``E[eps | x_t = x]``, from
which the score ``grad log p_t(x) = -eps / s(t)`` and Tweedie's denoiser
``E[x_0 | x_t = x] = (x - s eps) / a`` follow (`score`, `denoise`). `ScorePrior` learns
``eps`` by denoising score matching (``E ||eps_theta(x_t, t) - eps||^2``, ``t ~ U(t_min, 1)``,
Song et al. eq. 7 with ``lambda(t) = s(t)^2``); `GaussianMixture` knows it exactly, which
makes it the test bed of the samplers (`invsolve.solvers.DPS`, ...): its posterior under a
linear Gaussian measurement is again a Gaussian mixture (`GaussianMixture.posterior`).
Data are in their own units (images in [0, 1]); ``shape`` is one sample's shape.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .. import weights
from .._batch import data_parallel
from .._problem import check_value
from .._solver import check_nonneg, key_optimizer
from .._train import fit
from ..nn.score import ScoreMLP, ScoreUNet
from ._classic import AbstractPrior
from .lpn import _sampler


# --------------------------------------------------------------------------------------
# forward SDEs
# --------------------------------------------------------------------------------------
class VP(eqx.Module):
    """Variance-preserving SDE (DDPM); Song et al.'s defaults ``beta`` in [0.1, 20]."""

    beta_min: float = eqx.field(default=0.1, static=True)
    beta_max: float = eqx.field(default=20.0, static=True)
    t_min: float = eqx.field(default=1e-3, static=True)

    def mean_std(self, t):
        """``(a(t), s(t))``; ``t`` an array."""
        integral = self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t
        return jnp.exp(-0.5 * integral), jnp.sqrt(-jnp.expm1(-integral))

    def drift_diffusion(self, x, t):
        beta = self.beta_min + t * (self.beta_max - self.beta_min)
        return -0.5 * beta * x, jnp.sqrt(beta)

    def t_of_sigma(self, sigma):
        """The time whose noise level ``s(t) / a(t)`` is ``sigma`` (``sigma^2 = exp(int_0^t beta) - 1``),
        clipped to ``[t_min, 1]``."""
        b0, db = self.beta_min, self.beta_max - self.beta_min
        t = (-b0 + jnp.sqrt(b0 * b0 + 2.0 * db * jnp.log1p(jnp.asarray(sigma) ** 2))) / db
        return jnp.clip(t, self.t_min, 1.0)

    def terminal(self, key, shape, dtype):
        return jax.random.normal(key, shape, dtype)


class VE(eqx.Module):
    """Variance-exploding SDE (SMLD / NCSN); ``sigma_max`` about the largest distance
    between two training samples (Song and Ermon, 2020)."""

    sigma_min: float = eqx.field(default=0.01, static=True)
    sigma_max: float = eqx.field(default=40.0, static=True)
    t_min: float = eqx.field(default=1e-5, static=True)

    def mean_std(self, t):
        return jnp.ones_like(t), self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_diffusion(self, x, t):
        s = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        return jnp.zeros_like(x), s * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def t_of_sigma(self, sigma):
        """The time whose noise level ``s(t)`` is ``sigma``, clipped to ``[t_min, 1]``."""
        t = jnp.log(jnp.asarray(sigma) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)
        return jnp.clip(t, self.t_min, 1.0)

    def terminal(self, key, shape, dtype):
        return self.sigma_max * jax.random.normal(key, shape, dtype)


SDES = {"vp": VP, "ve": VE}


def make_sde(sde) -> VP | VE:
    if isinstance(sde, (VP, VE)):
        return sde
    if sde not in SDES:
        raise ValueError(f"sde must be 'vp', 've' or an invsolve.priors.VP / VE instance, got {sde!r}.")
    return SDES[sde]()


# --------------------------------------------------------------------------------------
# the common interface
# --------------------------------------------------------------------------------------
class AbstractScorePrior(AbstractPrior):
    """A prior known through its noise prediction ``eps(x, t)`` under ``sde``.

    ``x`` has shape ``(..., *shape)`` (leading axes batch), ``t`` is a scalar or has the
    leading shape. Results have the shape and dtype of ``x``."""

    sde: eqx.AbstractVar[Any]
    shape: eqx.AbstractVar[tuple]

    @abc.abstractmethod
    def eps(self, x, t):
        """The noise prediction ``-s(t) grad log p_t(x)``."""

    def shape_error(self, shape):
        """A sampler's unknown must have exactly the prior's sample shape."""
        if tuple(shape) != tuple(self.shape):
            return (f"the prior was trained on samples of shape {tuple(self.shape)}, but the unknown has shape "
                    f"{tuple(shape)}; use a prior trained at that resolution (or resample the problem)")
        return None

    def _split(self, x, t):
        x = jnp.asarray(x)
        self._check_shape(x.shape)
        lead = x.shape[:x.ndim - len(self.shape)]
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), lead)
        return x, t, lead

    def _check_shape(self, shape):
        if tuple(shape[len(shape) - len(self.shape):]) != tuple(self.shape) or len(shape) < len(self.shape):
            raise ValueError(f"{type(self).__name__}: this prior was trained on samples of shape "
                             f"{tuple(self.shape)} (leading axes batch), got an input of shape {tuple(shape)}; "
                             "train or load a prior at that resolution.")

    def _bcast(self, v, x):
        return v.reshape(v.shape + (1,) * len(self.shape)).astype(x.dtype)

    def score(self, x, t):
        """``grad_x log p_t(x)``."""
        _, s = self.sde.mean_std(jnp.asarray(t, jnp.result_type(x)))
        x, t, _ = self._split(x, t)
        return -self.eps(x, t) / self._bcast(jnp.broadcast_to(s, t.shape), x)

    def denoise(self, x, t):
        """Tweedie's estimate ``E[x_0 | x_t = x]``."""
        x, t, _ = self._split(x, t)
        a, s = self.sde.mean_std(t)
        return (x - self._bcast(s, x) * self.eps(x, t)) / self._bcast(a, x)

    def sample(self, key, n: int = 1, n_steps: int = 500, method: str = "pc", **options):
        """``n`` unconditional samples ``(n, *shape)``: ``method="pc"`` (ancestral predictor
        plus Langevin corrector, `pc_sample`) or ``"ode"`` (the probability-flow ODE with
        diffrax, `ode_sample`)."""
        if method == "pc":
            return pc_sample(self, key, n, n_steps, **options)
        if method == "ode":
            return ode_sample(self, key, n, n_steps, **options)
        raise ValueError(f"method must be 'pc' or 'ode', got {method!r}.")


# --------------------------------------------------------------------------------------
# sampling: the reverse-time steps shared by the unconditional samplers and the solvers
# --------------------------------------------------------------------------------------
def _times(sde, i, n_steps, dtype):
    """``(t_i, a_i, s_i, a_next, s_next)`` on the grid, ``(a, s) = (1, 0)`` after the last step."""
    i = jnp.asarray(i, dtype)
    t = _grid(sde, i, n_steps)
    a, s = sde.mean_std(t)
    a_n, s_n = sde.mean_std(_grid(sde, i + 1, n_steps))
    last = i + 1 >= n_steps
    return t, a, s, jnp.where(last, 1.0, a_n).astype(dtype), jnp.where(last, 0.0, s_n).astype(dtype)


def _grid(sde, i, n_steps):
    """``t_i = 1 - (1 - t_min) i / (n_steps - 1)``, held at ``t_min`` past the last step."""
    return jnp.maximum(1.0 - (1.0 - sde.t_min) * i / max(n_steps - 1, 1), sde.t_min)


def ancestral(x, x0, a_t, s_t, a_s, s_s, z):
    """One draw of ``x_s ~ q(x_s | x_t = x, x_0 = x0)`` for the process ``x_t = a x_0 + s e``."""
    a_ts = a_t / a_s
    v_ts = jnp.maximum(s_t**2 - a_ts**2 * s_s**2, 0.0)
    mean = (a_ts * s_s**2 * x + a_s * v_ts * x0) / s_t**2
    return mean + jnp.sqrt(v_ts * s_s**2) / s_t * z


def langevin(prior, x, t, key, snr, alpha):
    """Song et al.'s Langevin corrector at time ``t`` (all particles): step
    ``eps = 2 alpha (snr ||z|| / ||score||)^2`` per particle, ``x + eps score + sqrt(2 eps) z``."""
    g = prior.score(x, t)
    z = jax.random.normal(key, x.shape, x.dtype)
    axes = tuple(range(1, x.ndim))
    gn = jnp.sqrt(jnp.sum(g * g, axis=axes, keepdims=True))
    zn = jnp.sqrt(jnp.sum(z * z, axis=axes, keepdims=True))
    eps = 2 * alpha * (snr * zn / jnp.where(gn > 0, gn, 1.0)) ** 2
    return x + eps * g + jnp.sqrt(2 * eps) * z


def _pc_step(prior, x, i, key, n_steps, snr, n_corrector, clip):
    t, a, s, a_n, s_n = _times(prior.sde, i, n_steps, x.dtype)
    kp, kc = jax.random.split(key)
    x0 = _clip(prior.denoise(x, t), clip)
    x = ancestral(x, x0, a, s, a_n, s_n, jax.random.normal(kp, x.shape, x.dtype))
    t_n = _grid(prior.sde, jnp.asarray(i, x.dtype) + 1, n_steps).astype(x.dtype)
    for c in range(n_corrector):
        corrected = langevin(prior, x, t_n, jax.random.fold_in(kc, c), snr, (a_n / a) ** 2)
        x = jnp.where(s_n > 0, corrected, x)
    return x, x0


def _clip(x, clip):
    return x if clip is None else jnp.clip(x, clip[0], clip[1])


def pc_sample(prior, key, n: int = 1, n_steps: int = 500, *, snr: float = 0.16, n_corrector: int = 1,
              clip=None, dtype=jnp.float32):
    """``n`` unconditional samples ``(n, *prior.shape)`` by predictor-corrector sampling
    (Song et al., ICLR 2021, Alg. 1-2): the ancestral predictor and ``n_corrector``
    Langevin corrector steps at signal-to-noise ratio ``snr`` per time step."""
    _check_steps("pc_sample", n_steps)
    k0, key = jax.random.split(key)
    return _pc_run(prior, prior.sde.terminal(k0, (n, *prior.shape), dtype), key, n_steps, snr, n_corrector, clip)


@eqx.filter_jit
def _pc_run(prior, x, key, n_steps, snr, n_corrector, clip):
    """The whole reverse chain in one ``scan``, compiled once per prior structure, shape and
    settings (Python numbers are static under ``filter_jit``)."""
    def body(x, i):
        return _pc_step(prior, x, i, jax.random.fold_in(key, i), n_steps, snr, n_corrector, clip)[0], None

    return jax.lax.scan(body, x, jnp.arange(n_steps))[0]


def ode_sample(prior, key, n: int = 1, n_steps: int = 100, *, rtol: float | None = None, atol: float = 1e-5,
               dtype=jnp.float32):
    """``n`` samples by the probability-flow ODE ``dx/dt = f(x, t) - g(t)^2 / 2 score(x, t)``
    (Song et al., eq. 13) from ``t = 1`` to ``t_min`` with diffrax, then one Tweedie
    denoising step. ``rtol=None``: ``n_steps`` fixed Heun steps; else adaptive Tsit5 with
    ``rtol``/``atol``. Deterministic given the initial noise."""
    _check_steps("ode_sample", n_steps)
    return _ode_run(prior, prior.sde.terminal(key, (n, *prior.shape), dtype), n_steps, rtol, atol)


@eqx.filter_jit
def _ode_run(prior, x1, n_steps, rtol, atol):
    import diffrax

    sde = prior.sde

    def field(t, x, args):
        f, g = sde.drift_diffusion(x, t)
        return f - 0.5 * g**2 * prior.score(x, t)

    if rtol is None:
        solver, control = diffrax.Heun(), diffrax.ConstantStepSize()
    else:
        solver, control = diffrax.Tsit5(), diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(diffrax.ODETerm(field), solver, 1.0, sde.t_min, -(1.0 - sde.t_min) / n_steps,
                              x1, stepsize_controller=control, max_steps=max(4 * n_steps, 4096))
    return prior.denoise(sol.ys[-1], sde.t_min)


def _check_steps(name, n_steps):
    if not (isinstance(n_steps, int) and not isinstance(n_steps, bool) and n_steps >= 1):
        raise ValueError(f"{name}: n_steps must be a positive integer, got {n_steps!r}.")


# --------------------------------------------------------------------------------------
# analytic Gaussian mixture
# --------------------------------------------------------------------------------------
class GaussianMixture(AbstractScorePrior):
    """``p(x) = sum_k w_k N(x; mu_k, Sigma_k)`` on vectors ``(dim,)``, with its exact noise
    prediction under ``sde`` (each component diffuses to ``N(a mu_k, a^2 Sigma_k + s^2 I)``).
    Computes in the dtype of the parameters (float64 under x64).

    ``weights`` must be non-negative and not all zero (they are normalised to sum to 1);
    each covariance must be symmetric positive definite (all eigenvalues > 0). Otherwise
    the constructor raises ``ValueError`` (under ``jit``: an `eqx.error_if` error)."""

    weights: jax.Array
    means: jax.Array
    covs: jax.Array
    sde: Any = VP()
    shape: tuple = eqx.field(default=None, static=True)
    eig: tuple = None  # eigen-decompositions of the covariances, (K, dim) and (K, dim, dim)

    def __init__(self, weights, means, covs, sde="vp"):
        means = jnp.asarray(means)
        weights, covs = jnp.asarray(weights, means.dtype), jnp.asarray(covs, means.dtype)
        if means.ndim != 2 or weights.shape != means.shape[:1] or covs.shape != (*means.shape, means.shape[-1]):
            raise ValueError(f"GaussianMixture: weights (K,), means (K, dim), covs (K, dim, dim) expected, got "
                             f"{weights.shape}, {means.shape}, {covs.shape}.")
        d = means.shape[1]
        sym = 0.5 * (covs + jnp.swapaxes(covs, 1, 2))
        lam, vec = jnp.linalg.eigh(sym)
        tol = max(1e-6, 100 * float(jnp.finfo(covs.dtype).eps)) * jnp.max(jnp.abs(covs))
        # traced (under jit): each check guards every array, so whichever a method uses raises
        params = (weights, means, covs, lam, vec)
        params = check_value(params, ~jnp.all(jnp.isfinite(weights) & (weights >= 0)) | ~(jnp.sum(weights) > 0),
                             "GaussianMixture: weights must be finite, non-negative and not all zero (they are "
                             "normalised to sum to 1)", got=lambda: repr(np.asarray(weights).tolist()))
        params = check_value(params, ~jnp.all(jnp.isfinite(covs)) | jnp.any(jnp.abs(covs - sym) > tol),
                             "GaussianMixture: each covariance covs[k] must be finite and symmetric")
        params = check_value(params, ~jnp.all(lam > 0), "GaussianMixture: each covariance covs[k] must be positive "
                             "definite (all eigenvalues > 0)", got=lambda: f"smallest eigenvalues {np.asarray(lam[:, 0])}")
        weights, means, covs, lam, vec = params
        self.means, self.weights, self.covs = means, weights / jnp.sum(weights), covs
        self.sde = make_sde(sde)
        self.shape = (d,)
        self.eig = (lam, vec)

    @classmethod
    def random(cls, key, dim: int = 8, n_components: int = 5, spread: float = 3.0, scale: float = 0.5,
               sde="vp", dtype=None):
        """Random means in ``[-spread, spread]^dim``, random SPD covariances of size about
        ``scale^2``, Dirichlet(1) weights."""
        dtype = dtype or jnp.result_type(float)
        km, kc, kw = jax.random.split(key, 3)
        means = jax.random.uniform(km, (n_components, dim), dtype, -spread, spread)
        g = jax.random.normal(kc, (n_components, dim, dim), dtype) / math.sqrt(dim)
        covs = scale**2 * (0.3 * jnp.eye(dim, dtype=dtype) + g @ jnp.swapaxes(g, 1, 2))
        return cls(jax.random.dirichlet(kw, jnp.ones(n_components, dtype)), means, covs, sde)

    def _noised(self, t):
        a, s = self.sde.mean_std(t)
        d = self.shape[0]
        return a * self.means, a * a * self.covs + s * s * jnp.eye(d, dtype=self.means.dtype)

    def log_prob(self, x, t=None):
        """``log p_t(x)`` (``t=None``: the clean density ``p_0``)."""
        x = jnp.asarray(x, self.means.dtype)
        if t is None:
            m, c = self.means, self.covs
        else:
            m, c = self._noised(jnp.asarray(t, x.dtype))
        return _mixture_logpdf(x, self.weights, m, c)

    def eps(self, x, t):
        x = jnp.asarray(x, self.means.dtype)
        t = jnp.asarray(t, x.dtype)
        if t.ndim == 0:  # one noise level for all samples: factor the covariances once
            self._check_shape(x.shape)
            return self._eps_at(x.reshape(-1, *self.shape), t).reshape(x.shape)
        x, t, _ = self._split(x, t)
        out = jax.vmap(lambda xi, ti: self._eps_at(xi[None], ti)[0])(x.reshape(-1, *self.shape), t.reshape(-1))
        return out.reshape(x.shape)

    def _eps_at(self, x, t):
        """``-s grad log p_t`` for a batch ``(n, dim)`` at one time: responsibilities
        ``r_k`` of the noised components, ``score = -sum_k r_k C_k^-1 (x - a mu_k)``."""
        a, s = self.sde.mean_std(t)
        lam, vec = self.eig
        var = a * a * lam + s * s  # eigenvalues of a^2 Sigma_k + s^2 I: no factorisation per step
        diff = x[:, None, :] - a * self.means[None]  # (n, K, d)
        proj = jnp.einsum("kji,nkj->nki", vec, diff) / var  # V^T diff / var
        pd = jnp.einsum("kij,nkj->nki", vec, proj)
        logn = -0.5 * jnp.sum(diff * pd, axis=-1) - 0.5 * jnp.sum(jnp.log(var), axis=1)
        r = jax.nn.softmax(jnp.log(self.weights) + logn, axis=1)
        return s * jnp.einsum("nk,nki->ni", r, pd)

    def draw(self, key, n: int):
        """``n`` exact samples ``(n, dim)``."""
        kc, kz = jax.random.split(key)
        comp = jax.random.categorical(kc, jnp.log(self.weights), shape=(n,))
        chol = jnp.linalg.cholesky(self.covs)[comp]
        z = jax.random.normal(kz, (n, self.shape[0]), self.means.dtype)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol, z)

    def posterior(self, A, y, sigma) -> "GaussianMixture":
        """The exact posterior of ``x`` given ``y = A x + sigma e``, ``e ~ N(0, I)``
        (``A`` a matrix ``(m, dim)``): component ``k`` becomes ``N(m_k, C_k)`` with
        ``C_k = (Sigma_k^-1 + A^T A / sigma^2)^-1``, ``m_k = C_k (Sigma_k^-1 mu_k + A^T y / sigma^2)``,
        weight ``w_k N(y; A mu_k, A Sigma_k A^T + sigma^2 I)``."""
        A = jnp.asarray(A, self.means.dtype)
        y = jnp.asarray(y, self.means.dtype)
        prec = jnp.linalg.inv(self.covs)
        post_cov = jnp.linalg.inv(prec + A.T @ A / sigma**2)
        post_mean = jnp.einsum("kij,kj->ki", post_cov, jnp.einsum("kij,kj->ki", prec, self.means) + A.T @ y / sigma**2)
        pred_cov = A @ self.covs @ A.T + sigma**2 * jnp.eye(A.shape[0], dtype=A.dtype)
        logw = jnp.log(self.weights) + jax.vmap(lambda m, c: _gauss_logpdf(y, m, c))(self.means @ A.T, pred_cov)
        return GaussianMixture(jax.nn.softmax(logw), post_mean, 0.5 * (post_cov + jnp.swapaxes(post_cov, 1, 2)),
                               self.sde)


def _gauss_logpdf(x, m, c):
    chol = jnp.linalg.cholesky(c)
    z = jax.scipy.linalg.solve_triangular(chol, x - m, lower=True)
    return -0.5 * z @ z - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


def _mixture_logpdf(x, w, means, covs):
    return jax.nn.logsumexp(jnp.log(w) + jax.vmap(lambda m, c: _gauss_logpdf(x, m, c))(means, covs))


# --------------------------------------------------------------------------------------
# the learned prior
# --------------------------------------------------------------------------------------
class ScorePrior(AbstractScorePrior):
    """A noise-prediction network trained by denoising score matching.

    ``kind="unet"`` (`invsolve.nn.ScoreUNet`): single-channel images ``(H, W)`` of the
    training size ``shape``; ``kind="mlp"`` (`invsolve.nn.ScoreMLP`): vectors ``(dim,)``.
    The network sees ``x_t / sqrt(a^2 data_std^2 + s^2)`` (unit-scale input at every noise
    level) and ``log(s / a)``. Its output ``F`` is the noise prediction itself
    (``precond="eps"``) or, with ``precond="edm"`` (Karras et al., NeurIPS 2022, Table 1,
    written for ``x = x_t / a`` at noise level ``sigma = s / a``, ``sd = data_std``), the
    preconditioned denoiser ``D = c_skip x + c_out F``, ``c_skip = sd^2 / (sigma^2 + sd^2)``,
    ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``, so that
    ``eps = (x - D) / sigma = x sigma / (sigma^2 + sd^2) - sd F / sqrt(sigma^2 + sd^2)``:
    a unit-variance target at every noise level. ``params`` are the exponential moving
    average of the training iterates. Float32 parameters by default; inputs are cast to them
    and results back to the input's dtype.

    Attributes:
        graphdef, params: the flax NNX network. sde: `VP` or `VE`.
        shape: one sample's shape. config: ``(kind, widths, attention, data_std)``.
        precond: ``"eps"`` or ``"edm"`` (above).
        info: how it was trained, ``((key, value), ...)``.
    """

    graphdef: Any = eqx.field(static=True)
    params: Any
    sde: Any
    shape: tuple = eqx.field(static=True)
    config: tuple = eqx.field(static=True)
    info: tuple = eqx.field(default=(), static=True)
    precond: str = eqx.field(default="eps", static=True)

    @classmethod
    def init(cls, shape, key, *, sde="vp", channels=None, attention: bool = True, hidden: int = 128,
             depth: int = 3, data_std: float = 0.5, precond: str = "eps", dtype=jnp.float32) -> "ScorePrior":
        """An untrained prior for samples of ``shape``: ``(H, W)`` (U-Net with ``channels``
        per resolution, default ``(16, 32, 64, 64)``) or ``(dim,)`` (MLP ``hidden`` x ``depth``);
        ``precond``: ``"eps"`` or ``"edm"`` (the class docstring)."""
        if precond not in ("eps", "edm"):
            raise ValueError(f"ScorePrior: precond must be 'eps' or 'edm', got {precond!r}.")
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        rngs = nnx.Rngs(key)
        if len(shape) == 2:
            channels = tuple(int(c) for c in (channels or (16, 32, 64, 64)))
            m = 2 ** (len(channels) - 1)
            if shape[0] % m or shape[1] % m:
                raise ValueError(f"ScorePrior: image sides must be multiples of {m} for {len(channels)} "
                                 f"resolutions, got {shape}.")
            net, config = ScoreUNet(channels, attention, rngs=rngs, dtype=dtype), ("unet", channels, attention)
        elif len(shape) == 1:
            net, config = ScoreMLP(shape[0], hidden, depth, rngs=rngs, dtype=dtype), ("mlp", (hidden, depth), False)
        else:
            raise ValueError(f"ScorePrior: samples must be vectors (dim,) or images (H, W), got shape {shape}.")
        graphdef, params = nnx.split(net)
        return cls(graphdef=graphdef, params=params, sde=make_sde(sde), shape=shape,
                   config=(*config, float(data_std)), precond=precond)

    @classmethod
    def pretrained(cls, name: str) -> "ScorePrior":
        """A prior shipped with invsolve: ``"ellipses-64"`` (random-ellipse phantoms, 64^2)
        or ``"mni-64"`` (MNI152 T1 axial slices, 64^2, the ``"train"`` split of
        `invsolve.problems.phantoms.axial_slices`); both VP. ``invsolve/weights/MANIFEST.md``
        gives the command that trained each (`invsolve.recipes`) and its wall time."""
        return weights.pretrained(cls, "score", name)

    @property
    def dtype(self):
        return jax.tree.leaves(self.params)[0].dtype

    @property
    def n_params(self) -> int:
        return int(sum(np.size(x) for x in jax.tree.leaves(self.params)))

    def _eps_flat(self, params, x, t):
        """Network noise prediction on a flat batch ``(n, *shape)`` in the parameters' dtype."""
        a, s = self.sde.mean_std(t)
        sd = self.config[-1]
        b = (-1, *(1,) * len(self.shape))
        scale = jnp.sqrt(a * a * sd ** 2 + s * s)
        net = nnx.merge(self.graphdef, params)
        h = x / scale.reshape(b)
        c = jnp.log(s) - jnp.log(a)
        f = net(h[..., None], c)[..., 0] if self.config[0] == "unet" else net(h, c)
        if self.precond == "eps":
            return f
        sigma, root = (s / a).reshape(b), (scale / a).reshape(b)  # root = sqrt(sigma^2 + sd^2)
        return (x / a.reshape(b)) * sigma / root ** 2 - (sd / root) * f

    def eps(self, x, t):
        x, t, lead = self._split(x, t)
        flat = x.reshape(-1, *self.shape).astype(self.dtype)
        out = _eps_compiled(self, flat, t.reshape(-1).astype(self.dtype))
        return out.reshape(x.shape).astype(x.dtype)

    # --- persistence --------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the weights and configuration to ``path`` (``.npz``; `invsolve.weights.save`)."""
        sde = {"kind": "vp" if isinstance(self.sde, VP) else "ve",
               **{f.name: getattr(self.sde, f.name) for f in dataclasses.fields(self.sde)}}
        kind, widths, attention, data_std = self.config
        weights.save(path, self, shape=list(self.shape), kind=kind, widths=list(widths), attention=attention,
                     data_std=data_std, sde=sde, precond=self.precond)

    @classmethod
    def load(cls, path) -> "ScorePrior":
        """Read a prior written by `save` (`invsolve.weights.load`)."""
        def build(meta):
            sde = dict(meta["sde"])
            sde = SDES[sde.pop("kind")](**sde)
            net = ({"channels": meta["widths"], "attention": meta["attention"]} if meta["kind"] == "unet"
                   else {"hidden": meta["widths"][0], "depth": meta["widths"][1]})
            return cls.init(meta["shape"], jax.random.key(0), sde=sde, data_std=meta["data_std"],
                            precond=meta.get("precond", "eps"), **net)

        return weights.load(path, build, "ScorePrior")

    # --- training -----------------------------------------------------------------------
    @classmethod
    def train(cls, dataset, sde="vp", optimizer: optax.GradientTransformation | None = None, key=None, *,
              steps: int = 2000, batch_size: int = 16, ema: float = 0.999, augment: Callable | None = None,
              init: "ScorePrior | None" = None, checkpoint=None, save_every_s: float = 60.0,
              progress: bool | None = None, time_limit_s: float | None = None, devices=None,
              noise: tuple[float, float] | None = None, **network) -> "ScorePrior":
        """Learn ``eps`` by denoising score matching: minimise
        ``E_{x_0, t, eps} w(t) ||eps_theta(a x_0 + s eps, t) - eps||^2``.

        By default ``t ~ U(t_min, 1)`` and ``w = 1`` (Song et al. 2021). With ``noise =
        (P_mean, P_std)`` the noise level ``sigma = s / a`` is log-normal, ``log sigma ~
        N(P_mean, P_std^2)`` (Karras et al. 2022, Table 1: (-1.2, 1.2)), and ``t =
        sde.t_of_sigma(sigma)``; for a prior with ``precond="edm"`` the weight is
        ``w = 1 + sigma^2 / data_std^2``, EDM's ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2``
        on the denoiser written in ``eps``, i.e. the plain squared error of the network output.

        Args:
            dataset: clean samples, an array ``(n, *shape)`` (batches drawn with
                replacement) or a function ``(key, batch_size) -> (batch_size, *shape)``.
            sde: ``"vp"``, ``"ve"`` or a `VP` / `VE` instance.
            optimizer: any optax transformation (default ``adamw(2e-4)``).
            key: PRNG key (initialisation, batches, times, noise).
            steps, batch_size: optimizer steps and samples per step.
            ema: decay of the exponential moving average of the weights that the returned
                prior uses (0: the last iterate).
            augment: ``(key, batch) -> batch`` applied to every clean batch.
            init: a prior to continue from. checkpoint, save_every_s, progress,
                time_limit_s: as `invsolve.priors.LPN.train` (bit-identical resume).
            devices: data-parallel training over this many devices (as `LPN.train`).
            network: `ScorePrior.init` options (``channels``, ``attention``, ``data_std``,
                ``precond``, ...).
        """
        replicate, shard = data_parallel(devices)
        if noise is not None:
            try:
                ok = len(noise) == 2 and bool(np.isfinite(float(noise[0]))) and float(noise[1]) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"ScorePrior.train: noise must be (P_mean, P_std > 0), got {noise!r}.")

        check_nonneg("ScorePrior.train steps", steps, integer=True, allow_none=False)
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ValueError(f"ScorePrior.train: batch_size must be a positive integer, got {batch_size!r}.")
        if not 0 <= ema < 1:
            raise ValueError(f"ScorePrior.train: ema must be in [0, 1), got {ema!r}.")
        key = jax.random.key(0) if key is None else key
        k_init, k_data = jax.random.split(key)
        sample, shape = _sampler(dataset, batch_size, "ScorePrior.train")
        model = init if init is not None else cls.init(shape, k_init, sde=sde, **network)
        model._check_shape((1, *shape))
        optimizer = optax.adamw(2e-4) if optimizer is None else optimizer
        sde_ = model.sde

        sd2 = model.config[-1] ** 2

        def loss_fn(params, x0, t, e):
            a, s = sde_.mean_std(t)
            b = (-1, *(1,) * len(shape))
            xt = a.reshape(b) * x0 + s.reshape(b) * e
            d = model._eps_flat(params, xt, t) - e
            w = 1.0 + (s / a) ** 2 / sd2 if (noise is not None and model.precond == "edm") else 1.0
            return jnp.mean(w * jnp.sum(d.reshape(d.shape[0], -1) ** 2, axis=1)) / math.prod(shape)

        @jax.jit
        def update(carry, k):
            params, avg, opt_state, step = carry
            kb, kt, kn, ka = jax.random.split(jax.random.fold_in(k_data, step), 4)
            x0 = shard(sample(kb))
            if augment is not None:
                x0 = augment(ka, x0)
            if noise is None:
                t = jax.random.uniform(kt, (batch_size,), x0.dtype, sde_.t_min, 1.0)
            else:
                log_sigma = noise[0] + noise[1] * jax.random.normal(kt, (batch_size,), x0.dtype)
                t = sde_.t_of_sigma(jnp.exp(log_sigma)).astype(x0.dtype)
            e = jax.random.normal(kn, x0.shape, x0.dtype)
            val, g = jax.value_and_grad(loss_fn)(params, x0, t, e)
            upd, opt_state = optimizer.update(g, opt_state, params)
            params = optax.apply_updates(params, upd)
            avg = jax.tree.map(lambda m, p: ema * m + (1 - ema) * p, avg, params)
            return (params, avg, opt_state, step + 1), val

        carry = (model.params, model.params, optimizer.init(model.params), jnp.zeros((), jnp.int32))
        (params, avg, _, _), losses, wall = fit(update, carry, steps, name="ScorePrior.train",
                                                checkpoint=checkpoint, save_every_s=save_every_s,
                                                progress=progress, time_limit_s=time_limit_s, place=replicate,
                                                identity=(dataset, key, batch_size, ema, augment, noise,
                                                          key_optimizer(optimizer, model.params).key))
        info = (("sde", "vp" if isinstance(sde_, VP) else "ve"), ("steps", steps), ("batch_size", batch_size),
                ("ema", ema), ("final_loss", float(np.mean(losses[-200:])) if losses.size else float("nan")),
                ("train_time_s", round(wall, 1)))
        return dataclasses.replace(model, params=avg if ema > 0 else params, info=info)


@eqx.filter_jit
def _eps_compiled(prior, x, t):
    """The network on a flat batch, compiled once per prior structure and batch shape (so
    eager calls are fast; inside a traced solver it is inlined)."""
    return prior._eps_flat(prior.params, x, t)
