"""FlamePINN-1D (Wu et al.): PINN forward and inverse problems of a 1D premixed flame."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import solvers
from .._solve import solve
from ..problems import flame
from . import Criterion, Experiment, Outcome, register


@dataclasses.dataclass(frozen=True)
class FlamePINNConfig:
    """PINN settings: the paper's (64x3 tanh, 1001 Hammersley points, 1000 warm-up steps on
    a Z profile, 30k Adam steps at 1e-3 x0.95 every 1000, float64), then 1000 L-BFGS steps
    (ours: they take the temperature error from ~4e-3 to ~1e-4).

    dtype: "float32" or "float64"; lbfgs_steps: L-BFGS refinement after Adam (0: none);
    factorized: random weight factorisation (the paper's repository uses it; off by default,
    which keeps the recorded numbers).
    """

    hidden: tuple[int, ...] = (64, 64, 64)
    n_collocation: int = 1001
    warmup_steps: int = 1000
    steps: int = 30_000
    lbfgs_steps: int = 1000
    dtype: str = "float64"
    factorized: bool = False

    def solver(self):
        return solvers.PINN(hidden=self.hidden, n_collocation=self.n_collocation, steps=self.steps,
                            warmup_steps=self.warmup_steps, lbfgs_steps=self.lbfgs_steps,
                            dtype=jnp.dtype(self.dtype), factorized=self.factorized)


@dataclasses.dataclass(frozen=True)
class FlameForwardConfig(FlamePINNConfig):
    """Forward problem: find T(x) and the eigenvalue s_L of the case (p [atm], phi, T_in)
    from an initial guess ``s_L_init`` [m/s] (the paper: 0.4 and 0.1)."""

    p_atm: float = 1.0
    phi: float = 0.42
    T_in: float = 298.0
    s_L_init: float = 0.4


@dataclasses.dataclass(frozen=True)
class FlameSweepConfig(FlamePINNConfig):
    """The forward problem over the paper's (p, phi) cases and both initial guesses; 24
    runs, so 10k Adam steps (not 30k) before the L-BFGS refinement."""

    cases: tuple[tuple[float, float], ...] = tuple(flame.PAPER_PHI_CASES)
    s_L_inits: tuple[float, ...] = (0.4, 0.1)


@dataclasses.dataclass(frozen=True)
class FlameInverseConfig(FlamePINNConfig):
    """Inverse problem (the paper: phi = 0.46; s_L, lambda, Ea from T and u at 10 points with
    2% multiplicative noise, no warm-up); ``seeds`` noise draws / network inits, averaged."""

    phi: float = 0.46
    n_obs: int = 10
    noise: float = 0.02
    unknown: tuple[str, ...] = ("s_L", "lambda", "Ea")
    seeds: int = 5
    warmup_steps: int = 0


def _case(p_atm, phi, T_in=298.0):
    return flame.FreelyPropagating(phi=phi, p=p_atm * flame.ATM, T_in=T_in)


def _fields(prob, sol):
    T = np.asarray(sol.value["T"])
    ref = np.asarray(prob.T_eval)
    return {"T reference [K]": ref, "T PINN [K]": T, "T error [K]": T - ref}


def _figure(prob, case_text: str = "") -> dict:
    """Outcome figure fields of `_fields`: T profiles over x in mm (reference and PINN on one
    axis, the error beside), noisy probes when observed, the true constants for the history."""
    temp = f"temperature{case_text}"
    out = dict(overlays={temp: ("T reference [K]", "T PINN [K]")},
               labels={"T reference [K]": "reference (Newton, fine grid)", "T PINN [K]": "PINN",
                       "T error [K]": "PINN error (PINN − reference)", "lam": "λ [W/m/K]",
                       "residual": "PDE residual (scaled)"},
               units={temp: "T [K]", "T error [K]": "T error [K]"}, profile_x=np.asarray(prob.x_eval) * 1e3,
               axes=("x [mm]",), panel_metrics={temp: (("T rel. L2", "T_rel_l2"), ("s_L rel. error", "sL_rel_err"))},
               truths={"s_L": float(np.asarray(prob.s_L)),
                       **{k: float(np.asarray(getattr(prob.case, k))) for k in prob.unknown if k != "s_L"}})
    if prob.obs_x is not None:
        out.update(points=np.stack([np.asarray(prob.obs_x) * 1e3, np.asarray(prob.obs_T)], -1), points_on=(temp,),
                   points_label=f"noisy T data ({np.size(prob.obs_x)} points)")
        names = [{"lam": "lambda"}.get(k, k) for k in prob.unknown]
        out["panel_metrics"]["T error [K]"] = tuple((f"{n.replace('lambda', 'λ')} rel. err.", f"rel_err_{n}")
                                                    for n in names)
    return out


def _f(v):
    return float(np.asarray(v))


def _case_text(prob):
    c = prob.case
    return f" (φ = {float(np.asarray(c.phi)):g}, {float(np.asarray(c.p)) / flame.ATM:g} atm)"


def run_forward(cfg: FlameForwardConfig, seed: int) -> Outcome:
    case = _case(cfg.p_atm, cfg.phi, cfg.T_in)
    prob = flame.forward_problem(case, s_L_init=cfg.s_L_init)
    sol = solve(prob, cfg.solver(), key=jax.random.key(seed))
    paper = {"sL_repository": flame.PAPER_SPEEDS.get((cfg.p_atm, round(cfg.phi, 2), cfg.T_in)),
             "note": "repository s_L: first-order shooting (~5e-4 high); a CPU JAX port of the paper's "
                     "settings reached sL_rel_err -1.9e-4 (init 0.4) / -2.6e-4 (init 0.1) and T_rel_l2 "
                     "8e-4 / 2.6e-3 at phi = 0.42, 1 atm"}
    return Outcome(sol, _fields(prob, sol), paper=paper,
                   **_figure(prob, f" (φ = {cfg.phi:g}, {cfg.p_atm:g} atm, s_L from {cfg.s_L_init:g} m/s)"))


def run_sweep(cfg: FlameSweepConfig, seed: int) -> Outcome:
    rows, first = [], None
    solver = cfg.solver()
    for p_atm, phi in cfg.cases:
        case = _case(p_atm, phi)
        ref = flame.solve_reference(case)
        for s0 in cfg.s_L_inits:
            prob = flame.forward_problem(case, s_L_init=s0, reference=ref)
            sol = solve(prob, solver, key=jax.random.key(seed))
            m = {k: _f(v) for k, v in sol.metrics.items()}
            rows.append({"p_atm": p_atm, "phi": phi, "s_L_init": s0, **m})
            print(f"flame sweep: p={p_atm} atm phi={phi:.2f} init={s0}: s_L={m['sL']:.6f} "
                  f"(ref {m['sL_ref']:.6f}, {m['sL_rel_err']:+.2e}), T L2 {m['T_rel_l2']:.2e}", flush=True)
            first = first or (prob, sol)
    worst_s = max(abs(r["sL_rel_err"]) for r in rows)
    worst_T = max(r["T_rel_l2"] for r in rows)
    prob, sol = first
    extra = {"max_abs_sL_rel_err": worst_s, "max_T_rel_l2": worst_T, "cases": rows}
    paper = {"sL_repository": {f"p{p}_phi{phi:.2f}": flame.PAPER_SPEEDS[(p, phi, 298.0)] for p, phi in cfg.cases}}
    return Outcome(sol, _fields(prob, sol), paper=paper, extra_metrics=extra, **_figure(prob, _case_text(prob)))


def run_inverse(cfg: FlameInverseConfig, seed: int) -> Outcome:
    case = _case(1.0, cfg.phi)
    ref = flame.solve_reference(case)
    solver = cfg.solver()
    per_seed, first = [], None
    for i in range(cfg.seeds):
        k_noise, k_net = jax.random.split(jax.random.key(seed + i))
        prob = flame.inverse(case, cfg.n_obs, cfg.noise, cfg.unknown, key=k_noise, reference=ref)
        sol = solve(prob, solver, key=k_net)
        m = {k: _f(v) for k, v in sol.metrics.items()}
        per_seed.append(m)
        print(f"flame inverse seed {seed + i}: " + ", ".join(f"{k}={v:+.3e}" for k, v in m.items()
                                                          if k.startswith("rel_err")), flush=True)
        first = first or (prob, sol)
    prob, sol = first
    names = [k for k in per_seed[0] if k.startswith("rel_err_")]
    extra = {f"mean_{k}": float(np.mean([m[k] for m in per_seed])) for k in names}
    extra["per_seed"] = per_seed
    paper = {"port_one_seed_2pct_noise": {"rel_err_s_L": -5.5e-3, "rel_err_lambda": -3.0e-3, "rel_err_Ea": 1.5e-3}}
    return Outcome(sol, _fields(prob, sol), paper=paper, extra_metrics=extra, **_figure(prob, _case_text(prob)))


_QUICK = dict(steps=4000, warmup_steps=500, lbfgs_steps=0, dtype="float32")

register(Experiment(
    name="flame-forward",
    description="FlamePINN-1D forward: a PINN finds the flame speed s_L and T(x) of a 1D premixed flame",
    run=run_forward,
    quick=FlameForwardConfig(**_QUICK),
    full=FlameForwardConfig(),
    criteria=(
        Criterion("sL_rel_err", "|<=", 3e-3, 1e-3, "quick, ours: measured 1.1e-3 (float32, 4000 Adam steps), "
                  "2.7x; full: our target (a port of the paper's code reached -1.9e-4)"),
        Criterion("T_rel_l2", "<=", 2e-2, 5e-3, "quick, ours: measured 9.5e-3, 2x; full: our target (the port: 8e-4)"),
    ),
))

register(Experiment(
    name="flame-forward-sweep",
    description="FlamePINN-1D forward over the 12 (p, phi) cases from s_L guesses 0.4 and 0.1",
    run=run_sweep,
    quick=FlameSweepConfig(cases=((1.0, 0.40), (1.2, 0.50)), s_L_inits=(0.4,), **_QUICK),
    full=FlameSweepConfig(steps=10_000),
    criteria=(
        Criterion("max_abs_sL_rel_err", "<=", 3e-3, 1e-3, "quick, ours: measured 1.3e-3 over 2 cases, 2.3x; full: "
                  "our target for every case from both initial guesses"),
        Criterion("max_T_rel_l2", "<=", 2.5e-2, 5e-3, "quick, ours: measured 1.1e-2, 2.3x; full: our target"),
    ),
))

register(Experiment(
    name="flame-inverse",
    description="FlamePINN-1D inverse: s_L, lambda and Ea from noisy T and u at 10 points (PINN)",
    run=run_inverse,
    quick=FlameInverseConfig(seeds=1, steps=6000, lbfgs_steps=0, dtype="float32"),
    full=FlameInverseConfig(),
    criteria=tuple(
        Criterion(f"mean_rel_err_{k}", "|<=", 2e-2, 2e-2, "ours: the target at 2 % noise (a port of the paper's "
                  "code, one seed: s_L -5.5e-3, lambda -3.0e-3, Ea 1.5e-3)")
        for k in ("s_L", "lambda", "Ea")),
))
