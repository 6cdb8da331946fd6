"""GradientMAP on the Poisson inverse problems: accuracy, vmap, compilation, resume."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.problems import poisson
from helpers import check_grad, count_compilations


@pytest.fixture(scope="module")
def small():
    return poisson.source_identification(shape=(24, 24), n_sensors=60, noise=0.01, key=jax.random.key(0))


def test_forward_gradient_matches_finite_differences(small):
    theta = 0.5 * jax.random.normal(jax.random.key(1), small.shape)
    check_grad(small.neg_log_likelihood, theta, jax.random.key(2), rtol=1e-10, eps=1e-5)  # measured 2.5e-11
    kp = poisson.coefficient_identification(shape=(16, 16), n_sensors=40, noise=0.01, key=jax.random.key(3))
    z = 0.2 * jax.random.normal(jax.random.key(4), kp.shape)
    check_grad(kp.neg_log_likelihood, z, jax.random.key(5), rtol=3e-9, eps=1e-5)  # measured 7.8e-10


def test_forward_model_solves_the_pde(small):
    f = small.x_true
    u = small.solve_state(f)
    A = poisson.operator(small.shape, kappa=small.kappa)
    np.testing.assert_allclose(A.mv(u), f, atol=2e-10 * float(jnp.abs(f).max()))  # measured 9.1e-11
    clean = u.ravel()[small.sensors]
    r = (small.y_obs - clean) / small.noise.sigma  # standardised noise draw
    # measured std 0.84, mean 0.042 (60 draws: standard errors 0.09 and 0.13)
    assert abs(float(jnp.std(r)) - 1) < 0.3 and abs(float(jnp.mean(r))) < 0.12


@pytest.mark.slow  # 14 s on a quiet 2-core machine, cold cache
def test_vmap_over_noise_draws(small):
    solver = inv.solvers.GradientMAP(optax.adam(5e-2), prior=inv.priors.Tikhonov(300.0, order=2), max_steps=150)
    ys = small.y_obs + small.noise.sigma * jax.random.normal(jax.random.key(7), (8, *small.y_obs.shape))
    batched = jax.jit(jax.vmap(lambda y: inv.solve(small.with_observations(y), solver)))(ys)
    assert batched.value.shape == (8, *small.shape)
    assert np.all(np.asarray(batched.stats["num_steps"]) == 150)
    # each batch member equals the unbatched solve of the same data
    one = inv.solve(small.with_observations(ys[3]), solver)
    np.testing.assert_allclose(batched.value[3], one.value, rtol=0, atol=3e-13)  # measured 9.5e-14 (|value| <= 1.2)
    errs = jax.vmap(lambda v: inv.metrics.rel_l2(v, small.x_true))(batched.value)
    assert float(jnp.max(errs)) < 0.5 and float(jnp.std(errs)) > 0  # different draws, all sensible (measured max 0.23)


def test_fresh_optimizer_does_not_recompile(small):
    def run():
        s = inv.solvers.GradientMAP(optax.adam(1e-3), prior=inv.priors.Tikhonov(1e-4), max_steps=20)
        return inv.solve(small, s)

    first = run()
    with count_compilations() as c:
        second = run()
    assert c["compile"] == 0 and c["lower"] == 0, c
    np.testing.assert_array_equal(first.value, second.value)
    assert second.stats["compile_time_s"] == 0.0
    # a different learning rate is a different computation: it must not reuse the cache
    with count_compilations() as c:
        inv.solve(small, inv.solvers.GradientMAP(optax.adam(2e-3), prior=inv.priors.Tikhonov(1e-4), max_steps=20))
    assert c["lower"] > 0


@pytest.mark.slow  # 23 s on a quiet 2-core machine, cold cache
def test_lbfgs_converges_to_the_quadratic_minimum(small):
    """Source identification is linear-Gaussian: the MAP solves a linear system exactly."""
    prior = inv.priors.Tikhonov(10.0)
    sol = inv.solve(small, inv.solvers.GradientMAP(optax.lbfgs(), prior=prior, max_steps=300, gtol=1e-9))
    assert sol.result == inv.RESULTS.successful and sol.stats["num_steps"] < 300  # measured 98
    # normal equations (G^T G / s^2 + alpha I) f = G^T y / s^2 with G the dense forward map
    n = int(np.prod(small.shape))
    G = jax.vmap(lambda e: small.forward(e.reshape(small.shape)))(jnp.eye(n)).T
    s2 = small.noise.sigma**2
    f = np.linalg.solve(G.T @ G / s2 + 10.0 * np.eye(n), G.T @ small.y_obs / s2)
    np.testing.assert_allclose(np.asarray(sol.value).ravel(), f, rtol=0, atol=6e-7 * np.abs(f).max())  # measured 2.6e-7


def test_checkpoint_resume_after_kill_gives_the_same_answer(small, tmp_path):
    solver = inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.TV(1e-2), max_steps=100)
    ref = inv.solve(small, solver, driver=inv.HostLoop(chunk_size=10))
    ckpt = os.fspath(tmp_path / "run.npz")

    def kill_at_45(step, info):
        if step >= 45:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        inv.solve(small, solver, driver=inv.HostLoop(chunk_size=10, checkpoint=ckpt, callback=kill_at_45))
    assert os.path.exists(ckpt)
    resumed = inv.solve(small, solver, driver=inv.HostLoop(chunk_size=10, checkpoint=ckpt))
    assert resumed.stats["num_steps"] == 100
    np.testing.assert_array_equal(resumed.value, ref.value)
    np.testing.assert_array_equal(resumed.history["loss"], ref.history["loss"])


def test_coefficient_identification_recovers_kappa():
    prob = poisson.coefficient_identification(shape=(16, 16), noise=0.005, key=jax.random.key(2))
    start = float(inv.metrics.rel_l2(prob.constrain(prob.init_params()), prob.x_true))
    sol = inv.solve(prob, inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(100.0, order=2), max_steps=60))
    assert np.all(np.asarray(sol.value) > 0)
    assert float(sol.metrics["rel_l2"]) < 0.16 * start  # measured 0.017 vs start 0.244 (0.071 start); 2.3x margin


def test_chunks_follow_the_clock_and_the_budget_without_changing_the_answer(small):
    """The host hears from the device after step 1 (compile), then in chunks growing 8x until
    the step rate sets them (about one second each); with a progress bar, also at least every
    2 % of the budget. Chunking never changes the iterates."""
    solver = inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.TV(1e-2), max_steps=500)
    runs = {}
    for bar in (True, False):
        seen = []
        sol = inv.solve(small, solver, driver=inv.HostLoop(progress=bar, callback=lambda n, info: seen.append(n)))
        runs[bar] = (np.diff([0, *seen]), sol)
    with_bar, without = runs[True][0], runs[False][0]
    assert with_bar[0] == 1 and with_bar.max() <= 10 and with_bar.sum() == 500 and len(with_bar) >= 50
    assert list(without[:3]) == [1, 8, 64] and without.sum() == 500
    np.testing.assert_array_equal(runs[True][1].value, runs[False][1].value)
    np.testing.assert_array_equal(runs[True][1].history["loss"], runs[False][1].history["loss"])


def test_ctrl_c_saves_the_last_finished_chunk_and_says_where(small, tmp_path):
    solver = inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=100)
    ckpt = os.fspath(tmp_path / "c.npz")

    def interrupt(step, info):
        if step >= 30:
            raise KeyboardInterrupt

    with pytest.raises(inv.Interrupted) as e:
        inv.solve(small, solver, driver=inv.HostLoop(chunk_size=10, checkpoint=ckpt, callback=interrupt))
    assert e.value.step >= 30 and e.value.name == "GradientMAP" and e.value.checkpoint == ckpt
    resumed = inv.solve(small, solver, driver=inv.HostLoop(checkpoint=ckpt))
    ref = inv.solve(small, solver)
    np.testing.assert_array_equal(resumed.value, ref.value)
