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
from .._solver import AbstractSolver, check_nonneg


def _vdot(a, b):
    return jnp.vdot(a, b).real


class AbstractPreconditioner(eqx.Module):
    """Builds ``M ~ A^{-1}`` (a callable pytree, symmetric positive definite) for ``A``."""

    @abc.abstractmethod
    def build(self, operator) -> Callable: ...


class Identity(AbstractPreconditioner):
    def build(self, operator):
        return _Identity()


class _Identity(eqx.Module):
    def __call__(self, r):
        return r


class Jacobi(AbstractPreconditioner):
    """Diagonal scaling ``M = diag(A)^{-1}``; needs ``operator.diagonal()``."""

    def build(self, operator):
        if not hasattr(operator, "diagonal"):
            raise TypeError(f"Jacobi needs an operator with diagonal(); {type(operator).__name__} has none.")
        return _Scale(1.0 / operator.diagonal())


class _Scale(eqx.Module):
    inv_diag: jax.Array

    def __call__(self, r):
        return self.inv_diag * r


def _residual_norm(r, rz, M):
    """``||r||``; without a preconditioner it is ``sqrt(r.z)``, which spares a reduction."""
    return jnp.sqrt(rz) if isinstance(M, _Identity) else jnp.linalg.norm(r)


def krylov_terminate(solver, s):
    """Stop at ``|r| <= max(rtol |b|, atol)`` (successful) or when ``s.curvature_ok`` is
    False (breakdown): the rule of every Krylov-type solver here (``solver.rtol``,
    ``solver.atol``; ``s.rnorm``, ``s.bnorm``, ``s.curvature_ok``)."""
    converged = s.rnorm <= jnp.maximum(solver.rtol * s.bnorm, solver.atol)
    broke = ~s.curvature_ok
    result = jnp.where(converged, RESULTS.successful, jnp.where(broke, RESULTS.breakdown, RESULTS.max_steps_reached))
    return converged | broke, result.astype(jnp.int32)


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
    requires: ClassVar = (HasLinearOperator,)
    # Subclasses have fields rtol, atol, max_steps.

    def __check_init__(self):
        check_nonneg(f"{type(self).__name__} rtol", self.rtol, allow_none=False)
        check_nonneg(f"{type(self).__name__} atol", self.atol, allow_none=False)
        check_nonneg(f"{type(self).__name__} max_steps", self.max_steps, integer=True)

    @abc.abstractmethod
    def _preconditioner(self) -> AbstractPreconditioner: ...

    def default_max_steps(self, problem):
        return 10 * int(jnp.size(problem.y_obs))

    def prepare(self, problem):
        A = problem.operator()
        if not (A.symmetric and A.positive_definite):
            if A.symmetric:  # semidefinite (e.g. pure Neumann): CG works on consistent data
                return self
            raise ValueError(
                f"{type(self).__name__} needs a symmetric positive definite operator, but "
                f"{type(A).__name__} is not symmetric; solve the normal equations instead."
            )
        return self

    def init(self, problem, key=None):
        A = problem.operator()
        b = problem.y_obs
        M = self._preconditioner().build(A)
        x = jnp.zeros_like(b)
        r = b
        z = M(r)
        return CGState(
            x=x, r=r, p=z, rz=_vdot(r, z), rnorm=jnp.linalg.norm(r), bnorm=jnp.linalg.norm(b),
            curvature_ok=jnp.array(True), M=M,
        )

    def step(self, problem, s):
        A = problem.operator()
        Ap = A.mv(s.p)
        pAp = _vdot(s.p, Ap)
        alpha = s.rz / pAp
        x = s.x + alpha * s.p
        r = s.r - alpha * Ap
        z = s.M(r)
        rz = _vdot(r, z)
        p = z + (rz / s.rz) * s.p
        rnorm = _residual_norm(r, rz, s.M)
        new = CGState(x=x, r=r, p=p, rz=rz, rnorm=rnorm, bnorm=s.bnorm, curvature_ok=pAp > 0, M=s.M)
        return new, {"residual": rnorm / jnp.where(s.bnorm > 0, s.bnorm, 1.0)}

    def terminate(self, problem, s):
        return krylov_terminate(self, s)

    def postprocess(self, problem, s):
        return Estimate(s.x)


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
        preconditioner: `Jacobi()` (default) or `invsolve.solvers.Multigrid()` (a geometric
            multigrid V-cycle, for `invsolve.problems.poisson` operators).
        rtol, atol, max_steps: as `CG`.
    """

    preconditioner: AbstractPreconditioner = Jacobi()
    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int | None = None

    def _preconditioner(self):
        return self.preconditioner
