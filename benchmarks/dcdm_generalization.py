"""Iterations of DCDM on grid sizes and obstacle layouts not seen in training (the table of
docs/results.md), against CG and multigrid-PCG.

Run:  python benchmarks/dcdm_generalization.py            # 2D: poisson2d-64 at 64^2, 128^2, 256^2
      python benchmarks/dcdm_generalization.py --3d       # 3D: poisson3d-32 at 32^3, 64^3, 96^3

Every case: a random (N(0, 1)) or smooth (`poisson.smooth_field`) right-hand side on the
fluid cells, no obstacles or two `smoke_obstacles` layouts (keys never used in training),
stopping at a true relative residual of 1e-4, float64 iterations; DCDM with each new
direction A-orthogonalised against the last 2 (the paper) or 4.
"""

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import invsolve as inv  # noqa: E402
from invsolve.problems import poisson  # noqa: E402
from invsolve.solvers import dcdm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--3d", dest="three", action="store_true")
    ap.add_argument("--max-steps", type=int, default=300)
    args = ap.parse_args()
    nd, sizes = (3, [32, 64, 96]) if args.three else (2, [64, 128, 256])
    model = dcdm.pretrained("poisson3d-32" if args.three else "poisson2d-64")
    print("| N | rhs | obstacles | DCDM m=2 | DCDM m=4 | CG | MG-PCG |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        shape = (n,) * nd
        for rhs in ("random", "smooth"):
            for layout in (None, 7, 2):
                solid = None if layout is None else poisson.smoke_obstacles(
                    shape, jax.random.fold_in(jax.random.key(0), layout))
                A = poisson.operator(shape, kappa=jnp.ones(shape), obstacles=solid)
                b = (jax.random.normal(jax.random.key(0), shape) if rhs == "random"
                     else poisson.smooth_field(jax.random.key(0), shape).astype(jnp.float64))
                if solid is not None:
                    b = jnp.where(solid, 0.0, b)
                prob = poisson.linear_system(A, b)
                cells = []
                for m in (2, 4):
                    s = inv.solve(prob, inv.solvers.DCDM(model, rtol=1e-4, max_steps=args.max_steps,
                                                         n_orthogonalize=m), throw=False)
                    cells.append(str(s.stats["num_steps"]) if s.result == inv.RESULTS.successful
                                 else f"stalls at {s.history['residual'][-1]:.1e}")
                cg = inv.solve(prob, inv.solvers.CG(rtol=1e-4), throw=False).stats["num_steps"]
                mg = inv.solve(prob, inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-4), throw=False).stats["num_steps"]
                obst = "none" if layout is None else f"layout {layout}"
                print(f"| {n}{'²' if nd == 2 else '³'} | {rhs} | {obst} | {cells[0]} | {cells[1]} | {cg} | {mg} |",
                      flush=True)


if __name__ == "__main__":
    main()
