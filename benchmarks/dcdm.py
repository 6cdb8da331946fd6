"""DCDM vs CG, multigrid-PCG and pyamg-PCG on Poisson systems, with and without obstacles.

Run:  python benchmarks/dcdm.py              # 2D 128^2, 256^2 and 3D 32^3, 64^3; rtol 1e-4 and 1e-6
      python benchmarks/dcdm.py --quick      # 128^2 and 32^3, rtol 1e-4
      python benchmarks/dcdm.py --sizes 256x256 --rtols 1e-4

System: ``A = invsolve.problems.poisson.operator(shape, bc="dirichlet")`` (kappa = 1) with
or without `smoke_obstacles` (a layout never used in training), ``b`` standard normal on the
fluid cells (seed 0), float64 iterations (the DCDM network itself is float32: the shipped
``poisson2d-64`` / ``poisson3d-32`` models, trained at 64^2 / 32^3). Stopping rule
``||r|| <= rtol ||b||`` (for DCDM on the recomputed residual; the table's last column is
the true residual ``||b - A x|| / ||b||`` of every method). Time: median of 3 steady-state
solves after one warm-up call (compile excluded; compile time of the warm-up in its own
column); pyamg: smoothed aggregation as a CG preconditioner, setup + solve. On this CPU one
network application costs as much as hundreds of CG iterations, so DCDM's wall time is
reported, not a target; its iteration count is the point (Kaneda et al. 2023 measure wall
time on a GPU).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pyamg  # noqa: E402

import invsolve as inv  # noqa: E402
from invsolve.problems import poisson  # noqa: E402
from invsolve.solvers import dcdm  # noqa: E402

DEFAULT_SIZES = [(128, 128), (256, 256), (32, 32, 32), (64, 64, 64)]


def system(shape, obstacles):
    solid = poisson.smoke_obstacles(shape, jax.random.key(12345)) if obstacles else None
    A = poisson.operator(shape, kappa=jnp.ones(shape, jnp.float64), obstacles=solid)
    b = jax.random.normal(jax.random.key(0), shape, jnp.float64)
    return A, (b if solid is None else jnp.where(solid, 0.0, b))


def run_invsolve(A, b, solver, repeats=3):
    prob = poisson.linear_system(A, b)
    warm = inv.solve(prob, solver, throw=False)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sol = inv.solve(prob, solver, throw=False)
        jax.block_until_ready(sol.value)
        times.append(time.perf_counter() - t0)
    return sol.stats["num_steps"], statistics.median(times), warm.stats.get("compile_time_s", float("nan")), sol.value


def run_pyamg(A, b, rtol, repeats=3):
    M, rhs = A.to_scipy(), np.asarray(b).ravel()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ml = pyamg.smoothed_aggregation_solver(M)
        res = []
        x = ml.solve(rhs, tol=rtol, accel="cg", residuals=res, maxiter=1000)
        times.append(time.perf_counter() - t0)
    return len(res) - 1, statistics.median(times), float("nan"), jnp.asarray(x.reshape(b.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default=None, help="comma-separated, e.g. 256x256,64x64x64")
    ap.add_argument("--rtols", default=None, help="comma-separated, e.g. 1e-4,1e-6")
    args = ap.parse_args()
    sizes = ([tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")] if args.sizes
             else [(128, 128), (32, 32, 32)] if args.quick else DEFAULT_SIZES)
    rtols = [float(r) for r in args.rtols.split(",")] if args.rtols else [1e-4] if args.quick else [1e-4, 1e-6]
    models = {2: dcdm.pretrained("poisson2d-64"), 3: dcdm.pretrained("poisson3d-32")}
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, float64 iterations")
    head = ("| grid | obstacles | rtol | method | iterations | solve [s] | compile [s] | "
            "DCDM iters / CG iters | true residual |")
    print(head)
    print("|" + "---|" * 9)
    for shape in sizes:
        for obstacles in (False, True):
            A, b = system(shape, obstacles)
            nb = float(jnp.linalg.norm(b))
            for rtol in rtols:
                runs = {
                    "CG": run_invsolve(A, b, inv.solvers.CG(rtol=rtol)),
                    "MG-PCG": run_invsolve(A, b, inv.solvers.PCG(inv.solvers.Multigrid(), rtol=rtol)),
                    "pyamg-PCG": run_pyamg(A, b, rtol),
                    "DCDM": run_invsolve(A, b, inv.solvers.DCDM(models[len(shape)], rtol=rtol, max_steps=500),
                                         repeats=2 if np.prod(shape) > 100_000 else 3),
                }
                cg_iters = runs["CG"][0]
                for name, (its, t, tc, x) in runs.items():
                    true = float(jnp.linalg.norm(b - A.mv(x))) / nb
                    ratio = f"{its / cg_iters:.3f}" if name == "DCDM" else ""
                    tcs = "-" if np.isnan(tc) else f"{tc:.2f}"
                    print(f"| {'x'.join(map(str, shape))} | {'yes' if obstacles else 'no'} | {rtol:.0e} | {name} | "
                          f"{its} | {t:.4f} | {tcs} | {ratio} | {true:.1e} |", flush=True)


if __name__ == "__main__":
    main()
