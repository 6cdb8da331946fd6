"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, LinearSystem,
)
from . import poisson

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "LinearSystem", "poisson"]
