"""Cone-beam projector speed: invsolve (Joseph, exact gather adjoint) vs a NumPy/SciPy reference.

Run from the repository root: ``python benchmarks/conebeam.py`` (``--quick``: 64³, 90 views).
Geometry: 128³ volume, 360 views over 2 pi, 192² detector, source 500 and detector 250 voxels
from the axis, float32. Prints one markdown table: median of 3 runs, invsolve's compile time
(``jit(...).lower(...).compile()``) separately.

Peer: no CPU cone-beam package installs here (``leapct`` is not on the package index;
``tigre`` on PyPI is an unrelated placeholder; ODL 1.0 has cone beam only through ASTRA's CUDA
backend; ASTRA's CPU build has no 3D cone beam at all). The reference is therefore plain
NumPy/SciPy, one view at a time: the forward samples the same points as Joseph's method
(one per plane along each ray's major axis) with ``scipy.ndimage.map_coordinates(order=1)``
and sums them times the step length, which is the same discrete model (the script checks
the agreement); the back-projection is voxel-driven (each voxel's bilinear detector value),
the usual unmatched back-projector, not the exact adjoint. It is timed on 36 of the 360
views and scaled by 10 (its cost is linear in the views).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.ndimage import map_coordinates

from invsolve.problems.phantoms import shepp_logan_3d
from invsolve.problems.tomography import ConeBeam


def median_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_forward(op, vol, views):
    """Joseph's samples with SciPy's trilinear interpolation, one view at a time."""
    nz, n = op.shape[0], op.shape[-1]
    rows, cols = op.detector
    (sv, su), dso = op.detector_spacing, op.source_distance
    dsd = dso + op.detector_distance
    u = (np.arange(cols) - cols // 2) * su
    v = ((np.arange(rows) - rows // 2) * sv)[:, None]
    k = np.arange(n) - n // 2
    out = np.zeros((len(views), rows, cols), vol.dtype)
    for i, beta in enumerate(np.asarray(op.angles)[views]):
        sx, sy = -dso * np.sin(beta), -dso * np.cos(beta)
        dx = np.broadcast_to(dsd * np.sin(beta) + u * np.cos(beta), (rows, cols))
        dy = np.broadcast_to(dsd * np.cos(beta) - u * np.sin(beta), (rows, cols))
        dz = np.broadcast_to(v, (rows, cols))
        flip = np.abs(dx) > np.abs(dy)
        d_maj, s_maj = np.where(flip, dx, dy), np.where(flip, sx, sy)
        t = (k[:, None, None] - s_maj) / d_maj  # (n, rows, cols)
        X, Y, Z = sx + t * dx, sy + t * dy, t * dz
        X = np.where(flip, k[:, None, None], X)  # exactly on the planes, as Joseph
        Y = np.where(flip, Y, k[:, None, None])
        coords = np.stack([Z + nz // 2, Y + n // 2, X + n // 2]).reshape(3, -1)
        samples = map_coordinates(vol, coords, order=1, mode="constant", cval=0.0).reshape(t.shape)
        out[i] = samples.sum(0) * np.sqrt(dx**2 + dy**2 + dz**2) / np.abs(d_maj)
    return out


def numpy_backproject(op, proj, views):
    """Voxel-driven back-projection: each voxel's bilinear detector value, summed over views."""
    nz, n = op.shape[0], op.shape[-1]
    rows, cols = op.detector
    (sv, su), dso = op.detector_spacing, op.source_distance
    dsd = dso + op.detector_distance
    Z, Y, X = np.meshgrid(np.arange(nz) - nz // 2, np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    out = np.zeros(op.shape, proj.dtype)
    for i, beta in enumerate(np.asarray(op.angles)[views]):
        depth = dso + X * np.sin(beta) + Y * np.cos(beta)
        a = dsd * (X * np.cos(beta) - Y * np.sin(beta)) / depth / su + cols // 2
        b = dsd * Z / depth / sv + rows // 2
        out += map_coordinates(proj[i], np.stack([b, a]).reshape(2, -1), order=1, mode="constant").reshape(op.shape)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64³, 90 views, 96² detector")
    args = parser.parse_args()
    n, nv, det, dso = (64, 90, 96, 250.0) if args.quick else (128, 360, 192, 500.0)
    op = ConeBeam((n, n, n), jnp.linspace(0, 2 * np.pi, nv, endpoint=False, dtype=jnp.float32),
                  detector=(det, det), source_distance=dso, detector_distance=dso / 2)
    vol = jnp.asarray(shepp_logan_3d(n), jnp.float32)
    fwd, adj = jax.jit(lambda x: op.mv(x)), jax.jit(lambda p: op.transpose().mv(p))
    t0 = time.perf_counter()
    fwd = fwd.lower(vol).compile()
    compile_fwd = time.perf_counter() - t0
    proj = jax.block_until_ready(fwd(vol))
    t0 = time.perf_counter()
    adj = adj.lower(proj).compile()
    compile_adj = time.perf_counter() - t0
    t_fwd = median_time(lambda: jax.block_until_ready(fwd(vol)))
    t_adj = median_time(lambda: jax.block_until_ready(adj(proj)))

    views = np.arange(0, nv, 10)  # the NumPy reference on every 10th view, scaled by 10
    vol_np, proj_np = np.asarray(vol), np.asarray(proj)
    ref = numpy_forward(op, vol_np, views)
    agree = np.linalg.norm(ref - proj_np[views]) / np.linalg.norm(ref)
    t_np_fwd = 10 * median_time(lambda: numpy_forward(op, vol_np, views))
    t_np_adj = 10 * median_time(lambda: numpy_backproject(op, proj_np, views))

    print(f"\n{n}³ volume, {nv} views, {det}² detector, float32, {os.cpu_count()} CPU cores; "
          f"NumPy forward vs invsolve on its views: relative L2 difference {agree:.1e}\n")
    print("| operation | invsolve (s) | NumPy/SciPy reference (s) | reference / invsolve | invsolve compile (s) |")
    print("|---|---|---|---|---|")
    print(f"| forward | {t_fwd:.2f} | {t_np_fwd:.1f} | {t_np_fwd / t_fwd:.1f} | {compile_fwd:.1f} |")
    print(f"| adjoint (invsolve exact; reference voxel-driven) | {t_adj:.2f} | {t_np_adj:.1f} | "
          f"{t_np_adj / t_adj:.1f} | {compile_adj:.1f} |")
    print(f"\ninvsolve adjoint / forward time: {t_adj / t_fwd:.2f}")


if __name__ == "__main__":
    main()
