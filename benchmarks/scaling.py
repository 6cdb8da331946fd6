"""Throughput of many small problems: a Python loop vs `solve_batch` on 1, 2 and 8 devices.

Run:  python benchmarks/scaling.py            # about 1.5 minutes on 2 CPU cores
      python benchmarks/scaling.py --quick    # fewer repeats

One table. Rows:

1. poisson-inverse: 64 source identifications on an 8² and a 16² grid (one operator and sensor
   set, 64 data sets), GradientMAP with Adam, 100 steps each. Loop: `inv.solve` per problem (the
   compile is shared, done before timing). Batched: `inv.solve_batch` (one compiled vmap over
   the 64, sharded over the devices).
2. tumour-forward: 64 Fisher-Kolmogorov simulations (the quick experiment's MNI152 slice,
   50 x 63 at 3 mm, 263 explicit steps, float32) at 64 parameter sets (D, rho, seed). Loop:
   the jitted forward per parameter set. Batched: the same function under `jax.vmap`, the
   parameter axis sharded over the devices (`inv.distributed.mesh`).

Devices are simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
one child process per N) on the same 2 cores, so more devices cannot add compute here; the
column shows what the sharding costs or gains. Times are medians of REPEATS runs after a
compiling call; compile time is the first call minus the median. Efficiency = throughput on
N devices / (N x throughput on 1 device) would be the GPU figure; on 2 shared cores we report
the throughput ratio to the loop.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

N = 64


def _median_time(fn, repeats):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return med, max(first - med, 0.0)


def child(devices: int, repeats: int, with_loop: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import equinox as eqx  # noqa: F401
    import optax
    from jax.sharding import NamedSharding, PartitionSpec

    jax.config.update("jax_enable_x64", True)
    import invsolve as inv
    from invsolve.experiments.tumor import TumorConfig
    from invsolve.problems import poisson

    assert len(jax.devices()) == devices
    out = {}
    # --- poisson-inverse ------------------------------------------------------------------
    for n_grid, n_sensors in ((8, 16), (16, 40)):
        p0 = poisson.source_identification((n_grid, n_grid), n_sensors=n_sensors, noise=0.01, key=jax.random.key(0))
        ys = p0.y_obs * (1 + 0.05 * jax.random.normal(jax.random.key(1), (N, p0.y_obs.shape[0])))
        probs = [p0.with_observations(y) for y in ys]
        solver = inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.Tikhonov(1e-4, order=1), max_steps=100)

        def loop():
            return [jax.block_until_ready(inv.solve(p, solver, throw=False).value) for p in probs]

        def batch():
            return jax.block_until_ready(inv.solve_batch(probs, solver, devices=devices, throw=False).value)

        key = f"poisson{n_grid}"
        out[f"{key}_batch"] = _median_time(batch, repeats)
        if with_loop:
            out[f"{key}_loop"] = _median_time(loop, max(1, repeats // 2))
            out[f"{key}_max_diff"] = float(jnp.max(jnp.abs(jax.device_get(batch()) - jnp.stack(loop()))))
    # --- tumour-forward ---------------------------------------------------------------------
    prob = TumorConfig().problem(0)
    thetas = jax.vmap(prob.theta_from_unit)(jax.random.uniform(jax.random.key(2), (N, prob.box_dim)))
    fwd = jax.jit(lambda p, th: p.density(th))
    vfwd = jax.jit(jax.vmap(lambda p, th: p.density(th), in_axes=(None, 0)))
    sharded = jax.device_put(thetas, NamedSharding(inv.distributed.mesh(devices), PartitionSpec("batch")))

    def tloop():
        return [jax.block_until_ready(fwd(prob, jax.tree.map(lambda x: x[i], thetas))) for i in range(N)]

    def tbatch():
        return jax.block_until_ready(vfwd(prob, sharded))

    if with_loop:
        out["tumour_loop"] = _median_time(tloop, repeats)
    out["tumour_batch"] = _median_time(tbatch, repeats)
    # the batched results equal the loop's
    ref = jnp.stack(tloop())
    out["tumour_max_diff"] = float(jnp.max(jnp.abs(jax.device_get(tbatch()) - ref)))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", type=int, default=None)
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    if args.child is not None:
        print(json.dumps(child(args.child, repeats, with_loop=args.child == 1)))
        return
    results = {}
    for d in (1, 2, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={d}", "JAX_PLATFORMS": "cpu"}
        cmd = [sys.executable, __file__, "--child", str(d)] + (["--quick"] if args.quick else [])
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results[d] = json.loads(run.stdout.strip().splitlines()[-1])
    one = results[1]
    print(f"{N} problems; medians of {repeats} runs; simulated CPU devices on 2 cores")
    print(f"{'work':<16}{'method':<22}{'time [s]':>10}{'compile [s]':>13}{'problems/s':>12}{'vs loop':>9}")
    for work, key in (("poisson-inv 8²", "poisson8"), ("poisson-inv 16²", "poisson16"), ("tumour-forward", "tumour")):
        loop_t, loop_c = one[f"{key}_loop"]
        print(f"{work:<16}{'loop (one by one)':<22}{loop_t:>10.3f}{loop_c:>13.2f}{N / loop_t:>12.1f}{1.0:>9.2f}")
        for d in (1, 2, 8):
            t, c = results[d][f"{key}_batch"]
            print(f"{'':<16}{f'solve_batch, {d} dev':<22}{t:>10.3f}{c:>13.2f}{N / t:>12.1f}{loop_t / t:>9.2f}")
    print(f"max |batched - loop|: poisson 8² {one['poisson8_max_diff']:.1e}, 16² {one['poisson16_max_diff']:.1e}, "
          f"tumour (float32) {one['tumour_max_diff']:.1e}")


if __name__ == "__main__":
    main()
