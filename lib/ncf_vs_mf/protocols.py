"""Evaluation protocols beyond NCF's: uniform sampled negatives, full ranking, corrected metrics.

Every protocol here reads one score matrix (users x items) of a model, built in blocks of
users by :func:`score_matrix`, and ranks each user's test item by the same pessimistic rule as
NCF's evaluator (an item that ties with the test item ranks above it):

* **NCF's protocol**: the 99 fixed negatives of ``.test.negative``, exactly as
  :class:`~ncf_vs_mf.evaluation.SampledEvaluator` ranks them (its dict and tie rules);
* **uniform sampled**: m negatives drawn without replacement from the items the user has not
  trained on (the test item is not in the pool), for several independent, seeded draws;
* **full ranking**: the test item against every item the user has not trained on;
* **corrected**: Krichene and Rendle's (KDD 2020) bias-variance correction of a sampled
  metric, which replaces the metric of sampled rank r by a value x_r fitted so that the
  expected corrected metric matches the full metric over full ranks (:func:`bv_correction`).

The rank of the test item in a sample depends only on which of the user's "above" items (the
unseen items scoring at least as high) are drawn, so a draw is a random order of the user's
pool: its first m items are the sample of size m, and one sort gives every m of the draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import special

from .data import LeaveOneOutSplit
from .evaluation import RankingMetrics, SampledEvaluator, check_finite

Scorer = Callable[[np.ndarray], np.ndarray]  # users -> (len(users), n_items) scores
SAMPLE_SIZES = (10, 50, 100, 500, 1000)
DRAWS = 5
GAMMAS = {"bv": 0.1}  # corrections reported: Krichene and Rendle's bias-variance trade-off


def score_matrix(score: Scorer, n_users: int, n_items: int, block: int = 1024,
                 model: str = "model") -> np.ndarray:
    """Scores of every user for every item, computed ``block`` users at a time (finite: checked)."""
    out = None
    for start in range(0, n_users, block):
        users = np.arange(start, min(start + block, n_users))
        scores = np.asarray(score(users))
        if scores.shape != (len(users), n_items):
            raise ValueError(f"{model}: scores of users {start}..{users[-1]} have shape "
                             f"{scores.shape}, expected {(len(users), n_items)}")
        check_finite(scores, model, users=users)
        if out is None:
            out = np.empty((n_users, n_items), dtype=scores.dtype)
        out[start:start + len(users)] = scores
    return out


def embedding_scorer(user: np.ndarray, item: np.ndarray, item_bias: np.ndarray | None = None
                     ) -> Scorer:
    """Scorer of a dot-product model <p_u, q_i> (+ b_i): one matrix product per block."""
    def score(users: np.ndarray) -> np.ndarray:
        scores = user[users] @ item.T
        return scores if item_bias is None else scores + item_bias[None, :]
    return score


def unseen_mask(split: LeaveOneOutSplit, start: int, stop: int) -> np.ndarray:
    """(stop - start, n_items) mask of the items users start..stop-1 have not trained on."""
    indptr, items = split.train_csr()
    mask = np.ones((stop - start, split.n_items), dtype=bool)
    rows = np.repeat(np.arange(stop - start), np.diff(indptr[start:stop + 1]))
    mask[rows, items[indptr[start]:indptr[stop]]] = False
    return mask


@dataclass(frozen=True)
class UserRanks:
    """Per user: the full rank of the test item, its pool size and the items above it."""

    full: np.ndarray  # unseen items (the test item excluded) scoring >= the test item
    pool: np.ndarray  # unseen items, the test item excluded: what negatives are drawn from
    ties: np.ndarray  # unseen items scoring exactly the test item's score


def _above_and_pool(scores: np.ndarray, test_items: np.ndarray, unseen: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.arange(scores.shape[0])
    pool = unseen.copy()
    pool[rows, test_items] = False
    test_score = scores[rows, test_items][:, None]
    return (scores >= test_score) & pool, pool, (scores == test_score) & pool


def full_ranks(scores: np.ndarray, split: LeaveOneOutSplit, block: int = 1024) -> UserRanks:
    """Full-ranking ranks: each test item against every item its user has not trained on.

    Counted without a mask: the items scoring at least the test item's score, less those the
    user trained on (read from the training CSR) and the test item itself; one comparison pass
    over the score matrix."""
    n_users, n_items = scores.shape
    indptr, items = split.train_csr()
    users = np.arange(n_users)
    test = split.test_items
    test_score = scores[users, test]
    at_least, equal = (np.empty(n_users, dtype=np.int64) for _ in range(2))
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        level = test_score[start:stop, None]
        at_least[start:stop] = np.count_nonzero(scores[start:stop] >= level, axis=1)
        equal[start:stop] = np.count_nonzero(scores[start:stop] == level, axis=1)
    owner = np.repeat(users, np.diff(indptr))
    trained = scores[owner, items]

    def per_user(flags: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=flags, minlength=n_users).astype(np.int64)

    # the test item counts in at_least and equal (it ties with itself) unless it was trained on
    itself = 1 - per_user(items == test[owner])
    full = at_least - per_user(trained >= test_score[owner]) - itself
    ties = equal - per_user(trained == test_score[owner]) - itself
    pool = n_items - np.diff(indptr).astype(np.int64) - itself
    return UserRanks(full, pool, ties)


def full_ranking_metrics(score: Scorer, split: LeaveOneOutSplit, k: int = 10,
                         model: str = "model") -> dict[str, float]:
    """HR@k and NDCG@k under full ranking of a model given by its scorer: the two columns any
    experiment's run can add to its row (``hr10_full``, ``ndcg10_full``)."""
    scores = score_matrix(score, split.n_users, split.n_items, model=model)
    metrics = RankingMetrics(full_ranks(scores, split).full, k)
    return {f"hr{k}_full": metrics.hr, f"ndcg{k}_full": metrics.ndcg}


def sampled_ranks(scores: np.ndarray, split: LeaveOneOutSplit, sample_sizes=SAMPLE_SIZES,
                  draws: int = DRAWS, seed: int = 0, block: int = 1024) -> np.ndarray:
    """(draws, len(sample_sizes), users) ranks among m uniform negatives from the unseen items.

    Draw ``d`` orders each user's pool at random (generator seeded with ``(seed, d)``); its
    first m items are the m negatives, so within one draw the samples are nested in m. Raises
    if a user has fewer unseen items than the largest m.
    """
    sizes = np.asarray(sample_sizes, dtype=np.int64)
    if sizes.size == 0 or sizes.min() < 1:
        raise ValueError(f"sample_sizes {list(sample_sizes)}: need sizes m >= 1")
    if draws < 1:
        raise ValueError(f"draws {draws}: need at least one draw")
    out = np.empty((draws, len(sizes), split.n_users), dtype=np.int64)
    generators = [np.random.default_rng([seed, d]) for d in range(draws)]
    for start in range(0, split.n_users, block):
        stop = min(start + block, split.n_users)
        above, pool, _ = _above_and_pool(scores[start:stop], split.test_items[start:stop],
                                         unseen_mask(split, start, stop))
        short = np.flatnonzero(pool.sum(axis=1) < sizes.max())
        if short.size:
            raise ValueError(f"sample_sizes: user {start + int(short[0])} has only "
                             f"{int(pool[short[0]].sum())} unseen items, fewer than m = "
                             f"{int(sizes.max())}")
        for d, rng in enumerate(generators):
            keys = np.where(pool, rng.random(pool.shape), 2.0)  # pool first, in random order
            order = np.argsort(keys, axis=1, kind="stable")
            drawn_above = np.cumsum(np.take_along_axis(above, order, axis=1), axis=1)
            out[d, :, start:stop] = drawn_above[:, sizes - 1].T
    return out


def ncf_ranks(scores: np.ndarray, evaluator: SampledEvaluator, model: str = "model") -> np.ndarray:
    """Ranks under NCF's protocol (its 99 fixed negatives and rules), from the score matrix."""
    return evaluator.ranks(np.take_along_axis(scores, evaluator.candidates.astype(np.int64),
                                              axis=1), model)


# ----------------------------------------------------------------------------- correction


def metric_at_rank(ranks: np.ndarray, metric: str, k: int = 10) -> np.ndarray:
    """HR@k ("hr") or NDCG@k ("ndcg") of a test item at 0-based rank ``ranks``."""
    ranks = np.asarray(ranks)
    hit = ranks < k
    if metric == "hr":
        return hit.astype(np.float64)
    if metric == "ndcg":
        return np.where(hit, np.log(2.0) / np.log(ranks + 2.0), 0.0)
    raise ValueError(f"metric {metric!r}: expected 'hr' or 'ndcg'")


def _log_choose(n, k):
    """log of the binomial coefficient C(n, k) (valid where 0 <= k <= n)."""
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


@lru_cache(maxsize=64)
def rank_transition(pool: int, m: int) -> np.ndarray:
    """A[R, r] = P(sampled rank r | full rank R): hypergeometric, m draws from ``pool`` items
    of which R score above the test item (R = 0..pool, r = 0..m)."""
    if not 1 <= m <= pool:
        raise ValueError(f"m = {m}: need 1 <= m <= pool size {pool}")
    full = np.arange(pool + 1, dtype=np.float64)[:, None]
    sampled = np.arange(m + 1, dtype=np.float64)[None, :]
    possible = (sampled <= full) & (m - sampled <= pool - full)
    with np.errstate(invalid="ignore"):
        log_pmf = (_log_choose(full, sampled) + _log_choose(pool - full, m - sampled)
                   - _log_choose(float(pool), float(m)))
    matrix = np.where(possible, np.exp(np.where(possible, log_pmf, 0.0)), 0.0)
    matrix.setflags(write=False)
    return matrix


@lru_cache(maxsize=256)
def bv_correction(pool: int, m: int, metric: str = "hr", k: int = 10,
                  gamma: float = 0.0) -> np.ndarray:
    """Corrected metric value x_r for each sampled rank r = 0..m (Krichene and Rendle 2020).

    x minimizes, under a uniform prior over the full rank R = 0..pool, the expected squared
    bias plus gamma times the variance of the corrected metric:
    sum_R [(E[x_r | R] - M(R))^2 + gamma Var[x_r | R]], whose solution is
    x = ((1 - gamma) A^T A + gamma diag(c))^-1 A^T b with A = ``rank_transition``, b_R = M(R)
    and c_r = sum_R A[R, r]. gamma = 0 is the minimal-bias (CLS) correction, solved by least
    squares.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma {gamma}: need 0 <= gamma <= 1")
    a = rank_transition(pool, m)
    b = metric_at_rank(np.arange(pool + 1), metric, k)
    if gamma == 0.0:
        x = np.linalg.lstsq(a, b, rcond=None)[0]
    else:
        lhs = (1.0 - gamma) * a.T @ a + gamma * np.diag(a.sum(axis=0))
        x = np.linalg.solve(lhs, a.T @ b)
    x.setflags(write=False)
    return x


def corrected_metric(ranks: np.ndarray, correction: np.ndarray) -> float:
    """Mean corrected metric of users at sampled ranks ``ranks`` (each within 0..m)."""
    return float(np.mean(correction[np.asarray(ranks)]))


# ----------------------------------------------------------------------------- every protocol


def _metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    metrics = RankingMetrics(np.asarray(ranks), k)
    return {"hr10": metrics.hr, "ndcg10": metrics.ndcg} if k == 10 else metrics.as_dict()


def _corrected(ranks: np.ndarray, pool: int, m: int, k: int) -> list[dict]:
    return [{"estimator": name, "hr10": corrected_metric(ranks, bv_correction(pool, m, "hr", k, g)),
             "ndcg10": corrected_metric(ranks, bv_correction(pool, m, "ndcg", k, g))}
            for name, g in GAMMAS.items()]


def correction_pool(users: UserRanks) -> int:
    """The pool size N the corrections assume: that of the average user, rounded."""
    return int(round(float(users.pool.mean())))


def protocol_rows(scores: np.ndarray, split: LeaveOneOutSplit, sample_sizes=SAMPLE_SIZES,
                  draws: int = DRAWS, seed: int = 0, k: int = 10, model: str = "model",
                  evaluator: SampledEvaluator | None = None) -> list[dict]:
    """One row per protocol, estimator, m and draw: HR@10 and NDCG@10 of one score matrix.

    ``protocol`` is "ncf" (m = 99 fixed negatives), "uniform" (m sampled, draws 0..), or
    "full" (m = 0: every unseen item); ``estimator`` is "sampled" (the plain metric), "cls"
    or "bv" (corrected, with the pool size of the average user) or "exact" (full ranking).
    """
    check_finite(scores, model)
    evaluator = evaluator or SampledEvaluator(split, k)
    users = full_ranks(scores, split)
    pool = correction_pool(users)
    rows = [{"protocol": "full", "estimator": "exact", "m": 0, "draw": 0,
             **_metrics(users.full, k)}]
    ncf = ncf_ranks(scores, evaluator, model)
    m_ncf = split.test_negatives.shape[1]
    rows.append({"protocol": "ncf", "estimator": "sampled", "m": m_ncf, "draw": 0,
                 **_metrics(ncf, k)})
    rows += [{"protocol": "ncf", "m": m_ncf, "draw": 0, **c} for c in _corrected(ncf, pool, m_ncf, k)]
    sampled = sampled_ranks(scores, split, sample_sizes, draws, seed)
    for d in range(draws):
        for j, m in enumerate(sample_sizes):
            ranks = sampled[d, j]
            rows.append({"protocol": "uniform", "estimator": "sampled", "m": int(m), "draw": d,
                         **_metrics(ranks, k)})
            rows += [{"protocol": "uniform", "m": int(m), "draw": d, **c}
                     for c in _corrected(ranks, pool, int(m), k)]
    return rows
