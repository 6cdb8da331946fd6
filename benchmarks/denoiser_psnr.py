"""Tweedie denoisers of the shipped MNI152 score priors on the held-out test slab.

    python benchmarks/denoiser_psnr.py [--priors mni-64 mni-64-edm]

For each noise level sigma (image units, images in [0, 1]) every one of the 24 test slices
(`phantoms.axial_slices("test")`, never seen in training) gets ``x + sigma e`` (seed 0) and
the prior's ``E[x_0 | x_0 + sigma e]``; the table gives the mean PSNR (data range 1) and the
noisy input's. Prints one markdown table (docs/results.md).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from invsolve import metrics
from invsolve.priors import ScorePrior
from invsolve.problems import phantoms
from invsolve.solvers.samplers import denoise_at

SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.4, 1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--priors", nargs="+", default=["mni-64", "mni-64-edm"])
    args = ap.parse_args()
    x = phantoms.axial_slices("test", 64)[0]
    priors = {name: ScorePrior.pretrained(name) for name in args.priors}
    print("| sigma | noisy | " + " | ".join(args.priors) + " |")
    print("|---|---|" + "---|" * len(args.priors))
    for sigma in SIGMAS:
        z = x + sigma * jax.random.normal(jax.random.key(0), x.shape, x.dtype)
        cells = [np.mean([float(metrics.psnr(a, b)) for a, b in zip(z, x)])]
        for p in priors.values():
            d = denoise_at(p, z, jnp.asarray(sigma, x.dtype))
            cells.append(np.mean([float(metrics.psnr(a, b)) for a, b in zip(d, x)]))
        print(f"| {sigma:g} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
