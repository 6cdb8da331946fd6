"""2D Navier-Stokes (vorticity, pseudo-spectral): steps per second of invsolve vs. jax-cfd and NumPy.

Run from the repository root: ``python benchmarks/navier_stokes.py`` (about 2 minutes on 2 CPU
cores), ``--quick`` (fewer steps and repeats), ``--sizes 64,128``. jax-cfd is optional
(``pip install jax-cfd``; its rows are left out, with the reason, when it does not import).
Prints one markdown table.

The work: the periodic box ``[0, 2 pi)^2`` at 64², 128² and 256², Re 200 (``nu = 1/200``), the
Kolmogorov forcing ``-4 cos(4 y)``, no drag, float32, a fixed number of steps of the same
``dt`` (a quarter of the CFL limit of the initial state, `navier_stokes.cfl_limit`). The initial
vorticity is `navier_stokes.random_vorticity` projected on the modes that every code below
keeps under its 2/3 rule (so none of them starts from modes it would drop).

- invsolve: the public ``navier_stokes.simulate(omega0, n dt, nu=, dt=, forcing=)``
  (Crank-Nicolson for viscosity, Heun for advection and forcing; 2/3 de-aliasing of the
  fields and of the product; the default CFL checks before and after the run included).
- jax-cfd: ``spectral.equations.NavierStokes2D`` (``smooth=True``, the 2/3 "brick-wall"
  filter; forcing ``kolmogorov_forcing(scale=1, k=4)``, whose curl is ``-4 cos(4 y)``) stepped
  by ``spectral.time_stepping.crank_nicolson_rk2`` (the same CN + Heun scheme) under
  ``funcutils.repeated`` (a ``lax.scan``), jitted. Its advection is
  ``u . grad w`` from four inverse FFTs, invsolve's ``div(u w)`` from three, and its 2/3 filter
  keeps one wavenumber fewer on the positive ``k_x`` side (e.g. ``k_x <= 20`` vs. ``<= 21`` at
  64²), so its trajectory differs from invsolve's by more than round-off; the difference is
  printed.
- NumPy: the invsolve scheme written out below with ``numpy.fft`` (float32, one thread) -- the
  reference for "the same work": its state after the run must agree with invsolve's to
  float32 round-off (the relative difference is printed in the table).

steps/s = steps / median wall time of REPEATS runs after a first call, the implementations
timed in turn (round robin, so that load from elsewhere falls on all alike; one whose runs
have taken BUDGET_S seconds is not repeated further). compile = first call - median. "x
invsolve" = the row's steps/s / invsolve's (> 1: faster than invsolve).
"""

from __future__ import annotations

import argparse
import math
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import jax
import jax.numpy as jnp
import numpy as np

import _timing  # benchmarks/_timing.py (scripts run from the repository root)

from invsolve.problems import navier_stokes as ns

try:
    import jax_cfd
    import jax_cfd.base as cfd
    from jax_cfd import spectral
    JAX_CFD_ERROR = None
except Exception as err:  # noqa: BLE001 -- optional peer; any import failure is reported
    jax_cfd = None
    JAX_CFD_ERROR = f"{type(err).__name__}: {err}"

REPEATS = 5
BUDGET_S = 6.0  # per implementation and grid: a slow one gets fewer repeats
RE, K_FORCE = 200.0, 4
STEPS = {64: 2000, 128: 1000, 256: 300}


# --------------------------------------------------------------------------------------
# the NumPy reference: invsolve's scheme, step by step
# --------------------------------------------------------------------------------------
class NumpyNS:
    """Crank-Nicolson (viscosity) + Heun (advection, forcing), 2/3 de-aliasing, rfft2."""

    def __init__(self, shape, nu, forcing, dt, dtype=np.float32):
        n1, n2 = shape
        kx = np.fft.fftfreq(n1, 1.0 / n1)[:, None]
        ky = np.fft.rfftfreq(n2, 1.0 / n2)[None, :]
        cdtype = np.result_type(dtype, np.complex64)
        self.shape = shape
        self.dkx = np.where(np.abs(kx) == n1 // 2, 0.0, kx).astype(dtype)
        self.dky = np.where(np.abs(ky) == n2 // 2, 0.0, ky).astype(dtype)
        k2 = kx**2 + ky**2
        self.inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0).astype(dtype)
        self.mask = ((np.abs(kx) < n1 / 3.0) & (np.abs(ky) < n2 / 3.0)).astype(dtype)
        self.lin = (-nu * k2).astype(dtype)
        self.denom = (1.0 / (1.0 - 0.5 * dt * self.lin)).astype(dtype)
        self.f_hat = np.fft.rfft2(forcing.astype(dtype)).astype(cdtype)
        self.dt = dtype(dt)
        self.ikx, self.iky = (1j * self.dkx).astype(cdtype), (1j * self.dky).astype(cdtype)

    def nonlinear(self, w_hat):
        w_hat = w_hat * self.mask
        psi = w_hat * self.inv_k2
        u = np.fft.irfft2(self.iky * psi, s=self.shape)  # u = psi_y
        v = np.fft.irfft2(-self.ikx * psi, s=self.shape)  # v = -psi_x
        w = np.fft.irfft2(w_hat, s=self.shape)
        adv = self.ikx * np.fft.rfft2(u * w) + self.iky * np.fft.rfft2(v * w)
        return -adv * self.mask + self.f_hat

    def run(self, omega0, n):
        w_hat = np.fft.rfft2(omega0)
        half = 0.5 * self.dt
        for _ in range(n):
            n1 = self.nonlinear(w_hat)
            explicit = w_hat + half * self.lin * w_hat
            w_tilde = (explicit + self.dt * n1) * self.denom
            n2 = self.nonlinear(w_tilde)
            w_hat = (explicit + half * (n1 + n2)) * self.denom
        return np.fft.irfft2(w_hat, s=self.shape)


# --------------------------------------------------------------------------------------
def initial_state(n):
    """The initial vorticity (float32), projected on the modes all three codes keep."""
    w0 = np.asarray(ns.random_vorticity(jax.random.key(0), (n, n)), np.float64)
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    keep = (kx < n / 3.0) & (kx > -n / 3.0) & (ky < n / 3.0)
    if jax_cfd is not None:  # jax-cfd's brick-wall filter: rows :m//2 and -m//2:, columns :int(2/3 (n/2+1))
        grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
        keep = keep & (np.asarray(spectral.utils.brick_wall_filter_2d(grid)) > 0)
    return np.fft.irfft2(np.fft.rfft2(w0) * keep, s=(n, n)).astype(np.float32)


def first_call(fn):
    """(wall time of the first call, its result)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


def interleaved_medians(fns, repeats, budget_s=BUDGET_S):
    """`_timing.interleaved_medians` of the callables' results, blocked until ready."""
    return _timing.interleaved_medians([lambda fn=fn: jax.block_until_ready(fn()) for fn in fns], repeats, budget_s)


def jax_cfd_runner(n, nu, dt, steps):
    grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    forcing_fn = lambda g: cfd.forcings.kolmogorov_forcing(g, scale=1.0, k=K_FORCE, offsets=((0, 0), (0, 0)))
    eq = spectral.equations.NavierStokes2D(nu, grid, drag=0.0, smooth=True, forcing_fn=forcing_fn)
    step = spectral.time_stepping.crank_nicolson_rk2(eq, dt)
    run = jax.jit(cfd.funcutils.repeated(step, steps))
    return lambda w0: jnp.fft.irfftn(run(jnp.fft.rfftn(w0)))


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def rows_for(n, steps, repeats, rows):
    nu = 1.0 / RE
    w0 = initial_state(n)
    w0j = jnp.asarray(w0)
    dt = 0.25 * float(ns.cfl_limit(w0j))
    forcing = ns.kolmogorov((n, n), 4.0, K_FORCE, jnp.float32)
    t_end = steps * dt

    def inv_run():
        return ns.simulate(w0j, t_end, nu=nu, dt=dt, forcing=forcing)

    # the step count invsolve takes (t / dt rounded up) is the one the others run
    m = ns._steps(t_end, dt, None, "benchmark")[1]
    dt_eff = t_end / m
    impls = [("invsolve navier_stokes.simulate (float32)", inv_run)]
    if jax_cfd is not None:
        run = jax_cfd_runner(n, nu, dt_eff, m)
        impls.append(("jax-cfd spectral CN-RK2 (jit, float32)", lambda: run(w0j)))
    ref = NumpyNS((n, n), nu, np.asarray(forcing), dt_eff)
    impls.append(("NumPy FFT reference (float32, 1 thread)", lambda: ref.run(w0, m)))
    firsts, outs = zip(*(first_call(fn) for _, fn in impls))
    times = interleaved_medians([fn for _, fn in impls], repeats)
    t_inv = times[0]
    for (name, _), first, out, t in zip(impls, firsts, outs, times):
        compile_s = 0.0 if name.startswith("NumPy") else max(first - t, 0.0)
        diff = "-" if name.startswith("invsolve") else f"{rel(out, outs[0]):.1e}"
        rows.append((f"{n}²", m, name, t, compile_s, m / t, t_inv / t, diff))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the steps, 3 repeats")
    ap.add_argument("--sizes", default="64,128,256", help="comma-separated grid sizes (even)")
    args = ap.parse_args()
    repeats = 3 if args.quick else REPEATS
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        steps = STEPS.get(n, max(50, int(2000 * (64 / n) ** 2)))
        rows_for(n, steps // 4 if args.quick else steps, repeats, rows)
    peer = (f"jax-cfd {jax_cfd.__version__}" if jax_cfd is not None
            else f"jax-cfd not available ({JAX_CFD_ERROR})")
    print(f"\njax {jax.__version__} ({jax.devices()[0].platform}), {peer}, numpy {np.__version__}; Re {RE:g}, "
          f"Kolmogorov forcing -4 cos({K_FORCE} y), float32, dt = CFL/4 of the initial state; median of {repeats}; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| grid | steps | implementation | time s | compile s | steps/s | x invsolve | rel. diff to invsolve |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for grid, m, impl, t, c, sps, ratio, diff in rows:
        print(f"| {grid} | {m} | {impl} | {t:.3f} | {c:.2f} | {sps:.0f} | {ratio:.2f} | {diff} |")


if __name__ == "__main__":
    main()
