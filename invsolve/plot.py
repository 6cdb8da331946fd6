"""Figures of an ``invsolve run`` (matplotlib, written as PNG; no display needed).

One style for every experiment: panels in a grid of at most four columns with readable
titles and the run's metrics in them; truth and estimates on one colour scale, error maps
diverging and centred at 0, posterior standard deviations on their own sequential scale,
segmentations as discrete overlays on the anatomy, physical axes with units, observation
points marked with a legend entry; the solver's history in a grid with true-value lines for
fitted parameters. How an experiment's fields are drawn is described by the optional fields
of `invsolve.experiments.Outcome` (``labels``, ``kinds``, ``shared``, ``extent``, ``axes``,
``layout``, ``units``, ``points_label``, ``points_on``, ``classes``, ``anatomy``,
``profile_x``, ``overlays``, ``panel_metrics``, ``truths``, ``ncols``); `plot_fields` and
`plot_history` take the same descriptions as keywords.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

DPI = 110
PANEL_W, PANEL_H = 3.7, 3.2  # inches per panel (4 columns: ~1630 px wide at DPI)
MAX_COLS = 4
MIN_CHAIN = 20  # fewer samples (database neighbours, a few particles) are not drawn as chains
BAND_ABOVE = 5  # a history batch of more runs is drawn as its median and 10-90 % band
IMAGE_CMAP, ERROR_CMAP, STD_CMAP = "viridis", "RdBu_r", "magma"
CLASS_COLOURS = ("#ffd23f", "#e4572e", "#3bceac", "#5b5f97", "#ee4266")  # classes 1, 2, ... (0: clear)
FONT = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------
# titles
# --------------------------------------------------------------------------------------
_METRIC_NAMES = (("psnr", "PSNR"), ("ssim", "SSIM"), ("rel_l2", "rel. error"), ("rel_err", "rel. error"),
                 ("dice_edema", "Dice oedema"), ("dice_core", "Dice core"), ("dice", "Dice"),
                 ("coverage", "90% coverage"), ("iters", "iterations"), ("residual", "residual"),
                 ("z_error", "z-gradient RMSE"), ("chi2", "χ²"))


def metric_text(label: str, value) -> str:
    """``"PSNR 31.20 dB"``, ``"SSIM 0.934"``, ``"rel. error 5.8e-02"``, ``"Dice 0.97"``: a
    metric formatted by what its name says it is."""
    if value is None:
        return f"{label} n/a"
    v = float(value)
    low = label.lower()
    if not math.isfinite(v):
        return f"{label} {v}"
    if "psnr" in low:
        return f"{label} {v:.2f} dB"
    if "ssim" in low or "dice" in low or "coverage" in low:
        return f"{label} {v:.3f}"
    if float(v).is_integer() and abs(v) < 1e6:
        return f"{label} {int(v)}"
    return f"{label} {v:.2g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{label} {v:.3g}"


def _metric_label(key: str) -> str:
    for part, name in _METRIC_NAMES:
        if part in key.lower():
            return name
    return key.replace("_", " ")


def _lookup(metrics: dict, key: str):
    v = metrics
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) else None


def _metric_line(spec, metrics: dict) -> str:
    """``spec``: metric keys of ``metrics`` or ``(label, key_or_number)`` pairs."""
    parts = []
    for item in spec or ():
        if isinstance(item, str):
            label, value = _metric_label(item), _lookup(metrics, item)
        else:
            label, value = item
            value = _lookup(metrics, value) if isinstance(value, str) else value
        if value is not None:
            parts.append(metric_text(label, value))
    return ", ".join(parts)


def _wrap(line: str, width: int = 46) -> str:
    """A metrics line broken at its commas to fit over one panel."""
    rows, cur = [], ""
    for part in line.split(", "):
        if cur and len(cur) + 2 + len(part) > width:
            rows.append(cur)
            cur = part
        else:
            cur = f"{cur}, {part}" if cur else part
    return "\n".join([*rows, cur])


def pretty(key: str) -> str:
    """A raw key as a title: ``"grad_norm"`` -> ``"grad norm"``, known names spelled out."""
    known = {"loss": "loss", "grad_norm": "gradient norm", "acceptance": "acceptance rate",
             "divergent": "divergent transitions (cumulative)", "n_leapfrog": "leapfrog steps",
             "log_density": "log density", "residual": "residual", "lam": "λ [W/m/K]",
             "Ea": "Ea [J/mol]", "s_L": "s_L [m/s]", "rho": "ρ [1/day]", "D_white": "D_white [mm²/day]",
             "bc_T": "inlet T condition", "bc_gradT": "inlet dT/dx condition", "obs_T": "T data misfit",
             "obs_u": "u data misfit", "warmup": "warm-up loss", "lr": "learning rate"}
    return known.get(key, key.replace("_", " "))


# --------------------------------------------------------------------------------------
# the fields figure
# --------------------------------------------------------------------------------------
def _kind(name, a, kinds):
    if name in kinds:
        return kinds[name]
    if np.ndim(a) == 1:
        return "profile"
    low = name.lower()
    if "error" in low or " - " in low or "−" in low:
        return "error"
    if "std" in low:
        return "std"
    return "image"


def _as_image(a):
    a = np.asarray(a, float)
    while a.ndim > 2:  # the middle slice of a volume
        a = a[a.shape[0] // 2]
    return a


def _integer(img):
    fin = img[np.isfinite(img)]
    return bool(fin.size) and np.allclose(fin, np.rint(fin)) and float(np.max(np.abs(fin), initial=0)) <= 5


def _box(name, a, extent, layout):
    """(x0, x1, y0, y1) of a 2D field in plot coordinates."""
    box = extent.get(name) if isinstance(extent, dict) else extent
    n0, n1 = a.shape
    if box is None:  # grid indices
        return (-0.5, n0 - 0.5, -0.5, n1 - 0.5) if layout == "xy" else (-0.5, n1 - 0.5, n0 - 0.5, -0.5)
    (x0, x1), (y0, y1) = box
    return (x0, x1, y0, y1)


def _to_plot(points, a, box, layout):
    """Grid indices (i, j) of ``a`` -> plot coordinates (cell centres)."""
    p = np.asarray(points, float).reshape(-1, 2)
    n0, n1 = a.shape
    x0, x1, y0, y1 = box
    if layout == "xy":  # axis 0 along x, axis 1 along y
        return x0 + (p[:, 0] + 0.5) * (x1 - x0) / n0, y0 + (p[:, 1] + 0.5) * (y1 - y0) / n1
    # image: rows (axis 0) from the top (y1) down, columns along x
    return x0 + (p[:, 1] + 0.5) * (x1 - x0) / n1, y1 - (p[:, 0] + 0.5) * (y1 - y0) / n0


def _scales(fields, kinds, shared):
    """{field: (vmin, vmax)} of every 2D image-like field; groups share one range."""
    img = {k: _as_image(v) for k, v in fields.items() if np.ndim(v) >= 2}
    if shared is None:
        shared = (tuple(k for k in img if _kind(k, img[k], kinds) == "image"),)
    out = {}
    groups = [tuple(g) for g in shared if g]
    grouped = {k for g in groups for k in g}
    groups += [(k,) for k in img if k not in grouped]
    errs = tuple(k for k in img if _kind(k, img[k], kinds) == "error")
    stds = tuple(k for k in img if _kind(k, img[k], kinds) == "std")
    for g in groups:
        g = [k for k in g if k in img]
        if not g:
            continue
        kind = _kind(g[0], img[g[0]], kinds)
        if kind == "error":  # errors among themselves: one symmetric range
            g = [k for k in errs if k in g] or g
        vals = np.concatenate([img[k][np.isfinite(img[k])].ravel() for k in g]) if g else np.zeros(1)
        vals = vals if vals.size else np.zeros(1)
        if kind == "error":
            m = float(np.max(np.abs(vals))) or 1.0
            rng = (-m, m)
        elif kind == "std":
            rng = (0.0, float(np.max(vals)) or 1.0)
        else:  # the range of the group's first field (the truth): estimates beyond it are clipped, flagged
            ref = img[g[0]][np.isfinite(img[g[0]])]
            ref = ref if ref.size else vals
            lo, hi = float(np.min(ref)), float(np.max(ref))
            rng = (lo, hi if hi > lo else lo + 1.0)
        for k in g:
            out[k] = rng
    # every error map on one symmetric scale, every std map on one scale, unless grouped otherwise
    for same, kind in ((errs, "error"), (stds, "std")):
        free = [k for k in same if k not in grouped]
        if len(free) > 1:
            m = max(abs(out[k][0]) if kind == "error" else 0.0 for k in free)
            m = max(m, max(out[k][1] for k in free))
            for k in free:
                out[k] = (-m, m) if kind == "error" else (0.0, m)
    return out


def _discrete(n_classes, plt):
    from matplotlib.colors import BoundaryNorm, ListedColormap

    colours = ["none"] + [CLASS_COLOURS[(i - 1) % len(CLASS_COLOURS)] for i in range(1, n_classes)]
    return ListedColormap(colours), BoundaryNorm(np.arange(n_classes + 1) - 0.5, n_classes)


def _draw_points(ax, name, a, box, layout, points, label, kind):
    p = np.asarray(points, float)
    if kind == "profile" or p.ndim == 1:
        if p.ndim == 2 and p.shape[1] == 2:
            ax.plot(p[:, 0], p[:, 1], "o", ms=4.5, mfc="white", mec="black", mew=1.0, label=label, zorder=5)
        else:
            for i, x in enumerate(p.ravel()):
                ax.axvline(x, color="0.4", lw=0.8, ls=":", label=label if i == 0 else None)
        return
    x, y = _to_plot(p, a, box, layout)
    ax.plot(x, y, "o", ms=3.2, mfc="white", mec="black", mew=0.6, label=label, zorder=5, ls="none")


def _panel_order(fields, overlays):
    """Panel list: (title, [field names]) in field order, an overlay at its first member."""
    member = {k: t for t, ks in overlays.items() for k in ks}
    panels, seen = [], set()
    for k in fields:
        if k in member:
            t = member[k]
            if t not in seen:
                seen.add(t)
                panels.append((t, [m for m in overlays[t] if m in fields]))
        else:
            panels.append((k, [k]))
    return panels


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """(rows, columns) of ``n`` panels: at most `MAX_COLS` columns, rows as even as possible."""
    if ncols is None:
        ncols = n if n <= MAX_COLS else math.ceil(n / math.ceil(n / MAX_COLS))
    ncols = max(1, min(ncols, n, MAX_COLS))
    return math.ceil(n / ncols), ncols


def fields_figure(fields: dict, *, points=None, title: str | None = None, metrics: dict | None = None,
                labels=None, kinds=None, shared=None, extent=None, axes=(), layout: str = "xy", units=None,
                points_label: str = "observations", points_on=None, classes=(), anatomy=None, profile_x=None,
                overlays=None, panel_metrics=None, truths=None, ncols: int | None = None):
    """The matplotlib figure of ``fields`` (name -> array; 3D: the middle slice along the
    first axis) as panels in a grid; the keywords are `Outcome`'s figure fields (see there).
    None when there is nothing to draw."""
    plt = _plt()
    labels, kinds, units = dict(labels or {}), dict(kinds or {}), dict(units or {})
    overlays, panel_metrics, truths = dict(overlays or {}), dict(panel_metrics or {}), dict(truths or {})
    metrics = metrics or {}
    if layout not in ("xy", "image"):
        raise ValueError(f"layout must be 'xy' or 'image', got {layout!r}.")
    fields = {k: np.asarray(v) for k, v in fields.items() if v is not None and np.size(v)}
    panels = _panel_order(fields, overlays)
    if not panels:
        return None
    scales = _scales(fields, kinds, shared)
    rows, cols = grid_shape(len(panels), ncols)
    with plt.rc_context(FONT):
        fig, grid = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows + (0.45 if title else 0)),
                                 squeeze=False)
        flat = list(grid.ravel())
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        first = panels[0][0]
        show_points = set(points_on) if points_on is not None else {first}
        for ax, (ptitle, names) in zip(flat, panels):
            name = names[0]
            a = fields[name]
            kind = _kind(name, a, kinds)
            key = ptitle if len(names) > 1 else name
            ax_labels = axes.get(key, ()) if isinstance(axes, dict) else tuple(axes or ())
            line = _metric_line(panel_metrics.get(ptitle if len(names) > 1 else name), metrics)
            head = labels.get(ptitle, ptitle) if len(names) > 1 else labels.get(name, name)
            if kind == "error" and np.ndim(a) >= 2 and _integer(_as_image(a)):
                n_diff = int(np.sum(_as_image(a) != 0))
                line = ", ".join(filter(None, (line, f"{n_diff} cell{'s' if n_diff != 1 else ''} differ"
                                                     f"{'s' if n_diff == 1 else ''}")))
            ax.set_title(head + (f"\n{_wrap(line)}" if line else ""))
            box = None
            if kind in ("profile",):
                _draw_profiles(ax, names, fields, labels, profile_x, truths)
                if ax_labels:
                    ax.set_xlabel(ax_labels[0])
                ylab = units.get(ptitle if len(names) > 1 else name)
                if ylab:
                    ax.set_ylabel(ylab)
            elif kind == "samples":
                _draw_samples(ax, a, truths.get(name), units.get(name))
            else:
                img = _as_image(a)
                box = _box(name, img, extent, layout)
                _draw_image(fig, ax, name, img, kind, box, layout, scales, units, classes, anatomy, plt)
                if ax_labels:
                    ax.set_xlabel(ax_labels[0])
                    if len(ax_labels) > 1:
                        ax.set_ylabel(ax_labels[1])
                if extent is None or (isinstance(extent, dict) and name not in extent):
                    ax.set_xticks([])
                    ax.set_yticks([])
            if points is not None and np.size(points) and ptitle in show_points | {n for n in names if n in show_points}:
                _draw_points(ax, name, None if box is None else _as_image(a), box, layout, points, points_label, kind)
            handles, _ = ax.get_legend_handles_labels()
            if handles and not ax.get_legend():
                ax.legend(loc="best", framealpha=0.85)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def _save(fig, path):
    if fig is None:
        return None
    plt = _plt()
    try:
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return str(path)


def plot_fields(path, fields: dict, **kw) -> str | None:
    """Write `fields_figure` ``(fields, **kw)`` to ``path``; returns ``path``, or None (and
    writes nothing) when there is nothing to draw."""
    return _save(fields_figure(fields, **kw), path)


def _draw_image(fig, ax, name, img, kind, box, layout, scales, units, classes, anatomy, plt):
    x0, x1, y0, y1 = box
    origin = "lower" if layout == "xy" else "upper"
    data = img.T if layout == "xy" else img
    ext = (x0, x1, y0, y1) if layout == "xy" else (x0, x1, min(y0, y1), max(y0, y1))
    if layout == "image" and y0 > y1:  # index box (rows downward): keep matplotlib's image convention
        ext = (x0, x1, y0, y1)
    ratio = abs((ext[3] - ext[2]) / (ext[1] - ext[0])) if ext[1] != ext[0] else 1.0
    aspect = "equal" if 0.25 <= ratio <= 4 else "auto"
    if kind == "segmentation":
        n = max(len(classes), int(np.nanmax(img)) + 1, 2)
        if anatomy is not None:
            an = _as_image(anatomy)
            ax.imshow(an.T if layout == "xy" else an, origin=origin, extent=ext, cmap="gray", aspect=aspect,
                      interpolation="nearest")
        cmap, norm = _discrete(n, plt)
        ax.imshow(np.rint(data), origin=origin, extent=ext, cmap=cmap, norm=norm, aspect=aspect,
                  interpolation="nearest", alpha=0.85)
        from matplotlib.patches import Patch

        names = list(classes) + [f"class {i}" for i in range(len(classes), n)]
        handles = [Patch(color=cmap(i), label=names[i]) for i in range(1, n) if names[i]]
        if handles:
            ax.legend(handles=handles, loc="lower right", framealpha=0.85)
        return
    vmin, vmax = scales.get(name, (None, None))
    if kind == "error":
        cmap = ERROR_CMAP
        if _integer(img) and vmax is not None:
            from matplotlib.colors import BoundaryNorm

            m = max(int(round(vmax)), 1)  # integer differences (segmentations): discrete levels
            im = ax.imshow(data, origin=origin, extent=ext, aspect=aspect, interpolation="nearest",
                           cmap=plt.get_cmap(ERROR_CMAP, 2 * m + 1), norm=BoundaryNorm(np.arange(-m, m + 2) - 0.5,
                                                                                       2 * m + 1))
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, ticks=np.arange(-m, m + 1))
            if units.get(name):
                cb.set_label(units[name])
            return
    else:
        cmap = STD_CMAP if kind == "std" else IMAGE_CMAP
    im = ax.imshow(data, origin=origin, extent=ext, cmap=cmap, vmin=vmin, vmax=vmax, aspect=aspect,
                   interpolation="nearest")
    fin = img[np.isfinite(img)]
    over = fin.size and vmax is not None and fin.max() > vmax + 1e-12
    under = fin.size and vmin is not None and fin.min() < vmin - 1e-12
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03,
                      extend={(1, 1): "both", (1, 0): "max", (0, 1): "min"}.get((int(bool(over)), int(bool(under))),
                                                                                "neither"))
    if units.get(name):
        cb.set_label(units[name])


def _draw_profiles(ax, names, fields, labels, profile_x, truths):
    for i, k in enumerate(names):
        y = np.asarray(fields[k], float).ravel()
        px = profile_x.get(k) if isinstance(profile_x, dict) else profile_x
        x = np.arange(y.size) if px is None else np.asarray(px, float).ravel()
        if len(names) > 1 and i == 0:  # the reference of an overlay
            ax.plot(x, y, color="black", lw=2.2, alpha=0.55, label=labels.get(k, k))
        else:
            ax.plot(x, y, lw=1.3, label=labels.get(k, k) if len(names) > 1 else None)
    if len(names) == 1 and "error" in names[0].lower():
        ax.axhline(0.0, color="0.5", lw=0.8)
    ax.grid(alpha=0.3)


def _draw_samples(ax, draws, truth, unit):
    d = np.asarray(draws, float).ravel()
    d = d[np.isfinite(d)]
    counts, _, _ = ax.hist(d, bins=30, color="#5b8fd6", alpha=0.8, label=f"posterior draws ({d.size})")
    ax.set_ylim(0, 1.45 * max(float(np.max(counts, initial=0)), 1.0))  # room for the legend
    if d.size:
        ax.axvline(float(np.mean(d)), color="#1f3b73", lw=1.5, label=f"mean {np.mean(d):.4g} ± {np.std(d):.2g}")
    if truth is not None:
        ax.axvline(float(truth), color="#d62728", lw=1.6, ls="--", label=f"true value {float(truth):.4g}")
    if unit:
        ax.set_xlabel(unit)
    ax.set_ylabel("draws")
    ax.grid(alpha=0.3)


# --------------------------------------------------------------------------------------
# the history figure
# --------------------------------------------------------------------------------------
def _trim(v):
    """Drop the trailing all-NaN steps (a run that stopped early)."""
    v = np.asarray(v, float)
    rows = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v[None]
    ok = np.isfinite(rows).any(axis=0)
    if not ok.any():
        return v[..., :0]
    return v[..., : int(np.nonzero(ok)[0][-1]) + 1]


def _history_panels(history, samples, truths):
    """[(key, values (instances, steps), true value or None, x label)] with data in them."""
    out = []
    history = dict(history or {})
    order = sorted(history, key=lambda k: (k != "loss", k in ("divergent", "n_leapfrog")))
    for k in order:
        v = history[k]
        if v is None or not np.size(v):
            continue
        v = _trim(v)
        if not np.size(v) or not np.isfinite(v).any():
            continue
        v = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v[None]
        if k == "divergent":
            v = np.nancumsum(v, axis=-1)
        out.append((k, v, truths.get(k), "step"))
    for k, v in (samples or {}).items() if isinstance(samples, dict) else ():
        v = np.asarray(v, float)
        if v.ndim == 1 and v.size > 1:  # one scalar parameter's chain
            out.append((k, v[None], truths.get(k), "draw"))
    return out


def plot_history(path, history: dict, **kw) -> str | None:
    """Write `history_figure` ``(history, **kw)`` to ``path`` and return ``path``; with
    nothing to draw, write nothing and return None."""
    return _save(history_figure(history, **kw), path)


def history_figure(history: dict, *, title: str | None = None, truths=None, labels=None, samples=None,
                   ncols: int | None = None):
    """Each history entry against the step (one thin line per instance of a batch; log
    scale for positive series over more than a decade), and each scalar parameter's chain
    of ``samples``; ``truths`` (name -> value) draws the true value as a dashed line.
    None when there is nothing to draw."""
    truths, labels = dict(truths or {}), dict(labels or {})
    panels = _history_panels(history, samples, truths)
    if not panels:
        return None
    plt = _plt()
    rows, cols = grid_shape(len(panels), ncols)
    with plt.rc_context(FONT):
        fig, grid = plt.subplots(rows, cols, figsize=(PANEL_W * cols, 2.9 * rows + (0.45 if title else 0)),
                                 squeeze=False)
        flat = list(grid.ravel())
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        for ax, (k, v, truth, xlabel) in zip(flat, panels):
            many = v.shape[0] > 1
            x = np.arange(1, v.shape[-1] + 1)
            if v.shape[0] > BAND_ABOVE:  # a large batch: the median and the 10-90 % band over its runs
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of early stops
                    lo, med, hi = np.nanpercentile(v, [10, 50, 90], axis=0)
                ax.fill_between(x, lo, hi, color="#5b8fd6", alpha=0.35, lw=0, label="10-90 % of runs")
                ax.plot(x, med, color="#1f3b73", lw=1.1, label="median")
                ax.legend(loc="best", framealpha=0.85)
            else:
                for r in v:
                    ax.plot(x, r, lw=0.6 if many else 1.1, alpha=0.6 if many else 1.0)
            fin = v[np.isfinite(v)]
            if fin.size and np.all(fin > 0) and fin.max() / fin.min() > 100 and truth is None:
                ax.set_yscale("log")
            if truth is not None:
                ax.axhline(float(truth), color="#d62728", ls="--", lw=1.4, label=f"true value {float(truth):.4g}")
                ax.legend(loc="best", framealpha=0.85)
            head = labels.get(k, pretty(k))
            if xlabel == "draw":
                head += " (posterior draws)"
            if many:
                head += f" ({v.shape[0]} runs)"
            ax.set_title(head)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------
FIGURE_FIELDS = ("labels", "kinds", "shared", "extent", "axes", "layout", "units", "points_label", "points_on",
                 "classes", "anatomy", "profile_x", "overlays", "panel_metrics", "truths", "ncols")


def _samples(sol):
    s = getattr(sol, "samples", None)
    if not isinstance(s, dict):
        return None
    out = {}
    for k, v in s.items():
        v = np.asarray(v)
        if v.ndim == 0 or v.shape[0] < MIN_CHAIN:  # a few neighbours or particles: no chain to draw
            continue
        if v.ndim == 1:
            out[k] = v
        elif v.ndim == 2 and v.shape[1] <= 3:  # a small vector (a seed position): one chain per component
            for i in range(v.shape[1]):
                out[f"{k}[{i}]"] = v[:, i]
    return out


def save_figures(out, exp, outcome, sol, record) -> list[str]:
    """The figures of one ``invsolve run`` in ``out``: ``fields.png`` (the outcome's fields,
    drawn as its figure fields describe, metrics from ``record["metrics"]``) and
    ``history.png`` (the solver's per-step history and the chains of scalar parameters).
    A run without a history (e.g. a database query) writes no ``history.png`` and says so on
    stderr. Returns the paths written."""
    meta = {k: getattr(outcome, k) for k in FIGURE_FIELDS if hasattr(outcome, k)}
    setting = "quick" if record.get("quick") else "full"
    verdict = record.get("verdict", {})
    head = f"{exp.name} ({setting}, seed {record.get('seed', 0)})"
    if verdict.get("criteria"):
        head += f": {'PASS' if verdict.get('pass') else 'MISS'}"
    written = []
    p = plot_fields(os.path.join(out, "fields.png"), outcome.fields, points=outcome.points, title=head,
                    metrics=record.get("metrics", {}), **meta)
    if p:
        written.append(p)
    hist_path = os.path.join(out, "history.png")
    p = plot_history(hist_path, getattr(sol, "history", None) or {}, title=f"{exp.name}: solver history",
                     truths=meta.get("truths"), labels=meta.get("labels"), samples=_samples(sol))
    if p:
        written.append(p)
    else:
        if os.path.exists(hist_path):  # a stale figure of an earlier run would mislead
            os.remove(hist_path)
        print(f"invsolve: {exp.name}: the solver records no per-step history; history.png not written",
              file=sys.stderr)
    return written
