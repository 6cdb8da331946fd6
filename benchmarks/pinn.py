"""PINN training: invsolve vs. plain JAX, DeepXDE (PyTorch) and jinns; the flame reference solver.

Run:  python benchmarks/pinn.py            # full run: up to ~20 min on 2 CPU cores
      python benchmarks/pinn.py --quick    # 300-step blocks, flame capped at 3000 steps: ~4 min
      python benchmarks/pinn.py --parts poisson --steps 1000   # one part, other sizes

Three parts, one table (the "work" column says what each time measures):

1. poisson: training throughput on the 1D Poisson PINN of ``pinn_peers.py`` (-u'' = pi^2 sin(pi x)
   on [-1, 1], u(+-1) = 0; 1 -> 64 -> 64 -> 64 -> 1 tanh, Glorot normal; 1001 points; Adam 1e-3;
   float32). invsolve: ``solvers.PINN`` on `Poisson1D` (below; its 1001 points are the Hammersley
   set (i + 1/2) / n, the peers' are linspace(-1, 1, 1001)), ``HostLoop(chunk_size=N)``; one
   warm-up solve of N steps (its ``compile_time_s`` is the compile column), then 3 timed solves
   of N steps, each from scratch; time = median. The peers (plain JAX, plain JAX with 500 steps
   fused in one ``fori_loop``, DeepXDE-PyTorch, jinns) run ``pinn_peers.py``'s timing: a warm-up
   block, then 3 blocks of N steps continuing the training; compile = first block - median.
   DeepXDE runs with 1 and with 2 torch threads (on a busy 2-core machine 2 threads collapse:
   OpenMP threads spin-wait for a descheduled partner); the faster count is used in part 2.
2. flame: wall time to flame-speed error ``|s_L / s_ref - 1| <= 1e-3`` on the FlamePINN-1D forward
   problem (phi = 0.42, 1 atm, s_L from 0.4; s_ref = ``flame.solve_reference``), paper settings:
   1000 warm-up steps on the Z profile, then Adam 1e-3 x0.95 every 1000 steps. ``s_L`` (the
   current trainable value) is checked every 500 physics steps; the time is the wall time from
   the start of training (warm-up included, compile excluded) to the first check within 1e-3,
   or to the step cap. invsolve float32 and float64 (x64 switched on for that run only) with a
   ``HostLoop`` callback, after a 500-step solve that compiles; DeepXDE-PyTorch float32 with the
   same equations, transforms, points, warm-up and schedule (``pinn_peers.deepxde_flame``).
3. reference: ``flame.solve_reference(case, rtol=1e-6)`` (grid doubling until s_L changes by
   < 1e-6; median of 3 after a first, compiling call) vs. the scipy shooting oracle
   ``tests/flame_shooting.py`` (DOP853 + bisection, rtol 1e-12; median of 3).

DeepXDE runs in subprocesses (PyTorch backend); BLAS is pinned to one thread for scipy.
"""

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import ClassVar  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, "..", "tests")]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import invsolve as inv  # noqa: E402
import pinn_peers as peers  # noqa: E402
from flame_shooting import shooting_speed  # noqa: E402
from invsolve._driver import compile_timer  # noqa: E402
from invsolve._problem import directional_derivatives  # noqa: E402
from invsolve.problems import flame  # noqa: E402

REPEATS = 3
PHI, S_L_INIT, REF_RTOL = 0.42, 0.4, 1e-6


class Poisson1D(inv.HasResidual):
    """-u'' = pi^2 sin(pi x) on [-1, 1] with soft u(-1) = u(1) = 0; the network sees x itself."""

    n_out: ClassVar[int] = 1
    x_true: ClassVar = None
    y_obs: ClassVar = None

    @property
    def lower(self):
        return jnp.array([-1.0], jnp.float32)

    @property
    def upper(self):
        return jnp.array([1.0], jnp.float32)

    def scale_input(self, x):
        return x

    def residual(self, u, theta, x):
        _, _, uxx = directional_derivatives(u, x, jnp.ones_like(x))
        return (-uxx - jnp.pi**2 * jnp.sin(jnp.pi * x))[:, 0]

    def conditions(self, u, theta):
        return {"bc": u(jnp.array([[-1.0], [1.0]], jnp.float32))[:, 0]}


def timed_solve(*args, **kwargs):
    t0 = time.perf_counter()
    sol = inv.solve(*args, **kwargs)
    jax.block_until_ready(sol.state.params)
    return sol, time.perf_counter() - t0


def invsolve_poisson(n):
    solver = inv.solvers.PINN(optax.adam(peers.LR), hidden=(64, 64, 64), n_collocation=peers.N_COLLOCATION,
                              steps=n, warmup_steps=0, dtype=jnp.float32)
    driver = inv.HostLoop(chunk_size=n, progress=False)
    runs = [timed_solve(Poisson1D(), solver, key=jax.random.key(peers.SEED), driver=driver)
            for _ in range(1 + REPEATS)]
    return {"steps_per_s": n / statistics.median(t for _, t in runs[1:]),
            "compile_s": runs[0][0].stats["compile_time_s"],
            "final_loss": float(runs[-1][0].history["loss"][-1]),
            "setup_s": statistics.median(t - sol.stats["wall_time_s"] for sol, t in runs[1:])}


def part_poisson(a):
    runs = {"invsolve PINN": lambda: invsolve_poisson(a.steps),
            "plain JAX (jit per step)": lambda: peers.plain_jax(a.steps),
            "plain JAX (500 steps fused)": lambda: peers.plain_jax_fused(a.steps),
            # a time limit: 2 torch threads on a busy machine can drop to ~1 step/s
            "DeepXDE-PyTorch 1 thread": lambda: peers.deepxde_torch(a.steps, threads=1, timeout=max(600, a.steps)),
            "DeepXDE-PyTorch 2 threads": lambda: peers.deepxde_torch(a.steps, threads=2, timeout=max(600, a.steps)),
            "jinns": lambda: peers.jinns_(a.steps)}
    res = {}
    for name, run in runs.items():
        try:
            res[name] = run()
        except Exception as exc:  # a missing peer should not hide the others
            res[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:150]}
    ref = res["invsolve PINN"].get("steps_per_s")
    dde = {t: res[f"DeepXDE-PyTorch {t} thread{'s' * (t > 1)}"].get("steps_per_s", 0) for t in (1, 2)}
    a.torch_threads = a.torch_threads or (2 if dde[2] > dde[1] else 1)  # the flame's DeepXDE run
    rows = []
    for name, r in res.items():
        if "error" in r:
            rows.append(("poisson", name, f"{a.steps} Adam steps", None, None, None, r["error"]))
            continue
        t = a.steps / r["steps_per_s"]
        note = f"{r['steps_per_s']:.0f} steps/s, final loss {r['final_loss']:.2g}"
        if "setup_s" in r:
            note += f" (incl. {r['setup_s']:.2f} s per-solve set-up before the driver loop)"
        if "per_call_overhead_s" in r:
            note += f"; + {r['per_call_overhead_s']:.1f} s re-trace/compile per jinns.solve call"
        rows.append(("poisson", name, f"{a.steps} Adam steps", t, r["compile_s"],
                     ref and r["steps_per_s"] and ref / r["steps_per_s"], note))
    return rows


class Reached(Exception):
    pass


def invsolve_flame(ref, dtype, a):
    """Time to |s_L / s_ref - 1| <= a.tol; returns the row's numbers."""
    s_ref = float(ref.s_L)
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        prob = flame.forward_problem(flame.FreelyPropagating(phi=PHI), s_L_init=S_L_INIT, reference=ref)
        solver = inv.solvers.PINN(hidden=(64, 64, 64), n_collocation=peers.N_COLLOCATION, steps=a.flame_steps,
                                  warmup_steps=a.warmup, dtype=jnp.dtype(dtype))  # paper_adam()
        key = jax.random.key(peers.SEED)
        warm, _ = timed_solve(prob, solver, key=key, max_steps=a.check,
                              driver=inv.HostLoop(chunk_size=a.check, progress=False))
        log = []

        def check(num_steps, info):  # info: the last step's diagnostics; s_L before that step
            k = num_steps - a.warmup
            if k > 0:
                log.append((k, info["s_L"] / s_ref - 1.0, time.perf_counter() - t0))
                if abs(log[-1][1]) <= a.tol:
                    raise Reached

        driver = inv.HostLoop(chunk_size=a.check, progress=False, callback=check)
        t0 = time.perf_counter()
        with compile_timer() as ct, contextlib.suppress(Reached):
            inv.solve(prob, solver, key=key, driver=driver)
    steps, err, t = log[-1]
    return {"time_s": t - ct.seconds, "steps": steps, "err": err, "reached": abs(err) <= a.tol,
            "compile_s": warm.stats["compile_time_s"] + ct.seconds}


def deepxde_flame(ref, a):
    case = flame.FreelyPropagating(phi=PHI)
    prob = flame.forward_problem(case, s_L_init=S_L_INIT, reference=ref)
    xw, Tw = prob.warmup_data()
    cfg = {k: float(getattr(case, k)) for k in ("phi", "p", "T_in", "lam", "cp", "qF", "A", "Ea", "nu", "W", "R",
                                                 "grad_T_in", "L")}
    cfg.update(x=np.asarray(prob.collocation(peers.N_COLLOCATION))[:, 0].tolist(),
               xw=np.asarray(xw)[:, 0].tolist(), Tw=np.asarray(Tw)[:, 0].tolist(), s_ref=float(ref.s_L),
               s_L_init=S_L_INIT, warmup=a.warmup, check=a.check, max_steps=a.flame_steps, tol=a.tol,
               threads=a.torch_threads or 1)
    r = peers.deepxde_flame(cfg)
    r["compile_s"] = None
    return r


def part_flame(a):
    ref = flame.solve_reference(flame.FreelyPropagating(phi=PHI))
    runs = {"invsolve PINN float32": lambda: invsolve_flame(ref, "float32", a),
            "invsolve PINN float64": lambda: invsolve_flame(ref, "float64", a),
            f"DeepXDE-PyTorch float32, {a.torch_threads or 1} thread(s)": lambda: deepxde_flame(ref, a)}
    work = f"to s_L error <= {a.tol:g} (checked every {a.check} steps)"
    rows, base = [], None
    for name, run in runs.items():
        try:
            r = run()
        except Exception as exc:
            rows.append(("flame", name, work, None, None, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:150]))
            continue
        rate = (r["steps"] + a.warmup) / r["time_s"]
        if r["reached"]:
            note = f"reached after {r['steps']} steps (+{a.warmup} warm-up), error {r['err']:+.1e}"
            base = base or (r["time_s"] if name.startswith("invsolve") else None)
        else:
            note = f"not reached in {r['steps']} steps (error {r['err']:+.1e})"
        ratio = base and r["reached"] and r["time_s"] / base
        rows.append(("flame", name, work, r["time_s"], r["compile_s"], ratio, f"{note}; {rate:.0f} steps/s"))
    return rows


def part_reference(a):
    case = flame.FreelyPropagating(phi=PHI)

    def timed(fn):
        out = []
        for _ in range(1 + REPEATS):
            t0 = time.perf_counter()
            s = float(fn())
            out.append((time.perf_counter() - t0, s))
        med = statistics.median(t for t, _ in out[1:])
        return med, out[0][0] - med, out[-1][1]

    t_ref, c_ref, s_ref = timed(lambda: flame.solve_reference(case, rtol=REF_RTOL).s_L)
    t_sh, _, s_sh = timed(lambda: shooting_speed(PHI, float(case.p), float(case.T_in)))
    return [("reference", "invsolve flame.solve_reference", f"s_L to {REF_RTOL:g} (grid doubling from 1001)",
             t_ref, max(c_ref, 0.0), 1.0, f"s_L = {s_ref:.9f}, vs shooting {s_ref / s_sh - 1:+.1e}"),
            ("reference", "scipy shooting (tests/flame_shooting.py)", "s_L, DOP853 rtol 1e-12 + bisection",
             t_sh, None, t_sh / t_ref, f"s_L = {s_sh:.9f}, vs solve_reference {s_sh / s_ref - 1:+.1e}")]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="300-step blocks; flame capped at 3000 steps")
    p.add_argument("--parts", default="poisson,flame,reference", help="comma-separated subset")
    p.add_argument("--steps", type=int, help="poisson: Adam steps per block (default 2000, --quick 300)")
    p.add_argument("--flame-steps", type=int, help="flame: cap on physics steps (default 30000, --quick 3000)")
    p.add_argument("--check-every", dest="check", type=int, default=500, help="flame: steps between s_L checks")
    p.add_argument("--warmup", type=int, default=1000, help="flame: warm-up steps (a multiple of --check-every)")
    p.add_argument("--tol", type=float, default=1e-3, help="flame: target |s_L / s_ref - 1|")
    p.add_argument("--torch-threads", type=int, help="flame: torch threads for DeepXDE (default: the faster "
                   "DeepXDE row of the poisson part, or 1 without it)")
    a = p.parse_args()
    a.steps = a.steps or (300 if a.quick else 2000)
    a.flame_steps = a.flame_steps or (3000 if a.quick else 30_000)
    if a.warmup % a.check or a.flame_steps % a.check:
        p.error("--warmup and --flame-steps must be multiples of --check-every")
    parts = a.parts.split(",")

    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(other processes add noise)\n", flush=True)
    rows = []
    for name, fn in (("poisson", part_poisson), ("reference", part_reference), ("flame", part_flame)):
        if name in parts:  # the reference part first: its first call is the compiling one
            rows += fn(a)
    order = {"poisson": 0, "flame": 1, "reference": 2}
    print("| part | method | work | time s | compile / first call s | time / invsolve | result |")
    print("|---|---|---|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: order[r[0]]):
        print(f"| {r[0]} | {r[1]} | {r[2]} | {fmt(r[3], '.3g')} | {fmt(r[4], '.2f')} | {fmt(r[5] or None, '.2f')} "
              f"| {r[6]} |")
    print(f"\npoisson: time = median of {REPEATS} blocks; final loss of invsolve after one block from scratch, "
          f"of the peers after {1 + REPEATS} blocks. flame: time excludes compilation and includes the warm-up; "
          "invsolve's s_L is read in the HostLoop callback (the value before the chunk's last step), DeepXDE's "
          "after the chunk. jinns is not in the flame part: its boundary conditions take one condition per "
          "facet (the flame needs T(0) = T_in and T'(0) = G at x = 0), the warm-up would be a second loss and "
          "solve call, and jinns re-compiles on every jinns.solve call (each 500-step check would re-compile). "
          "time / invsolve: this row's time over the invsolve row of its part (flame: the first invsolve row "
          "that reached the target).\n"
          f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
