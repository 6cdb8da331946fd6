"""Darcy flow (``-div(kappa grad u) = 10`` on the unit square, ``u = 0`` on the walls): the
log-permeability ``theta = log kappa`` of held-out fields from `invsolve.problems.fields`,
recovered from the head ``u`` at ``n_sensors`` random cells with 1 % noise. The shipped
``darcy-32`` score prior (trained on fresh fields of the same generator) drives DAPS, PnP-DM
and DPS (non-linear forward model: Langevin steps through the implicitly differentiated
multigrid-CG solve); the baselines are GradientMAP + Tikhonov and NUTS on a coarse grid."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import metrics, priors, solvers
from .._problem import HasForward
from .._solve import solve
from ..priors import ScorePrior
from ..problems import fields, poisson
from . import Criterion, Experiment, Outcome, register

SAMPLERS = ("daps", "pnpdm", "dps")
# Keys of the field draws: the prior trains on fold_in(split(key(0))[1], step); tuning uses
# VAL_KEY, the experiment TEST_KEY (plus the seed).
VAL_KEY, TEST_KEY = 20_000, 10_000


@dataclasses.dataclass(frozen=True)
class DarcyConfig:
    """``n_fields`` held-out log-permeability maps (`fields.log_permeability`, ``shape``),
    ``n_sensors`` random observed cells, relative noise ``noise``; ``n_samples`` particles
    per sampler. DAPS: ``daps_levels`` annealing levels, ``daps_ode`` ODE steps,
    ``daps_langevin`` Langevin steps at rate ``daps_lr``, ``daps_sigma_max``. PnP-DM:
    ``pnp_steps`` Gibbs sweeps, ``pnp_rho_max``, ``pnp_rho_min``, ``pnp_prior`` denoising
    steps, ``pnp_langevin`` Langevin steps. DPS: ``dps_steps``, ``dps_zeta``. GradientMAP:
    L-BFGS ``map_steps`` on ``Tikhonov(alpha, order)``. NUTS on the first ``nuts_fields``
    fields: ``log kappa`` on a ``nuts_grid`` grid (bilinear to ``shape``), ``N(0, 1)`` per
    cell, ``nuts_samples`` after ``nuts_warmup``. Sampler settings and ``alpha`` were picked
    on validation fields (``benchmarks/tune_darcy.py``), and so was ``primary``, the sampler
    shown in the figure and judged by the criterion (DAPS: 0.35 there, PnP-DM 0.40, DPS 0.45)."""

    shape: tuple[int, int] = (32, 32)
    n_sensors: int = 100
    noise: float = 0.01
    n_fields: int = 10
    n_samples: int = 8
    prior: str = "darcy-32"
    daps_levels: int = 50
    daps_ode: int = 3
    daps_langevin: int = 30
    daps_lr: float = 0.5
    daps_sigma_max: float = 10.0
    pnp_steps: int = 40
    pnp_rho_max: float = 5.0
    pnp_rho_min: float = 0.1
    pnp_prior: int = 10
    pnp_langevin: int = 30
    dps_steps: int = 200
    dps_zeta: float = 3.0
    alpha: float = 3.0
    order: int = 2
    map_steps: int = 200
    nuts_fields: int = 2
    nuts_grid: tuple[int, int] = (8, 8)
    nuts_samples: int = 150
    nuts_warmup: int = 150
    primary: str = "daps"


class CoarseLogKappa(HasForward):
    """A `PoissonInverse` with ``unknown="kappa"`` whose ``log kappa`` lives on a coarser
    ``grid`` (bilinear interpolation to the problem's grid): few unknowns for NUTS."""

    base: poisson.PoissonInverse
    grid: tuple = eqx.field(static=True)

    @property
    def y_obs(self):
        return self.base.y_obs

    @property
    def noise(self):
        return self.base.noise

    @property
    def x_true(self):
        return self.base.x_true

    def fine(self, theta):
        return jax.image.resize(theta, self.base.shape, "linear")

    def forward(self, theta):
        return self.base.forward(self.fine(theta))

    def init_params(self):
        return jnp.zeros(self.grid, self.base.theta0.dtype)

    def constrain(self, theta):
        return jnp.exp(self.fine(theta))


def make_samplers(cfg: DarcyConfig, prior) -> dict[str, Any]:
    common = dict(n_samples=cfg.n_samples, clip=(-4.0, 4.0))
    return {
        "daps": solvers.DAPS(prior, n_anneal=cfg.daps_levels, n_ode=cfg.daps_ode, n_langevin=cfg.daps_langevin,
                             lr=cfg.daps_lr, sigma_max=cfg.daps_sigma_max, **common),
        "pnpdm": solvers.PnPDM(prior, n_steps=cfg.pnp_steps, rho_max=cfg.pnp_rho_max, rho_min=cfg.pnp_rho_min,
                               n_prior=cfg.pnp_prior, n_langevin=cfg.pnp_langevin, **common),
        "dps": solvers.DPS(prior, n_steps=cfg.dps_steps, zeta=cfg.dps_zeta, **common),
    }


def make_problems(cfg: DarcyConfig, key_base: int, seed: int, n: int):
    """``n`` Darcy problems on fresh fields drawn with ``key(key_base + seed)``."""
    thetas = fields.log_permeability(jax.random.key(key_base + seed), n, cfg.shape)
    return [poisson.coefficient_identification(cfg.shape, cfg.n_sensors, cfg.noise, kappa=jnp.exp(th),
                                               key=jax.random.fold_in(jax.random.key(key_base + seed), i))
            for i, th in enumerate(thetas)]


def _row(prob, sol):
    """Errors of one solution of the (fine-grid) problem ``prob``: kappa and log kappa, the
    normalised chi-square of the mean's log kappa, run time, 90 % coverage of kappa."""
    row = {"rel_l2": float(metrics.rel_l2(sol.value, prob.x_true)),
           "rel_l2_log": float(metrics.rel_l2(jnp.log(sol.value), jnp.log(prob.x_true))),
           "chi2": float(prob.normalized_chi2(jnp.log(sol.value))),
           "time_s": float(sol.stats["wall_time_s"] - sol.stats["compile_time_s"])}
    if sol.samples is not None and sol.samples.shape[0] > 1:
        lo, hi = sol.credible_interval(0.9)
        row["coverage_90"] = float(metrics.coverage(lo, hi, prob.x_true))
    return row


def evaluate(cfg: DarcyConfig, problems, seed: int, methods=("daps", "pnpdm", "dps", "map", "nuts")):
    """``{method: [row per problem]}`` and the last solution of each method."""
    prior = ScorePrior.pretrained(cfg.prior) if set(methods) & set(SAMPLERS) else None
    samplers = make_samplers(cfg, prior) if prior is not None else {}
    mapper = solvers.GradientMAP(optax.lbfgs(), prior=priors.Tikhonov(cfg.alpha, order=cfg.order),
                                 max_steps=cfg.map_steps)
    nuts = solvers.NUTS(n_samples=cfg.nuts_samples, n_warmup=cfg.nuts_warmup, prior=priors.Tikhonov(1.0))
    rows, last = {m: [] for m in methods}, {}
    for i, prob in enumerate(problems):
        key = jax.random.fold_in(jax.random.key(seed), 500 + i)
        for m in methods:
            if m == "map":
                sol = solve(prob, mapper)
            elif m == "nuts":
                if i >= cfg.nuts_fields:
                    continue
                sol = solve(CoarseLogKappa(prob, tuple(cfg.nuts_grid)), nuts, key=key)
            else:
                sol = solve(prob, samplers[m], key=key)
            row = _row(prob, sol)
            for k in ("nfe", "n_forward"):
                if k in sol.stats:
                    row[k] = int(sol.stats[k])
            rows[m].append(row)
            last[m] = sol
    return rows, last


def run_darcy(cfg: DarcyConfig, seed: int) -> Outcome:
    if cfg.primary not in SAMPLERS:
        raise ValueError(f"darcy-daps: primary must be one of {', '.join(SAMPLERS)}, got {cfg.primary!r}.")
    t0 = time.perf_counter()
    problems = make_problems(cfg, TEST_KEY, seed, cfg.n_fields)
    rows, last = evaluate(cfg, problems, seed)
    extra = {}
    for m, rs in rows.items():
        for k in rs[0]:
            vals = [r[k] for r in rs if k in r]
            extra[f"{k}_{m}"] = float(np.mean(vals))
        extra[f"rel_l2_per_field_{m}"] = [round(r["rel_l2"], 4) for r in rs]
    best = cfg.primary  # chosen on the validation fields, never by its error on these
    extra.update(ratio_daps_to_map=extra["rel_l2_daps"] / extra["rel_l2_map"], n_fields=len(problems),
                 wall_s=time.perf_counter() - t0)
    prob = problems[-1]
    truth = np.log(np.asarray(prob.x_true))
    sol = last[best]
    pts = np.stack(np.unravel_index(np.asarray(prob.sensors), prob.shape), -1)
    name = {"daps": "DAPS", "pnpdm": "PnP-DM", "dps": "DPS"}[best]
    map_log = np.log(np.asarray(last["map"].value))
    out = {"true log kappa": truth, "GradientMAP": map_log, "GradientMAP error": map_log - truth,
           f"{best} mean": np.log(np.asarray(sol.value)),
           f"{best} std of log kappa": np.std(np.log(np.asarray(sol.samples)), axis=0),
           f"{best} error": np.log(np.asarray(sol.value)) - truth}
    fig = dict(labels={"true log kappa": f"true log κ (held-out field {len(problems)})",
                       "GradientMAP": "GradientMAP + Tikhonov", "GradientMAP error": "GradientMAP error",
                       f"{best} mean": f"{name} posterior mean "
                       f"({cfg.n_samples} samples)", f"{best} std of log kappa": f"{name} posterior std",
                       f"{best} error": f"{name} error (mean − truth)"},
               units={k: "log κ" for k in out}, extent=((0.0, 1.0), (0.0, 1.0)), axes=("x", "y"),
               points_label=f"head sensors ({len(pts)})", points_on=("true log kappa", f"{best} std of log kappa"),
               panel_metrics={"GradientMAP": (("rel. error of κ", extra["rel_l2_per_field_map"][-1]),),
                              f"{best} mean": (("rel. error of κ", extra[f"rel_l2_per_field_{best}"][-1]),)},
               ncols=3)
    return Outcome(sol, out, points=pts, extra_metrics=extra, **fig,
                   paper={"reference": "InverseBench (Zheng et al., ICLR 2025) ranks DAPS and PnP-DM ahead of DPS on "
                                       "its scientific problems; no Darcy numbers there"})


register(Experiment(
    name="darcy-daps",
    description="Darcy log-permeability (32^2, 100 sensors, 1% noise) of held-out random fields: DAPS, PnP-DM and DPS "
                "with a score prior vs GradientMAP + Tikhonov and coarse-grid NUTS",
    run=run_darcy,
    quick=DarcyConfig(n_fields=2, n_samples=4, daps_levels=30, daps_langevin=20, pnp_steps=15, pnp_langevin=20,
                      dps_steps=100, nuts_fields=1, nuts_samples=100, nuts_warmup=100),
    full=DarcyConfig(),
    x64=False,
    criteria=(
        Criterion("rel_l2_daps", "<=", 1.5, 0.7, "full: the project's target, the best sampler's (DAPS, best on the "
                  "validation fields) rel. error of kappa <= 0.7 x GradientMAP-Tikhonov's on 10 held-out fields "
                  "(measured 1.08 x: missed); quick: ours, a regression guard (measured 1.13 x on 2 fields, margin "
                  "1.3)", ref="rel_l2_map", rel="*"),
    ),
))
