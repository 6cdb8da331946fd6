"""Optimizer comparison (issue 23): Adam, Adam -> L-BFGS, SOAP and M-FAC on four problems,
error and objective against steps and against wall time.

Problems (all CPU scale, float32 unless noted):

* ``allen-cahn``: the PINN benchmark with the expert's-guide recipe (`pinn-allen-cahn`'s
  quick network: 3x64, 1024 resampled points), 2000 steps;
* ``flame``: FlamePINN-1D's forward case (phi 0.42, 1 atm, s_L from 0.4), 3x64 tanh, 1001
  Hammersley points, 1000 warm-up steps then 2000 steps (float64, the paper's dtype);
* ``poisson-kappa``: log-coefficient MAP on a 32x32 grid, full-field data, `Tikhonov(100,
  order=2)`, 300 steps (float64);
* ``tumor``: the 2D MNI152-slice tumour MAP (`tumor-gradient`'s quick case), 300 steps.

Each optimizer gets the same three learning rates (best by final objective reported:
selection by the objective, not the error), except M-FAC, whose step while ``|g|^2 >>
damping`` is ~ ``lr / |g|``: its rates are ``(1e-3, 1e-2, 1e-1) |g_0|``. Adam -> L-BFGS runs Adam for 3/4 of the steps
then L-BFGS. M-FAC's damping is set from the problem's first gradient,
``damping = (|g_0| / 10)^2`` (see `invsolve.optim.scale_by_mfac`: the empirical Fisher has the
units of g^2). Wall time per step is the run's wall time less its compile time (the
driver's ``stats``), divided by the steps. "Time to Adam" is the wall time an optimizer needs to
reach the objective value Adam ends with.

Run: ``python benchmarks/optimizers.py [--quick]``; prints one table (markdown).
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import invsolve as inv
from invsolve import optim

jax.config.update("jax_enable_x64", True)
MFAC_STEPS = (1e-3, 1e-2, 1e-1)  # M-FAC's rates are these times |g_0| (its first steps are ~ lr / |g|)


def _problems(quick):
    from invsolve.problems import flame, pde, poisson, tumor

    s = 0.1 if quick else 1.0
    out = {}

    def ac():
        prob = pde.allen_cahn_1d()

        def solver(opt, steps, lbfgs=0):
            return inv.solvers.PINN(optimizer=opt, hidden=(64,) * 3, n_collocation=1024, resample_every=1,
                                    steps=steps, lbfgs_steps=lbfgs, warmup_steps=0, factorized=True, periodic=True,
                                    features="fourier", fourier_dim=64, causal=True, weighting="grad_norm",
                                    balance_every=200)

        return prob, solver, int(2000 * s), (3e-4, 1e-3, 3e-3), lambda sol: float(sol.metrics["rel_l2"])

    def fl():
        prob = flame.forward_problem(flame.FreelyPropagating(phi=0.42))

        def solver(opt, steps, lbfgs=0):
            return inv.solvers.PINN(optimizer=opt, steps=steps, lbfgs_steps=lbfgs, warmup_steps=int(1000 * s),
                                    dtype=jnp.float64)

        return prob, solver, int(2000 * s), (3e-4, 1e-3, 3e-3), lambda sol: float(sol.metrics["T_rel_l2"])

    def pk():
        prob = poisson.coefficient_identification((32, 32), None, 0.01, key=jax.random.key(0))

        def solver(opt, steps, lbfgs=0):
            if lbfgs:
                opt = _switch(opt, steps - lbfgs)
            return inv.solvers.GradientMAP(opt, prior=inv.priors.Tikhonov(100.0, order=2), max_steps=steps,
                                           gtol=None)

        return prob, solver, int(300 * s), (1e-2, 3e-2, 1e-1), lambda sol: float(sol.metrics["rel_l2"])

    def tu():
        brain = tumor.mni152_brain(3, 0.5, dtype=jnp.float32)
        truth = tumor.Params(0.1, 0.02, (0.6, 0.45), 300.0)
        prob = tumor.segmentation_inverse(brain, truth, (0.25, 0.675), key=jax.random.key(0))

        def solver(opt, steps, lbfgs=0):
            if lbfgs:
                opt = _switch(opt, steps - lbfgs)
            return inv.solvers.GradientMAP(opt, max_steps=steps, gtol=None)

        return prob, solver, int(300 * s), (3e-3, 1e-2, 3e-2), lambda sol: float(sol.metrics["dice_core"])

    out = {"allen-cahn": ac, "flame": fl, "poisson-kappa": pk, "tumor": tu}
    return out


def _switch(first, at):
    """``first`` for ``at`` steps, then L-BFGS."""
    return optim.then(first, optax.lbfgs(), at)


def _grad0(prob, solver):
    """|g_0|: the norm of the objective's first gradient (PINN: the physics loss)."""
    s = solver.prepare(prob)
    state = s.init(prob, jax.random.key(0))
    if isinstance(s, inv.solvers.PINN):
        f = s._loss(prob, state.points)
        g = jax.grad(lambda p: f(p)[0])(state.params)
    else:
        g = jax.grad(s._objective(prob))(state.theta)
    return float(optax.global_norm(g))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: a tenth of the steps")
    ap.add_argument("--only", nargs="*", help="problems to run (default all)")
    args = ap.parse_args(argv)
    rows = []
    for name, make in _problems(args.quick).items():
        if args.only and name not in args.only:
            continue
        prob, solver, steps, lrs, error = make()
        g0 = None
        results = {}
        for opt_name in ("adam", "adam+lbfgs", "soap", "mfac"):
            best = None
            if opt_name == "mfac" and g0 is None:
                g0 = _grad0(prob, solver(optax.adam(1e-3), steps))
            grid = [None] if opt_name == "adam+lbfgs" else [c * g0 for c in MFAC_STEPS] if opt_name == "mfac" else lrs
            for lr in grid:
                if opt_name == "adam":
                    opt, extra = optax.adam(lr), {}
                elif opt_name == "adam+lbfgs":
                    opt, extra = optax.adam(results["adam"]["lr"]), {"lbfgs": steps // 4}
                elif opt_name == "soap":
                    opt, extra = optim.soap(lr), {}
                else:
                    opt, extra = optim.mfac(lr, window=32, damping=(g0 / 10) ** 2), {}
                n_main = steps - extra.get("lbfgs", 0)
                try:
                    sol = inv.solve(prob, solver(opt, n_main, extra.get("lbfgs", 0)), key=jax.random.key(0))
                except inv.SolveError as e:
                    print(f"{name} {opt_name} lr={lr}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
                    continue
                compile_s = float(sol.stats["compile_time_s"])
                per_step = (float(sol.stats["wall_time_s"]) - compile_s) / int(sol.stats["num_steps"])
                loss = np.asarray(sol.history["loss"], float)
                r = {"lr": lr, "loss": loss, "final": float(loss[-1]), "error": error(sol), "per_step": per_step,
                     "compile": compile_s}
                print(f"{name} {opt_name} lr={lr}: objective {r['final']:.4g}, error {r['error']:.4g}, "
                      f"{per_step * 1e3:.1f} ms/step", flush=True)
                if best is None or (np.isfinite(r["final"]) and r["final"] < best["final"]):
                    best = r
            if best is not None:
                results[opt_name] = best
        target = results["adam"]["final"]
        t_adam = results["adam"]["per_step"] * len(results["adam"]["loss"])
        for opt_name, r in results.items():
            hit = np.nonzero(r["loss"] <= target)[0]
            t_hit = (hit[0] + 1) * r["per_step"] if hit.size else np.inf
            rows.append((name, opt_name, r["lr"], r["final"], r["error"], r["per_step"] * 1e3, r["compile"],
                         (hit[0] + 1) if hit.size else None, t_hit / t_adam))
    print()
    print("| problem | optimizer | lr | final objective | error | ms/step | compile s | steps to Adam's objective "
          "| time to Adam's objective / Adam's time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p, o, lr, f, e, ms, c, n, ratio in rows:
        print(f"| {p} | {o} | {'—' if lr is None else f'{lr:g}'} | {f:.3g} | {e:.3g} | {ms:.1f} | {c:.1f} | "
              f"{'—' if n is None else n} | {'not reached' if not np.isfinite(ratio) else f'{ratio:.2f}'} |")


if __name__ == "__main__":
    main()
