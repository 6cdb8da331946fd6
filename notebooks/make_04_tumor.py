"""Generate ``04_tumor.ipynb`` (without outputs) from the cells below.

Edit this script, not the notebook, then run ``python notebooks/make_04_tumor.py``.
"""

from nbgen import Cells, write

cells = Cells()
md, code = cells.md, cells.code


# --------------------------------------------------------------------------------------
md(r"""
# Tumour growth on brain anatomy: gradients or a for-loop?

This notebook walks through `invsolve.problems.tumor` and the two ways `invsolve` inverts it:

1. the anatomy: grey and white matter of the MNI152 template (shipped with nilearn);
2. the forward model: Fisher-Kolmogorov reaction-diffusion, its time stepping, and a check of the front speed;
3. the observation: two segmentation masks from one scan;
4. gradient inversion through the simulator (`GradientMAP`);
5. the database query of Ezhov et al., *A for-loop is all you need* (`DatabaseQuery`), its spread, and a
   gradient refinement from the best match;
6. what one scan cannot tell apart when the tumour's age is unknown.

Everything runs on one axial slice (3 mm voxels) in float32, about a minute on a laptop CPU. The same code runs
in 3D: `invsolve run tumor-gradient` and `invsolve run tumor-database` without `--quick`. The notebook checks its
own numbers: the `assert` lines hold each result to a bound near its measured value (in the comment).
""")

code(r"""
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import invsolve as inv
from invsolve.problems import tumor


def show(ax, img, title, **kw):
    ax.imshow(np.asarray(img).T[::-1], **kw)  # x to the right, anterior up
    ax.set_title(title)
    ax.axis("off")
""")

# --------------------------------------------------------------------------------------
md(r"""
## 1. The anatomy

`tumor.mni152_brain(resolution_mm)` averages nilearn's 1 mm grey- and white-matter probability maps over
3 mm blocks and crops them to the brain. Tumour cells migrate along white-matter tracts faster than through
grey matter: the diffusivity is $D(x) = D_w\,(p_w(x) + p_g(x)/10)$ inside the brain (Lipková et al.) and zero
outside, where no cells can go.
""")

code(r"""
brain3d = tumor.mni152_brain(resolution_mm=3)
brain = tumor.mni152_brain(resolution_mm=3, axial_slice=0.5)
print("3D:", brain3d.shape, "voxels of", brain3d.spacing_mm, "mm; the slice:", brain.shape)

fig, axes = plt.subplots(1, 3, figsize=(11, 4))
show(axes[0], brain.white, "white matter $p_w$", cmap="gray")
show(axes[1], brain.grey, "grey matter $p_g$", cmap="gray")
show(axes[2], brain.relative_diffusivity, "$D(x) / D_w$", cmap="viridis")
plt.tight_layout()
""")

# --------------------------------------------------------------------------------------
md(r"""
## 2. The forward model

$$u_t = \nabla\cdot\big(D(x)\nabla u\big) + \rho\,u(1-u),$$

with $u$ the tumour cell density normalised by the tissue's capacity, $\rho$ the proliferation rate and no flux
across the brain's boundary; $u$ starts as a small Gaussian at the origin. `tumor.simulate` steps it with
explicit Euler on the conservative $2d+1$-point stencil. The step obeys a discrete maximum principle (the
density stays in $[0, 1]$) when

$$\Delta t \le \frac{1}{D_w c/h^2 + \rho},$$

$c$ the largest sum of a voxel's face coefficients ($2d$ in white matter). The for-loop code uses
$0.99\,h^2/(6D)$, the 3D diffusion part of it. Reverse-mode derivatives run a hand-written adjoint stencil
over checkpointed blocks of about $\sqrt{n}$ steps, so memory stays at about $2\sqrt{n}$ states.
""")

code(r"""
truth = tumor.Params(D_white=0.1, rho=0.02, origin=(0.6, 0.45), t_end=300.0)  # mm^2/day, 1/day, -, days
print(f"lambda = sqrt(D/rho) = {float(truth.lam):.2f} mm, mu = rho T = {float(truth.mu):.1f}, "
      f"stable dt = {tumor.stable_dt(brain, 0.1, 0.02):.1f} days")
times = [60.0, 120.0, 200.0, 300.0]
u = tumor.simulate(brain, truth, save_at=times)

fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
for ax, t, ut in zip(axes, times, u):
    show(ax, brain.white, f"t = {t:.0f} days", cmap="gray")
    ax.imshow(np.ma.masked_less(np.asarray(ut).T[::-1], 0.02), cmap="magma", vmin=0, vmax=1, alpha=0.8)
plt.tight_layout()
""")

md(r"""
**A check against theory.** In a homogeneous medium a compact seed becomes a front moving at the Fisher-KPP
speed $2\sqrt{D\rho}$, approached slowly: Bramson's correction puts the front at
$x(t) \approx \lambda\,(2\rho t - \tfrac32 \ln \rho t)$ + const. On a fine 1D grid (`homogeneous_box`) the
simulated speed follows the corrected curve, not the asymptotic one:
""")

code(r"""
D, rho, h = 0.1, 0.02, 0.25
box = tumor.homogeneous_box((1600,), h)
ts = np.arange(100.0, 1001.0, 100.0)
ub = np.asarray(tumor.simulate(box, tumor.Params(D, rho, (0.0,), 1.0), save_at=ts, dt=0.5 * tumor.stable_dt(box, D, rho)))
x = (np.arange(box.shape[0]) + 0.5) * h
front = np.array([np.interp(-0.5, -ui, x) for ui in ub])
lam = np.sqrt(D / rho)
speed = np.diff(front) / np.diff(ts)
bramson = np.diff(lam * (2 * rho * ts - 1.5 * np.log(rho * ts))) / np.diff(ts)
plt.figure(figsize=(6, 3.5))
plt.plot(ts[1:], speed, "o", label="simulated")
plt.plot(ts[1:], bramson, label="Bramson")
plt.axhline(2 * np.sqrt(D * rho), color="k", ls="--", label=r"$2\sqrt{D\rho}$")
plt.xlabel("t [days]"); plt.ylabel("front speed [mm/day]"); plt.legend()
print(f"last interval: simulated / Bramson - 1 = {speed[-1] / bramson[-1] - 1:+.3f}")
assert abs(speed[-1] / bramson[-1] - 1) < 0.005  # measured -0.0032 (against 2 sqrt(D rho): -0.043); 1.5x margin
""")

# --------------------------------------------------------------------------------------
md(r"""
## 3. The observation

A scan shows two regions, not the density: the whole tumour with its oedema (FLAIR, $u \ge 0.25$ here) and the
enhancing core (T1Gd, $u \ge 0.675$). `tumor.segmentation_inverse` simulates a truth, thresholds it and poses
the inverse problem. For gradients the thresholds are smoothed: the likelihood is Bernoulli on every brain voxel
with probabilities $\sigma((u - \theta)/s)$, $s = 0.01$.
""")

code(r"""
prob = tumor.segmentation_inverse(brain, truth, thresholds=(0.25, 0.675), key=jax.random.key(0))
print("oedema and core voxels:", np.asarray(prob.y_obs.sum(axis=(1, 2))).astype(int), "; steps per simulation:", prob.n_steps)
fig, ax = plt.subplots(figsize=(4, 4))
show(ax, brain.white, "segmentation", cmap="gray")
ax.imshow(np.ma.masked_equal(np.asarray(prob.y_obs.sum(0)).T[::-1], 0), cmap="autumn_r", alpha=0.8)
""")

# --------------------------------------------------------------------------------------
md(r"""
## 4. Gradient inversion

`GradientMAP` with Adam over $(D_w, \rho, \text{origin})$, each bounded (the rates log-uniformly in the for-loop
paper's ranges, $D_w \in [0.02, 1.5]$ mm²/day, $\rho \in [0.002, 0.2]$/day; the origin near the core's centroid,
where it starts):
""")

code(r"""
t0 = time.perf_counter()
grad = inv.solve(prob, inv.solvers.GradientMAP(optax.adam(1e-2)))
t_grad = time.perf_counter() - t0
print(f"{t_grad:.1f} s:", {k: round(float(v), 4) for k, v in grad.metrics.items()})
assert min(grad.metrics["dice_edema"], grad.metrics["dice_core"]) > 0.98  # measured 1.0 and 1.0
assert grad.metrics["rel_err_D"] < 0.03 and grad.metrics["rel_err_rho"] < 0.01  # measured 0.011, 0.003; 3x margin
plt.figure(figsize=(5, 3)); plt.semilogy(grad.history["loss"]); plt.xlabel("Adam step"); plt.ylabel("-log likelihood")
""")

# --------------------------------------------------------------------------------------
md(r"""
## 5. A for-loop: query a bank of simulations

Ezhov et al. replace the optimisation by a nearest-neighbour search in a precomputed bank. `DatabaseQuery.build`
simulates 10,000 parameter sets on a scrambled Sobol sequence over the same box (`vmap`ped batches, sharded over
the devices; it can be saved and resumed). Each simulation is stored as the density in a 90 mm window
around its tumour. A query crops the scan the same way around its own tumour, scores every entry by the Dice of
both masks, moves each entry's seed by the offset between the two tumours (so the bank needs to cover the rates,
not every position), and returns the best five with a score-weighted spread.
""")

code(r"""
db = inv.solvers.DatabaseQuery.build(prob, n=10_000, key=jax.random.key(2))
inv.solve(prob, db)  # compiles the query
query = inv.solve(prob, db)
print(f"bank: {db.n} simulations in {db.build_time_s:.1f} s; query {query.stats['wall_time_s']:.2f} s")
print("best match:", {k: np.round(np.asarray(v), 4) for k, v in query.value.items()})
print("spread of the 5 best:", {k: np.round(np.asarray(v), 4) for k, v in query.std.items()})
print({k: round(float(v), 4) for k, v in query.metrics.items()})

refined = inv.solve(prob, db.refine(inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=300)))
print(f"refined, 300 steps in {refined.stats['wall_time_s']:.1f} s:", {k: round(float(v), 4) for k, v in refined.metrics.items()})

# the query: Dice 0.996 and 0.976, rho 2.1 % off (2-3x margins); 300 more steps recover the gradient's accuracy
assert query.metrics["dice_edema"] > 0.99 and query.metrics["dice_core"] > 0.95 and query.metrics["rel_err_rho"] < 0.06
assert refined.metrics["rel_err_D"] < 0.03 and refined.metrics["rel_err_rho"] < 0.01  # measured 0.011, 0.003
""")

code(r"""
rows = [("gradient (1000 steps)", grad, t_grad), ("query", query, query.stats["wall_time_s"]),
        ("query + 300 steps", refined, query.stats["wall_time_s"] + refined.stats["wall_time_s"])]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for name, sol, t in rows:
    dice = 0.5 * (float(sol.metrics["dice_edema"]) + float(sol.metrics["dice_core"]))
    axes[0].scatter(t, dice, s=60, label=name)
    axes[1].scatter(t, float(sol.metrics["rel_err_D"]), s=60, label=name)
axes[0].set_ylabel("mean Dice"); axes[1].set_ylabel("relative error of D")
for ax in axes:
    ax.set_xscale("log"); ax.set_xlabel("wall time [s] (bank build not included)"); ax.legend()
plt.tight_layout()
""")

md(r"""
The query reaches most of the gradient's Dice in a small fraction of its time; its parameters are coarser
(masks of nearly equal Dice span a range of $D$), and a short refinement recovers the gradient's accuracy. The bank's build costs about as much
as one gradient inversion here, so the for-loop pays off from the second scan on (the paper's setting: one bank,
many patients).

## 6. What one scan can tell

A single-time solution depends on the rates only through $\lambda = \sqrt{D/\rho}$ and $\mu = \rho\,t_\text{end}$:
rescale time by $\rho$ and the equation reads $u_\tau = \lambda^2 \nabla\cdot(m\nabla u) + u(1-u)$ on
$\tau \in [0, \mu]$. Two tumours with different $(D, \rho, t_\text{end})$ but the same $(\lambda, \mu)$ are
identical:
""")

code(r"""
a = tumor.Params(0.1, 0.02, (0.6, 0.45), 300.0)
b = tumor.Params(0.05, 0.01, (0.6, 0.45), 600.0)  # same lambda and mu, half the speed, twice the age
ua, ub = (tumor.simulate(brain, p, n_steps=400) for p in (a, b))
print(f"max |u_a - u_b| = {float(jnp.max(jnp.abs(ua - ub))):.1e}")
assert jnp.max(jnp.abs(ua - ub)) < 1e-5  # measured 0 to 1.2e-7 (float32 rounding): identical
""")

md(r"""
So with the age unknown only $\lambda$, $\mu$ and the origin can be recovered: `segmentation_inverse(...,
t_end_known=False)` fits exactly those, and the experiments report errors in $\lambda$ and $\mu$.
""")

code(r"""
prob_free = tumor.segmentation_inverse(brain, truth, thresholds=(0.25, 0.675), t_end_known=False)
fit = inv.solve(prob_free, inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=500))
print({k: round(float(v), 4) for k, v in fit.metrics.items()})
assert min(fit.metrics["dice_edema"], fit.metrics["dice_core"]) > 0.98  # measured 0.996, 1.0
assert fit.metrics["rel_err_lambda"] < 0.1 and fit.metrics["rel_err_mu"] < 0.04  # measured 0.036, 0.014; 2.8x margin
""")

nb = cells.notebook()
if __name__ == "__main__":
    write(nb, __file__)
