"""Section 3.3.3: GMF against MF under L2 regularization, declared on the experiment engine
(``reproduce gmf-reg``). One cell is one variant, d, lambda and seed with NCF's training
settings; its run trains the variant (:func:`ncf_vs_mf.regularization.train_variant`) on one
CPU thread, logging ||P||, ||Q||, ||w|| and the test HR@10/NDCG@10 after every epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import data as data_mod
from .. import regularization as reg_mod
from ..ncf_training import NCFConfig
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis

GMF_REG_KEY = tuple(reg_mod.KEY)


@dataclass(frozen=True)
class GMFRegCell:
    """One training run of a variant: every setting that changes its numbers (on one CPU
    thread, always: the experiment's runs are reproducible bit for bit)."""

    dataset: str = axis("--dataset", "dataset", choices=data_mod.DATASETS, many=False)
    variant: str = axis("--variants", "variants", choices=reg_mod.VARIANTS)
    dim: int = axis("--dims", "embedding dimensions d (MF: counting the bias coordinate)")
    reg: float = axis("--regs", "L2 coefficients lambda (Keras-style, per batch, whole tables)")
    seed: int = axis("--seeds", "seeds")
    epochs: int = axis("--epochs", "epochs per run (NCF: 20)", many=False)
    lr: float = axis("--lr", "Adam learning rate", many=False)
    batch_size: int = axis("--batch-size", "batch size", many=False)
    negatives: int = axis("--negatives", "negatives per positive", many=False)
    init_std: float = axis("--init-std", "standard deviation of the initial embeddings",
                           many=False)

    def __post_init__(self) -> None:
        for name in ("reg", "lr", "init_std"):  # 0 and 0.0: one setting
            object.__setattr__(self, name, float(getattr(self, name)))

    def config(self) -> NCFConfig:
        """NCF's training settings of this cell (on the CPU)."""
        return NCFConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                         negatives=self.negatives, init_std=self.init_std, device="cpu")


def train_cell(cell: GMFRegCell, context: Context) -> RunResult:
    """Worker: train one cell on one thread; the row is the last epoch's metrics and norms
    (no epoch is picked on the test set; ``hr10_best`` is the best epoch's, as NCF reports)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = load_split(cell.dataset, "test", context.data_dir)
        _, result = reg_mod.train_variant(split, cell.variant, cell.dim, cell.reg, cell.seed,
                                          cell.config())
    finally:
        torch.set_num_threads(saved)
    last, best = result.rows[-1], result.rows[result.best_epoch]
    row = {"hr10": last["hr10"], "ndcg10": last["ndcg10"], "loss": last["loss"],
           "norm_p": last["norm_p"], "norm_q": last["norm_q"], "norm_w": last["norm_w"],
           "best_epoch": result.best_epoch, "hr10_best": best["hr10"],
           "ndcg10_best": best["ndcg10"], "seconds": round(result.seconds, 1)}
    curve = [{k: v for k, v in r.items() if k != "train_seconds"} for r in result.rows]
    return RunResult(row, curve)


_OPTIONS = {"epochs": "--epochs", "lr": "--lr", "batch_size": "--batch-size",
            "negatives": "--negatives", "init_std": "--init-std"}


def check(cell: GMFRegCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option."""
    problems = []
    try:
        cell.config().validate()
    except ValueError as error:
        for problem in str(error).split(": ", 1)[1].split("; "):
            name, _, rest = problem.partition("=")
            value, _, need = rest.partition(": ")
            problems.append(f"{_OPTIONS.get(name, name)} {value}: {need}" if need else problem)
    if not (cell.reg >= 0 and math.isfinite(cell.reg)):
        problems.append(f"--regs {cell.reg}: need a finite lambda >= 0")
    if cell.dim < 1:
        problems.append(f"--dims {cell.dim}: need d >= 1")
    if cell.seed < 0:
        problems.append(f"--seeds {cell.seed}: need a seed >= 0")
    return problems


def prepare(cells: list[GMFRegCell], data_dir: str | None) -> dict[str, Any]:
    """Load (or download) the data of the grid in the driver; its provenance."""
    records = [data_provenance(d, data_dir) for d in sorted({c.dataset for c in cells})]
    return records[0] if len(records) == 1 else {"datasets": records}


def summary(cell: GMFRegCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"{cell.dataset} {cell.variant} d={cell.dim} reg={cell.reg:g} seed={cell.seed}: "
            f"HR@10={row['hr10']:.4f} NDCG@10={row['ndcg10']:.4f} ||P||={row['norm_p']:.3g} "
            f"||w||={row['norm_w']:.3g} ({row['seconds']:.0f} s)")


GMF_REG = Experiment(
    name="gmf-reg", help="Section 3.3.3: GMF vs MF under L2 regularization (norms, lambda, d)",
    description="Train GMF (L2 on P, Q only), GMF with w regularized, GMF with w absorbed and MF "
                "with biases over a grid of lambda, d and seeds, logging ||P||, ||Q||, ||w|| and "
                "the test HR@10/NDCG@10 after every epoch (one CPU thread per run).",
    cell=GMFRegCell, run=train_cell, runs_table="gmf_reg_runs", curves_table="gmf_reg_curves",
    key=GMF_REG_KEY, folder="gmf_regularization",
    defaults={"dataset": "ml-100k", "variant": reg_mod.VARIANTS, "dim": (64,),
              "reg": reg_mod.LAMBDA_GRID, "seed": (0, 1, 2), "epochs": 20, "lr": 0.001,
              "batch_size": 256, "negatives": 4, "init_std": 0.01},
    order=("dataset", "seed", "variant", "reg", "dim"), check=check, prepare=prepare,
    summary=summary)
