"""Section 4's results as a reader sees them: summaries, the growth exponent, figures, numbers.

Reads the runs and curves tables of ``ncf-vs-mf reproduce mlp-dot``
(:func:`read_tables`) and never trains. :func:`plot_figure3` and
:func:`key_numbers` are what the book's results page uses; the chapter
``book/mlp_dot_product.md`` uses the rest. Settings of the grid that have no run stay missing
(NaN in tables, no point in figures), never zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..dot_learning import DIMS, SIGMA_LABEL, THRESHOLDS, TRAIN_FRACTION, USERS, WIDTHS
from ..models import parameter_count
from ..experiments import get
from ..experiments.store import book_tables
from ..summaries import over_seeds

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "read_tables", "Text", "ERRORS", "LEVELS", "PAPER_ALPHA", "summarize", "by_setting", "coverage", "samples_needed",
    "fit_growth", "alpha_interval", "compare_with_range", "interval_text", "fit_table", "paper_claim",
    "estimate_hours", "overfitting", "key_numbers", "width_label", "plot_figure3",
    "plot_widths", "plot_epochs", "plot_growth",
]

ERRORS = ("error_test", "error_fresh")
LEVELS = (0.04, 0.02, 0.01, 0.001)  # error levels eps of the growth fit
PAPER_ALPHA = (1.0, 2.0)  # Section 4.2: samples needed about (d / eps)^alpha, 1 <= alpha <= 2
ERROR_LABEL = "RMSE(MLP) $-$ RMSE(dot)"
_BY = ["dim", "width", "h", "users"]


# ----------------------------------------------------------------------------- tables


class Text:
    """Words to glue into prose: its repr is the text itself (a str's repr has quotes)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def read_tables(folder: str, epochs: int = 32) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 3's runs and curves: the committed rows with the chapter's training settings
    (``epochs``, Adam lr 0.001, batch 256, 100 pairs per user, 100,000 fresh pairs); rows of
    any other setting are never shown."""
    return book_tables(get("mlp-dot"), folder, axes=("lr",), epochs=epochs)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per d, width and M: mean approximation errors with 95% t-intervals, and repetitions."""
    if runs.empty:
        return pd.DataFrame(columns=_BY + [c for e in ERRORS for c in (e, f"{e}_ci95")]
                            + ["seeds", "n_train"])
    summary = over_seeds(runs, _BY, metrics=ERRORS)
    return summary.merge(runs.groupby(_BY, as_index=False)["n_train"].mean(), on=_BY)


def width_label(width: float) -> str:
    """h as a multiple of d: 'd/2', 'd', '2d'."""
    return {0.5: "d/2", 1.0: "d"}.get(float(width), f"{width:g}d")


def by_setting(runs: pd.DataFrame, value: str, how: str = "mean",
               dims: Sequence[int] = DIMS, users: Sequence[int] = USERS,
               widths: Sequence[float] = WIDTHS) -> pd.DataFrame:
    """One row per d and h of the grid, one column per M: ``how`` of ``value`` over runs.

    ``how`` is a pandas aggregation ("mean", "median", "count"); a setting without runs is
    NaN (shown as "—"), also for "count". Columns: dim, h (as 'd/2', 'd', '2d'), then M.
    """
    index = pd.MultiIndex.from_product([list(dims), [float(w) for w in widths]],
                                       names=["dim", "width"])
    if runs.empty:
        table = pd.DataFrame(index=index, columns=list(users), dtype=float)
    else:
        table = runs.pivot_table(index=["dim", "width"], columns="users", values=value,
                                 aggfunc=how).reindex(index=index, columns=list(users))
        table = table.astype(float).where(table != 0) if how == "count" else table
    table.columns = [int(m) for m in table.columns]
    table = table.reset_index()
    table.insert(1, "h", table.pop("width").map(width_label))
    return table


def coverage(runs: pd.DataFrame, dims: Sequence[int] = DIMS, users: Sequence[int] = USERS,
             widths: Sequence[float] = WIDTHS) -> dict[str, int]:
    """How much of the grid has runs: settings with runs, of all, runs, fewest/most repeats."""
    grid = {(int(d), float(w), int(m)) for d in dims for w in widths for m in users}
    counts = (runs.groupby(["dim", "width", "users"]).size() if not runs.empty
              else pd.Series(dtype=int))
    counts = counts[[(int(d), float(w), int(m)) in grid for d, w, m in counts.index]]
    return {"settings_run": int(len(counts)), "settings": len(grid),
            "runs": int(counts.sum()), "repeats_min": int(counts.min()) if len(counts) else 0,
            "repeats_max": int(counts.max()) if len(counts) else 0,
            "settings_max_repeats": int((counts == counts.max()).sum()) if len(counts) else 0}


def paper_claim(summary: pd.DataFrame, dim: int = 128, users: int = 128_000) -> pd.DataFrame:
    """The rows of d = ``dim``, M = ``users`` (Section 4.2's example: "still above 0.02")."""
    rows = summary[(summary["dim"] == dim) & (summary["users"] == users)]
    return rows[["dim", "users", "width", "h", "error_test", "error_fresh", "seeds"]] \
        .reset_index(drop=True)


def _cost_terms(cells: pd.DataFrame) -> np.ndarray:
    """Per cell: optimizer steps, and steps x MLP parameters (the two terms of its cost)."""
    steps = np.ceil(cells["n_train"] / cells["batch_size"]) * cells["epochs"]
    return np.column_stack([steps, steps * cells["parameters"]]).astype(float)


def estimate_hours(runs: pd.DataFrame, cells: Sequence[dict[str, Any]]) -> float:
    """Hours of one CPU thread that ``cells`` would take: seconds = steps x (a + b x
    parameters), fitted to the runs by least squares (NaN without runs)."""
    if runs.empty:
        return math.nan
    coefficients, *_ = np.linalg.lstsq(_cost_terms(runs), runs["seconds"].to_numpy(float),
                                       rcond=None)
    planned = pd.DataFrame([{**c, "n_train": round(TRAIN_FRACTION * c["pairs_per_user"]
                                                   * c["users"]),
                             "parameters": parameter_count("mlp", c["dim"], c["h"])}
                            for c in cells])
    return float((_cost_terms(planned) @ coefficients).sum() / 3600)


# ----------------------------------------------------------------------------- growth fit


def _crossing(users: np.ndarray, n_train: np.ndarray, errors: np.ndarray,
              eps: float) -> tuple[float, float, str]:
    """(M, training examples, status) where the errors first drop below ``eps``.

    Linear interpolation of the error in log M between the last M above and the first below.
    """
    below = np.flatnonzero(errors < eps)
    if below.size == 0:
        return math.nan, math.nan, "not reached"
    j = int(below[0])
    if j == 0:
        return float(users[0]), float(n_train[0]), "below at the smallest M"
    t = (errors[j - 1] - eps) / (errors[j - 1] - errors[j])
    log_m = np.log(users[j - 1]) + t * (np.log(users[j]) - np.log(users[j - 1]))
    log_n = np.log(n_train[j - 1]) + t * (np.log(n_train[j]) - np.log(n_train[j - 1]))
    return float(np.exp(log_m)), float(np.exp(log_n)), "interpolated"


def samples_needed(summary: pd.DataFrame,
                   thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """For each set, d, h and level eps: the smallest M where the mean error is below eps.

    Columns ``users_needed`` and ``samples_needed`` (training examples); ``status`` says
    whether the value is interpolated, only an upper bound (already below at the smallest M
    run), or missing (never below in the M run; ``lowest_error`` is the best mean reached).
    """
    rows = []
    for (dim, width, h), group in summary.groupby(["dim", "width", "h"], sort=True):
        group = group.sort_values("users")
        for name in ("test", "fresh"):
            errors = group[f"error_{name}"].to_numpy(dtype=float)
            for eps in thresholds:
                users, samples, status = _crossing(group["users"].to_numpy(dtype=float),
                                                   group["n_train"].to_numpy(dtype=float),
                                                   errors, eps)
                rows.append({"set": name, "dim": dim, "width": width, "h": h, "threshold": eps,
                             "users_needed": users, "samples_needed": samples, "status": status,
                             "lowest_error": float(np.min(errors)),
                             "largest_users_run": int(group["users"].max())})
    columns = ["set", "dim", "width", "h", "threshold", "users_needed", "samples_needed",
               "status", "lowest_error", "largest_users_run"]
    return pd.DataFrame(rows, columns=columns)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = alpha x + c and its R^2 (NaNs with fewer than two distinct x)."""
    if np.unique(x).size < 2:
        return math.nan, math.nan, math.nan
    alpha, c = np.polyfit(x, y, 1)
    residual, spread = y - (alpha * x + c), float(np.square(y - y.mean()).sum())
    r2 = 1.0 - float(residual @ residual) / spread if spread > 0 else math.nan
    return float(alpha), float(c), float(r2)


def fit_growth(crossings: pd.DataFrame) -> pd.DataFrame:
    """Least squares log(samples) = alpha log(d / eps) + c per set and width.

    Only interpolated crossings enter (bounds do not); ``points`` lists them as d/eps pairs.
    alpha is NaN with fewer than two distinct values of d / eps.
    """
    rows = []
    usable = crossings[crossings["status"] == "interpolated"]
    for (name, width), group in crossings.groupby(["set", "width"], sort=True):
        fit = usable[(usable["set"] == name) & (usable["width"] == width)]
        x = np.log(fit["dim"].to_numpy(dtype=float) / fit["threshold"].to_numpy(dtype=float))
        alpha, c, r2 = _line(x, np.log(fit["samples_needed"].to_numpy(dtype=float)))
        points = ", ".join(f"d={d} eps={e:g}" for d, e in zip(fit["dim"], fit["threshold"]))
        rows.append({"set": name, "width": width, "alpha": alpha, "c": c, "r2": r2,
                     "n_points": int(x.size), "of_crossings": int(len(group)),
                     "points": points or "none"})
    return pd.DataFrame(rows, columns=["set", "width", "alpha", "c", "r2", "n_points",
                                       "of_crossings", "points"])


def _points(means: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
            levels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(log(d / eps), log samples) of the interpolated crossings, one per d and level."""
    x, y = [], []
    for dim, (users, n_train, errors) in means.items():
        for eps in levels:
            _, samples, status = _crossing(users, n_train, errors, eps)
            if status == "interpolated":
                x.append(math.log(dim / eps))
                y.append(math.log(samples))
    return np.array(x), np.array(y)


def alpha_interval(runs: pd.DataFrame, name: str = "fresh", width: float = 1.0,
                   levels: Sequence[float] = LEVELS, n_boot: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> dict[str, float]:
    """The growth exponent alpha of one set and width, with a bootstrap percentile interval.

    Each replicate resamples the runs within every setting (d, M) with replacement (a setting
    run once always gives its one value) and the error levels with replacement (a level drawn
    twice counts twice), then refits alpha; replicates with fewer than two distinct d/eps are
    dropped (``replicates`` counts those kept). Also the range of alpha when one level at a
    time is left out. Deterministic given ``seed``.
    """
    part = runs[np.isclose(runs["width"].astype(float), width)] if not runs.empty else runs
    settings: dict[int, list[tuple[int, float, np.ndarray]]] = {}
    for (dim, users), group in part.groupby(["dim", "users"], sort=True):
        settings.setdefault(int(dim), []).append(
            (int(users), float(group["n_train"].mean()),
             group[f"error_{name}"].to_numpy(dtype=float)))

    def means(pick=None) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = {}
        for dim, cells in settings.items():
            errors = [(e[pick(e.size)] if pick else e).mean() for _, _, e in cells]
            out[dim] = (np.array([m for m, _, _ in cells], dtype=float),
                        np.array([n for _, n, _ in cells]), np.array(errors))
        return out

    full = means()
    x, y = _points(full, levels)
    alpha, _, r2 = _line(x, y)
    dropped = [_line(*_points(full, [e for e in levels if e != left]))[0] for left in levels]
    dropped = [a for a in dropped if not math.isnan(a)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        sample = means(lambda n: rng.integers(0, n, size=n))
        chosen = rng.choice(np.asarray(levels, dtype=float), size=len(levels), replace=True)
        draws.append(_line(*_points(sample, chosen))[0])
    draws = np.array([a for a in draws if not math.isnan(a)])
    tail = (1 - confidence) / 2 * 100
    low, high = (np.percentile(draws, [tail, 100 - tail]) if draws.size
                 else (math.nan, math.nan))
    return {"alpha": alpha, "low": float(low), "high": float(high), "r2": r2,
            "points": int(x.size), "drop_one_min": min(dropped, default=math.nan),
            "drop_one_max": max(dropped, default=math.nan), "replicates": int(draws.size),
            "n_boot": n_boot}


def compare_with_range(value: float, low: float, high: float,
                       bounds: tuple[float, float] = PAPER_ALPHA) -> str:
    """Where an estimate and its interval lie against a published range, unrounded."""
    lo, hi = bounds
    if math.isnan(value):
        return "no estimate"
    point = "inside" if lo <= value <= hi else "above" if value > hi else "below"
    if lo <= low and high <= hi:
        spread = "the interval lies inside it"
    elif low > hi or high < lo:
        spread = "the interval lies outside it"
    else:
        beyond = [f"above {hi:g}"] * (high > hi) + [f"below {lo:g}"] * (low < lo)
        spread = "the interval reaches " + " and ".join(beyond)
    return f"point estimate {point} [{lo:g}, {hi:g}]; {spread}"


def interval_text(low: float, high: float, decimals: int = 4) -> str:
    """'1.7267 to 2.1579' (with a true minus sign), or '—' when either end is missing."""
    if math.isnan(low) or math.isnan(high):
        return "—"
    return f"{low:.{decimals}f} to {high:.{decimals}f}".replace("-", "−")


def fit_table(runs: pd.DataFrame, levels: Sequence[float] = LEVELS,
              widths: Sequence[float] = WIDTHS, n_boot: int = 2000,
              seed: int = 0) -> pd.DataFrame:
    """alpha with its bootstrap interval per set and width (see :func:`alpha_interval`)."""
    rows = []
    for name in ("fresh", "test"):
        for width in widths:
            fit = alpha_interval(runs, name, width, levels, n_boot, seed)
            rows.append({"set": name, "h": width_label(width), **fit,
                         "interval": interval_text(fit["low"], fit["high"]),
                         "drop_one": interval_text(fit["drop_one_min"], fit["drop_one_max"]),
                         "versus_paper": compare_with_range(fit["alpha"], fit["low"],
                                                            fit["high"])})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- numbers


def overfitting(curves: pd.DataFrame, dim: int, users: int,
                width: float = 1.0) -> dict[str, float]:
    """Epoch curve of one setting (mean over seeds): where the test error is lowest, what it
    is then and at the last epoch, and the training RMSE (root of the mean batch loss)."""
    part = curves[(curves["dim"] == dim) & (curves["users"] == users)
                  & np.isclose(curves["width"].astype(float), width) & (curves["epoch"] > 0)]
    if part.empty:
        return {}
    mean = part.groupby("epoch")[["error_test", "train_loss"]].mean()
    best = int(mean["error_test"].idxmin())
    last = int(mean.index.max())
    return {"best_epoch": best, "best_error": float(mean.loc[best, "error_test"]),
            "last_epoch": last, "last_error": float(mean.loc[last, "error_test"]),
            "train_rmse_first": float(np.sqrt(mean["train_loss"].iloc[0])),
            "train_rmse_last": float(np.sqrt(mean.loc[last, "train_loss"])),
            "train_pairs": int(round(TRAIN_FRACTION * 100 * users)),
            "parameters": parameter_count("mlp", dim, int(round(width * dim)))}


def key_numbers(runs: pd.DataFrame, curves: pd.DataFrame | None = None,
                levels: Sequence[float] = LEVELS, n_boot: int = 2000) -> dict[str, Any]:
    """The numbers the chapter's takeaways cite (NaN where a setting has no run)."""
    summary = summarize(runs)

    def error(dim: int, width: float, users: int, name: str = "fresh") -> float:
        row = summary[(summary["dim"] == dim) & np.isclose(summary["width"].astype(float), width)
                      & (summary["users"] == users)]
        return float(row[f"error_{name}"].iloc[0]) if len(row) else math.nan

    fit = alpha_interval(runs, "fresh", 1.0, levels, n_boot)
    below = summary[summary["error_fresh"] < 0.01] if not summary.empty else summary
    numbers: dict[str, Any] = {
        **{f"grid_{k}": v for k, v in coverage(runs).items()},
        "d16_hd_128k": error(16, 1.0, 128_000), "d16_h2d_64k": error(16, 2.0, 64_000),
        "d16_hhalf_4k": error(16, 0.5, 4000), "d16_hhalf_128k": error(16, 0.5, 128_000),
        "d128_hhalf_128k_fresh": error(128, 0.5, 128_000),
        "d128_hhalf_128k_test": error(128, 0.5, 128_000, "test"),
        "settings_below_001": int(len(below)),
        "lowest_fresh": float(summary["error_fresh"].min()) if len(summary) else math.nan,
        "alpha": fit["alpha"], "alpha_low": fit["low"], "alpha_high": fit["high"],
        "alpha_points": fit["points"],
        "alpha_versus_paper": compare_with_range(fit["alpha"], fit["low"], fit["high"]),
    }
    if curves is not None:
        numbers.update({f"overfit_{k}": v for k, v in overfitting(curves, 128, 4000).items()})
    return numbers


# ----------------------------------------------------------------------------- figures


def _colors(dims: Sequence[int]) -> dict[int, Any]:
    """One colour per d, dark to light along viridis (stopping before its pale yellow)."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return {d: cmap(0.85 * n / max(len(dims) - 1, 1)) for n, d in enumerate(dims)}


def _count_label(m: float) -> str:
    """4000 -> '4k', 128000 -> '128k', 500 -> '500'."""
    return f"{m / 1000:g}k" if m >= 1000 else f"{m:g}"


def _draw_width(ax: Axes, summary: pd.DataFrame, width: float, users: Sequence[int],
                dims: Sequence[int], thresholds: Sequence[float], floor: float) -> None:
    """One width's lines: per d fresh (solid) and test (dotted), gaps where M was not run."""
    colors = _colors(dims)
    part = summary[np.isclose(summary["width"].astype(float), width)]
    for dim in dims:
        group = part[part["dim"] == dim].set_index("users").reindex(list(users))
        if group["error_fresh"].isna().all():
            continue
        for name, style in (("fresh", "-"), ("test", ":")):
            mean = group[f"error_{name}"].to_numpy(dtype=float)
            ci = group[f"error_{name}_ci95"].astype(float).fillna(0.0).to_numpy()
            ax.plot(list(users), np.maximum(mean, floor), style, marker="o", ms=3.5,
                    color=colors[dim], lw=1.6)
            if name == "fresh":
                ax.fill_between(list(users), np.maximum(mean - ci, floor),
                                np.maximum(mean + ci, floor), color=colors[dim], alpha=0.15,
                                lw=0)
    for eps in thresholds:
        ax.axhline(eps, color="0.45", lw=1.0, ls="--")
        ax.annotate(f"{eps:g}", (1.0, eps), xycoords=("axes fraction", "data"),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=9,
                    color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(users), [_count_label(m) for m in users])
    ax.minorticks_off()
    ax.set_xlabel("users $M$ (= items $N$); the MLP trains on $90M$ pairs")
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title(f"$h = {width_label(width)}$")
    if part.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)


def _legend_handles(dims: Sequence[int]) -> list:
    """Legend entries: a colour per d, then the two line styles."""
    from matplotlib.lines import Line2D

    colors = _colors(dims)
    handles = [Line2D([], [], color=colors[d], lw=1.6, marker="o", ms=3.5, label=f"d = {d}")
               for d in dims]
    return handles + [Line2D([], [], color="0.3", ls="-", label="fresh embeddings"),
                      Line2D([], [], color="0.3", ls=":", label="test pairs")]


def plot_figure3(runs: pd.DataFrame, ax: Axes | None = None, width: float = 1.0,
                 users: Sequence[int] = USERS, dims: Sequence[int] = DIMS,
                 thresholds: Sequence[float] = THRESHOLDS, floor: float = 1e-4) -> Axes:
    """Figure 3 at one width (default h = d): approximation error against M per d, log-log.

    Fresh solid with its 95% band over repetitions, test dotted; grey dashed lines at the
    thresholds; no point where a setting has no run. Legend below the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    _draw_width(ax, summarize(runs), width, users, dims, thresholds, floor)
    ax.legend(handles=_legend_handles(dims), loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=3, frameon=False)
    return ax


def plot_widths(runs: pd.DataFrame, widths: Sequence[float] = (0.5, 2.0),
                users: Sequence[int] = USERS, dims: Sequence[int] = DIMS,
                thresholds: Sequence[float] = THRESHOLDS, floor: float = 1e-4) -> Figure:
    """Figure 3 at other widths, panels stacked (same axes as :func:`plot_figure3`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(widths), 1, figsize=(6.4, 3.4 * len(widths) + 0.8),
                             sharex=True, sharey=True, squeeze=False)
    summary = summarize(runs)
    for ax, width in zip(axes[:, 0], widths):
        _draw_width(ax, summary, width, users, dims, thresholds, floor)
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    axes[-1, 0].legend(handles=_legend_handles(dims), loc="upper center",
                       bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def plot_epochs(curves: pd.DataFrame, users: int = 4000, width: float = 1.0,
                dims: Sequence[int] = DIMS, ax: Axes | None = None) -> Axes:
    """Test RMSE (solid) and training RMSE (dotted, root of the mean batch loss) after each
    epoch, a colour per d, all at one M and width (mean over seeds); 0.85 is the noise."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = _colors(dims)
    part = curves[(curves["users"] == users) & np.isclose(curves["width"].astype(float), width)
                  & (curves["epoch"] > 0)]
    shown = []
    for dim in dims:
        at_d = part[part["dim"] == dim]
        if at_d.empty:
            continue
        mean = at_d.groupby("epoch")[["rmse_mlp_test", "train_loss"]].mean()
        ax.plot(mean.index, mean["rmse_mlp_test"], "-", color=colors[dim], lw=1.6)
        ax.plot(mean.index, np.sqrt(mean["train_loss"]), ":", color=colors[dim], lw=1.6)
        shown.append(dim)
    ax.axhline(SIGMA_LABEL, color="0.45", lw=1.0, ls="--")
    ax.annotate("noise 0.85", (1.0, SIGMA_LABEL), xycoords=("axes fraction", "data"),
                xytext=(3, 0), textcoords="offset points", va="center", fontsize=9,
                color="0.3")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title(f"$M = {users:,}$".replace(",", "{,}") + f", $h = {width_label(width)}$")
    if not shown:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    handles = [Line2D([], [], color=colors[d], lw=1.6, label=f"d = {d}") for d in shown]
    handles += [Line2D([], [], color="0.3", ls="-", label="test pairs"),
                Line2D([], [], color="0.3", ls=":", label="training (root of batch loss)")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
              frameon=False)
    return ax


def plot_growth(runs: pd.DataFrame, name: str = "fresh", width: float = 1.0,
                levels: Sequence[float] = LEVELS, ax: Axes | None = None) -> Axes:
    """Training pairs needed against d / eps (log-log), a colour per d, with the fitted line
    and, for comparison, lines of slope 1 and 2 through the same centre."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    part = runs[np.isclose(runs["width"].astype(float), width)] if not runs.empty else runs
    crossings = samples_needed(summarize(part), levels)
    crossings = crossings[(crossings["set"] == name) & (crossings["status"] == "interpolated")]
    dims = sorted(summarize(runs)["dim"].unique()) if not runs.empty else list(DIMS)
    colors = _colors(dims)
    for dim, group in crossings.groupby("dim"):
        ax.plot(dim / group["threshold"], group["samples_needed"], "o", ms=6,
                color=colors[dim], label=f"d = {dim}")
        for ratio, samples, eps in zip(dim / group["threshold"], group["samples_needed"],
                                       group["threshold"]):
            ax.annotate(f"$\\epsilon = {eps:g}$", (ratio, samples), xytext=(5, -10),
                        textcoords="offset points", fontsize=9, color="0.3")
    x = np.log(crossings["dim"] / crossings["threshold"]).to_numpy(dtype=float)
    y = np.log(crossings["samples_needed"]).to_numpy(dtype=float)
    alpha, c, _ = _line(x, y)
    if not math.isnan(alpha):
        grid = np.linspace(x.min() - 0.2, x.max() + 0.2, 20)
        for slope, style in ((1, (0, (1, 2))), (2, "--")):
            line = y.mean() + slope * (grid - x.mean())
            ax.plot(np.exp(grid), np.exp(line), ls=style, color="0.6", lw=1.0, zorder=1,
                    label=f"slope {slope}")
        ax.plot(np.exp(grid), np.exp(alpha * grid + c), "-", color="0.2", lw=1.4, zorder=2,
                label=f"fit: slope $\\alpha = {alpha:.4f}$")
    else:
        ax.text(0.5, 0.5, "fewer than two crossings", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$d / \epsilon$")
    ax.set_ylabel("training pairs needed")
    ax.set_title(f"{name} embeddings, $h = {width_label(width)}$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    return ax
