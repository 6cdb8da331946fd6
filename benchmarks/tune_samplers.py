"""Pick the settings of the posterior samplers on the validation slab (never the test slices).

Sparse-view CT as in the ``ct-*`` experiments (64^2, 30 views, 1 % noise, the shipped
``mni-64`` prior) on ``--slices`` slices of `phantoms.axial_slices("val")`: each method over a
small grid of its main settings, one sample per slice, mean PSNR and seconds per slice
(compile excluded). The experiments' defaults (`invsolve.experiments.diffusion.CTConfig`) are
the best row of each method here.

Run:  python benchmarks/tune_samplers.py                       # every method
      python benchmarks/tune_samplers.py --methods dds,diffpir --slices 2
      python benchmarks/tune_samplers.py --prior mni-64-edm --tuned  # the experiments' settings only
"""

import argparse
import itertools

import jax
import numpy as np

import invsolve as inv
from invsolve.problems import phantoms, tomography

GRIDS = {  # two rounds on the 2-core machine, 2026-12-05 (docs/results.md has both tables)
    "dds": dict(n_steps=[50, 100], eta=[0.15, 0.5, 1.0], cg_steps=[2, 3, 5, 10]),
    "diffpir": dict(n_steps=[100], lam=[0.1, 1.0, 10.0], zeta=[0.3, 1.0], cg_steps=[10]),
    "daps": dict(n_anneal=[50], n_ode=[3], n_langevin=[30, 100], lr=[0.5], r_scale=[0.3, 1.0, 2.0, 4.0],
                 sigma_max=[5.0]),
    "pnpdm": dict(n_steps=[40], rho_max=[1.0, 2.0], rho_min=[0.001, 0.002, 0.005, 0.02, 0.05], n_prior=[5, 10],
                  cg_steps=[20]),
    "stsl": dict(n_steps=[100, 300], zeta=[0.005, 0.01, 0.02, 0.05], omega=[0.0, 1.0]),
}
CLASSES = {"dds": inv.solvers.DDS, "diffpir": inv.solvers.DiffPIR, "daps": inv.solvers.DAPS,
           "pnpdm": inv.solvers.PnPDM, "stsl": inv.solvers.STSL}


def tuned(method):
    """The ``ct-METHOD`` experiment's settings as solver keywords."""
    from invsolve.experiments.diffusion import TUNED

    names = {"n_steps": {"daps": "n_anneal"}, "mix": {"diffpir": "zeta"}, "n_inner": {"daps": "n_langevin"}}
    return {names.get(k, {}).get(method, k): v for k, v in TUNED[method].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(GRIDS))
    parser.add_argument("--slices", type=int, default=2, help="validation slices (spread over the slab)")
    parser.add_argument("--prior", default="mni-64", help="a shipped score prior (mni-64, mni-64-edm)")
    parser.add_argument("--tuned", action="store_true", help="only the ct-* experiments' settings (TUNED)")
    args = parser.parse_args()
    prior = inv.priors.ScorePrior.pretrained(args.prior)
    xs, zs = phantoms.axial_slices("val", 64)
    idx = np.linspace(0, len(xs) - 1, args.slices).round().astype(int)
    probs = [tomography.sparse_view(xs[i], n_angles=30, noise=0.01, key=jax.random.fold_in(jax.random.key(0), 100 + int(i)))
             for i in idx]
    print(f"validation slices z = {[int(zs[i]) for i in idx]}")
    print("| method | settings | PSNR (dB) | s per slice |\n|---|---|---|---|")
    for m in args.methods.split(","):
        grid = GRIDS[m]
        if args.tuned:
            grid = {k: [v] for k, v in tuned(m).items()}
        best = None
        for values in itertools.product(*grid.values()):
            kw = dict(zip(grid, values))
            solver = CLASSES[m](prior, clip=(0.0, 1.0), **kw)
            ps, ts = [], []
            for i, p in zip(idx, probs):
                sol = inv.solve(p, solver, key=jax.random.key(1))
                ps.append(float(inv.metrics.psnr(sol.value, xs[i])))
                ts.append(sol.stats["wall_time_s"] - sol.stats["compile_time_s"])
            row = (float(np.mean(ps)), kw, float(np.median(ts)))
            print(f"| {m} | {kw} | {row[0]:.2f} | {row[2]:.2f} |", flush=True)
            best = row if best is None or row[0] > best[0] else best
        print(f"best {m}: {best[1]} -> {best[0]:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
