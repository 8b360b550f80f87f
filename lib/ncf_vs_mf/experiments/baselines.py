"""Table 1 in full: the classic baselines, tuned on the tuning split, then run on the test split
(``reproduce baselines``).

One experiment, two kinds of cells. A *tuning* cell fits one grid point of a model on the
tuning split (each user's last training interaction held out, 100 sampled negatives; the test
items never enter) and records its HR@10 / NDCG@10. A *test* cell requires every tuning cell
of its model, grid and seed, takes the grid point with the best tuning HR@10 (NDCG@10, then
grid order, breaks ties), fits it on the full training file and ranks the test candidates.
Tuning uses one seed (0), as the MF chapter's tuning does; the chosen setting then runs with
every seed asked for on the test split.
The grid contains both, so one command runs the tuning and the selected settings, each cell
stored once (resumable), and the runs table has one row per model, split, setting and seed
with a ``selection`` column saying how the setting was chosen. Models with randomness
(iALS, BPR-MF) run every seed; the deterministic ones run once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from .. import data as data_mod
from ..baselines import BASELINES, check_params, fit_and_evaluate
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis, fixed, from_engine

BASELINES_KEY = ("dataset", "model", "split", "grid", "setting", "seed", "threads")
SELECTED = "selected"  # the setting of a test cell: the one its tuning cells chose
NO_PARAMETERS = "(none)"
TUNING_SEED = 0  # the seed of every tuning cell


def _product(**values: tuple) -> list[dict[str, Any]]:
    """Every combination of the given values, in order (the last name varies fastest)."""
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


# The grids searched on the tuning split. "table1" is the committed one: each baseline's main
# hyperparameters over about a decade around the values Dacrema et al. and Rendle et al. 2021
# found on ML-1M; iALS gets a 3 x 3 grid of L2 and unobserved weight at Rendle et al.'s d = 192
# and 12 iterations, plus one-at-a-time changes of d and of the iterations at its centre.
# "smoke" is one or two points per model for tests. Stored cells are keyed by the grid's name:
# a grid with other points needs a new name (else stored selections are reused).
GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "table1": {
        "Popularity": [{}],
        "item-kNN": _product(neighbors=(50, 100, 200, 400), shrink=(0.0, 10.0, 100.0)),
        "RP3beta": _product(neighbors=(100, 200), alpha=(0.5, 1.0), beta=(0.0, 0.3, 0.6)),
        "PureSVD": _product(factors=(20, 50, 100, 200)),
        "EASE^R": _product(reg=(200.0, 500.0, 1000.0, 2000.0, 4000.0)),
        "SLIM": _product(alpha=(1e-3, 3e-3), l1_ratio=(0.1,), neighbors=(200,),
                         max_iter=(100,)),
        "iALS": (_product(factors=(192,), reg=(10.0, 30.0, 100.0),
                          unobserved_weight=(0.1, 0.3, 1.0), iterations=(12,))
                 + _product(factors=(64, 128), reg=(30.0,), unobserved_weight=(0.3,),
                            iterations=(12,))
                 + _product(factors=(192,), reg=(30.0,), unobserved_weight=(0.3,),
                            iterations=(6, 24))),
        "BPR-MF": _product(factors=(64, 128), lr=(0.01, 0.03), reg=(0.01,), iterations=(50,)),
    },
    "smoke": {
        "Popularity": [{}],
        "item-kNN": _product(neighbors=(5, 20), shrink=(0.0,)),
        "RP3beta": _product(neighbors=(20,), alpha=(1.0,), beta=(0.0, 0.5)),
        "PureSVD": _product(factors=(4, 8)),
        "EASE^R": _product(reg=(10.0, 100.0)),
        "SLIM": _product(alpha=(1e-3,), l1_ratio=(0.1,), neighbors=(20,), max_iter=(20,)),
        "iALS": _product(factors=(8,), reg=(1.0,), unobserved_weight=(0.3,), iterations=(3,)),
        "BPR-MF": _product(factors=(8,), lr=(0.05,), reg=(0.01,), iterations=(5,)),
    },
}


def setting_text(params: dict[str, Any]) -> str:
    """A grid point as one table field: ``factors=192 reg=30.0`` (sorted by name)."""
    return " ".join(f"{k}={params[k]!r}" for k in sorted(params)) or NO_PARAMETERS


def parse_setting(text: str) -> dict[str, Any]:
    """The parameters of a :func:`setting_text` field (ints stay ints, floats floats)."""
    if text == NO_PARAMETERS:
        return {}
    pairs = (item.split("=", 1) for item in text.split())
    return {k: float(v) if any(c in v for c in ".e") else int(v) for k, v in pairs}


@dataclass(frozen=True)
class BaselineCell:
    """One fit of a baseline: on the tuning split at one grid point, or on the test split at
    the grid point its tuning cells chose (``setting`` = "selected")."""

    dataset: str = axis("--dataset", "dataset", choices=data_mod.DATASETS, many=False)
    model: str = axis("--models", "baselines", choices=tuple(BASELINES))
    grid: str = axis("--grid", "hyperparameter grid searched on the tuning split",
                     choices=tuple(GRIDS), many=False)
    seed: int = axis("--seeds", "seeds of the models with randomness (the deterministic "
                     "ones run once, with the first seed)")
    split: str = fixed()  # "tuning" or "test"
    setting: str = fixed()  # a grid point (tuning) or "selected" (test)
    threads: int = from_engine("threads")


def grid_points(cell: BaselineCell) -> list[dict[str, Any]]:
    """The settings a test cell chooses among."""
    return GRIDS[cell.grid][cell.model]


def tuning_cells(cell: BaselineCell) -> dict[str, BaselineCell]:
    """A test cell's requirements: its model's tuning cells at every grid point (seed 0)."""
    return {setting_text(p): replace(cell, split="tuning", setting=setting_text(p),
                                     seed=TUNING_SEED) for p in grid_points(cell)}


def requires(cell: BaselineCell) -> dict[str, BaselineCell]:
    """Test cells need their tuning cells; tuning cells need nothing."""
    return tuning_cells(cell) if cell.split == "test" else {}


@dataclass(frozen=True)
class SelectionExperiment(Experiment):
    """An experiment whose grid is each test cell preceded by the tuning cells it selects from
    (the grid points differ by model, so the grid is not a product of axes)."""

    def grid(self, values: dict[str, Any], engine: dict[str, Any]) -> list[Any]:
        """Tuning cells, then test cells, for every model and seed asked for."""
        cells: list[BaselineCell] = []
        seeds = list(values["seed"])
        for model in values["model"]:
            for seed in (seeds if BASELINES[model].random else seeds[:1]):
                test = BaselineCell(values["dataset"], model, values["grid"], seed, "test",
                                    SELECTED, engine["threads"])
                cells += [*tuning_cells(test).values(), test]
        return list(dict.fromkeys(cells))


def choose(results: dict[str, RunResult]) -> str:
    """The setting with the best tuning HR@10 (then NDCG@10, then the first in grid order)."""
    ordered = list(results)
    return max(ordered, key=lambda s: (results[s].row["hr10"], results[s].row["ndcg10"],
                                       -ordered.index(s)))


def run_cell(cell: BaselineCell, context: Context) -> RunResult:
    """Worker: fit the cell's setting on its split and rank its candidates (timed)."""
    if cell.split == "tuning":
        setting, selection = cell.setting, "grid point (tuning split)"
    else:
        setting = choose({s: context.inputs[s] for s in tuning_cells(cell)})
        selection = (f"best tuning HR@10 of {len(grid_points(cell))} grid points "
                     f"(seed {TUNING_SEED})")
    split = load_split(cell.dataset, cell.split, context.data_dir)
    result = fit_and_evaluate(cell.model, split, parse_setting(setting), cell.seed,
                              cell.threads)
    row = {**result.metrics.as_dict(), "params": setting, "selection": selection,
           "fit_seconds": round(result.fit_seconds, 2),
           "score_seconds": round(result.score_seconds, 2)}
    return RunResult(row)


def check(cell: BaselineCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option or parameter."""
    if cell.model not in BASELINES:
        return [f"--models {cell.model}: unknown; known: {', '.join(BASELINES)}"]
    problems = [f"--seeds {cell.seed}: need a seed >= 0"] if cell.seed < 0 else []
    if cell.split not in ("tuning", "test"):
        problems.append(f"split {cell.split!r}: need 'tuning' or 'test'")
    points = [parse_setting(cell.setting)] if cell.split == "tuning" else grid_points(cell)
    for params in points:
        problems += [f"--grid {cell.grid}: {p}" for p in check_params(cell.model, params)]
    return problems


def prepare(cells: list[BaselineCell], data_dir: str | None) -> dict[str, Any]:
    """Load (or download) both splits of the grid's dataset in the driver; its provenance."""
    datasets = sorted({c.dataset for c in cells})
    records = [data_provenance(d, data_dir, split="tuning, test") for d in datasets]
    for cell in cells:
        load_split(cell.dataset, cell.split, data_dir)
    return records[0] if len(records) == 1 else {"datasets": records}


def summary(cell: BaselineCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"{cell.dataset}/{cell.split} {cell.model} {row['params']} seed={cell.seed}: "
            f"HR@10={row['hr10']:.4f} NDCG@10={row['ndcg10']:.4f} "
            f"(fit {row['fit_seconds']:.1f} s, scoring {row['score_seconds']:.1f} s)")


BASELINES_EXPERIMENT = SelectionExperiment(
    name="baselines", help="Table 1 in full: classic baselines tuned on the tuning split",
    description="Fit Popularity, item-kNN, RP3beta, PureSVD, EASE^R, SLIM, iALS and BPR-MF at "
                "every grid point on the tuning split (no test data), then each model's best "
                "grid point on the test split; the NCF evaluator scores every fit.",
    cell=BaselineCell, run=run_cell, runs_table="baselines_runs", curves_table=None,
    key=BASELINES_KEY, folder="baselines",
    defaults={"dataset": "ml-1m", "model": tuple(BASELINES), "grid": "table1",
              "seed": (0, 1, 2)},
    check=check, prepare=prepare, requires=requires, summary=summary)
