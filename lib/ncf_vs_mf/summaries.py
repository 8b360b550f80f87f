"""Aggregate result tables over seeds: means with 95% t-intervals, tidy for plots and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the half-width of its Student-t confidence interval (nan with one value)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), values.size
    half = stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return mean, float(half), values.size


def over_seeds(runs: pd.DataFrame, by: list[str], metrics=("hr10", "ndcg10")) -> pd.DataFrame:
    """One row per setting in ``by``: for each metric its mean, 95% half-width and seed count."""
    rows = []
    for key, group in runs.groupby(by, sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            mean, half, n = mean_interval(group[metric].to_numpy())
            row.update({metric: mean, f"{metric}_ci95": half})
        row["seeds"] = n
        rows.append(row)
    return pd.DataFrame(rows)
