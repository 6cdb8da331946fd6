"""Compile once per shape, and once per machine: the multigrid solve and the projectors reuse
their compiled programs for new data of the same shape, and `invsolve.use_compilation_cache`
lets a new process load them instead of compiling (checked with JAX's own cache-hit events)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from helpers import count_compilations

import invsolve as inv
from invsolve.problems import phantoms, poisson, tomography


def _mg_solve(n, k):
    c = (jnp.arange(n) + 0.5) / n
    kappa = 1.0 + 0.1 * k * jnp.sin(jnp.pi * c)[:, None] * jnp.ones(n)
    A = poisson.operator((n, n), kappa=kappa)
    system = poisson.linear_system(A, jnp.full((n, n), k + 1.0))
    return inv.solve(system, inv.solvers.PCG(inv.solvers.Multigrid(), rtol=1e-6))


def test_multigrid_solve_compiles_once_per_shape():
    first = _mg_solve(32, 0)
    assert first.result == inv.RESULTS.successful
    for k in (1, 2):  # new coefficients and a new right-hand side, same grid
        with count_compilations() as c:
            sol = _mg_solve(32, k)
        assert sol.result == inv.RESULTS.successful and c["lower"] == 0 and c["compile"] == 0, dict(c)


def test_projectors_compile_once_per_shape():
    def cone(k):
        return tomography.ConeBeam(shape=(16, 16, 16), angles=jnp.linspace(0.1 * k, 2 * jnp.pi, 12, endpoint=False),
                                   detector=(32, 32), source_distance=80.0, detector_distance=40.0)

    def fan(k):
        return tomography.FanBeam(24, jnp.linspace(0.1 * k, 2 * jnp.pi, 16, endpoint=False), 40,
                                  source_distance=60.0, detector_distance=30.0)

    for make, vol in ((cone, phantoms.shepp_logan_3d(16)), (fan, phantoms.shepp_logan(24))):
        op = make(0)
        op.rmv(op.mv(vol))
        for k in (1, 2):  # other angles (same count) and other data
            op, data = make(k), (k + 1.0) * vol
            with count_compilations() as c:
                op.rmv(op.mv(data))
            assert c["lower"] == 0 and c["compile"] == 0, (make.__name__, dict(c))


_CHILD = """
import json, sys, jax
jax.config.update("jax_enable_x64", True)
hits = {"hit": 0, "miss": 0}
def on(name, **_):
    if name == "/jax/compilation_cache/cache_hits": hits["hit"] += 1
    if name == "/jax/compilation_cache/cache_misses": hits["miss"] += 1
jax.monitoring.register_event_listener(on)
import invsolve as inv
inv.use_compilation_cache(sys.argv[1], min_compile_time_s=0.0)
sys.path.insert(0, sys.argv[2])
from test_compile_cache import _mg_solve
sol = _mg_solve(16, 1)
print(json.dumps(dict(hits, ok=bool(sol.result == inv.RESULTS.successful))))
"""


def test_a_new_process_loads_the_cached_programs(tmp_path):
    """First process: every program is a cache miss and is stored; second: every one a hit."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    here = os.path.dirname(__file__)

    def run():
        out = subprocess.run([sys.executable, "-c", _CHILD, os.fspath(tmp_path / "cache"), here], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert cold["ok"] and warm["ok"]
    assert cold["miss"] >= 3 and cold["hit"] == 0, cold  # the solve's programs (3 measured), compiled and stored
    assert warm["hit"] == cold["miss"] and warm["miss"] == 0, (cold, warm)


def test_use_compilation_cache_bad_input(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    try:
        with pytest.raises(ValueError, match="min_compile_time_s must be a number >= 0"):
            inv.use_compilation_cache(tmp_path, min_compile_time_s=-1)
        f = tmp_path / "file"
        f.write_text("x")
        with pytest.raises(ValueError, match="is not a folder"):
            inv.use_compilation_cache(f)
        assert jax.config.jax_compilation_cache_dir == before  # nothing changed by a refused call
        assert inv.use_compilation_cache(tmp_path / "c") == os.fspath(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == os.fspath(tmp_path / "c")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
