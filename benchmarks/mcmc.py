"""NUTS through the invsolve driver vs. a plain blackjax loop, on the same posterior.

Run:  python benchmarks/mcmc.py            # about 3 minutes on 2 CPU cores
      python benchmarks/mcmc.py --quick    # fewer samples

One table. Rows (each: invsolve `solve(prob, NUTS(...))`, then the same sampler written
directly with blackjax: `window_adaptation(...).run` then `lax.scan` over `nuts.step`; same
seed, warm-up, target acceptance and tree depth):

1. linear-Gaussian, 3 unknowns (float64): the analytic posterior is known; the error columns
   are the largest |mean - exact| and |std/exact - 1|.
2. tumour, the quick experiment's case (MNI152 axial slice at 3 mm, 50 x 63, 263 explicit
   steps per simulation, float32; D, rho and the 2-D seed, uniform prior on the box): the cost
   per effective sample (sampling wall time / the smallest ESS over the parameters) is the
   number this benchmark reports.

Times exclude compilation (a first call with the same shapes compiles; reported apart).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import invsolve as inv


def plain_blackjax(logdensity, w0, key, n_warmup, n_samples, max_depth):
    import blackjax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    @jax.jit
    def run(key, w0):
        k1, k2 = jax.random.split(key)
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=0.8,
                                           adaptation_info_fn=get_filter_adapt_info_fn(), max_num_doublings=max_depth)
        (state, params), _ = adapt.run(k1, w0, num_steps=n_warmup)
        kernel = blackjax.nuts(logdensity, **params).step  # params carry max_num_doublings

        def body(s, k):
            s, _ = kernel(k, s)
            return s, s.position

        _, draws = jax.lax.scan(body, state, jax.random.split(k2, n_samples))
        return draws

    return run


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def row(name, prob, nuts, key, exact=None):
    # invsolve: compile on a first solve, then time a second (same structure: no recompile)
    first = inv.solve(prob, nuts, key=key)
    sol, t_inv = timed(lambda: inv.solve(prob, nuts, key=key))
    leaves = [np.asarray(x).reshape(nuts.n_samples, -1) for x in jax.tree.leaves(sol.samples)]
    ess_inv = min(float(np.min(inv.metrics.effective_sample_size(x))) for x in leaves)
    # plain blackjax on the same log density and start
    logdensity = lambda w: nuts.log_density(prob, w)  # noqa: E731
    run = plain_blackjax(logdensity, nuts._start(prob), key, nuts.n_warmup, nuts.n_samples, nuts.max_tree_depth)
    t0 = time.perf_counter()
    jax.block_until_ready(run(key, nuts._start(prob)))
    first_bj = time.perf_counter() - t0
    draws, t_bj = timed(lambda: run(key, nuts._start(prob)))
    phys = jax.vmap(lambda w: prob.constrain(nuts.to_theta(prob, w)))(draws)
    ess_bj = min(float(np.min(inv.metrics.effective_sample_size(np.asarray(x).reshape(nuts.n_samples, -1))))
                 for x in jax.tree.leaves(phys))
    err = ""
    if exact is not None:
        mean, std = exact
        err = (f"{float(jnp.max(jnp.abs(sol.value - mean))):.3f} / {float(jnp.max(jnp.abs(sol.std / std - 1))):.3f}")
    n = nuts.n_warmup + nuts.n_samples
    print(f"| {name} | invsolve NUTS | {n} | {t_inv:.2f} | {first.stats['compile_time_s']:.1f} | {ess_inv:.0f} | "
          f"{t_inv / ess_inv * 1e3:.3g} | {t_inv / t_bj:.2f} | {err} |")
    print(f"| {name} | plain blackjax | {n} | {t_bj:.2f} | {max(first_bj - t_bj, 0):.1f} | {ess_bj:.0f} | "
          f"{t_bj / ess_bj * 1e3:.3g} | 1.00 | |")
    return sol


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 300 if args.quick else 1000
    print("| problem | sampler | transitions | time [s] | compile [s] | min ESS | ms per effective sample | "
          "time ratio | mean err / std rel err |")
    print("|---|---|---|---|---|---|---|---|---|")
    with jax.enable_x64(True):
        A = jax.random.normal(jax.random.key(0), (5, 3))
        y = A @ (jax.random.normal(jax.random.key(1), (3,)) / np.sqrt(2.0)) + 0.3 * jax.random.normal(jax.random.key(2), (5,))
        lin = inv.LinearInverse(inv.MatrixOperator.from_array(A), y, inv.GaussianNoise(0.3))
        C = jnp.linalg.inv(A.T @ A / 0.09 + 2.0 * jnp.eye(3))
        row("linear-Gaussian 3D", lin, inv.solvers.NUTS(n_samples=n, n_warmup=n // 2, prior=inv.priors.Tikhonov(2.0)),
            jax.random.key(3), exact=(C @ A.T @ y / 0.09, jnp.sqrt(jnp.diag(C))))
    from invsolve.experiments.tumor import TumorConfig

    prob = TumorConfig().problem(0)
    row("tumour 2D quick (50x63)", prob, inv.solvers.NUTS(n_samples=n // 2, n_warmup=n // 2), jax.random.key(4))


if __name__ == "__main__":
    main()
