"""Ranking metrics: HR@K and NDCG@K under the NCF protocol, and over the full catalogue.

The sampled protocol reproduces the NCF evaluator (He et al. 2017, ``evaluate.py``) exactly.
That evaluator puts each user's 99 negatives and then the test item into a Python dict
(item -> score) and ranks its keys with ``heapq.nlargest``, which keeps dict order among
equal scores. Two consequences that we reproduce rather than "fix":

* ties: a test item ranks *below* every negative that ties with it and stands before it in
  the dict (all of them, normally, since it is inserted last);
* duplicates: a test item that also occurs among its own negatives (156 users of ML-1M) is
  ranked among distinct items only (99, not 100) and keeps the dict position of its first
  occurrence, so it ranks above tied negatives that come after that position. It is scored
  once: the dict keeps the *last* score written for an item (for the test item, the score of
  the last column), so an earlier copy never competes with it, whatever score a model gave it.

Scores must be finite: a NaN compares false with everything (a NaN test item would rank first,
HR@10 = 1), so NaN or infinite scores raise :class:`NonFiniteScores` naming the model and a user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .data import LeaveOneOutSplit


class NonFiniteScores(FloatingPointError):
    """A model produced NaN or infinite scores; the message names the model and a user."""


def check_finite(scores: np.ndarray, model: str, items: np.ndarray | None = None,
                 users: np.ndarray | None = None) -> None:
    """Raise :class:`NonFiniteScores` naming the first user (and item) with a bad score."""
    bad = ~np.isfinite(scores)
    if not bad.any():
        return
    row, column = (int(v[0]) for v in np.nonzero(bad))
    user = int(users[row]) if users is not None else row
    item = int(items[row, column]) if items is not None else column
    raise NonFiniteScores(f"{model}: score {scores[row, column]} for user {user}, item {item} "
                          f"is not finite ({int(bad.sum())} non-finite scores in all); the model "
                          "diverged or its parameters are corrupt")


@dataclass(frozen=True)
class RankingMetrics:
    """Per-user ranks and the averaged HR@K / NDCG@K."""

    ranks: np.ndarray  # 0-based rank of each user's test item
    k: int

    @property
    def hits(self) -> np.ndarray:
        return self.ranks < self.k

    @property
    def hr(self) -> float:
        return float(self.hits.mean())

    @property
    def ndcg(self) -> float:
        gains = np.where(self.hits, np.log(2.0) / np.log(self.ranks + 2.0), 0.0)
        return float(gains.mean())

    def as_dict(self) -> dict[str, float]:
        return {f"hr{self.k}": self.hr, f"ndcg{self.k}": self.ndcg}


def _first_occurrence(candidates: np.ndarray) -> np.ndarray:
    """Mask of entries that are the first occurrence of their item within the row."""
    order = np.argsort(candidates, axis=1, kind="stable")
    sorted_items = np.take_along_axis(candidates, order, axis=1)
    first_sorted = np.ones_like(candidates, dtype=bool)
    first_sorted[:, 1:] = sorted_items[:, 1:] != sorted_items[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


class SampledEvaluator:
    """HR@K / NDCG@K over each user's test item and sampled negatives, NCF's rules exactly.

    The candidate layout (negatives then test item), the de-duplication mask and the dict
    position of the test item are computed once per split, so evaluating a model every few
    epochs costs one scoring pass plus a vectorized comparison.
    """

    def __init__(self, split: LeaveOneOutSplit, k: int = 10):
        self.k = k
        self.users = np.arange(split.n_users, dtype=np.int32)
        self.candidates = np.ascontiguousarray(split.candidates(), dtype=np.int32)
        is_test = self.candidates == split.test_items[:, None]
        # dict entries: first occurrences of the other items (the test item is the one ranked)
        self.distinct = _first_occurrence(self.candidates) & ~is_test
        # dict position of the test item: its first occurrence in the row
        self.test_position = np.argmax(is_test, axis=1)
        columns = np.arange(self.candidates.shape[1])
        self._before_test = columns[None, :] < self.test_position[:, None]
        # the dict keeps an item's last score: column of each entry's last occurrence
        self._last = None
        if (self.distinct.sum(axis=1) + 1 < self.candidates.shape[1]).any():
            order = np.argsort(self.candidates, axis=1, kind="stable")
            items = np.take_along_axis(self.candidates, order, axis=1)
            last_sorted = np.ones_like(self.candidates, dtype=bool)
            last_sorted[:, :-1] = items[:, :-1] != items[:, 1:]
            # sorted copies of an item are adjacent: each one's group ends at the next 'last'
            width = items.shape[1]
            end = np.where(last_sorted, np.arange(width)[None, :], width)
            end = np.flip(np.minimum.accumulate(np.flip(end, axis=1), axis=1), axis=1)
            self._last = np.empty_like(order)
            np.put_along_axis(self._last, order, np.take_along_axis(order, end, axis=1), axis=1)

    def ranks(self, scores: np.ndarray, model: str = "model") -> np.ndarray:
        """0-based ranks of the test items given scores of ``self.candidates``.

        Each item is scored once, by its last column (the dict's last write wins), so the test
        item's score is that of the last column. Non-finite scores raise, naming ``model``.
        """
        if scores.shape != self.candidates.shape:
            raise ValueError(f"scores must have shape {self.candidates.shape} (users x "
                             f"candidates), got {scores.shape}")
        check_finite(scores, model, self.candidates, self.users)
        if self._last is not None:
            scores = np.take_along_axis(scores, self._last, axis=1)
        test_score = scores[:, -1:]
        above = (scores > test_score) | ((scores == test_score) & self._before_test)
        return np.count_nonzero(above & self.distinct, axis=1)

    def evaluate(self, scores: np.ndarray, model: str = "model") -> RankingMetrics:
        """Metrics for a (users x candidates) score matrix aligned with ``self.candidates``."""
        return RankingMetrics(self.ranks(scores, model), self.k)

    def evaluate_embeddings(self, user_factors: np.ndarray, item_factors: np.ndarray,
                            user_bias: np.ndarray | None = None,
                            item_bias: np.ndarray | None = None,
                            global_bias: float = 0.0,
                            model: str = "dot-product model") -> RankingMetrics:
        """Metrics of a dot-product model: b + b_u + b_i + <p_u, q_i>."""
        scores = score_candidates(user_factors, item_factors, self.candidates)
        if item_bias is not None:
            scores += item_bias[self.candidates]
        # user and global biases shift a whole row: they cannot change a rank, but we add
        # them anyway so that ties and float rounding are those of the full model score
        if user_bias is not None:
            scores += user_bias[:, None]
        return self.evaluate(scores + global_bias, model)


@numba.njit(parallel=True, cache=True, fastmath=True)
def score_candidates(user_factors: np.ndarray, item_factors: np.ndarray,
                     candidates: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """<p_u, q_i> for every user u and each of its candidate items (rows of ``candidates``)."""
    n_users, n_candidates = candidates.shape
    dim = user_factors.shape[1]
    out = np.empty((n_users, n_candidates), dtype=user_factors.dtype)
    for u in numba.prange(n_users):
        for c in range(n_candidates):
            item = candidates[u, c]
            acc = user_factors.dtype.type(0.0)
            for f in range(dim):
                acc += user_factors[u, f] * item_factors[item, f]
            out[u, c] = acc
    return out


def full_ranking_ranks(scores: np.ndarray, test_items: np.ndarray, train_indptr: np.ndarray,
                       train_items: np.ndarray, model: str = "model") -> np.ndarray:
    """0-based rank of each test item among all items the user has not trained on.

    ``scores`` is (users x items). Training items are excluded; ties count against the test
    item (the same pessimistic rule as the sampled protocol).
    """
    n_users = scores.shape[0]
    check_finite(scores, model)
    masked = scores.astype(np.float64, copy=True)
    rows = np.repeat(np.arange(n_users), np.diff(train_indptr))
    masked[rows, train_items] = -np.inf
    test_score = masked[np.arange(n_users), test_items][:, None]
    return np.count_nonzero(masked >= test_score, axis=1) - 1


def evaluate_full_ranking(split: LeaveOneOutSplit, user_factors: np.ndarray,
                          item_factors: np.ndarray, item_bias: np.ndarray | None = None,
                          k: int = 10, chunk: int = 2048) -> RankingMetrics:
    """HR@K / NDCG@K of a dot-product model ranking the test item against the whole catalogue.

    Users are scored in chunks so memory stays at ``chunk x n_items`` floats.
    """
    indptr, items = split.train_csr()
    ranks = np.empty(split.n_users, dtype=np.int64)
    for start in range(0, split.n_users, chunk):
        stop = min(start + chunk, split.n_users)
        scores = user_factors[start:stop] @ item_factors.T
        if item_bias is not None:
            scores = scores + item_bias[None, :]
        sub_ptr = indptr[start:stop + 1] - indptr[start]
        sub_items = items[indptr[start]:indptr[stop]]
        ranks[start:stop] = full_ranking_ranks(scores, split.test_items[start:stop],
                                               sub_ptr, sub_items)
    return RankingMetrics(ranks, k)
