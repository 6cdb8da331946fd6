"""Solvers: interchangeable methods, each an `AbstractSolver` run by `invsolve.solve`."""

from . import dcdm, diffusion
from .database import DatabaseQuery, Refined
from .dcdm import DCDM
from .diffusion import DPS, DiffusionMBIR, REDDiff, ScoreSDE
from .krylov import CG, PCG, Identity, Jacobi, AbstractPreconditioner
from .linear_ls import CGLS, ChambollePock, Landweber
from .map import GradientMAP
from .mcmc import NUTS
from .multigrid import Multigrid
from .pinn import PINN
from .pnp import PnPADMM, PnPPGD

__all__ = ["CG", "PCG", "Identity", "Jacobi", "AbstractPreconditioner", "Multigrid", "GradientMAP",
           "CGLS", "Landweber", "ChambollePock", "PINN", "DatabaseQuery", "Refined", "DCDM", "dcdm",
           "PnPPGD", "PnPADMM", "DPS", "REDDiff", "ScoreSDE", "DiffusionMBIR", "diffusion", "NUTS"]
