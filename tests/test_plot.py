"""The figures of `invsolve.plot`: one style for every experiment (fast; no solver runs)."""

from __future__ import annotations

import os
import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from invsolve import plot  # noqa: E402
from invsolve.experiments import Outcome  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fields(seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.0, 1.0, (16, 12))
    est = truth + 0.3 * rng.standard_normal(truth.shape)  # an estimate outside the truth's range
    return {"truth": truth, "estimate": est, "error": est - truth}


def _panel(fig, title_start):
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith(title_start)]
    assert len(axes) == 1, [ax.get_title() for ax in fig.axes]
    return axes[0]


def test_truth_and_estimate_share_one_colour_scale_and_error_is_diverging_about_zero():
    f = _fields()
    fig = plot.fields_figure(f)
    truth, est, err = (_panel(fig, k).images[0] for k in ("truth", "estimate", "error"))
    assert truth.get_clim() == est.get_clim()
    assert truth.get_clim() == pytest.approx((f["truth"].min(), f["truth"].max()))  # the truth's range
    assert _panel(fig, "estimate").images[0].colorbar.extend == "both"  # the clipped estimate is flagged
    m = np.abs(f["error"]).max()
    assert err.get_clim() == pytest.approx((-m, m))
    assert err.get_cmap().name == plot.ERROR_CMAP and truth.get_cmap().name != plot.ERROR_CMAP


def test_explicit_groups_keep_unrelated_fields_on_their_own_scales():
    f = {"rhs": np.linspace(-50, 50, 64).reshape(8, 8), "solution": np.linspace(0, 1, 64).reshape(8, 8)}
    fig = plot.fields_figure(f, shared=())
    assert _panel(fig, "rhs").images[0].get_clim() == pytest.approx((-50, 50))
    assert _panel(fig, "solution").images[0].get_clim() == pytest.approx((0, 1))


def test_std_maps_start_at_zero_with_a_sequential_map():
    f = {"mean": np.ones((8, 8)), "posterior std": np.full((8, 8), 0.2) + np.eye(8) * 0.1}
    im = _panel(plot.fields_figure(f), "posterior std").images[0]
    assert im.get_clim() == pytest.approx((0.0, 0.3))
    assert im.get_cmap().name == plot.STD_CMAP


def test_metrics_and_labels_make_the_titles_not_raw_keys():
    f = _fields()
    fig = plot.fields_figure(f, labels={"estimate": "TV-MAP"}, metrics={"psnr_tv": 31.2, "ssim_tv": 0.9342},
                             panel_metrics={"estimate": ("psnr_tv", "ssim_tv"), "error": (("rel. error", 0.058),)})
    assert _panel(fig, "TV-MAP").get_title() == "TV-MAP\nPSNR 31.20 dB, SSIM 0.934"
    assert "rel. error 0.058" in _panel(fig, "error").get_title()


def test_observation_points_sit_on_cell_centres_in_physical_units_with_a_legend_entry():
    f = _fields()
    pts = np.array([[0, 0], [15, 11], [4, 6]])  # grid indices (axis 0, axis 1)
    fig = plot.fields_figure(f, points=pts, points_label="sensors (3)", extent=((0, 1.6), (0, 2.4)),
                             axes=("x [mm]", "y [mm]"))
    ax = _panel(fig, "truth")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sensors (3)"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "sensors (3)"]
    np.testing.assert_allclose(line.get_xdata(), [0.05, 1.55, 0.45])
    np.testing.assert_allclose(line.get_ydata(), [0.1, 2.3, 1.3])
    assert ax.get_xlabel() == "x [mm]" and ax.get_ylabel() == "y [mm]"
    assert ax.images[0].get_extent() == pytest.approx([0, 1.6, 0, 2.4])
    assert not _panel(fig, "estimate").get_lines()  # only where asked (default: the first panel)


def test_image_layout_maps_rows_downward():
    f = {"truth": np.zeros((10, 20))}
    fig = plot.fields_figure(f, points=np.array([[0, 0]]), layout="image", extent=((0, 20), (0, 10)))
    ax = _panel(fig, "truth")
    (line,) = ax.get_lines()
    assert (line.get_xdata()[0], line.get_ydata()[0]) == pytest.approx((0.5, 9.5))  # row 0 at the top
    assert ax.images[0].get_array().shape == (10, 20)


def test_segmentation_is_drawn_with_discrete_classes_over_the_anatomy():
    seg = np.zeros((20, 20))
    seg[5:15, 5:15] = 1
    seg[8:12, 8:12] = 2
    tissue = np.random.default_rng(1).uniform(size=(20, 20))
    fig = plot.fields_figure({"observed": seg}, kinds={"observed": "segmentation"}, classes=("", "oedema", "core"),
                             anatomy=tissue)
    ax = _panel(fig, "observed")
    under, over = ax.images
    assert under.get_cmap().name == "gray"
    np.testing.assert_allclose(under.get_array(), tissue.T)
    assert isinstance(over.get_cmap(), ListedColormap) and isinstance(over.norm, BoundaryNorm)
    assert over.get_cmap().N == 3 and over.get_cmap()(0)[3] == 0.0  # background transparent
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oedema", "core"]


def test_class_differences_are_discrete_and_centred():
    diff = np.zeros((6, 6))
    diff[1, 1], diff[2, 2] = 1, -2
    im = _panel(plot.fields_figure({"estimate - observed": diff}), "estimate").images[0]
    assert isinstance(im.norm, BoundaryNorm)
    assert im.norm.vmin == pytest.approx(-2.5) and im.norm.vmax == pytest.approx(2.5)


def test_profiles_overlay_on_one_axis_with_x_in_mm_and_data_points():
    x = np.linspace(0, 1.5, 50)
    fields = {"ref": np.tanh(x), "pinn": np.tanh(x) + 0.01, "error": 0.01 * np.ones(50)}
    fig = plot.fields_figure(fields, overlays={"temperature": ("ref", "pinn")}, profile_x=x * 1e3,
                             axes=("x [mm]",), points=np.array([[100.0, 0.2], [900.0, 0.7]]),
                             points_label="data", units={"temperature": "T [K]"})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["temperature", "error"]
    ax = visible[0]
    assert ax.get_xlabel() == "x [mm]" and ax.get_ylabel() == "T [K]"
    assert ax.get_lines()[0].get_xdata()[-1] == pytest.approx(1500.0)
    assert {"ref", "pinn", "data"} <= {t.get_text() for t in ax.get_legend().get_texts()}


def test_panels_wrap_into_a_grid_of_bounded_width(tmp_path):
    f = {f"field {i}": np.random.default_rng(i).uniform(size=(32, 32)) for i in range(7)}
    path = plot.plot_fields(tmp_path / "f.png", f, title="seven")
    h, w = plt.imread(path).shape[:2]
    assert w <= 2000 and h >= 0.4 * w  # two rows, not a 3000 px strip
    assert plot.grid_shape(7) == (2, 4) and plot.grid_shape(6) == (2, 3) and plot.grid_shape(3) == (1, 3)


def test_history_grid_has_readable_titles_and_true_value_lines():
    hist = {"loss": np.geomspace(1e3, 1.0, 40), "grad_norm": np.geomspace(10, 0.1, 40), "s_L": np.linspace(0.4, 0.2, 40),
            "divergent": np.zeros(40)}
    fig = plot.history_figure(hist, truths={"s_L": 0.21})
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[0] == "loss" and "gradient norm" in titles and "s_L [m/s]" in titles
    ax = _panel(fig, "s_L")
    truth_lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("true value")]
    assert truth_lines and truth_lines[0].get_ydata()[0] == pytest.approx(0.21)
    assert _panel(fig, "loss").get_yscale() == "log"


def test_history_trims_the_unused_tail_of_a_run_that_stopped_early():
    v = np.r_[np.linspace(5, 1, 10), np.full(30, np.nan)]
    fig = plot.history_figure({"loss": v})
    assert fig.axes[0].get_lines()[0].get_xdata()[-1] == 10


def _record():
    return {"metrics": {"rel_l2": 0.05}, "verdict": {"pass": True, "criteria": [{}]}, "config": {}, "quick": True,
            "seed": 0}


def test_save_figures_writes_no_empty_history(tmp_path, capsys):
    (tmp_path / "history.png").write_bytes(b"stale")  # from an earlier run
    exp = types.SimpleNamespace(name="db-query")
    sol = types.SimpleNamespace(history={"loss": np.zeros((0,))}, samples={"rho": np.ones(5)})  # 5 neighbours
    written = plot.save_figures(str(tmp_path), exp, Outcome(sol, _fields()), sol, _record())
    assert [os.path.basename(p) for p in written] == ["fields.png"]
    assert not (tmp_path / "history.png").exists()
    assert "history.png not written" in capsys.readouterr().err


def test_save_figures_draws_the_chains_of_sampled_parameters_with_their_truths(tmp_path):
    exp = types.SimpleNamespace(name="nuts")
    rng = np.random.default_rng(0)
    sol = types.SimpleNamespace(history={"acceptance": rng.uniform(size=50)},
                                samples={"rho": 0.02 + 0.001 * rng.standard_normal(50), "origin": rng.uniform(size=(50, 2))})
    outcome = Outcome(sol, _fields(), truths={"rho": 0.02, "origin[1]": 0.45}, extent=((0, 1), (0, 1)))
    written = plot.save_figures(str(tmp_path), exp, outcome, sol, _record())
    assert [os.path.basename(p) for p in written] == ["fields.png", "history.png"]
    fig = plot.history_figure(sol.history, samples=plot._samples(sol), truths=outcome.truths)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["acceptance rate", "ρ [1/day] (posterior draws)", "origin[0] (posterior draws)",
                      "origin[1] (posterior draws)"]
    assert any(ln.get_label().startswith("true value") for ln in _panel(fig, "origin[1]").get_lines())
    assert os.path.getsize(written[0]) < 250_000


def test_samples_panel_is_a_histogram_with_the_truth():
    d = np.random.default_rng(0).normal(1.0, 0.1, 300)
    fig = plot.fields_figure({"lambda draws": d}, kinds={"lambda draws": "samples"}, truths={"lambda draws": 1.02})
    ax = _panel(fig, "lambda draws")
    assert len(ax.patches) == 30
    assert any(ln.get_label() == "true value 1.02" for ln in ax.get_lines())
