"""Sampled metrics against full ranking, declared on the experiment engine (``reproduce
sampled-vs-full``). One cell is one model setting and seed: its run trains the model with the
book's settings, scores every user against every item, and evaluates that score matrix under
every protocol of :mod:`ncf_vs_mf.protocols` (NCF's 99 fixed negatives, m uniform negatives
for several draws, full ranking, the corrected estimator).

Model settings are named ``MF-<d>`` (matrix factorization at embedding dimension d, the
paper's SGD settings, 256 epochs, metric after the last epoch) and ``GMF-<k>``, ``MLP-<k>``,
``NeuMF-<k>`` (NCF's models at predictive factor k, NCF's Adam settings, trained on the full
training file for the epoch count the NCF chapter selected on the tuning split, read from the
committed ``results/ncf_experiments/ncf_runs.csv``: the model is the NCF chapter's test-run
model at its selected epoch, whose sampled HR@10 the row repeats as ``hr10_trainer``), and
the baselines chapter's models by name (``EASE^R``...), fitted at the setting that chapter
tuned, read from the committed ``results/baselines/baselines_runs.csv`` (``hr10_trainer``: the
HR@10 that table reports).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import data as data_mod
from .. import protocols
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis, derived
from .mf import PAPER_HYPERPARAMETERS, full_ranking_scorer
from .ncf import ncf_scorer

NCF_FAMILIES = ("GMF", "MLP", "NeuMF")
BASELINE = "baseline"  # the family of the baselines chapter's models
BASELINE_MODELS = ("Popularity", "item-kNN", "RP3beta", "PureSVD", "EASE^R", "SLIM", "iALS",
                   "BPR-MF")
MODELS = ("MF-16", "MF-64", "MF-192", "GMF-8", "GMF-16", "MLP-8", "MLP-16", "NeuMF-8",
          "NeuMF-16") + BASELINE_MODELS
MF_EPOCHS = 256
SAMPLE_SIZES = " ".join(map(str, protocols.SAMPLE_SIZES))
KEY = ("dataset", "model", "family", "size", "seed", "epochs", "draws", "sample_sizes")
_SETTING = re.compile(r"^(MF|GMF|MLP|NeuMF)-([0-9]+)$")
_MINUTES_PER_EPOCH = {"GMF": 0.12, "MLP": 0.2, "NeuMF": 0.22}  # one core, k <= 16 (NCF runs)
_BASELINE_MINUTES = {"Popularity": 0.1, "item-kNN": 0.6, "RP3beta": 0.6, "PureSVD": 0.4,
                     "EASE^R": 0.6, "SLIM": 20.0, "iALS": 4.0, "BPR-MF": 4.0}


def parse_model(model: str) -> tuple[str, int]:
    """(family, size) of a model setting: ``MF-64`` -> ("MF", 64), ``EASE^R`` -> ("baseline",
    0); ("", 0) if it is neither."""
    match = _SETTING.match(model)
    if match:
        return match.group(1), int(match.group(2))
    return (BASELINE, 0) if model in BASELINE_MODELS else ("", 0)


@lru_cache(maxsize=8)
def _committed(table: str) -> Any:
    """A committed runs table under the results folder (empty if not there)."""
    import pandas as pd

    from ..results import RESULTS_DIR

    path = RESULTS_DIR / table
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def baseline_row(dataset: str, model: str, seed: int) -> dict[str, Any] | None:
    """The baselines chapter's test row of ``model`` (its tuned setting, grid "table1"), for
    ``seed`` (deterministic models: their one row), or None if not committed."""
    runs = _committed("baselines/baselines_runs.csv")
    if runs.empty:
        return None
    match = runs[(runs["dataset"] == dataset) & (runs["model"] == model)
                 & (runs["split"] == "test") & (runs["grid"] == "table1")]
    seeded = match[match["seed"] == seed]
    chosen = seeded if len(seeded) else match
    return chosen.iloc[0].to_dict() if len(chosen) else None


def ncf_selected_epoch(dataset: str, model: str, k: int, seed: int) -> int:
    """The epoch the NCF chapter selected on the tuning split for (model, k, seed), from its
    committed runs table (NCF's default settings, full epochs); -1 if not there."""
    runs = _committed("ncf_experiments/ncf_runs.csv")
    if runs.empty:
        return -1
    match = runs[(runs["dataset"] == dataset) & (runs["model"] == model)
                 & (runs["predictive_factor"] == k) & (runs["seed"] == seed)
                 & (runs["max_epochs"] == 20) & (runs["lr"] == 0.001) & (runs["reg"] == 0)
                 & (runs["negatives"] == 4) & (runs["batch_size"] == 256)
                 & (runs["max_batches"] == 0)]
    return int(match["epochs_selected"].iloc[0]) if len(match) else -1


@dataclass(frozen=True)
class SampledCell:
    """One model setting and seed, evaluated under every protocol."""

    dataset: str = axis("--dataset", "dataset", choices=data_mod.DATASETS, many=False)
    model: str = axis("--models", "model settings: MF-<d>, GMF-<k>, MLP-<k>, NeuMF-<k>, or a "
                      "baseline by name")
    seed: int = axis("--seeds", "seeds (training and the uniform negatives' draws)")
    draws: int = axis("--draws", "independent draws of the uniform negatives per m", many=False)
    sample_sizes: str = axis("--sample-sizes", "the m of the uniform protocol, one quoted, "
                             "space-separated list", many=False)
    family: str = derived()
    size: int = derived()  # d for MF, predictive factor k for NCF's models, 0 for baselines
    epochs: int = derived()  # MF: 256; NCF: the epoch selected on the tuning split (-1: none);
    # baselines: 0 (their tuned setting, from the baselines chapter's table, is in the row)

    def __post_init__(self) -> None:
        family, size = parse_model(self.model)
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "size", size)
        epochs = (MF_EPOCHS if family == "MF" else 0 if family == BASELINE else
                  ncf_selected_epoch(self.dataset, family, size, self.seed) if family else -1)
        object.__setattr__(self, "epochs", epochs)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The m of the uniform protocol."""
        return tuple(int(m) for m in self.sample_sizes.split())


def _train_mf(cell: SampledCell, split: data_mod.LeaveOneOutSplit
              ) -> tuple[protocols.Scorer, dict[str, float]]:
    from ..mf import MFConfig, train_mf

    paper = PAPER_HYPERPARAMETERS.get(cell.dataset, PAPER_HYPERPARAMETERS["ml-1m"])
    config = MFConfig(dim=cell.size, epochs=cell.epochs, seed=cell.seed, dtype="float64",
                      threads=1, **paper)
    model, history = train_mf(split, config)
    settings = " ".join(f"{k}={v}" for k, v in sorted(paper.items()))
    return (full_ranking_scorer(model),
            {**history.rows[-1], "params": f"{settings} epochs={cell.epochs}"})


def _train_ncf(cell: SampledCell, split: data_mod.LeaveOneOutSplit, data_dir: str | None
               ) -> tuple[protocols.Scorer, dict[str, float]]:
    from ..ncf_protocol import RunTask, execute_run
    from ..ncf_training import NCFConfig

    tuning = load_split(cell.dataset, "tuning", data_dir)
    task = RunTask(cell.family, cell.size, cell.seed, "test", keep=(cell.epochs,))
    result = execute_run(task, split, tuning, NCFConfig(epochs=cell.epochs, device="cpu"))
    score = ncf_scorer(cell.family, cell.size, split, result.states[cell.epochs])
    return score, {**result.rows[cell.epochs],
                   "params": f"epochs={cell.epochs} (selected on the tuning split)"}


def _fit_baseline(cell: SampledCell, split: data_mod.LeaveOneOutSplit
                  ) -> tuple[protocols.Scorer, dict[str, Any]]:
    from ..baselines import fit_baseline
    from .baselines import parse_setting

    committed = baseline_row(cell.dataset, cell.model, cell.seed)
    if committed is None:
        raise ValueError(f"--models {cell.model}: no tuned setting in "
                         "results/baselines/baselines_runs.csv")
    recommender = fit_baseline(cell.model, split, parse_setting(committed["params"]), cell.seed)
    return recommender.score_all, committed


def run_cell(cell: SampledCell, context: Context) -> RunResult:
    """Worker: train the model on one thread, score every item, evaluate every protocol."""
    import numba
    import torch

    numba.set_num_threads(1)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = load_split(cell.dataset, "test", context.data_dir)
        start = time.perf_counter()
        if cell.family == "MF":
            scorer, logged = _train_mf(cell, split)
        elif cell.family == BASELINE:
            scorer, logged = _fit_baseline(cell, split)
        else:
            scorer, logged = _train_ncf(cell, split, context.data_dir)
        trained = time.perf_counter()
        scores = protocols.score_matrix(scorer, split.n_users, split.n_items, block=256,
                                        model=cell.model)
        scored = time.perf_counter()
        users = protocols.full_ranks(scores, split)
        ranked = time.perf_counter()
        rows = protocols.protocol_rows(scores, split, cell.sizes, cell.draws, cell.seed,
                                       model=cell.model)
    finally:
        torch.set_num_threads(saved)
    by_protocol = {(r["protocol"], r["estimator"], r["m"], r["draw"]): r for r in rows}
    ncf, full = by_protocol[("ncf", "sampled", 99, 0)], by_protocol[("full", "exact", 0, 0)]
    row = {"hr10_ncf": ncf["hr10"], "ndcg10_ncf": ncf["ndcg10"], "hr10_full": full["hr10"],
           "ndcg10_full": full["ndcg10"], "hr10_trainer": logged["hr10"],
           "ndcg10_trainer": logged["ndcg10"], "params": logged["params"],
           "tied_users": int(np.count_nonzero(users.ties)),
           "pool_min": int(users.pool.min()), "pool_max": int(users.pool.max()),
           "correction_pool": protocols.correction_pool(users),
           "seconds_train": round(trained - start, 1),
           "seconds_full_scores": round(scored - trained, 2),
           "seconds_full_ranks": round(ranked - scored, 2),
           "seconds_protocols": round(time.perf_counter() - ranked, 1)}
    return RunResult(row, rows)


def check(cell: SampledCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option."""
    problems = []
    if not cell.family:
        problems.append(f"--models {cell.model}: expected MF-<d>, GMF-<k>, MLP-<k>, NeuMF-<k> "
                        f"or a baseline ({', '.join(BASELINE_MODELS)})")
    elif cell.family == BASELINE and baseline_row(cell.dataset, cell.model, cell.seed) is None:
        problems.append(f"--models {cell.model}: no tuned setting on {cell.dataset} in "
                        "results/baselines/baselines_runs.csv (run `ncf-vs-mf reproduce "
                        "baselines --publish` first)")
    elif cell.family == "MF" and cell.size < 2:
        problems.append(f"--models {cell.model}: need d >= 2 (one bias coordinate + factors)")
    elif cell.family in NCF_FAMILIES and cell.epochs < 0:
        problems.append(f"--models {cell.model}: no validation-selected epoch for seed "
                        f"{cell.seed} on {cell.dataset} in results/ncf_experiments/ncf_runs.csv "
                        "(run `ncf-vs-mf reproduce ncf` for it first)")
    if cell.seed < 0:
        problems.append(f"--seeds {cell.seed}: need a seed >= 0")
    try:
        sizes = cell.sizes
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        problems.append(f"--sample-sizes {cell.sample_sizes!r}: expected integers m >= 1, "
                        "space separated")
    if cell.draws < 1:
        problems.append(f"--draws {cell.draws}: need at least one draw")
    return problems


def cost(cell: SampledCell) -> float:
    """Rough minutes on one core, so that the cheap models run first."""
    if cell.family == "MF":
        return 1.5 + cell.size / 50
    if cell.family == BASELINE:
        return _BASELINE_MINUTES.get(cell.model, 5.0)
    return max(cell.epochs, 1) * _MINUTES_PER_EPOCH.get(cell.family, 1.0) * max(1, cell.size / 16)


def prepare(cells: list[SampledCell], data_dir: str | None) -> dict[str, Any]:
    """Load (or download) the data of the grid in the driver; its provenance."""
    records = [data_provenance(d, data_dir) for d in sorted({c.dataset for c in cells})]
    for cell in cells:
        if cell.family in NCF_FAMILIES:
            load_split(cell.dataset, "tuning", data_dir)
    return records[0] if len(records) == 1 else {"datasets": records}


def summary(cell: SampledCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"{cell.dataset} {cell.model} seed={cell.seed}: HR@10 NCF {row['hr10_ncf']:.4f}, "
            f"full {row['hr10_full']:.4f} (trained in {row['seconds_train']:.0f} s)")


SAMPLED = Experiment(
    name="sampled-vs-full", help="Sampled metrics vs full ranking: every model, every protocol",
    description="Train each model setting with the book's settings, then rank every user's test "
                "item under NCF's 99 fixed negatives, m uniform negatives (several draws), full "
                "ranking, and the corrected estimator.",
    cell=SampledCell, run=run_cell, runs_table="sampled_runs", curves_table="sampled_protocols",
    key=KEY, folder="sampled_metrics", curve_extra_key=("protocol", "estimator", "m", "draw"),
    defaults={"dataset": "ml-1m", "model": MODELS, "seed": (0,), "draws": protocols.DRAWS,
              "sample_sizes": SAMPLE_SIZES}, order=("dataset", "seed", "model"), check=check,
    prepare=prepare, summary=summary, cost=cost)
