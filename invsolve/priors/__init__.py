"""Priors (regularizers) ``R(x)``: the negative log prior density up to a constant.

A prior belongs to the solver (a modelling choice of the method), not to the problem.
What a prior can do is its class: `AbstractDensityPrior` (``R(x)``), `AbstractProxPrior`
(``R`` and ``prox``), `AbstractScorePrior` (a noise prediction ``eps(x, t)``), all under
`AbstractPrior`. Sums run over all grid cells in index units; for a 2D grid that makes the order-1 terms
independent of the resolution (the cell area cancels the squared spacing). Priors with a
``prox`` (`TV`, `L1`, the learned `LPN`) also serve the plug-and-play solvers.
"""

from ._classic import (L1, TV, AbstractDensityPrior, AbstractPrior, AbstractProxPrior, Tikhonov, divergence, gradient,
                       project_balls, soft_threshold, tv_iso)
from .lpn import LPN
from .score import VE, VP, AbstractScorePrior, GaussianMixture, ScorePrior

__all__ = ["AbstractPrior", "AbstractDensityPrior", "AbstractProxPrior", "Tikhonov", "TV", "L1", "LPN", "ScorePrior", "GaussianMixture", "AbstractScorePrior", "VP", "VE", "soft_threshold",
           "gradient", "divergence", "tv_iso", "project_balls"]
