"""`solve_batch`: batched and sharded solves equal one-by-one solves; clear errors."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import equinox as eqx

import invsolve as inv
from invsolve.priors import GaussianMixture
from invsolve.problems import poisson


@pytest.fixture(scope="module")
def systems():
    """Five 12x12 Poisson systems, one operator, right-hand sides of different roughness, so
    CG stops after different numbers of steps in each."""
    A = poisson.operator((12, 12))
    rhs = [jax.random.normal(jax.random.key(i), (12, 12)) * (i + 1) if i % 2 else jnp.ones((12, 12)) * (i + 1)
           for i in range(5)]
    return [poisson.linear_system(A, b) for b in rhs]


def test_batched_cg_equals_one_by_one_including_step_counts(systems):
    solver = inv.solvers.CG(rtol=1e-10)
    batch = inv.solve_batch(systems, solver)
    assert batch.value.shape == (5, 12, 12) and batch.stats["batch_size"] == 5
    steps = np.asarray(batch.stats["num_steps"])
    assert len(set(steps.tolist())) > 1  # the instances really stop at different steps
    for i, p in enumerate(systems):
        one = inv.solve(p, solver)
        assert int(steps[i]) == one.stats["num_steps"]
        np.testing.assert_allclose(batch.value[i], one.value, rtol=0, atol=1e-12)
        k = one.stats["num_steps"]
        np.testing.assert_allclose(batch.history["residual"][i, :k], one.history["residual"], rtol=1e-9)
        assert np.all(np.isnan(batch.history["residual"][i, k:]))
    np.testing.assert_array_equal(batch.result, 0)


def test_a_stacked_problem_gives_the_same_as_the_list(systems):
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *systems)
    a = inv.solve_batch(systems, inv.solvers.CG(rtol=1e-10))
    b = inv.solve_batch(stacked, inv.solvers.CG(rtol=1e-10))
    np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    single = inv.solve_batch(systems[:1], inv.solvers.CG(rtol=1e-10))  # a batch of one
    assert single.value.shape == (1, 12, 12)
    np.testing.assert_array_equal(np.asarray(single.value[0]), np.asarray(a.value[0]))


@eqx.filter_jit
def one_by_one(problem, solver, key, max_steps):
    return inv.solve(problem, solver, key=key, max_steps=max_steps, driver=inv.DeviceLoop())


def test_batched_map_and_a_stochastic_sampler_equal_one_by_one():
    p0 = poisson.source_identification(shape=(12, 12), n_sensors=30, noise=0.01, key=jax.random.key(0))
    probs = [p0.with_observations(p0.y_obs * (1 + 0.1 * i)) for i in range(3)]
    gmap = inv.solvers.GradientMAP(optimizer=optax.adam(1e-2), prior=inv.priors.Tikhonov(1e-4))
    batch = inv.solve_batch(probs, gmap, max_steps=20)
    for i, p in enumerate(probs):
        one = one_by_one(p, gmap, None, 20)
        np.testing.assert_allclose(batch.value[i], one.value, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch.metrics["rel_l2"][i], one.metrics["rel_l2"], rtol=1e-12)

    gm = GaussianMixture.random(jax.random.key(0), 4, 3)
    A = jax.random.normal(jax.random.key(1), (2, 4))
    ys = jax.random.normal(jax.random.key(2), (3, 2))
    lin = [inv.LinearInverse(inv.MatrixOperator.from_array(A), y, inv.GaussianNoise(0.1)) for y in ys]
    dps = inv.solvers.DPS(gm, n_steps=10, zeta=0.5, n_samples=4)
    keys = jax.random.split(jax.random.key(3), 3)
    batch = inv.solve_batch(lin, dps, keys)
    assert batch.samples.shape == (3, 4, 4)
    for i, p in enumerate(lin):
        one = one_by_one(p, dps, keys[i], 10)
        np.testing.assert_allclose(batch.samples[i], one.samples, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="stochastic"):
        inv.solve_batch(lin, dps)
    with pytest.raises(ValueError, match="2 keys for 3 problems"):
        inv.solve_batch(lin, dps, keys[:2])


def test_bad_batches_name_the_field_that_differs(systems):
    cg = inv.solvers.CG()
    other = poisson.linear_system(poisson.operator((10, 10)), jnp.ones((10, 10)))
    with pytest.raises(ValueError, match=r"instance 1 does not stack.*problem.A.faces\[0\] has shape \(11, 10\) here but \(13, 12\)"):
        inv.solve_batch([systems[0], other], cg)
    p0 = poisson.source_identification(shape=(12, 12), n_sensors=30, noise=0.01, key=jax.random.key(0))
    p1 = poisson.source_identification(shape=(12, 12), n_sensors=31, noise=0.01, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"problem.sensors has shape \(31,\) here but \(30,\)"):
        inv.solve_batch([p0, p1], cg)
    with pytest.raises(ValueError, match="asked for 64 devices but this run has 1"):
        inv.solve_batch(systems, cg, devices=64)
    with pytest.raises(ValueError, match="empty"):
        inv.solve_batch([], cg)
    with pytest.raises(inv.ProblemSolverIncompatible):
        inv.solve_batch([p0, p0.with_observations(p0.y_obs * 2)], cg)
    with pytest.raises(inv.SolveError, match=r"5 of 5 instances did not succeed"):
        inv.solve_batch(systems, inv.solvers.CG(rtol=1e-14), max_steps=3)


SHARDED = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import invsolve as inv
    from invsolve.problems import poisson
    A = poisson.operator((12, 12))
    probs = [poisson.linear_system(A, jax.random.normal(jax.random.key(i), (12, 12))) for i in range(11)]
    cg = inv.solvers.CG(rtol=1e-10)
    out = {"devices": len(jax.devices())}
    ref = np.stack([np.asarray(inv.solve(p, cg).value) for p in probs])
    for d in (1, 2, 8):
        sol = inv.solve_batch(probs, cg, devices=d)
        out[d] = [float(np.max(np.abs(np.asarray(sol.value) - ref))), sol.stats["devices"],
                  len(sol.value.sharding.device_set)]
    print(json.dumps(out))
""")


def test_sharded_over_eight_simulated_devices_equals_one_by_one():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    for d in ("1", "2", "8"):
        err, used, spread = out[d]
        assert used == int(d) and err <= 1e-12, out
    assert out["8"][2] == 8  # the result lives on all eight devices


def test_data_parallel_training_over_four_devices_equals_one_device():
    """Score and LPN training (batches split over 4 simulated devices) and a PINN (collocation
    points split) give the one-device parameters / losses to float32 round-off."""
    script = os.path.join(os.path.dirname(__file__), "scripts", "data_parallel_training.py")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    for name in ("score", "lpn", "pinn"):
        assert out[name] < 1e-5, out
    assert "batch of 6 does not split evenly over 4 devices" in out["uneven"]


def test_data_parallel_bad_input():
    data = np.zeros((8, 4), np.float32)
    with pytest.raises(ValueError, match="asked for 2 devices but this run has 1"):
        inv.priors.ScorePrior.train(data, steps=1, batch_size=4, devices=2, hidden=8)
    with pytest.raises(ValueError, match="divides n_collocation"):
        inv.solvers.PINN(n_collocation=15, devices=2)
    from invsolve._batch import data_parallel

    _, shard = data_parallel(1)
    assert shard(jnp.ones((3, 2))).shape == (3, 2)
