"""Aggregate result tables over seeds: means with 95% t-intervals, tidy for plots and tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .results import select_rows


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


def versus_published(ours: pd.DataFrame, published: pd.DataFrame,
                     metrics=("hr10", "ndcg10"), label: str = "published") -> pd.DataFrame:
    """Our mean minus each published model at the embedding dimensions both have.

    ``ours`` comes from :func:`over_seeds` (columns dim, <metric>, <metric>_ci95); ``published``
    from ``published.ncf_curves()`` (or any table with model, embedding_dim and the metrics;
    ``label`` names its columns). A positive difference means our model scores higher; the
    interval column says whether zero lies outside our 95% interval.
    """
    ours = ours.drop(columns=[c for c in ("dataset", "model") if c in ours.columns])
    merged = published.merge(ours, left_on="embedding_dim", right_on="dim",
                             suffixes=(f"_{label}", ""))
    rows = merged[["model", "dim"]].copy()
    for metric in metrics:
        rows[f"{metric}_ours"] = merged[metric]
        rows[f"{metric}_{label}"] = merged[f"{metric}_{label}"]
        rows[f"{metric}_diff"] = merged[metric] - merged[f"{metric}_{label}"]
        rows[f"{metric}_beyond_ci"] = rows[f"{metric}_diff"].abs() > merged[f"{metric}_ci95"]
    return rows.sort_values(["model", "dim"]).reset_index(drop=True)


def rank_of_choice(grid: pd.DataFrame, choice: dict[str, float], metric: str = "hr10",
                   label: str = "choice") -> dict:
    """Best cell of a tuning grid and the rank (1 = best, by ``metric``) of the chosen cell.

    ``choice`` maps column names to the chosen values (e.g. the paper's lr and reg); the rank
    and metrics of the choice are None when the grid did not run it.
    """
    ordered = grid.sort_values(metric, ascending=False).reset_index(drop=True)
    best = ordered.iloc[0]
    chosen = ordered[np.logical_and.reduce([ordered[k] == v for k, v in choice.items()])]
    found = len(chosen) > 0
    row = {"cells": len(ordered)}
    row.update({f"best {k}": best[k] for k in choice})
    row.update({"best HR@10": best["hr10"], "best NDCG@10": best["ndcg10"],
                f"{label}: rank": int(chosen.index[0]) + 1 if found else None,
                f"{label}: HR@10": chosen["hr10"].iloc[0] if found else None,
                f"{label}: NDCG@10": chosen["ndcg10"].iloc[0] if found else None})
    return row


# Our names of NCF's models (``ncf_training.MODELS``) as the published tables name them.
NCF_MODEL_NAMES = {"GMF": "GMF", "MLP": "MLP", "NeuMF": "NeuMF (no pre-training)",
                   "NeuMF-pretrained": "NeuMF (pre-trained)",
                   "NeuMF-pretrained-adam": "NeuMF (pre-trained, Adam fine-tuning)"}
_OUR_MODEL_NAMES = {name: model for model, name in NCF_MODEL_NAMES.items()}


def ncf_over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Our NCF runs (``ncf_runs.csv``) per model and d, with the published model names.

    Beside the honest metrics (epoch chosen on the validation split: hr10, ndcg10) stand, from
    the same runs, what NCF's rule (best epoch on the test set) reports (<metric>_ncf_rule) and
    by how much it inflates the honest number (<metric>_inflation), each with its 95% interval.
    """
    tidy = runs.assign(model=runs["model"].map(NCF_MODEL_NAMES))
    for metric in ("hr10", "ndcg10"):
        tidy[f"{metric}_ncf_rule"] = tidy[f"{metric}_test_selected"]
        tidy[f"{metric}_inflation"] = tidy[f"{metric}_test_selected"] - tidy[metric]
    metrics = [f"{m}{suffix}" for suffix in ("", "_ncf_rule", "_inflation")
               for m in ("hr10", "ndcg10")]
    return over_seeds(tidy, ["dataset", "model", "predictive_factor", "dim"], metrics)


def ncf_versus_published(ours: pd.DataFrame, published: pd.DataFrame,
                         metrics=("hr10", "ndcg10")) -> pd.DataFrame:
    """Our NCF models against the same model as He et al. published it, at the same d.

    ``ours`` comes from :func:`ncf_over_seeds`. Columns per metric: ours (epoch chosen on the
    validation split), ours under NCF's rule (best test epoch), published, and ours minus
    published for both.
    """
    merged = ours.merge(published, left_on=["dataset", "model", "dim"],
                        right_on=["dataset", "model", "embedding_dim"], suffixes=("", "_published"))
    rows = merged[["model", "dim", "seeds"]].copy()
    for metric in metrics:
        rows[f"{metric}_ours"] = merged[metric]
        rows[f"{metric}_ours_ncf_rule"] = merged[f"{metric}_ncf_rule"]
        rows[f"{metric}_published"] = merged[f"{metric}_published"]
        rows[f"{metric}_diff"] = merged[metric] - merged[f"{metric}_published"]
        rows[f"{metric}_diff_ncf_rule"] = merged[f"{metric}_ncf_rule"] - merged[f"{metric}_published"]
    return rows.sort_values(["model", "dim"]).reset_index(drop=True)


def count_higher(diffs: pd.DataFrame, columns=("hr10_diff", "ndcg10_diff"),
                 by: str = "model") -> pd.DataFrame:
    """Per ``by`` group: the number of dimensions compared and, for each difference column, at
    how many of them it is positive and its smallest value (the tightest margin)."""
    grouped = diffs.groupby(by, sort=False)
    table = grouped["dim"].size().rename("dims").to_frame()
    for column in columns:
        table[f"{column} > 0"] = (diffs[column] > 0).groupby(diffs[by], sort=False).sum()
        table[f"min {column}"] = grouped[column].min()
    return table.reset_index()


def ncf_findings(mf_versus_ncf: pd.DataFrame, ncf_versus: pd.DataFrame,
                 runs: pd.DataFrame) -> pd.DataFrame:
    """The Section 3 statements about NCF's models trained here, each checked on every committed
    setting: at how many it holds (``holds`` of ``of``) and the range of the quantity behind it.

    ``mf_versus_ncf``: our MF minus our NCF models (:func:`versus_published` with label "ncf");
    ``ncf_versus``: ours minus published (:func:`ncf_versus_published`); ``runs``: the rows of
    ``ncf_runs.csv``, one per model, k and seed ("MF" is our matrix factorization; pre-trained
    and from-scratch NeuMF are paired by k and seed). Printing the checks beside the prose keeps
    the prose honest when more settings are committed.
    """
    learned = _learned_only(mf_versus_ncf)
    gmf = mf_versus_ncf[mf_versus_ncf["model"] == "GMF"]
    vs_published = _learned_only(ncf_versus)
    inflation = _hr10_inflation(runs)
    mf_minus_ncf_rule = _mf_minus_ncf_rule(mf_versus_ncf, ncf_versus)
    key = ["predictive_factor", "seed"]
    pretrained = runs[runs["model"] == "NeuMF-pretrained"].set_index(key)
    scratch = runs[runs["model"] == "NeuMF"].set_index(key)
    pairs = pretrained.index.intersection(scratch.index)
    pretraining_gain = pretrained.loc[pairs, "hr10"] - scratch.loc[pairs, "hr10"]
    adam = runs[runs["model"] == "NeuMF-pretrained-adam"].set_index(key)
    adam_pairs = adam.index.intersection(pretrained.index)
    adam_gain = adam.loc[adam_pairs, "hr10"] - pretrained.loc[adam_pairs, "hr10"]

    def both_higher(diffs: pd.DataFrame) -> pd.Series:
        return (diffs["hr10_diff"] > 0) & (diffs["ndcg10_diff"] > 0)

    checks = [
        ("MF above the MLP and every NeuMF (HR and NDCG)", "settings",
         both_higher(learned), "MF minus model, HR@10", learned["hr10_diff"]),
        ("... by more than its 95% interval (HR@10)", "settings",
         (learned["hr10_diff"] > 0) & learned["hr10_beyond_ci"], "MF minus model, HR@10",
         learned["hr10_diff"]),
        ("MF above GMF (HR and NDCG)", "settings", both_higher(gmf),
         "MF minus GMF, HR@10", gmf["hr10_diff"]),
        ("our MLP/NeuMF below published (validation epoch)",
         "settings", vs_published["hr10_diff"] < 0, "ours minus published, HR@10",
         vs_published["hr10_diff"]),
        ("... and under NCF's rule (best test epoch)", "settings",
         vs_published["hr10_diff_ncf_rule"] < 0, "ours minus published, HR@10",
         vs_published["hr10_diff_ncf_rule"]),
        ("best test epoch above the validation-chosen one", "runs", inflation > 0,
         "inflation, HR@10", inflation),
        ("MF above the MLP and every NeuMF under NCF's rule too", "settings",
         mf_minus_ncf_rule > 0, "MF minus model (best test epoch), HR@10", mf_minus_ncf_rule),
        ("pre-trained NeuMF above NeuMF from scratch", "runs",
         pretraining_gain > 0, "pre-trained minus scratch, HR@10", pretraining_gain),
        ("pre-trained NeuMF keeps epoch 0 (no fine-tuning)", "runs",
         pretrained["epochs_selected"] == 0, "selected epoch", pretrained["epochs_selected"]),
        ("Adam fine-tuning above SGD fine-tuning (pre-trained NeuMF)", "runs",
         adam_gain > 0, "Adam minus SGD, HR@10", adam_gain),
        ("pre-trained NeuMF, Adam fine-tuning, keeps epoch 0", "runs",
         adam["epochs_selected"] == 0, "selected epoch", adam["epochs_selected"]),
    ]
    return pd.DataFrame([{
        "finding": finding, "holds": int(holds.sum()), "of": len(holds), "counted over": unit,
        "quantity": quantity, "min": values.min(), "max": values.max()}
        for finding, unit, holds, quantity, values in checks if len(holds)])


def strongest_neumf(mf_versus_ncf: pd.DataFrame) -> pd.DataFrame:
    """Per d, the NeuMF variant with the highest mean HR@10 (from scratch, pre-trained with
    SGD or with Adam fine-tuning) and our MF's margin over it (:func:`versus_published` rows
    with label "ncf"): Section 3's claim tested against the strongest learned similarity."""
    neumf = mf_versus_ncf[mf_versus_ncf["model"].str.startswith("NeuMF")]
    best = neumf.loc[neumf.groupby("dim")["hr10_ncf"].idxmax()]
    return best[["dim", "model", "hr10_ncf", "hr10_ours", "hr10_diff", "hr10_beyond_ci"]] \
        .rename(columns={"hr10_ncf": "hr10_neumf", "hr10_ours": "hr10_mf"}).reset_index(drop=True)


def adam_finetuning_text(mf_versus_ncf: pd.DataFrame, runs: pd.DataFrame) -> str:
    """A sentence on pre-trained NeuMF fine-tuned with Adam, as NCF's published code does:
    where it ran, how it compares with SGD fine-tuning and with our MF, said plainly when it
    wins; or that it has not run yet."""
    adam_name = NCF_MODEL_NAMES["NeuMF-pretrained-adam"]
    adam = mf_versus_ncf[mf_versus_ncf["model"] == adam_name]
    if adam.empty:
        return ("Pre-trained NeuMF fine-tuned with Adam, as NCF's published code does, has no "
                "committed run yet, so the statements above cover NeuMF from scratch and "
                "pre-trained NeuMF fine-tuned with SGD.")
    sgd = mf_versus_ncf[mf_versus_ncf["model"] == NCF_MODEL_NAMES["NeuMF-pretrained"]] \
        .set_index("dim")["hr10_ncf"]
    seeds = runs[runs["model"] == "NeuMF-pretrained-adam"].groupby("dim")["seed"].nunique()
    parts = []
    for row in adam.itertuples():
        versus_sgd = (f", {sgd[row.dim]:.4f} fine-tuned with SGD" if row.dim in sgd.index
                      else "")
        verdict = (f"our MF is {row.hr10_diff:.4f} above it" if row.hr10_diff > 0 else
                   f"it is {-row.hr10_diff:.4f} above our MF, a learned similarity beating "
                   "our dot product")
        interval = "" if row.hr10_beyond_ci else ", within our MF's 95% interval"
        parts.append(f"HR@10 {row.hr10_ncf:.4f} at d = {row.dim} (mean of "
                     f"{seeds.get(row.dim, 0)} seeds{versus_sgd}), where {verdict}{interval}")
    missing = sorted(set(sgd.index) - set(adam["dim"]))
    tail = (f" It has not run at d = {', '.join(str(d) for d in missing)}." if missing else "")
    return ("Fine-tuned with Adam at learning rate 0.001, as NCF's published code does, "
            f"pre-trained NeuMF reaches {'; '.join(parts)}.{tail}")


def _learned_only(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the learned similarities (MLP and the NeuMFs): all but GMF."""
    return table[table["model"] != "GMF"]


def _mf_minus_ncf_rule(mf_versus_ncf: pd.DataFrame, ncf_versus: pd.DataFrame) -> pd.Series:
    """Our MF minus the MLP's and NeuMFs' mean HR@10 under NCF's rule (best test epoch), per
    setting: the honest margin less the mean inflation (rule minus validation choice)."""
    merged = _learned_only(mf_versus_ncf).merge(ncf_versus, on=["model", "dim"],
                                                suffixes=("", "_published"))
    inflation = merged["hr10_diff_ncf_rule"] - merged["hr10_diff_published"]
    return merged["hr10_diff"] - inflation


def _hr10_inflation(runs: pd.DataFrame) -> pd.Series:
    """Per run, the HR@10 that NCF's rule (best test epoch) adds to the honest selection."""
    return runs["hr10_test_selected"] - runs["hr10"]


def _model_key(published_name: str) -> str:
    """'NeuMF (pre-trained)' -> 'neumf_pretrained': a model's part of a prose-number name."""
    return _OUR_MODEL_NAMES[published_name].lower().replace("-", "_")


def selected_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """The epoch each validation run chose, one row per model and k, one column per seed
    (0 for pre-trained NeuMF is its starting point, before any fine-tuning)."""
    tidy = runs.assign(model=pd.Categorical(runs["model"].map(NCF_MODEL_NAMES),
                                            categories=list(NCF_MODEL_NAMES.values())))
    table = tidy.pivot_table(index=["model", "predictive_factor"], columns="seed",
                             values="epochs_selected", observed=True)
    return table.astype("Int64")


def ncf_prose_numbers(mf_versus_ncf: pd.DataFrame, ncf_versus: pd.DataFrame,
                      runs: pd.DataFrame, from_factor: int = 16) -> dict[str, float | int]:
    """The numbers the Section 3 prose cites about our NCF runs, by name, as plain Python
    numbers: the chapter glues them into its text (myst-nb ``glue``), so the text follows the
    committed results instead of being retyped when rows land. Inputs as :func:`ncf_findings`.

    - ``gap_<model>_<d>``, ``gap_<model>_min``, ``gap_<model>_max``: our MF minus the model,
      HR@10 (model: gmf, mlp, neumf, neumf_pretrained, neumf_pretrained_adam);
      ``gap_learned_min``/``_max`` over the MLP and every NeuMF, ``learned_above`` (both
      metrics) and ``learned_beyond`` (HR@10 beyond MF's 95% interval) of
      ``learned_compared`` settings;
    - ``strongest_above`` of ``strongest_dims``, ``strongest_gap_min``/``_max``: our MF
      against the strongest NeuMF variant at each d (:func:`strongest_neumf`);
    - ``below_published_max`` (and ``_ncf_rule``): the most our MLP/NeuMF HR@10 falls below
      the published number at one d (negative when they are never below);
    - ``inflation_mean_max``: the largest mean over seeds (per model and k) of the HR@10 that
      test-set selection adds, ``inflation_run_max`` the largest in one run, and
      ``best_test_epoch_runs`` of ``runs``: runs where it adds nothing;
    - ``gap_learned_ncf_rule_min``: our MF minus MLP/NeuMF chosen by NCF's rule, HR@10, the
      smallest over settings, ``gap_learned_ncf_rule_holds`` of ``learned_settings``: the
      settings where it is positive;
    - ``pretrained_epoch0`` of ``pretrained_runs``: pre-trained NeuMF runs at
      k >= ``from_factor`` that keep epoch 0.
    """
    numbers: dict[str, float | int] = {}
    for name, group in mf_versus_ncf.groupby("model", sort=False):
        key = _model_key(name)
        numbers.update({f"gap_{key}_{int(d)}": float(diff)
                        for d, diff in zip(group["dim"], group["hr10_diff"])})
        numbers[f"gap_{key}_min"] = float(group["hr10_diff"].min())
        numbers[f"gap_{key}_max"] = float(group["hr10_diff"].max())
    learned = _learned_only(mf_versus_ncf)
    numbers["gap_learned_min"] = float(learned["hr10_diff"].min())
    numbers["gap_learned_max"] = float(learned["hr10_diff"].max())
    numbers["learned_compared"] = len(learned)
    numbers["learned_above"] = int(((learned["hr10_diff"] > 0)
                                    & (learned["ndcg10_diff"] > 0)).sum())
    numbers["learned_beyond"] = int(((learned["hr10_diff"] > 0)
                                     & learned["hr10_beyond_ci"]).sum())
    strongest = strongest_neumf(mf_versus_ncf)
    numbers["strongest_dims"] = len(strongest)
    numbers["strongest_above"] = int((strongest["hr10_diff"] > 0).sum())
    numbers["strongest_gap_min"] = float(strongest["hr10_diff"].min())
    numbers["strongest_gap_max"] = float(strongest["hr10_diff"].max())
    vs_published = _learned_only(ncf_versus)
    numbers["below_published_max"] = float(-vs_published["hr10_diff"].min())
    numbers["below_published_max_ncf_rule"] = float(-vs_published["hr10_diff_ncf_rule"].min())
    inflation = runs.assign(inflation=_hr10_inflation(runs))
    numbers["inflation_mean_max"] = float(
        inflation.groupby(["model", "predictive_factor"])["inflation"].mean().max())
    numbers["inflation_run_max"] = float(inflation["inflation"].max())
    mf_minus_ncf_rule = _mf_minus_ncf_rule(mf_versus_ncf, ncf_versus)
    numbers["gap_learned_ncf_rule_min"] = float(mf_minus_ncf_rule.min())
    numbers["gap_learned_ncf_rule_holds"] = int((mf_minus_ncf_rule > 0).sum())
    numbers["learned_settings"] = len(mf_minus_ncf_rule)
    numbers["best_test_epoch_runs"] = int((inflation["inflation"] == 0).sum())
    numbers["runs"] = len(runs)
    pretrained = runs[(runs["model"] == "NeuMF-pretrained")
                      & (runs["predictive_factor"] >= from_factor)]
    numbers["pretrained_epoch0"] = int((pretrained["epochs_selected"] == 0).sum())
    numbers["pretrained_runs"] = len(pretrained)
    return numbers


# --------------------------------------------------------------------------------------
# Section 3 at a glance: the full-scale runs, Figure 2 and Table 1 in one call each
# --------------------------------------------------------------------------------------

# Published rows of Table 1 (``published.table1()`` source text) in the short form the
# book's tables show: who measured the number. Rendle et al.'s Table 1 quotes Dacrema et al.'s
# "troubling analysis" (arXiv 2019, published in TOIS 2021), not the numbers of their RecSys
# 2019 paper; "extra" rows are from the TOIS additional material (2020-08 version).
TABLE1_SOURCES = {
    "Rendle et al. 2020 Table 1 (from Dacrema et al.)": "Dacrema et al.",
    "Rendle et al. 2020 Table 1": "Rendle et al.",
    "Dacrema et al. TOIS additional material (2020-08 version)": "Dacrema et al., extra",
}

# Our NCF models as Table 1 names them (short, so the table fits the page column).
_TABLE1_NAMES = {"NeuMF (no pre-training)": "NeuMF", "NeuMF (pre-trained)": "NeuMF, pre-trained"}

# Rows of ``published.table1()`` that are Rendle et al.'s Table 1 itself.
_TABLE1_OWN = ("Rendle et al. 2020 Table 1 (from Dacrema et al.)", "Rendle et al. 2020 Table 1")


@dataclass(frozen=True)
class Section3Results:
    """The full-scale Section 3 runs of one dataset, filtered and averaged over seeds.

    ``mf_runs``: our MF, one row per d and seed (test split, float64, one thread); ``mf``:
    :func:`over_seeds` of it, one row per d; ``ncf_runs``: our NCF models (full runs,
    max_batches 0); ``ncf``: :func:`ncf_over_seeds` of it (empty without runs); ``published``:
    He et al.'s MLP and NeuMF recast to d (``published.ncf_curves()``) for the dataset.
    """

    dataset: str
    mf_runs: pd.DataFrame
    mf: pd.DataFrame
    ncf_runs: pd.DataFrame
    ncf: pd.DataFrame
    published: pd.DataFrame

    @property
    def mf_seeds(self) -> tuple[int, int]:
        """The fewest and the most seeds behind one d of our MF."""
        return int(self.mf["seeds"].min()), int(self.mf["seeds"].max())


def full_mf_runs(runs: pd.DataFrame, dataset: str = "ml-1m") -> pd.DataFrame:
    """The MF runs behind Figure 2: every setting the ``mf`` experiment fixes for the book (test
    split, 256 epochs, the paper's lr, lambda and m for ``dataset``, float64, one thread)."""
    from .experiments import get
    from .experiments.engine import book_settings

    settings = book_settings(get("mf"), axes=("lr", "reg", "negatives"), dataset=dataset)
    return select_rows(runs, settings, "MF runs")


def full_ncf_runs(runs: pd.DataFrame, dataset: str = "ml-1m") -> pd.DataFrame:
    """NCF runs with NCF's settings (20 epochs, Adam lr 0.001, 4 negatives, batch 256, no L2,
    every batch of every epoch, the epoch selected on the tuning split) of ``dataset``."""
    from .experiments import get
    from .experiments.engine import book_settings

    if runs.empty:
        return runs
    return select_rows(runs, book_settings(get("ncf"), dataset=dataset), "NCF runs")


def tuning_runs(results_dir: str | Path, dataset: str = "ml-1m") -> pd.DataFrame:
    """The MF runs on the tuning split (Appendix A.2) of ``dataset``: every pass (d and epochs),
    float64, one thread; a smoke run of other settings is never included."""
    from .experiments import get
    from .experiments.store import book_tables

    return book_tables(get("mf-tuning"), results_dir, dataset=dataset, epochs=None)[0]


def init_runs(results_dir: str | Path, dataset: str = "ml-1m") -> pd.DataFrame:
    """The MF runs of the initialization check (``reproduce mf-init``) of ``dataset``: the
    paper's settings with other initial standard deviations; empty when none is committed."""
    from .experiments import get
    from .experiments.store import book_tables

    if not (Path(results_dir) / "mf_init_runs.csv").is_file():
        return pd.DataFrame(columns=["dim", "init_std", "seed", "hr10", "ndcg10"])
    return book_tables(get("mf-init"), results_dir, dataset=dataset)[0]


def init_text(sweep: pd.DataFrame) -> str:
    """One sentence on the initialization check from ``over_seeds(runs, ["dim", "init_std"])``:
    how far the mean HR@10 moves over the standard deviations tried, against the intervals."""
    if sweep.empty:
        return ("The initialization check has no committed run yet, so the Appendix's remark "
                "is neither confirmed nor contradicted here.")
    low, high = sweep.loc[sweep["hr10"].idxmin()], sweep.loc[sweep["hr10"].idxmax()]
    spread = high["hr10"] - low["hr10"]
    stds = ", ".join(f"{v:g}" for v in sorted(sweep["init_std"]))
    within = spread <= low["hr10_ci95"] + high["hr10_ci95"]
    verdict = ("within the seeds' 95% intervals, so the choice matters little, as the "
               "Appendix says" if within else
               "beyond the seeds' 95% intervals, so here the choice does matter, against the "
               "Appendix's remark")
    return (f"Over σ = {stds} the mean HR@10 moves by {spread:.4f}, from "
            f"{low['hr10']:.4f} (σ = {low['init_std']:g}) to {high['hr10']:.4f} "
            f"(σ = {high['init_std']:g}): {verdict}.")


def coarse_grid_means(grid: pd.DataFrame, by: str, metric: str = "hr10") -> pd.DataFrame:
    """Mean ``metric`` per value of ``by`` over the other settings that every value of ``by``
    ran with (a fair comparison in a grid with holes), and how many settings that is."""
    others = [c for c in ("lr", "reg", "negatives") if c != by]
    complete = grid.groupby(others)[by].transform("nunique") == grid[by].nunique()
    kept = grid[complete]
    return (kept.groupby(by)[metric].agg(["mean", "size"]).reset_index()
            .rename(columns={"mean": metric, "size": "settings"}))


def section3_results(results_dir: str | Path, dataset: str = "ml-1m") -> Section3Results:
    """Load ``mf_runs.csv`` and ``ncf_runs.csv`` (if present) of ``results_dir`` for Figure 2
    and Table 1: filtered to the full runs and averaged over seeds."""
    from . import published as published_numbers

    folder = Path(results_dir)
    mf_runs = full_mf_runs(pd.read_csv(folder / "mf_runs.csv"), dataset)
    ncf_file = folder / "ncf_runs.csv"
    ncf_runs = full_ncf_runs(pd.read_csv(ncf_file), dataset) if ncf_file.is_file() else pd.DataFrame()
    ncf = ncf_over_seeds(ncf_runs) if len(ncf_runs) else pd.DataFrame(
        columns=["dataset", "model", "predictive_factor", "dim", "hr10", "hr10_ci95", "ndcg10",
                 "ndcg10_ci95", "seeds"])
    curves = published_numbers.ncf_curves()
    return Section3Results(dataset, mf_runs, over_seeds(mf_runs, ["dataset", "model", "dim"]),
                           ncf_runs, ncf, curves[curves["dataset"] == dataset].reset_index(drop=True))


def table1_beside_published(results: Section3Results, dim: int = 192,
                            further: bool = False) -> pd.DataFrame:
    """Table 1 of the paper with our rows: our MF at ``dim`` (mean over seeds, 95% interval)
    and our NCF models at ``dim``, below the published rows, each with its source (rows do
    not repeat ``dim``: the published MF row is at d = 192, the paper's Table 1 setting).

    Columns: model, hr10, hr10_ci95, ndcg10, ndcg10_ci95, seeds, source (interval and seeds
    missing for published rows). ``further=True`` adds the baselines Dacrema et al. ran on the
    same split beyond Table 1.
    """
    prefix = {"ml-1m": "ml1m", "pinterest-20": "pinterest"}[results.dataset]
    table = _published_table1()
    if not further:
        table = table[table["source"].isin(_TABLE1_OWN)]
    rows = [{"model": re.sub(r" \(d=\d+\)$", "", r["method"]), "hr10": r[f"{prefix}_hr10"],
             "ndcg10": r[f"{prefix}_ndcg10"],
             "source": TABLE1_SOURCES.get(r["source"], r["source"])} for _, r in table.iterrows()]
    for _, r in results.mf[results.mf["dim"] == dim].iterrows():
        rows.append(_our_row(r, "Matrix Factorization", "ours, last epoch"))
    for _, r in results.ncf[results.ncf["dim"] == dim].iterrows():
        rows.append(_our_row(r, _TABLE1_NAMES.get(r["model"], r["model"]),
                             "ours, val. epoch"))
    columns = ["model", "hr10", "hr10_ci95", "ndcg10", "ndcg10_ci95", "seeds", "source"]
    return pd.DataFrame(rows).reindex(columns=columns)


def _published_table1() -> pd.DataFrame:
    """``published.table1()`` (imported late: the published package is data, not code)."""
    from . import published as published_numbers

    return published_numbers.table1()


def _our_row(row: pd.Series, name: str, source: str) -> dict:
    """A Table 1 row of ours from an :func:`over_seeds` row."""
    return {"model": name, "hr10": row["hr10"], "hr10_ci95": row["hr10_ci95"],
            "ndcg10": row["ndcg10"], "ndcg10_ci95": row["ndcg10_ci95"],
            "seeds": int(row["seeds"]), "source": source}


def section3_ncf_numbers(results: Section3Results) -> dict[str, float | int]:
    """:func:`ncf_prose_numbers` straight from a :class:`Section3Results` (the comparisons
    with our MF and with He et al.'s numbers built on the way)."""
    mf_versus_ncf = versus_published(
        results.mf, results.ncf.rename(columns={"dim": "embedding_dim"}), label="ncf")
    ncf_versus = ncf_versus_published(results.ncf, results.published)
    return ncf_prose_numbers(mf_versus_ncf, ncf_versus, results.ncf_runs)
