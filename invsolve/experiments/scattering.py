"""2D inverse scattering (InverseBench's ``inv-scatter`` geometry: 20 transmitters and 360
receivers on a circle, six pixels per wavelength; `invsolve.problems.scattering`).

``scattering-born``: the permittivity contrast of held-out random-ellipse objects (64², values
in [0, 1]) from Born data with 1 % noise, by TV (primal-dual, its weight picked on validation
objects) and by diffusion samplers with the shipped ``ellipses-64`` score prior (trained on
fresh draws of the same generator; settings picked on the validation objects).

``scattering-ls``: the same kind of objects at a contrast where the Born approximation is
wrong, from full-wave (Lippmann-Schwinger) data: TV-regularised `GradientMAP` through the
implicitly differentiated field solve, against Born-model TV on the same data.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import metrics, priors, solvers
from .._problem import LinearInverse
from .._solve import solve
from ..priors import ScorePrior
from ..problems import phantoms, scattering
from . import Criterion, Experiment, Outcome, register

# Keys of the objects: validation (tuning) and test draws never meet (the prior trains on
# keys folded from key(0)).
VAL_KEY, TEST_KEY = 20_000, 10_000
SAMPLERS = ("daps", "diffpir", "dds")
_DISPLAY = {"daps": "DAPS", "diffpir": "DiffPIR", "dds": "DDS"}


@dataclasses.dataclass(frozen=True)
class BornConfig:
    """``n_test`` held-out `phantoms.random_ellipses` objects of side ``size`` (contrast in
    [0, 1]), Born data with relative noise ``noise`` from ``n_transmitters`` x ``n_receivers``.
    TV: `ChambollePock` for ``tv_steps`` with its weight picked from ``tv_lams`` on ``n_val``
    validation objects. Samplers (``samplers``, each with ``n_samples`` particles and the
    ``prior`` score model): DAPS with ``daps_levels`` annealing levels (3 ODE steps, 30
    Langevin steps), DiffPIR and DDS with ``steps`` steps and ``cg_steps`` CG steps (settings
    chosen on the validation objects, 2026-12-06: DAPS 50 levels 30.1 / 31.3 dB, DiffPIR 50
    steps 29.3 / 29.6 dB, DDS 100 steps 28.8 / 28.5 dB; DPS diverged at every guidance weight
    tried, zeta 0.05 and 0.002)."""

    size: int = 64
    n_transmitters: int = 20
    n_receivers: int = 360
    noise: float = 0.01
    n_test: int = 8
    n_val: int = 2
    tv_lams: tuple = (3.0, 10.0, 30.0)
    tv_steps: int = 300
    samplers: tuple = SAMPLERS
    prior: str = "ellipses-64"
    n_samples: int = 4
    daps_levels: int = 50
    steps: int = 50
    cg_steps: int = 10


def _objects(key: int, n: int, size: int, seed: int):
    return phantoms.random_ellipses(jax.random.fold_in(jax.random.key(key), seed), n, size)


def _born_problems(cfg, xs, seed, base):
    return [scattering.born(x, cfg.n_transmitters, cfg.n_receivers, cfg.noise,
                            key=jax.random.fold_in(jax.random.key(seed), base + i)) for i, x in enumerate(xs)]


def _sampler(cfg, name, prior):
    common = dict(n_samples=cfg.n_samples, clip=(0.0, 1.0))
    if name == "daps":
        return solvers.DAPS(prior, n_anneal=cfg.daps_levels, n_ode=3, n_langevin=30, **common)
    if name == "diffpir":
        return solvers.DiffPIR(prior, n_steps=cfg.steps, lam=1.0, zeta=1.0, cg_steps=cfg.cg_steps, **common)
    if name == "dds":
        return solvers.DDS(prior, n_steps=2 * cfg.steps, eta=0.15, cg_steps=cfg.cg_steps, **common)
    raise ValueError(f"samplers must be drawn from {SAMPLERS}; got {name!r}.")


def _check_born(cfg):
    bad = [s for s in cfg.samplers if s not in SAMPLERS]
    if bad:
        raise ValueError(f"samplers must be drawn from {SAMPLERS}; got {tuple(bad)}.")
    for name in ("n_test", "n_val", "n_samples"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)}.")


def run_born(cfg: BornConfig, seed: int) -> Outcome:
    _check_born(cfg)
    tv = lambda lam: solvers.ChambollePock(lam=lam, max_steps=cfg.tv_steps)  # noqa: E731
    xv = _objects(VAL_KEY, cfg.n_val, cfg.size, seed)
    pv = _born_problems(cfg, xv, seed, 100)
    lam_tv = max(cfg.tv_lams, key=lambda lam: np.mean([metrics.psnr(solve(p, tv(lam)).value, x)
                                                       for p, x in zip(pv, xv)]))
    xt = _objects(TEST_KEY, cfg.n_test, cfg.size, seed)
    probs = _born_problems(cfg, xt, seed, 200)
    prior = ScorePrior.pretrained(cfg.prior)
    rows = {"tv": []} | {s: [] for s in cfg.samplers}
    cost, last = {}, {}
    for i, (x, prob) in enumerate(zip(xt, probs)):
        sol_tv = solve(prob, tv(lam_tv))
        rows["tv"].append((metrics.psnr(sol_tv.value, x), prob.normalized_chi2(sol_tv.value)))
        last["tv"] = sol_tv
        for name in cfg.samplers:
            t0 = time.perf_counter()
            sol = solve(prob, _sampler(cfg, name, prior), key=jax.random.fold_in(jax.random.key(seed), 300 + i))
            dt = time.perf_counter() - t0
            rows[name].append((metrics.psnr(sol.value, x), prob.normalized_chi2(sol.value)))
            cost[name] = {"nfe": int(sol.stats.get("nfe", 0)), "n_forward": int(sol.stats.get("n_forward", 0)),
                          "time_per_object_s": cost.get(name, {}).get("time_per_object_s", 0.0) + dt / cfg.n_test}
            last[name] = sol
    cost["tv"] = {"nfe": 0, "n_forward": 2 * int(last["tv"].stats.get("num_steps", cfg.tv_steps))}
    extra = {}
    for name, r in rows.items():
        extra[f"psnr_{name}"] = float(np.mean([float(a) for a, _ in r]))
        extra[f"chi2_{name}"] = float(np.mean([float(b) for _, b in r]))
        extra[f"psnr_{name}_per_object"] = [round(float(a), 2) for a, _ in r]
    best = max(cfg.samplers, key=lambda s: extra[f"psnr_{s}"])
    extra.update(tv_lam=lam_tv, best_sampler=best, psnr_best_sampler=extra[f"psnr_{best}"], cost=cost,
                 n_test=cfg.n_test)
    truth = np.asarray(xt[-1])
    fields = {"truth": truth, "TV": np.asarray(last["tv"].value)}
    for name in cfg.samplers:
        fields[f"{name} mean"] = np.asarray(last[name].value)
    if cfg.n_samples > 1:
        fields[f"{best} std"] = np.asarray(last[best].std)
    fields["TV error"] = fields["TV"] - truth
    fields[f"{best} error"] = fields[f"{best} mean"] - truth
    side_mm = 180.0  # InverseBench's 0.18 m domain
    labels = {"truth": f"held-out object {cfg.n_test} (contrast)", "TV": f"TV (λ = {lam_tv:g})",
              **{f"{s} mean": f"{_DISPLAY[s]} mean ({cfg.n_samples} sample{'s' * (cfg.n_samples > 1)})"
                 for s in cfg.samplers},
              f"{best} std": f"{_DISPLAY[best]} posterior std", "TV error": "TV error",
              f"{best} error": f"{_DISPLAY[best]} error"}
    pm = {k: (("PSNR", float(metrics.psnr(v, truth))),) for k, v in fields.items()
          if k != "truth" and "std" not in k and "error" not in k}
    paper = {"reference": "Zheng et al., InverseBench, ICLR 2025 (inv-scatter)",
             "setting": f"128^2 objects of their dataset, 20 x 360 sensors; here {cfg.size}^2 random ellipses",
             "psnr_daps": 34.64, "psnr_diffpir": 34.24, "psnr_fista_tv": 32.13, "psnr_dps": 32.06}
    return Outcome(last[best], fields, paper=paper, extra_metrics=extra, labels=labels, layout="image",
                   extent=((-side_mm / 2, side_mm / 2), (-side_mm / 2, side_mm / 2)), axes=("x [mm]", "y [mm]"),
                   units={k: "contrast ε_r − 1" for k in fields}, panel_metrics=pm, ncols=4)


register(Experiment(
    name="scattering-born",
    description="2D inverse scattering, Born model (64^2, 20 x 360 sensors, 1% noise) of held-out ellipse "
                "objects: TV vs DAPS, DiffPIR and DDS with the shipped score prior",
    run=run_born,
    quick=BornConfig(n_test=2, n_val=1, tv_lams=(10.0,), samplers=("daps", "dds"), n_samples=1, daps_levels=15,
                     steps=10, cg_steps=5),
    full=BornConfig(),
    x64=False,
    criteria=(
        Criterion("psnr_tv", ">=", 30.0, 30.0, "the issue's target (InverseBench's level for inv-scatter): >= 30 dB"),
        Criterion("psnr_best_sampler", ">=", 24.0, 30.0, "full: the issue's target, >= 30 dB; quick: ours, 15 "
                  "annealing levels and one sample (measured 28.8 dB on a validation object, margin 5 dB)"),
        Criterion("chi2_tv", "<=", 2.0, 2.0, "ours: the TV estimate fits the data to the noise (chi-square <= 2)"),
    ),
))


# --------------------------------------------------------------------------------------
# Lippmann-Schwinger
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LSConfig:
    """An object of side ``size``: `phantoms.random_ellipses` scaled to peak contrast
    ``contrast`` (strong enough that Born data differ from full-wave data by tens of percent),
    full-wave data with relative noise ``noise``. TV-regularised `GradientMAP` (L-BFGS,
    ``max_steps``, weight ``tv``) on the Lippmann-Schwinger model, from zero, against TV on the
    Born model of the same data (`ChambollePock`, weight ``born_lam``, its best of
    ``born_lams`` on the test object itself: an upper bound for Born). ``gmres_tol``: the field
    solves' relative residual (1e-6 is far below the 1 % noise, and 4x cheaper than 1e-10).
    Measured at 32², contrast 0.2, 30 steps (2026-12-06): Born data off by 57 %, Born TV
    18.0 dB, Lippmann-Schwinger GradientMAP 25.5 dB (chi-square 1.01), 38 s."""

    size: int = 32
    n_transmitters: int = 20
    n_receivers: int = 360
    contrast: float = 0.2
    noise: float = 0.01
    tv: float = 1e-3
    max_steps: int = 100
    born_lams: tuple = (1.0, 10.0, 100.0)
    gmres_tol: float = 1e-6


def run_ls(cfg: LSConfig, seed: int) -> Outcome:
    if not cfg.contrast > 0:
        raise ValueError(f"contrast must be a positive peak permittivity contrast such as 0.5, got {cfg.contrast}.")
    x = cfg.contrast * _objects(TEST_KEY, 1, cfg.size, seed)[0].astype(jnp.result_type(float))
    key = jax.random.fold_in(jax.random.key(seed), 400)
    prob = scattering.lippmann_schwinger(x, cfg.n_transmitters, cfg.n_receivers, cfg.noise, key=key,
                                         tol=cfg.gmres_tol)
    born_clean = scattering.born(x, cfg.n_transmitters, cfg.n_receivers, 0.0, key=key)
    born_error = float(jnp.linalg.norm(born_clean.y_obs - prob.forward(x)) / jnp.linalg.norm(prob.forward(x)))
    on_born = LinearInverse(born_clean.A, prob.y_obs, prob.noise, x_true=x)
    born_tv = max((solve(on_born, solvers.ChambollePock(lam=lam, max_steps=300)) for lam in cfg.born_lams),
                  key=lambda s: float(metrics.psnr(s.value, x, data_range=cfg.contrast)))
    sol = solve(prob, solvers.GradientMAP(optax.lbfgs(), prior=priors.TV(cfg.tv), max_steps=cfg.max_steps))
    psnr = lambda v: float(metrics.psnr(v, x, data_range=cfg.contrast))  # noqa: E731
    extra = {"psnr": psnr(sol.value), "psnr_born_tv": psnr(born_tv.value), "born_model_error": born_error,
             "chi2": float(prob.normalized_chi2(sol.value))}
    truth = np.asarray(x)
    fields = {"truth": truth, "Born TV": np.asarray(born_tv.value), "LS GradientMAP": np.asarray(sol.value),
              "Born error": np.asarray(born_tv.value) - truth, "LS error": np.asarray(sol.value) - truth}
    side_mm = 180.0
    return Outcome(sol, fields, extra_metrics=extra, layout="image",
                   labels={"truth": f"true contrast (peak {cfg.contrast:g})",
                           "Born TV": "TV on the Born model (wrong physics)",
                           "LS GradientMAP": "GradientMAP + TV on the Lippmann-Schwinger model",
                           "Born error": "Born TV error", "LS error": "Lippmann-Schwinger error"},
                   shared=(("truth", "Born TV", "LS GradientMAP"), ("Born error", "LS error")),
                   extent=((-side_mm / 2, side_mm / 2), (-side_mm / 2, side_mm / 2)), axes=("x [mm]", "y [mm]"),
                   units={k: "contrast ε_r − 1" for k in fields},
                   panel_metrics={"Born TV": ("psnr_born_tv",), "LS GradientMAP": ("psnr",)}, ncols=3)


register(Experiment(
    name="scattering-ls",
    description="2D inverse scattering, full-wave Lippmann-Schwinger model at a contrast where Born fails: "
                "GradientMAP + TV through the implicit field solve vs TV on the Born model",
    run=run_ls,
    quick=LSConfig(size=32, max_steps=30),
    full=LSConfig(size=64, max_steps=200),
    criteria=(
        Criterion("born_model_error", ">=", 0.2, 0.2, "ours: the contrast is strong enough that the Born data are "
                  "off by at least 20 % (measured 57 % at quick settings)"),
        Criterion("psnr", ">=", 3.0, 3.0, "ours: modelling the physics beats the Born model by at least "
                  "3 dB (measured +7.5 dB on a validation object)",
                  ref="psnr_born_tv"),
    ),
))
