"""Section 4 / Figure 3: how well an MLP learns a dot product, declared on the experiment engine
(``reproduce mlp-dot``). One cell is one d, M, width h/d and seed with its training settings;
its run generates the synthetic data and trains the MLP (:func:`ncf_vs_mf.dot_learning.run_cell`).
Pending cells run cheapest first (:func:`~ncf_vs_mf.dot_learning.cell_cost`), so a grid cut
short holds all the cheap settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import dot_learning as dl
from .engine import Context, Experiment, RunResult, axis, derived, fixed, from_engine

_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?|mps)")


@dataclass(frozen=True)
class MLPDotCell:
    """One Figure 3 run: every setting that changes its numbers (the columns of ``dl.KEY``,
    plus the torch device and threads, which are recorded in the row)."""

    dim: int = axis("--dims", "embedding dimensions d")
    users: int = axis("--users", "numbers of users M (= items N), each with 100 M pairs")
    items: int = derived()  # N = M
    width: float = axis("--widths", "h as a multiple of d (hidden layers [4h, 2h, h])")
    h: int = derived()  # width * d
    seed: int = axis("--seeds", "seeds of the repetitions")
    epochs: int = axis("--epochs", "epochs per run", many=False)
    lr: float = axis("--lr", "Adam learning rates")
    batch_size: int = axis("--batch-size", "batch size", many=False)
    pairs_per_user: int = fixed()
    fresh_pairs: int = fixed()
    device: str = axis("--device", "torch device: auto (CUDA if available), cpu, cuda",
                       many=False)
    threads: int = from_engine("threads")  # torch threads of the run

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", float(self.width))  # 1 and 1.0: one setting
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "items", self.users)
        try:
            h = dl.hidden_width(self.dim, self.width)
        except (ValueError, TypeError):
            h = 0  # reported by check(), naming --widths
        object.__setattr__(self, "h", h)

    def key(self) -> dict[str, Any]:
        """The runs table's key of this cell (``dl.KEY``), what ``dl.run_cell`` takes."""
        return {k: getattr(self, k) for k in dl.KEY}


def train_cell(cell: MLPDotCell, context: Context) -> RunResult:
    """Worker: generate the cell's data and train its MLP (the process's torch thread count is
    restored afterwards, so an in-process grid leaves a notebook as it was)."""
    import torch

    saved = torch.get_num_threads()
    try:
        row, curve = dl.run_cell(cell.key(), cell.device, cell.threads)
    finally:
        torch.set_num_threads(saved)
    return RunResult({k: v for k, v in row.items() if k not in dl.KEY},
                     [{k: v for k, v in r.items() if k not in dl.KEY} for r in curve])


def check(cell: MLPDotCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option."""
    problems = []
    if cell.dim < 1:
        problems.append(f"--dims {cell.dim}: need d >= 1")
    if cell.users < dl.PAIRS_PER_USER:
        problems.append(f"--users {cell.users}: need M >= {dl.PAIRS_PER_USER} (M users and M "
                        f"items hold {dl.PAIRS_PER_USER} M distinct pairs)")
    if cell.dim >= 1 and cell.h == 0:
        problems.append(f"--widths {cell.width}: h = width * d must be a whole number >= 1 "
                        f"(d = {cell.dim} gives {cell.width * cell.dim:g})")
    if cell.seed < 0:
        problems.append(f"--seeds {cell.seed}: need a seed >= 0")
    if cell.epochs < 0:
        problems.append(f"--epochs {cell.epochs}: need >= 0")
    if cell.batch_size < 1:
        problems.append(f"--batch-size {cell.batch_size}: need >= 1")
    if not (cell.lr > 0 and cell.lr != float("inf")):
        problems.append(f"--lr {cell.lr}: need a finite learning rate > 0")
    if not _DEVICE.fullmatch(cell.device):
        problems.append(f"--device {cell.device}: expected auto, cpu or cuda[:N]")
    return problems


def prepare(cells: list[MLPDotCell], data_dir: str | None) -> dict[str, Any]:
    """The data's provenance: how the synthetic data are generated (nothing is read)."""
    return {"generator": "ncf_vs_mf.dot_learning.generate",
            "seeding": "numpy SeedSequence([seed, d, M, N]), five spawned streams",
            "sigma_label": dl.SIGMA_LABEL, "rmse_zero": dl.RMSE_ZERO,
            "pairs_per_user": dl.PAIRS_PER_USER, "train_fraction": dl.TRAIN_FRACTION,
            "fresh_pairs": dl.FRESH_PAIRS}


def summary(cell: MLPDotCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"d={cell.dim} M={cell.users} h={cell.h} seed={cell.seed}: error test "
            f"{row['error_test']:.4f}, fresh {row['error_fresh']:.4f} ({row['seconds']:.0f} s)")


MLP_DOT = Experiment(
    name="mlp-dot", help="Section 4 / Figure 3: how well an MLP learns a dot product",
    description="Generate synthetic dot-product data (M users, M items, 100 M pairs) and train "
                "the [4h, 2h, h] MLP on it for every d, M, h/d and seed, cheapest cells first; "
                "record the approximation error RMSE(MLP) - RMSE(dot) on the test and fresh "
                "sets and each cell's wall-clock seconds.",
    cell=MLPDotCell, run=train_cell, runs_table="mlp_dot_runs", curves_table="mlp_dot_curves",
    key=tuple(dl.KEY), folder="mlp_dot",
    fixed={"pairs_per_user": dl.PAIRS_PER_USER, "fresh_pairs": dl.FRESH_PAIRS},
    defaults={"dim": dl.DIMS, "users": dl.USERS, "width": dl.WIDTHS, "seed": (0, 1, 2, 3, 4),
              "epochs": 32, "lr": (0.001,), "batch_size": 256, "device": "auto"},
    order=("seed", "width", "users", "dim", "lr"), check=check, prepare=prepare,
    summary=summary, cost=lambda cell: dl.cell_cost(cell.key()),
    resources=lambda cell: {"GPU": 1} if cell.device.startswith("cuda") else {})
