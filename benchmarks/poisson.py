"""Poisson linear solves: invsolve vs. a plain jitted JAX CG, scipy CG and pyamg.

Run:  python benchmarks/poisson.py            # 2D 128^2, 256^2, 512^2 and 3D 32^3, 64^3, 96^3
      python benchmarks/poisson.py --quick    # 128^2 and 32^3 only (smoke test)
      python benchmarks/poisson.py --sizes 256x256,64x64x64
      python benchmarks/poisson.py --obstacles --sizes 512x512,96x96x96   # with solid cells
      python benchmarks/poisson.py --refresh --obstacles --sizes 256x256,512x512,64x64x64   # AMG set-up only

System: ``A = invsolve.problems.poisson.operator(shape, kappa, bc="dirichlet")`` with the
fixed smooth coefficient ``kappa = 1 + 0.5 prod_i sin(2 pi x_i)``, ``b`` standard normal
(seed 0), float64, stopping rule ``||r|| <= 1e-6 ||b||`` for every method. Columns: Krylov
iterations; setup time (pyamg hierarchy; "-" where the setup is inside the compiled solve);
steady-state solve time after one warm-up call (median of 5 runs, 3 for grids above 100k
cells); compile time (JAX only: ``sol.stats["compile_time_s"]`` of the warm-up call for
invsolve, ahead-of-time ``lower().compile()`` for the plain CG); and the true relative
residual ``||b - A x|| / ||b||`` computed with ``A.to_scipy()``. The ratio column is
invsolve CG / plain JAX CG, and invsolve MG-PCG and AMG-PCG / pyamg (setup + solve).
``--obstacles``: the DCDM benchmark's solid cells (``poisson.smoke_obstacles``, key 12345),
``kappa = 0`` and ``b = 0`` there. invsolve AMG's setup runs on the host (NumPy/SciPy), timed
like pyamg's; its V-cycle runs in the compiled solve. ``--refresh`` times the AMG set-up
alone instead: on the host for one operator, on the host keeping the symbolic part
(``AMG().setup``), and the numeric re-set-up in JAX (``AMG.refresh``, jitted, compile apart),
against pyamg's set-up.
BLAS/OpenMP are pinned to one thread before numpy is imported.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pyamg  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

import invsolve  # noqa: E402
from invsolve.problems import poisson  # noqa: E402

RTOL = 1e-6
DEFAULT_SIZES = [(128, 128), (256, 256), (512, 512), (32, 32, 32), (64, 64, 64), (96, 96, 96)]


def kappa_field(shape):
    x = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    return 1.0 + 0.5 * np.prod([np.sin(2 * np.pi * xi) for xi in x], axis=0)


@jax.jit
def plain_cg(A, b, rtol):
    """Textbook CG in one while_loop: the baseline (stop when ||r|| <= rtol ||b||)."""
    tol2 = (rtol * jnp.linalg.norm(b)) ** 2

    def cond(c):
        return (c[3] > tol2) & (c[4] < 10 * b.size)

    def body(c):
        x, r, p, rr, k = c
        Ap = A.mv(p)
        alpha = rr / jnp.vdot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = jnp.vdot(r, r)
        return x, r, r + (rr_new / rr) * p, rr_new, k + 1

    x, _, _, _, k = jax.lax.while_loop(cond, body, (jnp.zeros_like(b), b, b, jnp.vdot(b, b), 0))
    return x, k


def timed(fn, repeats):
    """Run ``fn`` ``repeats`` times; return (median seconds, last output)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_invsolve(problem, solver, repeats):
    """Warm-up call (its ``compile_time_s`` is the compile column), then steady-state solves."""
    def run():
        sol = invsolve.solve(problem, solver)
        jax.block_until_ready(sol.value)
        return sol

    compile_s = run().stats["compile_time_s"]
    solve, sol = timed(run, repeats)
    return dict(iters=sol.stats["num_steps"], setup=None, solve=solve, compile=compile_s, x=sol.value)


def bench_plain(A, b, repeats):
    t0 = time.perf_counter()
    compiled = plain_cg.lower(A, b, RTOL).compile()  # ahead-of-time: trace + compile only
    compile_s = time.perf_counter() - t0
    run = lambda: jax.block_until_ready(compiled(A, b, RTOL))  # noqa: E731
    run()  # warm-up, as for invsolve
    solve, (x, iters) = timed(run, repeats)
    return dict(iters=int(iters), setup=None, solve=solve, compile=compile_s, x=x)


def bench_amg(A, b, repeats):
    setups = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        amg = invsolve.solvers.AMG(refresh_numeric=False).setup(A)  # the hierarchy for A alone
        setups.append(time.perf_counter() - t0)
    r = bench_invsolve(poisson.linear_system(A, b), invsolve.solvers.PCG(amg, rtol=RTOL), repeats)
    r["setup"] = statistics.median(setups)
    return r


def bench_refresh(A, repeats):
    """Medians of: host set-up for A alone, host set-up keeping the symbolic part, the jitted
    JAX numeric re-set-up (`AMG.refresh`), and its compile time (first call minus a run)."""
    AMG = invsolve.solvers.AMG
    host, _ = timed(lambda: AMG(refresh_numeric=False).setup(A), repeats)
    plan, amg = timed(lambda: AMG().setup(A), repeats)
    refresh = eqx.filter_jit(lambda amg, A: amg.refresh(A).hierarchy)
    t0 = time.perf_counter()
    jax.block_until_ready(refresh(amg, A))
    first = time.perf_counter() - t0
    numeric, _ = timed(lambda: jax.block_until_ready(refresh(amg, A)), repeats)
    return dict(host=host, plan=plan, refresh=numeric, compile=first - numeric)


def system(shape, obstacles):
    solid = poisson.smoke_obstacles(shape, jax.random.key(12345)) if obstacles else None
    return solid, poisson.operator(shape, kappa=jnp.asarray(kappa_field(shape)), bc="dirichlet", obstacles=solid)


def pyamg_setup(A, repeats):
    A_sp = A.to_scipy()
    return timed(lambda: pyamg.smoothed_aggregation_solver(A_sp), repeats)[0]


def bench_size(shape, repeats, obstacles=False, cg=True):
    solid, A = system(shape, obstacles)
    b_np = np.random.default_rng(0).standard_normal(shape)
    if obstacles:
        b_np = np.where(np.asarray(solid), 0.0, b_np)
    b = jnp.asarray(b_np)
    A_sp, b_flat = A.to_scipy(), b_np.ravel()
    problem = poisson.linear_system(A, b)
    rows = {}

    solvers = invsolve.solvers
    if cg:
        rows["invsolve CG"] = bench_invsolve(problem, solvers.CG(rtol=RTOL), repeats)
    rows["invsolve MG-PCG"] = bench_invsolve(problem, solvers.PCG(solvers.Multigrid(), rtol=RTOL), repeats)
    rows["invsolve AMG-PCG"] = bench_amg(A, b, repeats)

    if cg:
        iters = []
        spla.cg(A_sp, b_flat, rtol=RTOL, maxiter=10 * b_flat.size, callback=lambda xk: iters.append(1))
        solve, (x, _) = timed(lambda: spla.cg(A_sp, b_flat, rtol=RTOL, maxiter=10 * b_flat.size), repeats)
        rows["scipy CG"] = dict(iters=len(iters), setup=None, solve=solve, compile=None, x=x)

    setups, solves = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ml = pyamg.smoothed_aggregation_solver(A_sp)
        t1 = time.perf_counter()
        res = []
        x = ml.solve(b_flat, tol=RTOL, accel="cg", residuals=res)
        solves.append(time.perf_counter() - t1)
        setups.append(t1 - t0)
    rows["pyamg SA-PCG"] = dict(iters=len(res) - 1, setup=statistics.median(setups),
                                solve=statistics.median(solves), compile=None, x=x)

    if cg:
        rows["plain JAX CG"] = bench_plain(A, b, repeats)

    for r in rows.values():
        x = np.asarray(r.pop("x")).ravel()
        r["res"] = np.linalg.norm(b_flat - A_sp @ x) / np.linalg.norm(b_flat)
        r["total"] = (r["setup"] or 0.0) + r["solve"]
    if cg:
        rows["invsolve CG"]["ratio"] = rows["invsolve CG"]["solve"] / rows["plain JAX CG"]["solve"]
    for name in ("invsolve MG-PCG", "invsolve AMG-PCG"):
        rows[name]["ratio"] = rows[name]["total"] / rows["pyamg SA-PCG"]["total"]
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 128^2 and 32^3")
    parser.add_argument("--sizes", help="comma-separated grids, e.g. 256x256,64x64x64")
    parser.add_argument("--obstacles", action="store_true", help="solid cells (poisson.smoke_obstacles)")
    parser.add_argument("--skip-cg", action="store_true", help="leave out the unpreconditioned CG rows")
    parser.add_argument("--refresh", action="store_true", help="time the AMG set-up alone (host, JAX refresh, pyamg)")
    args = parser.parse_args()
    if args.sizes:
        sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    else:
        sizes = [(128, 128), (32, 32, 32)] if args.quick else DEFAULT_SIZES

    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, BLAS/OpenMP 1 thread, rtol {RTOL:g}, float64, "
          f"load average {os.getloadavg()[0]:.2f} (other processes add noise)\n")
    if args.refresh:
        print("| grid | obstacles | host set-up s | host set-up + symbolic s | JAX refresh s | refresh compile s "
              "| pyamg set-up s | refresh / pyamg |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for shape in sizes:
            repeats = 5 if np.prod(shape) <= 100_000 else 3
            _, A = system(shape, args.obstacles)
            r, py = bench_refresh(A, repeats), pyamg_setup(A, repeats)
            print(f"| {'x'.join(map(str, shape))} | {'yes' if args.obstacles else 'no'} | {r['host']:.3f} | "
                  f"{r['plan']:.3f} | {r['refresh']:.3f} | {r['compile']:.2f} | {py:.3f} | {r['refresh'] / py:.2f} |",
                  flush=True)
        return
    print("| grid | method | iters | setup s | solve s | compile s | true rel. res. | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in sizes:
        n = int(np.prod(shape))
        rows = bench_size(shape, repeats=5 if n <= 100_000 else 3, obstacles=args.obstacles, cg=not args.skip_cg)
        grid = "x".join(map(str, shape))
        for name, r in rows.items():
            print(f"| {grid} | {name} | {r['iters']} | {fmt(r['setup'], '.3f')} | {r['solve']:.3f} | "
                  f"{fmt(r['compile'], '.2f')} | {r['res']:.2e} | {fmt(r.get('ratio'), '.2f')} |", flush=True)
    print("\nratio: invsolve CG solve / plain JAX CG solve; invsolve MG-PCG and AMG-PCG (setup + solve) / pyamg "
          "(setup + solve)."
          f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
