"""Tumour growth: the Fisher-Kolmogorov (Fisher-KPP) reaction-diffusion equation.

``u_t = D u_xx + rho u (1 - u)``: ``u`` the normalised tumour cell density, ``D`` the
diffusivity, ``rho`` the proliferation rate (Fisher 1937; Kolmogorov, Petrovsky and
Piskunov 1937; the glioma model of Lipkova et al. 2019 in 2D/3D).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._problem import HasResidual, directional_derivatives


def travelling_wave(x, t, D, rho):
    """Exact Fisher-KPP solution (Ablowitz & Zeppetella 1979):
    ``u = (1 + exp(sqrt(rho / (6 D)) (x - c t)))^-2`` with ``c = 5 sqrt(rho D / 6)``."""
    k = jnp.sqrt(rho / (6.0 * D))
    c = 5.0 * jnp.sqrt(rho * D / 6.0)
    return 1.0 / (1.0 + jnp.exp(k * (x - c * t))) ** 2


class FisherKPP1D(HasResidual):
    """1D Fisher-KPP in space-time, ``(x, t) in [x_min, x_max] x [0, t_end]``, for a PINN:
    initial and Dirichlet boundary data from the exact travelling wave `travelling_wave`, so
    the network's error against it is measurable. Points are ``(x, t)`` rows. Conditions
    ``"ic"`` (``n_ic`` points at t = 0) and ``"bc"`` (``n_bc`` per side); `Solution.value`
    is ``{"u": u on an (n_eval, n_eval) (x, t) grid}``; metrics ``rel_l2``.
    """

    n_out: ClassVar[int] = 1
    D: jax.Array = eqx.field(default=1.0, converter=jnp.asarray)
    rho: jax.Array = eqx.field(default=1.0, converter=jnp.asarray)
    x_min: float = eqx.field(static=True, default=-10.0)
    x_max: float = eqx.field(static=True, default=10.0)
    t_end: float = eqx.field(static=True, default=2.0)
    n_ic: int = eqx.field(static=True, default=128)
    n_bc: int = eqx.field(static=True, default=64)
    n_eval: int = eqx.field(static=True, default=41)

    def __check_init__(self):
        for name in ("D", "rho"):
            v = getattr(self, name)
            if not isinstance(v, jax.core.Tracer) and not np.all(np.asarray(v) > 0):
                raise ValueError(f"FisherKPP1D: {name} must be positive, got {v!r}.")
        if not (self.x_max > self.x_min and self.t_end > 0):
            raise ValueError("FisherKPP1D: need x_max > x_min and t_end > 0.")

    @property
    def lower(self):
        return jnp.array([self.x_min, 0.0])

    @property
    def upper(self):
        return jnp.array([self.x_max, self.t_end])

    @property
    def y_obs(self):
        return None

    def _exact(self, xt):
        return travelling_wave(xt[:, 0], xt[:, 1], self.D, self.rho)

    def _grid(self):
        x = jnp.linspace(self.x_min, self.x_max, self.n_eval)
        t = jnp.linspace(0.0, self.t_end, self.n_eval)
        return jnp.stack(jnp.meshgrid(x, t, indexing="ij"), -1).reshape(-1, 2)

    @property
    def x_true(self):
        return self._exact(self._grid()).reshape(self.n_eval, self.n_eval)

    def residual(self, u, theta, xt):
        f = lambda y: u(y)[:, 0]
        ex = jnp.zeros_like(xt).at[:, 0].set(1.0)
        et = jnp.zeros_like(xt).at[:, 1].set(1.0)
        v, _, u_xx = directional_derivatives(f, xt, ex)
        _, u_t = jax.jvp(f, (xt,), (et,))
        return u_t - self.D * u_xx - self.rho * v * (1.0 - v)

    def conditions(self, u, theta):
        x0 = jnp.linspace(self.x_min, self.x_max, self.n_ic)
        ic = jnp.stack([x0, jnp.zeros_like(x0)], -1)
        t = jnp.linspace(0.0, self.t_end, self.n_bc)
        bc = jnp.concatenate([jnp.stack([jnp.full_like(t, self.x_min), t], -1),
                              jnp.stack([jnp.full_like(t, self.x_max), t], -1)])
        return {"ic": u(ic)[:, 0] - self._exact(ic), "bc": u(bc)[:, 0] - self._exact(bc)}

    def evaluate(self, u, theta):
        return {"u": u(self._grid())[:, 0].reshape(self.n_eval, self.n_eval)}

    def metrics(self, value):
        from ..metrics import rel_l2

        return {"rel_l2": rel_l2(value["u"], self.x_true)}
