"""Tables, figures and key numbers of the sampled-metrics chapter.

Reads the committed tables of ``reproduce sampled-vs-full`` (``sampled_runs.csv``: one row per
model; ``sampled_protocols.csv``: one row per model, protocol, estimator, m and draw) and
turns them into what the page shows: every model under every protocol, the rank correlation
(Kendall's tau) of each protocol's model order with full ranking, the pairs of models whose
order flips, and how far the corrected estimator moves a sampled metric towards the full one.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from ..experiments import get
from ..experiments.sampled import NCF_FAMILIES
from ..experiments.store import book_tables
from ..plotting import PALETTE, legend_below, model_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["read_tables", "model_label", "protocol_table", "draw_spread", "kendall_taus",
           "flipped_pairs", "correction_errors", "mf_versus_learned", "plot_sampled_vs_full",
           "plot_taus"]

FULL = "Full ranking"
NCF = "NCF's 99"
CORRECTED_NCF = "NCF's 99, corrected"


def read_tables(folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chapter's runs and protocol rows (the experiment's default settings, any seed)."""
    runs, curves = book_tables(get("sampled-vs-full"), folder)
    return runs, curves


def model_label(model: str) -> str:
    """``MF-64`` -> ``MF d=64``, ``GMF-8`` -> ``GMF k=8``; baselines keep their name."""
    family, _, size = model.partition("-")
    if family == "MF" and size.isdigit():
        return f"MF d={size}"
    if family in NCF_FAMILIES and size.isdigit():
        return f"{family} k={size}"
    return model


def _column(row: pd.Series) -> str:
    if row["protocol"] == "full":
        return FULL
    if row["protocol"] == "ncf":
        return NCF if row["estimator"] == "sampled" else CORRECTED_NCF
    suffix = "" if row["estimator"] == "sampled" else ", corrected"
    return f"m = {row['m']}{suffix}"


def _labelled(curves: pd.DataFrame) -> pd.DataFrame:
    return curves.assign(column=curves.apply(_column, axis=1),
                         label=curves["model"].map(model_label))


def protocol_table(curves: pd.DataFrame, metric: str = "hr10", corrected: bool = False
                   ) -> pd.DataFrame:
    """Models (rows, best full-ranking metric first) under every protocol (columns; the
    uniform ones averaged over draws); ``corrected`` adds the corrected columns."""
    shown = _labelled(curves)
    if not corrected:
        shown = shown[shown["estimator"].isin(["sampled", "exact"])]
    table = shown.pivot_table(index="label", columns="column", values=metric, aggfunc="mean")
    sizes = sorted(curves.loc[curves["protocol"] == "uniform", "m"].unique())
    order = [FULL, NCF] + [f"m = {m}" for m in sizes]
    if corrected:
        order += [CORRECTED_NCF] + [f"m = {m}, corrected" for m in sizes]
    table = table[[c for c in order if c in table.columns]]
    return table.sort_values(FULL, ascending=False).rename_axis("Model").reset_index()


def draw_spread(curves: pd.DataFrame, metric: str = "hr10") -> pd.DataFrame:
    """Per m: the largest and the mean standard deviation over draws of a model's sampled
    metric (how much one draw of negatives moves a number)."""
    uniform = curves[(curves["protocol"] == "uniform") & (curves["estimator"] == "sampled")]
    spread = uniform.groupby(["m", "model"])[metric].std(ddof=1).groupby("m")
    return pd.DataFrame({"largest": spread.max(), "mean": spread.mean()}).reset_index()


def kendall_taus(curves: pd.DataFrame, metric: str = "hr10") -> pd.DataFrame:
    """Kendall's tau between each sampled protocol's order of the models and full ranking's:
    one row per protocol, estimator, m and draw."""
    full = curves[curves["protocol"] == "full"].set_index("model")[metric]
    rows = []
    sampled = curves[curves["protocol"] != "full"]
    for (protocol, estimator, m, draw), group in sampled.groupby(
            ["protocol", "estimator", "m", "draw"]):
        values = group.set_index("model")[metric]
        tau = stats.kendalltau(values, full.loc[values.index]).statistic
        rows.append({"protocol": protocol, "estimator": estimator, "m": int(m),
                     "draw": int(draw), "tau": float(tau)})
    return pd.DataFrame(rows)


def flipped_pairs(curves: pd.DataFrame, protocol: str, m: int, metric: str = "hr10",
                  estimator: str = "sampled") -> pd.DataFrame:
    """Pairs of models ordered one way by full ranking and the other way by the protocol
    (uniform: the mean over draws, and in how many draws the pair flips)."""
    full = curves[curves["protocol"] == "full"].set_index("model")[metric]
    chosen = curves[(curves["protocol"] == protocol) & (curves["m"] == m)
                    & (curves["estimator"] == estimator)]
    per_draw = chosen.pivot_table(index="model", columns="draw", values=metric)
    mean = per_draw.mean(axis=1)
    rows = []
    for a, b in itertools.combinations(sorted(mean.index, key=lambda x: -full[x]), 2):
        flips = int(((per_draw.loc[a] - per_draw.loc[b]) * np.sign(full[a] - full[b]) < 0).sum())
        if full[a] != full[b] and (mean[a] - mean[b]) * (full[a] - full[b]) < 0:
            rows.append({"better": model_label(a), "worse": model_label(b),
                         "full_gap": full[a] - full[b], "sampled_gap": mean[a] - mean[b],
                         "draws_flipped": flips, "draws": per_draw.shape[1]})
    return pd.DataFrame(rows, columns=["better", "worse", "full_gap", "sampled_gap",
                                       "draws_flipped", "draws"])


def correction_errors(curves: pd.DataFrame, metric: str = "hr10") -> pd.DataFrame:
    """Per protocol and m: the mean absolute error of the sampled and of the corrected metric
    against the full one, over models and draws."""
    full = curves[curves["protocol"] == "full"].set_index("model")[metric]
    sampled = curves[curves["protocol"] != "full"]
    error = (sampled[metric] - sampled["model"].map(full)).abs()
    table = sampled.assign(error=error).pivot_table(index=["protocol", "m"], columns="estimator",
                                                    values="error", aggfunc="mean")
    table = table.reset_index()[["protocol", "m", "sampled", "bv"]]
    return table.sort_values(["protocol", "m"], ascending=[False, True])


# Embedding coordinates per side of NCF's learned similarities: d = 2k (MLP), 3k (NeuMF).
PER_SIDE = {"MLP": 2, "NeuMF": 3}


def mf_versus_learned(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Every MF run against every MLP and NeuMF run: the HR@10 gap under NCF's protocol and
    under full ranking, and one sentence saying how many of MF's sampled wins survive."""
    by_model = runs.set_index("model")
    mf = [m for m in by_model.index if m.startswith("MF-")]
    learned = [m for m in by_model.index if m.partition("-")[0] in PER_SIDE]
    pairs = pd.DataFrame(
        [{"mf": model_label(a), "other": model_label(b),
          "other_d": PER_SIDE[b.partition("-")[0]] * int(b.partition("-")[2]),
          "ncf_gap": by_model.loc[a, "hr10_ncf"] - by_model.loc[b, "hr10_ncf"],
          "full_gap": by_model.loc[a, "hr10_full"] - by_model.loc[b, "hr10_full"]}
         for a in mf for b in learned],
        columns=["mf", "other", "other_d", "ncf_gap", "full_gap"])
    if pairs.empty:
        return pairs, ("No MF, MLP or NeuMF pair is in the committed table yet, so this "
                       "chapter does not measure the comparison.")
    wins = pairs[pairs["ncf_gap"] > 0]
    return pairs, (f"MF is above MLP or NeuMF in {len(wins)} of these {len(pairs)} pairs "
                   f"under NCF's protocol and in {int((pairs['full_gap'] > 0).sum())} under "
                   f"full ranking; {int((wins['full_gap'] > 0).sum())} of its sampled wins "
                   "survive.")


def _color(model: str) -> str:
    family = model.partition("-")[0]
    return model_color(family) if family in ("MF",) + NCF_FAMILIES else PALETTE[8]


def plot_sampled_vs_full(runs: pd.DataFrame) -> Figure:
    """Each model's HR@10 under full ranking (left) and NCF's protocol (right), one row per
    model in the order of full ranking: where the right panel is not monotonic, the sampled
    protocol orders models differently. Rows are labelled, so no label overlaps a point."""
    import matplotlib.pyplot as plt

    order = runs.sort_values("hr10_full").reset_index(drop=True)
    figure, axes = plt.subplots(1, 2, figsize=(7.0, 0.28 * len(order) + 1.4), sharey=True)
    y = np.arange(len(order))
    colors = [_color(m) for m in order["model"]]
    for ax, column, label in zip(axes, ("hr10_full", "hr10_ncf"),
                                 ("HR@10, full ranking", "HR@10, NCF's 99 negatives")):
        ax.hlines(y, order[column].min(), order[column], color="0.85", lw=1, zorder=1)
        ax.scatter(order[column], y, c=colors, s=30, zorder=3)
        ax.set_xlabel(label)
    axes[0].set_yticks(y, [model_label(m) for m in order["model"]])
    figure.tight_layout()
    return figure


def plot_taus(taus: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Kendall's tau with full ranking against m: the plain and the corrected sampled metric
    (mean over draws, the range of the draws shaded) and NCF's 99 fixed negatives."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots()[1]
    uniform = taus[taus["protocol"] == "uniform"]
    names = {"sampled": "uniform m, sampled", "bv": "uniform m, corrected (BV)"}
    for (estimator, label), color in zip(names.items(), PALETTE):
        part = uniform[uniform["estimator"] == estimator].groupby("m")["tau"]
        ax.plot(part.mean().index, part.mean(), "o-", color=color, label=label)
        ax.fill_between(part.mean().index, part.min(), part.max(), color=color, alpha=0.2)
    ncf = taus[taus["protocol"] == "ncf"]
    for (estimator, label), marker, color in zip({"sampled": "NCF's 99, sampled",
                                                  "bv": "NCF's 99, corrected (BV)"}.items(),
                                                 "sD", (PALETTE[4], PALETTE[3])):
        value = ncf.loc[ncf["estimator"] == estimator, "tau"]
        ax.scatter(ncf.loc[value.index, "m"], value, marker=marker, s=50, color=color,
                   zorder=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("sampled negatives m")
    ax.set_ylabel("Kendall's τ with full ranking")
    legend_below(ax)
    return ax
