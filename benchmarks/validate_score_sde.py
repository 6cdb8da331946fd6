"""Choose ScoreSDE's ``skip_last_projection`` on the validation slab (never the test slices).

Sparse-view CT as in ``invsolve run ct-score-sde`` (64^2, 30 views, 1 % noise, the shipped
``mni-64`` prior, 500 steps, 8 samples), on the validation slices z 128-135 of
`phantoms.axial_slices("val")`. At the last step the data are not diffused (``y_t = y``), so
the projected estimate is the unprojected one followed by the same CGLS projection: one run
per slice gives both (the posterior mean of the samples, with and without the projection).

Run:  python benchmarks/validate_score_sde.py            # every validation slice
      python benchmarks/validate_score_sde.py --slices 2  # every 4th
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import invsolve as inv
from invsolve.problems import phantoms, tomography


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8, help="validation slices (spread over the slab)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    prior = inv.priors.ScorePrior.pretrained("mni-64")
    xs, zs = phantoms.axial_slices("val", 64)
    pick = np.linspace(0, len(zs) - 1, args.slices).round().astype(int)
    solver = inv.solvers.ScoreSDE(prior, n_steps=args.steps, n_samples=args.samples, clip=(0.0, 1.0),
                                  skip_last_projection=True)
    rows = []
    for i in pick:
        prob = tomography.sparse_view(xs[i], n_angles=30, noise=0.01, key=jax.random.key(1000 + int(zs[i])))
        t0 = time.perf_counter()
        sol = inv.solve(prob, solver, key=jax.random.key(2000 + int(zs[i])))
        projected = solver._project(prob, sol.samples, jnp.ones(()), jnp.zeros(()), jax.random.key(0))
        skip, proj = inv.metrics.psnr(sol.value, xs[i]), inv.metrics.psnr(jnp.mean(projected, 0), xs[i])
        rows.append((int(zs[i]), float(skip), float(proj)))
        print(f"z {zs[i]}: unprojected {skip:.2f} dB, projected {proj:.2f} dB ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    skip, proj = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    print(f"\n| last step | mean PSNR on {len(rows)} validation slices (dB) |\n|---|---|\n"
          f"| unprojected (skip_last_projection=True) | {skip:.2f} |\n| projected | {proj:.2f} |\n"
          f"choice: skip_last_projection={bool(skip >= proj)} ({skip - proj:+.2f} dB)")


if __name__ == "__main__":
    main()
