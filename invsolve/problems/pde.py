"""Periodic 1D PINN benchmarks: Allen-Cahn, advection and Korteweg-de Vries.

The three time-dependent problems as jaxpi defines them (github.com/PredictiveIntelligenceLab/
jaxpi, ``examples/allen_cahn``, ``examples/adv``, ``examples/kdv``; Wang, Sankaran, Wang and
Perdikaris, "An expert's guide to training physics-informed neural networks", arXiv:2308.08468,
2023; KdV also in Wang et al., "PirateNets", arXiv:2402.00326, 2024):

* Allen-Cahn ``u_t - eps u_xx + a u^3 - a u = 0``, ``eps = 1e-4``, ``a = 5``, ``x in [-1, 1]``,
  ``t in [0, 1]``, ``u(x, 0) = x^2 cos(pi x)`` (`allen_cahn_1d`);
* advection ``u_t + c u_x = 0``, ``c = 80``, ``x in [0, 2 pi]``, ``t in [0, 1]``,
  ``u(x, 0) = sin(x)``; exact ``u = sin(x - c t)`` (`advection_1d`);
* KdV ``u_t + eta u u_x + mu^2 u_xxx = 0``, ``eta = 1``, ``mu = 0.022``, ``x in [-1, 1]``,
  ``t in [0, 1]``, ``u(x, 0) = cos(pi x)`` (`kdv_1d`; Zabusky and Kruskal 1965);

all periodic in ``x``. jaxpi (and Raissi, Perdikaris and Karniadakis, J. Comput. Phys. 378,
2019, for Allen-Cahn and KdV) load reference data made with Chebfun's ``spin`` (ETDRK4,
Fourier in ``x``); here the reference is computed in the package, in float64 NumPy, by the
same kind of method (`reference`): Fourier pseudo-spectral in ``x``, ETDRK4 in time (Cox and
Matthews 2002; the contour-integral coefficients of Kassam and Trefethen, SIAM J. Sci.
Comput. 26(4), 2005), nothing downloaded.

Points are rows ``(x, t)``, shape ``(n, 2)``. Reference grid (``x_true``, `evaluate`):
``x_j = x_min + j (x_max - x_min) / nx_eval`` for ``j < nx_eval`` (the periodic grid without
its right end) and ``t_k = k t_end / (nt_eval - 1)``; arrays are ``(nt_eval, nx_eval)``, rows
time, columns space. Float dtype: float64 when ``jax_enable_x64`` is on, else float32 (the
reference is computed in float64 either way and cast).
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import HasResidual, directional_derivatives

__all__ = ["PeriodicPDE1D", "AllenCahn1D", "Advection1D", "KdV1D", "allen_cahn_1d", "advection_1d", "kdv_1d",
           "reference", "spectral_solve"]


def _float_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _finite(owner, name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a real number, got {value!r}.") from None
    if not math.isfinite(v):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}.")
    return v


def _positive(owner, name, value):
    v = _finite(owner, name, value)
    if not v > 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value!r}.")
    return v


def _count(owner, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


# ======================================================================================
# Fourier pseudo-spectral ETDRK4 (Kassam & Trefethen 2005)
# ======================================================================================
def _phi_coefficients(hL, n_contour=64):
    """ETDRK4 coefficients ``Q, f1, f2, f3`` (divided by ``h``) for the diagonal ``h L``: each
    a mean over ``n_contour`` points on the unit circle around every ``h L`` (Kassam and
    Trefethen 2005, eq. 2.5 and sec. 5), which avoids the cancellation near ``h L = 0``. Full
    circle, so complex ``L`` (dispersive terms) is handled too."""
    r = np.exp(2j * np.pi * (np.arange(n_contour) + 0.5) / n_contour)
    z = hL[:, None] + r[None, :]
    ez = np.exp(z)
    q = np.mean((np.exp(z / 2) - 1) / z, axis=1)
    f1 = np.mean((-4 - z + ez * (4 - 3 * z + z * z)) / z**3, axis=1)
    f2 = np.mean((2 + z + ez * (z - 2)) / z**3, axis=1)
    f3 = np.mean((-4 - 3 * z - z * z + ez * (4 - z)) / z**3, axis=1)
    if np.all(np.isreal(hL)):
        q, f1, f2, f3 = (np.real(c) for c in (q, f1, f2, f3))
    return q, f1, f2, f3


def _allen_cahn_u0_coefficients(m_count):
    """Exact Fourier coefficients ``c_m``, ``m = 0 .. m_count - 1``, of ``x^2 cos(pi x)`` on
    ``[-1, 1]`` (period 2; ``u0 = sum_m c_m exp(i pi m x)``), the Nyquist one set to 0.

    Its periodic extension has a corner at ``x = +-1`` (``u0'`` jumps from -2 to 2), so ``c_m``
    decays only like ``m^-2``: sampling ``u0`` on the grid would alias that tail into every
    mode (errors ~``N^-2`` per mode that diffusion does not remove), while the exact
    coefficients leave only the truncated tail, which diffusion damps by
    ``exp(-eps (pi m)^2 t)``. With ``I(q) = int_{-1}^{1} x^2 cos(pi q x) dx`` (``2/3`` for
    ``q = 0``, else ``4 (-1)^q / (pi q)^2``), ``c_m = (I(m + 1) + I(m - 1)) / 4``."""
    def integral(q):
        q = np.asarray(q, float)
        safe = np.where(q == 0, 1.0, q)
        return np.where(q == 0, 2.0 / 3.0, 4.0 * np.cos(np.pi * safe) / (np.pi * safe) ** 2)

    m = np.arange(m_count)
    c = (integral(m + 1) + integral(m - 1)) / 4.0
    c[-1] = 0.0
    return c


def spectral_solve(kind: str, constants: tuple, x_min: float, x_max: float, t_end: float, nx: int, nt: int,
                   n_modes: int, dt: float):
    """``u`` (float64 NumPy, ``(nt, nx)``) on the reference grid, by Fourier pseudo-spectral
    ETDRK4 on ``n_modes`` points (rounded up to an even multiple of ``nx``, then sampled),
    with a step of at most ``dt`` (shrunk so every output time is a step).

    ``kind`` ``"allen_cahn"`` (``constants = (eps, a)``; ``L = a - eps k^2``, ``N = -a u^3``,
    nonlinear term dealiased by the 1/2 rule for cubic products) or ``"kdv"``
    (``constants = (eta, mu)``; ``L = i mu^2 k^3``, ``N = -(eta / 2) (u^2)_x``, dealiased by the
    2/3 rule). Uncached; `reference` caches."""
    n = nx * max(1, math.ceil(n_modes / nx))
    n += n % 2
    length = x_max - x_min
    x = x_min + length * np.arange(n) / n
    k = 2 * np.pi / length * np.fft.rfftfreq(n, 1.0 / n)  # wavenumbers 0..n/2
    kmax = n // 2
    if kind == "allen_cahn":
        eps, a = constants
        if (x_min, x_max) != (-1.0, 1.0):
            raise ValueError("spectral_solve: Allen-Cahn's x^2 cos(pi x) is periodic on [-1, 1] only.")
        u0 = x**2 * np.cos(np.pi * x)
        v0 = n * _allen_cahn_u0_coefficients(k.size) * np.exp(1j * k * x_min)  # grid from x_min
        lin = a - eps * k**2
        keep = np.arange(k.size) < n / 4  # cubic: modes |m| < n/4 alias-free (1/2 rule)
        def nonlin(v):
            u = np.fft.irfft(v, n)
            return keep * np.fft.rfft(-a * u**3)
    elif kind == "kdv":
        eta, mu = constants
        if (x_min, x_max) != (-1.0, 1.0):
            raise ValueError("spectral_solve: KdV's cos(pi x) is periodic on [-1, 1] only.")
        u0 = np.cos(np.pi * x)
        v0 = np.fft.rfft(u0)
        lin = 1j * mu**2 * k**3
        keep = np.arange(k.size) < n / 3  # quadratic: 2/3 rule
        ik = 1j * k * keep * (np.arange(k.size) < kmax)  # drop the Nyquist mode of the derivative
        def nonlin(v):
            u = np.fft.irfft(v, n)
            return -0.5 * eta * ik * np.fft.rfft(u * u)
    else:
        raise ValueError(f"spectral_solve: unknown kind {kind!r}.")
    dt_out = t_end / (nt - 1)
    per_out = max(1, math.ceil(dt_out / dt - 1e-9))
    h = dt_out / per_out
    hl = h * lin
    e, e2 = np.exp(hl), np.exp(hl / 2)
    q, f1, f2, f3 = (h * c for c in _phi_coefficients(hl))
    v = v0
    stride = n // nx
    out = np.empty((nt, nx))
    out[0] = u0[::stride]
    for i in range(1, nt):
        for _ in range(per_out):
            nv = nonlin(v)
            a_ = e2 * v + q * nv
            na = nonlin(a_)
            b_ = e2 * v + q * na
            nb = nonlin(b_)
            c_ = e2 * a_ + q * (2 * nb - nv)
            nc = nonlin(c_)
            v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        out[i] = np.fft.irfft(v, n)[::stride]
    return out


@functools.lru_cache(maxsize=16)
def _cached(kind, constants, x_min, x_max, t_end, nx, nt, n_modes, dt):
    u = spectral_solve(kind, constants, x_min, x_max, t_end, nx, nt, n_modes, dt)
    u.setflags(write=False)
    return u


# ======================================================================================
# Problems
# ======================================================================================
class PeriodicPDE1D(HasResidual):
    """A scalar PDE in space-time, ``(x, t) in [x_min, x_max] x [0, t_end]``, periodic in ``x``,
    for a PINN. Points are rows ``(x, t)`` (``time_axis = 1``, ``periodic_axes = (0,)``: a
    network may embed ``x`` periodically with period ``x_max - x_min``).

    Conditions: ``"ic"`` (``u - u0`` at ``n_ic`` points of the periodic grid at ``t = 0``) and
    ``"bc"`` (``u(x_min, t) - u(x_max, t)`` at ``n_bc`` times in ``[0, t_end]``; zero for an
    exactly periodic network). `evaluate` gives ``{"u": (nt_eval, nx_eval)}`` on the reference
    grid (see the module), ``x_true`` the reference there, metrics ``rel_l2``.
    """

    n_out: ClassVar[int] = 1
    time_axis: ClassVar[int] = 1
    periodic_axes: ClassVar[tuple] = (0,)
    _n_modes: ClassVar[int] = 0  # spectral reference: Fourier points and step (subclasses)
    _dt: ClassVar[float] = 0.0

    x_min: float = eqx.field(static=True, default=-1.0)
    x_max: float = eqx.field(static=True, default=1.0)
    t_end: float = eqx.field(static=True, default=1.0)
    n_ic: int = eqx.field(static=True, default=256)
    n_bc: int = eqx.field(static=True, default=128)
    nx_eval: int = eqx.field(static=True, default=512)
    nt_eval: int = eqx.field(static=True, default=201)

    def __check_init__(self):
        name = type(self).__name__
        for f in ("x_min", "x_max", "t_end"):
            _finite(name, f, getattr(self, f))
        if not self.x_max > self.x_min:
            raise ValueError(f"{name}: need x_max > x_min, got [{self.x_min}, {self.x_max}].")
        if not self.t_end > 0:
            raise ValueError(f"{name}: t_end must be positive, got {self.t_end!r}.")
        for f, lo in (("n_ic", 1), ("n_bc", 1), ("nx_eval", 2), ("nt_eval", 2)):
            _count(name, f, getattr(self, f), lo)

    # --- the box ---------------------------------------------------------------------
    @property
    def lower(self):
        return jnp.array([self.x_min, 0.0], _float_dtype())

    @property
    def upper(self):
        return jnp.array([self.x_max, self.t_end], _float_dtype())

    @property
    def y_obs(self):
        return None

    # --- physics (subclasses) ------------------------------------------------------------
    def u0(self, x):
        """The initial condition at ``x`` (any shape)."""
        raise NotImplementedError

    def _pde(self, f, u_t, xt):
        """The residual from ``f`` (points -> values (n,)), ``u_t`` (n,) and the points."""
        raise NotImplementedError

    def residual(self, u, theta, xt):
        """The PDE's left-hand side at the points ``xt`` (n, 2): shape (n,)."""
        f = lambda y: u(y)[:, 0]
        et = jnp.zeros_like(xt).at[:, 1].set(1.0)
        _, u_t = jax.jvp(f, (xt,), (et,))
        return self._pde(f, u_t, xt)

    def conditions(self, u, theta):
        dtype = _float_dtype()
        x0 = self.x_min + (self.x_max - self.x_min) * jnp.arange(self.n_ic, dtype=dtype) / self.n_ic
        ic = jnp.stack([x0, jnp.zeros_like(x0)], -1)
        t = jnp.linspace(0.0, self.t_end, self.n_bc, dtype=dtype)
        left = jnp.stack([jnp.full_like(t, self.x_min), t], -1)
        right = jnp.stack([jnp.full_like(t, self.x_max), t], -1)
        return {"ic": u(ic)[:, 0] - self.u0(x0), "bc": u(left)[:, 0] - u(right)[:, 0]}

    # --- evaluation ----------------------------------------------------------------------
    def grid(self):
        """``(x (nx_eval,), t (nt_eval,))`` of the reference grid (NumPy float64)."""
        x = self.x_min + (self.x_max - self.x_min) * np.arange(self.nx_eval) / self.nx_eval
        t = self.t_end * np.arange(self.nt_eval) / (self.nt_eval - 1)
        return x, t

    def _points(self):
        x, t = self.grid()
        tt, xx = np.meshgrid(t, x, indexing="ij")
        return jnp.asarray(np.stack([xx.ravel(), tt.ravel()], -1), _float_dtype())

    def evaluate(self, u, theta):
        return {"u": u(self._points())[:, 0].reshape(self.nt_eval, self.nx_eval)}

    @property
    def x_true(self):
        return jnp.asarray(reference(self), _float_dtype())

    def metrics(self, value):
        from ..metrics import rel_l2

        return {"rel_l2": rel_l2(value["u"], self.x_true)}


def _x_directions(xt):
    return jnp.zeros_like(xt).at[:, 0].set(1.0)


class AllenCahn1D(PeriodicPDE1D):
    """Allen-Cahn ``u_t - eps u_xx + a u^3 - a u = 0`` on ``[-1, 1] x [0, t_end]``,
    ``u(x, 0) = x^2 cos(pi x)``, periodic (jaxpi ``examples/allen_cahn``: ``eps = 1e-4``,
    ``a = 5``, ``t_end = 1``; data of Raissi et al. 2019 from Chebfun). Interfaces of width
    ``~sqrt(2 eps / a)`` (0.006) form and the solution tends to +-1. ``u0``'s periodic extension
    has a corner at ``x = +-1`` (``u0'`` jumps from -2 to 2), smoothed at once by diffusion.
    Reference: 8192 Fourier points (1/2-rule dealiasing of ``u^3``), step 1e-3, ~2 s; measured
    changes: 1.5e-10 for half the step, 6.5e-13 for twice the points (max abs)."""

    _n_modes: ClassVar[int] = 8192
    _dt: ClassVar[float] = 1e-3
    eps: float = eqx.field(static=True, default=1e-4)
    a: float = eqx.field(static=True, default=5.0)

    def __check_init__(self):
        _positive("AllenCahn1D", "eps", self.eps)
        _finite("AllenCahn1D", "a", self.a)

    def u0(self, x):
        return x**2 * jnp.cos(jnp.pi * x)

    def _pde(self, f, u_t, xt):
        v, _, u_xx = directional_derivatives(f, xt, _x_directions(xt))
        return u_t - self.eps * u_xx + self.a * v**3 - self.a * v

    def _key(self):
        return "allen_cahn", (float(self.eps), float(self.a))


class Advection1D(PeriodicPDE1D):
    """Advection ``u_t + c u_x = 0`` on ``[0, 2 pi] x [0, t_end]``, ``u(x, 0) = sin(x)``,
    periodic; exact ``u = sin(x - c t)`` (jaxpi ``examples/adv``: ``c = 80`` in ``train.py``,
    the README's text says 100; ``t_end = 1``). The solution crosses the domain ``c t_end / (2
    pi)`` (~12.7) times: the hard part for a PINN is the time direction."""

    x_min: float = eqx.field(static=True, default=0.0)
    x_max: float = eqx.field(static=True, default=2 * math.pi)
    nx_eval: int = eqx.field(static=True, default=256)
    c: float = eqx.field(static=True, default=80.0)

    def __check_init__(self):
        _finite("Advection1D", "c", self.c)

    def u0(self, x):
        return jnp.sin(x)

    def exact(self, x, t):
        """``sin(x - c t)`` (jnp; any broadcastable shapes)."""
        return jnp.sin(x - self.c * t)

    def _pde(self, f, u_t, xt):
        _, u_x = jax.jvp(f, (xt,), (_x_directions(xt),))
        return u_t + self.c * u_x


class KdV1D(PeriodicPDE1D):
    """Korteweg-de Vries ``u_t + eta u u_x + mu^2 u_xxx = 0`` on ``[-1, 1] x [0, t_end]``,
    ``u(x, 0) = cos(pi x)``, periodic (jaxpi ``examples/kdv``: ``eta = 1``, ``mu = 0.022``,
    ``t_end = 1``; Zabusky and Kruskal 1965; data of Raissi et al. 2019 from Chebfun). The
    cosine steepens and breaks into solitons of width ``~mu sqrt(12 / A)``; the mean of ``u``
    is conserved. Reference: 512 Fourier points (2/3-rule dealiasing), step 1e-4, ~0.6 s;
    measured changes: 1.0e-9 for half the step, 2e-13 for twice the points (max abs)."""

    _n_modes: ClassVar[int] = 512
    _dt: ClassVar[float] = 1e-4
    eta: float = eqx.field(static=True, default=1.0)
    mu: float = eqx.field(static=True, default=0.022)

    def __check_init__(self):
        _finite("KdV1D", "eta", self.eta)
        _positive("KdV1D", "mu", self.mu)

    def u0(self, x):
        return jnp.cos(jnp.pi * x)

    def _pde(self, f, u_t, xt):
        ex = _x_directions(xt)
        f1 = lambda y: jax.jvp(f, (y,), (ex,))  # (u, u_x)
        f2 = lambda y: jax.jvp(f1, (y,), (ex,))  # ((u, u_x), (u_x, u_xx))
        ((v, u_x), (_, _)), (_, (_, u_xxx)) = jax.jvp(f2, (xt,), (ex,))
        return u_t + self.eta * v * u_x + self.mu**2 * u_xxx

    def _key(self):
        return "kdv", (float(self.eta), float(self.mu))


def reference(problem: PeriodicPDE1D, n_modes: int | None = None, dt: float | None = None) -> np.ndarray:
    """The reference solution on ``problem``'s grid: float64 NumPy ``(nt_eval, nx_eval)``,
    read-only and cached (by kind, constants, grid, ``n_modes``, ``dt``). Advection: the exact
    ``sin(x - c t)``. Allen-Cahn / KdV: `spectral_solve` with the class's ``n_modes`` and ``dt``
    unless given (measured: halving ``dt`` or doubling ``n_modes`` changes it by < 1e-8)."""
    if isinstance(problem, Advection1D):
        x, t = problem.grid()
        return np.sin(x[None, :] - float(problem.c) * t[:, None])
    if not isinstance(problem, (AllenCahn1D, KdV1D)):
        raise TypeError(f"reference: expected an AllenCahn1D, Advection1D or KdV1D, got {type(problem).__name__}.")
    kind, constants = problem._key()
    n_modes = problem._n_modes if n_modes is None else _count("reference", "n_modes", n_modes, 4)
    dt = problem._dt if dt is None else _positive("reference", "dt", dt)
    return _cached(kind, constants, float(problem.x_min), float(problem.x_max), float(problem.t_end),
                   problem.nx_eval, problem.nt_eval, int(n_modes), float(dt))


# ======================================================================================
# Factories
# ======================================================================================
def allen_cahn_1d(eps: float = 1e-4, a: float = 5.0, nx_eval: int = 512, nt_eval: int = 201, *, t_end: float = 1.0,
                  n_ic: int = 256, n_bc: int = 128) -> AllenCahn1D:
    """The jaxpi Allen-Cahn benchmark (`AllenCahn1D`); ValueError on bad input."""
    return AllenCahn1D(x_min=-1.0, x_max=1.0, t_end=_positive("allen_cahn_1d", "t_end", t_end), n_ic=n_ic,
                       n_bc=n_bc, nx_eval=nx_eval, nt_eval=nt_eval,
                       eps=_positive("allen_cahn_1d", "eps", eps), a=_finite("allen_cahn_1d", "a", a))


def advection_1d(c: float = 80.0, nx_eval: int = 256, nt_eval: int = 201, *, t_end: float = 1.0, n_ic: int = 256,
                 n_bc: int = 128) -> Advection1D:
    """The jaxpi advection benchmark (`Advection1D`); ValueError on bad input."""
    return Advection1D(x_min=0.0, x_max=2 * math.pi, t_end=_positive("advection_1d", "t_end", t_end), n_ic=n_ic,
                       n_bc=n_bc, nx_eval=nx_eval, nt_eval=nt_eval, c=_finite("advection_1d", "c", c))


def kdv_1d(eta: float = 1.0, mu: float = 0.022, nx_eval: int = 512, nt_eval: int = 201, *, t_end: float = 1.0,
           n_ic: int = 256, n_bc: int = 128) -> KdV1D:
    """The jaxpi Korteweg-de Vries benchmark (`KdV1D`); ValueError on bad input."""
    return KdV1D(x_min=-1.0, x_max=1.0, t_end=_positive("kdv_1d", "t_end", t_end), n_ic=n_ic, n_bc=n_bc,
                 nx_eval=nx_eval, nt_eval=nt_eval, eta=_finite("kdv_1d", "eta", eta),
                 mu=_positive("kdv_1d", "mu", mu))
