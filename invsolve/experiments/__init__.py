"""Named experiments: ``invsolve list`` / ``invsolve run NAME [--quick]``.

Each experiment is a function ``run(config, seed) -> Outcome`` with two typed, frozen
configurations: ``quick`` (CPU scale, under a minute on 2 cores) and ``full``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an experiment hands back to the CLI for saving."""

    solution: Any
    fields: dict  # name -> array, plotted side by side (truth / estimate / error)
    points: Any = None  # sensor positions to draw, (n, 2) grid coordinates
    paper: dict | None = None  # the paper's number(s) this run is compared with
    extra_metrics: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    run: Callable[[Any, int], Outcome]
    quick: Any
    full: Any
    x64: bool = True


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    REGISTRY[exp.name] = exp
    return exp


def get(name: str) -> Experiment:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown experiment {name!r}; known experiments: {known}")
    return REGISTRY[name]


from . import poisson as _poisson  # noqa: E402,F401  (registers its experiments)
from . import tomography as _tomography  # noqa: E402,F401
from . import flame as _flame  # noqa: E402,F401
from . import tumor as _tumor  # noqa: E402,F401
from . import dcdm as _dcdm  # noqa: E402,F401
from . import lpn as _lpn  # noqa: E402,F401
from . import diffusion as _diffusion  # noqa: E402,F401
from . import uq as _uq  # noqa: E402,F401
