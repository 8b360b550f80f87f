"""Figures and summary tables of the chapter "Serving cost" (book/serving.md).

Everything here reads the committed tables of ``ncf-vs-mf reproduce serving``
(``results/serving/``, in the shape of one record by :func:`load_record`) or the chapter's
live rows and turns them into what the page shows: figures with one colour per index and per model and a complete legend below the data,
tables with words as headers (for :func:`ncf_vs_mf.tables.show`), and :func:`key_numbers`,
the numbers the takeaways cite. The measurements themselves are declared in
:mod:`ncf_vs_mf.experiments.serving` on the primitives of :mod:`ncf_vs_mf.serving`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ncf_vs_mf import serving
from ncf_vs_mf.experiments.serving import INDEXES, MLP_SIDE, SCORING, SERVING
from ncf_vs_mf.experiments.store import tables
from ncf_vs_mf.plotting import PALETTE, legend_below, model_color

__all__ = [
    "FAMILY_LABELS", "INDEX_LABELS", "INDEX_COLORS", "CATALOG_LABELS", "index_style",
    "math_exponent", "plot_scoring_vs_n", "plot_scoring_vs_d", "plot_recall_latency",
    "plot_latency_vs_n", "plot_two_stage_recall", "plot_two_stage_latency",
    "multiply_adds", "cost_ratios", "batch_speedup", "live_index_summary",
    "latency_exponents", "index_builds", "mlp_against_indexes", "advice_for_page",
    "key_numbers", "load_record",
]

FAMILY_LABELS = {"dot": "dot product", "mlp": "MLP", "neumf": "NeuMF"}
INDEX_LABELS = {"exact": "Exact (brute force)", "hnsw": "HNSW, reduction",
                "hnsw-ip": "HNSW, inner product", "ivf": "IVF, reduction",
                "ivf-ip": "IVF, inner product", "scann": "ScaNN"}
# One colour per index family (none of them a model's colour on this page); the
# inner-product variants of HNSW and IVF are dashed.
INDEX_COLORS = {"exact": PALETTE[7], "hnsw": PALETTE[5], "ivf": PALETTE[4],
                "scann": PALETTE[3]}
CATALOG_LABELS = {"ml-1m": "ML-1M (our MF's items)", "trained-like": "Trained-like",
                  "isotropic": "Isotropic"}
_KNOBS = {"exact": "—", "hnsw": "efSearch", "ivf": "nprobe", "scann": "leaves searched"}


def index_style(index: str) -> dict[str, Any]:
    """Colour, line style and legend label of an index ('hnsw-ip' dashed, like 'ivf-ip')."""
    return {"color": INDEX_COLORS[index.removesuffix("-ip")],
            "linestyle": "--" if index.endswith("-ip") else "-",
            "label": INDEX_LABELS.get(index, index)}


def math_exponent(symbol: str, exponent: float) -> str:
    """A power as matplotlib math text: math_exponent('n', 1.19) == '$n^{1.19}$'."""
    return f"${symbol}^{{{exponent:.2f}}}$"


def _tex_count(n: int) -> str:
    """An integer for math text with thousands separators: 3706 -> '3{,}706'."""
    return f"{int(n):,}".replace(",", "{,}")


def _plain_log_ticks(axis) -> None:
    """Label a log axis at 1, 2, 5 times powers of ten as plain numbers (0.02, not 2x10^-2)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _dimension_ticks(ax: Axes, dims) -> None:
    """The measured dimensions as the only labels of a log x axis."""
    from matplotlib.ticker import NullFormatter

    dims = sorted({int(d) for d in dims})
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("embedding dimension $d$")


def _new_axes(ax: Axes | None) -> Axes:
    """``ax``, or the axes of a new figure of the book's default size."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


# --------------------------------------------------------------------------------------
# Reading the committed tables
# --------------------------------------------------------------------------------------

_STAGE_LABELS = {"two-stage-exact": "two-stage (exact dot + MLP)",
                 "two-stage-scann": "two-stage (scann + MLP)"}
_SCORING_NAMES = {"mlp-rerank": ("mlp-rerank", "cached"), "select": ("select", "torch.topk")}


def load_record(folder: str | Path, recall_target: float = 0.9,
                rerank: int = 200) -> dict[str, Any]:
    """The tables of ``reproduce serving`` in ``folder`` as one record of row lists.

    Keys: ``scoring`` (family, variant, n, d, batch, seconds, seconds_per_user; the MLP
    re-scoring's n is its candidates), ``index_curves`` and ``index_builds`` (per catalog, n,
    d and index), ``two_stage`` (per catalog and n: the MLP's brute force, the dot product
    alone and each two-stage C), ``catalog_stats`` (per catalog, the stats row at its largest
    n), ``recall_target`` and ``parameters`` (``rerank``, and ``index_dim``, the one d the
    indexes were measured at): what :func:`key_numbers` and the summaries of
    :mod:`ncf_vs_mf.serving` take. Of cells measuring one method on the same catalogue, n, d
    and batch (e.g. with other threads or options) the last published is used.
    """
    runs_table, curves_table = tables(SERVING, Path(folder))
    if not runs_table.path.is_file():
        raise FileNotFoundError(f"{runs_table.path} is missing: run `ncf-vs-mf reproduce "
                                "serving --publish` (see its --help)")
    runs, curves = runs_table.read(), curves_table.read()
    runs = runs.drop_duplicates(["method", "catalog", "n", "d", "batch"], keep="last")
    key = list(SERVING.key)
    curve_rows: dict[tuple, list[dict[str, Any]]] = {}
    for row in curves.to_dict("records"):
        curve_rows.setdefault(tuple(row[k] for k in key), []).append(row)
    record: dict[str, Any] = {"scoring": [], "index_curves": [], "index_builds": [],
                              "two_stage": [], "catalog_stats": []}
    stats: dict[str, dict[str, Any]] = {}
    for run in runs.to_dict("records"):
        method, where = run["method"], {"catalog": run["catalog"], "n": int(run["n"]),
                                        "d": int(run["d"])}
        own = curve_rows.get(tuple(run[k] for k in key), [])
        if method in SCORING:
            family, variant = _SCORING_NAMES.get(method, method.split("-", 1))
            n = int(run["candidates"] if method == "mlp-rerank" else run["n"])
            record["scoring"].append({"family": family, "variant": variant, "n": n,
                                      "d": int(run["d"]), "batch": int(run["batch"]),
                                      "seconds": run["seconds"],
                                      "seconds_per_user": run["seconds_per_user"]})
        elif method == "stats":
            if run["catalog"] not in stats or run["n"] > stats[run["catalog"]]["n"]:
                stats[run["catalog"]] = run
        elif method in INDEXES:
            knob = run["knob"] if isinstance(run["knob"], str) else ""
            record["index_builds"].append({**where, "index": method,
                                           "build_seconds": run["build_seconds"],
                                           "memory_bytes": int(run["memory_bytes"]),
                                           "vectors_bytes": int(run["vectors_bytes"])})
            record["index_curves"] += [{**where, "index": method, "knob": knob,
                                        "setting": int(c["setting"]), "recall": c["recall"],
                                        "latency_ms": c["latency_ms"],
                                        "latency_p90_ms": c["latency_p90_ms"],
                                        "latency_queries": int(c["queries_timed"])}
                                       for c in own]
        elif method in MLP_SIDE:
            queries = int(run["stage_queries"])
            if method == "mlp-top-k":
                record["two_stage"] += [
                    {**where, "method": "exact MLP (brute force)", "candidates": int(run["n"]),
                     "recall_vs_exact_mlp": 1.0, "latency_ms": run["latency_ms"],
                     "queries": queries},
                    {**where, "method": "exact dot (no MLP)", "candidates": int(run["k"]),
                     "recall_vs_exact_mlp": run["dot_alone_recall"], "latency_ms": np.nan,
                     "queries": queries}]
            else:
                record["two_stage"] += [{**where, "method": _STAGE_LABELS[method],
                                         "candidates": int(c["setting"]),
                                         "recall_vs_exact_mlp": c["recall"],
                                         "latency_ms": c["latency_ms"], "queries": queries}
                                        for c in own]
    record["catalog_stats"] = [{"catalog": catalog, **{k: run[k] for k in (
        "item_spectrum_decay", "user_spectrum_decay", "item_log_norm_spread")}}
        for catalog, run in stats.items()]
    dims = {row["d"] for row in record["index_builds"]}
    if len(dims) > 1:
        raise ValueError(f"{runs_table.path}: indexes measured at several d {sorted(dims)}; "
                         "the chapter compares them at one")
    record["recall_target"] = float(recall_target)
    record["parameters"] = {"rerank": int(rerank), "index_dim": dims.pop() if dims else None}
    return record


# --------------------------------------------------------------------------------------
# Scoring one user against n items
# --------------------------------------------------------------------------------------

def plot_scoring_vs_n(best: pd.DataFrame, families: Sequence[str] = ("dot", "neumf", "mlp"),
                      batch: int = 1, min_n: int = 10_000) -> Figure:
    """Time per user against n (log-log), one panel per family stacked, one line per d.

    Each panel's title gives the fitted t = c n^a d^b (points with n >= min_n) as math.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(families), 1, figsize=(6.4, 2.5 * len(families) + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    fits = serving.scoring_fits(best, batch, min_n)
    dims = sorted(best.loc[best["family"].isin(families), "d"].unique())
    cmap = plt.get_cmap("viridis")
    for ax, family in zip(axes[:, 0], families):
        sub = best[(best["family"] == family) & (best["batch"] == batch)]
        for j, d in enumerate(dims):
            g = sub[sub["d"] == d].sort_values("n")
            ax.loglog(g["n"], g["seconds_per_user"] * 1e3, "o-", ms=3.5,
                      color=cmap(0.85 * j / max(len(dims) - 1, 1)), label=f"$d = {d}$")
        fit = fits.get(family)
        slope = (f": time $\\propto$ {math_exponent('n', fit['n_exponent'])}"
                 f" {math_exponent('d', fit['d_exponent'])}" if fit else "")
        label = FAMILY_LABELS.get(family, family)
        ax.set_title(label[0].upper() + label[1:] + slope, fontsize=10)
        ax.set_ylabel("ms per user")
    axes[-1, 0].set_xlabel("items $n$")
    fig.tight_layout()
    legend_below(fig, ncol=len(dims))
    return fig


def default_scoring_n(best: pd.DataFrame, batch: int = 1) -> int:
    """The largest n at which dot, NeuMF and MLP were all timed at every d."""
    sub = best[(best["batch"] == batch) & best["family"].isin(FAMILY_LABELS)]
    dims = sub["d"].nunique()
    counts = sub.groupby(["n", "family"])["d"].nunique().unstack()
    complete = counts[(counts == dims).all(axis=1)]
    return int(complete.index.max())


def plot_scoring_vs_d(best: pd.DataFrame, n: int | None = None, ax: Axes | None = None,
                      batch: int = 1) -> Axes:
    """Time to score one user against n items, dot product vs NeuMF vs MLP, as d grows.

    Log-log, one line per family in the book's model colours, the fitted exponent of d in
    each legend label; ``n`` defaults to the largest catalog every family was timed on.
    """
    ax = _new_axes(ax)
    n = default_scoring_n(best, batch) if n is None else n
    sub = best[(best["n"] == n) & (best["batch"] == batch) & best["family"].isin(FAMILY_LABELS)]
    colours = {"dot": model_color("MF"), "neumf": model_color("NeuMF"),
               "mlp": model_color("MLP")}
    for family, marker in (("dot", "o"), ("neumf", "s"), ("mlp", "^")):
        g = sub[sub["family"] == family].sort_values("d")
        if len(g) < 2:
            continue
        exponent, _ = serving.fit_power_law(g["d"], g["seconds_per_user"])
        ax.loglog(g["d"], g["seconds_per_user"] * 1e3, marker + "-", color=colours[family],
                  label=f"{FAMILY_LABELS[family]}: time $\\propto$ "
                        f"{math_exponent('d', exponent)}")
    _dimension_ticks(ax, sub["d"])
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel(f"ms to score one user\nagainst $n = {_tex_count(n)}$ items")
    legend_below(ax, ncol=1)
    return ax


def multiply_adds(dims: Sequence[int]) -> pd.DataFrame:
    """Multiply-adds per (user, item) pair of the hidden layers: dot d, MLP [4d, 2d, d] 18 d^2,
    its first layer's item half cached 10 d^2 (output layer not counted)."""
    from ncf_vs_mf.models import mlp_weight_count, paper_hidden

    rows = []
    for d in dims:
        every = mlp_weight_count(d, paper_hidden(d))
        rows.append({"d": int(d), "Dot product": int(d), "MLP, every layer": every,
                     "MLP, first layer cached": every - 8 * int(d) ** 2})
    return pd.DataFrame(rows)


def cost_ratios(best: pd.DataFrame, batch: int = 1) -> pd.DataFrame:
    """Per d: MLP and NeuMF time over the dot product's at the largest n timed for both."""
    mlp = serving.cost_ratio(best, "mlp", "dot", batch)
    neumf = serving.cost_ratio(best, "neumf", "dot", batch)
    table = mlp.merge(neumf, on=["d", "n"], suffixes=("_mlp", "_neumf"))
    return table.rename(columns={"n": "At n items", "ratio_mlp": "MLP / dot product",
                                 "ratio_neumf": "NeuMF / dot product"})


def batch_speedup(best: pd.DataFrame, families: Sequence[str] = ("dot", "mlp")) -> pd.DataFrame:
    """Per d and family: time per user alone over time per user in the largest batch.

    Taken at the largest n at which both were timed (the column "at n" says which).
    """
    batch = int(best["batch"].max())
    rows = []
    for d in sorted(best.loc[best["family"].isin(families), "d"].unique()):
        row: dict[str, Any] = {"d": int(d)}
        for family in families:
            sub = best[(best["family"] == family) & (best["d"] == d)]
            times = sub.pivot_table(index="n", columns="batch", values="seconds_per_user")
            both = times.dropna() if {1, batch} <= set(times.columns) else times.iloc[:0]
            label = FAMILY_LABELS[family][0].upper() + FAMILY_LABELS[family][1:]
            if len(both):
                n = int(both.index.max())
                row[f"{label}: speed-up"] = float(both.loc[n, 1] / both.loc[n, batch])
                row[f"{label}: at n"] = n
            else:
                row[f"{label}: speed-up"], row[f"{label}: at n"] = np.nan, np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Retrieval indexes
# --------------------------------------------------------------------------------------

def live_index_summary(rows: Sequence[Mapping], target: float) -> pd.DataFrame:
    """One row per index from live rows {index, setting, recall}: recall at the cheapest and
    the most thorough setting, and the cheapest setting reaching ``target`` (— : none, or an
    index without a knob)."""
    table = pd.DataFrame(list(rows))
    out = []
    for index, g in table.groupby("index", sort=False):
        g = g.sort_values("setting")
        reaching = g[g["recall"] >= target]
        several = g["setting"].nunique() > 1
        out.append({"Index": INDEX_LABELS.get(index, index),
                    "Knob": _KNOBS[index.removesuffix("-ip")],
                    "Recall@10, cheapest": float(g["recall"].iloc[0]),
                    "Recall@10, thorough": float(g["recall"].iloc[-1]),
                    f"First setting ≥ {target:g}":
                        int(reaching["setting"].iloc[0]) if len(reaching) and several
                        else np.nan})
    return pd.DataFrame(out)


def plot_recall_latency(curves: pd.DataFrame, panels: Sequence[tuple[str, int]],
                        target: float | None = None) -> Figure:
    """Recall@10 against median single-query latency, one panel per (catalog, n), stacked.

    One curve per index as its knob goes from cheap to thorough, exact search as one point;
    a dotted line at the recall ``target``; one legend below naming every line drawn.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 2.7 * len(panels) + 0.9),
                             sharey=True, squeeze=False)
    for ax, (catalog, n) in zip(axes[:, 0], panels):
        sub = curves[(curves["catalog"] == catalog) & (curves["n"] == n)]
        for index in INDEX_LABELS:
            g = sub[sub["index"] == index]
            if not len(g):
                continue
            style = {"marker": ".", "ms": 6, **index_style(index)}
            if index == "exact":
                style.update(linestyle="none", marker="o", ms=7)
            ax.plot(g["latency_ms"], g["recall"], **style)
        if target is not None:
            ax.axhline(target, color=PALETTE[8], lw=1.0, linestyle=":",
                       label=f"recall@10 = {target:g}")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("recall@10")
        ax.set_title(f"{CATALOG_LABELS.get(catalog, catalog)}, $n = {_tex_count(n)}$",
                     fontsize=10)
    axes[-1, 0].set_xlabel("median latency per query, one thread (ms)")
    fig.tight_layout()
    legend_below(fig, ncol=2)
    return fig


def plot_latency_vs_n(at_recall: pd.DataFrame, catalogs: Sequence[str]) -> Figure:
    """Latency at the recall target against n (log-log), one panel per catalog, stacked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(catalogs), 1, figsize=(6.4, 2.8 * len(catalogs) + 0.9),
                             sharex=True, sharey=True, squeeze=False)
    for ax, catalog in zip(axes[:, 0], catalogs):
        sub = at_recall[at_recall["catalog"] == catalog].dropna(subset=["latency_ms"])
        for index in INDEX_LABELS:
            g = sub[sub["index"] == index].sort_values("n")
            if len(g):
                ax.loglog(g["n"], g["latency_ms"], marker="o", **index_style(index))
        _plain_log_ticks(ax.yaxis)
        ax.set_ylabel("median latency (ms)")
        ax.set_title(CATALOG_LABELS.get(catalog, catalog), fontsize=10)
    axes[-1, 0].set_xlabel("items $n$")
    fig.tight_layout()
    legend_below(fig, ncol=2)
    return fig


def latency_exponents(at_recall: pd.DataFrame, catalogs: Sequence[str]) -> pd.DataFrame:
    """Exponent a of latency ~ n^a at the recall target, one row per index, a column per
    catalog (NaN where fewer than two sizes reached the target)."""
    slopes = serving.latency_slopes(at_recall[at_recall["catalog"].isin(catalogs)])
    rows = []
    for index in INDEX_LABELS:
        if any(index in slopes.get(c, {}) for c in catalogs):
            row: dict[str, Any] = {"Index": INDEX_LABELS[index]}
            for catalog in catalogs:
                value = slopes.get(catalog, {}).get(index)
                row[CATALOG_LABELS.get(catalog, catalog)] = np.nan if value is None else value
            if any(not np.isnan(v) for k, v in row.items() if k != "Index"):
                rows.append(row)
    return pd.DataFrame(rows)


def index_builds(builds: pd.DataFrame, n: int, catalogs: Sequence[str]) -> pd.DataFrame:
    """Per index at n items: its size (MB, serialised) and build time (s) on each catalog."""
    sub = builds[builds["n"] == n]
    rows = []
    for index in INDEX_LABELS:
        g = sub[sub["index"] == index].set_index("catalog")
        if not len(g):
            continue
        row: dict[str, Any] = {"Index": INDEX_LABELS[index],
                               "Size (MB)": float(g["memory_bytes"].max() / 1e6)}
        for catalog in catalogs:
            row[f"Build, {CATALOG_LABELS.get(catalog, catalog)} (s)"] = (
                float(g.loc[catalog, "build_seconds"]) if catalog in g.index else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# The MLP side: brute force against indexes, and the two-stage pipeline
# --------------------------------------------------------------------------------------

def mlp_against_indexes(best: pd.DataFrame, at_recall: pd.DataFrame, d: int,
                        catalog: str = "trained-like") -> pd.DataFrame:
    """Per n: ms per request of the exact MLP and dot top-10 (score all, select 10) at d, and
    of the fastest index reaching the recall target on ``catalog`` (with its name)."""
    one = best[best["batch"] == 1]
    select = one[one["family"] == "select"].set_index("n")["seconds_per_user"]
    mlp = one[(one["family"] == "mlp") & (one["d"] == d)].set_index("n")["seconds_per_user"]
    dot = one[(one["family"] == "dot") & (one["d"] == d)].set_index("n")["seconds_per_user"]
    indexes = at_recall[(at_recall["catalog"] == catalog) & (at_recall["index"] != "exact")]
    indexes = indexes.dropna(subset=["latency_ms"])
    rows = []
    for n in sorted(set(indexes["n"]) & set(select.index)):
        fastest = indexes[indexes["n"] == n].sort_values("latency_ms").iloc[0]
        rows.append({"Items n": int(n),
                     "MLP, exact (ms)": (mlp[n] + select[n]) * 1e3 if n in mlp else np.nan,
                     "Dot, exact (ms)": (dot[n] + select[n]) * 1e3 if n in dot else np.nan,
                     "Fastest index (ms)": float(fastest["latency_ms"]),
                     "Index": INDEX_LABELS[fastest["index"]]})
    return pd.DataFrame(rows)


_SHORT_CATALOG = {"ml-1m": "ML-1M", "trained-like": "trained-like", "isotropic": "isotropic"}
_STAGE_STYLE = {"ml-1m": {"marker": "o", "linestyle": "-"},
                "trained-like": {"marker": "s", "linestyle": "-."}}


def _two_stage_lines(rows: pd.DataFrame):
    """(catalog, n, retriever, rows) of every two-stage curve, largest n per catalog."""
    table = pd.DataFrame(rows)
    for catalog, n in table.groupby("catalog")["n"].max().items():
        sub = table[(table["catalog"] == catalog) & (table["n"] == n)]
        stages = sub[sub["method"].str.startswith("two-stage")]
        for method, g in stages.groupby("method"):
            yield catalog, int(n), ("scann" if "scann" in method else "exact"), g, sub


def _stage_label(retriever: str, catalog: str, n: int) -> str:
    """Legend text of one two-stage curve."""
    first = "ScaNN" if retriever == "scann" else "exact dot product"
    return f"{first} + MLP, {_SHORT_CATALOG.get(catalog, catalog)}, n = {n:,}"


def plot_two_stage_recall(rows: Sequence[Mapping] | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Recall@10 of the two-stage pipeline against the MLP's exact top-10, against C."""
    ax = _new_axes(ax)
    for catalog, n, retriever, g, _ in _two_stage_lines(rows):
        g = g.sort_values("candidates")
        ax.semilogx(g["candidates"], g["recall_vs_exact_mlp"], color=INDEX_COLORS[retriever],
                    **_STAGE_STYLE.get(catalog, {"marker": "^"}),
                    label=_stage_label(retriever, catalog, n))
    _plain_log_ticks(ax.xaxis)
    ax.set_ylim(0, 1.02)
    ax.set(xlabel="candidates $C$ retrieved by dot product",
           ylabel="recall@10 against\nthe MLP's exact top-10")
    legend_below(ax, ncol=1)
    return ax


def plot_two_stage_latency(rows: Sequence[Mapping] | pd.DataFrame,
                           ax: Axes | None = None) -> Axes:
    """Median latency per request of the two-stage pipeline against C, and of the exact MLP
    top-10 by brute force (orange, horizontal) on each catalog."""
    ax = _new_axes(ax)
    brute = {}
    for catalog, n, retriever, g, sub in _two_stage_lines(rows):
        g = g.sort_values("candidates")
        style = _STAGE_STYLE.get(catalog, {"marker": "^", "linestyle": "-"})
        ax.loglog(g["candidates"], g["latency_ms"], color=INDEX_COLORS[retriever], **style,
                  label=_stage_label(retriever, catalog, n))
        exact = sub[sub["method"].str.startswith("exact MLP")]["latency_ms"]
        if len(exact):
            brute[(catalog, n)] = (float(exact.iloc[0]), style["linestyle"])
    for (catalog, n), (ms, linestyle) in brute.items():
        ax.axhline(ms, color=model_color("MLP"), lw=1.4, linestyle=linestyle,
                   label=f"MLP by brute force, {_SHORT_CATALOG.get(catalog, catalog)}, "
                         f"n = {n:,}")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set(xlabel="candidates $C$ retrieved by dot product",
           ylabel="median latency per request,\none thread (ms)")
    legend_below(ax, ncol=1)
    return ax


def advice_for_page(advice: pd.DataFrame, model: str) -> pd.DataFrame:
    """One model's half ('dot' or 'MLP') of :func:`ncf_vs_mf.serving.advice_table`: items n,
    d and one column per budget, index names as on the page, "none" where nothing fits."""
    names = {"exact": "exact", "hnsw": "HNSW (reduction)", "hnsw-ip": "HNSW (inner product)",
             "ivf": "IVF (reduction)", "ivf-ip": "IVF (inner product)", "scann": "ScaNN"}

    def word(cell: Any) -> Any:
        if not isinstance(cell, str):
            return cell
        base, estimate = (cell[:-2], " ~") if cell.endswith(" ~") else (cell, "")
        return "none" if base == "-" else names.get(base, base) + estimate

    prefix = f"{model}, "
    budgets = [c for c in advice.columns if str(c).startswith(prefix)]
    if not budgets:
        raise ValueError(f"no columns for model {model!r}: {list(advice.columns)}")
    table = advice[["n", "d", *budgets]].copy()
    for column in budgets:
        table[column] = table[column].map(word)
    return table.rename(columns={"n": "Items n", **{c: f"≤ {c[len(prefix):]}" for c in budgets}})


# --------------------------------------------------------------------------------------
# The numbers the chapter's takeaways cite
# --------------------------------------------------------------------------------------

def key_numbers(record: Mapping[str, Any], target: float | None = None,
                rerank: int | None = None) -> dict[str, Any]:
    """What the takeaways of "Serving cost" cite, computed from one benchmark record.

    Keys: scoring exponents (``dot_d_exponent``, ``mlp_d_exponent``, ``dot_n_exponent``,
    ``mlp_n_exponent``), the MLP/dot time ratio at the largest d (``ratio_d``,
    ``mlp_over_dot``, ``neumf_over_dot``), exact and fastest-index latency at the recall
    target on the largest trained-like and isotropic catalogs (``index_n``, ``exact_ms``,
    ``fastest_index``, ``fastest_ms``, ``index_speedup``, ``exact_slope``,
    ``fastest_slope``, ``iso_exact_ms``, ``iso_scann_ms``, ``iso_ivf_ms``), and the two-stage
    pipeline on the largest trained-like catalog with ``rerank`` candidates
    (``two_stage_n``, ``mlp_brute_ms``, ``dot_alone_recall``, ``rerank``,
    ``scann_stage_recall``, ``scann_stage_ms``, ``exact_stage_recall``).
    """
    target = float(record["recall_target"] if target is None else target)
    rerank = int(record["parameters"]["rerank"] if rerank is None else rerank)
    best = serving.best_scoring(record["scoring"])
    fits = serving.scoring_fits(best)
    ratios = cost_ratios(best).set_index("d")
    d_max = int(ratios.index.max())
    at = serving.latency_vs_n(record["index_curves"], target)
    synthetic = at[at["catalog"] != "ml-1m"]
    n_max = int(synthetic["n"].max())
    slopes = serving.latency_slopes(synthetic)

    def latency(catalog: str, index: str) -> float:
        row = at[(at["catalog"] == catalog) & (at["index"] == index) & (at["n"] == n_max)]
        return float(row["latency_ms"].iloc[0]) if len(row) else float("nan")

    trained = synthetic[(synthetic["catalog"] == "trained-like") & (synthetic["n"] == n_max)
                        & (synthetic["index"] != "exact")].dropna(subset=["latency_ms"])
    fastest = trained.sort_values("latency_ms").iloc[0]
    exact_ms = latency("trained-like", "exact")
    iso_ivf = [latency("isotropic", i) for i in ("ivf", "ivf-ip")]
    stages = pd.DataFrame(record["two_stage"])
    stages = stages[stages["catalog"] == "trained-like"]
    stages = stages[stages["n"] == stages["n"].max()]

    def stage(prefix: str, column: str, c: int | None = None) -> float:
        g = stages[stages["method"].str.startswith(prefix)]
        if c is not None:
            g = g[g["candidates"] == c]
        return float(g[column].iloc[0])

    return {
        "dot_d_exponent": fits["dot"]["d_exponent"], "mlp_d_exponent": fits["mlp"]["d_exponent"],
        "dot_n_exponent": fits["dot"]["n_exponent"], "mlp_n_exponent": fits["mlp"]["n_exponent"],
        "ratio_d": d_max, "mlp_over_dot": float(ratios.loc[d_max, "MLP / dot product"]),
        "neumf_over_dot": float(ratios.loc[d_max, "NeuMF / dot product"]),
        "target": target, "index_n": n_max, "exact_ms": exact_ms,
        "fastest_index": INDEX_LABELS[fastest["index"]], "fastest_ms": float(fastest["latency_ms"]),
        "index_speedup": exact_ms / float(fastest["latency_ms"]),
        "exact_slope": slopes["trained-like"]["exact"],
        "fastest_slope": slopes["trained-like"][fastest["index"]],
        "iso_exact_ms": latency("isotropic", "exact"), "iso_scann_ms": latency("isotropic", "scann"),
        "iso_ivf_ms": float(np.nanmin(iso_ivf)),
        "two_stage_n": int(stages["n"].max()),
        "mlp_brute_ms": stage("exact MLP", "latency_ms"),
        "dot_alone_recall": stage("exact dot (no", "recall_vs_exact_mlp"),
        "rerank": rerank,
        "scann_stage_recall": stage("two-stage (scann", "recall_vs_exact_mlp", rerank),
        "scann_stage_ms": stage("two-stage (scann", "latency_ms", rerank),
        "exact_stage_recall": stage("two-stage (exact", "recall_vs_exact_mlp", rerank),
    }
