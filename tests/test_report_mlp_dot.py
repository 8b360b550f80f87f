"""Section 4's report: summaries over seeds, crossings, the growth exponent and its bootstrap
interval, the numbers the takeaways cite, and the figures."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncf_vs_mf import dot_learning as dl  # noqa: E402
from ncf_vs_mf.models import parameter_count  # noqa: E402
from ncf_vs_mf.report import mlp_dot as md  # noqa: E402


def _runs(errors: dict[tuple[int, float, int], list[float]]) -> pd.DataFrame:
    """A runs table with the given errors per (d, width, M), one seed per value."""
    rows = []
    for (dim, width, users), values in errors.items():
        for seed, error in enumerate(values):
            rows.append({"dim": dim, "width": width, "h": int(dim * width), "users": users,
                         "seed": seed, "error_test": error, "error_fresh": error + 0.001,
                         "n_train": 90 * users, "epochs": 32, "lr": 0.001, "batch_size": 256,
                         "pairs_per_user": 100, "fresh_pairs": 100_000, "seconds": 60.0})
    return pd.DataFrame(rows)


def _power_law_runs(alpha: float, seeds: int = 5, noise: float = 0.05,
                    seed: int = 0) -> pd.DataFrame:
    """Errors that need exactly 90 M = C (d / eps)^alpha samples, times lognormal noise
    (C puts d = 16 at an error of 0.08 with M = 1,000; M doubles up to 1,024,000)."""
    rng = np.random.default_rng(seed)
    values, constant = {}, 90_000 * (0.08 / 16) ** alpha
    for dim in (16, 32, 64):
        for users in (1000 * 2 ** k for k in range(11)):
            exact = dim * (constant / (90 * users)) ** (1 / alpha)
            values[(dim, 1.0, users)] = list(exact * np.exp(noise * rng.standard_normal(seeds)))
    return _runs(values)


def test_summary_means_and_intervals():
    summary = md.summarize(_runs({(16, 1.0, 1000): [0.02, 0.04], (16, 1.0, 2000): [0.01]}))
    first = summary.iloc[0]
    assert first["error_test"] == pytest.approx(0.03) and first["seeds"] == 2
    assert first["error_test_ci95"] == pytest.approx(12.706 * 0.01, rel=1e-3)  # t(1) * sd/sqrt2
    assert math.isnan(summary.iloc[1]["error_test_ci95"]) and summary.iloc[1]["n_train"] == 180_000
    assert md.summarize(_runs({})).empty


def test_by_setting_leaves_missing_settings_missing():
    runs = _runs({(16, 1.0, 4000): [0.1, 0.3], (16, 2.0, 8000): [0.2]})
    counts = md.by_setting(runs, "seed", "count", dims=[16, 32], users=[4000, 8000],
                           widths=[1.0, 2.0])
    assert list(counts.columns) == ["dim", "h", 4000, 8000] and len(counts) == 4
    assert counts.loc[0, 4000] == 2 and math.isnan(counts.loc[0, 8000])  # not 0
    assert counts[counts["dim"] == 32][[4000, 8000]].isna().all().all()
    means = md.by_setting(runs, "error_test", dims=[16], users=[4000, 8000], widths=[1.0, 2.0])
    assert means.loc[0, 4000] == pytest.approx(0.2) and list(means["h"]) == ["d", "2d"]
    assert md.by_setting(runs.iloc[:0], "seed", "count", dims=[16]).iloc[:, 2:].isna().all().all()


def test_coverage_counts_settings_and_repeats():
    runs = _runs({(16, 1.0, 4000): [0.1, 0.1], (16, 2.0, 8000): [0.1], (8, 1.0, 4000): [0.1]})
    got = md.coverage(runs, dims=[16], users=[4000, 8000], widths=[1.0, 2.0])
    assert got == {"settings_run": 2, "settings": 4, "runs": 3, "repeats_min": 1,
                   "repeats_max": 2, "settings_max_repeats": 1}  # d = 8 is not in the grid
    assert md.coverage(runs.iloc[:0])["settings_run"] == 0


def test_samples_needed_interpolates_in_log_m():
    summary = md.summarize(_runs({(16, 1.0, 1000): [0.02], (16, 1.0, 10_000): [0.005],
                                  (32, 1.0, 1000): [0.005], (32, 1.0, 10_000): [0.002]}))
    table = md.samples_needed(summary, thresholds=[0.01, 0.001])
    test = table[table["set"] == "test"].set_index(["dim", "threshold"])
    # 0.02 -> 0.005 over one decade of M: 0.01 is crossed 2/3 of the way, M = 1000 * 10^(2/3)
    assert test.loc[(16, 0.01), "users_needed"] == pytest.approx(1000 * 10 ** (2 / 3))
    assert test.loc[(16, 0.01), "samples_needed"] == pytest.approx(90_000 * 10 ** (2 / 3))
    assert test.loc[(16, 0.01), "status"] == "interpolated"
    assert test.loc[(32, 0.01), "status"] == "below at the smallest M"
    assert test.loc[(16, 0.001), "status"] == "not reached"
    assert math.isnan(test.loc[(16, 0.001), "users_needed"])
    assert test.loc[(16, 0.001), "lowest_error"] == pytest.approx(0.005)


def test_growth_fit_recovers_a_known_exponent():
    crossings = pd.DataFrame([{"set": "fresh", "dim": d, "width": 1.0, "threshold": eps,
                               "samples_needed": 7.0 * (d / eps) ** 1.5, "status": "interpolated"}
                              for d in (16, 32, 64) for eps in (0.01, 0.001)])
    fit = md.fit_growth(crossings).iloc[0]
    assert fit["alpha"] == pytest.approx(1.5) and math.exp(fit["c"]) == pytest.approx(7.0)
    assert fit["r2"] == pytest.approx(1.0) and fit["n_points"] == 6
    one = crossings.iloc[:1].assign(width=2.0)
    missing = crossings.iloc[1:3].assign(status="not reached", width=0.5)
    few = md.fit_growth(pd.concat([one, missing])).set_index("width")
    assert math.isnan(few.loc[2.0, "alpha"]) and few.loc[2.0, "n_points"] == 1
    assert few.loc[0.5, "n_points"] == 0 and few.loc[0.5, "points"] == "none"


@pytest.mark.parametrize("alpha", [1.3, 2.0])
def test_bootstrap_interval_recovers_a_known_exponent(alpha):
    runs = _power_law_runs(alpha)
    levels = (0.04, 0.02, 0.01, 0.005)
    fit = md.alpha_interval(runs, "test", 1.0, levels, n_boot=300, seed=1)
    assert fit["low"] <= fit["alpha"] <= fit["high"]  # the interval holds the point estimate
    assert fit["low"] <= alpha <= fit["high"]  # and the exponent the data were made with
    assert fit["alpha"] == pytest.approx(alpha, abs=0.1)
    assert fit["drop_one_min"] <= fit["alpha"] <= fit["drop_one_max"]
    assert 0 < fit["replicates"] <= 300 and fit["points"] >= 5
    # the point estimate is the one fit_growth makes from samples_needed's crossings
    crossings = md.samples_needed(md.summarize(runs), levels)
    assert fit["alpha"] == pytest.approx(
        md.fit_growth(crossings).set_index("set").loc["test", "alpha"], rel=1e-12)


def test_bootstrap_is_deterministic_given_its_seed():
    runs = _power_law_runs(1.5, noise=0.2)
    first = md.alpha_interval(runs, "fresh", 1.0, n_boot=100, seed=3)
    assert md.alpha_interval(runs, "fresh", 1.0, n_boot=100, seed=3) == first
    other = md.alpha_interval(runs, "fresh", 1.0, n_boot=100, seed=4)
    assert other["alpha"] == first["alpha"] and other["low"] != first["low"]


def test_bootstrap_without_repetitions_or_crossings():
    one_seed = _power_law_runs(1.5, seeds=1)
    fit = md.alpha_interval(one_seed, "test", 1.0, (0.02, 0.01), n_boot=50)
    # resampling one run per setting changes nothing: only the levels move alpha, and with
    # two levels a replicate fits both (alpha) or one of them (a drop-one value)
    values = [fit["alpha"], fit["drop_one_min"], fit["drop_one_max"]]
    assert min(values) - 1e-12 <= fit["low"] <= fit["high"] <= max(values) + 1e-12
    none = md.alpha_interval(one_seed, "test", 1.0, (1e-9,), n_boot=20)
    assert math.isnan(none["alpha"]) and none["replicates"] == 0 and math.isnan(none["low"])


@pytest.mark.parametrize("value, low, high, text", [
    (2.0046, 1.73, 2.16, "point estimate above [1, 2]; the interval reaches above 2"),
    (1.35, 1.10, 1.65, "point estimate inside [1, 2]; the interval lies inside it"),
    (2.0, 1.5, 2.0, "point estimate inside [1, 2]; the interval lies inside it"),
    (2.5, 2.1, 2.9, "point estimate above [1, 2]; the interval lies outside it"),
    (1.5, 0.8, 2.2, "point estimate inside [1, 2]; the interval reaches above 2 and below 1"),
    (math.nan, math.nan, math.nan, "no estimate"),
])
def test_comparison_with_the_paper_does_not_round(value, low, high, text):
    assert md.compare_with_range(value, low, high) == text


def test_text_glues_without_quotes():
    assert repr(md.Text("above [1, 2]")) == "above [1, 2]"


def test_interval_text_and_fit_table():
    assert md.interval_text(1.72668, 2.15787) == "1.7267 to 2.1579"
    assert md.interval_text(-0.5, 0.25, 2) == "−0.50 to 0.25"
    assert md.interval_text(math.nan, 1.0) == "—"
    table = md.fit_table(_power_law_runs(1.5), levels=(0.02, 0.01), widths=[1.0], n_boot=20)
    assert list(table["set"]) == ["fresh", "test"] and list(table["h"]) == ["d", "d"]
    assert table.loc[0, "versus_paper"].startswith("point estimate inside [1, 2]")


def test_paper_claim_rows():
    summary = md.summarize(_runs({(128, 1.0, 128_000): [0.03, 0.025], (16, 1.0, 4000): [0.1]}))
    claim = md.paper_claim(summary)
    assert len(claim) == 1 and claim.loc[0, "error_test"] == pytest.approx(0.0275)
    assert md.paper_claim(summary[summary["dim"] == 16]).empty


def test_cost_model_recovers_a_known_cost_and_sums_the_plan():
    cells = dl.grid_cells([8, 16], [1000, 2000], [1.0], [0])
    rows = []
    for cell in cells:
        n_train = 90 * cell["users"]
        parameters = parameter_count("mlp", cell["dim"], cell["h"])
        steps = math.ceil(n_train / 256) * cell["epochs"]
        rows.append({**cell, "n_train": n_train, "parameters": parameters,
                     "seconds": steps * (2e-4 + 1e-8 * parameters)})  # a known cost law
    runs = pd.DataFrame(rows)
    assert md.estimate_hours(runs, cells) == pytest.approx(runs["seconds"].sum() / 3600)
    bigger = dl.grid_cells([32], [4000], [2.0], [0, 1])
    expected = 2 * math.ceil(360_000 / 256) * 32 * (2e-4 + 1e-8 * parameter_count("mlp", 32, 64))
    assert md.estimate_hours(runs, bigger) == pytest.approx(expected / 3600, rel=1e-6)
    minutes = md.by_setting(runs.assign(minutes=runs["seconds"] / 60), "minutes", "median",
                            dims=[8, 16], users=[1000, 2000], widths=[1.0])
    assert minutes.loc[0, 2000] == pytest.approx(rows[2]["seconds"] / 60)
    assert math.isnan(md.estimate_hours(runs.iloc[:0], cells))


def _curves() -> pd.DataFrame:
    """Epoch curves: d = 8 overfits (test error rises after epoch 2), d = 16 does not."""
    rows = []
    for dim, test in ((8, [0.9, 0.88, 0.86, 0.87, 0.9]), (16, [0.95, 0.9, 0.87, 0.86, 0.855])):
        for epoch, rmse in enumerate(test):
            rows.append({"dim": dim, "users": 1000, "width": 1.0, "seed": 0, "epoch": epoch,
                         "rmse_mlp_test": rmse, "error_test": rmse - 0.85,
                         "train_loss": math.nan if epoch == 0 else 1.0 / epoch})
    return pd.DataFrame(rows)


def test_overfitting_finds_the_best_epoch_and_the_training_rmse():
    got = md.overfitting(_curves(), 8, 1000)
    assert got["best_epoch"] == 2 and got["best_error"] == pytest.approx(0.01)
    assert got["last_epoch"] == 4 and got["last_error"] == pytest.approx(0.05)
    assert got["train_rmse_first"] == pytest.approx(1.0)
    assert got["train_rmse_last"] == pytest.approx(0.5)
    assert got["train_pairs"] == 90_000 and got["parameters"] == parameter_count("mlp", 8, 8)
    assert md.overfitting(_curves(), 32, 1000) == {}


def test_key_numbers_name_what_the_takeaways_cite():
    runs = _runs({(16, 1.0, 128_000): [0.006, 0.008], (16, 2.0, 64_000): [0.005],
                  (128, 0.5, 128_000): [0.04]})
    numbers = md.key_numbers(runs, n_boot=10)
    assert numbers["d16_hd_128k"] == pytest.approx(0.008)  # fresh = test + 0.001
    assert numbers["d16_h2d_64k"] == pytest.approx(0.006)
    assert numbers["d128_hhalf_128k_test"] == pytest.approx(0.04)
    assert numbers["settings_below_001"] == 2 and numbers["grid_settings_run"] == 3
    assert numbers["grid_settings"] == 72 and numbers["grid_runs"] == 4
    assert math.isnan(numbers["d16_hhalf_4k"]) and math.isnan(numbers["alpha"])
    assert numbers["alpha_points"] == 0
    assert "overfit_best_epoch" not in numbers


def test_figure3_draws_one_width_with_gaps_where_m_was_not_run():
    runs = _runs({(d, 1.0, m): [0.1 / d, 0.2 / d] for d in (16, 32) for m in (1000, 4000)})
    runs = pd.concat([runs, _runs({(16, 2.0, 1000): [0.01]})])
    ax = md.plot_figure3(runs, users=[1000, 2000, 4000], dims=[16, 32, 64])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and "M" in ax.get_xlabel()
    assert ax.get_title() == "$h = d$" and "RMSE" in ax.get_ylabel()
    styles = [line.get_linestyle() for line in ax.get_lines()]
    assert styles.count("-") == 2 and styles.count(":") == 2  # fresh and test per d run
    assert styles.count("--") == 2  # the two thresholds
    fresh16 = ax.get_lines()[0].get_ydata()
    assert math.isnan(fresh16[1]) and fresh16[0] == pytest.approx(0.15 / 16 + 0.001)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()][:3] == ["d = 16", "d = 32", "d = 64"]
    assert legend.get_bbox_to_anchor().y1 < ax.bbox.y0 + 1  # below the axes
    plt.close(ax.figure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = md.plot_figure3(runs.iloc[:0])
    assert "no runs" in [t.get_text() for t in empty.texts]
    plt.close(empty.figure)


def test_widths_figure_stacks_its_panels():
    runs = _runs({(16, w, m): [0.05] for w in (0.5, 2.0) for m in (4000, 8000)})
    fig = md.plot_widths(runs)
    assert [ax.get_title() for ax in fig.axes] == ["$h = d/2$", "$h = 2d$"]
    (top, bottom) = [ax.get_position() for ax in fig.axes]
    assert top.y0 > bottom.y1 and fig.get_figwidth() <= 7  # stacked, not side by side
    plt.close(fig)


def test_epoch_plot_shows_test_and_training_rmse_per_d():
    ax = md.plot_epochs(_curves(), users=1000, dims=[8, 16])
    lines = ax.get_lines()
    assert len(lines) == 5  # test and training per d, and the noise level
    assert list(lines[0].get_xdata()) == [1, 2, 3, 4]  # the untrained epoch 0 left out
    assert list(lines[1].get_ydata()) == pytest.approx([1.0, 0.5 ** 0.5, 3 ** -0.5, 0.5])
    assert "1{,}000" in ax.get_title()
    assert "d = 8" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(ax.figure)


def test_growth_plot_draws_the_crossings_and_the_fit():
    ax = md.plot_growth(_power_law_runs(1.5, seeds=1, noise=0.0), "test",
                        levels=(0.02, 0.01))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["d = 16", "d = 32", "d = 64"] and "slope 2" in labels
    assert any(label.startswith("fit: slope") for label in labels)
    plt.close(ax.figure)
