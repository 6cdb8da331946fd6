"""2D acoustic waves: invsolve's `wave.simulate` vs. deepwave (PyTorch, CPU) on the same work.

Run from the repository root: ``python benchmarks/wave.py`` (about 2.5 minutes on 2 CPU cores),
``--quick`` (500 time steps, 3 repeats), ``--orders 4,8`` (default 8), ``--threads 1,2``.
Needs deepwave (``pip install torch==2.13.0`` first, the CPU wheel, then ``pip install
deepwave``; see benchmarks/README.md). Prints one markdown table.

The work, identical in both tools: a 100 x 200 velocity model (depth x distance, 10 m
spacing; 1500 -> 2500 m/s linear in depth), an 8 Hz Ricker wavelet (`wave.ricker`), 1000
time steps of dt = 1 ms (below deepwave's own CFL limit, so it does not sub-step:
``out.info.step_ratio == 1`` is checked), the same spatial stencil order (``order`` in
invsolve, ``accuracy`` in deepwave), sources and 100 receivers on grid nodes 20 m below the
top, 20 absorbing cells on every side: a sponge in invsolve, deepwave's PML (``pml_freq`` =
8 Hz). float32 in both.

Rows: forward (the receiver traces) and forward + gradient (``value_and_grad`` of
``0.5 sum((d - d_obs)^2)`` w.r.t. the velocity; ``loss.backward()`` in deepwave) of 1 shot and
of 8 shots (one batched call in both: ``vmap`` over shots in invsolve, deepwave's shot axis).
``d_obs`` is each tool's own forward of the model with a +200 m/s Gaussian anomaly. Times are
medians of REPEATS runs after a warm-up call, the tools timed in turn (round robin, so that
load from elsewhere falls on both alike); a configuration whose runs have taken BUDGET_S
seconds is not repeated further. invsolve is
compiled ahead of time (``jit(...).lower(...).compile()``, timed in its own column) and the
compiled executable is timed. deepwave runs with 1 and with 2 torch threads
(``torch.set_num_threads``, which sets its OpenMP threads), with ``OMP_WAIT_POLICY=PASSIVE``
(set by this script unless given): with OpenMP's default spinning, 2 threads on a busy 2-core
machine were 10-20x slower than 1. ratio = invsolve time / the faster deepwave time (< 1: invsolve
faster). Peak memory of the gradient: for invsolve XLA's compiled temporary buffers
(``memory_analysis().temp_size_in_bytes``; the checkpointed wavefields live there); for
deepwave the increase of the process's peak resident set during its first gradient call
(``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``; its stored forward
wavefields are torch tensors allocated then).

Before timing, the script checks that the two compute the same thing: in a constant 2000 m/s
model, before any boundary reflection reaches the receivers, invsolve's traces equal
deepwave's times ``-1 / (v^2 h^2)`` (deepwave's source term is ``-v^2 s`` per cell, invsolve's
a unit point source ``s / h^2``) to float32 round-off; the relative difference is printed.
"""

from __future__ import annotations

import argparse
import os
import time

# deepwave's OpenMP threads sleep rather than spin while waiting: with the default (spinning)
# policy, 2 threads on a loaded 2-core machine made it 10-20x slower than 1 thread
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax
import jax.numpy as jnp
import numpy as np

import _timing  # benchmarks/_timing.py (scripts run from the repository root)

from invsolve.problems import wave

try:
    import deepwave
    import torch
except ImportError as err:  # the peer is required: say how to get it
    raise SystemExit(f"benchmarks/wave.py needs deepwave and a CPU torch ({err}); "
                     "pip install torch==2.13.0 && pip install deepwave") from None

REPEATS = 5
BUDGET_S = 8.0  # per timed measurement: a slow configuration gets fewer repeats
NZ, NX, H, DT, F_PEAK, WIDTH = 100, 200, 10.0, 1e-3, 8.0, 20
N_REC, SHOT_COUNTS = 100, (1, 8)


# --------------------------------------------------------------------------------------
# memory: peak resident set of this process during one call
# --------------------------------------------------------------------------------------
def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peak_rss_increase_mb(fn):
    """MB by which the peak RSS exceeds the RSS before ``fn()`` (None where /proc cannot reset it)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    return None if before is None or peak is None else max(peak - before, 0) / 1024.0


def interleaved_medians(fns, repeats, budget_s=BUDGET_S):
    return _timing.interleaved_medians(fns, repeats, budget_s)


# --------------------------------------------------------------------------------------
# the survey
# --------------------------------------------------------------------------------------
def survey(n_shots, nt):
    """(velocity, true velocity, source indices (S, 2), receiver indices (R, 2), wavelet)."""
    z = np.arange(NZ, dtype=np.float32)[:, None]
    x = np.arange(NX, dtype=np.float32)[None, :]
    v = (1500.0 + 1000.0 * z / (NZ - 1)) * np.ones((1, NX), np.float32)
    v_true = v + 200.0 * np.exp(-((z - 60) ** 2 + (x - 100) ** 2) / (2 * 8.0**2))
    xs = np.linspace(10, NX - 11, n_shots).round().astype(int) if n_shots > 1 else np.array([NX // 2])
    src = np.stack([np.full(n_shots, 2), xs], -1)
    rec = np.stack([np.full(N_REC, 2), np.arange(0, NX, NX // N_REC)], -1)
    w = np.asarray(wave.ricker(F_PEAK, DT, nt), np.float32)
    return v.astype(np.float32), v_true.astype(np.float32), src, rec, w


def invsolve_fns(src, rec, w, order):
    kw = {"spacing_m": H, "dt": DT, "order": order, "sponge": WIDTH}
    s, r, wj = jnp.asarray(src * H, jnp.float32), jnp.asarray(rec * H, jnp.float32), jnp.asarray(w)
    fwd = jax.jit(lambda v: wave.simulate(v, s, r, wj, **kw))

    def misfit(v, d_obs):
        return 0.5 * jnp.sum((wave.simulate(v, s, r, wj, **kw) - d_obs) ** 2)

    return fwd, jax.jit(jax.value_and_grad(misfit))


def deepwave_fns(src, rec, w, order):
    n_shots = src.shape[0]
    kw = {"source_amplitudes": torch.tensor(w).expand(n_shots, 1, -1).contiguous(),
          "source_locations": torch.tensor(src)[:, None, :],
          "receiver_locations": torch.tensor(rec)[None].expand(n_shots, -1, -1).contiguous(),
          "accuracy": order, "pml_width": WIDTH, "pml_freq": F_PEAK}

    def fwd(v):
        with torch.no_grad():
            out = deepwave.scalar(v, H, DT, **kw)
        assert out.info.step_ratio == 1, out.info.step_ratio  # the same time steps as invsolve
        return out.receiver_amplitudes

    def value_and_grad(v, d_obs):
        vv = v.detach().clone().requires_grad_(True)
        d = deepwave.scalar(vv, H, DT, **kw).receiver_amplitudes
        loss = 0.5 * ((d - d_obs) ** 2).sum()
        loss.backward()
        return loss.detach(), vv.grad

    return fwd, value_and_grad


# --------------------------------------------------------------------------------------
# the same physics: a check before timing
# --------------------------------------------------------------------------------------
def agreement(order):
    """Relative difference of the traces (constant model, before boundary reflections)."""
    v = np.full((NZ, NX), 2000.0, np.float32)
    src = np.array([[50, 100]])
    rec = np.stack([np.full(10, 50), np.arange(110, 150, 4)], -1)
    w = np.asarray(wave.ricker(F_PEAK, DT, 400), np.float32)
    a = np.asarray(wave.simulate(jnp.asarray(v), src * H, rec * H, jnp.asarray(w), spacing_m=H, dt=DT, order=order,
                                 sponge=WIDTH))[0]
    dw_fwd = deepwave_fns(src, rec, w, order)[0]
    b = dw_fwd(torch.tensor(v)).numpy()[0].T / (-(2000.0**2) * H * H)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


# --------------------------------------------------------------------------------------
def rows_for(order, n_shots, nt, repeats, threads, rows):
    v, v_true, src, rec, w = survey(n_shots, nt)
    work = f"{n_shots} shot{'s' if n_shots > 1 else ''}, order {order}"
    # deepwave: its own forward of the true model as data; the first gradient call (which
    # allocates the stored wavefields afresh) measures the memory
    dfwd, dvg = deepwave_fns(src, rec, w, order)
    vt, vtt = torch.tensor(v), torch.tensor(v_true)
    torch.set_num_threads(threads[0])
    d_obs_t = dfwd(vtt)
    mem_dw = peak_rss_increase_mb(lambda: dvg(vt, d_obs_t))
    def with_threads(t, fn):
        def run():
            torch.set_num_threads(t)
            return fn()
        return run

    # invsolve: compiled ahead of time, the compile timed
    fwd, vg = invsolve_fns(src, rec, w, order)
    vj, vtj = jnp.asarray(v), jnp.asarray(v_true)
    t0 = time.perf_counter()
    fwd_c = fwd.lower(vj).compile()
    cf = time.perf_counter() - t0
    d_obs = jax.block_until_ready(fwd_c(vtj))
    t0 = time.perf_counter()
    vg_c = vg.lower(vj, d_obs).compile()
    cg = time.perf_counter() - t0
    try:
        temp = vg_c.memory_analysis().temp_size_in_bytes / 2**20
    except Exception:  # noqa: BLE001 -- memory_analysis is backend-dependent
        temp = None
    jax.block_until_ready(vg_c(vj, d_obs))  # warm-up

    tf, *dwf = interleaved_medians([lambda: jax.block_until_ready(fwd_c(vj))]
                                   + [with_threads(t, lambda: dfwd(vt)) for t in threads], repeats)
    tg, *dwg = interleaved_medians([lambda: jax.block_until_ready(vg_c(vj, d_obs))]
                                   + [with_threads(t, lambda: dvg(vt, d_obs_t)) for t in threads], repeats)
    fmt = lambda m: "-" if m is None else f"{m:.0f}"
    rows.append((work, "forward", tf, cf, dwf, tf / min(dwf), "-", "-"))
    rows.append((work, "forward + gradient", tg, cg, dwg, tg / min(dwg), fmt(temp), fmt(mem_dw)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 steps, 3 repeats")
    ap.add_argument("--orders", default="8", help="comma-separated stencil orders out of 2,4,8 (default 8)")
    ap.add_argument("--threads", default="1,2", help="torch threads for deepwave (default 1,2)")
    args = ap.parse_args()
    repeats = 3 if args.quick else REPEATS
    nt = 500 if args.quick else 1000
    orders = [int(o) for o in args.orders.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(max(threads))
    checks = {o: agreement(o) for o in orders}
    rows = []
    for order in orders:
        for n_shots in SHOT_COUNTS:
            rows_for(order, n_shots, nt, repeats, threads, rows)
    load = os.getloadavg()[0]
    print(f"\njax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__}, deepwave "
          f"{deepwave.__version__}; float32; {NZ}x{NX} model + {WIDTH} absorbing cells per side, h = {H:g} m, "
          f"{nt} steps of dt = {DT * 1e3:g} ms, {F_PEAK:g} Hz Ricker, {N_REC} receivers; median of {repeats}; "
          f"load average {load:.1f} at the end\n")
    print("same work: |invsolve - deepwave| / |invsolve| before boundary reflections (constant model, 400 steps): "
          + ", ".join(f"order {o}: {e:.1e}" for o, e in checks.items()) + "\n")
    th = " / ".join(str(t) for t in threads)
    print(f"| work | run | invsolve s | invsolve compile s | deepwave s ({th} threads) "
          f"| ratio invsolve / best deepwave | invsolve XLA temp MB | deepwave peak RSS + MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for work, run, t, c, tds, ratio, tmp, md in rows:
        print(f"| {work} | {run} | {t:.3f} | {c:.2f} | {' / '.join(f'{x:.3f}' for x in tds)} | {ratio:.2f} | {tmp} "
              f"| {md} |")
    print("\nAbsorbing boundaries differ: invsolve a 20-cell sponge (damping layer, `reflection=1e-2`), "
          "deepwave a 20-cell CFS-PML (`pml_freq` 8 Hz); everything else is the same discretisation.")


if __name__ == "__main__":
    main()
