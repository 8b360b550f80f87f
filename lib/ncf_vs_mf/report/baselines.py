"""Table 1 in full: the baselines' committed runs summarized over seeds, set beside our MF and
NCF models and the published numbers, and ranked in one figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import plotting, summaries
from ..baselines import BASELINES
from ..experiments.baselines import parse_setting

# Dacrema et al.'s RecSys 2019 results list (MaurizioFD/RecSys2019_DeepLearning_Evaluation,
# FULL_RESULTS.md), ML-1M on the NCF split: the first version of their numbers.
RECSYS2019 = {"Popularity": (0.4531, 0.2542), "item-kNN": (0.6596, 0.3900),
              "RP3beta": (0.6715, 0.3991), "PureSVD": (0.6896, 0.4294),
              "NeuMF, pre-trained": (0.6725, 0.4011)}
# Our model names -> the method names of ``published.table1()`` (Rendle et al. Table 1 and
# Dacrema et al.'s TOIS additional material).
PUBLISHED_NAMES = {"Popularity": "Popularity", "SLIM": "SLIM", "iALS": "iALS",
                   "EASE^R": "EASE^R", "RP3beta": "RP3beta", "PureSVD": "PureSVD",
                   "BPR-MF": "MF BPR", "NeuMF, pre-trained": "MLP+GMF (NeuMF)",
                   "Matrix Factorization": "Matrix Factorization (d=192)"}
SOURCE_NAMES = {"Rendle et al. 2020 Table 1 (from Dacrema et al.)": "Table 1",
                "Rendle et al. 2020 Table 1": "Table 1",
                "Dacrema et al. TOIS additional material (2020-08 version)": "TOIS"}


def load_runs(results_dir: str | Path) -> pd.DataFrame:
    """``baselines_runs.csv`` of a results folder."""
    return pd.read_csv(Path(results_dir) / "baselines_runs.csv")


def test_summary(runs: pd.DataFrame, dataset: str = "ml-1m") -> pd.DataFrame:
    """Each baseline's test-split runs: mean HR@10 / NDCG@10 with 95% intervals over seeds
    (none for a deterministic model, run once), its chosen setting and mean fit and scoring
    seconds; in the order of ``BASELINES``."""
    test = runs[(runs["split"] == "test") & (runs["dataset"] == dataset)]
    table = summaries.over_seeds(test, ["model"])
    extra = test.groupby("model").agg(params=("params", "first"),
                                      fit_seconds=("fit_seconds", "mean"),
                                      score_seconds=("score_seconds", "mean"))
    table = table.merge(extra, left_on="model", right_index=True)
    order = {name: i for i, name in enumerate(BASELINES)}
    return table.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


def tuning_summary(runs: pd.DataFrame, dataset: str = "ml-1m") -> pd.DataFrame:
    """Per baseline: grid points tried on the tuning split, their HR@10 range, the chosen
    point (in full, and its searched parameters only, a star on those at the edge of the
    grid), its tuning HR@10, the parameters at the edge, and the
    seconds the whole tuning took (fits plus scoring)."""
    tuning = runs[(runs["split"] == "tuning") & (runs["dataset"] == dataset)]
    chosen = test_summary(runs, dataset)[["model", "params"]]
    rows = []
    for _, pick in chosen.iterrows():
        grid = tuning[tuning["model"] == pick["model"]]
        best = grid[grid["setting"] == pick["params"]].iloc[0]
        points = [parse_setting(text) for text in grid["setting"]]
        chosen = parse_setting(pick["params"])
        edge = at_grid_edge(points, chosen)
        searched = {k: v for k, v in chosen.items() if len({p[k] for p in points}) > 1}
        rows.append({"model": pick["model"], "points": len(grid), "worst": grid["hr10"].min(),
                     "best": best["hr10"], "params": pick["params"],
                     "searched": " ".join(f"{k}={v:g}" + ("*" if f"{k}={v:g}" in edge else "")
                                          for k, v in searched.items()) or "none",
                     "edge": ", ".join(edge) or "none",
                     "seconds": float((grid["fit_seconds"] + grid["score_seconds"]).sum())})
    return pd.DataFrame(rows)


def at_grid_edge(points: list[dict], chosen: dict) -> list[str]:
    """The parameters whose chosen value is the smallest or largest of several tried (the
    optimum may lie outside the grid)."""
    edges = []
    for name, value in chosen.items():
        tried = sorted({p[name] for p in points if name in p})
        if len(tried) > 1 and value in (tried[0], tried[-1]):
            edges.append(f"{name}={value:g}")
    return edges


def ours_and_published(baselines: pd.DataFrame,
                       section3: summaries.Section3Results) -> pd.DataFrame:
    """One row per model: our HR@10 / NDCG@10 (95% intervals over seeds), the published
    numbers Rendle et al. Table 1 or Dacrema et al.'s TOIS material give, with their source,
    and Dacrema et al.'s RecSys 2019 numbers. Our MF and NCF rows (d = 192) come from
    :func:`summaries.table1_beside_published`."""
    table1 = summaries.table1_beside_published(section3, dim=192, further=True)
    ours = table1[table1["source"].str.startswith("ours")]
    ours = ours[["model", "hr10", "hr10_ci95", "ndcg10", "ndcg10_ci95", "seeds"]]
    base = baselines[["model", "hr10", "hr10_ci95", "ndcg10", "ndcg10_ci95", "seeds"]]
    rows = pd.concat([base, ours], ignore_index=True)
    published = _published_rows(section3.dataset)
    rows["published_hr10"] = rows["model"].map(lambda m: published.get(m, (np.nan,) * 3)[0])
    rows["published_ndcg10"] = rows["model"].map(lambda m: published.get(m, (np.nan,) * 3)[1])
    rows["published_source"] = rows["model"].map(lambda m: published.get(m, (None,) * 3)[2])
    recsys2019 = RECSYS2019 if section3.dataset == "ml-1m" else {}
    rows["recsys2019_hr10"] = rows["model"].map(lambda m: recsys2019.get(m, (np.nan,))[0])
    rows["hr10_diff"] = rows["hr10"] - rows["published_hr10"]
    rows["ndcg10_diff"] = rows["ndcg10"] - rows["published_ndcg10"]
    return rows.sort_values("hr10", ascending=False).reset_index(drop=True)


TOIS_MARK = "†"  # marks a published number from Dacrema et al.'s TOIS material


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the page shows it: ours as "mean ± half-width" (the mean alone for a
    model run once) beside the published number of each metric, marked with
    :data:`TOIS_MARK` where it comes from Dacrema et al.'s TOIS material rather than Rendle et
    al.'s Table 1 (five columns, so the table fits a desktop page column)."""
    def ours(metric: str) -> pd.Series:
        return table.apply(lambda r: f"{r[metric]:.4f}" if np.isnan(r[f"{metric}_ci95"])
                           else f"{r[metric]:.4f} ± {r[f'{metric}_ci95']:.4f}", axis=1)

    def published(metric: str) -> pd.Series:
        mark = table["published_source"].map({"TOIS": TOIS_MARK}).fillna("")
        return table.apply(lambda r: None if np.isnan(r[f"published_{metric}"]) else
                           f"{r[f'published_{metric}']:.4f}", axis=1) + mark

    return pd.DataFrame({"model": table["model"], "ours_hr10": ours("hr10"),
                         "published_hr10": published("hr10"), "ours_ndcg10": ours("ndcg10"),
                         "published_ndcg10": published("ndcg10")})


def recsys2019_text(table: pd.DataFrame) -> str:
    """Dacrema et al.'s RecSys 2019 HR@10 of the models that list gives, as one phrase."""
    given = table.dropna(subset=["recsys2019_hr10"])
    return ", ".join(f"{m} {v:.4f}" for m, v in zip(given["model"], given["recsys2019_hr10"]))


def _published_rows(dataset: str) -> dict[str, tuple[float, float, str]]:
    """Our model name -> (HR@10, NDCG@10, source) on ``dataset`` from ``published.table1()``."""
    from .. import published

    prefix = {"ml-1m": "ml1m", "pinterest-20": "pinterest"}[dataset]
    table = published.table1().set_index("method")
    return {ours: (float(table.loc[theirs, f"{prefix}_hr10"]),
                   float(table.loc[theirs, f"{prefix}_ndcg10"]),
                   SOURCE_NAMES[table.loc[theirs, "source"]])
            for ours, theirs in PUBLISHED_NAMES.items()}


def beyond_interval(row: pd.Series, metric: str = "hr10", floor: float = 0.003) -> bool:
    """Whether our number differs from the published one by more than its 95% interval
    (``floor`` for a deterministic model, which has none)."""
    half = row[f"{metric}_ci95"]
    return bool(abs(row[f"{metric}_diff"]) > (floor if np.isnan(half) else half))


def plot_ranking(table: pd.DataFrame, metrics: tuple[str, ...] = ("hr10", "ndcg10")) -> plt.Figure:
    """Every model ranked by HR@10, one panel per metric: ours with 95% intervals (filled),
    the published number where there is one (open)."""
    order = table.sort_values("hr10").reset_index(drop=True)
    figure, axes = plt.subplots(1, len(metrics), figsize=(7.0, 4.4), sharey=True)
    y = np.arange(len(order))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        ax.errorbar(order[metric], y, xerr=order[f"{metric}_ci95"].fillna(0.0), fmt="o",
                    color=plotting.PALETTE[0], capsize=3, label="ours (95% interval)")
        ax.plot(order[f"published_{metric}"], y, "D", mfc="none", color=plotting.PALETTE[4],
                label="published (Rendle et al. Table 1, Dacrema et al. TOIS)")
        ax.set_xlabel(plotting.METRIC_LABELS[metric])
        ax.set_yticks(y, order["model"])
    plotting.legend_below(figure, ncol=1)
    figure.tight_layout()
    return figure
