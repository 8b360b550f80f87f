"""Figures, tables and key numbers of the GMF-regularization chapter (Section 3.3.3).

The training and the Eq. 7 identities live in :mod:`ncf_vs_mf.regularization`; this module
only reads their result tables (``gmf_reg_runs.csv``, ``gmf_reg_curves.csv``) and turns them
into what the page shows. :func:`key_numbers` gives the numbers the chapter's takeaways cite,
for the book's results page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..experiments import get
from ..experiments.store import book_tables
from ..plotting import PALETTE, legend_below, model_color
from ..regularization import VARIANTS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "read_tables",
    "NORM_LABELS",
    "variant_color",
    "lambda_text",
    "key_numbers",
    "hr10_by_lambda",
    "dim_trend",
    "check_table",
    "plot_norms",
    "plot_live_norms",
    "plot_final_norms",
    "plot_metric_vs_reg",
    "plot_metric_vs_dim",
    "plot_check_curves",
]

NORM_LABELS = {"norm_p": "$\\|P\\|_F$ (users)", "norm_q": "$\\|Q\\|_F$ (items)",
               "norm_w": "$\\|\\mathbf{w}\\|$"}
_MARKERS = {"GMF": "o", "GMF-reg-w": "s", "GMF-absorbed": "^", "MF": "D"}
_STYLES = ["-", "-.", ":", (0, (1, 1))]  # one per lambda; dashed is kept for published numbers
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def variant_color(variant: str) -> str:
    """Colour of a variant: GMF's and MF's book-wide colours, two unused ones for the fixes."""
    fixes = {"GMF-reg-w": PALETTE[7], "GMF-absorbed": PALETTE[5]}
    return fixes.get(variant) or model_color(variant)


def lambda_text(reg: float) -> str:
    """A lambda as a reader writes it: 0, 10⁻⁶, 3·10⁻⁵ (down to 0.001 as a decimal)."""
    if reg == 0:
        return "0"
    exponent = math.floor(math.log10(abs(reg)) + 1e-9)
    if -3 <= exponent <= 3:
        return f"{reg:g}"
    mantissa = reg / 10 ** exponent
    if abs(mantissa - round(mantissa)) > 1e-9:
        return f"{reg:g}"
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if round(mantissa) == 1 else f"{round(mantissa)}·{power}"


# ----------------------------------------------------------------------------- numbers


def read_tables(folder: str, epochs: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chapter's runs and curves, every dataset: the committed rows with NCF's training
    settings (``epochs``, Adam lr 0.001, batch 256, 4 negatives, initial std 0.01); rows of any
    other setting are never shown."""
    return book_tables(get("gmf-reg"), folder, dataset=None, epochs=epochs)


def key_numbers(runs: pd.DataFrame, dataset: str = "ml-100k", dim: int = 64,
                epochs: int = 20, upto: float = 3e-5) -> dict[str, float]:
    """The takeaways' numbers: over lambda in [0, upto], GMF's and MF's HR@10 range.

    Means over seeds at each lambda of the ``dataset``/``dim``/``epochs`` runs; keys
    ``{gmf,mf}_hr10_{min,max,range}``, ``lambda_max`` (the largest lambda used),
    ``gmf_hr10_beyond`` (GMF's HR@10 at the largest lambda above ``upto``, NaN if none) and
    ``seeds`` (the fewest seeds of any setting used).
    """
    part = runs[(runs["dataset"] == dataset) & (runs["dim"] == dim)
                & (runs["epochs"] == epochs) & runs["variant"].isin(["GMF", "MF"])]
    means = part.groupby(["variant", "reg"])["hr10"].agg(["mean", "size"]).reset_index()
    inside = means[means["reg"] <= upto]
    out: dict[str, float] = {}
    for variant, prefix in (("GMF", "gmf"), ("MF", "mf")):
        values = inside.loc[inside["variant"] == variant, "mean"]
        low, high = (float(values.min()), float(values.max())) if len(values) else (np.nan,) * 2
        out.update({f"{prefix}_hr10_min": low, f"{prefix}_hr10_max": high,
                    f"{prefix}_hr10_range": high - low})
    beyond = means[(means["variant"] == "GMF") & (means["reg"] > upto)]
    out["gmf_hr10_beyond"] = (float(beyond.sort_values("reg")["mean"].iloc[-1])
                              if len(beyond) else float("nan"))
    out["lambda_max"] = float(inside["reg"].max()) if len(inside) else float("nan")
    out["seeds"] = float(inside["size"].min()) if len(inside) else 0.0
    return out


def hr10_by_lambda(summary: pd.DataFrame, variants: Sequence[str] = VARIANTS) -> pd.DataFrame:
    """Mean HR@10 per lambda (rows, as text) and variant (columns); missing cells NaN."""
    wide = summary.pivot(index="reg", columns="variant", values="hr10")
    wide = wide.reindex(columns=list(variants)).sort_index()
    wide.columns.name = None
    return wide.reset_index().assign(reg=lambda t: t["reg"].map(lambda_text))


def dim_trend(dim_summary: pd.DataFrame) -> pd.DataFrame:
    """Per (reg, model): HR@10 at the smallest and the largest d, and the change between."""
    rows = []
    for (reg, model), group in dim_summary.groupby(["reg", "model"], sort=True):
        group = group.sort_values("dim")
        first, last = float(group["hr10"].iloc[0]), float(group["hr10"].iloc[-1])
        rows.append({"reg": reg, "model": model, "dim_first": int(group["dim"].iloc[0]),
                     "dim_last": int(group["dim"].iloc[-1]), "hr10_first": first,
                     "hr10_last": last, "change": last - first,
                     "hr10_peak": float(group["hr10"].max())})
    return pd.DataFrame(rows)


def check_table(runs: pd.DataFrame, variants: Sequence[str],
                regs: Sequence[float]) -> pd.DataFrame:
    """One row per (variant, lambda) of a small check, run or not (NaN and 0 seeds if not).

    Columns: final and best-epoch HR@10 (best picked on the test set, for diagnosis), the
    best epoch, ||P||, ||w|| (means over seeds) and the number of seeds.
    """
    columns = ["hr10", "hr10_best", "best_epoch", "norm_p", "norm_w"]
    groups = runs.groupby(["variant", "reg"])
    table = groups[columns].mean().assign(seeds=groups.size())
    full = pd.MultiIndex.from_product([list(variants), sorted(regs)], names=["variant", "reg"])
    table = table.reindex(full).reset_index()
    table["seeds"] = table["seeds"].fillna(0).astype(int)
    return table


# ----------------------------------------------------------------------------- figures


def plot_norms(curves: pd.DataFrame, norm: str, ax: Axes | None = None,
               floor: float = 1e-6) -> Axes:
    """One norm against epoch, a line per lambda (mean over seeds), log scale from ``floor``.

    Norms below ``floor`` (collapsed runs reach exactly 0) are drawn at ``floor``.
    """
    from ..plotting import plot_learning_curves

    clipped = curves.assign(**{norm: curves[norm].clip(lower=floor)})
    ax = plot_learning_curves(clipped, norm, ax=ax, by="reg")
    for line, reg in zip(ax.get_lines(), sorted(curves["reg"].unique())):
        line.set_label(f"$\\lambda$ = {lambda_text(reg)}")
    ax.set_yscale("log")
    ax.set_ylabel(NORM_LABELS[norm])
    return ax


def plot_live_norms(curves: pd.DataFrame) -> Figure:
    """||P||, ||Q||, ||w|| against epoch, stacked, a line per lambda; one legend below."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.0), sharex=True)
    for ax, norm in zip(axes, NORM_LABELS):
        plot_norms(curves, norm, ax=ax)
        ax.set_xlabel("")
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    legend_below(fig, ncol=3)
    return fig


def _symlog_lambda(ax: Axes, regs: pd.Series) -> None:
    """A lambda axis: symlog with 0 at the left, ticks at the lambdas used, as 10⁻⁶."""
    values = sorted(set(float(r) for r in regs))
    positive = [r for r in values if r > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.set_xticks(values, [lambda_text(r) for r in values])
    ax.minorticks_off()
    ax.set_xlabel("L2 coefficient $\\lambda$ (0 at the left)")


def plot_final_norms(final: pd.DataFrame) -> Figure:
    """After training: ||P|| (top, every variant) and ||w|| (bottom) against lambda.

    ``final`` has variant, reg, norm_p, norm_w (``regularization.final_summary``); norms
    below 1e-6 are drawn at 1e-6.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    for ax, norm in zip(axes, ["norm_p", "norm_w"]):
        for variant, group in final.groupby("variant", sort=False):
            group = group.sort_values("reg")
            if group[norm].isna().all():
                continue
            ax.plot(group["reg"], group[norm].clip(lower=1e-6), "-", marker=_MARKERS[variant],
                    ms=5, color=variant_color(variant), label=variant)
        ax.set_yscale("log")
        ax.set_ylabel(NORM_LABELS[norm] + " after training")
        _symlog_lambda(ax, final["reg"])
    axes[0].set_xlabel("")
    fig.tight_layout()
    legend_below(fig, ncol=4)
    return fig


def plot_metric_vs_reg(summary: pd.DataFrame, metric: str = "hr10",
                       ax: Axes | None = None) -> Axes:
    """A metric against lambda, one line per variant with its 95% band over seeds.

    ``summary`` comes from ``summaries.over_seeds(runs, ["variant", "reg"])``.
    """
    import matplotlib.pyplot as plt

    from ..plotting import METRIC_LABELS

    if ax is None:
        _, ax = plt.subplots()
    for variant, group in summary.groupby("variant", sort=False):
        group = group.sort_values("reg")
        ci = group[f"{metric}_ci95"].fillna(0.0)
        color = variant_color(variant)
        ax.plot(group["reg"], group[metric], "-", marker=_MARKERS.get(variant, "o"), ms=5,
                color=color, label=variant)
        ax.fill_between(group["reg"], group[metric] - ci, group[metric] + ci, color=color,
                        alpha=0.2, lw=0)
    _symlog_lambda(ax, summary["reg"])
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    return ax


def plot_metric_vs_dim(dim_summary: pd.DataFrame, regs: Sequence[float],
                       metric: str = "hr10") -> Figure:
    """A metric against d for GMF and MF, one stacked panel per lambda, 95% bands."""
    import matplotlib.pyplot as plt

    from ..plotting import METRIC_LABELS

    fig, axes = plt.subplots(len(regs), 1, figsize=(6.4, 2.5 * len(regs) + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    for ax, reg in zip(axes[:, 0], regs):
        part = dim_summary[dim_summary["reg"] == reg]
        for model, group in part.groupby("model", sort=False):
            group = group.sort_values("dim")
            ci = group[f"{metric}_ci95"].fillna(0.0)
            ax.plot(group["dim"], group[metric], "-", marker=_MARKERS.get(model, "o"), ms=5,
                    color=variant_color(model), label=model)
            ax.fill_between(group["dim"], group[metric] - ci, group[metric] + ci,
                            color=variant_color(model), alpha=0.2, lw=0)
        ax.set_title(f"$\\lambda$ = {lambda_text(reg)}", fontsize=10)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_xscale("log", base=2)
        ticks = sorted(int(d) for d in dim_summary["dim"].unique())
        ax.set_xticks(ticks, [str(d) for d in ticks])
        ax.minorticks_off()
    axes[-1, 0].set_xlabel("embedding dimension $d$ (log scale)")
    fig.tight_layout()
    legend_below(fig, ncol=2)
    return fig


def plot_check_curves(curves: pd.DataFrame, reference: float | None = None,
                      reference_label: str = "", metric: str = "hr10") -> Figure:
    """A metric per epoch (from epoch 1), a line per (variant, lambda); optional level line.

    Colour is the variant, line style and marker the lambda; ``reference`` draws a dotted
    horizontal line (another training recipe's final level) labelled ``reference_label``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..plotting import METRIC_LABELS

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    regs = sorted(curves["reg"].unique())
    markers = ["o", "s", "^", "v"]
    for (variant, reg), group in curves[curves["epoch"] >= 1].groupby(["variant", "reg"]):
        mean = group.groupby("epoch")[metric].mean()
        k = regs.index(reg) % len(_STYLES)
        ax.plot(mean.index, mean.to_numpy(), linestyle=_STYLES[k], marker=markers[k], ms=3.5,
                lw=1.4, color=variant_color(variant),
                label=f"{variant}, $\\lambda$ = {lambda_text(reg)}")
    if reference is not None:
        ax.axhline(reference, color=variant_color("MF"), lw=1.0, ls=(0, (1, 2)),
                   label=reference_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    fig.tight_layout()
    legend_below(ax, ncol=2)
    return fig

