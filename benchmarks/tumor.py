"""Tumour growth (Fisher-Kolmogorov on anatomy): invsolve vs. a NumPy reference; gradient
cost; database build throughput and query latency.

Run:  python benchmarks/tumor.py            # about 3 minutes on 2 CPU cores
      python benchmarks/tumor.py --quick    # fewer repeats, smaller bank

One table. Rows:

1. forward, 1000 explicit steps of the full model (variable D from grey/white matter, brain
   mask, no-flux boundary: `tumor.ellipsoid_brain`) on 128² and 64³: invsolve
   (`tumor._integrate`, one compiled `fori_loop`) in float32 and float64 vs. the same scheme
   vectorised in NumPy (`numpy_steps` below; float64). Median of REPEATS runs after a
   compiling call (compile column: first call - median).
2. value_and_grad / forward on 64³ (1000 steps): `jax.value_and_grad` of ``sum(u**2)`` w.r.t.
   (a, b, u0) through the hand-written adjoint with checkpointed blocks, over the forward
   time; with the compiled temporary memory in states (one state = one 64³ array). Beside it
   the plain alternative: JAX's own reverse mode through a scan of `jax.checkpoint`-ed blocks.
3. database: `DatabaseQuery.build` throughput (simulations/s, the quick experiment's 2D
   problem: MNI152 axial slice at 3 mm, 263 steps each, float32, batches of 64), and the
   latency of one query against a bank of 1e4 entries (compiled; median of REPEATS).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import invsolve as inv
from invsolve.problems import tumor
from invsolve.problems.tumor import _integrate

REPEATS = 5


def numpy_steps(u, faces, a, b, n):
    """The explicit scheme in NumPy: ``u + a sum_ax diff(face * diff(u)) + b u (1 - u)``."""
    for _ in range(n):
        div = np.zeros_like(u)
        for ax, f in enumerate(faces):
            flux = f * np.diff(u, axis=ax)
            lo = [(0, 0)] * u.ndim
            hi = [(0, 0)] * u.ndim
            lo[ax], hi[ax] = (1, 0), (0, 1)
            div += np.pad(flux, hi) - np.pad(flux, lo)
        u = u + a * div + b * u * (1.0 - u)
    return u


def _autodiff(u, faces, a, b, n, block=25):
    """The plain alternative: reverse-mode autodiff of the loop, blocks rematerialised."""
    step = lambda v, _: (tumor._step(v, faces, a, b), None)
    blk = jax.checkpoint(lambda v: jax.lax.scan(step, v, None, length=block)[0])
    return jax.lax.scan(lambda v, _: (blk(v), None), u, None, length=n // block)[0]


def timeit(fn, repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return med, max(first - med, 0.0)


def forward_rows(shape, repeats, rows):
    n = 1000
    an64 = tumor.ellipsoid_brain(shape, 1.0, dtype=jnp.float64)
    origin = (0.65, 0.4, 0.5)[: len(shape)]
    t_np = None
    for dtype in (jnp.float32, jnp.float64):
        an = tumor.ellipsoid_brain(shape, 1.0, dtype=dtype)
        u0 = tumor.seed(an, jnp.asarray(origin))
        faces = an.faces()
        a, b = jnp.asarray(0.1, dtype), jnp.asarray(0.01, dtype)
        fwd = jax.jit(lambda u: _integrate(u, faces, a, b, n))
        t, c = timeit(lambda: fwd(u0), repeats)
        if t_np is None:
            f_np = [np.asarray(f) for f in an64.faces()]
            u_np = np.asarray(tumor.seed(an64, jnp.asarray(origin)))
            ts = []
            for _ in range(max(1, repeats // 2)):
                t0 = time.perf_counter()
                numpy_steps(u_np, f_np, 0.1, 0.01, n)
                ts.append(time.perf_counter() - t0)
            t_np = statistics.median(ts)
            rows.append((f"forward {'x'.join(map(str, shape))}, 1000 steps", "NumPy float64", t_np, 0.0, "1.00"))
        rows.append((f"forward {'x'.join(map(str, shape))}, 1000 steps", f"invsolve {jnp.dtype(dtype).name}",
                     t, c, f"{t_np / t:.1f}x faster"))
        if len(shape) == 3:
            vg = jax.jit(jax.value_and_grad(lambda u, a, b: jnp.sum(_integrate(u, faces, a, b, n) ** 2), (0, 1, 2)))
            tg, cg = timeit(lambda: vg(u0, a, b), repeats)
            mem = vg.lower(u0, a, b).compile().memory_analysis().temp_size_in_bytes / u0.nbytes
            rows.append((f"value_and_grad {'x'.join(map(str, shape))}, 1000 steps", f"invsolve {jnp.dtype(dtype).name}",
                         tg, cg, f"{tg / t:.2f}x the forward; temp memory {mem:.0f} states"))
            ad = jax.jit(jax.value_and_grad(lambda u, a, b: jnp.sum(_autodiff(u, faces, a, b, n) ** 2), (0, 1, 2)))
            ta, ca = timeit(lambda: ad(u0, a, b), repeats)
            mem = ad.lower(u0, a, b).compile().memory_analysis().temp_size_in_bytes / u0.nbytes
            rows.append((f"value_and_grad {'x'.join(map(str, shape))}, 1000 steps",
                         f"JAX autodiff, jax.checkpoint on 40 blocks of 25, {jnp.dtype(dtype).name}",
                         ta, ca, f"{ta / t:.2f}x the forward; temp memory {mem:.0f} states"))


def database_rows(repeats, n_bank, rows):
    brain = tumor.mni152_brain(3, axial_slice=0.5, dtype=jnp.float32)
    prob = tumor.segmentation_inverse(brain, tumor.Params(0.1, 0.02, (0.6, 0.45), 300.0), (0.25, 0.675))
    inv.solvers.DatabaseQuery.build(prob, 64, jax.random.key(0), progress=False)  # compile
    t0 = time.perf_counter()
    db = inv.solvers.DatabaseQuery.build(prob, n_bank, jax.random.key(1), progress=False)
    t = time.perf_counter() - t0
    rows.append((f"database build, 2D 50x63, {prob.n_steps} steps/sim", "invsolve float32 (vmap, batch 64)",
                 t, 0.0, f"{n_bank / t:.0f} simulations/s"))
    if n_bank < 10_000:  # the latency row needs 1e4 entries: tile the bank
        reps = -(-10_000 // n_bank)
        db = inv.solvers.DatabaseQuery(jnp.tile(db.unit, (reps, 1))[:10_000], jnp.tile(db.features, (reps, 1))[:10_000],
                                       db.signature)
    first = inv.solve(prob, db)
    ts = []
    for _ in range(repeats):
        ts.append(inv.solve(prob, db).stats["wall_time_s"])
    rows.append(("database query, 1e4 entries", "invsolve float32", statistics.median(ts),
                 first.stats["compile_time_s"], f"{db.features.shape[1]} features/entry (window + offset), top 20 re-simulated, best 5"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else REPEATS
    rows = []
    forward_rows((128, 128), repeats, rows)
    forward_rows((64, 64, 64), repeats, rows)
    database_rows(repeats, 2000 if args.quick else 10_000, rows)
    print(f"\njax {jax.__version__}, {jax.devices()[0].platform}, median of {repeats}\n")
    print("| work | implementation | time [s] | compile [s] | comparison |")
    print("|---|---|---|---|---|")
    for work, impl, t, c, note in rows:
        print(f"| {work} | {impl} | {t:.4f} | {c:.2f} | {note} |")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    main()
