"""Parallel-beam projector speed: invsolve (Joseph, exact adjoint) vs scikit-image and ASTRA.

Run from the repository root: ``python benchmarks/tomography.py`` (``--quick``: 128² only).
Prints one markdown table. Rows: image size x number of angles, float32 and float64, plus a
batch of 16 images and a 64-slice volume (256², 180 angles). Columns: median wall time of
the forward projection and of the exact adjoint (back-projection) for invsolve, scikit-image
(``radon(circle=True)``, ``iradon(filter_name=None)``; a loop for batches) and, when the
``astra-toolbox`` package is installed, ASTRA's CPU ``linear`` projector (``create_sino``,
``create_backprojection``; float32 only). invsolve's compile time is reported separately.
The ratios are scikit-image time / invsolve time (forward) and invsolve adjoint / forward.
"""

from __future__ import annotations

import argparse
import os
import time

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from skimage.transform import iradon, radon  # noqa: E402

jax.config.update("jax_enable_x64", True)

from invsolve.problems import phantoms, tomography  # noqa: E402

try:
    import astra
except ImportError:  # optional peer
    astra = None


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def invsolve_times(x, angles, dtype, repeats):
    """(compile s, forward s, adjoint s) for a jitted forward and adjoint."""
    op = tomography.ParallelBeam(x.shape[-1], jnp.asarray(angles, dtype), slices=None)
    xj = jnp.asarray(x, dtype)
    fwd = jax.jit(lambda v: op.mv(v))
    adj = jax.jit(lambda s: op.T.mv(s))
    t0 = time.perf_counter()
    sino = jax.block_until_ready(fwd(xj))
    jax.block_until_ready(adj(sino))
    compile_s = time.perf_counter() - t0
    return compile_s, median_time(lambda: fwd(xj), repeats), median_time(lambda: adj(sino), repeats)


def skimage_times(x, angles, repeats):
    deg = np.rad2deg(angles)
    imgs = x.reshape(-1, *x.shape[-2:])
    sino = [radon(im, deg, circle=True) for im in imgs]

    def fwd():
        return [radon(im, deg, circle=True) for im in imgs]

    def adj():
        return [iradon(s, deg, circle=True, filter_name=None) for s in sino]

    return median_time(fwd, repeats), median_time(adj, repeats)


def astra_times(x, angles, repeats):
    if astra is None:
        return None, None
    n = x.shape[-1]
    proj = astra.create_projector("linear", astra.create_proj_geom("parallel", 1.0, n, angles),
                                  astra.create_vol_geom(n, n))
    imgs = x.reshape(-1, n, n).astype(np.float32)
    sinos = []
    for im in imgs:
        sid, s = astra.create_sino(im, proj)
        astra.data2d.delete(sid)
        sinos.append(s)

    def fwd():
        for im in imgs:
            sid, _ = astra.create_sino(im, proj)
            astra.data2d.delete(sid)

    def adj():
        for s in sinos:
            bid, _ = astra.create_backprojection(s, proj)
            astra.data2d.delete(bid)

    out = median_time(fwd, repeats), median_time(adj, repeats)
    astra.projector.delete(proj)
    return out


def ms(t):
    return "-" if t is None else f"{1e3 * t:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128² only")
    args = ap.parse_args()
    cases = [(128, 30, 1), (128, 180, 1)]
    if not args.quick:
        cases += [(256, 30, 1), (256, 180, 1), (256, 180, 16), (256, 180, 64)]
    print("| image | angles | batch | dtype | invsolve fwd ms | invsolve adj ms | adj/fwd | compile s "
          "| skimage fwd ms | skimage adj ms | skimage/invsolve fwd | ASTRA fwd ms | ASTRA adj ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, n_angles, batch in cases:
        angles = np.linspace(0, np.pi, n_angles, endpoint=False)
        one = np.array(phantoms.shepp_logan(size), np.float64)  # a writable copy (scikit-image needs one)
        x = one if batch == 1 else np.stack([np.roll(one, k % 7, axis=0) * (1 + 0.01 * k) for k in range(batch)])
        repeats = 5 if batch == 1 else 3
        sk_f, sk_b = skimage_times(x, angles, 3 if batch == 1 else 1)
        as_f, as_b = astra_times(x, angles, repeats)
        for dtype in (jnp.float32, jnp.float64):
            c, f, b = invsolve_times(x, angles, dtype, repeats)
            peer = dtype == jnp.float32
            print(f"| {size}² | {n_angles} | {batch} | {jnp.dtype(dtype).name} | {ms(f)} | {ms(b)} | {b / f:.2f} "
                  f"| {c:.2f} | {ms(sk_f)} | {ms(sk_b)} | {sk_f / f:.1f} | {ms(as_f if peer else None)} "
                  f"| {ms(as_b if peer else None)} |", flush=True)


if __name__ == "__main__":
    main()
