"""The GMF-regularization chapter's summaries and figures, on small hand-made result tables."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncf_vs_mf.report import gmf_regularization as report  # noqa: E402
from ncf_vs_mf.summaries import over_seeds  # noqa: E402


def _runs() -> pd.DataFrame:
    """Two seeds of GMF and MF at three lambdas (d = 64), plus rows that must be ignored."""
    rows = []
    hr = {("GMF", 0.0): (0.60, 0.62), ("GMF", 1e-5): (0.64, 0.66), ("GMF", 1e-4): (0.05, 0.07),
          ("MF", 0.0): (0.64, 0.66), ("MF", 1e-5): (0.49, 0.51), ("MF", 1e-4): (0.39, 0.41)}
    for (variant, reg), values in hr.items():
        for seed, value in enumerate(values):
            rows.append({"dataset": "ml-100k", "variant": variant, "dim": 64, "reg": reg,
                         "seed": seed, "epochs": 20, "hr10": value})
    rows.append({"dataset": "ml-1m", "variant": "GMF", "dim": 64, "reg": 0.0, "seed": 0,
                 "epochs": 20, "hr10": 0.99})  # other dataset
    rows.append({"dataset": "ml-100k", "variant": "MF", "dim": 32, "reg": 0.0, "seed": 0,
                 "epochs": 20, "hr10": 0.01})  # other d
    rows.append({"dataset": "ml-100k", "variant": "GMF-reg-w", "dim": 64, "reg": 0.0,
                 "seed": 0, "epochs": 20, "hr10": 0.0})  # other variant
    return pd.DataFrame(rows)


def test_key_numbers_by_hand():
    numbers = report.key_numbers(_runs(), upto=1e-5)
    assert numbers["gmf_hr10_min"] == pytest.approx(0.61)
    assert numbers["gmf_hr10_max"] == pytest.approx(0.65)
    assert numbers["gmf_hr10_range"] == pytest.approx(0.04)
    assert numbers["mf_hr10_min"] == pytest.approx(0.50)
    assert numbers["mf_hr10_range"] == pytest.approx(0.15)
    assert numbers["gmf_hr10_beyond"] == pytest.approx(0.06)
    assert numbers["lambda_max"] == 1e-5 and numbers["seeds"] == 2
    assert all(isinstance(v, float) for v in numbers.values())


def test_key_numbers_without_lambdas_beyond_or_any_runs():
    numbers = report.key_numbers(_runs(), upto=1.0)
    assert math.isnan(numbers["gmf_hr10_beyond"])
    assert numbers["gmf_hr10_min"] == pytest.approx(0.06)  # the collapse is now inside
    empty = report.key_numbers(_runs(), dataset="pinterest")
    assert math.isnan(empty["gmf_hr10_range"]) and empty["seeds"] == 0


def test_lambda_text():
    assert [report.lambda_text(x) for x in [0.0, 1e-7, 1e-6, 3e-5, 1e-4, 0.0025, 0.01, 1.0]] == [
        "0", "10⁻⁷", "10⁻⁶", "3·10⁻⁵", "10⁻⁴", "0.0025", "0.01", "1"]
    assert report.lambda_text(2.5e-6) == "2.5e-06"


def test_hr10_by_lambda_marks_missing_cells():
    summary = over_seeds(_runs()[lambda t: (t["dim"] == 64) & (t["dataset"] == "ml-100k")],
                         ["variant", "reg"], metrics=("hr10",))
    table = report.hr10_by_lambda(summary.iloc[:-1], variants=["GMF", "MF"])  # MF 1e-4 gone
    assert table["reg"].tolist() == ["0", "10⁻⁵", "10⁻⁴"]
    assert table["GMF"].tolist() == pytest.approx([0.61, 0.65, 0.06])
    assert np.isnan(table["MF"].iloc[-1])


def test_dim_trend_first_last_and_peak():
    summary = pd.DataFrame({"reg": [0.0] * 3, "model": ["GMF"] * 3, "dim": [64, 16, 192],
                            "hr10": [0.7, 0.65, 0.55]})
    row = report.dim_trend(summary).iloc[0]
    assert (row["dim_first"], row["dim_last"]) == (16, 192)
    assert row["change"] == pytest.approx(-0.10) and row["hr10_peak"] == 0.7


def test_check_table_lists_settings_that_were_not_run():
    runs = pd.DataFrame({"variant": ["GMF", "GMF", "MF"], "reg": [0.0, 1e-6, 0.0],
                         "hr10": [0.7, 0.69, 0.68], "hr10_best": [0.71, 0.7, 0.7],
                         "best_epoch": [9, 20, 6], "norm_p": [600.0, 130.0, 500.0],
                         "norm_w": [4.0, 28.0, np.nan]})
    table = report.check_table(runs, ["GMF", "MF"], [0.0, 1e-6])
    assert len(table) == 4 and table["seeds"].tolist() == [1, 1, 1, 0]
    assert np.isnan(table.iloc[3]["hr10"]) and table.iloc[2]["best_epoch"] == 6


def test_variant_colours_are_distinct_and_book_wide():
    from ncf_vs_mf.plotting import model_color

    colours = [report.variant_color(v) for v in ["GMF", "GMF-reg-w", "GMF-absorbed", "MF"]]
    assert len(set(colours)) == 4
    assert colours[0] == model_color("GMF") and colours[3] == model_color("MF")


def test_norm_figures_have_a_line_per_lambda_or_variant():
    curves = pd.DataFrame({"reg": [0.0, 0.0, 1e-4, 1e-4], "epoch": [0, 1, 0, 1],
                           "norm_p": [1.0, 2.0, 1.0, 0.0], "norm_q": [1.0] * 4,
                           "norm_w": [1.0] * 4})
    ax = report.plot_norms(curves, "norm_p")
    assert len(ax.get_lines()) == 2 and ax.get_xlabel() == "epoch" and "P" in ax.get_ylabel()
    assert [line.get_label() for line in ax.get_lines()] == ["$\\lambda$ = 0", "$\\lambda$ = 10⁻⁴"]
    assert list(ax.get_lines()[1].get_ydata()) == [1.0, 1e-6]  # zero drawn at the floor
    fig = report.plot_live_norms(curves)
    assert len(fig.axes) == 3 and len(fig.legends) == 1 and fig.get_figwidth() <= 7
    final = pd.DataFrame({"variant": ["GMF", "GMF", "MF", "MF"], "reg": [0.0, 1e-5] * 2,
                          "norm_p": [100.0, 40.0, 90.0, 20.0],
                          "norm_w": [30.0, 60.0, np.nan, np.nan]})
    fig = report.plot_final_norms(final)
    top, bottom = fig.axes
    assert len(top.get_lines()) == 2 and len(bottom.get_lines()) == 1  # MF has no w
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0", "10⁻⁵"]
    plt.close("all")


def test_metric_figures():
    runs = _runs()[lambda t: (t["dim"] == 64) & (t["dataset"] == "ml-100k")]
    ax = report.plot_metric_vs_reg(over_seeds(runs, ["variant", "reg"], metrics=("hr10",)))
    assert ax.get_ylabel() == "HR@10" and "lambda" in ax.get_xlabel()
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.61, 0.65, 0.06])
    dims = pd.DataFrame({"reg": [0.0] * 4, "model": ["GMF", "GMF", "MF", "MF"],
                         "dim": [16, 32] * 2, "hr10": [0.6, 0.5, 0.6, 0.7],
                         "hr10_ci95": [0.01] * 4})
    fig = report.plot_metric_vs_dim(dims, [0.0])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2
    curves = pd.DataFrame({"variant": ["GMF"] * 3 + ["MF"] * 3, "reg": [0.0] * 6,
                           "epoch": [0, 1, 2] * 2, "hr10": [0.1, 0.6, 0.7, 0.1, 0.5, 0.6]})
    fig = report.plot_check_curves(curves, reference=0.72, reference_label="SGD")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and list(lines[0].get_xdata()) == [1, 2]  # epoch 0 left out
    plt.close("all")
