"""Tumour growth (Ezhov et al. 2023, "A for-loop is all you need"; Lipkova et al. 2019):
Fisher-Kolmogorov parameters from one scan's segmentations, by gradients and by database
query."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import solvers
from .._solve import solve
from ..problems import tumor
from . import Criterion, Experiment, Outcome, register


@dataclasses.dataclass(frozen=True)
class TumorConfig:
    """A synthetic case on the MNI152 anatomy.

    ``axial_slice``: relative height of a 2D axial slice, None for the 3D brain; ``origin``
    must have 2 or 3 coordinates accordingly. Units: D_white mm^2/day, rho 1/day, t_end days.
    ``t_end_known=False`` fits (lam, mu, origin) instead of (D_white, rho, origin).
    ``noise``: boundary noise of the segmentation thresholds (`tumor.segment`).
    Optimizer: Adam(``learning_rate``) for ``max_steps`` steps; ``dtype`` of the simulation.
    """

    resolution_mm: int = 3
    axial_slice: float | None = 0.5
    D_white: float = 0.1
    rho: float = 0.02
    origin: tuple[float, ...] = (0.6, 0.45)
    t_end: float = 300.0
    thresholds: tuple[float, float] = (0.25, 0.675)
    noise: float = 0.0
    t_end_known: bool = True
    max_steps: int = 1000
    learning_rate: float = 1e-2
    dtype: str = "float32"

    def problem(self, seed):
        brain = tumor.mni152_brain(self.resolution_mm, self.axial_slice, dtype=jnp.dtype(self.dtype))
        if len(self.origin) != brain.ndim:
            raise ValueError(f"origin has {len(self.origin)} coordinates but the anatomy is {brain.ndim}D; "
                             "use --set origin=(x,y) for a slice, (x,y,z) with axial_slice=None.")
        truth = tumor.Params(self.D_white, self.rho, self.origin, self.t_end)
        return tumor.segmentation_inverse(brain, truth, self.thresholds, key=jax.random.key(seed),
                                          noise=self.noise, t_end_known=self.t_end_known)

    def gradient(self):
        return solvers.GradientMAP(optax.adam(self.learning_rate), max_steps=self.max_steps)


@dataclasses.dataclass(frozen=True)
class TumorDatabaseConfig(TumorConfig):
    """Plus the bank: ``n_database`` simulations (Sobol over the box), ``k`` neighbours;
    the gradient inversion and the refinement run too, for the comparison."""

    n_database: int = 10_000
    k: int = 5
    batch_size: int = 64


def _f(v):
    return float(np.asarray(v))


def _view(prob, value, truth_origin):
    """2D fields (oedema + core: 0, 1, 2) of the data and of the estimate; 3D: the axial
    slice through the true origin."""
    u = prob.density(prob.unconstrain(value))
    th = jnp.asarray(prob.thresholds, u.dtype).reshape((2,) + (1,) * u.ndim)
    est = np.asarray(jnp.sum(u[None] >= th, axis=0), float)
    obs = np.asarray(jnp.sum(prob.y_obs, axis=0), float)
    if est.ndim == 3:
        k = min(int(truth_origin[2] * est.shape[2]), est.shape[2] - 1)
        est, obs = est[:, :, k], obs[:, :, k]
    return {"observed (1 oedema, 2 core)": obs.T[::-1], "estimate": est.T[::-1], "estimate - observed": (est - obs).T[::-1]}


def tumor_figure(prob, truth_origin, method: str = "estimate") -> dict:
    """Outcome figure fields of `_view`'s panels: the segmentations as classes over the
    tissue (white + grey matter) of the same slice, axes in mm (anterior up), Dice in the
    estimate's title, the true D and rho for the history."""
    a = prob.anatomy
    tissue = np.asarray(a.white + a.grey, float)
    if tissue.ndim == 3:
        tissue = tissue[:, :, min(int(truth_origin[2] * tissue.shape[2]), tissue.shape[2] - 1)]
    h = float(a.spacing_mm)
    nx, ny = tissue.shape
    truth = prob.x_true
    truths = {k: float(np.asarray(v)) for k, v in truth.items() if np.ndim(v) == 0}
    truths.update({f"origin[{i}]": float(o) for i, o in enumerate(np.ravel(truth["origin"]))})
    slice_ = "" if a.ndim == 2 else ", axial slice through the true seed"
    return dict(
                kinds={"observed (1 oedema, 2 core)": "segmentation", "estimate": "segmentation",
                       "estimate - observed": "error"},
                labels={"observed (1 oedema, 2 core)": f"observed segmentation{slice_}",
                        "estimate": f"{method}: simulated segmentation",
                        "estimate - observed": "estimate − observed (class difference)"},
                classes=("", "oedema", "core"), anatomy=tissue.T[::-1], layout="image",
                extent=((0.0, nx * h), (0.0, ny * h)), axes=("x (right) [mm]", "y (anterior) [mm]"),
                panel_metrics={"estimate": ("dice_edema", "dice_core")}, truths=truths)


def _metrics(sol, prefix=""):
    return {prefix + k: _f(v) for k, v in sol.metrics.items()}


def run_gradient(cfg: TumorConfig, seed: int) -> Outcome:
    prob = cfg.problem(seed)
    sol = solve(prob, cfg.gradient(), key=jax.random.key(seed + 1))
    return Outcome(sol, _view(prob, sol.value, cfg.origin), **tumor_figure(prob, cfg.origin, "GradientMAP"))


def run_database(cfg: TumorDatabaseConfig, seed: int) -> Outcome:
    prob = cfg.problem(seed)
    db = solvers.DatabaseQuery.build(prob, cfg.n_database, jax.random.key(seed + 2), batch_size=cfg.batch_size,
                                     k=cfg.k)
    first = solve(prob, db)
    sol = solve(prob, db)  # the latency once compiled
    grad = solve(prob, cfg.gradient(), key=jax.random.key(seed + 1))
    refined = solve(prob, db.refine(cfg.gradient()), key=jax.random.key(seed + 3))
    q, g = _metrics(sol), _metrics(grad)
    dice = lambda m: 0.5 * (m["dice_edema"] + m["dice_core"])
    extra = {"n_database": db.n, "build_time_s": db.build_time_s, "query_time_s": sol.stats["wall_time_s"],
             "query_compile_s": first.stats["compile_time_s"],
             "gradient_time_s": grad.stats["wall_time_s"], "refine_time_s": refined.stats["wall_time_s"],
             **_metrics(grad, "gradient_"), **_metrics(refined, "refined_"),
             "dice_ratio_query_over_gradient": dice(q) / dice(g),
             "speedup_query_over_gradient": grad.stats["wall_time_s"] / sol.stats["wall_time_s"],
             "k_std": {k: np.asarray(v).tolist() for k, v in sol.std.items()}}
    paper = {"claim": "one order speed-up compared to existing approaches (Ezhov et al. 2023)"}
    return Outcome(sol, _view(prob, sol.value, cfg.origin), paper=paper, extra_metrics=extra,
                   **tumor_figure(prob, cfg.origin, f"database query (k = {cfg.k})"))


_FULL = dict(axial_slice=None, origin=(0.6, 0.45, 0.5))
# The for-loop paper reports Dice, not parameter errors, for its optimiser baseline: full-setting
# targets are ours; quick thresholds are the measured values (2D slice, no noise) with a margin.
GRADIENT_CRITERIA = (
    Criterion("rel_err_D", "|<=", 0.03, 0.2, "quick, ours: measured 0.011, 2.7x; full: our target"),
    Criterion("rel_err_rho", "|<=", 0.01, 0.2, "quick, ours: measured 0.003, 3x; full: our target"),
    Criterion("dice_core", ">=", 0.95, 0.85, "quick, ours: measured 1.0; full: our target"),
    Criterion("dice_edema", ">=", 0.95, 0.85, "quick, ours: measured 1.0; full: our target"),
)

register(Experiment(
    name="tumor-gradient",
    description="Tumour D, rho and seed from two segmentations on the MNI152 brain (GradientMAP + Adam; quick: 2D slice)",
    run=run_gradient,
    quick=TumorConfig(),
    full=TumorConfig(**_FULL),
    x64=False,
    criteria=GRADIENT_CRITERIA,
))

register(Experiment(
    name="tumor-database",
    description="Tumour parameters by database query ('a for-loop is all you need'), vs gradients and refined",
    run=run_database,
    quick=TumorDatabaseConfig(),
    full=TumorDatabaseConfig(**_FULL, n_database=5000),
    x64=False,
    criteria=(
        Criterion("dice_ratio_query_over_gradient", ">=", 0.9, 0.9, "ours, after the paper's claim (one order of "
                  "magnitude faster at a comparable fit): query Dice >= 0.9x the gradient inversion's"),
        Criterion("speedup_query_over_gradient", ">=", 10.0, 10.0, "the paper's claim: one order of magnitude "
                  "faster than the optimiser, once the bank is built (build_time_s beside it)"),
        Criterion("dice_core", ">=", 0.9, 0.85, "quick, ours: measured 0.976; full: our target"),
    ),
))
