"""Independent shooting oracle for the 1D freely-propagating premixed flame (tests only).

Plain numpy/scipy reference for FlamePINN-1D Case 1 (Wu et al., "FlamePINN-1D:
Physics-informed neural networks to solve forward and inverse problems of 1D laminar
flames"), simplified physics: unity Lewis number, one-step chemistry. Steady energy eq.

    rho_in s cp T' = lam T'' + qF omega,   omega = A exp(-Ea/(R T)) (rho Y_F)^nu,
    Y_F = Y_F,in + cp (T_in - T)/qF (clipped at 0),  rho = rho_in s / u(T),
    u(T) = ((s + Rg T_in/s) - sqrt((s + Rg T_in/s)^2 - 4 Rg T)) / 2,  Rg = R/W,

with T(0) = T_in, T'(0) = grad_T_in. The flame speed s = s_L is the eigenvalue: the
IVP is integrated (solve_ivp, DOP853) with terminal events T' = 0 ("flashback", s too
small) and T = T_max ("blow-out", s too large); s is bisected between the two.
Trajectories reaching the end of [0, L] with neither event are classified by the sign
of T'' there (T'' < 0: turning back, flashback side). The eigenvalue is exponentially
insensitive to L once the flame sits well inside the domain.
"""
import numpy as np
from scipy.integrate import solve_ivp


def _shoot(s, phi, p, T_in, lam, cp, qF, A, Ea, nu, W, R, grad_T_in, L, rtol):
    """Integrate the IVP for speed s; return (+1 blow-out | -1 flashback, solution)."""
    Rg = R / W
    rho_in = p / (Rg * T_in)
    YF_in = phi / (phi + 4.0)
    T_max = T_in + qF * YF_in / cp
    b = s + Rg * T_in / s

    def rhs(x, y):
        T, dT = y
        u = 0.5 * (b - np.sqrt(b * b - 4.0 * Rg * T))
        YF = max(YF_in + cp * (T_in - T) / qF, 0.0)
        omega = A * np.exp(-Ea / (R * T)) * (rho_in * s / u * YF) ** nu
        return [dT, (rho_in * s * cp * dT - qF * omega) / lam]

    ev_back = lambda x, y: y[1]
    ev_back.terminal, ev_back.direction = True, -1
    ev_over = lambda x, y: y[0] - T_max
    ev_over.terminal, ev_over.direction = True, 1
    sol = solve_ivp(rhs, (0.0, L), [T_in, grad_T_in], method="DOP853", rtol=rtol,
                    atol=[rtol * T_max, rtol * grad_T_in], events=(ev_back, ev_over),
                    dense_output=True)
    if sol.t_events[1].size:
        return 1, sol
    if sol.t_events[0].size:
        return -1, sol
    return (1 if rhs(sol.t[-1], sol.y[:, -1])[1] >= 0.0 else -1), sol


def _bisect(phi, p, T_in, kw):
    # flashback at lo, blow-out at hi (for s << 0.1 the flame does not ignite within L)
    lo, hi = 0.1, 5.0
    assert _shoot(lo, phi, p, T_in, **kw)[0] < 0 and _shoot(hi, phi, p, T_in, **kw)[0] > 0
    last = None
    while hi - lo > 1e-13 * hi:             # stops by ~1e-12 anyway (ODE-error noise)
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        flag, sol = _shoot(mid, phi, p, T_in, **kw)
        if flag < 0:
            lo, last = mid, sol
        else:
            hi = mid
    return 0.5 * (lo + hi), last


def shooting_speed(phi, p=101325.0, T_in=298.0, *, lam=0.026, cp=1000.0, qF=5e7,
                   A=1.4e8, Ea=1.214172e5, nu=1.6, W=28.97e-3, R=8.3145,
                   grad_T_in=1e5, L=1.5e-3, rtol=1e-12) -> float:
    """Laminar flame speed s_L [m/s] by bisection shooting."""
    kw = dict(lam=lam, cp=cp, qF=qF, A=A, Ea=Ea, nu=nu, W=W, R=R,
              grad_T_in=grad_T_in, L=L, rtol=rtol)
    return float(_bisect(phi, p, T_in, kw)[0])


def shooting_profile(phi, x, p=101325.0, T_in=298.0, *, lam=0.026, cp=1000.0, qF=5e7,
                     A=1.4e8, Ea=1.214172e5, nu=1.6, W=28.97e-3, R=8.3145,
                     grad_T_in=1e5, L=1.5e-3, rtol=1e-12) -> np.ndarray:
    """T [K] at points x from the last flashback-side trajectory (dense output).

    Accurate through the flame; past the point where that trajectory turns back
    (T' = 0, close to x = L) the interpolant is extrapolated."""
    kw = dict(lam=lam, cp=cp, qF=qF, A=A, Ea=Ea, nu=nu, W=W, R=R,
              grad_T_in=grad_T_in, L=L, rtol=rtol)
    _, sol = _bisect(phi, p, T_in, kw)
    return sol.sol(np.asarray(x, dtype=float))[0]
