"""Solvers: interchangeable methods, each an `AbstractSolver` run by `invsolve.solve`."""

from .krylov import CG, PCG, Identity, Jacobi, AbstractPreconditioner
from .linear_ls import CGLS, ChambollePock, Landweber
from .map import GradientMAP
from .multigrid import Multigrid

__all__ = ["CG", "PCG", "Identity", "Jacobi", "AbstractPreconditioner", "Multigrid", "GradientMAP",
           "CGLS", "Landweber", "ChambollePock"]
