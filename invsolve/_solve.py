"""`solve`: the one verb."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._driver import DeviceLoop, HostLoop, default_host_loop
from ._problem import AbstractProblem, is_key
from ._solution import Solution
from ._solver import AbstractSolver, check_nonneg


class ProblemSolverIncompatible(TypeError, ValueError):
    """The solver needs something of the problem that it does not have: a capability class,
    or a `Requirement` (a symmetric operator, an unknown of the prior's shape). A
    ``TypeError`` and a ``ValueError``: a wrong kind of problem, or a wrong shape."""


def _is_traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def solve(
    problem: AbstractProblem,
    solver: AbstractSolver,
    *,
    key: jax.Array | None = None,
    max_steps: int | None = None,
    driver: HostLoop | DeviceLoop | None = None,
    throw: bool = True,
    state=None,
) -> Solution:
    """Solve ``problem`` with ``solver``.

    Args:
        problem: physics + data (an `AbstractProblem`).
        solver: the method (an `AbstractSolver`); it names the capabilities it needs.
        key: a ``jax.random.key``; required only by stochastic solvers.
        max_steps: step budget; default the solver's own ``max_steps`` or its default.
        driver: `HostLoop` (default; progress bar, checkpoints) or `DeviceLoop` (one
            compiled loop; the default when called inside ``jit``/``vmap``).
        throw: raise `SolveError` if the result is not ``RESULTS.successful``.
        state: a solver state to continue from (e.g. ``previous_solution.state``).
    """
    max_steps = check_compatible(problem, solver, key=key, max_steps=max_steps)
    if driver is not None and not isinstance(driver, (HostLoop, DeviceLoop)):
        raise TypeError(f"solve: driver must be invsolve.HostLoop(...), invsolve.DeviceLoop() or None, got "
                        f"{type(driver).__name__} {driver!r}.")
    traced = _is_traced((problem, solver, key, state))
    if driver is None:
        driver = DeviceLoop() if traced else default_host_loop()
    elif traced and isinstance(driver, HostLoop):
        raise ValueError("solve: HostLoop cannot run inside jit/vmap/grad; use driver=DeviceLoop().")
    solver = solver.prepare(problem)
    if state is not None:
        _check_state(problem, solver, key, state)
    return driver.run(solver, problem, key, int(max_steps), state, throw)


def _check_state(problem, solver, key, state) -> None:
    """``state=`` must have the structure and shapes of this solver's state on this problem."""
    want = jax.eval_shape(solver.init, problem, key)
    w_leaves, w_def = jax.tree.flatten(want)
    h_leaves, h_def = jax.tree.flatten(state)
    why = None
    if w_def != h_def:
        why = f"its structure is {type(state).__name__} with {len(h_leaves)} arrays, expected {w_def}"
    else:
        for w, h in zip(w_leaves, h_leaves):
            if tuple(jnp.shape(h)) != tuple(w.shape):
                why = f"it holds an array of shape {tuple(jnp.shape(h))} where {tuple(w.shape)} is expected"
                break
    if why is not None:
        raise ValueError(
            f"solve: state= does not fit {type(solver).__name__} on this {type(problem).__name__}: {why}. Pass "
            "the state of an earlier solve of the same problem structure with the same solver "
            "(previous_solution.state), or leave state=None to start afresh."
        )


def _check_key(solver, key, *, batch: bool = False) -> None:
    """A typed JAX key (or a legacy uint32 ``PRNGKey``); with ``batch``, also an array of keys."""
    if key is None:
        if solver.needs_key:
            raise ValueError(f"{type(solver).__name__} is stochastic: pass key=jax.random.key(seed).")
        return
    if not is_key(key, batch=batch):
        dtype = getattr(key, "dtype", None)
        got = f"an array of dtype {dtype} and shape {jnp.shape(key)}" if dtype is not None else repr(key)
        what = "a JAX random key or an array of keys" if batch else "one JAX random key"
        raise TypeError(f"{'solve_batch' if batch else 'solve'}: key must be {what} such as "
                        f"jax.random.key(0), got {got}.")


MAX_STEPS = 2**31 - 1  # the step counter is an int32


def check_compatible(problem, solver, *, key, max_steps, batch: bool = False) -> int:
    """The checks `solve` and `solve_batch` make before tracing; returns the step budget."""
    if not isinstance(problem, AbstractProblem):
        raise TypeError(f"solve: problem must be an invsolve problem, got {type(problem).__name__}.")
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solve: solver must be an invsolve solver, got {type(solver).__name__}.")
    classes = [r for r in solver.requires if isinstance(r, type)]
    missing = [c.__name__ for c in classes if not isinstance(problem, c)]
    if missing:
        have = [c.__name__ for c in type(problem).__mro__ if c.__name__.startswith("Has")]
        raise ProblemSolverIncompatible(
            f"{type(solver).__name__} needs a problem with {', '.join(missing)}, but "
            f"{type(problem).__name__} has only {', '.join(have) or 'no capabilities'}."
        )
    for req in solver.requires:
        why = None if isinstance(req, type) else req.unmet(problem)
        if why is not None:
            raise ProblemSolverIncompatible(f"{type(solver).__name__} needs {why}.")
    _check_key(solver, key, batch=batch)
    if max_steps is None:
        max_steps = getattr(solver, "max_steps", None)
    if max_steps is None:
        max_steps = solver.default_max_steps(problem)
    check_nonneg("max_steps", max_steps, integer=True, allow_none=False)
    if int(max_steps) > MAX_STEPS:
        raise ValueError(f"max_steps must be at most 2**31 - 1 = {MAX_STEPS} (steps are counted in int32), got "
                         f"{max_steps!r}.")
    return int(max_steps)
