"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, HasResidual, LinearInverse, LinearSystem,
)
from . import blur, fields, flame, navier_stokes, pde, phantoms, poisson, scattering, tomography, tumor, wave

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "HasResidual", "LinearInverse",
           "LinearSystem", "blur", "fields", "flame", "navier_stokes", "pde", "phantoms", "tumor", "poisson",
           "scattering", "tomography", "wave"]
