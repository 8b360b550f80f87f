"""Section 3: NCF's own GMF, MLP and NeuMF trained here, the epoch selected on the tuning split,
declared on the experiment engine (``reproduce ncf``).

One cell is one model, predictive factor k and seed with NCF's training settings; its run is
the whole protocol of :func:`ncf_vs_mf.ncf_protocol.run_protocol` (validation run, test run and,
for pre-trained NeuMF, NCF's test-set rule). A pre-trained NeuMF *requires* the GMF and MLP
cells of its k and seed: the engine trains each of them once (or reuses them from the run
store), and their runs return the pre-training states as an artifact, so a fine-tuning starts
on any worker as soon as its two components are done. GMF and MLP trained only as components
are stored but not published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import data as data_mod
from .. import protocols
from ..ncf_training import BASE_PARTS, MODELS, PRETRAINED_MODELS, NCFConfig, embedding_dim
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis, derived, fixed, from_engine

NCF_KEY = ("dataset", "model", "predictive_factor", "dim", "seed", "max_epochs", "lr",
           "finetune_lr", "negatives", "batch_size", "reg", "validation", "max_batches")
NCF_DEFAULT_MODELS = ("GMF", "MLP", "NeuMF", "NeuMF-pretrained")
NCF_VALIDATION = "tuning split (latest training interaction per user, 100 negatives, seed 0)"
STATES_ARTIFACT = "states"
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?|mps)")
_EVALUATIONS: dict[tuple, Any] = {}  # NCF's evaluation data per (dataset, folder, device)


@dataclass(frozen=True)
class NCFCell:
    """One model of NCF's under the selection protocol: every setting that changes its numbers
    (the torch device and threads are recorded in the row)."""

    dataset: str = axis("--dataset", "dataset", choices=data_mod.DATASETS, many=False)
    model: str = axis("--models", "models: NeuMF-pretrained fine-tunes with plain SGD (NCF "
                      "paper, Sec. 3.4.1), NeuMF-pretrained-adam with Adam (NCF's README "
                      "command)", choices=MODELS)
    predictive_factor: int = axis("--factors", "predictive factors k (d = k for GMF, 2k for "
                                  "MLP, 3k for NeuMF)")
    dim: int = derived()  # embedding dimension per side, from the model and k
    seed: int = axis("--seeds", "seeds")
    max_epochs: int = axis("--epochs", "epochs per run (NCF's README: 20); the epoch is "
                           "selected in 0..N", many=False)
    lr: float = axis("--lr", "Adam learning rate", many=False)
    finetune_lr: float = axis("--finetune-lr", "learning rate of pre-trained NeuMF's "
                              "fine-tuning", many=False)
    negatives: int = axis("--negatives", "negatives per positive", many=False)
    batch_size: int = axis("--batch-size", "batch size", many=False)
    reg: float = axis("--reg", "L2 on the embedding tables, Keras-style (NCF: 0)", many=False)
    validation: str = fixed()
    max_batches: int = axis("--max-batches", "truncate every epoch to this many batches (smoke "
                            "tests only; 0: whole epochs)", many=False)
    device: str = axis("--device", "torch device: auto (CUDA if available), cpu, cuda",
                       many=False)
    threads: int = from_engine("threads")  # torch threads of the run
    # Not part of the tables' key: it adds columns, not a setting.
    full_ranking: int = axis("--full-ranking", "1: also rank each test item against every "
                             "item its user has not trained on, at the selected epoch "
                             "(columns hr10_full, ndcg10_full)", choices=(0, 1), many=False)

    def __post_init__(self) -> None:
        for name in ("lr", "finetune_lr", "reg"):  # 0 and 0.0: one setting
            object.__setattr__(self, name, float(getattr(self, name)))
        dim = embedding_dim(self.model, self.predictive_factor) if self.model in MODELS else 0
        object.__setattr__(self, "dim", dim)

    def config(self) -> NCFConfig:
        """NCF's training settings of this cell."""
        return NCFConfig(epochs=self.max_epochs, lr=self.lr, finetune_lr=self.finetune_lr,
                         negatives=self.negatives, batch_size=self.batch_size, reg=self.reg,
                         device=self.device)


def components_of(cell: NCFCell) -> dict[str, NCFCell]:
    """The GMF and MLP cells a pre-trained NeuMF starts from (none for the other models)."""
    if cell.model not in PRETRAINED_MODELS:
        return {}
    return {part: replace(cell, model=part) for part in BASE_PARTS}


def _evaluations(cell: NCFCell, split: Any, tuning: Any, data_dir: str | None) -> Any:
    from ..ncf_training import prepare_evaluations

    key = (cell.dataset, data_dir, cell.device)
    if key not in _EVALUATIONS:
        _EVALUATIONS[key] = prepare_evaluations(split, tuning, cell.device)
    return _EVALUATIONS[key]


def ncf_scorer(model: str, k: int, split: Any, state: dict) -> protocols.Scorer:
    """Scores of every item for a block of users by one of NCF's models with ``state``:
    float32 sigmoids, as NCF's evaluator ranks ``model.predict`` outputs."""
    import torch

    from ..ncf_protocol import load_model

    net = load_model(model, k, split.n_users, split.n_items, state)
    all_items = torch.arange(split.n_items)

    def score(users: np.ndarray) -> np.ndarray:
        items = all_items.expand(len(users), split.n_items)
        return torch.sigmoid(net.score(torch.as_tensor(users), items, 32)).float().numpy()

    return score


def train_cell(cell: NCFCell, context: Context) -> RunResult:
    """Worker: run the protocol for one model (a pre-trained NeuMF from its components' stored
    results); the torch thread count is restored afterwards."""
    import torch

    from ..ncf_protocol import ProtocolResult, pack_states, run_protocol, unpack_states

    split = load_split(cell.dataset, "test", context.data_dir)
    tuning = load_split(cell.dataset, "tuning", context.data_dir)
    components = {}
    for part, stored in context.inputs.items():
        components[part] = ProtocolResult(part, cell.predictive_factor, cell.seed,
                                          dict(stored.row), list(stored.curves),
                                          unpack_states(stored.artifacts[STATES_ARTIFACT]))
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, cell.threads))
    try:
        result = run_protocol(split, tuning, cell.model, cell.predictive_factor, cell.seed,
                              cell.config(), components,
                              _evaluations(cell, split, tuning, context.data_dir),
                              cell.max_batches or None)
        row = {k: v for k, v in result.row.items() if k not in NCF_KEY}
        if cell.full_ranking:
            scorer = ncf_scorer(cell.model, cell.predictive_factor, split,
                                result.states["test@selected"])
            row.update(protocols.full_ranking_metrics(
                scorer, split, model=f"{cell.model} k={cell.predictive_factor}"))
    finally:
        torch.set_num_threads(saved)
    curves = [{k: v for k, v in r.items() if k not in NCF_KEY} for r in result.curves]
    artifacts = {STATES_ARTIFACT: pack_states(result)} if cell.model in BASE_PARTS else {}
    return RunResult(row, curves, artifacts)


_OPTIONS = {"epochs": "--epochs", "lr": "--lr", "finetune_lr": "--finetune-lr",
            "batch_size": "--batch-size", "negatives": "--negatives", "reg": "--reg"}


def check(cell: NCFCell) -> list[str]:
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
    if cell.max_epochs < 1:
        problems.append(f"--epochs {cell.max_epochs}: need >= 1")
    if cell.predictive_factor < 1:
        problems.append(f"--factors {cell.predictive_factor}: need k >= 1")
    if cell.seed < 0:
        problems.append(f"--seeds {cell.seed}: need a seed >= 0")
    if cell.max_batches < 0:
        problems.append(f"--max-batches {cell.max_batches}: need >= 0 (0: whole epochs)")
    if not _DEVICE.fullmatch(cell.device):
        problems.append(f"--device {cell.device}: expected auto, cpu or cuda[:N]")
    return problems


def prepare(cells: list[NCFCell], data_dir: str | None) -> dict[str, Any]:
    """Load (or download) the data in the driver; its provenance and the validation split's."""
    datasets = sorted({c.dataset for c in cells})
    records = [data_provenance(d, data_dir, validation=NCF_VALIDATION) for d in datasets]
    for dataset in datasets:
        load_split(dataset, "tuning", data_dir)
    return records[0] if len(records) == 1 else {"datasets": records}


def summary(cell: NCFCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    return (f"{cell.dataset} {cell.model} k={cell.predictive_factor} (d={cell.dim}) "
            f"seed={cell.seed}: epoch {row['epochs_selected']} HR@10={row['hr10']:.4f} "
            f"NDCG@10={row['ndcg10']:.4f}; NCF's rule (epoch {row['epoch_test_selected']}) "
            f"HR@10={row['hr10_test_selected']:.4f} ({row['seconds']:.0f} s)")


def cost(cell: NCFCell) -> float:
    """Rough relative cost: an epoch costs about k (plus a fixed part); a fine-tuning waits for
    its components, so pre-trained NeuMF comes last within a k."""
    return cell.predictive_factor + 16 + (0.5 if cell.model in PRETRAINED_MODELS else 0.0)


NCF = Experiment(
    name="ncf", help="Section 3: NCF's GMF, MLP and NeuMF trained here, epochs selected on the "
                     "tuning split (plus NCF's best-test-epoch numbers)",
    description="Train NCF's models with NCF's settings (Adam, batch 256, 4 negatives) on the "
                "tuning split and on the full training file; report the test metrics at the "
                "epoch selected on the tuning split, beside NCF's best-test-epoch rule. "
                "Pre-trained NeuMF starts from the GMF and MLP of its k and seed.",
    cell=NCFCell, run=train_cell, runs_table="ncf_runs", curves_table="ncf_curves",
    key=NCF_KEY, folder="ncf_experiments", fixed={"validation": NCF_VALIDATION},
    defaults={"dataset": "ml-1m", "model": NCF_DEFAULT_MODELS, "predictive_factor": (8, 16, 32, 64),
              "seed": (0, 1, 2), "max_epochs": 20, "lr": 0.001, "finetune_lr": 0.001,
              "negatives": 4, "batch_size": 256, "reg": 0.0, "max_batches": 0,
              "device": "auto", "full_ranking": 0},
    order=("dataset", "predictive_factor", "seed", "model"), check=check, prepare=prepare,
    summary=summary, cost=cost, requires=components_of, curve_extra_key=("phase", "epoch"),
    resources=lambda cell: {"GPU": 1} if cell.device.startswith("cuda") else {})
