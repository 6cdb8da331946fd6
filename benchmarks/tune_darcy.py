"""Pick the darcy-daps settings on validation fields (never the test fields).

    python benchmarks/tune_darcy.py --methods map daps pnpdm dps [--n-fields 3] [--only daps_lr=1.0 ...]

For each method, every setting of its grid is run on ``n_fields`` validation fields
(`invsolve.experiments.darcy.VAL_KEY`, disjoint from the test draws) and the mean relative
error of kappa printed; the best goes into ``DarcyConfig``'s defaults (GradientMAP was picked
on 4 fields, the samplers on 3: docs/results.md has the tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np

from invsolve.experiments import darcy

GRIDS = {  # two rounds on the 2-core machine, 2026-12-05 (the second: DAPS lr 1, 2; DPS zeta 10, 30)
    "map": {"alpha": [0.01, 0.1, 0.3, 1.0, 3.0, 10.0], "order": [1, 2]},
    "daps": {"daps_lr": [0.1, 0.5, 1.0, 2.0], "daps_sigma_max": [3.0, 10.0]},
    "pnpdm": {"pnp_rho_max": [1.0, 5.0], "pnp_rho_min": [0.02, 0.1]},
    "dps": {"dps_zeta": [0.3, 1.0, 3.0, 10.0, 30.0]},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--methods", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--n-fields", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, metavar="NAME=VALUE",
                    help="run only the grid points with these values (e.g. daps_lr=1.0)")
    ap.add_argument("--n-samples", type=int, default=4)
    args = ap.parse_args()
    base = darcy.DarcyConfig(n_samples=args.n_samples)
    problems = darcy.make_problems(base, darcy.VAL_KEY, 0, args.n_fields)
    print("| method | setting | rel_l2 (kappa) | rel_l2 (log) | chi2 | coverage 90 | s per field |")
    print("|---|---|---|---|---|---|---|")
    for m in args.methods:
        grid = GRIDS[m]
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values))
            if args.only and not all(str(setting.get(k.split("=")[0])) == k.split("=")[1] for k in args.only
                                     if k.split("=")[0] in setting):
                continue
            cfg = dataclasses.replace(base, **setting)
            t0 = time.perf_counter()
            rows, _ = darcy.evaluate(cfg, problems, 0, methods=(m,))
            rs = rows[m]
            mean = lambda k: np.mean([r[k] for r in rs if k in r]) if any(k in r for r in rs) else float("nan")  # noqa: E731
            print(f"| {m} | {setting} | {mean('rel_l2'):.4f} | {mean('rel_l2_log'):.4f} | {mean('chi2'):.3g} | "
                  f"{mean('coverage_90'):.3f} | {(time.perf_counter() - t0) / len(problems):.1f} |", flush=True)


if __name__ == "__main__":
    main()
