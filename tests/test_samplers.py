"""DDS, DiffPIR, DAPS, PnP-DM and STSL: their pieces against closed forms (noise levels,
the denoiser at a noise level, the data-consistency solves, the exact Gaussian likelihood
draw, Langevin on a Gaussian), their work counts against counting operators, their samples
against the exact posterior of the Gaussian-mixture test bed, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import invsolve as inv
from invsolve.priors import VE, VP, GaussianMixture
from invsolve.solvers.diffusion import DiffusionState
from invsolve.solvers.samplers import _langevin, denoise_at
from helpers import mixture_testbed, sliced_wasserstein

D, M, SIGMA, N = 8, 4, 0.1, 1000


@pytest.fixture(scope="module")
def testbed():
    """A 5-component mixture in 8D, y = A x + 0.1 e with a random 4 x 8 A, its exact posterior
    and N exact posterior draws (`helpers.mixture_testbed`)."""
    return mixture_testbed(N, D, M, SIGMA)


# --- the pieces ---------------------------------------------------------------------------
@pytest.mark.parametrize("sde", [VP(), VE()], ids=["vp", "ve"])
def test_noise_level_and_time_are_inverse(sde):
    t = jnp.linspace(sde.t_min, 1.0, 50)
    a, s = sde.mean_std(t)
    np.testing.assert_allclose(sde.t_of_sigma(s / a), t, rtol=1e-10)


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_denoise_at_a_noise_level_is_the_exact_posterior_mean(sde):
    """E[x0 | x0 + sigma e = z] for a mixture, written out in numpy: component weights
    w_k N(z; mu_k, S_k + sigma^2 I), means mu_k + S_k (S_k + sigma^2 I)^-1 (z - mu_k)."""
    from scipy.stats import multivariate_normal

    gm = GaussianMixture.random(jax.random.key(1), 3, 4, spread=2.0, scale=0.5, sde=sde)
    w, mu, S = (np.asarray(v) for v in (gm.weights, gm.means, gm.covs))
    z = np.asarray(jax.random.normal(jax.random.key(2), (5, 3))) * 2
    for sigma in (0.05, 0.5, 3.0):
        ref = []
        for zi in z:
            C = S + sigma**2 * np.eye(3)
            lw = np.log(w) + np.array([multivariate_normal(mu[k], C[k]).logpdf(zi) for k in range(4)])
            r = np.exp(lw - lw.max())
            r /= r.sum()
            ref.append(sum(r[k] * (mu[k] + S[k] @ np.linalg.solve(C[k], zi - mu[k])) for k in range(4)))
        np.testing.assert_allclose(denoise_at(gm, jnp.asarray(z), sigma), np.array(ref), rtol=1e-8, atol=1e-10)


def _last_step(solver, prob, x):
    """One solver step from ``x`` at the last time of the grid (where samplers return their
    data-corrected estimate)."""
    n = solver.n_steps
    state = DiffusionState(x, x, jnp.asarray(n - 1, jnp.int32), jax.random.key(0))
    return solver.step(prob, state)[0].x


def test_dds_corrects_tweedie_by_the_least_squares_step(testbed):
    """With as many CGLS steps as unknowns, DDS's last step is Tweedie's estimate plus the
    minimum-norm least-squares correction ``pinv(A) (y - A x0)``."""
    gm, prob, _, _ = testbed
    x = jax.random.normal(jax.random.key(3), (3, D))
    solver = inv.solvers.DDS(gm, n_steps=10, cg_steps=D)
    t_last = gm.sde.t_min
    x0 = gm.denoise(x, t_last)
    A, y = np.asarray(prob.A.matrix), np.asarray(prob.y_obs)
    ref = np.asarray(x0) + (np.linalg.pinv(A) @ (y[:, None] - A @ np.asarray(x0).T)).T
    np.testing.assert_allclose(_last_step(solver, prob, x), ref, rtol=1e-9, atol=1e-10)


def test_diffpir_data_step_is_the_regularised_least_squares_solution(testbed):
    """``argmin ||A x - y||^2 / sigma^2 + lam / sigma_t^2 ||x - x0||^2`` in closed form."""
    gm, prob, _, _ = testbed
    x = jax.random.normal(jax.random.key(3), (3, D))
    solver = inv.solvers.DiffPIR(gm, n_steps=10, cg_steps=D, lam=2.0)
    t = gm.sde.t_min
    a, s = (float(v) for v in gm.sde.mean_std(jnp.asarray(t)))
    mu = 2.0 * (a / s) ** 2
    x0 = np.asarray(gm.denoise(x, t))
    A, y = np.asarray(prob.A.matrix), np.asarray(prob.y_obs)
    H = A.T @ A / SIGMA**2 + mu * np.eye(D)
    ref = np.linalg.solve(H, (A.T @ y / SIGMA**2)[:, None] + mu * x0.T).T
    np.testing.assert_allclose(_last_step(solver, prob, x), ref, rtol=1e-8, atol=1e-10)


def test_pnpdm_likelihood_step_draws_the_exact_gaussian(testbed):
    """Perturb-and-optimise with converged CG: ``x | z, y ~ N(C (A^T y / sigma^2 + z / rho^2), C)``,
    ``C = (A^T A / sigma^2 + I / rho^2)^-1``; 20000 draws, mean within 4 standard errors,
    covariance within 5 %."""
    gm, prob, _, _ = testbed
    rho, n = 0.3, 20000
    solver = inv.solvers.PnPDM(gm, cg_steps=D)
    z = jnp.asarray(np.linspace(-1, 1, D))
    xs = jax.vmap(lambda k: solver._likelihood(prob, z, rho, k, 0.0))(jax.random.split(jax.random.key(5), n))
    A, y = np.asarray(prob.A.matrix), np.asarray(prob.y_obs)
    C = np.linalg.inv(A.T @ A / SIGMA**2 + np.eye(D) / rho**2)
    m = C @ (A.T @ y / SIGMA**2 + np.asarray(z) / rho**2)
    se = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(np.asarray(xs.mean(0)) - m) < 4 * se)
    np.testing.assert_allclose(np.cov(np.asarray(xs).T), C, atol=0.05 * np.abs(C).max())


def test_langevin_samples_the_gaussian_tilted_likelihood(testbed):
    """The same Gaussian as above by unadjusted Langevin (small steps: the O(step) bias is
    below the Monte Carlo error), 4000 chains."""
    gm, prob, _, _ = testbed
    rho, n = 0.3, 4000
    A, y = np.asarray(prob.A.matrix), np.asarray(prob.y_obs)
    lip = np.linalg.norm(A, 2) ** 2 / SIGMA**2
    z = jnp.asarray(np.linspace(-1, 1, D))
    run = jax.jit(jax.vmap(lambda k: _langevin(prob, z, z, rho, 0.05, lip, 2000, k)))
    xs = np.asarray(run(jax.random.split(jax.random.key(6), n)))
    C = np.linalg.inv(A.T @ A / SIGMA**2 + np.eye(D) / rho**2)
    m = C @ (A.T @ y / SIGMA**2 + np.asarray(z) / rho**2)
    np.testing.assert_allclose(xs.mean(0), m, atol=5 * np.sqrt(np.diag(C).max() / n))
    np.testing.assert_allclose(np.cov(xs.T), C, atol=0.08 * np.abs(C).max())


# --- work counts ----------------------------------------------------------------------------
class _Counting(GaussianMixture):
    """A mixture prior that counts its network evaluations on the host."""

    def eps(self, x, t):
        jax.debug.callback(lambda: _COUNT.__setitem__("nfe", _COUNT["nfe"] + 1))
        return super().eps(x, t)


_COUNT = {"nfe": 0}


@pytest.mark.parametrize("make, nfe, n_forward", [
    (lambda gm: inv.solvers.DDS(gm, n_steps=6, cg_steps=3), 6, 6 * 8),
    (lambda gm: inv.solvers.DiffPIR(gm, n_steps=6, cg_steps=3), 6, 6 * 8),
    (lambda gm: inv.solvers.DAPS(gm, n_anneal=4, n_ode=3, n_langevin=5), 4 * 3, 4 * 10),
    (lambda gm: inv.solvers.PnPDM(gm, n_steps=4, n_prior=3, cg_steps=3), 4 * 3, 4 * 8),
    (lambda gm: inv.solvers.STSL(gm, n_steps=5), 5 * 2, 5 * 4),
    (lambda gm: inv.solvers.DPS(gm, n_steps=5, n_samples=1), 5, 5 * 2),
    (lambda gm: inv.solvers.ScoreSDE(gm, n_steps=5, cg_steps=2, n_samples=1), 5 * 2, 5 * 7),
], ids=["dds", "diffpir", "daps", "pnpdm", "stsl", "dps", "score-sde"])
def test_work_counts(testbed, make, nfe, n_forward):
    """``stats["nfe"]`` against a callback in the network (one particle; STSL's
    Hessian-vector product is a second evaluation), and ``n_forward`` against
    the count of operator applications of each method written out here."""
    gm, prob, _, _ = testbed
    counting = _Counting(gm.weights, gm.means, gm.covs)
    solver = make(counting)
    _COUNT["nfe"] = 0
    sol = inv.solve(prob, solver, key=jax.random.key(0))
    jax.effects_barrier()
    assert sol.stats["nfe"] == nfe == _COUNT["nfe"] and sol.stats["n_forward"] == n_forward, (sol.stats, _COUNT)


# --- the exact-posterior test bed -------------------------------------------------------------
# Sliced W2 to N exact posterior draws at a small budget and at the paper's (seed 12). Settings
# were picked on a second mixture (other seeds, benchmarks' validation bed), not on this one.
# The sampling floor (two exact samples) is 0.030; the target, 2x the floor (0.059),
# is met by PnP-DM only: measured DDS 0.069, DiffPIR 0.130, DAPS 0.111, PnP-DM 0.038, STSL 0.065
# (0.065 also without the second-order term).
# Bounds at the measured value x 1.5 (deterministic given the seeds).
BUDGETS = {
    "dds": (lambda gm, n: inv.solvers.DDS(gm, n_steps=n, cg_steps=5, eta=1.0, n_samples=N), 10, 50),
    "diffpir": (lambda gm, n: inv.solvers.DiffPIR(gm, n_steps=n, cg_steps=8, zeta=1.0, n_samples=N), 10, 100),
    "daps": (lambda gm, n: inv.solvers.DAPS(gm, n_anneal=n, sigma_max=20.0, n_samples=N), 10, 100),
    "pnpdm": (lambda gm, n: inv.solvers.PnPDM(gm, n_steps=n, cg_steps=8, n_samples=N), 10, 40),
    "stsl": (lambda gm, n: inv.solvers.STSL(gm, n_steps=n, zeta=0.05, n_samples=N), 10, 50),
}
MEASURED = {"dds": 0.0691, "diffpir": 0.1300, "daps": 0.1108, "pnpdm": 0.0379, "stsl": 0.0646}


@pytest.mark.parametrize("name", list(BUDGETS))
def test_samplers_approach_the_exact_posterior(testbed, name):
    gm, prob, post, ref = testbed
    make, small, paper = BUDGETS[name]
    sw = {n: sliced_wasserstein(inv.solve(prob, make(gm, n), key=jax.random.key(12)).samples, ref,
                                jax.random.key(5)) for n in (small, paper)}
    assert sw[paper] < sw[small] and sw[paper] < 1.5 * MEASURED[name], sw


# --- bad input ------------------------------------------------------------------------------
def test_bad_input_gets_clear_errors(testbed):
    gm, prob, _, _ = testbed
    S = inv.solvers
    for cls in (S.DDS, S.DiffPIR, S.DAPS, S.PnPDM, S.STSL):
        with pytest.raises(TypeError, match="needs a score prior"):
            cls(inv.priors.TV(1.0))
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_steps must be a positive integer"):
            S.DDS(gm, n_steps=bad)
        with pytest.raises(ValueError, match="cg_steps must be a positive integer"):
            S.DDS(gm, cg_steps=bad)
        with pytest.raises(ValueError, match="n_langevin must be a positive integer"):
            S.DAPS(gm, n_langevin=bad)
        with pytest.raises(ValueError, match="n_anneal must be a positive integer"):
            S.DAPS(gm, n_anneal=bad)
        with pytest.raises(ValueError, match="n_prior must be a positive integer"):
            S.PnPDM(gm, n_prior=bad)
    with pytest.raises(ValueError, match="zeta .* must be in \\[0, 1\\]"):
        S.DiffPIR(gm, zeta=1.5)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        S.DAPS(gm, sigma_min=1.0, sigma_max=0.5)
    # DDS needs a linear forward model: the error names the solver and the problem
    with pytest.raises(inv.ProblemSolverIncompatible, match="DDS.*Squashed|Squashed.*DDS"):
        inv.solve(_squashed(prob), S.DDS(gm, n_steps=2), key=jax.random.key(0))
    # a prior whose samples have another shape than the unknown
    other = GaussianMixture.random(jax.random.key(0), D + 2, 2)
    for cls in (S.DDS, S.DiffPIR, S.DAPS, S.PnPDM, S.STSL):
        with pytest.raises(inv.ProblemSolverIncompatible, match=r"trained on samples of shape \(10,\)"):
            inv.solve(prob, cls(other), key=jax.random.key(0))
    # a key that is not a PRNG key; non-finite data
    with pytest.raises(TypeError, match="key"):
        inv.solve(prob, S.PnPDM(gm, n_steps=2), key=0)
    nan_prob = eqx.tree_at(lambda p: p.y_obs, prob, prob.y_obs.at[0].set(jnp.nan))
    for cls in (S.DDS, S.DiffPIR, S.DAPS, S.PnPDM, S.STSL):
        with pytest.raises(ValueError, match=r"y_obs \(the measurements\) contains NaN or infinite values"):
            inv.solve(nan_prob, cls(gm, n_steps=2) if cls is not S.DAPS else cls(gm, n_anneal=2),
                      key=jax.random.key(0))


class Squashed(inv.HasForward):
    """``y = tanh(A x) + sigma e``: a non-linear forward model on the test bed's unknown."""

    A: jax.Array
    y_obs: jax.Array
    noise: inv.GaussianNoise
    x_true: jax.Array

    def forward(self, x):
        return jnp.tanh(self.A @ x)

    def init_params(self):
        return jnp.zeros(self.A.shape[1], self.A.dtype)


def _squashed(prob):
    A = prob.A.matrix
    y = jnp.tanh(A @ prob.x_true) + SIGMA * jax.random.normal(jax.random.key(7), (M,))
    return Squashed(A, y, inv.GaussianNoise(SIGMA), prob.x_true)


def test_nonlinear_forward_models_run_through_daps_and_pnpdm(testbed):
    """DAPS and PnP-DM need only gradients of the likelihood. Their posterior mean on
    ``y = tanh(A x) + 0.1 e`` against the exact one by self-normalised importance sampling
    (2e5 prior draws weighted by the likelihood; effective sample size printed in the
    message, 1.1e4): the prior mean is 2.11 away; measured DAPS 0.174, PnP-DM 0.128 (500
    particles: Monte Carlo error about 0.06); bounds at 1.5x."""
    gm, prob, _, _ = testbed
    sq = _squashed(prob)
    xs = gm.draw(jax.random.key(20), 200_000)
    logw = -0.5 * jnp.sum((jnp.tanh(xs @ sq.A.T) - sq.y_obs) ** 2, axis=1) / SIGMA**2
    w = jax.nn.softmax(logw)
    mean = w @ xs
    ess = float(1.0 / jnp.sum(w**2))
    prior_err = float(jnp.linalg.norm(jnp.mean(xs, 0) - mean))
    for solver, measured in ((inv.solvers.DAPS(gm, n_anneal=50, sigma_max=20.0, n_samples=500), 0.174),
                             (inv.solvers.PnPDM(gm, n_steps=40, n_samples=500), 0.128)):
        sol = inv.solve(sq, solver, key=jax.random.key(1))
        err = float(jnp.linalg.norm(sol.value - mean))
        assert sol.result == inv.RESULTS.successful and err < 1.5 * measured, (type(solver).__name__, err, prior_err, ess)
