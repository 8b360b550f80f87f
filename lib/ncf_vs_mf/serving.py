"""Serving cost of the similarities (Rendle et al. 2020, Section 5): scoring, retrieval, re-ranking.

Section 5 argues that a dot product can be *served* -- the top items of a catalog of millions
found in milliseconds -- while an MLP-learned similarity cannot. This module holds what the
chapter "Serving cost" and the ``serving`` experiment (:mod:`ncf_vs_mf.experiments.serving`,
``ncf-vs-mf reproduce serving``) need to check that:

* **scoring**: one user (or a batch) against n items with phi_dot (a matrix product), phi_MLP
  and phi_NeuMF (the modules of :mod:`ncf_vs_mf.models`, either called on every pair or with
  the item half of the first layer precomputed, :class:`CachedMLPScorer`), in item chunks so
  memory stays bounded;
* **catalogs**: synthetic item and user embeddings shaped like trained ones (decaying spectrum,
  log-normal norms) or isotropic Gaussians, and the statistics that tell them apart;
* **retrieval indexes** with one interface (:class:`RetrievalIndex`): exact search, faiss HNSW
  and IVF (each on inner products directly, or on the reduction of inner-product search to
  nearest-neighbour search by one extra coordinate) and ScaNN, each with one search-time knob
  that trades recall for latency (defined in :mod:`ncf_vs_mf.serving_index`, re-exported here);
* **measurement helpers**: recall@k against exact top-k, best-of timings, per-query latency,
  power-law fits of cost against n and d;
* **the MLP side**: exact MLP top-k by brute force, and a two-stage pipeline that retrieves
  candidates by dot product and re-ranks them with the MLP.

All arrays handed to faiss and ScaNN are float32. Thread counts are never left to the
libraries' defaults: call :func:`set_threads` first (latencies are timed on one thread).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .models import MLPSimilarity, NeuMFSimilarity
from .serving_index import (INDEX_KINDS, ExactIndex, HNSWIndex, IVFIndex, RetrievalIndex,
                            ScannIndex, as_float32, build_index, mips_to_nn_items,
                            mips_to_nn_queries)

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
# Summaries of the measurements (rows as ncf_vs_mf.report.serving.load_record reads them
# from results/serving/; the chapter's figures and tables are in ncf_vs_mf.report.serving)
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
