"""Matrix factorization (Section 3): Figure 2 on the NCF test split, Appendix A.2 on the tuning
split, declared on the experiment engine (``reproduce mf`` and ``reproduce mf-tuning``), and the
Appendix's initialization check (``reproduce mf-init``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import data as data_mod
from .. import protocols
from ..mf import MFConfig, MFModel, train_mf
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis, fixed, from_engine

MF_KEY = ("dataset", "split", "model", "dim", "seed", "epochs", "lr", "reg", "negatives", "dtype",
          "threads")
PAPER_HYPERPARAMETERS = {  # Rendle et al. 2020, Appendix A.2
    "ml-1m": {"lr": 0.002, "negatives": 8, "reg": 0.005},
    "pinterest-20": {"lr": 0.007, "negatives": 10, "reg": 0.01},
}
# The paper's Figure 2 dimensions plus 8, 24 and 48, so that each NCF model trained here
# (GMF d = k, MLP 2k, NeuMF 3k for k = 8..64) has a matrix factorization at its own d.
MF_DIMS = (8, 16, 24, 32, 48, 64, 96, 128, 192)
_PAPER = "(default: the paper's value for the dataset)"


@dataclass(frozen=True)
class MFCell:
    """One MF training run: every setting that changes its numbers."""

    dataset: str = axis("--dataset", "dataset", choices=data_mod.DATASETS, many=False)
    split: str = fixed()  # "test" (Figure 2) or "tuning" (Appendix A.2)
    model: str = fixed()
    dim: int = axis("--dims", "embedding dimensions d (counting the bias coordinate)")
    seed: int = axis("--seeds", "seeds")
    epochs: int = axis("--epochs", "SGD epochs", many=False)
    lr: float = axis("--lr", f"SGD learning rates {_PAPER}")
    reg: float = axis("--reg", f"L2 coefficients lambda {_PAPER}")
    negatives: int = axis("--negatives", f"negatives per positive m {_PAPER}")
    dtype: str = axis("--dtype", "float type", choices=("float64", "float32"), many=False)
    threads: int = from_engine("threads")  # >1 is Hogwild: fast but not reproducible
    eval_every: int = axis("--eval-every", "log training loss and HR/NDCG every this many "
                           "epochs (and after the last)", many=False)
    # Like eval_every, not part of the tables' key: it adds columns, not a setting.
    full_ranking: int = axis("--full-ranking", "1: also rank each test item against every "
                             "item its user has not trained on (columns hr10_full, "
                             "ndcg10_full)", choices=(0, 1), many=False)

    def config(self) -> MFConfig:
        """The training settings of this cell."""
        return MFConfig(dim=self.dim, lr=self.lr, reg=self.reg, negatives=self.negatives,
                        epochs=self.epochs, seed=self.seed, dtype=self.dtype,
                        threads=self.threads)


@dataclass(frozen=True)
class MFInitCell(MFCell):
    """An MF run whose initial embeddings' standard deviation is a setting too (Appendix A)."""

    init_std: float = axis("--init-std", "standard deviations of the initial embeddings "
                           "(biases start at 0)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_std", float(self.init_std))  # 1 and 1.0: one setting

    def config(self) -> MFConfig:
        """The training settings of this cell."""
        return replace(super().config(), init_std=self.init_std)


def full_ranking_scorer(model: MFModel) -> protocols.Scorer:
    """An MF model's scores for ranking a user's items: <p_u, q_i> + b_i (the user's bias and
    the global bias shift all of a user's items alike, so they leave the ranking unchanged)."""
    return protocols.embedding_scorer(np.ascontiguousarray(model.user[:, 1:]),
                                      np.ascontiguousarray(model.item[:, 1:]), model.item[:, 0])


def train_cell(cell: MFCell, context: Context) -> RunResult:
    """Worker: train one MF cell; the row is the last logged epoch's metrics and the timing,
    plus the full-ranking metrics when the cell asks for them."""
    import numba

    numba.set_num_threads(max(1, min(cell.threads, numba.config.NUMBA_NUM_THREADS)))
    split = load_split(cell.dataset, cell.split, context.data_dir)
    model, history = train_mf(split, cell.config(), eval_every=cell.eval_every)
    last = history.rows[-1]
    row = {"hr10": last["hr10"], "ndcg10": last["ndcg10"], "loss": last["loss"],
           "seconds": round(history.seconds, 1),
           "updates_per_second": round(history.updates / max(history.seconds, 1e-9))}
    if cell.full_ranking:
        row.update(protocols.full_ranking_metrics(full_ranking_scorer(model), split,
                                                  model=f"MF d={cell.dim}"))
    return RunResult(row, [dict(r) for r in history.rows])


_OPTIONS = {"dim": "--dims", "lr": "--lr", "reg": "--reg", "negatives": "--negatives",
            "epochs": "--epochs", "dtype": "--dtype", "threads": "--threads",
            "init_std": "--init-std"}


def check(cell: MFCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option."""
    problems = []
    try:
        cell.config().validate()
    except ValueError as error:
        for problem in str(error).split(": ", 1)[1].split("; "):
            match = re.match(r"(\w+)=([^:]*): (.*)", problem)
            if match and match.group(1) in _OPTIONS:
                problems.append(f"{_OPTIONS[match.group(1)]} {match.group(2)}: "
                                f"{match.group(3)}")
            else:
                problems.append(problem)
    if cell.seed < 0:
        problems.append(f"--seeds {cell.seed}: need a seed >= 0")
    if cell.eval_every < 0:
        problems.append(f"--eval-every {cell.eval_every}: need >= 0 (0: only the last epoch)")
    return problems


def resolve(values: dict[str, Any]) -> dict[str, Any]:
    """Unset lr, reg and m take the paper's values for the dataset (ML-1M's elsewhere)."""
    paper = PAPER_HYPERPARAMETERS.get(values["dataset"], PAPER_HYPERPARAMETERS["ml-1m"])
    return {**values, **{k: values.get(k) or [paper[k]] for k in ("lr", "reg", "negatives")}}


def prepare(cells: list[MFCell], data_dir: str | None) -> dict[str, Any]:
    """Load (or download) the data of the grid in the driver; its provenance."""
    datasets = sorted({c.dataset for c in cells})
    splits = sorted({c.split for c in cells})
    records = [data_provenance(d, data_dir, split=", ".join(splits)) for d in datasets]
    for cell in cells:
        load_split(cell.dataset, cell.split, data_dir)
    return records[0] if len(records) == 1 else {"datasets": records}


def summary(cell: MFCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"{cell.dataset}/{cell.split} d={cell.dim} seed={cell.seed}: "
            f"HR@10={row['hr10']:.4f} NDCG@10={row['ndcg10']:.4f} ({row['seconds']:.0f} s)")


_COMMON = dict(cell=MFCell, run=train_cell, key=MF_KEY, folder="ncf_experiments", check=check,
               prepare=prepare, resolve=resolve, summary=summary,
               order=("dataset", "split", "model", "seed", "lr", "reg", "negatives", "dim"))

MF = Experiment(
    name="mf", help="Section 3: MF on the NCF test split (Figure 2)",
    runs_table="mf_runs", curves_table="mf_curves", fixed={"split": "test", "model": "MF"},
    defaults={"dataset": "ml-1m", "dim": MF_DIMS, "seed": (0, 1, 2), "epochs": 256,
              "lr": None, "reg": None, "negatives": None, "dtype": "float64", "eval_every": 8,
              "full_ranking": 0},
    description="Train matrix factorization by SGD (Appendix A.1) for every d and seed on the "
                "NCF split; the metric is taken after the last epoch.", **_COMMON)

MF_TUNING = Experiment(
    name="mf-tuning", help="Appendix A.2: MF on the tuning split (no test data)",
    runs_table="mf_tuning_runs", curves_table="mf_tuning_curves",
    fixed={"split": "tuning", "model": "MF"},
    defaults={"dataset": "ml-1m", "dim": (64,), "seed": (0,), "epochs": 128,
              "lr": (0.001, 0.002, 0.003), "reg": (0.001, 0.005, 0.01), "negatives": (8,),
              "dtype": "float64", "eval_every": 8, "full_ranking": 0},
    description="Train matrix factorization on the tuning split carved from the training file "
                "(each user's latest training interaction held out).", **_COMMON)

MF_INIT = Experiment(
    name="mf-init", help="Appendix A: MF with other initial standard deviations (test split)",
    runs_table="mf_init_runs", curves_table="mf_init_curves",
    fixed={"split": "test", "model": "MF"},
    defaults={"dataset": "ml-1m", "dim": (64,), "seed": (0, 1, 2), "epochs": 256, "lr": None,
              "reg": None, "negatives": None, "dtype": "float64", "eval_every": 8,
              "full_ranking": 0, "init_std": (0.01, 0.03, 0.1, 0.3)},
    description="Train matrix factorization with the paper's settings on the NCF split, the "
                "embeddings drawn from N(0, sigma^2) for each sigma (the paper: 0.1); the "
                "Appendix says the choice matters little.",
    **{**_COMMON, "cell": MFInitCell, "key": MF_KEY + ("init_std",),
       "order": _COMMON["order"] + ("init_std",)})
