"""Smoke tests of the shared figure helpers (lib/ncf_vs_mf/plotting.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncf_vs_mf import plotting  # noqa: E402
from ncf_vs_mf.models import parameter_count  # noqa: E402


def test_model_colors_are_consistent():
    assert plotting.model_color("MF") == plotting.model_color("dot")
    assert plotting.model_color("NeuMF (pre-trained)") != plotting.model_color("NeuMF")
    assert plotting.model_color("MLP-3") == plotting.model_color("mlp")
    with pytest.raises(KeyError):
        plotting.model_color("popularity")


def test_similarity_diagram_draws_two_panels():
    plotting.use_style()
    fig = plotting.draw_similarity_diagram()
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Dot product", "MLP-learned similarity"]
    plt.close(fig)


def test_parameter_count_plot_uses_the_closed_forms():
    ax = plotting.plot_parameter_counts([4, 8, 16, 64, 256])
    lines = {line.get_label(): line for line in ax.get_lines()}
    mlp = lines["MLP, $h = d$ (Sec. 4)"]
    assert list(mlp.get_ydata()) == [parameter_count("mlp", d, d) for d in mlp.get_xdata()]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(ax.figure)


def _texts(fig):
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]


def test_section2_figures_fit_the_page_column_with_10pt_text():
    # at most 7 in wide (unscaled in the page column) and no text under 10 pt
    plotting.use_style()
    diagram = plotting.draw_similarity_diagram()
    counts = plotting.plot_parameter_counts([4, 8, 16, 64, 256]).figure
    for fig in (diagram, counts):
        fig.canvas.draw()
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        assert box.width <= 7.0, box.width
        small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 10]
        assert not small, small
        plt.close(fig)


def test_parameter_count_legend_lies_below_the_axes():
    ax = plotting.plot_parameter_counts([4, 8, 16, 64, 256])
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends or [ax.get_legend()]
    assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
    assert len(legend.get_texts()) == 7
    plt.close(fig)


def test_figure2_labels_every_dimension_on_a_log_axis():
    ours = pd.DataFrame({"model": ["MF"] * 3 + ["NeuMF (no pre-training)"] * 2,
                         "dim": [16, 32, 192, 24, 48], "seeds": 3, "hr10": 0.7, "hr10_ci95": 0.0})
    published = pd.DataFrame({"model": ["MLP"], "embedding_dim": [8], "hr10": [0.67]})
    ax = plotting.plot_metric_vs_dim(ours, published, "hr10")
    assert ax.get_xscale() == "log"
    # ours and the published-only 8, each once, in order
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "24", "32", "48", "192"]
    # on log2, 16 -> 24 and 32 -> 48 are the same distance apart (a factor 1.5)
    x = ax.transData.transform([(d, 0.7) for d in (16, 24, 32, 48)])[:, 0]
    assert x[1] - x[0] == pytest.approx(x[3] - x[2])
    plt.close(ax.figure)


def test_learning_curves_average_seeds_and_tick_whole_epochs():
    curves = pd.DataFrame({"dim": 16, "seed": [0, 0, 0, 1, 1, 1], "epoch": [0, 1, 2] * 2,
                           "hr10": [0.1, 0.5, 0.6, 0.3, 0.7, 0.6]})
    ax = plotting.plot_learning_curves(curves, "hr10")
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == pytest.approx([0.2, 0.6, 0.6])
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert line.get_label() == "d = 16"
    assert ax.get_xlim() == (0, 2)  # the axis ends at the last epoch
    plt.close(ax.figure)


def test_learning_curves_take_model_colours():
    curves = pd.DataFrame({"model": ["MLP", "MLP", "GMF", "GMF"], "epoch": [0, 1] * 2,
                           "hr10": [0.1, 0.5, 0.2, 0.6]})
    ax = plotting.plot_learning_curves(curves, "hr10", by="model", label="{}",
                                       color=plotting.model_color)
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert colours == {"GMF": plotting.MODEL_COLORS["gmf"], "MLP": plotting.MODEL_COLORS["mlp"]}
    plt.close(ax.figure)


def test_figure2_bands_only_our_mf_and_dashes_the_published_numbers():
    from types import SimpleNamespace

    mf = pd.DataFrame({"dim": [8, 16, 32], "hr10": [0.63, 0.69, 0.71],
                       "hr10_ci95": [0.004, 0.004, 0.004], "seeds": 3})
    ncf = pd.DataFrame({"model": ["GMF", "GMF", "MLP"], "dim": [8, 16, 16],
                        "hr10": [0.64, 0.69, 0.66], "hr10_ci95": 0.01, "seeds": 3})
    published = pd.DataFrame({"model": ["MLP", "MLP"], "embedding_dim": [16, 32],
                              "hr10": [0.671, 0.684]})
    results = SimpleNamespace(mf=mf, ncf=ncf, published=published)
    ax = plotting.plot_figure2(results, "hr10")
    assert len(ax.collections) == 1  # one band: our MF's 95% interval
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.626) and band.max() == pytest.approx(0.714)
    lines = [line for line in ax.get_lines() if line.get_xdata().size]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    assert len(lines) == 4 and len(dashed) == 1
    assert dashed[0].get_markerfacecolor() == "white"
    assert dashed[0].get_color() == plotting.model_color("MLP")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == "Trained here (solid)" and "MF (mean of 3 seeds)" in texts
    # the legend hangs below the axes: it covers no data
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).y1 < ax.get_window_extent(renderer).y0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "32"]
    plt.close(ax.figure)
