"""Named experiments: ``invsolve list`` / ``invsolve run NAME [--quick]``.

Each experiment is a function ``run(config, seed) -> Outcome`` with two typed, frozen
configurations: ``quick`` (CPU scale, about a minute on 2 cores) and ``full``, and its pass
criteria as data (`Criterion`): `verdict` evaluates them on the run's metrics, and the
command line, ``metrics.json`` and REPORT.md show PASS or MISS for each.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any, Callable

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One pass criterion: ``metric op bound``.

    ``metric`` names a value of the run's metrics (``a.b`` reaches into a nested dict);
    ``op`` is ``<=``, ``<``, ``>=``, ``>``, or ``|<=`` (the absolute value ``<=``).
    ``quick`` and ``full`` are the thresholds at each setting (None: not checked there).
    With ``ref``, the bound is relative to another metric: ``ref + threshold``
    (``rel="+"``) or ``ref * threshold`` (``rel="*"``). ``source`` says where the
    threshold comes from: the paper's number (cited) or ours (the measured value and the
    margin)."""

    metric: str
    op: str
    quick: float | None
    full: float | None
    source: str
    ref: str | None = None
    rel: str = "+"

    def __post_init__(self):
        if self.op not in (*_OPS, "|<="):
            raise ValueError(f"Criterion op must be one of <=, <, >=, >, |<=; got {self.op!r}.")
        if self.rel not in ("+", "*"):
            raise ValueError(f"Criterion rel must be '+' or '*', got {self.rel!r}.")

    def rule(self, quick: bool) -> str:
        t = self.quick if quick else self.full
        lhs = f"|{self.metric}|" if self.op == "|<=" else self.metric
        op = "<=" if self.op == "|<=" else self.op
        rhs = f"{t:g}" if self.ref is None else (f"{self.ref} {'-' if t < 0 else '+'} {abs(t):g}" if self.rel == "+"
                                                  else f"{t:g} x {self.ref}")
        return f"{lhs} {op} {rhs}"

    def evaluate(self, metrics: dict, quick: bool) -> dict:
        t = self.quick if quick else self.full
        value, ref = _lookup(metrics, self.metric), _lookup(metrics, self.ref) if self.ref else None
        bound = t if self.ref is None else (None if ref is None else (ref + t if self.rel == "+" else ref * t))
        ok = value is not None and bound is not None and math.isfinite(value) and (
            abs(value) <= bound if self.op == "|<=" else _OPS[self.op](value, bound))
        rule = self.rule(quick) + (f" (= {bound:.4g})" if self.ref is not None and bound is not None else "")
        return {"metric": self.metric, "value": value, "op": self.op, "threshold": bound, "rule": rule,
                "pass": bool(ok), "source": self.source}


def _lookup(metrics: dict, name: str):
    """A metric by (dotted) name as a float; None when missing or not a number."""
    v: Any = metrics
    for part in name.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def verdict(exp: "Experiment", metrics: dict, quick: bool) -> dict:
    """``{"pass": bool, "criteria": [{metric, value, op, threshold, rule, pass, source}]}``: the
    experiment's criteria at the quick or the full setting, evaluated on ``metrics``."""
    rows = [c.evaluate(metrics, quick) for c in exp.criteria if (c.quick if quick else c.full) is not None]
    return {"pass": all(r["pass"] for r in rows), "criteria": rows}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an experiment hands back to the CLI for saving."""

    solution: Any
    fields: dict  # name -> array, one panel each in this order (truth / estimates / error / std)
    points: Any = None  # observation positions to draw: (n, 2) grid indices of 2D fields, or (n,) x of 1D ones
    paper: dict | None = None  # the paper's number(s) this run is compared with
    extra_metrics: dict = dataclasses.field(default_factory=dict)
    # --- how `invsolve.plot.save_figures` draws ``fields`` (all optional; generic defaults) ---
    labels: dict = dataclasses.field(default_factory=dict)  # field -> panel title (default: the key)
    # field -> "image" | "error" (diverging, centred at 0) | "std" | "segmentation" | "profile" | "samples"
    # (default: "error"/"std" in the key, 1D arrays "profile"; "samples": a histogram of draws)
    kinds: dict = dataclasses.field(default_factory=dict)
    shared: tuple | None = None  # groups of fields with one colour scale (default: all "image" fields)
    extent: Any = None  # physical box of 2D fields ((x0, x1), (y0, y1)), or {field: box}; 1D: (x0, x1)
    axes: tuple = ()  # axis labels with units, e.g. ("x [mm]", "y [mm]"); 1D: ("x [mm]",)
    layout: str = "xy"  # "xy": array axis 0 is x (right), axis 1 is y (up); "image": rows top-down
    units: dict = dataclasses.field(default_factory=dict)  # field -> colour-bar (1D: y-axis) label
    points_label: str = "observations"  # the legend entry of ``points``
    points_on: tuple | None = None  # the fields whose panels show ``points`` (default: the first panel)
    classes: tuple = ()  # names of segmentation classes 0, 1, 2, ... (0 drawn transparent)
    anatomy: Any = None  # 2D background (same layout) drawn under the segmentation fields
    profile_x: Any = None  # x of the 1D fields (default: their index); {field: x} for different grids
    overlays: dict = dataclasses.field(default_factory=dict)  # panel title -> 1D fields drawn on one axis
    panel_metrics: dict = dataclasses.field(default_factory=dict)  # field -> metric keys shown in its title
    truths: dict = dataclasses.field(default_factory=dict)  # scalar parameter -> true value (history lines)
    ncols: int | None = None  # columns of the panel grid (default: at most 4, rows as even as possible)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    run: Callable[[Any, int], Outcome]
    quick: Any
    full: Any
    x64: bool = True
    criteria: tuple[Criterion, ...] = ()

    def __post_init__(self):
        for setting in ("quick", "full"):
            if not any(getattr(c, setting) is not None for c in self.criteria):
                raise ValueError(f"experiment {self.name!r} declares no pass criterion at its {setting} setting.")


REGISTRY: dict[str, Experiment] = {}

# Wall seconds on 2 CPU cores (seed 0, cold cache; `invsolve reproduce --quick`): quick, and
# full where a full run was timed (None: not timed here). `invsolve list` and `show` print them.
RUNTIME_S: dict[str, tuple[float, float | None]] = {
    "ct-dps": (18, None), "ct-limited-angle": (10, None), "ct-reddiff": (6, None), "ct-score-sde": (7, None),
    "ct-sparse-view": (5, None), "ct3d-mbir": (17, None), "dcdm-poisson": (10, None),
    "dcdm-poisson-paper": (56, None), "flame-forward": (38, None), "flame-forward-sweep": (34, None),
    "flame-inverse": (32, None), "flame-kinetics-nuts": (43, None), "lpn-ct": (47, None), "lpn-deblur": (25, None),
    "lpn-laplacian": (141, 600), "poisson-inverse": (10, None), "poisson-kappa": (9, None),
    "poisson-kappa-nuts": (23, None), "tumor-database": (38, None), "tumor-gradient": (5, None),
    "tumor-nuts": (55, None), "ct-dds": (16, None), "ct-diffpir": (16, None), "ct-daps": (19, None),
    "ct-pnpdm": (18, None), "ct-stsl": (39, None), "ct3d-dds": (21, None), "darcy-daps": (128, None),
    "fwi-salt": (16, 1303), "ns-initial": (57, None), "scattering-born": (40, None), "scattering-ls": (46, None),
    "pinn-allen-cahn": (16, 1155), "pinn-advection": (7, 509), "pinn-kdv": (17, 1202),
    "cbct-fdk-vs-tv": (44, None),
}


def extras(name: str) -> tuple[str, ...]:
    """The optional dependencies (pyproject extras) an experiment needs: ``brain`` (nilearn,
    which ships the MNI152 templates) for the tumour and the MNI152-slice experiments."""
    brain = name.startswith(("tumor-", "ct3d-", "lpn-ct", "lpn-deblur")) or (
        name.startswith("ct-") and name not in ("ct-sparse-view", "ct-limited-angle"))
    return ("brain",) if brain else ()


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
from . import darcy as _darcy  # noqa: E402,F401
from . import seismic as _seismic  # noqa: E402,F401
from . import fluids as _fluids  # noqa: E402,F401
from . import scattering as _scattering  # noqa: E402,F401
from . import pinn as _pinn  # noqa: E402,F401
