"""Serving cost of the similarities (Rendle et al. 2020, Section 5): scoring, retrieval, re-ranking.

Section 5 argues that a dot product can be *served* -- the top items of a catalog of millions
found in milliseconds -- while an MLP-learned similarity cannot. This module holds what the
chapter "Serving cost" and ``benchmarks/serving.py`` need to check that:

* **scoring**: one user (or a batch) against n items with phi_dot (a matrix product), phi_MLP
  and phi_NeuMF (the modules of :mod:`ncf_vs_mf.models`, either called on every pair or with
  the item half of the first layer precomputed, :class:`CachedMLPScorer`), in item chunks so
  memory stays bounded;
* **catalogs**: synthetic item and user embeddings shaped like trained ones (decaying spectrum,
  log-normal norms) or isotropic Gaussians, and the statistics that tell them apart;
* **retrieval indexes** with one interface (:class:`RetrievalIndex`): exact search, faiss HNSW
  and IVF (each on inner products directly, or on the reduction of inner-product search to
  nearest-neighbour search by one extra coordinate) and ScaNN, each with one search-time knob
  that trades recall for latency;
* **measurement helpers**: recall@k against exact top-k, best-of timings, per-query latency,
  power-law fits of cost against n and d;
* **the MLP side**: exact MLP top-k by brute force, and a two-stage pipeline that retrieves
  candidates by dot product and re-ranks them with the MLP.

All arrays handed to faiss and ScaNN are float32. Thread counts are never left to the
libraries' defaults: call :func:`set_threads` first (benchmarks use one thread for latency).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .models import MLPSimilarity, NeuMFSimilarity

__all__ = [
    "set_threads", "as_float32",
    "dot_scores", "similarity_scores", "CachedMLPScorer", "top_k", "exact_top_k",
    "mlp_top_k", "two_stage_top_k", "fit_mlp_to_dot", "mf_retrieval_vectors",
    "trained_like_catalog", "isotropic_catalog", "make_catalog", "CATALOG_KINDS",
    "spectrum_decay", "log_norm_spread",
    "mips_to_nn_items", "mips_to_nn_queries",
    "RetrievalIndex", "ExactIndex", "HNSWIndex", "IVFIndex", "ScannIndex", "build_index",
    "INDEX_KINDS", "recall_at_k", "best_time", "per_query_latency", "fit_power_law",
    "fit_cost_model", "best_scoring", "cost_ratio", "scoring_fits",
    "latency_vs_n", "latency_slopes", "advice_table",
]

CATALOG_KINDS = ("trained-like", "isotropic")


# --------------------------------------------------------------------------------------
# Threads and dtypes
# --------------------------------------------------------------------------------------

def set_threads(threads: int) -> None:
    """Fix the thread count of torch and faiss, so every timing says how many cores it used."""
    import faiss

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def as_float32(x: np.ndarray | Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy copy (or view) of x: what faiss and ScaNN accept."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _tensor(x: np.ndarray | Tensor) -> Tensor:
    """x as a float32 torch tensor, sharing memory with a float32 numpy array."""
    return x.float() if isinstance(x, Tensor) else torch.from_numpy(as_float32(x))


# --------------------------------------------------------------------------------------
# Scoring: one user or a batch against n items
# --------------------------------------------------------------------------------------

def dot_scores(users: np.ndarray | Tensor, items: np.ndarray | Tensor) -> Tensor:
    """phi_dot of every user against every item, (B, n): one matrix product, O(B d n)."""
    return _tensor(users) @ _tensor(items).T


def _item_chunks(n: int, chunk: int) -> Iterator[slice]:
    """Slices of at most ``chunk`` items."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def _pair_chunks(n_users: int, n_items: int, pairs: int) -> Iterator[slice]:
    """Item slices holding about ``pairs`` (user, item) pairs: the MLP's activations then stay
    in cache (2,048 pairs is fastest here for one user and for 64), whatever the batch size."""
    return _item_chunks(n_items, max(1, pairs // max(n_users, 1)))


@torch.no_grad()
def similarity_scores(similarity: nn.Module, users: np.ndarray | Tensor,
                      items: np.ndarray | Tensor, chunk: int = 2048) -> Tensor:
    """Any similarity module (dot, MLP, NeuMF) of every user against every item, (B, n).

    The module is called on broadcast pairs (B, 1, d) x (1, C, d), as it is in training, so an
    MLP evaluates its whole first layer on [p, q] for every pair; ``chunk`` pairs at a time.
    """
    p, q = _tensor(users), _tensor(items)
    out = torch.empty(p.shape[0], q.shape[0])
    for part in _pair_chunks(p.shape[0], q.shape[0], chunk):
        out[:, part] = similarity(p[:, None, :], q[None, part, :])
    return out


class CachedMLPScorer:
    """phi_MLP or phi_NeuMF against a fixed catalog, first layer split: W [p, q] = W_p p + W_q q.

    The item half W_q q_i + bias is computed once per catalog (n x width of the first layer,
    memory traded for time), the user half once per request; per pair the MLP then costs only
    its later layers. For the paper's hidden sizes [4h, 2h, h] with h = d that is 10 d^2
    multiply-adds instead of 18 d^2: cheaper, but still O(d^2 n). NeuMF's GMF part is a
    weighted dot product over its own coordinates, O(d n).
    """

    @torch.no_grad()
    def __init__(self, similarity: MLPSimilarity | NeuMFSimilarity, items: np.ndarray | Tensor):
        mlp = similarity.mlp if isinstance(similarity, NeuMFSimilarity) else similarity
        if not mlp.layers:
            raise ValueError("CachedMLPScorer needs an MLP with at least one hidden layer")
        self.similarity = similarity
        self.mlp_dim = mlp.d
        q = _tensor(items)
        first = mlp.layers[0]
        self.user_weight = first.weight[:, :mlp.d]
        self.item_part = q[:, :mlp.d] @ first.weight[:, mlp.d:].T + first.bias
        self.later = list(mlp.layers[1:])
        if isinstance(similarity, NeuMFSimilarity):
            gmf_w, mlp_w = similarity.output.weight[0].split([similarity.gmf_dim, mlp.out_features])
            self.gmf_weight: Tensor | None = gmf_w
            self.gmf_items = q[:, mlp.d:]
        else:
            mlp_w, self.gmf_weight = mlp.output.weight[0], None
        self.output_weight = mlp_w
        self.output_bias = similarity.output.bias

    @property
    def n_items(self) -> int:
        return self.item_part.shape[0]

    @torch.no_grad()
    def scores(self, users: np.ndarray | Tensor, chunk: int = 2048,
               items: np.ndarray | Tensor | None = None) -> Tensor:
        """Logits (B, n) of the users against the catalog (``chunk`` pairs at a time), or
        (B, C) against item ids (B, C)."""
        p = _tensor(users)
        user_part = p[:, :self.mlp_dim] @ self.user_weight.T  # (B, width)
        if items is not None:
            return self._pairs(p, user_part, torch.as_tensor(items, dtype=torch.long))
        out = torch.empty(p.shape[0], self.n_items)
        for part in _pair_chunks(p.shape[0], self.n_items, chunk):
            hidden = torch.relu(user_part[:, None, :] + self.item_part[None, part, :])
            out[:, part] = self._head(p, hidden, part)
        return out

    def _pairs(self, p: Tensor, user_part: Tensor, ids: Tensor) -> Tensor:
        """Scores of each user against its own candidate ids (B, C): the re-ranking stage."""
        hidden = torch.relu(user_part[:, None, :] + self.item_part[ids])
        return self._head(p, hidden, ids)

    def _head(self, p: Tensor, hidden: Tensor, which: slice | Tensor) -> Tensor:
        """Later layers, output layer and (NeuMF) GMF term for first-layer activations."""
        for layer in self.later:
            hidden = torch.relu(layer(hidden))
        logits = hidden @ self.output_weight + self.output_bias
        if self.gmf_weight is not None:
            weighted = p[:, self.mlp_dim:] * self.gmf_weight
            if isinstance(which, slice):
                logits = logits + weighted @ self.gmf_items[which].T
            else:
                logits = logits + (weighted[:, None, :] * self.gmf_items[which]).sum(-1)
        return logits


# --------------------------------------------------------------------------------------
# Top-k: exact by dot product and by MLP, and the two-stage pipeline
# --------------------------------------------------------------------------------------

def top_k(scores: Tensor, k: int) -> np.ndarray:
    """Ids of the k largest scores per row, best first, (B, k) int64."""
    return torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy()


def exact_top_k(users: np.ndarray | Tensor, items: np.ndarray | Tensor, k: int = 10,
                user_chunk: int = 256) -> np.ndarray:
    """Exact inner-product top-k of every user, (B, k): the ground truth recall is measured on."""
    p = _tensor(users)
    parts = [top_k(dot_scores(p[part], items), k) for part in _item_chunks(p.shape[0], user_chunk)]
    return np.concatenate(parts) if parts else np.empty((0, k), np.int64)


def mlp_top_k(scorer: CachedMLPScorer, users: np.ndarray | Tensor, k: int = 10,
              chunk: int = 2048) -> np.ndarray:
    """Exact MLP top-k by brute force: no index exists, so every item is scored, (B, k)."""
    return top_k(scorer.scores(users, chunk), k)


def two_stage_top_k(users: np.ndarray | Tensor, scorer: CachedMLPScorer,
                    retrieve: Callable[[np.ndarray, int], np.ndarray], n_candidates: int,
                    k: int = 10) -> np.ndarray:
    """Retrieve ``n_candidates`` items per user by dot product, re-rank them by MLP, keep k.

    ``retrieve(queries, c)`` returns candidate ids (B, c), e.g. an index's search or exact
    dot-product top-c; with all n items as candidates this is exact MLP top-k.
    """
    candidates = np.asarray(retrieve(as_float32(users), n_candidates), dtype=np.int64)
    if (candidates < 0).any():
        raise ValueError("retrieval returned fewer than n_candidates items (id -1)")
    scores = scorer.scores(users, items=candidates)
    order = top_k(scores, k)
    return np.take_along_axis(candidates, order, axis=1)


def fit_mlp_to_dot(users: np.ndarray, items: np.ndarray, hidden: Sequence[int], steps: int = 1500,
                   batch: int = 1024, lr: float = 1e-3, seed: int = 0) -> MLPSimilarity:
    """An MLP similarity trained (Adam, MSE) to reproduce the dot products of random pairs.

    Section 4's experiment in miniature, used here to get an MLP whose ranking is close to,
    but not the same as, the dot product's: the setting in which a two-stage pipeline
    (dot-product candidates, MLP re-ranking) makes sense. Targets are standardised.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    p, q = _tensor(users), _tensor(items)
    mlp = MLPSimilarity(p.shape[1], hidden)
    scale = float(dot_scores(p[:256], q[:4096]).std()) or 1.0
    optimizer = torch.optim.Adam(mlp.parameters(), lr=lr)
    for _ in range(steps):
        u = torch.randint(p.shape[0], (batch,), generator=generator)
        i = torch.randint(q.shape[0], (batch,), generator=generator)
        target = (p[u] * q[i]).sum(-1) / scale
        loss = torch.nn.functional.mse_loss(mlp(p[u], q[i]), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return mlp.eval()


def mf_retrieval_vectors(user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 2 as one inner product for retrieval: users [1, p_2..p_d], items [q_1, q_2..q_d].

    For a fixed user, b + p_1 + q_1 + <p[2:], q[2:]> ranks items like <[1, p[2:]], q>: the
    global and user biases are constant and drop out, the item bias rides on the constant 1.
    """
    queries = np.concatenate([np.ones((user.shape[0], 1)), user[:, 1:]], axis=1)
    return as_float32(queries), as_float32(item)


# --------------------------------------------------------------------------------------
# Synthetic catalogs
# --------------------------------------------------------------------------------------

def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random orthogonal d x d matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def trained_like_catalog(n_items: int, n_users: int, d: int, decay: float = 1.0,
                         norm_spread: float = 0.5, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Users and items shaped like trained embeddings: a decaying spectrum and skewed norms.

    Both sides share one latent space in which coordinate j (after a random rotation) has
    standard deviation (j + 1)^-decay, so a few directions carry most of the variance, as in
    trained factor models. Item norms are then set to log-normal values with log-standard
    deviation ``norm_spread``: a few items (the popular ones, in a trained model) have much
    larger norms and so win many users' inner-product top-k. Returns float32 (users, items).
    """
    rng = np.random.default_rng(seed)
    rotation = _random_rotation(d, rng)
    scales = np.arange(1, d + 1, dtype=np.float64) ** -decay

    def draw(n: int) -> np.ndarray:
        return (rng.standard_normal((n, d)) * scales) @ rotation

    users, items = draw(n_users), draw(n_items)
    norms = np.exp(norm_spread * rng.standard_normal(n_items))
    items *= (norms / np.linalg.norm(items, axis=1))[:, None]
    return as_float32(users), as_float32(items)


def isotropic_catalog(n_items: int, n_users: int, d: int, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Users and items i.i.d. N(0, I/d): no direction or item stands out (the hard case)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / math.sqrt(d)
    return (as_float32(rng.standard_normal((n_users, d)) * scale),
            as_float32(rng.standard_normal((n_items, d)) * scale))


def make_catalog(kind: str, n_items: int, n_users: int, d: int, seed: int = 0,
                 decay: float = 1.0, norm_spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic catalog by name: 'trained-like' or 'isotropic' (float32 users, items)."""
    if kind == "trained-like":
        return trained_like_catalog(n_items, n_users, d, decay, norm_spread, seed)
    if kind == "isotropic":
        return isotropic_catalog(n_items, n_users, d, seed)
    raise ValueError(f"unknown catalog kind {kind!r}; choose from {CATALOG_KINDS}")


def spectrum_decay(x: np.ndarray) -> float:
    """Exponent a of the fit sigma_j ~ j^-a of x's standard deviations along its principal axes.

    Computed from the singular values of the centred matrix (sigma_j = s_j / sqrt(n)); about 0
    for isotropic data, about ``decay`` for :func:`trained_like_catalog` before the norms are
    reset. Axes with almost no variance (below 1e-6 of the largest) are left out of the fit.
    """
    s = np.linalg.svd(np.asarray(x, np.float64) - x.mean(axis=0), compute_uv=False)
    keep = s > 1e-6 * s[0]
    exponent, _ = fit_power_law(np.arange(1, len(s) + 1)[keep], s[keep])
    return -exponent


def log_norm_spread(x: np.ndarray) -> float:
    """Standard deviation of the log row norms: 0 when all items are equally long."""
    return float(np.std(np.log(np.linalg.norm(np.asarray(x, np.float64), axis=1))))


# --------------------------------------------------------------------------------------
# Inner-product search as nearest-neighbour search (one extra coordinate)
# --------------------------------------------------------------------------------------

def mips_to_nn_items(items: np.ndarray) -> np.ndarray:
    """Items [q, sqrt(M^2 - |q|^2)] with M the largest norm: every row then has norm M.

    For a query [p, 0], |[p, 0] - [q, e]|^2 = |p|^2 + M^2 - 2 <p, q>, so the nearest items in
    Euclidean distance are exactly the items of largest inner product (Bachrach et al. 2014).
    """
    x = np.asarray(items, np.float64)
    norms2 = np.einsum("ij,ij->i", x, x)
    extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0))
    return as_float32(np.concatenate([x, extra[:, None]], axis=1))


def mips_to_nn_queries(queries: np.ndarray) -> np.ndarray:
    """Queries [p, 0]: the query side of :func:`mips_to_nn_items`."""
    q = as_float32(queries)
    return np.concatenate([q, np.zeros((q.shape[0], 1), np.float32)], axis=1)


# --------------------------------------------------------------------------------------
# Retrieval indexes with one interface
# --------------------------------------------------------------------------------------

class RetrievalIndex(ABC):
    """Top-k by inner product over a fixed catalog, with one knob trading recall for time.

    ``search(queries, k, setting)`` returns item ids (B, k), best first; ``setting`` is the
    value of the knob named ``knob`` (None: the index's default); ``settings`` lists the
    values a recall-latency curve sweeps, from fast to accurate.
    """

    name: str = "index"
    knob: str = ""
    settings: tuple[int, ...] = ()

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, setting: int | None = None) -> np.ndarray:
        """Ids (B, k) of the items with the (approximately) largest inner products."""

    @abstractmethod
    def memory_bytes(self) -> int:
        """Size of the index serialised: vectors, graph or codes, and centroids."""


def _faiss_bytes(index) -> int:
    """Bytes of a faiss index as serialised (a good proxy for its memory)."""
    import faiss

    return int(faiss.serialize_index(index).nbytes)


class ExactIndex(RetrievalIndex):
    """Brute-force inner-product search (faiss IndexFlatIP): recall 1, O(d n) per query."""

    name, knob, settings = "exact", "", (0,)

    def __init__(self, items: np.ndarray):
        import faiss

        self.index = faiss.IndexFlatIP(items.shape[1])
        self.index.add(as_float32(items))

    def search(self, queries: np.ndarray, k: int, setting: int | None = None) -> np.ndarray:
        return self.index.search(as_float32(queries), k)[1]

    def memory_bytes(self) -> int:
        return _faiss_bytes(self.index)


class _FaissANNIndex(RetrievalIndex):
    """A faiss index over the items either as they are (inner-product metric) or reduced.

    ``reduction=True`` indexes the Euclidean vectors of :func:`mips_to_nn_items` and searches
    with :func:`mips_to_nn_queries`, the textbook way to use a metric index for inner
    products; ``False`` uses faiss's inner-product metric on the items directly.
    """

    base_name = ""

    def __init__(self, items: np.ndarray, reduction: bool):
        import faiss

        self.reduction = reduction
        self.name = self.base_name + ("" if reduction else "-ip")
        self.vectors = mips_to_nn_items(items) if reduction else as_float32(items)
        self.metric = faiss.METRIC_L2 if reduction else faiss.METRIC_INNER_PRODUCT

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries in the space the index was built in."""
        return mips_to_nn_queries(queries) if self.reduction else as_float32(queries)

    def _search(self, queries: np.ndarray, k: int, params) -> np.ndarray:
        """faiss search with per-call parameters; ids only."""
        return self.index.search(self._queries(queries), k, params=params)[1]

    def memory_bytes(self) -> int:
        return _faiss_bytes(self.index)


class HNSWIndex(_FaissANNIndex):
    """faiss HNSW graph (``m`` links per node); knob efSearch, the candidates kept while walking.

    With the inner-product metric (``reduction=False``) the graph is built on a similarity
    that is not a metric; with the reduction all items lie on one sphere, but short items
    get a large extra coordinate and end up far from every query.
    """

    base_name, knob, settings = "hnsw", "efSearch", (10, 16, 32, 64, 128, 256, 512)

    def __init__(self, items: np.ndarray, m: int = 16, ef_construction: int = 40,
                 reduction: bool = True):
        import faiss

        super().__init__(items, reduction)
        self.index = faiss.IndexHNSWFlat(self.vectors.shape[1], m, self.metric)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(self.vectors)
        del self.vectors

    def search(self, queries: np.ndarray, k: int, setting: int | None = None) -> np.ndarray:
        import faiss

        return self._search(queries, k, faiss.SearchParametersHNSW(efSearch=max(setting or 64, k)))


class IVFIndex(_FaissANNIndex):
    """faiss IVF-Flat; knob nprobe, the number of the ``nlist`` k-means cells scanned.

    k-means splits the catalog into ``nlist`` cells (default about sqrt(n), at most n / 39 so
    that faiss has its 39 training points per centroid); a query scans the items of the
    ``nprobe`` cells whose centroids are closest to it (largest inner product without the
    reduction: then long centroids attract every query and the cells fit inner products badly).
    """

    base_name, knob = "ivf", "nprobe"

    def __init__(self, items: np.ndarray, nlist: int | None = None, train_size: int = 100_000,
                 reduction: bool = True, seed: int = 0):
        import faiss

        super().__init__(items, reduction)
        n, dim = self.vectors.shape
        self.nlist = nlist or max(4, min(int(math.sqrt(n)), n // 39))
        quantizer = (faiss.IndexFlatL2 if reduction else faiss.IndexFlatIP)(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, self.metric)
        self.index.cp.seed = seed
        sample = np.random.default_rng(seed).permutation(n)[:max(train_size, 39 * self.nlist)]
        self.index.train(self.vectors[np.sort(sample)])
        self.index.add(self.vectors)
        del self.vectors
        self.settings = tuple(sorted({p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256)
                                      if p < self.nlist} | {self.nlist}))

    def search(self, queries: np.ndarray, k: int, setting: int | None = None) -> np.ndarray:
        import faiss

        return self._search(queries, k, faiss.SearchParametersIVF(nprobe=setting or 16))


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for a while: ScaNN's C++ logging writes timings there."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class ScannIndex(RetrievalIndex):
    """ScaNN (Guo et al. 2020): k-means tree, anisotropic 4-bit codes, exact re-ordering.

    Knob leaves_to_search (of ``num_leaves``, default about sqrt(n)); the ``reorder`` best
    candidates by quantised score are re-scored exactly. The tree starts from k-means++ with
    a fixed ``seed`` (ScaNN's default random start differs from run to run); training and
    search use ``threads`` threads.
    """

    name, knob = "scann", "leaves_to_search"

    def __init__(self, items: np.ndarray, num_leaves: int | None = None, reorder: int = 300,
                 train_size: int = 100_000, threads: int = 1, seed: int = 0):
        import scann

        x = as_float32(items)
        self.num_leaves = num_leaves or max(8, int(math.sqrt(x.shape[0])))
        config = (scann.scann_ops_pybind.builder(x, 10, "dot_product")
                  .tree(num_leaves=self.num_leaves,
                        num_leaves_to_search=max(1, self.num_leaves // 10),
                        training_sample_size=min(x.shape[0], train_size), random_init=False)
                  .score_ah(2, anisotropic_quantization_threshold=0.2)
                  .reorder(reorder).create_config())
        config = config.replace("partitioning {", f"partitioning {{\n clustering_seed: {seed}", 1)
        with _quiet_stderr():
            self.searcher = scann.scann_ops_pybind.create_searcher(x, config, threads)
            self.searcher.set_num_threads(threads)
        self.reorder = reorder
        self.settings = tuple(sorted({max(1, round(self.num_leaves * f)) for f in
                                      (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0)}))

    def search(self, queries: np.ndarray, k: int, setting: int | None = None) -> np.ndarray:
        ids, _ = self.searcher.search_batched(as_float32(queries), final_num_neighbors=k,
                                              pre_reorder_num_neighbors=max(self.reorder, k),
                                              leaves_to_search=setting)
        return np.asarray(ids, dtype=np.int64)

    def memory_bytes(self) -> int:
        with tempfile.TemporaryDirectory() as folder, _quiet_stderr():
            self.searcher.serialize(folder)
            return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())


INDEX_KINDS: dict[str, Callable[..., RetrievalIndex]] = {
    "exact": ExactIndex,
    "hnsw": HNSWIndex,
    "hnsw-ip": lambda items, **kw: HNSWIndex(items, reduction=False, **kw),
    "ivf": IVFIndex,
    "ivf-ip": lambda items, **kw: IVFIndex(items, reduction=False, **kw),
    "scann": ScannIndex,
}


def build_index(kind: str, items: np.ndarray, **options) -> tuple[RetrievalIndex, float]:
    """Build an index by name (see ``INDEX_KINDS``); returns it and its build wall time (s)."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index {kind!r}; choose from {sorted(INDEX_KINDS)}")
    start = time.perf_counter()
    index = INDEX_KINDS[kind](items, **options)
    return index, time.perf_counter() - start


# --------------------------------------------------------------------------------------
# Measurements and fits
# --------------------------------------------------------------------------------------

def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k, with k the width of ``exact`` (ids; -1 = none)."""
    found, exact = np.asarray(found), np.asarray(exact)
    if found.shape[0] != exact.shape[0]:
        raise ValueError(f"{found.shape[0]} result rows for {exact.shape[0]} queries")
    hits = [len(np.intersect1d(f[f >= 0], e)) for f, e in zip(found, exact)]
    return float(np.mean(hits)) / exact.shape[1] if len(hits) else float("nan")


def best_time(fn: Callable[[], object], repeats: int = 5, budget: float = 2.0) -> float:
    """Smallest wall time (s) of up to ``repeats`` calls, fewer once ``budget`` seconds are spent.

    The minimum is the run least disturbed by the rest of the machine; a call slower than the
    budget runs once.
    """
    times: list[float] = []
    spent = 0.0
    while len(times) < max(repeats, 1) and (not times or spent < budget):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def per_query_latency(search_one: Callable[[np.ndarray], object], queries: np.ndarray,
                      budget: float | None = None, min_queries: int = 20) -> np.ndarray:
    """Wall time (s) of each query searched on its own, as a server answers one request.

    With a ``budget`` (s) it stops once that much time is spent and ``min_queries`` are done.
    """
    times: list[float] = []
    for query in queries:
        one = query[None, :]
        start = time.perf_counter()
        search_one(one)
        times.append(time.perf_counter() - start)
        if budget is not None and len(times) >= min_queries and sum(times) > budget:
            break
    return np.array(times)


def fit_power_law(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
                  ) -> tuple[float, float]:
    """Exponent a and factor c of y = c x^a, by least squares on log y against log x."""
    lx, ly = np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("a power-law fit needs at least two distinct x")
    a, log_c = np.polyfit(lx, ly, 1)
    return float(a), float(np.exp(log_c))


def fit_cost_model(n: Sequence[float] | np.ndarray, d: Sequence[float] | np.ndarray,
                   seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Exponents of t = c n^a d^b by least squares in logs: a ~ 1 and b ~ 1 (dot) or 2 (MLP)."""
    design = np.column_stack([np.ones(len(seconds)), np.log(np.asarray(n, np.float64)),
                              np.log(np.asarray(d, np.float64))])
    coef, *_ = np.linalg.lstsq(design, np.log(np.asarray(seconds, np.float64)), rcond=None)
    return {"n_exponent": float(coef[1]), "d_exponent": float(coef[2]),
            "factor": float(np.exp(coef[0]))}


# --------------------------------------------------------------------------------------
# Summaries of a benchmark run (benchmarks/serving.py writes them; the chapter's figures and
# tables are in ncf_vs_mf.report.serving)
# --------------------------------------------------------------------------------------

def best_scoring(rows: Sequence[dict]) -> pd.DataFrame:
    """Fastest variant per (family, n, d, batch): "best of each" backend, with its name."""
    table = pd.DataFrame(list(rows))
    fastest = table.loc[table.groupby(["family", "n", "d", "batch"])["seconds_per_user"].idxmin()]
    return fastest.sort_values(["family", "batch", "d", "n"]).reset_index(drop=True)


def cost_ratio(best: pd.DataFrame, numerator: str = "mlp", denominator: str = "dot",
               batch: int = 1) -> pd.DataFrame:
    """Per d, the numerator's time over the denominator's at the largest n both were timed at."""
    sub = best[best["batch"] == batch]
    top = sub[sub["family"] == numerator].set_index(["d", "n"])["seconds_per_user"]
    bottom = sub[sub["family"] == denominator].set_index(["d", "n"])["seconds_per_user"]
    common = top.index.intersection(bottom.index)
    rows = []
    for d in sorted({d for d, _ in common}):
        n = max(n for dd, n in common if dd == d)
        rows.append({"d": d, "n": n, "ratio": top[(d, n)] / bottom[(d, n)]})
    return pd.DataFrame(rows)


def scoring_fits(best: pd.DataFrame, batch: int = 1, min_n: int = 10_000) -> dict[str, dict]:
    """Fitted t = c n^a d^b per family on the timings with n >= min_n (fixed overheads aside)."""
    sub = best[(best["batch"] == batch) & (best["n"] >= min_n)]
    return {family: {**fit_cost_model(g["n"], g["d"], g["seconds_per_user"]), "points": len(g)}
            for family, g in sub.groupby("family") if g["d"].nunique() > 1}


def latency_vs_n(curves: Sequence[dict], target: float) -> pd.DataFrame:
    """Per catalog, index and n: the fastest setting with recall >= target (NaN if none does)."""
    table = pd.DataFrame(list(curves))
    rows = []
    for (catalog, index, n), g in table.groupby(["catalog", "index", "n"]):
        reaching = g[g["recall"] >= target]
        best = reaching.loc[reaching["latency_ms"].idxmin()] if len(reaching) else None
        rows.append({"catalog": catalog, "index": index, "n": n,
                     "latency_ms": np.nan if best is None else best["latency_ms"],
                     "recall": np.nan if best is None else best["recall"],
                     "setting": np.nan if best is None else best["setting"]})
    return pd.DataFrame(rows)


def latency_slopes(table: pd.DataFrame, min_n: int = 10_000) -> dict[str, dict[str, float | None]]:
    """Exponent a of latency ~ n^a per catalog and index (None: fewer than two sizes reached)."""
    slopes: dict[str, dict[str, float | None]] = {}
    for (catalog, index), g in table[table["n"] >= min_n].groupby(["catalog", "index"]):
        g = g.dropna(subset=["latency_ms"])
        slopes.setdefault(catalog, {})[index] = (
            fit_power_law(g["n"], g["latency_ms"])[0] if g["n"].nunique() >= 2 else None)
    return slopes


def advice_table(best: pd.DataFrame, at_recall: pd.DataFrame, budgets_ms: Sequence[float],
                 index_d: int, rerank: int) -> pd.DataFrame:
    """What fits a latency budget for one request, per catalog size n and dimension d.

    Dot product: exact search (score all n, select 10) if it fits, else the fastest index at
    the recall target (its latency measured at ``index_d`` and scaled by d / index_d, since
    each distance costs O(d); marked ~). MLP: exact if it fits, else two-stage -- the index
    retrieves ``rerank`` candidates, the MLP re-scores them.
    """
    one = best[best["batch"] == 1].set_index(["family", "n", "d"])["seconds_per_user"] * 1e3
    select = best[(best["family"] == "select") & (best["batch"] == 1)].set_index("n")
    select = select["seconds_per_user"] * 1e3
    indexes = at_recall[at_recall["index"] != "exact"].dropna(subset=["latency_ms"])
    fastest_index = indexes.loc[indexes.groupby("n")["latency_ms"].idxmin()].set_index("n")
    rows = []
    for n in sorted(set(fastest_index.index) & set(select.index)):
        for d in sorted(best.loc[best["family"] == "dot", "d"].unique()):
            if ("dot", n, d) not in one or ("mlp", n, d) not in one:
                continue
            exact_dot = one[("dot", n, d)] + select[n]
            exact_mlp = one[("mlp", n, d)] + select[n]
            index_ms = fastest_index.loc[n, "latency_ms"] * d / index_d
            index_name = fastest_index.loc[n, "index"] + ("" if d == index_d else " ~")
            rerank_ms = one.get(("mlp-rerank", rerank, d), np.nan)
            row = {"n": n, "d": d}
            for budget in budgets_ms:
                row[f"dot, {budget:g} ms"] = ("exact" if exact_dot <= budget else
                                              index_name if index_ms <= budget else "-")
                row[f"MLP, {budget:g} ms"] = ("exact" if exact_mlp <= budget else
                                              "two-stage" if index_ms + rerank_ms <= budget else "-")
            rows.append(row)
    return pd.DataFrame(rows)
