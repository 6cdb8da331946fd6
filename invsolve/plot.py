"""Figures for solutions (matplotlib, written as PNG; no display needed)."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _as_image(a):
    a = np.asarray(a)
    return a[a.shape[0] // 2] if a.ndim == 3 else a  # middle slice of a volume


def plot_fields(path, fields: dict, *, points=None, title: str | None = None) -> None:
    """One panel per named 2D field (3D: the middle slice along the first axis; 1D: a line).

    ``points``: optional (n, 2) array of (row, col) positions drawn on the first panel.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(fields), figsize=(3.6 * len(fields), 3.3), squeeze=False)
    for ax, (name, a) in zip(axes[0], fields.items()):
        if np.ndim(a) == 1:  # a profile
            ax.plot(np.asarray(a))
            ax.set_title(name)
            ax.grid(alpha=0.3)
            continue
        img = _as_image(a)
        kw = {"cmap": "viridis"}
        if "error" in name:  # diverging map centred on zero
            m = float(np.nanmax(np.abs(img))) or 1.0
            kw = {"cmap": "RdBu_r", "vmin": -m, "vmax": m}
        im = ax.imshow(img.T, origin="lower", **kw)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    if points is not None and len(points):
        p = np.asarray(points)
        axes[0][0].plot(p[:, 0], p[:, 1], "w.", ms=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(path, history: dict, *, title: str | None = None) -> None:
    """Each history entry against the step number (a line per instance for a batch), log
    scale where positive."""
    plt = _plt()
    names = [k for k, v in history.items() if np.size(v)]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        v = np.asarray(history[name], float)
        rows = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v[None]  # a batch: one line per instance
        for r in rows:
            ax.plot(np.arange(1, r.size + 1), r, lw=1.0 if len(rows) == 1 else 0.6)
        if np.all(v[np.isfinite(v)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
