"""Shared figure helpers: one style and one colour per model across the book, and the
Section 2 diagrams (Figure 1 and the parameter counts).

Chapters call ``use_style()`` once and take colours from ``model_color``; the colours follow
Rendle et al.'s Figure 2 where it names them (NeuMF green, pre-trained NeuMF red).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.ticker import MaxNLocator

from .models import paper_mlp_parameter_claim, parameter_count

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PALETTE",
    "MODEL_COLORS",
    "use_style",
    "model_color",
    "draw_similarity_diagram",
    "plot_parameter_counts",
    "plot_metric_vs_dim",
    "plot_figure2",
    "plot_learning_curves",
    "plot_grid_heatmap",
    "legend_below",
]

# Okabe and Ito's colour-blind-safe palette, fixed here so figures do not depend on library
# state. One colour per model book-wide; published curves use the same colour, dashed.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
           "#000000", "#999999"]

MODEL_COLORS: dict[str, str] = {
    "dot": PALETTE[0],
    "mf": PALETTE[0],
    "matrix factorization": PALETTE[0],
    "mlp": PALETTE[1],
    "neumf": PALETTE[2],
    "neumf (no pre-training)": PALETTE[2],
    "neumf (pre-trained)": PALETTE[3],
    "gmf": PALETTE[4],
}

_USER, _ITEM = PALETTE[0], PALETTE[1]
_PHI_FILL, _PHI_EDGE, _INK = "#f2f2f2", "#555555", "#222222"


def use_style() -> None:
    """Apply the book's matplotlib style (readable fonts, light grid, no top/right spines)."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 10,
        "legend.frameon": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "svg.hashsalt": "ncf-vs-mf",  # deterministic SVG ids
    })


def model_color(name: str) -> str:
    """The book-wide colour of a model ('MF', 'MLP', 'GMF', 'NeuMF (pre-trained)', ...)."""
    key = name.strip().lower()
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    for prefix in ("neumf (pre", "neumf", "mlp", "gmf", "mf", "dot"):
        if key.startswith(prefix):
            return MODEL_COLORS["neumf (pre-trained)" if prefix == "neumf (pre" else prefix]
    raise KeyError(f"no colour for model {name!r}")


def legend_below(where: Axes | Figure, ncol: int = 2, **kwargs: Any) -> None:
    """One legend under the plot, outside the data (readable on a phone, covers no line).

    ``where`` is an Axes (its own handles) or a Figure (the handles of all its axes, each
    label once). Needs ``savefig.bbox = "tight"`` (set by ``use_style``) to stay in the image.
    """
    axes = where.axes if isinstance(where, Figure) else [where]
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("_"):
                handles.append(handle)
                labels.append(label)
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    figure = where if isinstance(where, Figure) else where.figure
    anchor = (0.5, 0.0) if isinstance(where, Figure) else (0.5, -0.18)
    host = figure if isinstance(where, Figure) else where
    host.legend(handles, labels, loc="upper center", bbox_to_anchor=anchor, ncol=ncol,
                frameon=False, **kwargs)


# --------------------------------------------------------------------------------------
# Figure 1: dot product vs MLP-learned similarity
# --------------------------------------------------------------------------------------

def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **kw) -> None:
    """Draw a data-coordinate arrow."""
    style = dict(arrowstyle="-|>", mutation_scale=11, lw=1.1, color=_INK, shrinkA=0, shrinkB=0)
    style.update(kw)
    ax.add_patch(FancyArrowPatch(start, end, **style))


def _cells(ax: Axes, x_center: float, y: float, n: int, color: str, width: float = 0.42,
           height: float = 0.42) -> tuple[float, float]:
    """A row of n squares (an embedding vector) centred at x; returns its (left, right)."""
    left = x_center - n * width / 2
    for k in range(n):
        ax.add_patch(Rectangle((left + k * width, y), width, height, facecolor=color,
                               edgecolor="white", lw=1.2, alpha=0.85))
    return left, left + n * width


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str = "", *, fill: str = "white",
         edge: str = _INK, dashed: bool = False, fontsize: float = 10, lw: float = 1.1) -> None:
    """A rounded box centred at (x, y) with optional text."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.18",
                                facecolor=fill, edgecolor=edge, lw=lw,
                                linestyle=(0, (4, 3)) if dashed else "-"))
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=_INK)


def _neurons(ax: Axes, x_center: float, y: float, n: int, spacing: float, color: str = "white"
             ) -> list[tuple[float, float]]:
    """A layer of n neurons (circles) centred at x; returns their centres."""
    xs = [x_center + (k - (n - 1) / 2) * spacing for k in range(n)]
    for x in xs:
        ax.add_patch(mpl.patches.Circle((x, y), 0.15, facecolor=color, edgecolor=_INK, lw=0.9, zorder=3))
    return [(x, y) for x in xs]


def _dense(ax: Axes, lower: list[tuple[float, float]], upper: list[tuple[float, float]]) -> None:
    """Connect every unit of one layer with every unit of the next (a dense layer)."""
    for xa, ya in lower:
        for xb, yb in upper:
            ax.plot([xa, xb], [ya, yb], color="#9a9a9a", lw=0.5, zorder=1)


def _inputs_and_embeddings(ax: Axes, d: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """User/item ids and their embedding rows p, q; returns the tops of p and q."""
    for x, who, sym, color in ((2.5, "user $u$", r"$\mathbf{p}_u$", _USER),
                               (7.5, "item $i$", r"$\mathbf{q}_i$", _ITEM)):
        _box(ax, x, 0.45, 1.7, 0.6, who, fill="white")
        _arrow(ax, (x, 0.75), (x, 1.45))
        left, _ = _cells(ax, x, 1.5, d, color)
        ax.text(left - 0.15, 1.71, sym, ha="right", va="center", fontsize=11)
    ax.text(5.0, 1.0, "embedding lookup\n(free parameters)", ha="center", va="center",
            fontsize=10, color=_PHI_EDGE, style="italic")
    return (2.5, 1.92), (7.5, 1.92)


def _panel_dot(ax: Axes, d: int) -> None:
    """Left panel: the dot product similarity."""
    p_top, q_top = _inputs_and_embeddings(ax, d)
    _box(ax, 5.0, 5.2, 5.6, 5.4, fill=_PHI_FILL, edge=_PHI_EDGE, dashed=True)
    ax.text(2.4, 7.35, "similarity\n" r"$\phi^{\mathrm{dot}}$", ha="left", va="center", fontsize=10,
            color=_PHI_EDGE)
    _box(ax, 5.0, 5.2, 4.0, 1.1, r"$\langle \mathbf{p}_u, \mathbf{q}_i \rangle$" + "\n(+ biases, Eq. 2)",
         fill="white", fontsize=10)
    _arrow(ax, p_top, (3.6, 4.65))
    _arrow(ax, q_top, (6.4, 4.65))
    ax.text(5.0, 3.25, "no parameters\n(only a global\nbias $b$)", ha="center", va="center",
            fontsize=10, color=_PHI_EDGE, style="italic")
    _arrow(ax, (5.0, 5.75), (5.0, 8.3))
    _box(ax, 5.0, 8.75, 3.0, 0.8, r"score $\hat{y}(u, i)$", fill="white")
    ax.set_title("Dot product", fontsize=11)


def _panel_mlp(ax: Axes, d: int, h: int) -> None:
    """Right panel: the MLP-learned similarity on the concatenation [p, q]."""
    p_top, q_top = _inputs_and_embeddings(ax, d)
    _box(ax, 5.0, 5.2, 6.8, 5.4, fill=_PHI_FILL, edge=_PHI_EDGE, dashed=True)
    ax.text(1.75, 7.35, "similarity\n" r"$\phi^{\mathrm{MLP}}$", ha="left", va="center", fontsize=10,
            color=_PHI_EDGE)
    # concatenation [p, q]
    y_cat = 2.9
    width = 0.42
    left = 5.0 - d * width
    _cells(ax, left + d * width / 2, y_cat, d, _USER)
    _cells(ax, left + 1.5 * d * width, y_cat, d, _ITEM)
    ax.text(left - 0.15, y_cat + 0.21, r"$[\mathbf{p}_u, \mathbf{q}_i]$", ha="right", va="center",
            fontsize=10)
    _arrow(ax, p_top, (left + d * width / 2, y_cat))
    _arrow(ax, q_top, (left + 1.5 * d * width, y_cat))
    # dense ReLU layers [4h, 2h, h] and the linear output
    inputs = [(left + (k + 0.5) * width, y_cat + width) for k in range(2 * d)]
    sizes, ys, spacing = [4 * h, 2 * h, h], [4.4, 5.4, 6.4], 0.42
    layer = inputs
    for n, y in zip(sizes, ys):
        nxt = _neurons(ax, 5.0, y, n, spacing)
        _dense(ax, layer, nxt)
        layer = nxt
    out = _neurons(ax, 5.0, 7.3, 1, spacing, color=_PHI_FILL)
    _dense(ax, layer, out)
    for label, y in zip(("$4h$", "$2h$", "$h$"), ys):
        ax.text(6.9, y, label, ha="left", va="center", fontsize=10, color=_PHI_EDGE)
    ax.text(5.35, 7.3, "linear", ha="left", va="center", fontsize=10, color=_PHI_EDGE)
    ax.text(1.75, 5.4, "ReLU\nlayers", ha="left", va="center", fontsize=10, color=_PHI_EDGE,
            style="italic")
    _arrow(ax, (5.0, 7.45), (5.0, 8.3))
    _box(ax, 5.0, 8.75, 3.0, 0.8, r"score $\hat{y}(u, i)$", fill="white")
    ax.set_title("MLP-learned similarity", fontsize=11)


def draw_similarity_diagram(d: int = 4, h: int = 2, figsize: tuple[float, float] = (7.0, 4.4)) -> Figure:
    """Figure 1 of the paper: a dot-product model (left) and an MLP-learned similarity (right).

    Both models look up free embeddings p_u and q_i; only the similarity phi (dashed box)
    differs. The MLP is drawn with d cells per embedding and hidden layers [4h, 2h, h].
    At the default size (7 in wide, all text >= 10 pt) it fits the page column unscaled.
    """
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    _panel_dot(axes[0], d)
    _panel_mlp(axes[1], d, h)
    for ax in axes:
        ax.set_xlim(0.9, 8.7)
        ax.set_ylim(0, 9.3)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------

def plot_parameter_counts(dims: Sequence[int], ax: Axes | None = None) -> Axes:
    """Log-log plot of the parameters inside each similarity phi against the embedding size d.

    Counts come from ``models.parameter_count`` (weights and biases). NeuMF is drawn at
    d = 3k (NCF's layout, k the predictive factor); the paper's quoted 18 d^2 values
    (Section 4.1) are marked for comparison. The legend sits below the axes, at 10 pt.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0))
    dims = sorted(set(int(d) for d in dims))
    lo, hi = dims[0], dims[-1]
    series = [
        ("MLP, $h = d$ (Sec. 4)", "mlp", dims, lambda d: parameter_count("mlp", d, d), "-"),
        ("MLP, $h = d/2$ (NCF MLP-3)", "mlp", [d for d in dims if d % 2 == 0],
         lambda d: parameter_count("mlp", d, d // 2), "--"),
        ("NeuMF at $d = 3k$ (NCF)", "neumf", [3 * d for d in dims if lo <= 3 * d <= hi],
         lambda d: parameter_count("neumf", d), "-"),
        ("GMF: $\\mathbf{w}$ + bias", "gmf", dims, lambda d: parameter_count("gmf", d), "-"),
        ("dot, Eq. 2: global bias", "dot", dims, lambda d: parameter_count("dot", d), "-"),
    ]
    for label, key, xs, count, ls in series:
        if xs:
            ax.plot(xs, [count(d) for d in xs], ls, marker="o", ms=3.5, lw=1.6,
                    color=model_color(key), label=label)
    ax.plot(dims, [2 * d for d in dims], ":", color=PALETTE[8], lw=1.4,
            label="$2d$: one user + one item\nembedding, for scale")
    quoted = [d for d in (8, 64, 256) if lo <= d <= hi]
    ax.plot(quoted, [paper_mlp_parameter_claim(d) for d in quoted], "x", color=_INK, ms=8, mew=1.6,
            label="paper: $18d^2$ at $h = d$\n(Sec. 4.1, weights only)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.minorticks_off()
    ax.set_xlabel("embedding dimension $d$ (per user and per item)")
    ax.set_ylabel("parameters inside the similarity $\\phi$")
    legend_below(ax, ncol=2, fontsize=10)
    return ax


# --------------------------------------------------------------------------------------
# Section 3: Figure 2, learning curves and the tuning grid
# --------------------------------------------------------------------------------------

METRIC_LABELS = {"hr10": "HR@10", "ndcg10": "NDCG@10"}


def plot_metric_vs_dim(ours: pd.DataFrame, published: pd.DataFrame, metric: str,
                       ax: Axes | None = None) -> Axes:
    """Figure 2: a metric against embedding dimension d, ours with 95% intervals over seeds.

    ``ours`` has columns model, dim, <metric>, <metric>_ci95 (see ``summaries.over_seeds``);
    ``published`` has model, embedding_dim, <metric> (He et al. 2017, recast to d) and is drawn
    dashed with hollow markers and labelled as published.
    """
    if ax is None:
        _, ax = plt.subplots()
    for model, group in ours.groupby("model", sort=False):
        group = group.sort_values("dim")
        color = model_color(model)
        ax.plot(group["dim"], group[metric], "-o", color=color, ms=4, lw=1.8,
                label=f"{model} (ours, mean of {int(group['seeds'].min())}+ seeds)")
        ci = group[f"{metric}_ci95"].fillna(0.0)
        ax.fill_between(group["dim"], group[metric] - ci, group[metric] + ci, color=color,
                        alpha=0.25, lw=0)
    for model, group in published.groupby("model", sort=False):
        group = group.sort_values("embedding_dim")
        ax.plot(group["embedding_dim"], group[metric], "--o", color=model_color(model), ms=5,
                mfc="white", lw=1.4, label=f"{model} (published, He et al. 2017)")
    # d on a log2 axis: the small d, where NCF's models sit 8 apart, get as much room as the
    # large ones, and every dimension of either source can carry its label
    ticks = sorted({int(d) for d in ours["dim"]} | {int(d) for d in published["embedding_dim"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(d) for d in ticks])
    ax.minorticks_off()
    ax.set_xlabel("embedding dimension $d$ (log scale)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    return ax


def plot_learning_curves(curves: pd.DataFrame, metric: str, ax: Axes | None = None,
                         by: str = "dim", label: str = "d = {}",
                         color: Callable[[Any], str] | None = None) -> Axes:
    """A metric (or the training loss) against epoch, one line per d, averaged over seeds.

    ``by`` names the column with one line per value (default the dimension), ``label`` the
    legend text with ``{}`` for that value, ``color`` maps a value to its colour (default: a
    viridis ramp, for ordered values such as d; pass ``model_color`` for models).
    """
    if ax is None:
        _, ax = plt.subplots()
    values = sorted(curves[by].unique())
    cmap = plt.get_cmap("viridis")
    for n, value in enumerate(values):
        mean = curves[curves[by] == value].groupby("epoch")[metric].mean()
        # the ramp stops short of viridis' pale yellow end, which is hard to see on white
        line_color = color(value) if color else cmap(0.85 * n / max(len(values) - 1, 1))
        ax.plot(mean.index, mean.to_numpy(), color=line_color, lw=1.5, label=label.format(value))
    ax.set_xlim(curves["epoch"].min(), curves["epoch"].max())  # no ticks past the last epoch
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, "training log loss" if metric == "loss" else metric))
    return ax


def plot_grid_heatmap(table: pd.DataFrame, rows: str, cols: str, metric: str,
                      ax: Axes | None = None, highlight: tuple | None = None) -> Axes:
    """A metric over a two-parameter grid (mean over the other settings), values written in.

    Settings missing from ``table`` stay blank, so a one-at-a-time cross around a chosen point
    reads as a cross.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.6))
    grid = table.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean")
    image = ax.imshow(grid.to_numpy(), cmap="Blues", aspect="auto")
    for (r, c), value in np.ndenumerate(grid.to_numpy()):
        if np.isnan(value):  # a setting the grid did not run
            continue
        weight = "bold" if highlight == (grid.index[r], grid.columns[c]) else "normal"
        ax.text(c, r, f"{value:.4f}", ha="center", va="center", fontsize=10, fontweight=weight,
                color="white" if value > np.nanmean(grid.to_numpy()) else _INK)
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, label=METRIC_LABELS.get(metric, metric))
    return ax


# Our models in Figure 2, in legend order, with the marker that tells apart two models whose
# colours are close (MLP and GMF): one marker per model, ours filled, published hollow.
FIGURE2_MODELS = {"MF": "o", "GMF": "s", "MLP": "^", "NeuMF (no pre-training)": "D",
                  "NeuMF (pre-trained)": "v"}
_FIGURE2_SHORT = {"MF": "MF", "GMF": "GMF", "MLP": "MLP", "NeuMF (no pre-training)": "NeuMF",
                  "NeuMF (pre-trained)": "NeuMF, pre-trained"}


def plot_figure2(results: Any, metric: str, ax: Axes | None = None, legend: bool = True) -> Axes:
    """Figure 2 of the paper re-run: ``metric`` against d, log2 axis.

    ``results`` is a ``summaries.Section3Results`` (attributes mf, ncf, published). Our MF is
    drawn with its 95% interval band, our NCF models as solid lines without bands, He et al.'s
    published numbers dashed with hollow markers; the legend sits below the axes, ours in the
    left column and published in the right.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0))
    mf = results.mf.sort_values("dim")
    color = model_color("MF")
    ci = mf[f"{metric}_ci95"].fillna(0.0)
    ax.fill_between(mf["dim"], mf[metric] - ci, mf[metric] + ci, color=color, alpha=0.22, lw=0,
                    zorder=2)
    low, high = int(mf["seeds"].min()), int(mf["seeds"].max())
    seeds = f"{low}" if low == high else f"{low}-{high}"
    ours = [ax.plot(mf["dim"], mf[metric], "-o", color=color, lw=2.2, ms=5, zorder=5,
                    label=f"MF (mean of {seeds} seeds)")[0]]
    for model, marker in FIGURE2_MODELS.items():
        group = results.ncf[results.ncf["model"] == model].sort_values("dim")
        if model == "MF" or group.empty:
            continue
        ours += ax.plot(group["dim"], group[metric], "-", marker=marker, color=model_color(model),
                        lw=1.4, ms=5, zorder=4, label=_FIGURE2_SHORT[model])
    theirs = []
    for model, marker in FIGURE2_MODELS.items():
        group = results.published[results.published["model"] == model].sort_values("embedding_dim")
        if group.empty:
            continue
        theirs += ax.plot(group["embedding_dim"], group[metric], "--", marker=marker, mfc="white",
                          color=model_color(model), lw=1.2, ms=5.5, zorder=3,
                          label=_FIGURE2_SHORT[model])
    ticks = sorted({int(d) for d in mf["dim"]} | {int(d) for d in results.ncf["dim"]}
                   | {int(d) for d in results.published["embedding_dim"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(d) for d in ticks])
    ax.minorticks_off()
    ax.set_xlabel("embedding dimension $d$ (log scale)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if legend:
        _two_column_legend(ax, ("Trained here (solid)", ours), ("He et al. 2017 (dashed)", theirs))
    return ax


def _two_column_legend(ax: Axes, left: tuple[str, list], right: tuple[str, list]) -> None:
    """A legend below ``ax`` with a titled column of handles on each side."""
    from matplotlib.lines import Line2D

    rows = max(len(left[1]), len(right[1])) + 1
    handles, labels, titles = [], [], []
    for title, column in (left, right):
        blank = [Line2D([], [], linestyle="none")] * (rows - 1 - len(column))
        titles.append(len(labels))
        handles += [Line2D([], [], linestyle="none"), *column, *blank]
        labels += [title, *[h.get_label() for h in column], *[""] * len(blank)]
    legend = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                       frameon=False, handlelength=2.6, columnspacing=2.0, fontsize=10)
    for index in titles:
        legend.get_texts()[index].set_fontweight("bold")
