"""Solver objects: ``init / step / terminate / postprocess``, run by one driver."""

from __future__ import annotations

import abc
import hashlib
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._solution import Estimate


class AbstractSolver(eqx.Module):
    """An iterative method. The driver calls, in order::

        state = init(problem, key)
        while not terminate(problem, state)[0] and steps < max_steps:
            state, info = step(problem, state)       # info: dict of scalars -> history
        estimate = postprocess(problem, state)

    ``requires`` lists what the method needs of a problem: capability classes (``HasForward``,
    ...; an ``isinstance`` check) and `Requirement` objects for properties a class does not
    say (a symmetric operator, an unknown that is one array of the prior's shape). A solver
    whose needs depend on its fields makes ``requires`` a property. `invsolve.solve` checks
    every entry before tracing and raises `ProblemSolverIncompatible` naming the first unmet
    one. ``needs_key`` says whether the method is stochastic. ``terminate`` returns ``(done, result)`` where ``result``
    is the code to report if the solve stopped now (so a method with no tolerance reports
    ``successful`` when it runs out of steps).
    """

    requires: ClassVar[tuple] = ()
    needs_key: ClassVar[bool] = False

    def prepare(self, problem) -> "AbstractSolver":
        """Host-side set-up before tracing (default: nothing)."""
        return self

    def default_max_steps(self, problem) -> int:
        return 10_000

    def check_result(self, problem, state, result):
        """The final verdict, once, after the loop (``result``: the int32 code so far). Default:
        ``result``; samplers demote a run whose estimate does not fit the data."""
        return result

    def step_cost(self, problem) -> dict:
        """Work per step, e.g. ``{"nfe": 1, "n_forward": 12}`` (network evaluations, forward
        model or adjoint applications); the driver reports each times the steps taken in
        ``sol.stats``. Default: nothing counted."""
        return {}

    @abc.abstractmethod
    def init(self, problem, key) -> Any: ...

    @abc.abstractmethod
    def step(self, problem, state) -> tuple[Any, dict]: ...

    @abc.abstractmethod
    def terminate(self, problem, state) -> tuple[jax.Array, jax.Array]: ...

    @abc.abstractmethod
    def postprocess(self, problem, state) -> Estimate: ...


class Requirement(abc.ABC):
    """A property a solver needs of a problem that no capability class says; an entry of
    `AbstractSolver.requires`. `unmet` runs on the host before tracing, after the capability
    classes have been checked (so it may call their methods)."""

    @abc.abstractmethod
    def unmet(self, problem) -> str | None:
        """None when ``problem`` meets it, else what the solver needs and the problem lacks,
        as a clause that follows "<solver> needs ..."."""


class SymmetricOperator(Requirement):
    """``problem.operator()`` is symmetric (CG and its kin: positive semi-definite is the
    user's promise; a semidefinite, consistent system is solved)."""

    def unmet(self, problem):
        A = problem.operator()
        if not A.symmetric:
            return (f"a symmetric positive definite operator, but {type(A).__name__} is not symmetric; solve "
                    "the normal equations instead (CGLS)")
        return None


class OperatorIs(Requirement):
    """``problem.operator()`` is an instance of ``capability`` (an operator class such as
    `HasDiagonal`), for ``user`` (who needs it, e.g. a preconditioner)."""

    def __init__(self, capability: type, user: str):
        self.capability, self.user = capability, user

    def unmet(self, problem):
        A = problem.operator()
        if not isinstance(A, self.capability):
            return (f"an operator with {self.capability.__name__} for {self.user}, but {type(A).__name__} is "
                    f"not one ({(self.capability.__doc__ or '').split('(')[0].strip()})")
        return None


class ArrayUnknown(Requirement):
    """The problem's unknown is one array (not a dict of constants), of a shape ``prior``
    takes (its ``check_shape``); with ``stack``, a stack of slices ``(n, *prior.shape)``."""

    def __init__(self, prior=None, stack: bool = False):
        self.prior, self.stack = prior, stack

    def unmet(self, problem):
        x0 = jax.eval_shape(problem.init_params)  # shapes only: nothing runs
        if not isinstance(x0, jax.ShapeDtypeStruct):
            return (f"a problem whose unknown is one array (an image, a field), but {type(problem).__name__}'s "
                    f"is a {type(x0).__name__}")
        shape = tuple(x0.shape)
        if self.prior is None:
            return None
        if self.stack:
            if len(shape) != len(self.prior.shape) + 1:
                return (f"an unknown that is a stack of slices (n_slices, *{tuple(self.prior.shape)}), but "
                        f"{type(problem).__name__}'s has shape {shape}")
            shape = shape[1:]
        why = self.prior.shape_error(shape)
        return None if why is None else f"an unknown of a shape its prior takes: {why}"


def check_nonneg(name: str, value, *, integer: bool = False, allow_none: bool = True):
    """Validate a solver hyper-parameter at construction, with a clear message."""
    if (value is None and allow_none) or isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (bool, np.bool_, str, bytes)):  # float("1e-6") and int(True) would pass
        kind = "a non-negative integer" if integer else "a non-negative finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")
    try:
        v = float(value) if not integer else int(value)
        ok = np.isfinite(v) and v >= 0 and (not integer or v == value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        kind = "a non-negative integer" if integer else "a non-negative finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


def check_rtol(name: str, value, *, allow_none: bool = False, positive: bool = False):
    """A relative tolerance of a Krylov-type solver: a finite number in [0, 1) (``(0, 1)`` with
    ``positive``). ``rtol >= 1`` is met by ``x = 0`` before a single step, so it is refused."""
    if (value is None and allow_none) or isinstance(value, jax.core.Tracer):
        return
    x = None if isinstance(value, (bool, np.bool_, str, bytes)) else value
    try:
        x = float(x)
    except (TypeError, ValueError):
        x = None
    if x is None or not (np.isfinite(x) and (x > 0 if positive else x >= 0) and x < 1):
        kind = "a positive number below 1" if positive else "a non-negative number below 1"
        raise ValueError(f"{name} must be {kind} (a relative tolerance; one of 1 or more is met by x = 0 before a "
                         f"single step), got {value!r}.")


# --------------------------------------------------------------------------------------
# optax optimizers as hashable static fields
# --------------------------------------------------------------------------------------
class KeyedOptimizer:
    """An optax ``GradientTransformation`` that compares equal to any other optimizer with
    the same computation (same jaxpr and constants for the given parameter structure).

    Optax optimizers are closures, so ``optax.adam(1e-3)`` built twice gives two unequal
    objects and a jitted solve would recompile. `AbstractOptaxSolver.prepare` wraps the
    optimizer in this class, keyed on its traced computation, so the compiled solve is
    reused whenever the optimizer is the same computation.
    """

    def __init__(self, optimizer: optax.GradientTransformationExtraArgs, key: str):
        self.optimizer = optimizer
        self.key = key

    def init(self, params):
        return self.optimizer.init(params)

    def update(self, updates, state, params=None, **extra):
        return self.optimizer.update(updates, state, params, **extra)

    def __eq__(self, other):
        return isinstance(other, KeyedOptimizer) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"KeyedOptimizer({self.key[:12]})"


def _digest_closed_jaxpr(h, closed):
    h.update(str(closed.jaxpr).encode())
    for c in closed.consts:
        a = np.asarray(c)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def key_optimizer(optimizer, params) -> KeyedOptimizer:
    """Wrap ``optimizer`` for ``params`` (a pytree of arrays or ShapeDtypeStructs)."""
    if isinstance(optimizer, KeyedOptimizer):
        return optimizer
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax GradientTransformation such as optax.adam(1e-2), "
            f"got {type(optimizer).__name__}."
        )
    opt = optax.with_extra_args_support(optimizer)
    spec = jax.tree.map(lambda p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.result_type(p)), params)
    state_spec = jax.eval_shape(opt.init, spec)

    def probe_value_fn(p):
        return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p))

    def probe_update(g, s, p, v):
        return opt.update(g, s, p, value=v, grad=g, value_fn=probe_value_fn)

    h = hashlib.sha256()
    try:
        _digest_closed_jaxpr(h, jax.make_jaxpr(opt.init)(spec))
        v = jax.ShapeDtypeStruct((), jnp.result_type(*jax.tree.leaves(spec)))
        _digest_closed_jaxpr(h, jax.make_jaxpr(probe_update)(spec, state_spec, spec, v))
        key = h.hexdigest()
    except Exception:  # an exotic optimizer we cannot trace abstractly: key on identity
        key = f"id:{id(optimizer)}"
    return KeyedOptimizer(opt, key)


class AbstractOptaxSolver(AbstractSolver):
    """A solver that takes an optax ``GradientTransformation`` in its ``optimizer`` field."""

    optimizer: eqx.AbstractVar[Any]

    def prepare(self, problem):
        params = jax.eval_shape(self.init_params, problem)
        return eqx.tree_at(lambda s: s.optimizer, self, key_optimizer(self.optimizer, params))

    @abc.abstractmethod
    def init_params(self, problem): ...
