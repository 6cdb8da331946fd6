"""1D laminar premixed flames: the freely-propagating flame of FlamePINN-1D (Case 1).

Wu et al., "FlamePINN-1D: Physics-informed neural networks to solve forward and inverse
problems of 1D laminar flames" (code: github.com/CAME-THU/FlamePINN-1D, Case 1,
``freely_prop_simple``). Steady, one-dimensional, unity Lewis number, one-step chemistry:

- continuity ``rho u = rho_in s_L``; momentum ``p + rho u^2 = const``; ideal gas
  ``p = rho R_g T`` with ``R_g = R / W``, hence (subsonic root)
  ``u(T) = 1/2 [(s_L + R_g T_in / s_L) - sqrt((s_L + R_g T_in / s_L)^2 - 4 R_g T)]``
  and ``rho = rho_in s_L / u``;
- fuel ``Y_F = Y_F,in + c_p (T_in - T) / q_F`` with ``Y_F,in = phi / (phi + 4)``;
- energy ``rho_in s_L c_p T' = lambda T'' + q_F omega``,
  ``omega = A exp(-E_a / (R T)) (rho Y_F)^nu``;
- on ``x in [0, L]``: ``T(0) = T_in`` and ``T'(0) = G``. The flame speed ``s_L`` is the
  eigenvalue that lets the profile settle at the adiabatic temperature
  ``T_max = T_in + q_F Y_F,in / c_p``.

``T_max`` is 5,455 K at the paper's ``phi = 0.46`` (a rise of 5,157 K; a real lean
methane-air flame burns at about 1,400 K). That is the model, not a bug:
``Y_F,in = phi / (phi + 4)`` is the methane mass fraction of a methane-*oxygen* mixture
(16 phi / (16 phi + 2 * 32)), with no nitrogen to heat: about four times the fuel per
kilogram of a methane-air mixture. ``c_p`` is a constant 1000 J/kg/K (burnt gas: about
1,400), and the one-step reaction converts all fuel, with no dissociation.

Units are SI throughout (m, s, K, Pa, kg, J, mol). `solve_reference` computes ``s_L`` and
``T(x)`` in float64 by Newton's method on second-order finite differences with grid
refinement; `forward_problem` and `inverse` build the PINN problems of the paper.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import (GaussianNoise, HasForward, HasResidual, as_array, as_int, check_key, directional_derivatives,
                        real_number)

ATM = 101325.0  # Pa
_ALIASES = {"lambda": "lam"}  # user-facing unknown names -> field names
PHI_RANGE = (0.3, 0.7)  # the equivalence ratios the model is valid for (FreelyPropagating)


def _f64(x, name: str = "every constant"):
    """Constants in float64: JAX arrays with x64 on, else NumPy arrays (exact, and used in
    float64 by `solve_reference`; JAX code reads them as float32). Traced values pass."""
    if isinstance(x, jax.Array):
        return x
    as_array(x, f"FreelyPropagating: {name} must be a number")  # None, a string: a clear error
    if jax.config.jax_enable_x64:
        return jnp.asarray(x, jnp.float64)
    return np.asarray(x, np.float64)


def _constant(name):
    return lambda x: _f64(x, _display(name))


class FreelyPropagating(eqx.Module):
    """A freely-propagating premixed flame (FlamePINN-1D Case 1); every field is an array, so
    ``jax.grad`` reaches each of them.

    Attributes (SI units; defaults are the paper's):
        phi: equivalence ratio, within `PHI_RANGE` = [0.3, 0.7] (0.40 ... 0.50 in the
            paper). Outside it the constructor raises ``ValueError`` unless
            ``allow_extrapolation=True``. Why this range: the rate depends on the fuel alone,
            so the model is fuel-limited (lean) by construction and meaningless towards
            ``phi >= 1``; the paper uses its constants at 0.40 ... 0.50 only; and on [0.3, 0.7]
            the reference solver (measured on 0.1 ... 3) converges with the flame inside the
            domain: ``s_L`` 0.149 ... 0.647 m/s, ``T_max`` 3,786 ... 7,745 K at 1 atm,
            298 K. At 0.2 and below it finds no flame (``s_L`` goes negative); upward
            it keeps converging to ever faster, hotter flames (``phi = 3``: 2.47 m/s,
            ``T_max`` 21,727 K) that the fuel-only rate cannot describe.
        p: pressure [Pa] (1 and 1.2 atm in the paper).
        T_in: inlet temperature [K] (298; 300 ... 600 in the paper's T_in sweep).
        lam: thermal conductivity lambda [W/m/K]; cp: heat capacity [J/kg/K];
        qF: fuel heating value [J/kg]; A: pre-exponential factor; Ea: activation energy
        [J/mol]; nu: reaction order; W: molar mass [kg/mol]; R: gas constant [J/mol/K];
        grad_T_in: inlet temperature gradient G [K/m]; L: domain length [m].
        allow_extrapolation: accept ``phi`` outside `PHI_RANGE` (for experts; the results
            are the simplified model's, far from any real flame).

    Other constants have no fixed range: `solve_reference` refuses any converged solution
    that is not a flame burning inside ``[0, L]`` (e.g. ``p = 0.5 atm`` at ``phi = 0.7``,
    whose flame is thicker than the domain, or ``T_in = 1500 K``, which ignites at the inlet).
    """

    phi: jax.Array = eqx.field(default=0.42, converter=_constant("phi"))
    p: jax.Array = eqx.field(default=ATM, converter=_constant("p"))
    T_in: jax.Array = eqx.field(default=298.0, converter=_constant("T_in"))
    lam: jax.Array = eqx.field(default=0.026, converter=_constant("lam"))
    cp: jax.Array = eqx.field(default=1000.0, converter=_constant("cp"))
    qF: jax.Array = eqx.field(default=5.0e7, converter=_constant("qF"))
    A: jax.Array = eqx.field(default=1.4e8, converter=_constant("A"))
    Ea: jax.Array = eqx.field(default=1.214172e5, converter=_constant("Ea"))
    nu: jax.Array = eqx.field(default=1.6, converter=_constant("nu"))
    W: jax.Array = eqx.field(default=28.97e-3, converter=_constant("W"))
    R: jax.Array = eqx.field(default=8.3145, converter=_constant("R"))
    grad_T_in: jax.Array = eqx.field(default=1.0e5, converter=_constant("grad_T_in"))
    L: jax.Array = eqx.field(default=1.5e-3, converter=_constant("L"))
    allow_extrapolation: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        # Traced constants are not checked: under MCMC (`KineticsInverse`) a flame out of
        # reach must give NaN, which the sampler rejects, not abort the chain with an error.
        for name in _CONSTANTS:
            v = getattr(self, name)
            if isinstance(v, jax.core.Tracer) or name == "grad_T_in":
                continue
            a = np.asarray(v)
            if a.ndim:
                raise ValueError(f"FreelyPropagating: {name} must be one number (a case is one flame), got an array "
                                 f"of shape {a.shape}; build one case per value.")
            if not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise ValueError(f"FreelyPropagating: {name} must be positive and finite, got {a!r}.")
        lo, hi = PHI_RANGE
        if not (self.allow_extrapolation or isinstance(self.phi, jax.core.Tracer)):
            phi = np.asarray(self.phi)
            if not np.all((phi >= lo) & (phi <= hi)):
                raise ValueError(
                    f"FreelyPropagating: phi = {phi.tolist()} is outside the model's validity range "
                    f"[{lo}, {hi}] (lean methane, FlamePINN-1D's one-step model; the paper uses 0.40-0.50). "
                    "Pass allow_extrapolation=True to use it anyway."
                )

    # derived quantities -------------------------------------------------------------
    @property
    def R_g(self):
        """Specific gas constant R / W [J/kg/K]."""
        return self.R / self.W

    @property
    def rho_in(self):
        """Inlet density p / (R_g T_in) [kg/m^3]."""
        return self.p / (self.R_g * self.T_in)

    @property
    def Y_in(self):
        """Inlet fuel mass fraction phi / (phi + 4)."""
        return self.phi / (self.phi + 4.0)

    @property
    def T_max(self):
        """Adiabatic flame temperature T_in + q_F Y_F,in / c_p [K]."""
        return self.T_in + self.qF * self.Y_in / self.cp

    def describe(self) -> str:
        """The constants that differ from the paper's defaults (``phi`` always), e.g.
        ``"phi=0.7, p=50662.5"``, for error messages."""
        parts = []
        for f in dataclasses.fields(self):
            if f.name not in _CONSTANTS or isinstance(getattr(self, f.name), jax.core.Tracer):
                continue
            v = np.asarray(getattr(self, f.name))
            if f.name == "phi" or not np.allclose(v, f.default, rtol=1e-12, atol=0.0):
                parts.append(f"{_display(f.name)}={v.tolist():g}" if v.ndim == 0 else f"{_display(f.name)}={v.tolist()}")
        return ", ".join(parts)

    def replace(self, **changes) -> "FreelyPropagating":
        """A copy with some fields changed (``"lambda"`` is accepted for ``lam``)."""
        changes = {_ALIASES.get(k, k): v for k, v in changes.items()}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"FreelyPropagating.replace: no constant named {', '.join(map(repr, unknown))}; the "
                             f"fields are {', '.join(_display(k) for k in _CONSTANTS)} and allow_extrapolation.")
        return dataclasses.replace(self, **changes)

    # the model ----------------------------------------------------------------------
    def velocity(self, T, s_L):
        """u(T) [m/s] from continuity, momentum and the ideal gas law (subsonic root)."""
        c = s_L + self.R_g * self.T_in / s_L
        return 0.5 * (c - jnp.sqrt(c * c - 4.0 * self.R_g * T))

    def density(self, T, s_L):
        """rho = rho_in s_L / u [kg/m^3]."""
        return self.rho_in * s_L / self.velocity(T, s_L)

    def fuel(self, T):
        """Fuel mass fraction Y_F = Y_F,in + c_p (T_in - T) / q_F (clipped at 0)."""
        return jnp.maximum(self.Y_in + self.cp * (self.T_in - T) / self.qF, 0.0)

    def reaction_rate(self, T, s_L):
        """omega = A exp(-E_a / (R T)) (rho Y_F)^nu [kg/m^3/s]."""
        rho_y = self.density(T, s_L) * self.fuel(T)
        safe = jnp.where(rho_y > 0, rho_y, 1.0)
        return jnp.where(rho_y > 0, self.A * jnp.exp(-self.Ea / (self.R * T)) * safe**self.nu, 0.0)

    def energy_residual(self, T, dT, d2T, s_L):
        """``T' - (lambda T'' + q_F omega) / (rho_in s_L c_p)`` [K/m], the paper's form."""
        m_cp = self.rho_in * s_L * self.cp
        return dT - (self.lam * d2T + self.qF * self.reaction_rate(T, s_L)) / m_cp


# --------------------------------------------------------------------------------------
# reference solver: Newton on second-order finite differences, T(x) and s_L together
# --------------------------------------------------------------------------------------
_CONSTANTS = tuple(f.name for f in dataclasses.fields(FreelyPropagating) if f.name != "allow_extrapolation")


class FlameSolution(eqx.Module):
    """A converged flame. ``x`` [m] is the finest grid, ``T`` [K], ``u`` [m/s],
    ``rho`` [kg/m^3], ``Y_F`` [-], ``omega`` [kg/m^3/s] on it; ``s_L`` [m/s];
    ``s_L_grids`` the flame speed on each grid of the refinement (coarse to fine)."""

    s_L: jax.Array
    x: jax.Array
    T: jax.Array
    u: jax.Array
    rho: jax.Array
    Y_F: jax.Array
    omega: jax.Array
    case: FreelyPropagating
    s_L_grids: Any = None
    newton_steps: Any = None

    def interp(self, x, name: str = "T"):
        """Linear interpolation of a field (default T) at points ``x`` [m]."""
        return jnp.interp(jnp.asarray(x), self.x, getattr(self, name))


class NewtonFailed(RuntimeError):
    """The reference solver found no flame: Newton did not converge, or it converged to a
    solution that is not a flame burning inside the domain. The message names the case's
    constants."""


def _residual(case, T, s):
    """Discrete equations F(T, s) (n,) and the inlet-gradient condition g(T) (scalar).

    Rows: ``T_0 - T_in``; interior ``lambda D2 T - m c_p D1 T + q_F omega`` (central
    differences); outlet ``T'(L) = 0`` through a mirrored ghost point. Interior and outlet
    rows are divided by ``rho_in c_p`` (they are then in K/s), the inlet-gradient row by G.
    """
    n = T.shape[0]
    h = case.L / (n - 1)
    scale = case.rho_in * case.cp
    m_cp = case.rho_in * s * case.cp
    src = case.qF * case.reaction_rate(T, s)
    Tm = jnp.concatenate([T[:1], T[:-1]])
    Tp = jnp.concatenate([T[1:], T[-2:-1]])  # ghost T_n = T_{n-2}: zero gradient at x = L
    F = (case.lam * (Tp - 2 * T + Tm) / h**2 - m_cp * (Tp - Tm) / (2 * h) + src) / scale
    F = F.at[0].set(T[0] - case.T_in)
    g = ((-3 * T[0] + 4 * T[1] - T[2]) / (2 * h) - case.grad_T_in) / case.grad_T_in
    return F, g


def _jacobian(case, T, s):
    """The bordered-tridiagonal Newton matrix [[A, c], [r^T, 0]] of `_residual`, by probing
    ``jax.linearize`` with three colourings of the grid."""
    n = T.shape[0]
    (F, g), lin = jax.linearize(lambda T_, s_: _residual(case, T_, s_), T, s)
    idx = jnp.arange(n)
    cols = [lin(((idx % 3) == k).astype(T.dtype), jnp.zeros_like(s))[0] for k in range(3)]
    pick = lambda off: jnp.stack(cols)[(idx + off) % 3, idx]
    d, dl, du = pick(0), pick(-1), pick(1)
    dl, du = dl.at[0].set(0.0), du.at[-1].set(0.0)
    c = lin(jnp.zeros_like(T), jnp.ones_like(s))[0]
    r = jax.grad(lambda T_: _residual(case, T_, s)[1])(T)
    return (F, g), (dl, d, du, c, r)


def _bordered_solve(dl, d, du, c, r, f, g):
    """Solve [[A, c], [r^T, 0]] [dx; ds] = [f; g] with A tridiagonal (O(n))."""
    ab = jax.lax.linalg.tridiagonal_solve(dl, d, du, jnp.stack([f, c], axis=1))
    a, b = ab[:, 0], ab[:, 1]
    ds = (r @ a - g) / (r @ b)
    return a - ds * b, ds


def _newton(case, T, s, tol, max_iter):
    """Damped Newton with backtracking on ||F||; returns (T, s, iterations, last update)."""

    def norm(T_, s_):
        F, g = _residual(case, T_, s_)
        return jnp.sqrt(jnp.mean(F[1:] ** 2) + g**2)

    def body(carry):
        T, s, k, _ = carry
        (F, g), (dl, d, du, c, r) = _jacobian(case, T, s)
        dT, ds = _bordered_solve(dl, d, du, c, r, -F, -g)
        f0 = norm(T, s)

        def shrink(t):
            return t * 0.5

        def not_ok(t):
            Tn, sn = T + t * dT, s + t * ds
            fn = norm(Tn, sn)
            bad = ~jnp.isfinite(fn) | (sn <= 0) | (fn > (1 - 1e-4 * t) * f0)
            return bad & (t > 1e-4)

        t = jax.lax.while_loop(not_ok, shrink, jnp.ones_like(s))
        T, s = T + t * dT, s + t * ds
        upd = jnp.maximum(jnp.max(jnp.abs(t * dT)) / case.T_max, jnp.abs(t * ds) / s)
        return T, s, k + 1, upd

    def cond(carry):
        _, _, k, upd = carry
        return (upd > tol) & (k < max_iter) & jnp.isfinite(upd)

    return jax.lax.while_loop(cond, body, (T, s, 0, jnp.ones_like(s)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _solve_grid(case, T0, s0, tol, max_iter):
    """Newton on one grid, differentiable in ``case`` by the implicit function theorem."""
    T, s, _, _ = _newton_jit(case, T0, s0, tol, max_iter)
    return T, s


def _solve_grid_fwd(case, T0, s0, tol, max_iter):
    T, s = _solve_grid(case, T0, s0, tol, max_iter)
    return (T, s), (case, T, s)


def _solve_grid_bwd(tol, max_iter, res, ct):
    """Implicit differentiation: F(z*, case) = 0  =>  case_bar = -(dF/dcase)^T J^{-T} z_bar."""
    case, T, s = res
    T_bar, s_bar = ct
    _, (dl, d, du, c, r) = _jacobian(case, T, s)
    # J^T = [[A^T, r], [c^T, 0]]: the same bordered structure with A transposed.
    dlT = jnp.concatenate([jnp.zeros_like(du[:1]), du[:-1]])
    duT = jnp.concatenate([dl[1:], jnp.zeros_like(dl[:1])])
    w, mu = _bordered_solve(dlT, d, duT, r, c, T_bar, s_bar)
    _, vjp = jax.vjp(lambda cs: _residual(cs, T, s), case)
    (case_bar,) = vjp((-w, -mu))
    return case_bar, jnp.zeros_like(T), jnp.zeros_like(s)


_solve_grid.defvjp(_solve_grid_fwd, _solve_grid_bwd)
_newton_jit = jax.jit(_newton, static_argnums=(4,))


def _initial_guess(case, n, s0):
    """Preheat-zone exponential T_in + G/k (e^{kx} - 1), k = rho_in s c_p / lambda, capped
    smoothly at T_max."""
    x = jnp.linspace(0.0, 1.0, n) * case.L
    k = case.rho_in * s0 * case.cp / case.lam
    rise = case.grad_T_in / k * jnp.expm1(jnp.minimum(k * x, 50.0))
    dT = case.T_max - case.T_in
    return case.T_in + dT * jnp.tanh(rise / dT)


def _check_newton_settings(*, n_grid, rtol, max_refinements, s_L_guess, newton_tol, max_newton):
    """The settings of `solve_reference`, refused with their name before any Newton step."""
    for name, v, lo in (("n_grid", n_grid, 5), ("max_refinements", max_refinements, 0), ("max_newton", max_newton, 1)):
        n = as_int(v)
        if n is None or n < lo:
            raise ValueError(f"solve_reference: {name} must be an integer >= {lo}, got {v!r}.")
    for name, v in (("rtol", rtol), ("s_L_guess", s_L_guess), ("newton_tol", newton_tol)):
        x = real_number(v)
        if x is None or not (np.isfinite(x) and x > 0):
            raise ValueError(f"solve_reference: {name} must be a positive number, got {v!r}.")


def solve_reference(
    case: FreelyPropagating,
    *,
    n_grid: int = 1001,
    rtol: float = 1e-7,
    max_refinements: int = 8,
    s_L_guess: float = 0.3,
    newton_tol: float = 1e-12,
    max_newton: int = 100,
) -> FlameSolution:
    """The converged flame speed and profiles of ``case`` (float64).

    Newton's method on ``T(x)`` and ``s_L`` together (second-order central differences on
    a uniform grid of ``n_grid`` points; the inlet gradient condition, second-order one-sided,
    closes the eigenvalue), then the grid is doubled, starting from the interpolated
    solution, until ``s_L`` changes by less than ``rtol`` relative. ``jax.grad`` of the
    result with respect to ``case`` differentiates the finest-grid equations implicitly
    (one transposed bordered-tridiagonal solve). Runs on the host (not inside ``jit``).
    Always float64: with JAX's x64 mode off it switches it on for the solve and returns
    NumPy arrays (then not differentiable).

    Raises:
        NewtonFailed: when Newton stalls (the message gives the residual reached), the
            grid refinement does not converge within ``max_refinements`` doublings, or the
            converged solution is no flame inside ``[0, L]`` (``T(L)`` below 95% of the
            rise to ``T_max``); the message names the case's non-default constants.
    """
    if not isinstance(case, FreelyPropagating):
        raise TypeError(f"solve_reference expects a flame.FreelyPropagating case, got {type(case).__name__}.")
    if not jax.config.jax_enable_x64:  # float64 regardless; NumPy results (not differentiable)
        kwargs = dict(n_grid=n_grid, rtol=rtol, max_refinements=max_refinements, s_L_guess=s_L_guess,
                      newton_tol=newton_tol, max_newton=max_newton)
        with jax.enable_x64(True):
            sol = solve_reference(jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), case), **kwargs)
            return jax.tree.map(np.asarray, sol)
    _check_newton_settings(n_grid=n_grid, rtol=rtol, max_refinements=max_refinements, s_L_guess=s_L_guess,
                           newton_tol=newton_tol, max_newton=max_newton)
    host = jax.lax.stop_gradient(case)
    speeds, steps = [], []
    n = n_grid
    for level in range(max_refinements + 1):
        if level:
            n = 2 * (n - 1) + 1
            xo = jnp.linspace(0.0, 1.0, T.shape[0])
            T = jnp.interp(jnp.linspace(0.0, 1.0, n), xo, T)
            T, s, k, upd = _newton_jit(host, T, s, newton_tol, max_newton)
        else:  # the first grid: the given guess, then a ladder of others until one converges
            for guess in (s_L_guess, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2):
                s = jnp.asarray(float(guess))
                T, s, k, upd = _newton_jit(host, _initial_guess(host, n, s), s, newton_tol, max_newton)
                if float(upd) <= newton_tol:
                    break
        F, g = _residual(host, T, s)
        res = float(jnp.sqrt(jnp.mean(F[1:] ** 2) + g**2))
        if not (float(upd) <= newton_tol and np.isfinite(res)):
            raise NewtonFailed(
                f"flame.solve_reference: Newton did not converge for {host.describe()} on {n} points "
                f"after {int(k)} iterations (last relative update {float(upd):.2e}, residual norm {res:.3e}, "
                f"s_L = {float(s):.6g} m/s). These constants may have no flame in the model (see "
                "FreelyPropagating); else try another s_L_guess or a finer n_grid."
            )
        speeds.append(float(s))
        steps.append(int(k))
        if level and abs(speeds[-1] - speeds[-2]) <= rtol * abs(speeds[-1]):
            break
    else:
        raise NewtonFailed(
            f"flame.solve_reference: for {host.describe()}, s_L still changed by "
            f"{abs(speeds[-1] - speeds[-2]) / speeds[-1]:.2e} (relative) after {max_refinements} grid doublings "
            f"({n} points); raise max_refinements."
        )
    rise = (float(T[-1]) - float(host.T_in)) / (float(host.T_max) - float(host.T_in))
    if rise < 0.95:  # measured: >= 0.989 for flames inside the domain, <= 0.81 otherwise
        raise NewtonFailed(
            f"flame.solve_reference: for {host.describe()} the converged solution is not a flame burning "
            f"inside the domain [0, {float(host.L):g}] m: T(L) reaches only {100 * rise:.0f}% of the rise to "
            f"T_max = {float(host.T_max):.0f} K (s_L = {float(s):.4g} m/s). The flame is thicker than the domain "
            "or ignites at the inlet: these constants are outside the model's range."
        )
    T, s = _solve_grid(case, T, s, newton_tol, max_newton)  # differentiable in ``case``; one step
    x = jnp.linspace(0.0, 1.0, n) * case.L
    return FlameSolution(
        s_L=s, x=x, T=T, u=case.velocity(T, s), rho=case.density(T, s), Y_F=case.fuel(T),
        omega=case.reaction_rate(T, s), case=case, s_L_grids=tuple(speeds), newton_steps=tuple(steps),
    )


# The paper's cases and the repository's stored flame speeds s_L [m/s], keyed by
# (p [atm], phi, T_in [K]): first-order shooting on 1e4 points, 4.5e-4 ... 7.7e-4 above the
# converged values (FlamePINN-1D, freely_prop_simple/ref_solution/results/*/data/sL.npy).
PAPER_SPEEDS = {
    (1.0, 0.40, 298.0): 0.26794, (1.0, 0.42, 298.0): 0.29293, (1.0, 0.44, 298.0): 0.31815,
    (1.0, 0.46, 298.0): 0.34354, (1.0, 0.48, 298.0): 0.36904, (1.0, 0.50, 298.0): 0.39461,
    (1.2, 0.40, 298.0): 0.25847, (1.2, 0.42, 298.0): 0.28257, (1.2, 0.44, 298.0): 0.30689,
    (1.2, 0.46, 298.0): 0.33137, (1.2, 0.48, 298.0): 0.35596, (1.2, 0.50, 298.0): 0.38062,
    (1.0, 0.40, 300.0): 0.27019, (1.0, 0.40, 350.0): 0.32850, (1.0, 0.40, 400.0): 0.39119,
    (1.0, 0.40, 450.0): 0.45851, (1.0, 0.40, 500.0): 0.53076, (1.0, 0.40, 550.0): 0.60822,
    (1.0, 0.40, 600.0): 0.69125,
}
PAPER_PHI_CASES = [(p, phi) for p in (1.0, 1.2) for phi in (0.40, 0.42, 0.44, 0.46, 0.48, 0.50)]


# --------------------------------------------------------------------------------------
# PINN problems (FlamePINN-1D's forward and inverse settings)
# --------------------------------------------------------------------------------------
# Raw trainable value = physical value * scale, so every unknown is O(1) (the paper's scales).
_SCALES = {"s_L": 1.0, "lam": 10.0, "Ea": 1e-6}
_PAPER_INIT = {"s_L": 0.4, "lam": 0.03, "Ea": 1.5e5}
_UNKNOWN_NAMES = ("s_L",) + _CONSTANTS


def _display(name):
    return {"lam": "lambda"}.get(name, name)


class FlamePINN(HasResidual):
    """The flame as a physics-informed problem: find ``T(x)`` on ``[0, L]`` and the unknown
    constants (``s_L`` always in the forward problem) from the energy equation.

    Follows FlamePINN-1D: the network's input is ``10 x / L``; its output ``z`` maps to
    ``T = T_in + (T_max - T_in) sigmoid(z)``; the energy residual
    (`FreelyPropagating.energy_residual`, K/m) is multiplied by ``(5 / T_max) (L / 10)``;
    temperature errors by ``5 / T_max``; velocity errors are in m/s. Built by
    `forward_problem` and `inverse`.

    Attributes:
        case: the true physics (the entries named in ``unknown`` serve only as the truth).
        unknown: the unknown constants (canonical names: ``"s_L"``, ``"lam"``, ``"Ea"``, ...).
        init: their initial physical values; scales: raw = value * scale.
        s_L: the reference flame speed (used for metrics, and in the physics when known).
        soft_bc: penalise ``T(0) = T_in`` and ``T'(0) = G`` (the forward problem).
        obs_x, obs_T, obs_u: observation points [m] and noisy data [K], [m/s] (or None).
        x_eval, T_eval: evaluation points and the reference temperature there.
        warmup: fit the paper's Z-shaped profile first.
    """

    n_out: ClassVar[int] = 1
    case: FreelyPropagating
    unknown: tuple[str, ...] = eqx.field(static=True)
    init: dict
    scales: dict
    s_L: jax.Array
    x_eval: jax.Array
    T_eval: jax.Array
    soft_bc: bool = eqx.field(static=True, default=True)
    warmup: bool = eqx.field(static=True, default=True)
    obs_x: Any = None
    obs_T: Any = None
    obs_u: Any = None

    @property
    def lower(self):
        return jnp.zeros((1,))

    @property
    def upper(self):
        return self.case.L[None]

    @property
    def x_true(self):
        return self.T_eval

    @property
    def y_obs(self):
        return None if self.obs_T is None else {"T": self.obs_T, "u": self.obs_u}

    @property
    def field_scale(self):
        return 5.0 / self.case.T_max

    def _physics(self, theta):
        case = self.case.replace(**{k: v for k, v in theta.items() if k != "s_L"})
        return case, theta.get("s_L", self.s_L)

    def scale_input(self, x):
        return x * (10.0 / self.case.L)

    def transform(self, x, out, theta):
        c = self.case
        return c.T_in + (c.T_max - c.T_in) * jax.nn.sigmoid(out)

    def residual(self, u, theta, x):
        case, s = self._physics(theta)
        T, dT, d2T = directional_derivatives(lambda y: u(y)[:, 0], x, jnp.ones_like(x))
        return case.energy_residual(T, dT, d2T, s) * (self.field_scale * self.case.L / 10.0)

    def conditions(self, u, theta):
        c = self.case
        out = {}
        if self.soft_bc:
            x0 = jnp.zeros((1, 1))
            T0, dT0 = jax.jvp(lambda y: u(y)[:, 0], (x0,), (jnp.ones_like(x0),))
            out["bc_T"] = (T0 - c.T_in) * self.field_scale
            out["bc_gradT"] = (dT0 - c.grad_T_in) * self.field_scale * c.L / 10.0
        if self.obs_x is not None:
            case, s = self._physics(theta)
            T = u(self.obs_x[:, None])[:, 0]
            out["obs_T"] = (T - self.obs_T) * self.field_scale
            if self.obs_u is not None:
                out["obs_u"] = case.velocity(T, s) - self.obs_u
        return out

    def init_params(self):
        return {k: self.init[k] * self.scales[k] for k in self.unknown}

    def constrain(self, raw):
        return {k: raw[k] / self.scales[k] for k in self.unknown}

    def warmup_data(self):
        """FlamePINN-1D's Z profile: T_in on [0, 0.3 L), a ramp to T_max on [0.3 L, 0.5 L),
        T_max on [0.5 L, L] (30, 20 and 50 points)."""
        if not self.warmup:
            return None
        c, L = self.case, self.case.L
        x = jnp.concatenate([jnp.linspace(0, 0.3, 30, endpoint=False), jnp.linspace(0.3, 0.5, 20, endpoint=False),
                             jnp.linspace(0.5, 1.0, 50)]) * L
        T = jnp.concatenate([jnp.full(30, c.T_in), jnp.linspace(c.T_in, c.T_max, 20, endpoint=False),
                             jnp.full(50, c.T_max)])
        return x[:, None], T[:, None]

    def evaluate(self, u, theta):
        case, s = self._physics(theta)
        T = u(self.x_eval[:, None])[:, 0]
        out = {_display(k): v for k, v in theta.items()}
        out.setdefault("s_L", s)
        return {**out, "x": self.x_eval, "T": T, "u": case.velocity(T, s)}

    def metrics(self, value):
        T_err = jnp.linalg.norm(value["T"] - self.T_eval) / jnp.linalg.norm(self.T_eval)
        m = {"sL": value["s_L"], "sL_ref": self.s_L, "sL_rel_err": value["s_L"] / self.s_L - 1.0,
             "T_rel_l2": T_err}
        for k in self.unknown:
            truth = self.s_L if k == "s_L" else getattr(self.case, k)
            m[f"rel_err_{_display(k)}"] = value[_display(k)] / truth - 1.0
        return m


def _canonical(unknown) -> tuple[str, ...]:
    if isinstance(unknown, str):
        unknown = (unknown,)
    names = tuple(_ALIASES.get(k, k) for k in unknown)
    bad = [k for k in names if k not in _UNKNOWN_NAMES]
    if bad:
        raise ValueError(f"unknown parameter name(s) {bad}; choose from "
                         f"{', '.join(_display(k) for k in _UNKNOWN_NAMES)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"an unknown is named twice in {tuple(unknown)}.")
    return names


def _initial(case, names, init, ref_s):
    init = {_ALIASES.get(k, k): v for k, v in (init or {}).items()}
    out = {}
    for k in names:
        truth = ref_s if k == "s_L" else getattr(case, k)
        v = float(init.get(k, _PAPER_INIT.get(k, 1.2 * float(truth))))
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"the initial value of {_display(k)} must be positive and finite, got {v!r}.")
        out[k] = _f64(v)
    return out


def _eval_grid(case, ref, n_eval):
    x = jnp.linspace(0.0, 1.0, n_eval) * case.L
    return x, ref.interp(x)


def forward_problem(case: FreelyPropagating, *, s_L_init: float = 0.4, reference: FlameSolution | None = None,
                    n_eval: int = 1001, warmup: bool = True) -> FlamePINN:
    """The forward problem: ``T(x)`` and the eigenvalue ``s_L`` from the physics alone, with
    soft inlet conditions (FlamePINN-1D forward runs start from ``s_L = 0.4`` or ``0.1``).
    ``reference`` (default: `solve_reference(case)`) supplies the metrics' truth."""
    ref = solve_reference(case) if reference is None else reference
    x, T = _eval_grid(case, ref, n_eval)
    init = _initial(case, ("s_L",), {"s_L": s_L_init}, ref.s_L)
    return FlamePINN(case, ("s_L",), init, {"s_L": _f64(1.0)}, ref.s_L, x, T, soft_bc=True, warmup=warmup)


def inverse(case: FreelyPropagating, n_obs: int = 10, noise: float = 0.02,
            unknown=("s_L", "lambda", "Ea"), *, key, init: dict | None = None, obs_x=None,
            observe_u: bool = True, reference: FlameSolution | None = None, n_eval: int = 1001) -> FlamePINN:
    """FlamePINN-1D's inverse problem: recover ``unknown`` from ``T`` (and ``u``) observed at
    ``n_obs`` evenly spaced points of ``[0, L]`` (ends included) with multiplicative Gaussian
    noise ``y (1 + noise * eps)``; no boundary conditions are imposed.

    Args:
        case: the true flame (the paper: ``phi = 0.46``).
        n_obs, noise: number of observation points and relative noise level (0.02 = 2%).
        unknown: names among ``"s_L"``, ``"lambda"``, ``"Ea"`` and the other fields of
            `FreelyPropagating`; initial values ``init`` (default the paper's: 0.4, 0.03,
            1.5e5; 1.2x the truth for others).
        key: ``jax.random.key`` for the noise.
        obs_x: explicit observation points [m] (overrides ``n_obs``).
        observe_u: also observe the velocity (the paper does).
    """
    names = _canonical(unknown)
    if obs_x is None:
        if int(n_obs) < 1:
            raise ValueError(f"n_obs must be a positive integer, got {n_obs!r}.")
        obs_x = jnp.linspace(0.0, 1.0, int(n_obs)) * case.L
    obs_x = jnp.asarray(obs_x, float).reshape(-1)
    if not bool(jnp.all((obs_x >= 0) & (obs_x <= case.L))):
        raise ValueError(f"observation points must lie in the domain [0, {float(case.L):g}] m; got values "
                         f"from {float(obs_x.min()):g} to {float(obs_x.max()):g}.")
    n_data = obs_x.shape[0] * (2 if observe_u else 1)
    if n_data < len(names):
        raise ValueError(f"{n_data} observations cannot determine {len(names)} unknowns "
                         f"({', '.join(map(_display, names))}); observe at least as many values as unknowns.")
    level = real_number(noise)
    if level is None or not (np.isfinite(level) and level >= 0):
        raise ValueError(f"noise must be a non-negative relative level such as 0.02, got {noise!r}.")
    check_key("flame.inverse", key)
    ref = solve_reference(case) if reference is None else reference
    kT, ku = jax.random.split(key)
    T_true = ref.interp(obs_x)
    obs_T = T_true * (1.0 + noise * jax.random.normal(kT, obs_x.shape, T_true.dtype))
    obs_u = None
    if observe_u:
        u_true = ref.interp(obs_x, "u")
        obs_u = u_true * (1.0 + noise * jax.random.normal(ku, obs_x.shape, u_true.dtype))
    x, T = _eval_grid(case, ref, n_eval)
    init = _initial(case, names, init, ref.s_L)
    scales = {k: _f64(_SCALES.get(k, 1.0 / float(init[k]))) for k in names}
    return FlamePINN(case, names, init, scales, ref.s_L, x, T, soft_bc=False, warmup=False,
                     obs_x=obs_x, obs_T=obs_T, obs_u=obs_u)



# --------------------------------------------------------------------------------------
# kinetics from probes through the reference solver (for MAP and MCMC)
# --------------------------------------------------------------------------------------
class KineticsInverse(HasForward):
    """Flame constants (default: conductivity ``lambda`` and activation energy ``Ea``) from
    ``T`` and ``u`` observed at a few points, through the Newton reference solver.

    ``theta[name] = log(value / nominal)`` (unconstrained, O(1)); `constrain` returns SI
    values. ``forward(theta)`` solves the flame on the fixed ``n_grid``-point grid by Newton,
    continued from the nominal flame along ``n_continuation`` geometric steps of the
    constants (a flame far from the nominal one is out of Newton's reach in one step), the
    last step differentiated implicitly; it returns ``[T(obs_x) [K], u(obs_x) [m/s]]``, NaN
    when Newton does not converge (a sampler then rejects the point). Float64. A Gaussian
    prior on ``theta`` (``Tikhonov(1 / std^2)``) makes it a Bayesian problem for `NUTS`.
    """

    case: FreelyPropagating
    names: tuple = eqx.field(static=True)
    nominal: dict
    obs_x: jax.Array
    y_obs: jax.Array
    noise: GaussianNoise
    x_true: Any
    T0: jax.Array
    s0: jax.Array
    n_continuation: int = eqx.field(static=True, default=6)
    newton_tol: float = eqx.field(static=True, default=1e-10)
    max_newton: int = eqx.field(static=True, default=30)

    def init_params(self):
        return {k: jnp.zeros((), jnp.float64) for k in self.names}

    def constrain(self, theta):
        return {k: self.nominal[k] * jnp.exp(theta[k]) for k in self.names}

    def solve_flame(self, theta):
        """``(T on the grid [K], s_L [m/s])`` for ``theta`` (NaN if Newton fails)."""
        T, s = self.T0, self.s0
        fixed = jax.lax.stop_gradient(theta)
        for k in range(1, self.n_continuation):
            step = self.case.replace(**self.constrain({n: fixed[n] * k / self.n_continuation for n in self.names}))
            T, s, _, _ = _newton_jit(step, T, s, self.newton_tol, self.max_newton)
        case = self.case.replace(**self.constrain(theta))
        T, s, _, upd = _newton_jit(jax.lax.stop_gradient(case), T, s, self.newton_tol, self.max_newton)
        T, s = _solve_grid(case, T, s, self.newton_tol, self.max_newton)  # converged: attaches the gradient
        ok = upd <= 1e3 * self.newton_tol
        return jnp.where(ok, T, jnp.nan), jnp.where(ok, s, jnp.nan)

    def forward(self, theta):
        T, s = self.solve_flame(theta)
        case = self.case.replace(**self.constrain(theta))
        T_obs = jnp.interp(self.obs_x, jnp.linspace(0.0, 1.0, T.shape[0]) * case.L, T)
        return jnp.concatenate([T_obs, case.velocity(T_obs, s)])

    def metrics(self, value):
        if self.x_true is None:
            return {}
        return {f"rel_err_{_display(k)}": jnp.abs(value[k] - self.x_true[k]) / self.x_true[k] for k in self.names}


def kinetics_inverse(case: FreelyPropagating, n_obs: int = 10, noise: float = 0.02, *, key,
                     unknown=("lambda", "Ea"), nominal: dict | None = None, n_grid: int = 201,
                     reference: FlameSolution | None = None) -> KineticsInverse:
    """Synthetic data from the true ``case`` (its converged reference solution): ``T`` and
    ``u`` at ``n_obs`` evenly spaced points with multiplicative noise ``y (1 + noise eps)``,
    as in `inverse`; the noise model uses ``sigma = noise |y|``. ``unknown``: fields of
    `FreelyPropagating`, relative to ``nominal`` (default the PINN paper's initial values,
    lambda 0.03 and Ea 1.5e5). Needs x64."""
    names = _canonical(unknown)
    if "s_L" in names:
        raise ValueError("kinetics_inverse: s_L is an output of the flame solver, not a constant; "
                         "choose among the fields of FreelyPropagating.")
    nominal = dict(_PAPER_INIT) if nominal is None else {_ALIASES.get(k, k): v for k, v in nominal.items()}
    missing = [k for k in names if k not in nominal]
    if missing:
        raise ValueError(f"kinetics_inverse: give a nominal value for {', '.join(map(_display, missing))}.")
    level, n = real_number(noise), as_int(n_obs)
    if n is None or n < 1 or level is None or not (np.isfinite(level) and level > 0):
        raise ValueError(f"kinetics_inverse: n_obs must be an integer >= 1 and noise a positive relative level, got "
                         f"n_obs={n_obs!r} and noise={noise!r}.")
    check_key("flame.kinetics_inverse", key)
    if not jax.config.jax_enable_x64:
        raise ValueError("kinetics_inverse runs the flame solver in float64: call "
                         "jax.config.update('jax_enable_x64', True) first.")
    ref = solve_reference(case) if reference is None else reference
    obs_x = jnp.linspace(0.0, 1.0, int(n_obs)) * case.L
    clean = jnp.concatenate([ref.interp(obs_x), ref.interp(obs_x, "u")])
    y = clean * (1.0 + noise * jax.random.normal(key, clean.shape, jnp.float64))
    # the nominal flame (one refinement: solve_reference stops at the second grid), back on n_grid points
    warm = solve_reference(case.replace(**{k: nominal[k] for k in names}), n_grid=n_grid, rtol=1.0)
    T0 = jnp.interp(jnp.linspace(0.0, 1.0, n_grid), jnp.linspace(0.0, 1.0, warm.T.shape[0]), warm.T)
    return KineticsInverse(case, names, {k: jnp.asarray(nominal[k], jnp.float64) for k in names}, obs_x, y,
                           GaussianNoise(noise * jnp.abs(y)), {k: getattr(case, k) for k in names},
                           T0, warm.s_L)
