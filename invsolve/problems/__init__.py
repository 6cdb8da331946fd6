"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, LinearInverse, LinearSystem,
)
from . import phantoms, poisson, tomography

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "LinearInverse",
           "LinearSystem", "phantoms", "poisson", "tomography"]
