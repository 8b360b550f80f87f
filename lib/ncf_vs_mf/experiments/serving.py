"""Section 5, serving cost, declared on the experiment engine (``reproduce serving``).

One cell is one measurement (``--methods``) on one catalogue:

* **scoring** (``dot-torch``, ``dot-numpy``, ``mlp-module``, ``mlp-cached``, ``neumf-module``,
  ``neumf-cached``): best-of time to score ``batch`` users against n items with one thread;
  ``mlp-rerank`` times the MLP on ``--candidates`` item ids, ``select`` the top-k of n scores;
* **indexes** (``exact``, ``hnsw``, ``hnsw-ip``, ``ivf``, ``ivf-ip``, ``scann``): build time and
  size, then for every value of the index's knob recall@k against exact top-k and single-query
  latency (one thread) as curve rows; ``stats`` records the catalogue's spectrum and norms;
* **the MLP side** (``mlp-top-k``, ``two-stage-exact``, ``two-stage-scann``): an MLP fitted to
  the catalogue's dot products, its exact top-k by brute force, and the two-stage pipeline's
  recall and latency for each number of candidates C as curve rows.

Catalogues are our MF's ML-1M items (trained in the worker, cached per process) or synthetic
(:func:`ncf_vs_mf.serving.make_catalog`). A cell holds every setting that changes its numbers;
settings a method does not use are set to a neutral value, so the grid holds each measurement
once. Scoring settings too slow to time (more than ``MAX_WORK`` multiply-adds) are left out.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import serving
from ..mf import MFConfig, train_mf
from ..models import make_similarity, mlp_weight_count, ncf_hidden, paper_hidden
from .datasets import data_provenance, load_split
from .engine import Context, Experiment, RunResult, axis, from_engine

SCORING = ("dot-torch", "dot-numpy", "mlp-module", "mlp-cached", "neumf-module", "neumf-cached",
           "mlp-rerank", "select")
INDEXES = tuple(serving.INDEX_KINDS)
MLP_SIDE = ("mlp-top-k", "two-stage-exact", "two-stage-scann")
METHODS = SCORING + ("stats",) + INDEXES + MLP_SIDE
CATALOGS = ("ml-1m",) + serving.CATALOG_KINDS
ML1M_ITEMS = 3706  # items of NCF's ML-1M split
SCORING_USERS = 64  # users generated for scoring (the largest batch timed)
TWO_STAGE_CANDIDATES = (10, 20, 50, 100, 200, 500, 1000)  # C swept by the two-stage cells
MAX_WORK = {"one user": 7e11, "batch": 1e11}  # multiply-adds above which scoring is not timed
# Spectrum decay and norm spread of our MF's ML-1M items (d = 64, 256 epochs, seed 0; the
# committed stats row of ml-1m): the shape the trained-like catalogue copies by default.
ML1M_DECAY = 0.454897429367869
ML1M_NORM_SPREAD = 0.11122733215775614
_ONE = dict(many=False)


@dataclass(frozen=True)
class ServingCell:
    """One serving measurement: every setting that changes its numbers (unused ones neutral)."""

    method: str = axis("--methods", "what is measured (see the description)", choices=METHODS)
    catalog: str = axis("--catalogs", "items: ml-1m (our MF's, trained here), trained-like or "
                        "isotropic (synthetic)", choices=CATALOGS)
    n: int = axis("--ns", "catalogue sizes n (ml-1m: its 3,706 items)")
    d: int = axis("--dims", "embedding dimensions d")
    batch: int = axis("--batches", "users scored at once (scoring)")
    seed: int = axis("--seeds", "seeds of catalogue, MF and MLP (scoring: the seed is d)")
    pool: int = axis("--pool", "synthetic items generated, the first n used (0: n)", **_ONE)
    users: int = axis("--users", "synthetic users generated (the queries)", **_ONE)
    k: int = axis("--k", "top-k searched", **_ONE)
    recall_queries: int = axis("--recall-queries", "first users whose recall@k an index is "
                               "measured on (ml-1m: all)", **_ONE)
    latency_queries: int = axis("--latency-queries", "users timed one at a time per index "
                                "setting", **_ONE)
    latency_budget: float = axis("--latency-budget", "seconds of single-query timing per "
                                 "setting (at least 20 queries)", **_ONE)
    stage_queries: int = axis("--stage-queries", "last users of the MLP top-k and two-stage "
                              "cells", **_ONE)
    hnsw_m: int = axis("--hnsw-m", "HNSW links per item", **_ONE)
    hnsw_ef_construction: int = axis("--hnsw-ef-construction", "HNSW candidates kept while "
                                     "building", **_ONE)
    ivf_nlist: int = axis("--ivf-nlist", "IVF cells (0: about sqrt(n))", **_ONE)
    scann_reorder: int = axis("--scann-reorder", "ScaNN candidates re-scored exactly", **_ONE)
    decay: float = axis("--decay", "trained-like spectrum decay; the default is our ML-1M "
                        "MF's", **_ONE)
    norm_spread: float = axis("--norm-spread", "trained-like log-norm spread; the default is "
                              "our ML-1M MF's", **_ONE)
    mf_epochs: int = axis("--mf-epochs", "SGD epochs of the ML-1M MF", **_ONE)
    mlp_steps: int = axis("--mlp-steps", "Adam steps fitting the MLP to dot products", **_ONE)
    candidates: int = axis("--candidates", "item ids the MLP re-scores (mlp-rerank)", **_ONE)
    threads: int = from_engine("threads")  # builds, recall, MLP fit (timings: one thread)

    def __post_init__(self) -> None:
        if self.method == "select":  # random scores: no catalogue
            object.__setattr__(self, "catalog", "isotropic")
        neutral: dict[str, Any] = {}
        scoring, ml1m = self.method in SCORING, self.catalog == "ml-1m"
        if scoring:
            neutral.update(seed=self.d, threads=1, users=max(SCORING_USERS, self.batch))
        else:
            neutral.update(batch=1)
        if self.method == "select":
            neutral.update(d=0, seed=0, users=0, pool=0, batch=1)
        if self.method == "mlp-rerank":
            neutral.update(n=max(self.n, self.pool), batch=1)
        if self.method not in ("select",) + INDEXES + MLP_SIDE:
            neutral.update(k=0)
        if self.method == "stats":
            neutral.update(threads=1)
        if ml1m:
            neutral.update(n=ML1M_ITEMS, pool=0, users=0)
        if self.method not in INDEXES or ml1m:
            neutral.update(recall_queries=0)
        if self.method not in INDEXES:
            neutral.update(latency_queries=0)
        if self.method not in INDEXES + MLP_SIDE:
            neutral.update(latency_budget=0.0)
        if self.method not in MLP_SIDE:
            neutral.update(stage_queries=0, mlp_steps=0)
        if self.method not in ("hnsw", "hnsw-ip"):
            neutral.update(hnsw_m=0, hnsw_ef_construction=0)
        if self.method not in ("ivf", "ivf-ip"):
            neutral.update(ivf_nlist=0)
        if self.method not in ("scann", "two-stage-scann"):
            neutral.update(scann_reorder=0)
        if self.catalog != "trained-like" or self.method == "select":
            neutral.update(decay=0.0, norm_spread=0.0)
        if not ml1m:
            neutral.update(mf_epochs=0)
        if self.method != "mlp-rerank":
            neutral.update(candidates=0)
        for name, value in neutral.items():
            object.__setattr__(self, name, value)
        n = neutral.get("n", self.n)
        object.__setattr__(self, "pool", 0 if self.pool <= n else self.pool)
        object.__setattr__(self, "latency_budget", float(self.latency_budget))
        object.__setattr__(self, "decay", float(self.decay))
        object.__setattr__(self, "norm_spread", float(self.norm_spread))


# ----------------------------------------------------------------------------- scoring


def neumf_mlp_dim(d: int) -> int:
    """NeuMF's MLP part for any d: NCF's 2k of d = 3k, rounded down (GMF takes the rest)."""
    return 2 * (d // 3)


def work_per_pair(method: str, d: int) -> int:
    """Multiply-adds per (user, item) pair of a scoring method (to leave out what is too slow).

    The MLP's layers (NeuMF: its MLP part plus the GMF's weighted product); the cached variant
    skips the first layer, whose two halves are computed once per user and once per item.
    """
    family, _, variant = method.partition("-")
    if family == "dot":
        return d
    mlp_dim, hidden = ((neumf_mlp_dim(d), ncf_hidden(d // 3)) if family == "neumf"
                       else (d, paper_hidden(d)))
    total = mlp_weight_count(mlp_dim, hidden) + hidden[-1] + (d - mlp_dim)
    return total - (2 * mlp_dim * hidden[0] if variant == "cached" else 0)


def fits_budget(cell: ServingCell) -> bool:
    """Whether a scoring cell's work is within ``MAX_WORK`` (other cells always are)."""
    if cell.method not in SCORING[:6]:
        return True
    limit = MAX_WORK["one user" if cell.batch == 1 else "batch"]
    return cell.batch * cell.n * work_per_pair(cell.method, cell.d) <= limit


def scorer(method: str, d: int, items: np.ndarray) -> Callable[[np.ndarray], object]:
    """The scoring function of users against the catalogue for a scoring method."""
    import torch

    items_t = torch.from_numpy(items)
    if method == "dot-torch":
        return lambda u: serving.dot_scores(u, items_t)
    if method == "dot-numpy":
        return lambda u: u @ items.T
    family, _, variant = method.partition("-")
    similarity = (make_similarity("mlp", d) if family == "mlp"
                  else make_similarity("neumf", d, mlp_dim=neumf_mlp_dim(d)))
    if variant == "cached":
        return serving.CachedMLPScorer(similarity, items).scores
    return lambda u: serving.similarity_scores(similarity, u, items_t)


def time_scoring(cell: ServingCell, users: np.ndarray | None = None,
                 items: np.ndarray | None = None) -> dict[str, float]:
    """Best-of wall time of one scoring cell (one thread) and the time per user."""
    import torch

    serving.set_threads(1)
    torch.manual_seed(cell.seed)
    rng = np.random.default_rng(cell.seed)
    if cell.method == "select":
        scores = torch.from_numpy(rng.standard_normal((1, cell.n)).astype(np.float32))
        seconds = serving.best_time(lambda: serving.top_k(scores, cell.k), repeats=20)
    elif cell.method == "mlp-rerank":
        mlp = serving.CachedMLPScorer(make_similarity("mlp", cell.d), items)
        ids = rng.integers(0, cell.n, size=(1, cell.candidates))
        seconds = serving.best_time(lambda: mlp.scores(users[:1], items=ids), repeats=20)
    else:
        score = scorer(cell.method, cell.d, items)
        seconds = serving.best_time(lambda: score(users[:cell.batch]), repeats=5, budget=1.0)
    return {"seconds": seconds, "seconds_per_user": seconds / cell.batch}


# ----------------------------------------------------------------------------- catalogues


@functools.lru_cache(maxsize=2)
def ml1m_vectors(data_dir: str | None, d: int, epochs: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Retrieval vectors (users [1, p], items [q_bias, q]) of MF trained on ML-1M, and the
    model's metrics (cached per process: every ml-1m cell of a worker shares one training)."""
    import time

    split = load_split("ml-1m", "test", data_dir)
    start = time.perf_counter()
    model, history = train_mf(split, MFConfig(dim=d, epochs=epochs, seed=seed))
    users, items = serving.mf_retrieval_vectors(model.user, model.item)
    info = {"mf_hr10": history.rows[-1]["hr10"], "mf_ndcg10": history.rows[-1]["ndcg10"],
            "mf_train_seconds": time.perf_counter() - start, "n_users": split.n_users}
    return users, items, info


@functools.lru_cache(maxsize=2)
def _synthetic(kind: str, n: int, users: int, d: int, seed: int, decay: float,
               spread: float) -> tuple[np.ndarray, np.ndarray]:
    return serving.make_catalog(kind, n, users, d, seed=seed, decay=decay, norm_spread=spread)


def catalogue(cell: ServingCell, data_dir: str | None
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The cell's float32 (users, items) and, for ml-1m, the MF's metrics."""
    if cell.catalog == "ml-1m":
        users, items, info = ml1m_vectors(data_dir, cell.d, cell.mf_epochs, cell.seed)
        if items.shape[0] != cell.n:
            raise ValueError(f"ml-1m has {items.shape[0]} items, expected {cell.n}")
        return users, items, info
    users, items = _synthetic(cell.catalog, cell.pool or cell.n, cell.users, cell.d, cell.seed,
                              cell.decay, cell.norm_spread)
    return users, items[:cell.n], {}


# ----------------------------------------------------------------------------- indexes


def index_options(cell: ServingCell) -> dict[str, Any]:
    """Build options of the cell's index (faiss threads: ``serving.set_threads``)."""
    if cell.method in ("scann", "two-stage-scann"):
        return {"threads": cell.threads, "reorder": cell.scann_reorder, "seed": cell.seed}
    if cell.method.startswith("hnsw"):
        return {"m": cell.hnsw_m, "ef_construction": cell.hnsw_ef_construction}
    if cell.method.startswith("ivf"):
        return {"nlist": cell.ivf_nlist or None, "seed": cell.seed}
    return {}


def _single_thread(index: serving.RetrievalIndex) -> None:
    serving.set_threads(1)
    if isinstance(index, serving.ScannIndex):
        index.searcher.set_num_threads(1)


def measure_index(cell: ServingCell, users: np.ndarray, items: np.ndarray) -> RunResult:
    """Build one index; per knob setting its recall@k (batched) and single-query latency."""
    serving.set_threads(cell.threads)
    queries = users[:cell.recall_queries] if cell.recall_queries else users
    exact = serving.exact_top_k(queries, items, cell.k)
    index, build_seconds = serving.build_index(cell.method, items, **index_options(cell))
    row = {"knob": index.knob, "build_seconds": build_seconds,
           "memory_bytes": index.memory_bytes(), "vectors_bytes": as_bytes(items)}
    curves = []
    for setting in index.settings:
        serving.set_threads(cell.threads)
        recall = serving.recall_at_k(index.search(queries, cell.k, setting), exact)
        _single_thread(index)
        latencies = serving.per_query_latency(lambda q: index.search(q, cell.k, setting),
                                              users[:cell.latency_queries],
                                              budget=cell.latency_budget)
        curves.append({"setting": setting, "recall": recall,
                       "latency_ms": float(np.median(latencies)) * 1e3,
                       "latency_p90_ms": float(np.quantile(latencies, 0.9)) * 1e3,
                       "queries_timed": len(latencies)})
    return RunResult(row, curves)


def as_bytes(items: np.ndarray) -> int:
    """Bytes of the catalogue as float32 vectors (what an index is compared with)."""
    return int(items.astype(np.float32).nbytes)


def catalogue_stats(users: np.ndarray, items: np.ndarray) -> dict[str, float]:
    """Spectrum decay of items and users and the items' log-norm spread."""
    return {"item_spectrum_decay": serving.spectrum_decay(items),
            "user_spectrum_decay": serving.spectrum_decay(users),
            "item_log_norm_spread": serving.log_norm_spread(items)}


# ----------------------------------------------------------------------------- the MLP side


def measure_mlp_side(cell: ServingCell, users: np.ndarray, items: np.ndarray) -> RunResult:
    """The MLP fitted to the dot products: brute-force top-k, or a two-stage curve over C."""
    serving.set_threads(cell.threads)
    mlp = serving.fit_mlp_to_dot(users, items, paper_hidden(cell.d), steps=cell.mlp_steps,
                                 seed=cell.seed)
    mlp_scorer = serving.CachedMLPScorer(mlp, items)
    sample = users[-cell.stage_queries:]  # not the users the indexes' recall is measured on
    exact_mlp = serving.mlp_top_k(mlp_scorer, sample, cell.k)
    budget = cell.latency_budget
    if cell.method == "mlp-top-k":
        exact_dot = serving.exact_top_k(sample, items, cell.k)
        serving.set_threads(1)
        brute = serving.per_query_latency(lambda q: serving.mlp_top_k(mlp_scorer, q, cell.k),
                                          sample, budget=budget, min_queries=2)
        return RunResult({"latency_ms": float(np.median(brute)) * 1e3,
                          "dot_alone_recall": serving.recall_at_k(exact_dot, exact_mlp)})
    if cell.method == "two-stage-scann":
        index, _ = serving.build_index("scann", items, **index_options(cell))
        _single_thread(index)
        retrieve = index.search
    else:
        serving.set_threads(1)

        def retrieve(q: np.ndarray, c: int) -> np.ndarray:
            return serving.exact_top_k(q, items, c)
    curves = []
    for c in (c for c in TWO_STAGE_CANDIDATES if c <= cell.n):
        found = serving.two_stage_top_k(sample, mlp_scorer, retrieve, c, cell.k)
        latencies = serving.per_query_latency(
            lambda q: serving.two_stage_top_k(q, mlp_scorer, retrieve, c, cell.k), sample,
            budget=budget)
        curves.append({"setting": c, "recall": serving.recall_at_k(found, exact_mlp),
                       "latency_ms": float(np.median(latencies)) * 1e3})
    return RunResult({"knob": "candidates"}, curves)


# ----------------------------------------------------------------------------- the declaration


def measure(cell: ServingCell, context: Context) -> RunResult:
    """Worker: run one serving measurement (timings on one thread: run cells one at a time)."""
    if cell.method == "select":  # random scores, no catalogue
        return RunResult(time_scoring(cell))
    users, items, info = catalogue(cell, context.data_dir)
    if cell.method in SCORING:
        return RunResult(time_scoring(cell, users, items))
    if cell.method == "stats":
        return RunResult({**catalogue_stats(users, items), **info})
    if cell.method in INDEXES:
        return measure_index(cell, users, items)
    return measure_mlp_side(cell, users, items)


def check(cell: ServingCell) -> list[str]:
    """What is wrong with a cell's settings, each problem naming its option."""
    problems = []
    at_least = {"--ns": (cell.n, 1), "--batches": (cell.batch, 1), "--seeds": (cell.seed, 0),
                "--pool": (cell.pool, 0), "--ivf-nlist": (cell.ivf_nlist, 0)}
    if cell.method != "select":
        at_least["--dims"] = (cell.d, 1)
    if cell.method in ("select",) + INDEXES + MLP_SIDE:
        at_least["--k"] = (cell.k, 1)
    if cell.method in INDEXES:
        at_least["--latency-queries"] = (cell.latency_queries, 1)
    if cell.method in MLP_SIDE:
        at_least.update({"--stage-queries": (cell.stage_queries, 1),
                         "--mlp-steps": (cell.mlp_steps, 1)})
    if cell.method in ("hnsw", "hnsw-ip"):
        at_least.update({"--hnsw-m": (cell.hnsw_m, 2),
                         "--hnsw-ef-construction": (cell.hnsw_ef_construction, 1)})
    if cell.method in ("scann", "two-stage-scann"):
        at_least["--scann-reorder"] = (cell.scann_reorder, max(cell.k, 1))
    if cell.method == "mlp-rerank":
        at_least["--candidates"] = (cell.candidates, 1)
    if cell.catalog == "ml-1m":
        at_least["--mf-epochs"] = (cell.mf_epochs, 1)
    elif cell.method not in ("select",):
        at_least["--users"] = (cell.users, max(1, cell.recall_queries, cell.stage_queries))
    for option, (value, low) in at_least.items():
        if value < low:
            problems.append(f"{option} {value}: need >= {low}")
    if cell.method in SCORING and cell.catalog == "ml-1m":
        problems.append("--catalogs ml-1m: scoring methods time synthetic catalogues "
                        "(trained-like or isotropic)")
    if cell.method in INDEXES + MLP_SIDE and not cell.latency_budget > 0:
        problems.append(f"--latency-budget {cell.latency_budget}: need a number > 0")
    if cell.method.startswith("neumf") and 1 <= cell.d < 3:
        problems.append(f"--dims {cell.d}: NeuMF needs d >= 3")
    if cell.k > cell.n:
        problems.append(f"--k {cell.k}: more than the n = {cell.n} items")
    return problems


def prepare(cells: list[ServingCell], data_dir: str | None) -> dict[str, Any]:
    """The data's provenance: the ML-1M files (loaded here, in the driver) and the generators."""
    record: dict[str, Any] = {"synthetic": "ncf_vs_mf.serving.make_catalog(catalog, pool or n, "
                                           "users, d, seed, decay, norm_spread), first n items"}
    if any(c.catalog == "ml-1m" for c in cells):
        record["ml-1m"] = data_provenance("ml-1m", data_dir, split="test")
    return record


def summary(cell: ServingCell, row: dict[str, Any]) -> str:
    """The line printed when a cell is done."""
    where = f"{cell.method} {cell.catalog} n={cell.n} d={cell.d}"
    if "seconds_per_user" in row:
        return f"{where} batch={cell.batch}: {row['seconds_per_user'] * 1e3:.3f} ms per user"
    if "build_seconds" in row:
        return f"{where}: built in {row['build_seconds']:.1f} s"
    return where


@dataclass(frozen=True)
class ServingExperiment(Experiment):
    """The engine's experiment whose grid leaves out scoring settings too slow to time."""

    def grid(self, values: Any, engine: Any) -> list[Any]:
        """The grid's cells within ``MAX_WORK`` (see :func:`fits_budget`)."""
        return [c for c in super().grid(values, engine) if fits_budget(c)]


# The invocations behind the committed tables (``reproduce serving`` options); the indexes'
# defaults are the experiment's defaults.
SCORING_GRID = {"methods": SCORING, "catalogs": ("isotropic",),
                "ns": (1_000, 10_000, 100_000, 1_000_000), "dims": (16, 32, 64, 128, 256),
                "batches": (1, 64), "pool": 1_000_000}
STATS_GRID = {"methods": ("stats",), "ns": (100_000,)}
MLP_SIDE_GRID = {"methods": MLP_SIDE, "catalogs": ("ml-1m", "trained-like"), "ns": (100_000,)}

SERVING = ServingExperiment(
    name="serving", help="Section 5: serving cost (scoring, retrieval indexes, two-stage); "
                         "timings need a quiet machine and --jobs 1",
    description="Measure serving cost: scoring time of dot product, MLP and NeuMF; recall@k "
                "and single-query latency of exact search, faiss HNSW / IVF and ScaNN on our "
                "MF's ML-1M items and synthetic catalogues; the MLP's brute-force top-k and "
                "two-stage retrieval. Timings use one thread and are only meaningful on a "
                "quiet machine with --jobs 1 (one cell at a time). The defaults are the "
                "index grid; the committed tables also hold --methods "
                f"{' '.join(SCORING)} --catalogs isotropic --ns 1000 10000 100000 1000000 "
                "--dims 16 32 64 128 256 --batches 1 64 (scoring), --methods stats --ns "
                f"100000 and --methods {' '.join(MLP_SIDE)} --catalogs ml-1m trained-like "
                "--ns 100000 (the MLP side).",
    cell=ServingCell, run=measure, runs_table="serving_runs", curves_table="serving_curves",
    key=tuple(f.name for f in dataclasses.fields(ServingCell)), folder="serving",
    defaults={"method": INDEXES, "catalog": CATALOGS,
              "n": (10_000, 100_000, 1_000_000), "d": (64,), "batch": (1,), "seed": (0,),
              "pool": 1_000_000, "users": 1_100, "k": 10, "recall_queries": 1_000,
              "latency_queries": 200, "latency_budget": 2.0, "stage_queries": 100,
              "hnsw_m": 16, "hnsw_ef_construction": 40, "ivf_nlist": 0, "scann_reorder": 300,
              "decay": ML1M_DECAY, "norm_spread": ML1M_NORM_SPREAD, "mf_epochs": 256,
              "mlp_steps": 1_000, "candidates": 200},
    order=("catalog", "seed", "d", "n", "method", "batch"), check=check, prepare=prepare,
    summary=summary, curve_extra_key=("setting",))
