"""The NCF evaluator: hand-computed cases, its tie and duplicate rules, and a per-user oracle."""

import heapq
import math

import numpy as np
import pytest

from ncf_vs_mf.data import LeaveOneOutSplit, load_ncf, synthetic_split
from ncf_vs_mf.evaluation import (SampledEvaluator, evaluate_full_ranking, full_ranking_ranks,
                                  score_candidates)


def toy_split(test_items, negatives):
    negatives = np.asarray(negatives, dtype=np.int32)
    n_users = negatives.shape[0]
    return LeaveOneOutSplit("toy", n_users, 50, np.zeros(1, np.int32), np.zeros(1, np.int32),
                            np.zeros(1, np.int64), np.asarray(test_items, np.int32), negatives)


def ncf_loop(candidates, scores, k=10):
    """He et al.'s evaluate.py for one user, transcribed: dict of item -> score, heapq.nlargest."""
    item_score = {}
    for item, score in zip(candidates, scores):
        item_score[int(item)] = float(score)
    test = int(candidates[-1])
    ranklist = heapq.nlargest(k, item_score, key=item_score.get)
    if test not in ranklist:
        return 0.0, 0.0
    r = ranklist.index(test)
    return 1.0, math.log(2) / math.log(r + 2)


def test_hand_computed_ranks():
    split = toy_split([7, 8], [[1, 2, 3], [4, 5, 6]])
    ev = SampledEvaluator(split, k=2)
    # user 0: test scores 0.5, one negative above -> rank 1; user 1: three above -> rank 3
    scores = np.array([[0.9, 0.1, 0.2, 0.5], [0.9, 0.8, 0.7, 0.1]])
    metrics = ev.evaluate(scores)
    assert metrics.ranks.tolist() == [1, 3]
    assert metrics.hr == 0.5
    assert metrics.ndcg == pytest.approx((math.log(2) / math.log(3)) / 2)


def test_tied_test_item_ranks_below_ties():
    ev = SampledEvaluator(toy_split([9], [[1, 2, 3, 4]]))
    assert ev.ranks(np.array([[0.3, 0.5, 0.5, 0.1, 0.5]])).tolist() == [2]


def test_test_item_among_its_negatives_keeps_its_first_position():
    # item 9 is the test item and also the second negative: distinct items are 1, 9, 3, 4;
    # ties with items after its first position do not rank above it
    ev = SampledEvaluator(toy_split([9], [[1, 9, 3, 4]]))
    assert ev.ranks(np.array([[0.5, 0.5, 0.5, 0.5, 0.5]])).tolist() == [1]
    assert ev.ranks(np.array([[0.1, 0.5, 0.9, 0.9, 0.5]])).tolist() == [2]


def test_all_ties_on_ml1m_gives_published_value(ncf_data_dir):
    ev = SampledEvaluator(load_ncf("ml-1m", ncf_data_dir))
    metrics = ev.evaluate(np.zeros(ev.candidates.shape))
    assert round(metrics.hr, 4) == 0.0028


def test_agrees_with_ncf_per_user_loop_on_random_and_tied_scores():
    split = synthetic_split(n_users=300, n_items=200, mean_interactions=20, n_negatives=40, seed=2)
    negatives = split.test_negatives.copy()
    negatives[::7, 3] = split.test_items[::7]  # plant duplicates of the test item
    negatives[::5, 8] = negatives[::5, 9]  # and duplicated negatives
    split = LeaveOneOutSplit(split.name, split.n_users, split.n_items, split.train_users,
                             split.train_items, split.train_timestamps, split.test_items, negatives)
    ev = SampledEvaluator(split)
    rng = np.random.default_rng(0)
    # a model scores items, so duplicates of an item share a score; integer scores force ties
    for per_item in (rng.normal(size=(split.n_users, split.n_items)),
                     rng.integers(0, 4, size=(split.n_users, split.n_items)).astype(float)):
        scores = np.take_along_axis(per_item, ev.candidates.astype(np.int64), axis=1)
        metrics = ev.evaluate(scores)
        expected = np.array([ncf_loop(ev.candidates[u], scores[u]) for u in range(split.n_users)])
        assert metrics.hits.astype(float).tolist() == expected[:, 0].tolist()
        assert metrics.ndcg == pytest.approx(expected[:, 1].mean())


def test_score_candidates_is_a_batched_dot_product():
    rng = np.random.default_rng(1)
    P, Q = rng.normal(size=(5, 7)), rng.normal(size=(9, 7))
    candidates = rng.integers(0, 9, size=(5, 4)).astype(np.int32)
    expected = np.einsum("uf,ucf->uc", P, Q[candidates])
    np.testing.assert_allclose(score_candidates(P, Q, candidates), expected, rtol=1e-12)


def test_full_ranking_excludes_training_items_and_counts_ties_against():
    scores = np.array([[0.9, 0.8, 0.5, 0.5, 0.1]])
    # item 0 is a training item: excluded; item 3 ties with the test item 2 -> rank 2
    ranks = full_ranking_ranks(scores, np.array([2]), np.array([0, 1]), np.array([0]))
    assert ranks.tolist() == [2]


def test_full_ranking_matches_brute_force():
    split = synthetic_split(n_users=80, n_items=200, seed=5)
    rng = np.random.default_rng(3)
    P, Q = rng.normal(size=(80, 6)), rng.normal(size=(200, 6))
    metrics = evaluate_full_ranking(split, P, Q, chunk=17)
    for u in range(80):
        s = P[u] @ Q.T
        trained = set(split.train_items[split.train_users == u].tolist())
        test = split.test_items[u]
        rank = sum(1 for i in range(200) if i != test and i not in trained and s[i] >= s[test])
        assert metrics.ranks[u] == rank


def test_nan_or_infinite_scores_raise_naming_the_model_and_a_user():
    from ncf_vs_mf.evaluation import NonFiniteScores

    ev = SampledEvaluator(toy_split([7, 8], [[1, 2, 3], [4, 5, 6]]))
    with pytest.raises(NonFiniteScores, match="MF d=8: score nan for user 0, item 1"):
        ev.evaluate(np.full((2, 4), np.nan), model="MF d=8")
    scores = np.zeros((2, 4))
    scores[1, -1] = np.nan  # only user 1's test item: it used to rank first (HR@10 = 1)
    with pytest.raises(NonFiniteScores, match="user 1, item 8"):
        ev.evaluate(scores)
    scores[1, -1] = np.inf
    with pytest.raises(NonFiniteScores, match="score inf"):
        ev.evaluate(scores)


def test_full_ranking_rejects_nan_scores():
    from ncf_vs_mf.evaluation import NonFiniteScores

    scores = np.array([[0.5, np.nan, 0.1]])
    with pytest.raises(NonFiniteScores, match="user 0, item 1"):
        full_ranking_ranks(scores, np.array([1]), np.array([0, 0]), np.array([], np.int64))


def test_a_duplicated_test_item_is_scored_once_by_its_last_score():
    # item 9 is the test item and the second negative; the model scores the two copies
    # differently: NCF's dict keeps the last score (0.2), the first copy (0.9) never competes
    ev = SampledEvaluator(toy_split([9], [[1, 9, 3, 4]]))
    scores = np.array([[0.5, 0.9, 0.1, 0.1, 0.2]])
    assert ev.ranks(scores).tolist() == [1]
    assert ncf_loop(ev.candidates[0], scores[0], k=2) == (1.0, math.log(2) / math.log(3))


def test_duplicates_follow_the_dict_on_random_scores():
    rng = np.random.default_rng(3)
    negatives, tests = rng.integers(0, 12, size=(200, 8)), rng.integers(0, 12, size=200)
    ev = SampledEvaluator(toy_split(tests, negatives), k=3)
    for _ in range(10):
        scores = rng.integers(0, 4, size=ev.candidates.shape).astype(float)
        expected = [ncf_loop(ev.candidates[u], scores[u], k=3) for u in range(200)]
        metrics = ev.evaluate(scores)
        assert metrics.hits.astype(float).tolist() == [hit for hit, _ in expected]
