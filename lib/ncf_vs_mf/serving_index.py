"""Retrieval indexes for the serving-cost experiments (Section 5), re-exported by
:mod:`ncf_vs_mf.serving`: exact search, faiss HNSW and IVF (on inner products directly, or on
the reduction of inner-product search to nearest-neighbour search by one extra coordinate) and
ScaNN behind one interface (:class:`RetrievalIndex`), each with one search-time knob that
trades recall for latency. Every array handed to faiss and ScaNN is float32."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from torch import Tensor


def as_float32(x: np.ndarray | Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy copy (or view) of x: what faiss and ScaNN accept."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


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
