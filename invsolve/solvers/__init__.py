"""Solvers: interchangeable methods, each an `AbstractSolver` run by `invsolve.solve`.

The Krylov solvers and preconditioners live on the linear-algebra floor (`invsolve.linalg`)
and are re-exported here.
"""

from . import dcdm, diffusion, samplers
from .database import DatabaseQuery, Refined
from .eki import EKI
from .dcdm import DCDM
from .diffusion import DPS, DiffusionMBIR, REDDiff, ScoreSDE
from ..linalg import AMG, CG, CGLS, PCG, AbstractPreconditioner, Identity, Jacobi, Multigrid
from .linear_ls import ChambollePock, Landweber
from .map import GradientMAP
from .mcmc import NUTS
from .pinn import PINN
from .pnp import PnPADMM, PnPPGD
from .samplers import DAPS, DDS, STSL, DiffPIR, PnPDM

__all__ = ["CG", "PCG", "Identity", "Jacobi", "AbstractPreconditioner", "Multigrid", "AMG", "GradientMAP",
           "CGLS", "Landweber", "ChambollePock", "PINN", "DatabaseQuery", "Refined", "DCDM", "dcdm",
           "PnPPGD", "PnPADMM", "DPS", "REDDiff", "ScoreSDE", "DiffusionMBIR", "diffusion", "NUTS",
           "DDS", "DiffPIR", "DAPS", "PnPDM", "STSL", "samplers", "EKI"]
