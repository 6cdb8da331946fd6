"""Generate ``00_tour.ipynb`` (without outputs) from the cells below.

Edit this script, not the notebook, then run ``python notebooks/make_00_tour.py``.
"""

from nbgen import Cells, write

cells = Cells()
md, code = cells.md, cells.code

md(r"""
# A tour of invsolve: one forward model, four solvers, one `solve()`

An inverse problem has three parts, and invsolve keeps them apart:

* the **problem**: physics + data. Here sparse-view X-ray tomography of a brain slice: the unknown is a
  $64\times64$ image $x$, the data are $y = A x + \varepsilon$ with $A$ the Radon transform at 30 angles and 1 %
  Gaussian noise;
* the **solver**: a method, with its own prior and settings;
* one verb, `inv.solve(problem, solver, key=...)`, which returns a `Solution` with the estimate, a result
  code, the per-step history, timing statistics and errors against the truth when it is known.

Swapping the method is swapping one object. The whole notebook runs in well under a minute on a CPU, and it
checks its own numbers: the `assert` lines hold each result to a bound near its measured value (in the comment).
""")

code(r"""
import jax

jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt
import numpy as np
import optax

import invsolve as inv
from invsolve.problems import phantoms, tomography

x = phantoms.axial_slices("test", 64)[0][12]          # a held-out MNI152 slice, values in [0, 1]
prob = tomography.sparse_view(x, n_angles=30, noise=0.01, key=jax.random.key(0))
print(type(prob).__name__, "unknown", prob.A.in_shape, "-> data", prob.A.out_shape, "noise sigma", float(prob.noise.sigma))
""")

md(r"""
## The forward model is a JAX function

`prob.forward` is pure: it can be jitted, differentiated and vmapped. Its adjoint is exact (the transpose of the
same discrete operator), which the dot-product test checks: $\langle A x, y\rangle = \langle x, A^T y\rangle$.
""")

code(r"""
A = prob.operator()
u = jax.random.normal(jax.random.key(1), A.in_shape)
v = jax.random.normal(jax.random.key(2), A.out_shape)
lhs, rhs = np.vdot(A.mv(u), v), np.vdot(u, A.transpose().mv(v))
print(f"<Au, v> = {lhs:.10f}   <u, A^T v> = {rhs:.10f}")
assert abs(lhs - rhs) < 1e-12 * abs(lhs)  # exact adjoint: equal to rounding
g = jax.grad(prob.neg_log_likelihood)(jax.numpy.zeros(A.in_shape))   # the data term's gradient, by autodiff
print("gradient shape", g.shape)
""")

md(r"""
## Four solvers, one call

1. `CGLS`: conjugate gradients on the normal equations, stopped early (the iteration count is the regulariser);
2. `GradientMAP`: any optax optimiser on $\tfrac12\|(Ax - y)/\sigma\|^2 + R(x)$, here L-BFGS with a smoothed TV prior;
3. `ChambollePock`: the primal-dual method for exact (non-smooth) TV, the standard for CT;
4. `PnPADMM` with a learned proximal network (LPN) trained on brain slices, shipped inside the package.
""")

code(r"""
solvers = {
    "CGLS (10 its)": inv.solvers.CGLS(max_steps=10),
    "MAP, L-BFGS + TV": inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.TV(10.0), max_steps=150),
    "Chambolle-Pock TV": inv.solvers.ChambollePock(lam=10.0, max_steps=200),
    "PnP-ADMM + LPN": inv.solvers.PnPADMM(prior=inv.priors.LPN.pretrained("mni-64"), max_steps=20),
}
sols = {name: inv.solve(prob, s, throw=False) for name, s in solvers.items()}
fbp = tomography.fbp(prob)
print(f"{'method':<20}{'PSNR':>7}{'SSIM':>7}{'steps':>7}{'time [s]':>10}  result")
print(f"{'FBP':<20}{inv.metrics.psnr(fbp, x):>7.2f}{inv.metrics.ssim(fbp, x):>7.3f}")
for name, s in sols.items():
    print(f"{name:<20}{inv.metrics.psnr(s.value, x):>7.2f}{inv.metrics.ssim(s.value, x):>7.3f}"
          f"{s.stats['num_steps']:>7}{s.stats['wall_time_s']:>10.2f}  {s.result}")

psnr = {name: float(inv.metrics.psnr(s.value, x)) for name, s in sols.items()}
psnr["FBP"] = float(inv.metrics.psnr(fbp, x))
ssim = {name: float(inv.metrics.ssim(s.value, x)) for name, s in sols.items()}
priors = ["MAP, L-BFGS + TV", "Chambolle-Pock TV", "PnP-ADMM + LPN"]
assert psnr["FBP"] > 26.5 and psnr["CGLS (10 its)"] > 26.5  # measured 28.1, 28.4 dB; 1.5 dB = 1.2x the RMS error
assert min(psnr[p] for p in priors) > psnr["FBP"] + 3  # measured 32.7, 33.1, 33.6 dB: FBP + 4.6 dB or more
assert min(ssim[p] for p in priors) > 0.91  # measured 0.943, 0.978, 0.963 (FBP 0.743); 1.5x margin on 1 - SSIM
""")

code(r"""
fig, axes = plt.subplots(1, 6, figsize=(16, 3))
for ax, (title, img) in zip(axes, [("truth", x), ("FBP", fbp)] + [(n, s.value) for n, s in sols.items()]):
    ax.imshow(np.asarray(img), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.tight_layout()
""")

md(r"""
## What a `Solution` carries

The history is recorded per step by the same driver for every solver, so convergence plots look alike.
""")

code(r"""
s = sols["Chambolle-Pock TV"]
print("history:", list(s.history), " stats:", {k: round(v, 3) if isinstance(v, float) else v for k, v in s.stats.items()})
print("metrics:", {k: float(v) for k, v in s.metrics.items()})
assert s.metrics["rel_l2"] < 0.06  # measured 0.046; 1.3x margin
fig, ax = plt.subplots(figsize=(5, 3))
for name, sol in sols.items():
    h = next(iter(sol.history.values()))
    ax.semilogy(np.abs(np.asarray(h)), label=f"{name}: {next(iter(sol.history))}")
ax.set_xlabel("step")
ax.legend(fontsize=7)
""")

md(r"""
## Where next

* `01_poisson` … `07_diffusion`: one notebook per problem family and method;
* `08_scale_and_uq`: many problems in one compiled call (`solve_batch`), and Bayesian posteriors (`NUTS`);
* `invsolve list` and `invsolve run NAME --quick`: the named experiments that reproduce the papers' results.
""")

nb = cells.notebook()

if __name__ == "__main__":
    write(nb, __file__)
