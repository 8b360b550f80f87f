"""Learning a dot product with an MLP (Rendle et al. 2020, Section 4 and Figure 3).

An MLP can represent a dot product, but how much data does it need to *learn* one? The
synthetic task of Section 4.1: user and item embeddings p, q ~ N(0, sigma_emb^2 I) and labels
y = <p, q> + N(0, 0.85^2), with sigma_emb^4 = (1.13^2 - 0.85^2) / d so that predicting 0 has the
RMSE of the Netflix prize's predict-the-mean baseline (1.13) and the true dot product that of its
best models (0.85). M users, N = M items, 100 M distinct (user, item) pairs drawn uniformly,
90% to train and 10% to test; a *fresh* set of 100,000 pairs has new embeddings on both sides.
An MLP on [p, q] with hidden layers [4h, 2h, h] learns y (MSE, Adam lr 0.001, batch 256, 32
epochs); the *approximation error* is RMSE(MLP) - RMSE(dot product) on test and on fresh.

Memory and speed: pairs are kept as int32 indices into the float32 tables P and Q, and each
batch gathers its rows inside the training loop, so the data take O(M (d + 100)) bytes, never
O(M^2) nor the 100 M x 2d matrix of gathered embeddings (the authors' script builds that in
float64: about 52 GB at d = 128, M = 128,000). Distinct pairs are drawn without enumerating the
M N possible ones (:func:`sample_pairs`). An epoch is one ``torch.randperm`` and slices of the
shuffled index tensors; no DataLoader.

Departures from the authors' script (github.com/google-research, dot_vs_learned_similarity),
all deliberate: every random draw is seeded; pairs are a uniform sample of distinct pairs, as
the paper says (the script keeps the first 100 M of a Bernoulli sample at 1.1 times the rate,
in user order, so roughly the last tenth of the users get no pairs); torch's Adam (eps 1e-8;
Keras: 1e-7). Like the script's Keras
model, every layer starts Glorot-uniform with zero biases and the last partial batch is used.

``ncf-vs-mf reproduce mlp-dot`` (:mod:`ncf_vs_mf.experiments.mlp_dot`, on the experiment
engine: one :func:`run_cell` per grid cell) runs the Figure 3 grid into the run store and, with
``--publish``, into ``results/mlp_dot/``; :mod:`ncf_vs_mf.report.mlp_dot` turns its tables into the chapter's
summaries, growth fit and figures.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .models import MLPSimilarity, glorot_uniform_, paper_hidden, parameter_count
from .ncf_training import make_optimizer, resolve_device
from .results import RESULTS_DIR, ResultTable, provenance_overview

__all__ = [
    "SIGMA_LABEL",
    "RMSE_ZERO",
    "THRESHOLDS",
    "KEY",
    "sigma_emb",
    "hidden_width",
    "sample_pairs",
    "Pairs",
    "DotData",
    "generate",
    "rmse",
    "baseline_rmse",
    "baseline_standard_errors",
    "data_statistics",
    "build_mlp",
    "TrainConfig",
    "TrainResult",
    "TensorPairs",
    "train_epoch",
    "mlp_rmse",
    "train_mlp",
    "grid_cells",
    "cell_cost",
    "run_cell",
    "provenance",
]

SIGMA_LABEL = 0.85  # label noise = RMSE of the best Netflix prize models
RMSE_ZERO = 1.13  # RMSE of predicting the mean rating on Netflix
THRESHOLDS = (0.01, 0.001)  # "very significant" and "significant" RMSE differences
PAIRS_PER_USER = 100
TRAIN_FRACTION = 0.9
FRESH_PAIRS = 100_000
DIMS = (16, 32, 64, 128)
USERS = (4000, 8000, 16000, 32000, 64000, 128000)
WIDTHS = (0.5, 1.0, 2.0)
RESULTS = RESULTS_DIR / "mlp_dot"
KEY = ["dim", "users", "items", "width", "h", "seed", "epochs", "lr", "batch_size",
       "pairs_per_user", "fresh_pairs"]
_INT32_MAX = int(np.iinfo(np.int32).max)


# ----------------------------------------------------------------------------- data


def sigma_emb(d: int) -> float:
    """Embedding standard deviation making Var(<p, q>) = d sigma^4 = 1.13^2 - 0.85^2."""
    _check_count("d", d)
    return ((RMSE_ZERO ** 2 - SIGMA_LABEL ** 2) / d) ** 0.25


def hidden_width(d: int, width: float) -> int:
    """h = width * d, the last hidden width; it must come out a whole number >= 1."""
    _check_count("d", d)
    h = width * d
    if not (math.isfinite(h) and h >= 1 and abs(h - round(h)) < 1e-9):
        raise ValueError(f"h = width * d must be a whole number >= 1; width={width!r} with "
                         f"d={d} gives {h!r} (width 0.5 needs an even d)")
    return int(round(h))


def _check_count(name: str, value: int, minimum: int = 1) -> None:
    """Reject sizes that are not integers >= ``minimum``, naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def sample_pairs(n_pairs: int, n_users: int, n_items: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` distinct keys u * n_items + i, uniform without replacement, in random order.

    Draws keys with replacement, drops repeats and tops up until enough are distinct, then
    keeps a random ``n_pairs`` of them: O(n_pairs) memory, no pass over all n_users * n_items
    pairs (a dense permutation only when the pairs are at least half of all pairs anyway).
    Every step treats all keys alike, so every set of ``n_pairs`` keys is equally likely.
    """
    for name, value in (("n_pairs", n_pairs), ("n_users", n_users), ("n_items", n_items)):
        _check_count(name, value)
    universe = int(n_users) * int(n_items)
    if n_pairs > universe:
        raise ValueError(f"more pairs requested than exist: n_pairs={n_pairs} > n_users * "
                         f"n_items = {n_users} * {n_items} = {universe}")
    if 2 * n_pairs >= universe:
        return rng.permutation(universe)[:n_pairs]
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n_pairs:
        missing = n_pairs - keys.size
        draws = int(missing * universe / (universe - keys.size) * 1.02) + 64
        keys = np.concatenate([keys, rng.integers(0, universe, size=draws, dtype=np.int64)])
        keys.sort()
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    rng.shuffle(keys)
    return keys[:n_pairs]


@dataclass(frozen=True)
class Pairs:
    """Labelled (user, item) pairs as int32 indices into the float32 embedding tables p, q."""

    p: np.ndarray  # [users, d]
    q: np.ndarray  # [items, d]
    users: np.ndarray  # [n] int32 rows of p
    items: np.ndarray  # [n] int32 rows of q
    labels: np.ndarray  # [n] float32: <p_u, q_i> + noise

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def dots(self, chunk: int = 8192) -> Iterator[tuple[slice, np.ndarray]]:
        """The true dot products <p_u, q_i>, a chunk of pairs at a time (bounded memory).

        torch's row gather is about twice as fast as numpy's fancy indexing here.
        """
        p, q = torch.from_numpy(self.p), torch.from_numpy(self.q)
        users, items = torch.from_numpy(self.users), torch.from_numpy(self.items)
        for lo in range(0, len(self.users), chunk):
            part = slice(lo, lo + chunk)
            dots = torch.linalg.vecdot(p.index_select(0, users[part]),
                                       q.index_select(0, items[part]))
            yield part, dots.numpy()


@dataclass(frozen=True)
class DotData:
    """One dataset of Section 4.1: train and test share the tables P, Q; fresh has its own."""

    dim: int
    n_users: int
    n_items: int
    seed: int
    train: Pairs
    test: Pairs
    fresh: Pairs

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (tables counted once)."""
        arrays = {id(a): a for s in (self.train, self.test, self.fresh)
                  for a in (s.p, s.q, s.users, s.items, s.labels)}
        return sum(a.nbytes for a in arrays.values())


def _labelled(p: np.ndarray, q: np.ndarray, users: np.ndarray, items: np.ndarray,
              rng: np.random.Generator) -> Pairs:
    """Pairs with labels <p_u, q_i> + N(0, SIGMA_LABEL^2), computed a chunk at a time."""
    labels = np.empty(users.shape[0], dtype=np.float32)
    pairs = Pairs(p, q, users, items, labels)
    for part, dots in pairs.dots():
        noise = rng.standard_normal(dots.shape[0], dtype=np.float32)
        labels[part] = dots + np.float32(SIGMA_LABEL) * noise
    return pairs


def generate(dim: int, n_users: int, seed: int, n_items: int | None = None,
             pairs_per_user: int = PAIRS_PER_USER, fresh_pairs: int = FRESH_PAIRS) -> DotData:
    """The synthetic data of Section 4.1 for embedding dimension ``dim`` and M = ``n_users``.

    ``n_items`` defaults to M (the paper's N = M). ``pairs_per_user`` * M distinct pairs are
    split 90% train / 10% test; ``fresh_pairs`` pairs get new embeddings on both sides. A seed
    fixes everything; P, Q, the pairs, the noise and the fresh set use independent streams of
    ``SeedSequence([seed, dim, M, N])``.
    """
    n_items = n_users if n_items is None else n_items
    for name, value in (("dim", dim), ("n_users", n_users), ("n_items", n_items),
                        ("pairs_per_user", pairs_per_user), ("fresh_pairs", fresh_pairs)):
        _check_count(name, value)
    _check_count("seed", seed, minimum=0)
    if max(n_users, n_items, fresh_pairs) > _INT32_MAX:
        raise ValueError(f"n_users, n_items and fresh_pairs must fit int32 indices "
                         f"(<= {_INT32_MAX})")
    n_pairs = pairs_per_user * n_users
    n_train = int(round(TRAIN_FRACTION * n_pairs))
    if not 0 < n_train < n_pairs:
        raise ValueError(f"pairs_per_user * n_users = {n_pairs} pairs leave no test pair")
    streams = np.random.SeedSequence([seed, dim, n_users, n_items]).spawn(5)
    rng_p, rng_q, rng_pairs, rng_noise, rng_fresh = (np.random.default_rng(s) for s in streams)
    scale = np.float32(sigma_emb(dim))
    p = rng_p.standard_normal((n_users, dim), dtype=np.float32) * scale
    q = rng_q.standard_normal((n_items, dim), dtype=np.float32) * scale
    keys = sample_pairs(n_pairs, n_users, n_items, rng_pairs)
    users = np.empty(n_pairs, dtype=np.int32)
    items = np.empty(n_pairs, dtype=np.int32)
    np.floor_divide(keys, n_items, out=users, casting="unsafe")
    np.remainder(keys, n_items, out=items, casting="unsafe")
    del keys
    pairs = _labelled(p, q, users, items, rng_noise)
    head, tail = slice(0, n_train), slice(n_train, None)
    train = Pairs(p, q, users[head], items[head], pairs.labels[head])
    test = Pairs(p, q, users[tail], items[tail], pairs.labels[tail])
    fresh_p = rng_fresh.standard_normal((fresh_pairs, dim), dtype=np.float32) * scale
    fresh_q = rng_fresh.standard_normal((fresh_pairs, dim), dtype=np.float32) * scale
    index = np.arange(fresh_pairs, dtype=np.int32)
    fresh = _labelled(fresh_p, fresh_q, index, index, rng_fresh)
    return DotData(dim, n_users, n_items, seed, train, test, fresh)


def rmse(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Root mean squared error, accumulated in float64."""
    diff = np.asarray(predictions, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("rmse of no predictions")
    return float(np.sqrt(np.mean(np.square(diff))))


def baseline_rmse(pairs: Pairs) -> dict[str, float]:
    """RMSE of predicting 0 (about 1.13) and of the true dot product (about 0.85)."""
    labels = pairs.labels.astype(np.float64)
    squared = sum(float(np.square(labels[part] - dots).sum()) for part, dots in pairs.dots())
    return {"zero": float(np.sqrt(np.mean(np.square(labels)))),
            "dot": math.sqrt(squared / len(pairs))}


def baseline_standard_errors(d: int, n_pairs: int,
                             n_users: int | None = None) -> dict[str, float]:
    """Standard errors of the two baseline RMSEs on ``n_pairs`` generated pairs.

    With a = d sigma_emb^4 = Var<p, q> and b = 0.85^2: Var(y^2) = 2 (a + b)^2 + 6 a^2 / d
    for one pair. Pairs drawn from shared tables of M = ``n_users`` users (and as many items)
    add the sampling of the tables, 4 a^2 / (d M) on the mean of y^2 (None: fresh pairs,
    independent). The dot product's residual is the noise alone: Var(e^2) = 2 b^2. An RMSE
    r = sqrt(MSE) has standard error se(MSE) / (2 r).
    """
    a, b = RMSE_ZERO ** 2 - SIGMA_LABEL ** 2, SIGMA_LABEL ** 2
    var_zero = (2 * (a + b) ** 2 + 6 * a * a / d) / n_pairs
    if n_users is not None:
        var_zero += 4 * a * a / (d * n_users)
    return {"zero": math.sqrt(var_zero) / (2 * RMSE_ZERO),
            "dot": b * math.sqrt(2 / n_pairs) / (2 * SIGMA_LABEL)}


def data_statistics(data: DotData) -> pd.DataFrame:
    """Per set: its size and the RMSE of the two baselines, expected value and standard error."""
    rows = []
    for name in ("train", "test", "fresh"):
        pairs = getattr(data, name)
        base = baseline_rmse(pairs)
        se = baseline_standard_errors(data.dim, len(pairs),
                                      None if name == "fresh" else data.n_users)
        rows.append({"set": name, "pairs": len(pairs), "predict 0": base["zero"],
                     "predict 0, standard error": se["zero"], "dot product": base["dot"],
                     "dot product, standard error": se["dot"]})
    rows.append({"set": "expected", "pairs": pd.NA, "predict 0": RMSE_ZERO,
                 "dot product": SIGMA_LABEL})
    return pd.DataFrame(rows).set_index("set")


# ----------------------------------------------------------------------------- the learner


def build_mlp(dim: int, h: int, seed: int) -> MLPSimilarity:
    """The Section 4 MLP on [p, q]: hidden [4h, 2h, h], ReLU, linear output, all Glorot-uniform.

    Keras's default initialisation, as in the authors' script (``MLPSimilarity`` starts its
    output layer LeCun-uniform, NCF's choice). The seed is used without touching torch's
    global random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPSimilarity(dim, paper_hidden(h))
        glorot_uniform_(model.output)
    return model


@dataclass(frozen=True)
class TrainConfig:
    """Section 4.1's training settings (NCF's: Adam, batch 256) and where to run."""

    epochs: int = 32
    lr: float = 0.001
    batch_size: int = 256
    device: str = "auto"  # "auto": CUDA if available, else CPU
    eval_batch: int = 8192  # pairs per forward pass when evaluating

    def validate(self) -> None:
        """Raise ``ValueError`` naming every setting out of range."""
        problems = [f"{name}={value!r}: need an integer >= {low}"
                    for name, value, low in (("epochs", self.epochs, 0),
                                             ("batch_size", self.batch_size, 1),
                                             ("eval_batch", self.eval_batch, 1))
                    if isinstance(value, bool) or not isinstance(value, (int, np.integer))
                    or value < low]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr={self.lr!r}: need a finite value > 0")
        if problems:
            raise ValueError("invalid MLP training settings: " + "; ".join(problems))


@dataclass
class TrainResult:
    """Per-epoch rows (epoch 0 = the initial model) and the final RMSEs and errors."""

    rows: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class TensorPairs:
    """A ``Pairs`` as tensors on the training device (CPU tensors share numpy's memory)."""

    p: torch.Tensor
    q: torch.Tensor
    users: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, pairs: Pairs, device: torch.device) -> TensorPairs:
        return cls(*(torch.from_numpy(a).to(device) for a in
                     (pairs.p, pairs.q, pairs.users, pairs.items, pairs.labels)))


def train_epoch(model: MLPSimilarity, optimizer: torch.optim.Optimizer, data: TensorPairs,
                generator: torch.Generator, batch_size: int,
                max_batches: int | None = None) -> float:
    """One epoch of MSE steps in a ``generator``-drawn order; the mean batch loss.

    The order is one ``randperm`` (on the CPU generator, so it is the same on any device);
    each batch slices the shuffled index tensors and gathers its embedding rows.
    ``max_batches`` stops early (benchmarks only).
    """
    n = data.labels.shape[0]
    order = torch.randperm(n, generator=generator).to(data.labels.device)
    users, items, labels = data.users[order], data.items[order], data.labels[order]
    n = n if max_batches is None else min(n, max_batches * batch_size)
    total = torch.zeros((), dtype=torch.float64, device=labels.device)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        predictions = model(data.p.index_select(0, users[lo:hi]),
                            data.q.index_select(0, items[lo:hi]))
        loss = F.mse_loss(predictions, labels[lo:hi])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total.add_(loss.detach(), alpha=hi - lo)
    return float(total) / max(n, 1)


@torch.no_grad()
def mlp_rmse(model: MLPSimilarity, data: TensorPairs, batch: int = 8192) -> float:
    """RMSE of the model's predictions on all pairs, ``batch`` pairs per forward pass."""
    squared = torch.zeros((), dtype=torch.float64, device=data.labels.device)
    n = data.labels.shape[0]
    for lo in range(0, n, batch):
        predictions = model(data.p.index_select(0, data.users[lo:lo + batch]),
                            data.q.index_select(0, data.items[lo:lo + batch]))
        squared += (predictions.double() - data.labels[lo:lo + batch].double()).square().sum()
    return math.sqrt(float(squared) / n)


def train_mlp(data: DotData, h: int, seed: int,
              config: TrainConfig = TrainConfig()) -> tuple[MLPSimilarity, TrainResult]:
    """Train the Section 4 MLP of width ``h`` on ``data.train``; RMSEs on test and fresh.

    Each logged row holds the epoch's mean training loss and the test/fresh RMSE and
    approximation error (RMSE(MLP) - RMSE(dot)) after it. ``seed`` fixes the initialisation
    and the order of the examples; on the CPU the same seed gives the same numbers.
    """
    config.validate()
    _check_count("h", h)
    init_seed, order_seed = np.random.SeedSequence([seed, h]).generate_state(2)
    device = resolve_device(config.device)
    model = build_mlp(data.dim, h, int(init_seed)).to(device)
    optimizer = make_optimizer("adam", model.parameters(), config.lr)
    generator = torch.Generator().manual_seed(int(order_seed))
    train = TensorPairs.of(data.train, device)
    evaluated = {name: (TensorPairs.of(getattr(data, name), device),
                        baseline_rmse(getattr(data, name))) for name in ("test", "fresh")}
    result = TrainResult()
    start = time.perf_counter()

    def log(epoch: int, loss: float) -> None:
        row = {"epoch": epoch, "train_loss": loss}
        for name, (pairs, base) in evaluated.items():
            row[f"rmse_mlp_{name}"] = mlp_rmse(model, pairs, config.eval_batch)
            row[f"error_{name}"] = row[f"rmse_mlp_{name}"] - base["dot"]
        result.rows.append(row)

    log(0, float("nan"))
    for epoch in range(1, config.epochs + 1):
        loss = train_epoch(model, optimizer, train, generator, config.batch_size)
        if not math.isfinite(loss):
            raise FloatingPointError(f"MLP training diverged in epoch {epoch} (mean loss "
                                     f"{loss}); d={data.dim}, h={h}, lr={config.lr}")
        log(epoch, loss)
    result.seconds = time.perf_counter() - start
    last = result.rows[-1]
    result.final = {"train_loss": last["train_loss"]}
    for name, (_, base) in evaluated.items():
        result.final.update({f"rmse_mlp_{name}": last[f"rmse_mlp_{name}"],
                             f"rmse_dot_{name}": base["dot"], f"rmse_zero_{name}": base["zero"],
                             f"error_{name}": last[f"error_{name}"]})
    return model.cpu(), result


# ----------------------------------------------------------------------------- the grid


def grid_cells(dims: Sequence[int] = DIMS, users: Sequence[int] = USERS,
               widths: Sequence[float] = WIDTHS, seeds: Sequence[int] = range(5),
               config: TrainConfig = TrainConfig()) -> list[dict[str, Any]]:
    """One cell (a future row's key) per d, M, width and seed; N = M items."""
    config.validate()
    return [{"dim": int(d), "users": int(m), "items": int(m), "width": float(w),
             "h": hidden_width(int(d), float(w)), "seed": int(s), "epochs": config.epochs,
             "lr": config.lr, "batch_size": config.batch_size,
             "pairs_per_user": PAIRS_PER_USER, "fresh_pairs": FRESH_PAIRS}
            for s in seeds for w in widths for m in users for d in dims]


def cell_cost(cell: dict[str, Any]) -> int:
    """Estimated training work: training examples x MLP parameters (x epochs)."""
    n_train = round(TRAIN_FRACTION * cell["pairs_per_user"] * cell["users"])
    return n_train * parameter_count("mlp", cell["dim"], cell["h"]) * cell["epochs"]


def run_cell(cell: dict[str, Any], device: str = "auto",
             threads: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate one cell's data and train its MLP; its result row and per-epoch rows."""
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    data = generate(cell["dim"], cell["users"], cell["seed"], cell["items"],
                    cell["pairs_per_user"], cell["fresh_pairs"])
    data_seconds = time.perf_counter() - start
    config = TrainConfig(epochs=cell["epochs"], lr=cell["lr"], batch_size=cell["batch_size"],
                         device=device)
    _, result = train_mlp(data, cell["h"], cell["seed"], config)
    row = {**cell, "n_train": len(data.train), "n_test": len(data.test),
           "n_fresh": len(data.fresh), "parameters": parameter_count("mlp", cell["dim"], cell["h"]),
           **result.final, "device": str(resolve_device(device)), "threads": threads,
           "data_seconds": round(data_seconds, 1), "train_seconds": round(result.seconds, 1),
           "seconds": round(time.perf_counter() - start, 1)}
    return row, [{**cell, **r} for r in result.rows]


def _tables(folder: str | os.PathLike) -> tuple[ResultTable, ResultTable]:
    """The runs table (one row per cell) and the curves table (one row per epoch) of a folder."""
    return (ResultTable(Path(folder) / "mlp_dot_runs.csv", KEY),
            ResultTable(Path(folder) / "mlp_dot_curves.csv", KEY + ["epoch"]))


def provenance(folder: str | os.PathLike) -> pd.DataFrame:
    """Where the runs of a results folder come from: per invocation its command, commit,
    machine, date, rows and the torch devices it trained on."""
    table = _tables(folder)[0]
    overview = provenance_overview(table)
    runs = table.read()
    devices = (runs.groupby("run_id")["device"].agg(lambda d: ", ".join(sorted(set(d))))
               if not runs.empty else pd.Series(dtype=str, name="device"))
    return overview.merge(devices.rename("device"), left_on="run_id", right_index=True,
                          how="left").drop(columns="run_id")
