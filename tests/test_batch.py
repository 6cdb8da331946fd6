"""`solve_batch`: batched and sharded solves equal one-by-one solves; clear errors."""

import json
import os
import re
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
    assert batch.value.shape == (5, 12, 12) and batch.stats["batch_size"] == 5 and batch.stats["devices"] == 1
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


@pytest.mark.slow  # 28 s on a quiet 2-core machine, cold cache
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


# Eleven 12x12 Poisson systems; right-hand side i is the sum of the first i + 1 sine
# eigenmodes of the operator, so CG takes exactly i + 1 steps on instance i.
EIGENMODE_SYSTEMS = """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import invsolve as inv
    from invsolve.problems import poisson
    A = poisson.operator((12, 12))
    modes = np.sin(np.pi * np.arange(1, 13)[:, None] * (np.arange(12) + 0.5)[None] / 12)
    probs = [poisson.linear_system(A, jnp.asarray(sum(np.outer(s, s) for s in modes[:i + 1]))) for i in range(11)]
    cg = inv.solvers.CG(rtol=1e-10)
"""

SHARDED = textwrap.dedent(EIGENMODE_SYSTEMS) + textwrap.dedent("""
    import json
    ones = [inv.solve(p, cg, max_steps=8, throw=False) for p in probs]
    out = {"devices": len(jax.devices()), "steps": [o.stats["num_steps"] for o in ones]}
    for d in (2, 8):  # one device: the in-process tests
        sol = inv.solve_batch(probs, cg, max_steps=8, devices=d, throw=False)
        steps = np.asarray(sol.stats["num_steps"]).tolist()
        res = np.asarray(sol.history["residual"])
        out[d] = {
            "value": max(float(np.max(np.abs(np.asarray(sol.value[i]) - o.value))) for i, o in enumerate(ones)),
            "history": max(float(np.max(np.abs(res[i, :k] - o.history["residual"]))) for i, (o, k) in enumerate(zip(ones, steps))),
            "nan_after_last_step": bool(all(np.isnan(res[i, k:]).all() for i, k in enumerate(steps))),
            "steps": steps == out["steps"],
            "results": np.asarray(sol.result).tolist() == [int(o.result) for o in ones],
            "devices": sol.stats["devices"], "spread": len(sol.value.sharding.device_set)}
    print(json.dumps(out))
""")


def _simulated_devices(script, n=8, **env):
    """Run ``script`` with ``n`` simulated CPU devices; its last printed line, as JSON."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu", **env}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_sharded_over_eight_devices_on_a_busy_machine_equals_one_by_one():
    """Eight simulated devices on a machine whose cores are kept busy by two spinning
    processes: every instance gets its own solve's value, history, step count and result
    code (instances 8-10 run out of steps), however the devices' threads are scheduled."""
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        out = _simulated_devices(SHARDED)
    finally:
        for p in spin:
            p.kill()
            p.wait()
    assert out["devices"] == 8 and out["steps"] == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8]
    for d in ("2", "8"):
        o = out[d]
        assert o["value"] <= 1e-12 and o["history"] <= 1e-12 and o["nan_after_last_step"], (d, o)
        assert o["steps"] and o["results"] and o["devices"] == int(d), (d, o)
    assert out["8"]["spread"] == 8  # the result lives on all eight devices


_COLLECTIVE = re.compile(r"\b(all-reduce|all-gather|collective-permute|all-to-all|reduce-scatter|collective-broadcast)(-start)?\(")


def _loop_collectives(hlo: str) -> tuple[int, list[str]]:
    """The number of while loops in an HLO module's text, and the collective instructions
    inside them: in a loop's condition or body, or in any computation those call."""
    comps, name = {}, None
    for line in hlo.splitlines():
        head = re.match(r"(?:ENTRY )?%([\w.\-]+) \(", line)
        if head:
            name, comps[head.group(1)] = head.group(1), []
        elif line == "}":
            name = None
        elif name is not None:
            comps[name].append(line)
    called = {c: {m for attr in re.findall(r"\w+=(%[\w.\-]+|\{%[^}]*\})", "\n".join(body))
                  for m in re.findall(r"%([\w.\-]+)", attr) if m in comps} for c, body in comps.items()}
    loops = re.findall(r" while\(.*?condition=%([\w.\-]+), body=%([\w.\-]+)", hlo)
    todo, seen = [c for pair in loops for c in pair], set()
    while todo:
        c = todo.pop()
        if c not in seen:
            seen.add(c)
            todo.extend(called[c])
    return len(loops), [line.strip() for c in seen for line in comps[c] if _COLLECTIVE.search(line)]


def test_no_device_waits_for_another_inside_the_loop(tmp_path):
    """The compiled batch (8 devices) has no collective (all-reduce, all-gather, ...) in any
    while loop: independent instances never synchronise per step (a per-step all-reduce of
    the stopping test aborted a busy 4-device run: "only 2 of 4 threads arrived")."""
    script = textwrap.dedent(EIGENMODE_SYSTEMS) + 'inv.solve_batch(probs, cg, devices=8)\nprint("{}")'
    _simulated_devices(script, XLA_FLAGS=f"--xla_force_host_platform_device_count=8 --xla_dump_to={tmp_path}")
    sharded_loops = 0
    for f in tmp_path.glob("*.cpu_after_optimizations.txt"):
        hlo = f.read_text()
        n_loops, collectives = _loop_collectives(hlo)
        assert not collectives, (f.name, collectives[:3])
        sharded_loops += n_loops * ("num_partitions=8" in hlo.splitlines()[0])
    assert sharded_loops >= 1  # the batch's loop was compiled, for eight devices, and checked


@pytest.mark.slow  # 25 s on a quiet 2-core machine, cold cache
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
