"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, HasResidual, LinearInverse, LinearSystem,
)
from . import blur, fields, flame, phantoms, poisson, tomography, tumor

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "HasResidual", "LinearInverse",
           "LinearSystem", "blur", "fields", "flame", "phantoms", "tumor", "poisson", "tomography"]
