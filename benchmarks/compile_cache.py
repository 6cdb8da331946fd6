"""First run vs second run of the main job: JAX's persistent compilation cache of the command line.

Each round runs ``invsolve run poisson-inverse --quick`` three times as whole processes:
``cold`` with an empty cache folder (a user's first run: it compiles and fills the cache),
``warm`` right after it on the same folder (the second run: programs are loaded, not
compiled), and ``off`` with ``--no-cache``. Prints one table of medians over the rounds, with
the wall time the command reports for itself (``wall_time_s`` in metrics.json: the
experiment, without interpreter start-up) and its compile time.

    python benchmarks/compile_cache.py            # 5 rounds, about 3 minutes
    python benchmarks/compile_cache.py --rounds 3 --experiment poisson-kappa
    python benchmarks/compile_cache.py --work     # the solver and projector table (about 1 minute)

``--work`` times, in new processes, the first call of three pieces of work a script does (a
multigrid-preconditioned CG solve at 256², the cone-beam forward and adjoint at 64³ with 60
views), without the cache, with an empty cache, and with the cache filled by the run before
(`invsolve.use_compilation_cache`), beside the second call in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def one(experiment: str, out: str, cache: str, *extra: str) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    env.pop("INVSOLVE_NO_CACHE", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invsolve.cli", "run", experiment, "--quick", "--force", "--out", out,
                    *extra], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "metrics.json")) as f:
        rec = json.load(f)
    return {"process": wall, "run": rec["wall_time_s"], "compile": rec["compile_time_s"]}


_WORK = """
import json, sys, time, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import invsolve as inv
from invsolve.problems import phantoms, poisson, tomography
if sys.argv[1] != "off":
    inv.use_compilation_cache(sys.argv[1])
def tm(f):
    t0 = time.perf_counter(); jax.block_until_ready(f()); t1 = time.perf_counter(); jax.block_until_ready(f())
    return t1 - t0, time.perf_counter() - t1
n = 256
c = (jnp.arange(n) + 0.5) / n
A = poisson.operator((n, n), kappa=1.0 + 0.5 * jnp.sin(2 * jnp.pi * c)[:, None] * jnp.sin(jnp.pi * c)[None, :])
b = jnp.ones((n, n))
out = {"MG-PCG solve 256^2 (float64)":
       tm(lambda: inv.solve(poisson.linear_system(A, b), inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-6)).value)}
cb = tomography.ConeBeam(shape=(64, 64, 64), angles=jnp.linspace(0, 2 * jnp.pi, 60, endpoint=False),
                         detector=(96, 96), source_distance=250.0, detector_distance=125.0)
vol = phantoms.shepp_logan_3d(64)
out["cone-beam forward 64^3, 60 views (float64)"] = tm(lambda: cb.mv(vol))
p = cb.mv(vol)
out["cone-beam adjoint 64^3, 60 views (float64)"] = tm(lambda: cb.rmv(p))
print(json.dumps(out))
"""


def work(rounds: int) -> None:
    rows: dict[str, list[dict]] = {"off": [], "cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            cache = os.path.join(tmp, f"cache{r}")
            for k, arg in (("off", "off"), ("cold", cache), ("warm", cache)):
                out = subprocess.run([sys.executable, "-c", _WORK, arg], check=True, capture_output=True, text=True)
                rows[k].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"first call in a new process vs second call, medians of {rounds} rounds (seconds)\n")
    print("| work | no cache: first call | empty cache: first call | filled cache: first call | second call | "
          "filled / no cache |")
    print("|---|---|---|---|---|---|")
    for name in rows["off"][0]:
        med = {k: statistics.median(x[name][0] for x in v) for k, v in rows.items()}
        second = statistics.median(x[name][1] for v in rows.values() for x in v)
        print(f"| {name} | {med['off']:.2f} | {med['cold']:.2f} | {med['warm']:.2f} | {second:.3f} | "
              f"{med['warm'] / med['off']:.2f} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--experiment", default="poisson-inverse")
    p.add_argument("--work", action="store_true", help="time a solver's and the projectors' first calls instead")
    a = p.parse_args(argv)
    if a.work:
        work(a.rounds)
        return
    rows: dict[str, list[dict]] = {"cold": [], "warm": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            cache = os.path.join(tmp, f"cache{r}")
            rows["cold"].append(one(a.experiment, os.path.join(tmp, "out"), cache))
            rows["warm"].append(one(a.experiment, os.path.join(tmp, "out"), cache))
            rows["off"].append(one(a.experiment, os.path.join(tmp, "out"), cache, "--no-cache"))
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("process", "run", "compile")} for k, v in rows.items()}
    print(f"`invsolve run {a.experiment} --quick`, medians of {a.rounds} rounds (seconds)\n")
    print("| run | whole process | experiment (metrics.json) | of which compiling | process vs first run |")
    print("|---|---|---|---|---|")
    names = {"cold": "first run (empty cache)", "warm": "second run (cache filled)", "off": "--no-cache"}
    for k in ("cold", "warm", "off"):
        m = med[k]
        print(f"| {names[k]} | {m['process']:.1f} | {m['run']:.1f} | {m['compile']:.1f} | "
              f"{m['process'] / med['cold']['process']:.2f}x |")


if __name__ == "__main__":
    main()
