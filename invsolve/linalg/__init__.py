"""Linear algebra below the physics and the methods: Krylov solvers (CG, PCG, CGLS) and their
fixed-step kernels, preconditioners (Jacobi, geometric multigrid), the power-iteration norm
estimate, and `linear_solve`, the differentiable solve to call inside forward models.

This floor imports only the contract (``invsolve._*``): no physics (`invsolve.problems`) and
no method family (`invsolve.solvers`, which re-exports the solver objects defined here).
"""

from ._solve import linear_solve
from .krylov import CG, PCG, AbstractPreconditioner, Identity, Jacobi, cg_fixed, cgls_fixed, krylov_terminate
from .least_squares import CGLS, power_norm_sq
from .amg import AMG, SparseOperator
from .multigrid import Multigrid

__all__ = ["linear_solve", "CG", "PCG", "CGLS", "AbstractPreconditioner", "Identity", "Jacobi", "Multigrid",
           "AMG", "SparseOperator",
           "cg_fixed", "cgls_fixed", "krylov_terminate", "power_norm_sq"]
