"""Training NCF's own learned similarities (GMF, MLP-3, NeuMF) ourselves, selected honestly.

Rendle et al. (2020) plot the MLP and NeuMF numbers *published* by He et al. (2017), which were
picked at the best epoch on the test set (Section 3.4). This module retrains those models with
NCF's settings and selects the number of epochs on a validation split carved from the training
file, so the book can show both numbers from the same runs.

Models and NCF's settings (He et al.'s code defaults, see the reference README)
-------------------------------------------------------------------------------
``models.ncf_model`` builds GMF (d = k), MLP-3 (d = 2k per side, hidden 4k -> 2k -> k) and NeuMF
(d = 3k: MLP part 2k, GMF part k) for predictive factor k. Training: log loss (BCE with logits;
Keras's sigmoid + ``binary_crossentropy`` is the same function, without its 1e-7 clipping),
Adam (lr 0.001, betas 0.9/0.999, eps 1e-8), batch 256 (the last, partial batch included), 4
negatives per positive drawn uniformly from the items *outside the user's training positives*,
redrawn every epoch, positives and negatives of an epoch shuffled together, embeddings
N(0, 0.01^2), no regularization (``reg`` adds Keras-style ``reg * sum(W^2)`` of both embedding
tables to every batch's loss if wanted). The embedding gradients are dense and Adam updates every
row at every step, as Keras/Theano does (its moments keep moving rows that are not in the batch;
a sparse "lazy" Adam would be a different optimizer).

Pre-trained NeuMF: GMF and MLP of the same k are trained first, NeuMF is initialised from them
(``EmbeddingModel.neumf_from_pretrained``: MLP layers copied, output weights mixed with
alpha = 0.5) and then fine-tuned. He et al. Section 3.4.1 say the fine-tuning uses *vanilla SGD*
(no momentum: Adam's moments were not saved with the pre-trained models). NCF's code does not
enforce this: ``NeuMF.py`` uses whatever ``--learner`` says, and the README's pre-training command
passes ``--learner adam``. We implement both and name them: model ``"NeuMF-pretrained"`` follows
the paper (plain SGD, lr 0.001, batch mean of the log loss, so it moves little in 20 epochs) and
``"NeuMF-pretrained-adam"`` follows the README command (a fresh Adam, lr 0.001). Plain SGD
leaves the embedding rows outside a batch as they are, so for large tables ``RowSparseSGD``
updates only the batch's rows: bitwise the dense update, without sweeping the whole tables at
every step.

Negatives exclude the user's training positives for every model, as the final versions of
``GMF.py``, ``MLP.py`` and ``NeuMF.py`` do (``while train.has_key((u, j))``; the test item may be
drawn). An earlier ``NeuMF.py`` tested ``(u, j) in train and [u, j] in testRatings``, an ``and``
that almost never holds, i.e. negatives uniform over all items; we follow the final code.
Deviations from NCF's code, all deliberate and without effect on the function trained: one
embedding table of 3k columns per side for NeuMF instead of two tables (same parameters, same
dense Adam updates); the Keras sigmoid output folded into the loss; torch's Adam, which adds
eps to the bias-corrected sqrt(v) (Keras 1 adds it before the correction, an effective eps of
1e-8 / sqrt(1 - 0.999^t); the two differ only where sqrt(v) is that small). Evaluation applies
the sigmoid in float32 before ranking, as NCF's evaluator ranks ``model.predict`` outputs, so
saturated scores tie exactly as they do there (ties rank the test item low:
``SampledEvaluator``).

The selection protocol built on these pieces (validation run, test run, NCF's test-set rule, and
how pre-trained NeuMF fits in) is in :mod:`ncf_vs_mf.ncf_protocol`.

Speed: each epoch's negatives are drawn in one vectorized call (rejection-resampling the few that
hit a training positive, checked by binary search in the sorted keys ``u * n_items + i``), the
epoch is shuffled with one permutation, and batches are slices of three tensors (no Dataset or
DataLoader, no per-example Python). On CPU, a seed fixes every number (``torch.manual_seed`` for
initialisation, a numpy ``Generator`` for negatives and order); ``device="auto"`` uses CUDA when
available (GPU kernels may be nondeterministic).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import LeaveOneOutSplit
from .evaluation import RankingMetrics, SampledEvaluator
from .models import EmbeddingModel, ncf_embedding_dim, ncf_model

__all__ = [
    "MODELS",
    "BASE_MODELS",
    "BASE_PARTS",
    "PRETRAINED_MODELS",
    "EvalData",
    "NCFConfig",
    "NegativeSampler",
    "FitResult",
    "TrainingDiverged",
    "resolve_device",
    "build_model",
    "evaluate_model",
    "fit",
    "l2_penalty",
    "make_optimizer",
    "similarity_name",
    "similarity_weights",
    "select_epoch",
    "prepare_evaluations",
    "run_seed",
    "embedding_dim",
]

BASE_MODELS = ("GMF", "MLP", "NeuMF")
PRETRAINED_MODELS = {"NeuMF-pretrained": "sgd", "NeuMF-pretrained-adam": "adam"}
BASE_PARTS = ("GMF", "MLP")  # what a pre-trained NeuMF is built from
MODELS = BASE_MODELS + tuple(PRETRAINED_MODELS)
_SIMILARITY = {"GMF": "gmf", "MLP": "mlp", "NeuMF": "neumf",
               "NeuMF-pretrained": "neumf", "NeuMF-pretrained-adam": "neumf"}
_MODEL_CODE = {name: code for code, name in enumerate(MODELS)}
_PHASE_CODE = {"validation": 0, "test": 1, "test-ncf-components": 1}


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN, infinite or exploded, or a parameter stopped being finite;
    the message names the run, the epoch and the settings."""


# an epoch whose mean log loss exceeds this multiple of the loss of the first batch (the loss of
# the starting model, about ln 2 from a fresh initialisation) has exploded: SGD or Adam with a
# far too large step sends the logits to +-1e18 while every number stays finite
EXPLODING_LOSS_FACTOR = 100.0


@dataclass(frozen=True)
class NCFConfig:
    """NCF's training settings (He et al.'s code defaults, README commands: 20 epochs)."""

    epochs: int = 20
    lr: float = 0.001  # Adam for GMF/MLP/NeuMF
    batch_size: int = 256
    negatives: int = 4  # per positive, outside the user's training positives, redrawn per epoch
    init_std: float = 0.01  # embeddings ~ N(0, init_std^2)
    reg: float = 0.0  # Keras l2: reg * sum(W^2) of both embedding tables, added per batch
    alpha: float = 0.5  # pre-trained NeuMF: output = [alpha w_gmf, (1 - alpha) w_mlp]
    finetune_lr: float = 0.001  # pre-trained NeuMF's fine-tuning learning rate
    device: str = "auto"  # "auto": CUDA if available, else CPU
    eval_chunk: int = 1024  # users scored per evaluation batch

    def validate(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs={self.epochs}: need >= 0")
        for name in ("lr", "finetune_lr"):
            value = getattr(self, name)
            if not value > 0 or not math.isfinite(value):
                problems.append(f"{name}={value}: need a finite value > 0")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size}: need >= 1")
        if self.negatives < 0:
            problems.append(f"negatives={self.negatives}: need >= 0")
        if not self.init_std >= 0:
            problems.append(f"init_std={self.init_std}: need >= 0")
        if not self.reg >= 0:
            problems.append(f"reg={self.reg}: need >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            problems.append(f"alpha={self.alpha}: need 0 <= alpha <= 1")
        if problems:
            raise ValueError("invalid NCF training settings: " + "; ".join(problems))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def embedding_dim(model: str, k: int) -> int:
    """Embedding dimension d per side of a model name at predictive factor k (d = k, 2k, 3k)."""
    return ncf_embedding_dim(similarity_name(model), k)


def similarity_name(model: str) -> str:
    """The similarity ("gmf", "mlp", "neumf") a model name trains (ValueError for others)."""
    if model not in _SIMILARITY:
        raise ValueError(f"unknown NCF model {model!r}; choose from {list(MODELS)}")
    return _SIMILARITY[model]


def run_seed(model: str, k: int, seed: int, phase: str) -> int:
    """The integer seed of one training run, derived from (model, k, seed, phase).

    GMF and MLP keep the same seed whether they run alone or as pre-training for NeuMF, so both
    produce identical numbers. The test run and NCF's-rule run of pre-trained NeuMF share a seed:
    they differ only in the components they start from.
    """
    family = model if model in BASE_MODELS else "NeuMF-pretrained"
    entropy = [int(seed), _MODEL_CODE[family], int(k), _PHASE_CODE[phase], 0x4E4346]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def build_model(model: str, n_users: int, n_items: int, k: int, seed: int,
                init_std: float = 0.01) -> EmbeddingModel:
    """A freshly initialised GMF/MLP/NeuMF (CPU), initialisation fixed by ``seed``."""
    torch.manual_seed(seed)
    return ncf_model(similarity_name(model), n_users, n_items, k, init_std=init_std)


# ----------------------------------------------------------------------------- negatives


class NegativeSampler:
    """Per-epoch training examples: every positive plus m negatives outside the user's positives.

    Negatives are uniform over the items the user has no training interaction with (rejection
    sampling: draw uniformly over all items, redraw the hits). Membership is a binary search in
    the sorted, de-duplicated keys ``u * n_items + i``.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.keys = np.unique(self.users * self.n_items + self.items)
        per_user = np.bincount(self.keys // self.n_items, minlength=self.n_users)
        full = np.flatnonzero(per_user[np.unique(self.users)] >= self.n_items)
        if full.size:
            user = int(np.unique(self.users)[full[0]])
            raise ValueError(f"user {user} has interacted with every item: no negative to sample")

    @property
    def n_positives(self) -> int:
        return int(self.users.shape[0])

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training positive."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, self.keys.shape[0] - 1)
        return self.keys[pos] == keys

    def negatives(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """(n_positives, m) negatives for the positives' users, redrawn until none is a positive."""
        users = np.repeat(self.users, m)
        items = rng.integers(0, self.n_items, size=users.shape[0], dtype=np.int64)
        todo = np.flatnonzero(self.is_positive(users, items))
        while todo.size:
            items[todo] = rng.integers(0, self.n_items, size=todo.shape[0], dtype=np.int64)
            todo = todo[self.is_positive(users[todo], items[todo])]
        return items.reshape(self.n_positives, m)

    def epoch(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, labels) of one epoch, positives and fresh negatives shuffled together."""
        negatives = self.negatives(rng, m)
        users = np.concatenate([self.users, np.repeat(self.users, m)])
        items = np.concatenate([self.items, negatives.ravel()])
        labels = np.concatenate([np.ones(self.n_positives, np.float32),
                                 np.zeros(self.n_positives * m, np.float32)])
        order = rng.permutation(users.shape[0])
        return users[order], items[order], labels[order]


# ----------------------------------------------------------------------------- evaluation


class EvalData:
    """An evaluator plus its users and candidates as tensors on the training device."""

    def __init__(self, split: LeaveOneOutSplit, device: torch.device):
        self.evaluator = SampledEvaluator(split)
        self.users = torch.as_tensor(self.evaluator.users, dtype=torch.long, device=device)
        self.candidates = torch.as_tensor(self.evaluator.candidates, dtype=torch.long,
                                          device=device)


def prepare_evaluations(split: LeaveOneOutSplit, tuning: LeaveOneOutSplit,
                        device: str | torch.device = "auto") -> dict[str, EvalData]:
    """The test and tuning splits' evaluation data on ``device``, built once for many runs."""
    device = resolve_device(device)
    return {"validation": EvalData(tuning, device), "test": EvalData(split, device)}


def _probabilities(model: EmbeddingModel, users: torch.Tensor, candidates: torch.Tensor,
                   chunk: int) -> np.ndarray:
    """float32 sigmoid scores (users x candidates), NCF's ``model.predict`` outputs."""
    return torch.sigmoid(model.score(users, candidates, chunk)).float().cpu().numpy()


def evaluate_model(model: EmbeddingModel, split: LeaveOneOutSplit | EvalData,
                   chunk: int = 1024) -> RankingMetrics:
    """HR@10/NDCG@10 of a model on a split under NCF's protocol (sigmoid scores, NCF ties)."""
    if isinstance(split, LeaveOneOutSplit):
        split = EvalData(split, next(model.parameters()).device)
    return split.evaluator.evaluate(_probabilities(model, split.users, split.candidates, chunk))


# ----------------------------------------------------------------------------- training


@dataclass
class FitResult:
    """One training run: a row per epoch (epoch 0 = before training) and kept model states.

    ``states`` maps an epoch to the model's ``state_dict`` after it (CPU copies), for the epochs
    asked for in ``keep_epochs``; ``best_state`` is the state at ``best_epoch``, the earliest
    epoch with the highest HR@10 on the run's evaluation split.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0
    train_seconds: float = 0.0
    examples: int = 0
    device: str = "cpu"
    threads: int = 1  # torch threads of the training process

    def metric(self, epoch: int, name: str = "hr10") -> float:
        return float(self.rows[epoch][name])


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# Below this many embedding numbers (both tables), sweeping the tables -- then cache-sized -- is
# cheaper than the row path's extra operations: ML-1M NeuMF's SGD fine-tuning runs row-sparse
# 0.90x as fast at k = 8 (234k numbers), 0.95x at k = 16 (468k), 1.16x at k = 32 (935k) and
# 1.10x at k = 64 (1.9M) on an idle machine (benchmarks/results/ncf_finetune_throughput.md;
# reruns move each ratio by up to 0.1).
ROW_SPARSE_MIN_ENTRIES = 700_000


def _embedding_entries(model: EmbeddingModel) -> int:
    return model.user_embedding.weight.numel() + model.item_embedding.weight.numel()


class RowSparseSGD(torch.optim.Optimizer):
    """Vanilla SGD (Keras 1's: no momentum, no decay) updating only the rows of sparse gradients.

    Dense SGD adds ``-lr * 0`` to every embedding row outside the batch, which changes nothing;
    skipping those rows gives bitwise the numbers of ``torch.optim.SGD`` on the dense gradient
    (a row that occurs several times in the batch is summed in order of appearance, as the dense
    embedding backward's ``index_add`` sums it), without zero-filling and sweeping whole tables
    every step (``fit`` uses it from ``ROW_SPARSE_MIN_ENTRIES`` on). Dense gradients get the plain
    update.
    """

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr = group["lr"]
            with_grad = [p for p in group["params"] if p.grad is not None]
            dense = [p for p in with_grad if not p.grad.is_sparse]
            if dense:
                torch._foreach_add_(dense, [p.grad for p in dense], alpha=-lr)
            for p in with_grad:
                if p.grad.is_sparse:
                    rows, where = torch.unique(p.grad._indices()[0], return_inverse=True)
                    summed = p.new_zeros((rows.numel(),) + p.shape[1:]).index_add_(
                        0, where, p.grad._values())
                    p.index_copy_(0, rows, p.index_select(0, rows).add_(summed, alpha=-lr))


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        try:  # the fused CPU/GPU kernel: same update, about twice as fast on CPU
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return RowSparseSGD(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; use 'adam' or 'sgd'")


@contextmanager
def sparse_embedding_gradients(model: EmbeddingModel, enabled: bool):
    """Let the embedding tables produce sparse (row) gradients while training, if ``enabled``."""
    tables = (model.user_embedding, model.item_embedding)
    before = [table.sparse for table in tables]
    for table in tables:
        table.sparse = table.sparse or enabled
    try:
        yield
    finally:
        for table, sparse in zip(tables, before):
            table.sparse = sparse


def similarity_weights(model: EmbeddingModel) -> list[torch.Tensor]:
    """The similarity's trainable weight tensors, biases excluded (GMF: [w] as a 1 x d matrix)."""
    return [p for name, p in model.similarity.named_parameters()
            if name.endswith("weight") and p.requires_grad]


def l2_penalty(model: EmbeddingModel, reg: float, reg_similarity: float = 0.0) -> torch.Tensor:
    """Keras-style L2: reg (||P||^2 + ||Q||^2) + reg_similarity * (squared similarity weights).

    Squared Frobenius norms of the *whole* embedding tables, added once per batch (Keras 1's
    ``W_regularizer=l2(reg)`` on NCF's Embedding layers); the second term is off by default.
    """
    penalty = reg * (model.user_embedding.weight.square().sum()
                     + model.item_embedding.weight.square().sum())
    if reg_similarity > 0:
        penalty = penalty + reg_similarity * sum(w.square().sum() for w in similarity_weights(model))
    return penalty


def _train_epoch(model: EmbeddingModel, opt: torch.optim.Optimizer, users: torch.Tensor,
                 items: torch.Tensor, labels: torch.Tensor, *, n: int, batch_size: int,
                 reg: float, reg_similarity: float,
                 first_loss: list[float] | None = None) -> float:
    """One pass over the first ``n`` examples in order; the mean log loss (penalty excluded).

    ``first_loss``, when an empty list, receives the loss of the first batch (before any step).
    """
    total = torch.zeros((), dtype=torch.float64, device=users.device)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        loss = F.binary_cross_entropy_with_logits(model(users[lo:hi], items[lo:hi]),
                                                  labels[lo:hi])
        batch_loss = loss
        if reg > 0 or reg_similarity > 0:
            loss = loss + l2_penalty(model, reg, reg_similarity)
        if first_loss is not None and not first_loss:
            first_loss.append(float(batch_loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += batch_loss.detach().double() * (hi - lo)
    return float(total) / max(n, 1)


def _non_finite_parameter(model: nn.Module) -> str | None:
    """The name of the first parameter holding a NaN or infinity (None if all are finite)."""
    for name, parameter in model.named_parameters():
        if not bool(torch.isfinite(parameter.detach()).all()):
            return name
    return None


def fit(model: EmbeddingModel, train_users: np.ndarray, train_items: np.ndarray,
        evaluation: LeaveOneOutSplit | EvalData, *, epochs: int, seed: int,
        optimizer: str = "adam", lr: float = 0.001, batch_size: int = 256, negatives: int = 4,
        reg: float = 0.0, device: str | torch.device = "auto", eval_chunk: int = 1024,
        keep_epochs=(), max_batches: int | None = None,
        on_epoch: Callable[[dict], None] | None = None, label: str = "",
        reg_similarity: float = 0.0,
        epoch_stats: Callable[[EmbeddingModel], dict[str, float]] | None = None) -> FitResult:
    """Train ``model`` in place for ``epochs`` epochs, evaluating after each (and before).

    ``evaluation`` is the split whose held-out items are ranked (the tuning split for a
    validation run, the test split for a test run); it never influences training. The numpy
    generator for negatives and order is seeded with ``seed``; initialise the model yourself
    (``build_model``). ``max_batches`` stops each epoch early (benchmarks and smoke tests only).
    ``reg_similarity`` adds Keras-style L2 on the similarity's weight tensors too (GMF's w; see
    ``l2_penalty``); ``epoch_stats(model)`` adds columns to every logged row (e.g. norms).
    """
    if not reg >= 0 or not reg_similarity >= 0:
        raise ValueError(f"reg and reg_similarity must be >= 0, got reg={reg}, "
                         f"reg_similarity={reg_similarity}")
    device = resolve_device(device)
    model.to(device)
    if isinstance(evaluation, LeaveOneOutSplit):
        evaluation = EvalData(evaluation, device)
    sampler = NegativeSampler(train_users, train_items, model.n_users, model.n_items)
    rng = np.random.default_rng(seed)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    keep = set(int(e) for e in keep_epochs)
    result = FitResult(device=str(device), threads=torch.get_num_threads())
    start = time.perf_counter()

    def log(epoch: int, loss: float, seconds: float) -> None:
        metrics = evaluate_model(model, evaluation, eval_chunk)
        row = {"epoch": epoch, "loss": loss, **metrics.as_dict(), "train_seconds": seconds}
        if epoch_stats is not None:
            row.update(epoch_stats(model))
        result.rows.append(row)
        if epoch in keep:
            result.states[epoch] = _cpu_state(model)
        if epoch == 0 or row["hr10"] > result.rows[result.best_epoch]["hr10"]:
            result.best_epoch = epoch  # strict '>': the earliest best epoch wins ties
            result.best_state = _cpu_state(model)
        if on_epoch is not None:
            on_epoch(row)

    log(0, float("nan"), 0.0)
    model.train()
    # RowSparseSGD's row gradients; an L2 penalty on the tables makes them dense anyway
    sparse = (optimizer == "sgd" and reg == 0 and reg_similarity == 0
              and _embedding_entries(model) >= ROW_SPARSE_MIN_ENTRIES)
    first_loss: list[float] = []
    settings = (f"lr={lr}, optimizer={optimizer}, batch_size={batch_size}, "
                f"negatives={negatives}, reg={reg}, seed={seed}")
    with sparse_embedding_gradients(model, sparse):
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            users, items, labels = [torch.from_numpy(a).to(device)
                                    for a in sampler.epoch(rng, negatives)]
            n = len(users) if max_batches is None else min(len(users), max_batches * batch_size)
            mean_loss = _train_epoch(model, opt, users, items, labels, n=n,
                                     batch_size=batch_size, reg=reg, reg_similarity=reg_similarity,
                                     first_loss=first_loss)
            seconds = time.perf_counter() - t0
            result.train_seconds += seconds
            result.examples += n
            run = label or "NCF training"
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(f"{run} diverged in epoch {epoch} "
                                       f"(mean log loss {mean_loss}); {settings}")
            limit = EXPLODING_LOSS_FACTOR * max(first_loss[0] if first_loss else 0.0, 1e-3)
            if mean_loss > limit:
                raise TrainingDiverged(f"{run} exploded in epoch {epoch}: mean log loss "
                                       f"{mean_loss:.4g} > {EXPLODING_LOSS_FACTOR:g} x the first "
                                       f"batch's {first_loss[0]:.4g}; {settings}")
            bad = _non_finite_parameter(model)
            if bad is not None:
                raise TrainingDiverged(f"{run} diverged in epoch {epoch}: parameter {bad} is "
                                       f"not finite; {settings}")
            log(epoch, mean_loss, seconds)
    result.seconds = time.perf_counter() - start
    return result


def select_epoch(rows: list[dict[str, Any]], metric: str = "hr10") -> int:
    """The earliest epoch with the highest ``metric`` (NCF's strict-improvement tie rule)."""
    if not rows:
        raise ValueError("no epochs to select from")
    values = np.array([row[metric] for row in rows], dtype=float)
    best = int(np.flatnonzero(values == values.max())[0])
    return int(rows[best]["epoch"])
