"""First run vs second run of the main job: JAX's persistent compilation cache of the command line.

Each round runs ``invsolve run poisson-inverse --quick`` three times as whole processes:
``cold`` with an empty cache folder (a user's first run: it compiles and fills the cache),
``warm`` right after it on the same folder (the second run: programs are loaded, not
compiled), and ``off`` with ``--no-cache``. Prints one table of medians over the rounds, with
the wall time the command reports for itself (``wall_time_s`` in metrics.json: the
experiment, without interpreter start-up) and its compile time.

    python benchmarks/compile_cache.py            # 5 rounds, about 3 minutes
    python benchmarks/compile_cache.py --rounds 3 --experiment poisson-kappa
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--experiment", default="poisson-inverse")
    a = p.parse_args(argv)
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
