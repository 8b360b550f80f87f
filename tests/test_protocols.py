"""The protocols beyond NCF's: hand-computed ranks on a two-user split, full ranking against the
evaluator's independent implementation, uniform samples that never touch training items,
hypergeometric transitions against scipy, and the corrected estimator on a case solved by hand."""

import numpy as np
import pytest
from scipy import stats

from ncf_vs_mf import data, evaluation, protocols


def _split(train_users, train_items, test_items, negatives, n_items):
    return data.LeaveOneOutSplit(
        name="hand", n_users=len(test_items), n_items=n_items,
        train_users=np.asarray(train_users, np.int32), train_items=np.asarray(train_items, np.int32),
        train_timestamps=np.zeros(len(train_users), np.int64),
        test_items=np.asarray(test_items, np.int32), test_negatives=np.asarray(negatives, np.int32))


# user 0 trained on items 0, 1; test item 2; NCF negatives 3, 4
# user 1 trained on item 3; test item 0; NCF negatives 1, 2
HAND = _split([0, 0, 1], [0, 1, 3], [2, 0], [[3, 4], [1, 2]], n_items=6)
HAND_SCORES = np.array([[9.0, 8.0, 5.0, 6.0, 5.0, 1.0],   # above item 2: item 3, and item 4 (tie)
                        [4.0, 1.0, 2.0, 9.0, 3.0, 0.0]])  # item 3 (9) is a training item


def test_full_ranks_by_hand():
    ranks = protocols.full_ranks(HAND_SCORES, HAND)
    # user 0: unseen items 2..5, pool 3, 4, 5; items 3 (6 > 5) and 4 (tie) rank above the test item
    # user 1: unseen 0, 1, 2, 4, 5; the training item 3 does not count, so the test item is first
    assert ranks.full.tolist() == [2, 0]
    assert ranks.pool.tolist() == [3, 4]
    assert ranks.ties.tolist() == [1, 0]


def test_ncf_ranks_by_hand_follow_the_evaluator_rules():
    evaluator = evaluation.SampledEvaluator(HAND)
    # user 0: candidates 3, 4, 2: item 3 scores higher, item 4 ties and comes first -> rank 2
    # user 1: candidates 1, 2, 0: the test item scores highest -> rank 0
    assert protocols.ncf_ranks(HAND_SCORES, evaluator).tolist() == [2, 0]


def test_uniform_samples_of_the_whole_pool_give_the_full_rank():
    sampled = protocols.sampled_ranks(HAND_SCORES, HAND, sample_sizes=(1, 3), draws=4, seed=7)
    assert sampled.shape == (4, 2, 2)
    assert sampled[:, 1, 0].tolist() == [2, 2, 2, 2]  # m = pool size of user 0: its full rank
    assert set(sampled[:, 0, 0].tolist()) <= {0, 1}
    assert sampled[:, :, 1].max() == 0  # user 1's training item 3 is never drawn


def test_one_negative_is_drawn_uniformly_without_training_items():
    # user 0: pool {3, 4, 5}, two of them score >= the test item: rank 1 with probability 2/3
    sampled = protocols.sampled_ranks(HAND_SCORES[:1], _split([0, 0], [0, 1], [2], [[3, 4]], 6),
                                      sample_sizes=(1,), draws=600, seed=0)
    assert abs(sampled.mean() - 2 / 3) < 0.06


def test_draws_are_reproducible_and_differ_between_seeds():
    rng = np.random.default_rng(0)
    split = data.synthetic_split(n_users=50, n_items=160, mean_interactions=20, n_negatives=20, seed=0)
    scores = rng.normal(size=(split.n_users, split.n_items))
    a = protocols.sampled_ranks(scores, split, (5, 20), draws=3, seed=1)
    assert np.array_equal(a, protocols.sampled_ranks(scores, split, (5, 20), draws=3, seed=1,
                                                     block=7))
    assert not np.array_equal(a, protocols.sampled_ranks(scores, split, (5, 20), draws=3, seed=2))
    assert (a[:, 0] <= a[:, 1]).all()  # nested samples: more negatives, never a better rank


def test_a_sample_larger_than_a_users_pool_is_refused():
    with pytest.raises(ValueError, match="sample_sizes: user 0 has only 3 unseen items"):
        protocols.sampled_ranks(HAND_SCORES, HAND, sample_sizes=(4,), draws=1)


def test_full_ranks_agree_with_the_evaluators_full_ranking():
    rng = np.random.default_rng(3)
    split = data.synthetic_split(n_users=120, n_items=90, mean_interactions=20, n_negatives=20, seed=1)
    scores = np.round(rng.normal(size=(split.n_users, split.n_items)), 1)  # many ties
    indptr, items = split.train_csr()
    reference = evaluation.full_ranking_ranks(scores, split.test_items, indptr, items)
    ranks = protocols.full_ranks(scores, split, block=16)
    assert np.array_equal(ranks.full, reference)
    # pool and ties against a mask of the unseen items, built directly
    unseen = protocols.unseen_mask(split, 0, split.n_users)
    unseen[np.arange(split.n_users), split.test_items] = False
    test_score = scores[np.arange(split.n_users), split.test_items][:, None]
    assert np.array_equal(ranks.pool, unseen.sum(axis=1))
    assert np.array_equal(ranks.ties, ((scores == test_score) & unseen).sum(axis=1))


def test_embedding_scores_in_blocks_match_evaluate_full_ranking():
    rng = np.random.default_rng(4)
    split = data.synthetic_split(n_users=70, n_items=60, mean_interactions=10, n_negatives=20, seed=2)
    user, item, bias = rng.normal(size=(70, 5)), rng.normal(size=(60, 5)), rng.normal(size=60)
    scores = protocols.score_matrix(protocols.embedding_scorer(user, item, bias), 70, 60, block=9)
    assert np.allclose(scores, user @ item.T + bias)
    expected = evaluation.evaluate_full_ranking(split, user, item, bias).ranks
    assert np.array_equal(protocols.full_ranks(scores, split).full, expected)


def test_full_ranking_metrics_of_a_scorer_by_hand():
    metrics = protocols.full_ranking_metrics(lambda users: HAND_SCORES[users], HAND, k=1)
    # user 0 at full rank 2 (a miss at 1), user 1 at rank 0 (a hit, gain 1)
    assert metrics == {"hr1_full": 0.5, "ndcg1_full": 0.5}


def test_non_finite_scores_raise_naming_the_model_and_user():
    def score(users):
        out = np.zeros((len(users), 6))
        out[users == 1, 2] = np.nan
        return out

    with pytest.raises(evaluation.NonFiniteScores, match="toy: score nan for user 1, item 2"):
        protocols.score_matrix(score, 2, 6, block=1, model="toy")
    with pytest.raises(ValueError, match="expected \\(2, 6\\)"):
        protocols.score_matrix(lambda users: np.zeros((len(users), 5)), 2, 6)


def test_rank_transition_is_the_hypergeometric_distribution():
    matrix = protocols.rank_transition(50, 7)
    expected = stats.hypergeom.pmf(np.arange(8)[None, :], 50, np.arange(51)[:, None], 7)
    assert np.allclose(matrix, expected, atol=1e-12)
    assert np.allclose(matrix.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="m = 8: need 1 <= m <= pool size 7"):
        protocols.rank_transition(7, 8)


def test_corrections_solved_by_hand():
    # pool of 2 negatives, 1 drawn, HR@1. Full ranks R = 0, 1, 2 give sampled rank 0 with
    # probability 1, 1/2, 0; the target is b = (1, 0, 0).
    # CLS: minimize (x0 - 1)^2 + ((x0 + x1)/2)^2 + x1^2  ->  x = (5/6, -1/6)
    assert np.allclose(protocols.bv_correction(2, 1, "hr", k=1, gamma=0.0), [5 / 6, -1 / 6])
    # gamma = 1 (variance only): x_r = sum_R A[R, r] b_R / sum_R A[R, r]  ->  (2/3, 0)
    assert np.allclose(protocols.bv_correction(2, 1, "hr", k=1, gamma=1.0), [2 / 3, 0.0])


def test_without_sampling_the_correction_is_the_metric_itself():
    for gamma in (0.0, 0.1, 1.0):
        x = protocols.bv_correction(30, 30, "ndcg", k=10, gamma=gamma)
        assert np.allclose(x, protocols.metric_at_rank(np.arange(31), "ndcg"))
    with pytest.raises(ValueError, match="gamma 2"):
        protocols.bv_correction(30, 5, gamma=2)
    with pytest.raises(ValueError, match="metric 'auc'"):
        protocols.metric_at_rank(np.arange(3), "auc")


def test_the_correction_is_nearly_unbiased_on_average_over_full_ranks():
    # E[x_r | R] close to HR@10(R) averaged over R (the bias BV trades against variance)
    pool, m = 400, 50
    x = protocols.bv_correction(pool, m, "hr", gamma=0.1)
    expected = protocols.rank_transition(pool, m) @ x
    truth = protocols.metric_at_rank(np.arange(pool + 1), "hr")
    naive = protocols.rank_transition(pool, m) @ protocols.metric_at_rank(np.arange(m + 1), "hr")
    assert np.abs(expected - truth).mean() < 0.5 * np.abs(naive - truth).mean()


def test_protocol_rows_cover_every_protocol_and_repeat_the_evaluators():
    rng = np.random.default_rng(5)
    split = data.synthetic_split(n_users=80, n_items=200, mean_interactions=20, n_negatives=30, seed=3)
    scores = rng.normal(size=(split.n_users, split.n_items))
    rows = protocols.protocol_rows(scores, split, sample_sizes=(10, 50), draws=2, seed=0)
    keys = [(r["protocol"], r["estimator"], r["m"], r["draw"]) for r in rows]
    m_ncf = split.test_negatives.shape[1]
    assert len(keys) == len(set(keys)) == 1 + 2 + 2 * 2 * 2
    by_key = dict(zip(keys, rows))
    ncf = evaluation.SampledEvaluator(split).evaluate(
        np.take_along_axis(scores, split.candidates().astype(np.int64), axis=1))
    assert by_key[("ncf", "sampled", m_ncf, 0)]["hr10"] == ncf.hr
    indptr, items = split.train_csr()
    full = evaluation.RankingMetrics(
        evaluation.full_ranking_ranks(scores, split.test_items, indptr, items), 10)
    assert by_key[("full", "exact", 0, 0)]["ndcg10"] == pytest.approx(full.ndcg)
    for m in (10, 50):  # fewer negatives: the sampled metric can only look better
        assert by_key[("uniform", "sampled", m, 0)]["hr10"] >= full.hr
