"""`solve`: the one verb."""

from __future__ import annotations

import equinox as eqx
import jax

from ._driver import DeviceLoop, HostLoop
from ._problem import AbstractProblem
from ._solution import Solution
from ._solver import AbstractSolver, check_nonneg


class ProblemSolverIncompatible(TypeError):
    """The solver needs a capability that the problem does not have."""


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
    traced = _is_traced((problem, solver, key, state))
    if driver is None:
        driver = DeviceLoop() if traced else HostLoop()
    elif traced and isinstance(driver, HostLoop):
        raise ValueError("solve: HostLoop cannot run inside jit/vmap/grad; use driver=DeviceLoop().")
    solver = solver.prepare(problem)
    return driver.run(solver, problem, key, int(max_steps), state, throw)


def check_compatible(problem, solver, *, key, max_steps) -> int:
    """The checks `solve` and `solve_batch` make before tracing; returns the step budget."""
    if not isinstance(problem, AbstractProblem):
        raise TypeError(f"solve: problem must be an invsolve problem, got {type(problem).__name__}.")
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solve: solver must be an invsolve solver, got {type(solver).__name__}.")
    missing = [c.__name__ for c in solver.requires if not isinstance(problem, c)]
    if missing:
        have = [c.__name__ for c in type(problem).__mro__ if c.__name__.startswith("Has")]
        raise ProblemSolverIncompatible(
            f"{type(solver).__name__} needs a problem with {', '.join(missing)}, but "
            f"{type(problem).__name__} has only {', '.join(have) or 'no capabilities'}."
        )
    if solver.needs_key and key is None:
        raise ValueError(f"{type(solver).__name__} is stochastic: pass key=jax.random.key(seed).")
    if max_steps is None:
        max_steps = getattr(solver, "max_steps", None)
    if max_steps is None:
        max_steps = solver.default_max_steps(problem)
    check_nonneg("max_steps", max_steps, integer=True, allow_none=False)
    return int(max_steps)
