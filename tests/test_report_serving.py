"""Tests of the figures and tables of the chapter "Serving cost" (ncf_vs_mf.report.serving).

Tables are checked on small hand-made benchmark rows whose answers are computed by hand;
figures for what a reader relies on: one colour per index and per model, a legend naming
every line drawn, widths that fit the page, exponents written as math.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncf_vs_mf import serving, tables  # noqa: E402
from ncf_vs_mf.config import results_dir  # noqa: E402
from ncf_vs_mf.plotting import model_color, use_style  # noqa: E402
from ncf_vs_mf.report import serving as report  # noqa: E402

RESULTS = results_dir() / "serving"


@pytest.fixture(autouse=True)
def style_and_close():
    use_style()
    yield
    plt.close("all")


def scoring_rows() -> list[dict]:
    """Timings that follow the O() argument exactly: dot 1e-9 n d, NeuMF 1e-9 n d^1.5,
    MLP 1e-9 n d^2 (one user); batches of 64 make the dot product 4x faster per user."""
    rows = []
    for n in (1_000, 10_000, 100_000):
        for d in (16, 64):
            for family, seconds in [("dot", 1e-9 * n * d), ("neumf", 1e-9 * n * d ** 1.5),
                                    ("mlp", 1e-9 * n * d * d)]:
                rows.append({"family": family, "variant": "x", "n": n, "d": d, "batch": 1,
                             "seconds": seconds, "seconds_per_user": seconds})
            rows.append({"family": "dot", "variant": "x", "n": n, "d": d, "batch": 64,
                         "seconds": 64 * 0.25e-9 * n * d, "seconds_per_user": 0.25e-9 * n * d})
        rows.append({"family": "mlp", "variant": "x", "n": n, "d": 16, "batch": 64,
                     "seconds": 64 * 1e-9 * n * 256, "seconds_per_user": 1e-9 * n * 256})
        rows.append({"family": "select", "variant": "topk", "n": n, "d": 0, "batch": 1,
                     "seconds": 1e-9 * n, "seconds_per_user": 1e-9 * n})
    return rows


@pytest.fixture()
def best() -> pd.DataFrame:
    return serving.best_scoring(scoring_rows())


# ---- labels and colours ----------------------------------------------------------------

def test_exponents_are_math_not_carets():
    assert report.math_exponent("n", 1.19) == "$n^{1.19}$"
    assert report.math_exponent("d", 2) == "$d^{2.00}$"


def test_one_colour_per_index_family_and_none_is_a_models_colour():
    families = ["exact", "hnsw", "ivf", "scann"]
    colours = [report.index_style(f)["color"] for f in families]
    assert len(set(colours)) == len(families)
    assert not set(colours) & {model_color("MF"), model_color("MLP"), model_color("NeuMF")}
    assert report.index_style("hnsw-ip")["color"] == report.index_style("hnsw")["color"]
    assert report.index_style("hnsw-ip")["linestyle"] == "--"
    assert report.index_style("ivf")["linestyle"] == "-"


# ---- scoring tables --------------------------------------------------------------------

def test_multiply_adds_by_hand():
    table = report.multiply_adds([16, 64]).set_index("d")
    assert table.loc[16].to_dict() == {"Dot product": 16, "MLP, every layer": 18 * 256,
                                       "MLP, first layer cached": 10 * 256}
    assert table.loc[64, "MLP, first layer cached"] == 10 * 64 * 64


def test_cost_ratios_follow_the_counts(best):
    table = report.cost_ratios(best).set_index("d")
    assert table.loc[64, "MLP / dot product"] == pytest.approx(64)
    assert table.loc[16, "NeuMF / dot product"] == pytest.approx(4)
    assert set(table["At n items"]) == {100_000}


def test_batch_speedup_is_per_user_time_alone_over_batched(best):
    table = report.batch_speedup(best).set_index("d")
    assert table.loc[64, "Dot product: speed-up"] == pytest.approx(4)
    assert table.loc[16, "MLP: speed-up"] == pytest.approx(1)
    assert table.loc[16, "MLP: at n"] == 100_000
    assert math.isnan(table.loc[64, "MLP: speed-up"])  # no batch timed at d = 64
    shown = tables.show(table.reset_index(), decimals=1).to_frame()
    assert shown.loc[1, "MLP: speed-up"] == tables.MISSING


def test_default_n_is_the_largest_timed_for_every_model_at_every_d(best):
    assert report.default_scoring_n(best) == 100_000
    partial = best[~((best["family"] == "mlp") & (best["n"] == 100_000) & (best["d"] == 64))]
    assert report.default_scoring_n(partial) == 10_000


# ---- index tables ----------------------------------------------------------------------

def test_live_index_summary_by_hand():
    rows = [{"index": "exact", "setting": 0, "recall": 1.0}]
    rows += [{"index": "ivf", "setting": s, "recall": r} for s, r in [(4, 0.95), (1, 0.5),
                                                                      (2, 0.91)]]
    rows += [{"index": "scann", "setting": s, "recall": r} for s, r in [(1, 0.2), (5, 0.8)]]
    table = report.live_index_summary(rows, 0.9).set_index("Index")
    column = "First setting ≥ 0.9"
    assert table.loc["IVF, reduction", column] == 2  # the cheapest that reaches 0.9
    assert table.loc["IVF, reduction", "Recall@10, cheapest"] == 0.5
    assert table.loc["IVF, reduction", "Recall@10, thorough"] == 0.95
    assert math.isnan(table.loc["ScaNN", column])  # never reaches the target
    assert math.isnan(table.loc["Exact (brute force)", column])  # no knob
    assert table.loc["ScaNN", "Knob"] == "leaves searched"


def at_recall_rows() -> pd.DataFrame:
    """Latency at the target: hnsw ~ n^0.5, exact ~ n, ivf reaching it at one size only."""
    rows = [{"catalog": "c", "index": "hnsw", "n": n, "latency_ms": 0.01 * n ** 0.5,
             "recall": 0.95, "setting": 64} for n in (10_000, 1_000_000)]
    rows += [{"catalog": "c", "index": "exact", "n": n, "latency_ms": 1e-5 * n, "recall": 1.0,
              "setting": 0} for n in (10_000, 1_000_000)]
    rows += [{"catalog": "c", "index": "ivf", "n": 10_000, "latency_ms": 0.5, "recall": 0.9,
              "setting": 8},
             {"catalog": "c", "index": "ivf", "n": 1_000_000, "latency_ms": np.nan,
              "recall": np.nan, "setting": np.nan}]
    return pd.DataFrame(rows)


def test_latency_exponents_drop_indexes_without_two_sizes():
    table = report.latency_exponents(at_recall_rows(), ["c"]).set_index("Index")
    assert table.loc["HNSW, reduction", "c"] == pytest.approx(0.5)
    assert table.loc["Exact (brute force)", "c"] == pytest.approx(1.0)
    assert "IVF, reduction" not in table.index


def test_index_builds_leave_unbuilt_catalogs_missing():
    builds = pd.DataFrame([
        {"catalog": "trained-like", "n": 100, "index": "hnsw", "build_seconds": 2.0,
         "memory_bytes": 3_000_000},
        {"catalog": "isotropic", "n": 100, "index": "scann", "build_seconds": 1.0,
         "memory_bytes": 2_000_000},
        {"catalog": "isotropic", "n": 10, "index": "hnsw", "build_seconds": 9.0,
         "memory_bytes": 9}])
    table = report.index_builds(builds, 100, ["trained-like", "isotropic"]).set_index("Index")
    assert table.loc["HNSW, reduction", "Size (MB)"] == 3.0
    assert table.loc["HNSW, reduction", "Build, Trained-like (s)"] == 2.0
    assert math.isnan(table.loc["HNSW, reduction", "Build, Isotropic (s)"])
    assert math.isnan(table.loc["ScaNN", "Build, Trained-like (s)"])


def test_mlp_against_indexes_by_hand(best):
    at = pd.DataFrame([{"catalog": "trained-like", "index": i, "n": 100_000, "latency_ms": t,
                        "recall": 0.95, "setting": 1}
                       for i, t in [("exact", 0.1), ("hnsw", 0.3), ("scann", 0.2)]])
    row = report.mlp_against_indexes(best, at, 64).iloc[0]
    # MLP 1e-9 * 1e5 * 64^2 s + selection 1e-4 s; dot 1e-9 * 1e5 * 64 s + 1e-4 s
    assert row["MLP, exact (ms)"] == pytest.approx(409.6 + 0.1)
    assert row["Dot, exact (ms)"] == pytest.approx(6.4 + 0.1)
    assert row["Fastest index (ms)"] == 0.2 and row["Index"] == "ScaNN"


def test_advice_for_page_splits_models_and_names_indexes():
    advice = pd.DataFrame([{"n": 10, "d": 16, "dot, 1 ms": "scann ~", "MLP, 1 ms": "-",
                            "dot, 10 ms": "exact", "MLP, 10 ms": "two-stage"}])
    dot = report.advice_for_page(advice, "dot")
    assert list(dot.columns) == ["Items n", "d", "≤ 1 ms", "≤ 10 ms"]
    assert dot.iloc[0].tolist() == [10, 16, "ScaNN ~", "exact"]
    assert report.advice_for_page(advice, "MLP").iloc[0].tolist() == [10, 16, "none",
                                                                      "two-stage"]
    with pytest.raises(ValueError, match="no columns"):
        report.advice_for_page(advice, "NeuMF")


# ---- figures -----------------------------------------------------------------------------

def legend_texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()]


def drawn_labels(fig) -> set[str]:
    return {line.get_label() for ax in fig.axes for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_scoring_figures_fit_the_page_and_write_exponents_as_math(best):
    fig = report.plot_scoring_vs_n(best)
    assert fig.get_figwidth() <= 7 and len(fig.axes) == 3
    for ax in fig.axes:
        title = ax.get_title()
        assert "^" not in title.replace("$n^{", "").replace("$d^{", "")
    assert fig.axes[2].get_title().startswith("MLP: time $\\propto$ $n^{1.00}$ $d^{2.00}$")
    assert set(legend_texts(fig.legends[0])) == drawn_labels(fig) == {"$d = 16$", "$d = 64$"}

    ax = report.plot_scoring_vs_d(best)
    colours = {line.get_label().split(":")[0]: line.get_color() for line in ax.get_lines()}
    assert colours == {"dot product": model_color("MF"), "NeuMF": model_color("NeuMF"),
                       "MLP": model_color("MLP")}
    assert "$d^{2.00}$" in legend_texts(ax.get_legend())[2]


def test_recall_latency_legend_names_every_line_of_every_panel():
    curves = pd.DataFrame(
        [{"catalog": "a", "n": 10, "index": "exact", "setting": 0, "recall": 1.0,
          "latency_ms": 1.0},
         {"catalog": "a", "n": 10, "index": "hnsw", "setting": 1, "recall": 0.5,
          "latency_ms": 0.1},
         {"catalog": "b", "n": 20, "index": "scann", "setting": 1, "recall": 0.7,
          "latency_ms": 0.2}])
    fig = report.plot_recall_latency(curves, [("a", 10), ("b", 20)], 0.9)
    assert fig.get_figwidth() <= 7
    labels = legend_texts(fig.legends[0])
    assert set(labels) == drawn_labels(fig)
    assert {"HNSW, reduction", "ScaNN", "Exact (brute force)", "recall@10 = 0.9"} <= set(labels)
    assert len(labels) == len(set(labels))  # each label once


@pytest.fixture(scope="module")
def committed() -> dict:
    if not (RESULTS / "serving_runs.csv").is_file():
        pytest.skip(f"{RESULTS} missing: run ncf-vs-mf reproduce serving --publish")
    return report.load_record(RESULTS)


def test_two_stage_figures_have_complete_legends(committed):
    ax = report.plot_two_stage_latency(committed["two_stage"])
    labels = legend_texts(ax.get_legend())
    assert set(labels) == drawn_labels(ax.figure)
    assert sum(label.startswith("MLP by brute force") for label in labels) == 2
    ax = report.plot_two_stage_recall(committed["two_stage"])
    assert set(legend_texts(ax.get_legend())) == drawn_labels(ax.figure)


def test_key_numbers_agree_with_the_summaries_of_the_rows(committed):
    key = report.key_numbers(committed)
    best = serving.best_scoring(committed["scoring"])
    d = key["ratio_d"]
    ratio = serving.cost_ratio(best).set_index("d")["ratio"]
    assert d == ratio.index.max() and key["mlp_over_dot"] == pytest.approx(ratio[d])
    assert key["mlp_d_exponent"] == pytest.approx(serving.scoring_fits(best)["mlp"]["d_exponent"])
    at_recall = serving.latency_vs_n(committed["index_curves"], key["target"])
    slopes = serving.latency_slopes(at_recall[at_recall["catalog"] != "ml-1m"])
    assert key["exact_slope"] == pytest.approx(slopes["trained-like"]["exact"])
    assert key["index_speedup"] == pytest.approx(key["exact_ms"] / key["fastest_ms"])
    assert key["fastest_ms"] < key["exact_ms"]
    assert 0 <= key["dot_alone_recall"] <= key["exact_stage_recall"] <= 1
    assert key["rerank"] == committed["parameters"]["rerank"]


def test_load_record_refuses_a_folder_without_the_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="reproduce serving"):
        report.load_record(tmp_path)
