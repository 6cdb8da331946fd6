"""invsolve: scientific inverse problems in JAX.

One verb, ``invsolve.solve(problem, solver, key=...) -> Solution``; forward models in
`invsolve.problems`, methods in `invsolve.solvers`, priors in `invsolve.priors`.
"""

from . import distributed, linalg, metrics, optim, priors, problems, solvers
from ._batch import solve_batch
from ._cache import use_compilation_cache
from ._driver import DeviceLoop, HostLoop, Interrupted
from ._linop import AbstractLinearOperator, FunctionOperator, MatrixOperator
from ._problem import (
    AbstractProblem, ForwardProblem, GaussianNoise, HasForward, HasLinearOperator, HasResidual, HasSimulator, LinearInverse,
    LinearSystem, PoissonGaussianNoise, PoissonNoise,
)
from ._solution import RESULTS, Estimate, Solution, SolveError
from ._solve import ProblemSolverIncompatible, solve
from ._solver import AbstractOptaxSolver, AbstractSolver

__version__ = "0.1.0"

__all__ = [
    "solve", "solve_batch", "Solution", "RESULTS", "SolveError", "ProblemSolverIncompatible", "Estimate",
    "HostLoop", "DeviceLoop", "Interrupted", "AbstractSolver", "AbstractOptaxSolver", "AbstractProblem",
    "HasForward", "HasLinearOperator", "HasResidual", "HasSimulator", "LinearSystem", "LinearInverse", "GaussianNoise",
    "ForwardProblem", "PoissonNoise", "PoissonGaussianNoise", "AbstractLinearOperator", "MatrixOperator", "FunctionOperator",
    "problems", "solvers", "priors", "metrics", "linalg", "distributed", "optim", "use_compilation_cache",
]
