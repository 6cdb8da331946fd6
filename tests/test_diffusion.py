"""Diffusion priors and posterior samplers: the analytic Gaussian-mixture test bed (exact
score, exact posterior, sliced Wasserstein distances), a trained score against the analytic
one, training resume and I/O, DiffusionMBIR's z-regularisation, the shipped priors, and bad
input."""

import dataclasses

import equinox as eqx
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.priors import GaussianMixture, ScorePrior
from invsolve.problems import fields, phantoms, poisson, tomography
from helpers import count_compilations, mixture_testbed, sliced_wasserstein

D, M, SIGMA, N = 8, 4, 0.1, 1000


@pytest.fixture(scope="module")
def testbed():
    """A 5-component mixture in 8D, y = A x + 0.1 e with a random 4 x 8 A, its exact posterior
    and N exact posterior draws (`helpers.mixture_testbed`)."""
    return mixture_testbed(N, D, M, SIGMA)


# --- the analytic test bed --------------------------------------------------------------
def test_mixture_noise_prediction_is_minus_s_times_the_autodiff_score(testbed):
    gm = testbed[0]
    x = jax.random.normal(jax.random.key(1), (3, D))
    for t in (0.05, 0.4, 0.9):
        _, s = gm.sde.mean_std(t)
        ref = -s * jax.vmap(jax.grad(lambda z: gm.log_prob(z, t)))(x)
        np.testing.assert_allclose(gm.eps(x, t), ref, rtol=1e-10, atol=1e-12)
    ts = jnp.array([0.05, 0.4, 0.9])  # one time per sample
    np.testing.assert_allclose(gm.eps(x, ts), jnp.stack([gm.eps(x[i], ts[i]) for i in range(3)]), rtol=1e-10)


def test_mixture_posterior_is_prior_times_likelihood(testbed):
    """log post(x) - log prior(x) - log lik(y | x) is the same constant at any x."""
    gm, prob, post, _ = testbed
    A, y = prob.A.matrix, prob.y_obs
    xs = jax.random.normal(jax.random.key(3), (6, D)) * 2
    diff = [post.log_prob(x) - gm.log_prob(x) + 0.5 * jnp.sum((A @ x - y) ** 2) / SIGMA**2 for x in xs]
    np.testing.assert_allclose(diff, diff[0], rtol=0, atol=1e-9)


def test_unconditional_samplers_approach_the_prior_with_more_steps(testbed):
    gm = testbed[0]
    ref = gm.draw(jax.random.key(2), N)
    sw = lambda x: sliced_wasserstein(x, ref, jax.random.key(5))  # noqa: E731
    coarse = sw(gm.sample(jax.random.key(3), N, 3, dtype=jnp.float64))
    fine = sw(gm.sample(jax.random.key(3), N, 100, dtype=jnp.float64))
    with count_compilations() as c:  # the chain is compiled once per prior structure and settings
        again = gm.sample(jax.random.key(4), N, 100, dtype=jnp.float64)
    assert c["lower"] == 0 and again.shape == (N, D), c
    ode = sw(gm.sample(jax.random.key(3), N, 50, method="ode", dtype=jnp.float64))
    floor = sw(gm.draw(jax.random.key(9), N))  # two exact samples differ by this much
    assert fine < 0.5 * coarse and fine < floor + 0.1 and ode < floor + 0.1, (coarse, fine, ode, floor)


@pytest.mark.parametrize("make", [lambda gm, n: inv.solvers.DPS(gm, n_steps=n, zeta=0.5, n_samples=N),
                                  lambda gm, n: inv.solvers.ScoreSDE(gm, n_steps=n, n_samples=N)],
                         ids=["dps", "score-sde"])
def test_posterior_samplers_approach_the_exact_posterior(testbed, make):
    gm, prob, post, ref = testbed
    prior_gap = sliced_wasserstein(gm.draw(jax.random.key(2), N), ref, jax.random.key(5))
    sw = {n: sliced_wasserstein(inv.solve(prob, make(gm, n), key=jax.random.key(12)).samples, ref,
                                jax.random.key(5)) for n in (4, 100)}
    assert sw[100] < sw[4] and sw[100] < 0.15 * prior_gap, (sw, prior_gap)


def test_reddiff_reaches_the_posterior_mean_region(testbed):
    """RED-diff is variational (mode seeking): its particles sit near the posterior mean."""
    gm, prob, post, ref = testbed
    sol = inv.solve(prob, inv.solvers.REDDiff(gm, optimizer=optax.adam(0.05), n_steps=100, n_samples=8),
                    key=jax.random.key(1))
    err = float(jnp.linalg.norm(sol.value - ref.mean(0)))
    init = float(jnp.linalg.norm(jnp.linalg.pinv(prob.A.matrix) @ prob.y_obs - ref.mean(0)))
    assert sol.samples.shape == (8, D) and err < 0.3 * init and err < 0.25, (err, init)
    assert sol.result == inv.RESULTS.successful and sol.stats["num_steps"] == 100


# --- learned scores -----------------------------------------------------------------------
@pytest.mark.slow  # 14 s each on a quiet 2-core machine, cold cache
@pytest.mark.parametrize("edm", [False, True])
def test_trained_score_matches_the_analytic_mixture_score(testbed, edm):
    """Plain noise prediction with uniform times, and EDM preconditioning with log-normal
    noise levels and EDM's weight: both learn the exact score to 5 % (measured: see print)."""
    gm = testbed[0]
    extra = dict(precond="edm", noise=(0.0, 1.5)) if edm else {}
    prior = ScorePrior.train(lambda k, n: gm.draw(k, n).astype(jnp.float32), "vp",
                             optax.adam(optax.cosine_decay_schedule(2e-3, 3000)), jax.random.key(0),
                             steps=3000, batch_size=256, ema=0.99, hidden=128, depth=3, data_std=2.0, **extra)
    x0 = gm.draw(jax.random.key(11), 512)
    for t in (0.2, 0.5, 0.8):
        a, s = gm.sde.mean_std(t)
        xt = a * x0 + s * jax.random.normal(jax.random.key(12), x0.shape)
        exact = gm.eps(xt, t)
        rel = float(jnp.mean((prior.eps(xt.astype(jnp.float32), t) - exact) ** 2) / jnp.mean(exact**2))
        print(t, rel)
        assert rel < 0.05, (t, rel)


def test_training_resumes_bit_identically(tmp_path):
    data = np.asarray(jax.random.normal(jax.random.key(0), (32, 4)))
    kw = dict(steps=6, batch_size=4, hidden=16, depth=1, progress=False)
    full = ScorePrior.train(data, "ve", optax.adam(1e-3), jax.random.key(1), **kw)
    ck = tmp_path / "ck.npz"
    ScorePrior.train(data, "ve", optax.adam(1e-3), jax.random.key(1), checkpoint=ck, time_limit_s=0.0, **kw)
    resumed = ScorePrior.train(data, "ve", optax.adam(1e-3), jax.random.key(1), checkpoint=ck, **kw)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    assert dict(resumed.info)["steps"] == 6


@pytest.mark.slow  # 12 s on two cores
def test_unet_prior_saves_and_loads(tmp_path):
    for precond in ("eps", "edm"):
        prior = ScorePrior.init((8, 8), jax.random.key(0), sde=inv.priors.VE(sigma_max=20.0), channels=(4, 8),
                                precond=precond)
        prior = dataclasses.replace(prior, info=(("note", "x"),))
        prior.save(tmp_path / "p.npz")
        back = ScorePrior.load(tmp_path / "p.npz")
        x = phantoms.random_ellipses(jax.random.key(0), 2, 8)
        np.testing.assert_array_equal(back.eps(x, 0.3), prior.eps(x, 0.3))
        assert back.sde == prior.sde and back.info == prior.info and back.config == prior.config
        assert back.precond == precond


def test_edm_preconditioning_is_karras_table_1():
    """``precond="edm"``: Tweedie's denoiser is ``c_skip x + c_out F(c_in x, log sigma)`` with
    EDM's coefficients (Karras et al. 2022, Table 1) for ``x = x_t / a``, computed here from
    the raw network output in float64."""
    sd = 0.7
    prior = ScorePrior.init((5,), jax.random.key(0), hidden=16, depth=2, data_std=sd, precond="edm",
                            dtype=jnp.float64)
    t = jnp.array([0.05, 0.4, 0.9])
    x = jax.random.normal(jax.random.key(1), (3, 5), jnp.float64)
    a, s = prior.sde.mean_std(t)
    sigma = s / a
    net = nnx.merge(prior.graphdef, prior.params)
    f = net(x / jnp.sqrt(a**2 * sd**2 + s**2)[:, None], jnp.log(sigma))
    xs = x / a[:, None]
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / jnp.sqrt(sigma**2 + sd**2)
    want = c_skip[:, None] * xs + c_out[:, None] * f
    np.testing.assert_allclose(prior.denoise(x, t), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="precond must be 'eps' or 'edm'"):
        ScorePrior.init((5,), jax.random.key(0), precond="x0")
    for bad in [(0.0, -1.0), 1.2, (0.0, "x"), (float("nan"), 1.0)]:
        with pytest.raises(ValueError, match=r"noise must be \(P_mean, P_std > 0\)"):
            ScorePrior.train(np.zeros((4, 5), np.float32), steps=1, noise=bad, hidden=8, depth=1)


@pytest.mark.slow  # 18 s on a quiet 2-core machine, cold cache
@pytest.mark.parametrize("name", ["mni-64", "mni-64-edm", "ellipses-64", "darcy-32"])
def test_shipped_priors_denoise_held_out_images(name):
    """Tweedie's denoiser of the shipped prior at noise 0.1 gains > 6 dB on unseen images."""
    prior = ScorePrior.pretrained(name)
    x = (phantoms.axial_slices("test", 64)[0][::8] if name.startswith("mni-64")
         else fields.log_permeability(jax.random.key(123), 3, (32, 32)) if name == "darcy-32"
         else phantoms.random_ellipses(jax.random.key(123), 3, 64))
    t = 0.1  # s/a about 0.2 at t=0.1 for VP(0.1, 20): find it
    a, s = prior.sde.mean_std(jnp.float32(t))
    xt = a * x + s * jax.random.normal(jax.random.key(0), x.shape)
    noisy = inv.metrics.psnr(xt / a, x)
    den = inv.metrics.psnr(prior.denoise(xt, t), x)
    assert den > noisy + 6, (noisy, den)


# --- DiffusionMBIR --------------------------------------------------------------------------
def test_mbir_z_regularisation_makes_a_smooth_stack_consistent(testbed):
    """A stack of 6 nearly equal 8-vectors, each seen through its own 4 x 8 matrix: TV along
    the stack (tv_z > 0) beats independent per-slice sampling (tv_z = 0)."""
    gm = testbed[0]
    nz = 6
    base = gm.draw(jax.random.key(20), 1)[0]
    x_true = base + 0.02 * jax.random.normal(jax.random.key(21), (nz, D))
    As = jax.random.normal(jax.random.key(22), (nz, M, D)) / np.sqrt(D)
    big = jax.scipy.linalg.block_diag(*As)
    y = big @ x_true.ravel() + SIGMA * jax.random.normal(jax.random.key(23), (nz * M,))
    prob = inv.LinearInverse(inv.MatrixOperator.from_array(big, (nz, D), (nz * M,)), y, inv.GaussianNoise(SIGMA),
                             x_true)
    errs = {}
    for tv in (0.0, 1.0):
        sol = inv.solve(prob, inv.solvers.DiffusionMBIR(gm, tv_z=tv, rho=10.0, n_steps=100, n_samples=16, cg_steps=3),
                        key=jax.random.key(2))
        errs[tv] = (float(jnp.mean(jnp.linalg.norm(sol.samples - x_true, axis=-1))),
                    float(jnp.mean(jnp.abs(jnp.diff(sol.samples, axis=1)))))
    assert errs[1.0][0] < errs[0.0][0] and errs[1.0][1] < 0.5 * errs[0.0][1], errs


# --- bad input --------------------------------------------------------------------------------
def test_bad_input_gets_clear_errors(testbed):
    gm, prob, _, _ = testbed
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_steps must be a positive integer"):
            inv.solvers.DPS(gm, n_steps=bad)
    with pytest.raises(ValueError, match="zeta must be a non-negative"):
        inv.solvers.DPS(gm, zeta=-1.0)
    with pytest.raises(TypeError, match="needs a score prior"):
        inv.solvers.DPS(inv.priors.TV(1.0))
    with pytest.raises(ValueError, match="needs an optax optimizer"):
        inv.solvers.REDDiff(gm)
    other = GaussianMixture.random(jax.random.key(0), D + 2, 2)
    with pytest.raises(inv.ProblemSolverIncompatible, match=r"trained on samples of shape \(10,\).*unknown has shape \(8,\)"):
        inv.solve(prob, inv.solvers.DPS(other, n_steps=2), key=jax.random.key(0))
    nan_prob = eqx.tree_at(lambda p: p.y_obs, prob, prob.y_obs.at[0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"y_obs \(the measurements\) contains NaN or infinite values"):
        inv.solve(nan_prob, inv.solvers.ScoreSDE(gm, n_steps=2), key=jax.random.key(0))
    with pytest.raises(inv.ProblemSolverIncompatible):
        inv.solve(poisson.PoissonPINN(hard_bc=True, n_eval=5), inv.solvers.DPS(gm, n_steps=2), key=jax.random.key(0))
    with pytest.raises(inv.ProblemSolverIncompatible, match="stack of slices"):
        inv.solve(prob, inv.solvers.DiffusionMBIR(gm, n_steps=2), key=jax.random.key(0))


def test_a_prior_at_another_resolution_is_refused_on_ct():
    prior = ScorePrior.pretrained("ellipses-64")
    x = phantoms.shepp_logan(32)
    prob = tomography.sparse_view(x, n_angles=8, noise=0.01, key=jax.random.key(0))
    with pytest.raises(inv.ProblemSolverIncompatible, match=r"trained on samples of shape \(64, 64\).*\(32, 32\)"):
        inv.solve(prob, inv.solvers.DPS(prior, n_steps=2), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"trained on samples of shape \(64, 64\)"):
        prior.eps(jnp.zeros((2, 32, 32)), 0.5)



@pytest.mark.slow  # 45 s; the CLI contract is covered by tests/test_cli.py
def test_experiments_write_the_results_contract(tmp_path):
    import json

    from invsolve import cli

    for name, sets, keys in (("ct-reddiff", ["n_steps=2", "tv_steps=5"], ("psnr", "ssim", "psnr_fbp", "psnr_tv", "mean_std")),
                             ("ct3d-mbir", ["n_steps=1", "n_slices=2"], ("psnr", "psnr_independent_slices"))):
        args = ["run", name, "--quick", "--out", str(tmp_path / name)] + [a for s in sets for a in ("--set", s)]
        assert cli.main(args) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())["metrics"]
        assert all(np.isfinite(metrics[k]) for k in keys), metrics
