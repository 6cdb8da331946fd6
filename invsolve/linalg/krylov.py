"""Conjugate gradients, plain and preconditioned, as step-wise solver objects.

Solves ``A x = b`` for a symmetric positive definite operator (Hestenes & Stiefel 1952;
the preconditioned form of Saad, "Iterative Methods for Sparse Linear Systems", Alg. 9.1).
Works in the dtype of ``b`` (use float64 for reference solves). The stopping rule is
scipy's: ``||r|| <= max(rtol * ||b||, atol)`` on the recursively updated residual.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._problem import HasLinearOperator
from .._solution import RESULTS, Estimate
from .._linop import HasDiagonal
from .._solver import AbstractSolver, OperatorIs, SymmetricOperator, check_nonneg, check_rtol


def vdot(a, b):
    """The real part of ``<a, b>`` (the inner product every Krylov method here uses)."""
    return jnp.vdot(a, b).real


def safe_div(a, b):
    """``a / b``, and 0 where ``b == 0`` (no NaN in either branch, so grad/vmap safe)."""
    ok = b != 0
    return jnp.where(ok, a / jnp.where(ok, b, 1), jnp.zeros((), jnp.result_type(a, b)))


def cg_fixed(mv, b, steps: int):
    """``steps`` conjugate-gradient iterations for ``M d = b`` from ``d = 0`` (``M`` SPD, given as
    ``mv``); safe at ``b = 0``. For inner solves of a fixed cost (ADMM x-updates, data-consistency
    steps of the samplers), where a tolerance is not wanted."""
    def body(_, c):
        d, r, p, rr = c
        Mp = mv(p)
        pMp = vdot(p, Mp)
        a = jnp.where(pMp > 0, rr / jnp.where(pMp > 0, pMp, 1), 0)  # no step along p.M p <= 0
        d, r = d + a * p, r - a * Mp
        rr_new = vdot(r, r)
        return d, r, p * safe_div(rr_new, rr) + r, rr_new

    d, *_ = jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(b), b, b, vdot(b, b)))
    return d


def cgls_fixed(J, JT, r, steps: int):
    """``steps`` CGLS iterations for ``min ||J d - r||`` from ``d = 0`` (``J``, ``JT``: the
    operator and its transpose as functions)."""
    s = JT(r)

    def body(_, c):
        d, r, p, gamma = c
        q = J(p)
        alpha = safe_div(gamma, vdot(q, q))
        d, r = d + alpha * p, r - alpha * q
        s = JT(r)
        g_new = vdot(s, s)
        return d, r, s + safe_div(g_new, gamma) * p, g_new

    d, *_ = jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(s), r, s, vdot(s, s)))
    return d


class AbstractPreconditioner(eqx.Module):
    """Builds ``M ~ A^{-1}`` (a callable pytree, symmetric positive definite) for ``A``;
    ``requires`` says what it needs of the operator (`PCG` adds it to its own)."""

    requires: ClassVar[tuple] = ()

    def prepare(self, operator) -> "AbstractPreconditioner":
        """Host-side set-up before tracing, from a concrete operator (default: nothing;
        `AMG` reads the sparse matrix here)."""
        return self

    @abc.abstractmethod
    def build(self, operator) -> Callable: ...


class Identity(AbstractPreconditioner):
    def build(self, operator):
        return _Identity()


class _Identity(eqx.Module):
    def __call__(self, r):
        return r


class Jacobi(AbstractPreconditioner):
    """Diagonal scaling ``M = diag(A)^{-1}``; needs an operator with its diagonal (`HasDiagonal`)."""

    requires: ClassVar = (OperatorIs(HasDiagonal, "Jacobi"),)

    def build(self, operator):
        if not isinstance(operator, HasDiagonal):
            raise TypeError(f"Jacobi needs an operator with its diagonal (HasDiagonal); {type(operator).__name__} "
                            "is not one.")
        return _Scale(1.0 / operator.diagonal())


class _Scale(eqx.Module):
    inv_diag: jax.Array

    def __call__(self, r):
        return self.inv_diag * r


def _residual_norm(r, rz, M):
    """``||r||``; without a preconditioner it is ``sqrt(r.z)``, which spares a reduction."""
    return jnp.sqrt(rz) if isinstance(M, _Identity) else jnp.linalg.norm(r)


def krylov_terminate(solver, s):
    """Stop at ``|r| <= max(rtol |b|, atol)`` (successful), when a norm is not finite
    (nonfinite: NaN in the data, or ``||b||`` overflowing the dtype, where ``inf <= inf`` would
    otherwise pass as convergence at step 0), or when ``s.curvature_ok`` is False (breakdown):
    the rule of every Krylov-type solver here (``solver.rtol``, ``solver.atol``; ``s.rnorm``,
    ``s.bnorm``, ``s.curvature_ok``)."""
    finite = jnp.isfinite(s.rnorm) & jnp.isfinite(s.bnorm)
    converged = finite & (s.rnorm <= jnp.maximum(solver.rtol * s.bnorm, solver.atol))
    broke = ~s.curvature_ok  # p.A p <= 0, a diagnosis (NaN counts as not finite, not as this)
    result = jnp.where(converged, RESULTS.successful,
                       jnp.where(broke, RESULTS.breakdown,
                                 jnp.where(finite, RESULTS.max_steps_reached, RESULTS.nonfinite)))
    return converged | broke | ~finite, result.astype(jnp.int32)


class CGState(eqx.Module):
    x: jax.Array
    r: jax.Array
    p: jax.Array
    rz: jax.Array
    rnorm: jax.Array
    bnorm: jax.Array
    curvature_ok: jax.Array
    M: Any


class _AbstractCG(AbstractSolver):
    requires: ClassVar = (HasLinearOperator, SymmetricOperator())
    # Subclasses have fields rtol, atol, max_steps.

    def __check_init__(self):
        check_rtol(f"{type(self).__name__} rtol", self.rtol)
        check_nonneg(f"{type(self).__name__} atol", self.atol, allow_none=False)
        check_nonneg(f"{type(self).__name__} max_steps", self.max_steps, integer=True)

    @abc.abstractmethod
    def _preconditioner(self) -> AbstractPreconditioner: ...

    def default_max_steps(self, problem):
        return 10 * int(jnp.size(problem.y_obs))

    def init(self, problem, key=None):
        A = problem.operator()
        b = problem.y_obs
        M = self._preconditioner().build(A)
        x = jnp.zeros_like(b)
        r = b
        z = M(r)
        return CGState(
            x=x, r=r, p=z, rz=vdot(r, z), rnorm=jnp.linalg.norm(r), bnorm=jnp.linalg.norm(b),
            curvature_ok=jnp.array(True), M=M,
        )

    def step(self, problem, state):
        A = problem.operator()
        Ap = A.mv(state.p)
        pAp = vdot(state.p, Ap)
        alpha = state.rz / pAp
        x = state.x + alpha * state.p
        r = state.r - alpha * Ap
        z = state.M(r)
        rz = vdot(r, z)
        p = z + (rz / state.rz) * state.p
        rnorm = _residual_norm(r, rz, state.M)
        # NaN is not a curvature verdict: it is reported as nonfinite by krylov_terminate
        new = CGState(x=x, r=r, p=p, rz=rz, rnorm=rnorm, bnorm=state.bnorm, curvature_ok=~(pAp <= 0), M=state.M)
        return new, {"residual": rnorm / jnp.where(state.bnorm > 0, state.bnorm, 1.0)}

    def terminate(self, problem, state):
        return krylov_terminate(self, state)

    def postprocess(self, problem, state):
        return Estimate(state.x)


class CG(_AbstractCG):
    """Conjugate gradients for ``A x = b`` with ``A`` symmetric positive definite.

    Args:
        rtol, atol: stop when ``||b - A x|| <= max(rtol ||b||, atol)``.
        max_steps: iteration budget (default ``10 * b.size``, as scipy).
    History: ``residual`` = ``||r_k|| / ||b||`` per iteration.
    """

    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int | None = None

    def _preconditioner(self):
        return Identity()


class PCG(_AbstractCG):
    """Preconditioned conjugate gradients.

    Args:
        preconditioner: `Jacobi()` (default), `invsolve.linalg.Multigrid()` (a geometric
            multigrid V-cycle, for `invsolve.problems.poisson` operators without obstacles)
            or `invsolve.linalg.AMG()` (smoothed-aggregation algebraic multigrid, for any
            symmetric operator with a sparse matrix form, obstacles included).
        rtol, atol, max_steps: as `CG`.
    """

    preconditioner: AbstractPreconditioner = Jacobi()
    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int | None = None

    def __check_init__(self):
        if not isinstance(self.preconditioner, AbstractPreconditioner):
            raise TypeError("PCG preconditioner must be an invsolve.solvers preconditioner such as Jacobi() or "
                            f"Multigrid(), got {type(self.preconditioner).__name__} {self.preconditioner!r}.")

    @property
    def requires(self):
        return _AbstractCG.requires + tuple(self.preconditioner.requires)

    def prepare(self, problem):
        """Host-side set-up of the preconditioner (`AbstractPreconditioner.prepare`)."""
        prepared = self.preconditioner.prepare(problem.operator())
        return self if prepared is self.preconditioner else eqx.tree_at(lambda s: s.preconditioner, self, prepared)

    def _preconditioner(self):
        return self.preconditioner
