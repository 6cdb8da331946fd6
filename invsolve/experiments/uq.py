"""Uncertainty quantification: NUTS posteriors over PDE parameters.

* ``poisson-kappa-nuts``: calibration. ``log kappa ~ N(0, prior_std^2 I)`` on a coarse grid,
  ``u`` observed in every cell with Gaussian noise; ``n_draws`` synthetic cases (truth drawn
  from the prior) solved together with `solve_batch`. With a correct sampler the 90 % credible
  intervals cover the truth 90 % of the time.
* ``tumor-nuts``: the posterior of (D, rho, seed) for the quick tumour case, started from the
  database query; the cost per effective sample.
* ``flame-kinetics-nuts``: the posterior of a flame's conductivity and activation energy from
  ``T`` and ``u`` at 10 probes (2 % noise), through the Newton reference solver.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics, priors, solvers
from .._batch import solve_batch
from .._solve import solve
from ..problems import flame, poisson
from . import Criterion, Experiment, Outcome, register
from .tumor import TumorConfig, _view, tumor_figure


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """``shape``: grid of the unknown log kappa; ``prior_std``: its prior standard deviation;
    ``noise``: relative noise of u; NUTS ``n_samples`` after ``n_warmup``; ``level``: the
    credible level checked."""

    shape: tuple[int, int] = (6, 6)
    prior_std: float = 0.3
    noise: float = 0.02
    n_draws: int = 20
    n_samples: int = 400
    n_warmup: int = 300
    level: float = 0.9


def _kappa_case(cfg: CalibrationConfig, key):
    k_truth, k_rest = jax.random.split(key)
    log_kappa = cfg.prior_std * jax.random.normal(k_truth, cfg.shape)
    return poisson.coefficient_identification(cfg.shape, noise=cfg.noise, key=k_rest, kappa=jnp.exp(log_kappa))


def run_calibration(cfg: CalibrationConfig, seed: int) -> Outcome:
    keys = jax.random.split(jax.random.key(seed), cfg.n_draws + 1)
    problems = [_kappa_case(cfg, k) for k in keys[1:]]
    nuts = solvers.NUTS(n_samples=cfg.n_samples, n_warmup=cfg.n_warmup, prior=priors.Tikhonov(1.0 / cfg.prior_std**2))
    sol = solve_batch(problems, nuts, jax.random.split(keys[0], cfg.n_draws))
    lo, hi = sol.credible_interval(cfg.level, axis=1)
    truth = jnp.stack([p.x_true for p in problems])
    per_draw = np.asarray(jax.vmap(metrics.coverage)(lo, hi, truth))
    # one scalar per draw: the mean of log kappa over the grid, and its credible interval
    mean_log = jnp.mean(jnp.log(sol.samples), axis=(2, 3))  # (draws, n_samples)
    q = jnp.quantile(mean_log, jnp.asarray([(1 - cfg.level) / 2, (1 + cfg.level) / 2]), axis=1)
    true_mean_log = jnp.mean(jnp.log(truth), axis=(1, 2))
    covered = np.asarray((q[0] <= true_mean_log) & (true_mean_log <= q[1]))
    ess = jax.vmap(metrics.effective_sample_size)(jnp.log(sol.samples))
    extra = {"coverage_all": float(np.mean(per_draw)), "coverage_per_draw": per_draw.tolist(),
             "draws_covering_mean_log_kappa": int(covered.sum()), "n_draws": cfg.n_draws,
             "min_ess": float(jnp.min(ess)), "median_ess": float(jnp.median(ess)),
             "mean_acceptance": float(np.nanmean(np.asarray(sol.history["acceptance"]))),
             "divergences": int(np.nansum(np.asarray(sol.history["divergent"])))}
    fields = {"true kappa (draw 0)": np.asarray(truth[0]).T[::-1],
              "posterior mean": np.asarray(sol.value[0]).T[::-1],
              "posterior std": np.asarray(sol.std[0]).T[::-1]}
    fig = dict(labels={"true kappa (draw 0)": f"true κ (draw 1 of {cfg.n_draws})",
                       "posterior mean": f"NUTS posterior mean ({cfg.n_samples} draws)",
                       "posterior std": "NUTS posterior std"},
               units={k: "κ" for k in fields}, layout="image", extent=((0.0, 1.0), (0.0, 1.0)), axes=("x", "y"),
               panel_metrics={"posterior mean": (("rel. error", float(metrics.rel_l2(sol.value[0], truth[0]))),),
                              "posterior std": ((f"{cfg.level:.0%} coverage (this draw)", float(per_draw[0])),
                                                (f"all {cfg.n_draws} draws", float(np.mean(per_draw))))})
    return Outcome(sol, fields, extra_metrics=extra, **fig)


@dataclasses.dataclass(frozen=True)
class TumorNUTSConfig(TumorConfig):
    """The quick tumour case; a database of ``n_database`` entries gives the start; NUTS
    ``n_samples`` after ``n_warmup``."""

    n_database: int = 1000
    n_samples: int = 300
    n_warmup: int = 300
    level: float = 0.9


def run_tumor_nuts(cfg: TumorNUTSConfig, seed: int) -> Outcome:
    prob = cfg.problem(seed)
    db = solvers.DatabaseQuery.build(prob, cfg.n_database, jax.random.key(seed + 2))
    nuts = solvers.NUTS(n_samples=cfg.n_samples, n_warmup=cfg.n_warmup)
    sol = solve(prob, db.refine(nuts), key=jax.random.key(seed + 1))
    lo, hi = sol.credible_interval(cfg.level)
    names = ("D_white", "rho")
    ess = {n: float(metrics.effective_sample_size(sol.samples[n])) for n in names}
    ess["origin"] = float(jnp.min(metrics.effective_sample_size(sol.samples["origin"])))
    min_ess = min(ess.values())
    run_s = sol.stats["wall_time_s"] - sol.stats["compile_time_s"]
    truth = prob.x_true
    extra = {"ess": ess, "seconds_per_effective_sample": run_s / min_ess,
             "run_time_s": run_s, "interval": {n: [float(lo[n]), float(hi[n])] for n in names},
             "interval_origin": [np.asarray(lo["origin"]).tolist(), np.asarray(hi["origin"]).tolist()],
             "truth_inside": {n: bool(lo[n] <= truth[n] <= hi[n]) for n in names},
             "mean_acceptance": float(np.mean(sol.history["acceptance"])),
             "mean_leapfrog_steps": float(np.mean(sol.history["n_leapfrog"])),
             "divergences": int(np.sum(sol.history["divergent"]))}
    return Outcome(sol, _view(prob, sol.value, cfg.origin), extra_metrics=extra,
                   **tumor_figure(prob, cfg.origin, "NUTS posterior mean"))


register(Experiment(
    name="poisson-kappa-nuts",
    description="Calibration of NUTS credible intervals for Poisson log-kappa over 20 synthetic draws (solve_batch)",
    run=run_calibration,
    quick=CalibrationConfig(shape=(4, 4), n_samples=150, n_warmup=150),
    full=CalibrationConfig(),
    criteria=(
        Criterion("draws_covering_mean_log_kappa", ">=", 0.8, 0.8, "ours: the 90 % interval of the mean of log "
                  "kappa covers the truth in >= 80 % of the draws (quick measured 18 of 20)", ref="n_draws", rel="*"),
        Criterion("coverage_all", ">=", 0.8, 0.8, "ours: per-coefficient coverage of the 90 % intervals near 0.9 "
                  "(quick measured 0.89)"),
        Criterion("coverage_all", "<=", 0.97, 0.97, "ours: intervals not much wider than calibrated"),
    ),
))

register(Experiment(
    name="tumor-nuts",
    description="Posterior of tumour D, rho and seed by NUTS from a database start; cost per effective sample",
    run=run_tumor_nuts,
    quick=TumorNUTSConfig(n_database=500, n_samples=200, n_warmup=200),
    full=TumorNUTSConfig(),
    x64=False,
    criteria=(
        Criterion("rel_err_D", "|<=", 0.04, 0.2, "posterior mean; quick, ours: measured 0.013, 3x; full: our target"),
        Criterion("rel_err_rho", "|<=", 0.005, 0.2, "posterior mean; quick, ours: measured 4.5e-4; full: our target"),
        Criterion("truth_inside.D_white", ">=", 1, 1, "ours: the 90 % interval contains the true D (a well-specified "
                  "synthetic case)"),
        Criterion("truth_inside.rho", ">=", 1, 1, "ours: the 90 % interval contains the true rho"),
    ),
))


@dataclasses.dataclass(frozen=True)
class FlameNUTSConfig:
    """FlamePINN-1D's inverse setting (phi 0.46, T and u at ``n_obs`` points, ``noise``
    relative) with (lambda, Ea) unknown; prior ``log(value / nominal) ~ N(0, prior_std^2)``
    around the PINN paper's initial values (0.03, 1.5e5); forward on ``n_grid`` points."""

    phi: float = 0.46
    n_obs: int = 10
    noise: float = 0.02
    prior_std: float = 0.5
    n_grid: int = 401
    n_samples: int = 1000
    n_warmup: int = 500
    level: float = 0.9


def run_flame_nuts(cfg: FlameNUTSConfig, seed: int) -> Outcome:
    case = flame.FreelyPropagating(phi=cfg.phi)
    prob = flame.kinetics_inverse(case, cfg.n_obs, cfg.noise, key=jax.random.key(seed), n_grid=cfg.n_grid)
    nuts = solvers.NUTS(n_samples=cfg.n_samples, n_warmup=cfg.n_warmup, prior=priors.Tikhonov(1.0 / cfg.prior_std**2))
    sol = solve(prob, nuts, key=jax.random.key(seed + 1))
    lo, hi = sol.credible_interval(cfg.level)
    names = {"lam": "lambda", "Ea": "Ea"}
    ess = {names[k]: float(metrics.effective_sample_size(v)) for k, v in sol.samples.items()}
    run_s = sol.stats["wall_time_s"] - sol.stats["compile_time_s"]
    extra = {"mean": {names[k]: float(v) for k, v in sol.value.items()},
             "std": {names[k]: float(v) for k, v in sol.std.items()},
             "interval": {names[k]: [float(lo[k]), float(hi[k])] for k in sol.value},
             "truth_inside": {names[k]: bool(lo[k] <= prob.x_true[k] <= hi[k]) for k in sol.value},
             "ess": ess, "seconds_per_effective_sample": run_s / min(ess.values()),
             "corr_lambda_Ea": float(jnp.corrcoef(sol.samples["lam"], sol.samples["Ea"])[0, 1]),
             "mean_acceptance": float(np.mean(sol.history["acceptance"])),
             "divergences": int(np.sum(sol.history["divergent"]))}
    paper = {"reference": "Wu et al., FlamePINN-1D: the inverse problem (s_L, lambda, Ea from T and u at 10 points, "
                          "2 % noise) by a PINN, point estimates only",
             "port_one_seed_2pct_noise": {"rel_err_lambda": -3.0e-3, "rel_err_Ea": 1.5e-3},
             "setting": "paper: PINN point estimate; here: the posterior through the Newton solver (same data setting)"}
    T, _ = prob.solve_flame({k: jnp.log(sol.value[k] / prob.nominal[k]) for k in prob.names})
    fields = {"T at the posterior mean [K] (grid points)": np.asarray(T),
              "lambda draws [W/m/K]": np.asarray(sol.samples["lam"]), "Ea draws [J/mol]": np.asarray(sol.samples["Ea"])}
    T_name = "T at the posterior mean [K] (grid points)"
    x_mm = np.linspace(0.0, 1.0, np.size(T)) * float(case.L) * 1e3
    obs = np.stack([np.asarray(prob.obs_x) * 1e3, np.asarray(prob.y_obs)[: np.size(prob.obs_x)]], -1)
    truths = {k: float(np.asarray(v)) for k, v in prob.x_true.items()}
    fig = dict(kinds={"lambda draws [W/m/K]": "samples", "Ea draws [J/mol]": "samples"},
               labels={T_name: "T at the posterior mean (Newton solve)", "lambda draws [W/m/K]": "posterior of λ",
                       "Ea draws [J/mol]": "posterior of Ea", "lam": "λ [W/m/K]"},
               units={T_name: "T [K]", "lambda draws [W/m/K]": "λ [W/m/K]", "Ea draws [J/mol]": "Ea [J/mol]"},
               profile_x=x_mm, axes=("x [mm]",), points=obs,
               points_label=f"noisy T probes ({np.size(prob.obs_x)}, {cfg.noise:.0%})",
               truths={"lambda draws [W/m/K]": truths["lam"], "Ea draws [J/mol]": truths["Ea"], **truths},
               panel_metrics={"lambda draws [W/m/K]": ("rel_err_lambda",), "Ea draws [J/mol]": ("rel_err_Ea",)})
    return Outcome(sol, fields, paper=paper, extra_metrics=extra, **fig)


register(Experiment(
    name="flame-kinetics-nuts",
    description="Posterior of a flame's conductivity and activation energy from 10 noisy probes (NUTS through the Newton solver)",
    run=run_flame_nuts,
    quick=FlameNUTSConfig(n_grid=201, n_samples=300, n_warmup=300),
    full=FlameNUTSConfig(),
    criteria=(
        Criterion("truth_inside.lambda", ">=", 1, 1, "ours: the 90 % interval contains the true conductivity "
                  "(a well-specified synthetic case)"),
        Criterion("truth_inside.Ea", ">=", 1, 1, "ours: the 90 % interval contains the true activation energy"),
        Criterion("rel_err_lambda", "|<=", 0.02, 0.02, "posterior mean; ours: the PINN inverse target at 2 % noise "
                  "(quick measured 9e-5)"),
        Criterion("rel_err_Ea", "|<=", 0.02, 0.02, "posterior mean; as above (quick measured 1.3e-3)"),
    ),
))
