"""The classic baselines of Table 1, fitted on a split's training pairs and scored for every item.

Every model here scores user u and item i as ``(A @ B)[u, i]`` with two fitted parts: user
factors and item factors (iALS, BPR-MF, PureSVD), the user's training row and an item-item
matrix (item-kNN, RP3beta, EASE^R, SLIM), or a column of ones and the training counts
(Popularity). The libraries do the fitting where one exists (``implicit`` for iALS and BPR,
scikit-learn's ElasticNet for SLIM, scipy for PureSVD and EASE^R); what is written here is the
closed forms and sparse products no library offers.

:func:`fit_baseline` is the one entry point: it checks every hyperparameter against its range
(naming the parameter) before fitting, and the :class:`Recommender` it returns raises
:class:`~ncf_vs_mf.evaluation.NonFiniteScores` when a score is NaN or infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import scipy.sparse as sp

from .data import LeaveOneOutSplit
from .evaluation import RankingMetrics, SampledEvaluator, check_finite


class BaselineError(ValueError):
    """A baseline cannot be fitted with these settings; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """A hyperparameter's type and its valid range (``low`` and ``high`` included unless open)."""

    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False
    help: str = ""

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for parameter ``name``, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                              np.floating)):
            return f"{name}={value!r}: need a number"
        if self.kind is int and float(value) != int(value):
            return f"{name}={value!r}: need an integer"
        bad_low = value <= self.low if self.low_open else value < self.low
        if not math.isfinite(float(value)) or bad_low or value > self.high:
            low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
            high = "" if math.isinf(self.high) else f" and <= {self.high:g}"
            return f"{name}={value!r}: need a finite number {low}{high}"
        return None


@dataclass(frozen=True)
class Recommender:
    """A fitted baseline: scores are ``user_part[users] @ item_part``; ``params`` as fitted."""

    name: str
    params: Mapping[str, Any]
    user_part: Any  # (n_users, r): ndarray or CSR matrix
    item_part: Any  # (r, n_items): ndarray or sparse matrix

    @property
    def n_items(self) -> int:
        return int(self.item_part.shape[1])

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """Dense float64 scores of every item for ``users`` (training items not masked)."""
        users = np.asarray(users, dtype=np.int64)
        scores = self.user_part[users] @ self.item_part
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        scores = scores.astype(np.float64, copy=False)
        check_finite(scores, self.name, users=users)
        return scores


@dataclass(frozen=True)
class BaselineSpec:
    """A baseline: its hyperparameters (ranges and defaults) and how it is fitted."""

    name: str
    params: Mapping[str, Param]
    defaults: Mapping[str, Any]
    fit: Callable[[sp.csr_matrix, dict[str, Any], int, int], tuple[Any, Any]]
    random: bool = False  # its fit depends on the seed
    summary: str = ""


def interactions(split: LeaveOneOutSplit) -> sp.csr_matrix:
    """The binary user x item training matrix X (float64 CSR; a repeated pair counts once)."""
    x = sp.csr_matrix((np.ones(split.n_train), (split.train_users, split.train_items)),
                      shape=(split.n_users, split.n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def keep_top_k(weights: np.ndarray, k: int) -> sp.csc_matrix:
    """The ``k`` largest entries of each column of a dense matrix (others dropped), as CSC.

    Ties at the k-th value are cut by ``np.argpartition``'s order; zeros are never kept.
    """
    n = weights.shape[0]
    if k >= n:
        return sp.csc_matrix(weights)
    rows = np.argpartition(-weights, k - 1, axis=0)[:k]
    values = np.take_along_axis(weights, rows, axis=0)
    cols = np.broadcast_to(np.arange(weights.shape[1]), rows.shape)
    kept = sp.csc_matrix((values.ravel(), (rows.ravel(), cols.ravel())), shape=weights.shape)
    kept.eliminate_zeros()
    return kept


# ----------------------------------------------------------------------------- the models


def fit_popularity(x: sp.csr_matrix, params: dict[str, Any], seed: int,
                   threads: int) -> tuple[Any, Any]:
    """Score = the item's number of training users, the same for every user."""
    counts = np.asarray(x.sum(axis=0), dtype=np.float64)  # (1, n_items)
    return np.ones((x.shape[0], 1)), counts


def cosine_similarity(x: sp.csr_matrix, shrink: float) -> np.ndarray:
    """Item-item cosine with shrinkage: <x_i, x_j> / (||x_i|| ||x_j|| + shrink), zero diagonal."""
    gram = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(gram))
    similarity = gram / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def fit_item_knn(x: sp.csr_matrix, params: dict[str, Any], seed: int,
                 threads: int) -> tuple[Any, Any]:
    """Score(u, j) = sum over the k items most similar to j of the user's row times similarity."""
    similarity = cosine_similarity(x, params["shrink"])
    return x, keep_top_k(similarity, params["neighbors"]).tocsr()


def fit_rp3beta(x: sp.csr_matrix, params: dict[str, Any], seed: int,
                threads: int) -> tuple[Any, Any]:
    """Three-step random walk item -> user -> item, each step's probability to the power
    alpha, divided by the popularity of the destination to the power beta; the k largest
    weights of each source item kept (Paudel et al. 2017, as Dacrema et al. run it)."""
    users_per_item = np.asarray(x.sum(axis=0)).ravel()
    items_per_user = np.asarray(x.sum(axis=1)).ravel()
    p_ui = sp.diags(1.0 / np.maximum(items_per_user, 1)) @ x  # user -> item
    p_iu = sp.diags(1.0 / np.maximum(users_per_item, 1)) @ x.T.tocsr()  # item -> user
    p_ui, p_iu = p_ui.power(params["alpha"]), p_iu.power(params["alpha"])
    walk = (p_iu @ p_ui).toarray()
    walk /= np.maximum(users_per_item, 1.0)[None, :] ** params["beta"]
    np.fill_diagonal(walk, 0.0)
    return x, keep_top_k(walk.T, params["neighbors"]).T.tocsr()


def ease_weights(x: sp.csr_matrix, reg: float) -> np.ndarray:
    """EASE^R's closed form (Steck 2019): B = I - P diagMat(1/diag(P)), P = (X^T X + reg I)^-1."""
    import scipy.linalg

    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += reg
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    weights = -p / np.diag(p)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def fit_ease(x: sp.csr_matrix, params: dict[str, Any], seed: int,
             threads: int) -> tuple[Any, Any]:
    """Score = X B with EASE^R's closed-form item-item weights (zero diagonal)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return x, ease_weights(x, params["reg"])


def slim_columns(gram: np.ndarray, targets: sp.csc_matrix, items: np.ndarray, alpha: float,
                 l1_ratio: float, max_iter: int) -> np.ndarray:
    """SLIM's ElasticNet for the given items: column j of X regressed, non-negatively, on all
    other columns (its own excluded), with scikit-learn's coordinate descent on the Gram
    matrix X^T X (the same solution as ``ElasticNet`` on X with column j zeroed, computed
    without touching X); returns the (n_items, len(items)) weights."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import enet_path

    gram = np.array(gram, order="C")  # a private, writeable copy (blocks may share a read-only one)
    shape_only = np.zeros(targets.shape)  # enet_path reads X's shape only (pages untouched)
    out = np.zeros((gram.shape[0], len(items)))
    for column, j in enumerate(items):
        target = targets[:, [j]].toarray().ravel()
        saved = gram[j].copy()
        xy = saved.copy()
        xy[j] = 0.0
        gram[j, :] = 0.0  # the zero diagonal: j may not predict itself
        gram[:, j] = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, coefs, _ = enet_path(shape_only, target, l1_ratio=l1_ratio, alphas=[alpha],
                                    precompute=gram, Xy=xy, check_input=False, positive=True,
                                    max_iter=max_iter, tol=1e-4)
        gram[j, :] = saved
        gram[:, j] = saved
        out[:, column] = coefs[:, 0]
    return out


def fit_slim(x: sp.csr_matrix, params: dict[str, Any], seed: int,
             threads: int) -> tuple[Any, Any]:
    """SLIM (Ning and Karypis 2011) with ElasticNet, as Dacrema et al.: one non-negative
    regression per item, zero diagonal, the k largest weights per item kept; items are split
    into blocks fitted in ``threads`` parallel processes."""
    from joblib import Parallel, delayed

    gram = (x.T @ x).toarray()
    targets = x.tocsc()
    blocks = np.array_split(np.arange(x.shape[1]), max(1, threads))
    parts = Parallel(n_jobs=max(1, threads), backend="loky" if threads > 1 else "sequential")(
        delayed(slim_columns)(gram, targets, block, params["alpha"], params["l1_ratio"],
                              params["max_iter"]) for block in blocks)
    weights = np.concatenate(parts, axis=1)
    return x, keep_top_k(weights, params["neighbors"]).tocsr()


def fit_pure_svd(x: sp.csr_matrix, params: dict[str, Any], seed: int,
                 threads: int) -> tuple[Any, Any]:
    """PureSVD (Cremonesi et al. 2010): X ~ U S V^T truncated to k; score = X V V^T."""
    from scipy.sparse.linalg import svds

    start = np.random.default_rng(0).standard_normal(min(x.shape))  # fixed: deterministic
    _, _, vt = svds(x, k=params["factors"], v0=start)
    return np.asarray(x @ vt.T), vt


def _implicit_user_items(x: sp.csr_matrix) -> sp.csr_matrix:
    return x.astype(np.float32)


def fit_ials(x: sp.csr_matrix, params: dict[str, Any], seed: int,
             threads: int) -> tuple[Any, Any]:
    """iALS (Hu et al. 2008) by ``implicit``: squared loss on every user-item pair, an
    observed pair weighted 1 + 1/a0 against 1 for an unobserved one (a0: Rendle et al.'s
    unobserved weight; ``implicit`` weighs an observed pair by its value, here that ratio),
    L2 ``reg`` on both factor tables."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS single-threaded
        model = AlternatingLeastSquares(
            factors=params["factors"], regularization=params["reg"],
            alpha=1.0 + 1.0 / params["unobserved_weight"], iterations=params["iterations"],
            random_state=seed, num_threads=threads, calculate_training_loss=False)
        model.fit(_implicit_user_items(x), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors).T


def fit_bpr(x: sp.csr_matrix, params: dict[str, Any], seed: int,
            threads: int) -> tuple[Any, Any]:
    """BPR-MF (Rendle et al. 2009) by ``implicit``: SGD on log sigmoid(s_ui - s_uj) for a
    training item i and a sampled unseen item j, an item bias included."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = BayesianPersonalizedRanking(
            factors=params["factors"], learning_rate=params["lr"],
            regularization=params["reg"], iterations=params["iterations"], random_state=seed,
            num_threads=threads)
        model.fit(_implicit_user_items(x), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors).T


_NEIGHBORS = Param(int, 1, help="weights kept per item")

BASELINES: dict[str, BaselineSpec] = {spec.name: spec for spec in (
    BaselineSpec("Popularity", {}, {}, fit_popularity,
                 summary="the number of training users of the item"),
    BaselineSpec("item-kNN", {"neighbors": _NEIGHBORS, "shrink": Param(float, 0)},
                 {"neighbors": 100, "shrink": 10.0}, fit_item_knn,
                 summary="cosine item-item similarity with shrinkage, k neighbours"),
    BaselineSpec("RP3beta", {"neighbors": _NEIGHBORS, "alpha": Param(float, 0, low_open=True),
                             "beta": Param(float, 0)},
                 {"neighbors": 100, "alpha": 1.0, "beta": 0.5}, fit_rp3beta,
                 summary="random walk item -> user -> item with a popularity penalty"),
    BaselineSpec("PureSVD", {"factors": Param(int, 1)}, {"factors": 50}, fit_pure_svd,
                 summary="truncated SVD of the interaction matrix"),
    BaselineSpec("EASE^R", {"reg": Param(float, 0, low_open=True)}, {"reg": 500.0}, fit_ease,
                 summary="closed-form item-item regression with zero diagonal"),
    BaselineSpec("SLIM", {"alpha": Param(float, 0, low_open=True),
                          "l1_ratio": Param(float, 0, 1), "neighbors": _NEIGHBORS,
                          "max_iter": Param(int, 1)},
                 {"alpha": 1e-3, "l1_ratio": 0.1, "neighbors": 200, "max_iter": 100}, fit_slim,
                 summary="sparse non-negative item-item regression (ElasticNet per item)"),
    BaselineSpec("iALS", {"factors": Param(int, 1), "reg": Param(float, 0),
                          "unobserved_weight": Param(float, 0, low_open=True),
                          "iterations": Param(int, 1)},
                 {"factors": 192, "reg": 10.0, "unobserved_weight": 0.3, "iterations": 12},
                 fit_ials, random=True,
                 summary="weighted squared loss over all pairs, alternating least squares"),
    BaselineSpec("BPR-MF", {"factors": Param(int, 1), "lr": Param(float, 0, low_open=True),
                            "reg": Param(float, 0), "iterations": Param(int, 1)},
                 {"factors": 64, "lr": 0.01, "reg": 0.01, "iterations": 100}, fit_bpr,
                 random=True, summary="pairwise logistic loss, SGD"),
)}


def check_params(name: str, params: Mapping[str, Any], n_items: int | None = None) -> list[str]:
    """What is wrong with ``params`` for baseline ``name``, each problem naming the parameter."""
    if name not in BASELINES:
        return [f"model={name!r}: unknown baseline; known: {', '.join(BASELINES)}"]
    spec = BASELINES[name]
    problems = [f"{name}: unknown parameter {key!r}; known: {', '.join(spec.params) or 'none'}"
                for key in params if key not in spec.params]
    for key, value in {**spec.defaults, **params}.items():
        if key in spec.params:
            problem = spec.params[key].problem(key, value)
            if problem:
                problems.append(f"{name} {problem}")
    factors = {**spec.defaults, **params}.get("factors")
    if name == "PureSVD" and n_items is not None and not problems and factors >= n_items:
        problems.append(f"PureSVD factors={factors}: need fewer than the {n_items} items")
    return problems


def fit_baseline(name: str, split: LeaveOneOutSplit, params: Mapping[str, Any], seed: int = 0,
                 threads: int = 1) -> Recommender:
    """Fit baseline ``name`` on the split's training pairs (parameters not given take their
    defaults); bad parameters raise :class:`BaselineError` before any fitting."""
    problems = check_params(name, params, split.n_items)
    if seed < 0:
        problems.append(f"seed={seed}: need a seed >= 0")
    if threads < 1:
        problems.append(f"threads={threads}: need >= 1")
    if problems:
        raise BaselineError("; ".join(problems))
    spec = BASELINES[name]
    chosen = {**spec.defaults, **params}
    chosen = {k: spec.params[k].kind(v) for k, v in chosen.items()}
    user_part, item_part = spec.fit(interactions(split), chosen, seed, threads)
    return Recommender(name, chosen, user_part, item_part)


def candidate_scores(recommender: Recommender, candidates: np.ndarray,
                     chunk: int = 1024) -> np.ndarray:
    """Scores of each user's candidate items (row u of ``candidates``), users in chunks."""
    out = np.empty(candidates.shape, dtype=np.float64)
    for start in range(0, candidates.shape[0], chunk):
        users = np.arange(start, min(start + chunk, candidates.shape[0]))
        out[users] = np.take_along_axis(recommender.score_all(users), candidates[users], axis=1)
    return out


@dataclass
class Evaluation:
    """A baseline's sampled metrics on a split and the seconds its fit and scoring took."""

    metrics: RankingMetrics
    fit_seconds: float
    score_seconds: float
    params: dict[str, Any] = field(default_factory=dict)


def fit_and_evaluate(name: str, split: LeaveOneOutSplit, params: Mapping[str, Any],
                     seed: int = 0, threads: int = 1) -> Evaluation:
    """Fit on the split's training pairs, rank its candidates with the NCF evaluator; timed."""
    import time

    start = time.perf_counter()
    recommender = fit_baseline(name, split, params, seed, threads)
    fitted = time.perf_counter()
    evaluator = SampledEvaluator(split)
    metrics = evaluator.evaluate(candidate_scores(recommender, evaluator.candidates), name)
    return Evaluation(metrics, fitted - start, time.perf_counter() - fitted,
                      dict(recommender.params))
