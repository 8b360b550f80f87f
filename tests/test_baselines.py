"""The Table 1 baselines against hand-computed examples and independent implementations on a
5 x 4 interaction matrix; hyperparameter ranges; non-finite scores."""

import dataclasses
import math

import numpy as np
import pytest

from ncf_vs_mf import baselines
from ncf_vs_mf.baselines import BaselineError, Recommender, fit_baseline, keep_top_k
from ncf_vs_mf.data import LeaveOneOutSplit, synthetic_split
from ncf_vs_mf.evaluation import NonFiniteScores

X = np.array([[1, 1, 0, 0],
              [1, 0, 1, 0],
              [0, 1, 1, 1],
              [1, 1, 1, 0],
              [0, 0, 1, 1]], dtype=float)


def tiny_split(x: np.ndarray = X) -> LeaveOneOutSplit:
    """A split whose training pairs are the ones of ``x`` (test items are not used here)."""
    users, items = np.nonzero(x)
    n_users, n_items = x.shape
    return LeaveOneOutSplit("tiny", n_users, n_items, users.astype(np.int32),
                            items.astype(np.int32), np.zeros(len(users), dtype=np.int64),
                            np.zeros(n_users, dtype=np.int32),
                            np.ones((n_users, 1), dtype=np.int32))


def scores(name, params, seed=0, x=X):
    return fit_baseline(name, tiny_split(x), params, seed).score_all(np.arange(x.shape[0]))


def test_popularity_scores_each_item_by_its_training_users():
    assert np.array_equal(scores("Popularity", {}), np.tile([3.0, 3.0, 4.0, 2.0], (5, 1)))


def test_item_knn_cosine_with_shrinkage_by_hand():
    # items 0 and 2 share users 1 and 3: 2 / (sqrt(3) sqrt(4) + 1); items 1 and 2 share
    # users 2 and 3: 2 / (sqrt(3) sqrt(4) + 1); item 0 and 3 share nobody
    s = scores("item-kNN", {"neighbors": 3, "shrink": 1.0})
    shared = 2 / (math.sqrt(12) + 1)
    assert s[0, 2] == pytest.approx(2 * shared)  # user 0 has items 0 and 1
    # user 4 has items 2 and 3; item 0: sim(0, 2) + sim(0, 3) = shared + 0
    assert s[4, 0] == pytest.approx(shared)


def test_keep_top_k_keeps_the_largest_of_each_column():
    weights = np.array([[0.0, 5.0], [3.0, 1.0], [2.0, 4.0]])
    kept = keep_top_k(weights, 1).toarray()
    assert np.array_equal(kept, [[0.0, 5.0], [3.0, 0.0], [0.0, 0.0]])
    assert np.array_equal(keep_top_k(weights, 3).toarray(), weights)


def test_rp3beta_random_walk_by_hand():
    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1]], dtype=float)
    # user 2 (items 1, 2, 3) reaching item 0: 1 -> user 0 -> 0 is 1/2 * 1/2, 2 -> user 1 -> 0
    # is 1/2 * 1/2, 3 reaches item 0 through nobody
    walk = dict(neighbors=4, alpha=1.0)
    assert scores("RP3beta", {**walk, "beta": 0.0}, x=x)[2, 0] == pytest.approx(0.5)
    # popularity penalty: item 0 has 2 users, divided by 2^1
    assert scores("RP3beta", {**walk, "beta": 1.0}, x=x)[2, 0] == pytest.approx(0.25)
    # alpha = 2 squares every step's probability: 2 * (1/4 * 1/4)
    assert scores("RP3beta", {**walk, "alpha": 2.0, "beta": 0.0}, x=x)[2, 0] == \
        pytest.approx(0.125)


def _ridge_columns(x: np.ndarray, reg: float) -> np.ndarray:
    """Column j regressed on the other columns by ridge: the definition EASE^R solves."""
    n = x.shape[1]
    weights = np.zeros((n, n))
    for j in range(n):
        others = [k for k in range(n) if k != j]
        a = x[:, others]
        weights[others, j] = np.linalg.solve(a.T @ a + reg * np.eye(n - 1), a.T @ x[:, j])
    return weights


def test_ease_closed_form_equals_ridge_per_column_with_zero_diagonal():
    expected = X @ _ridge_columns(X, 0.5)
    assert np.allclose(scores("EASE^R", {"reg": 0.5}), expected)


def test_slim_equals_ridge_where_the_ridge_solution_is_non_negative():
    reg, n = 0.5, X.shape[0]
    ridge = _ridge_columns(X, reg)
    fitted = fit_baseline("SLIM", tiny_split(), {"alpha": reg / n, "l1_ratio": 0.0,
                                                 "neighbors": 4, "max_iter": 10000})
    weights = fitted.item_part.toarray()
    assert np.all(weights >= 0) and np.all(np.diag(weights) == 0)
    for j in (1, 2):  # columns whose unconstrained optimum is feasible (>= 0)
        assert np.all(ridge[:, j] >= 0)
        assert np.allclose(weights[:, j], ridge[:, j], atol=1e-3)
    assert np.any(ridge[:, 0] < 0) and np.all(weights[:, 0] >= 0)  # the constraint acts


def test_pure_svd_projects_on_the_top_right_singular_vectors():
    _, _, vt = np.linalg.svd(X)
    v = vt[:2].T
    assert np.allclose(scores("PureSVD", {"factors": 2}), X @ v @ v.T)


def test_ials_item_factors_solve_the_weighted_ridge_of_rendle_weights():
    # converged: each item vector solves sum_u c_ui (p_ui - <x_u, y_i>)^2 + reg ||y_i||^2 with
    # c = 1 + 1/a0 on observed pairs and 1 on the others
    a0, reg = 0.5, 0.1
    fitted = fit_baseline("iALS", tiny_split(), {"factors": 2, "reg": reg,
                                                 "unobserved_weight": a0, "iterations": 200})
    users = fitted.user_part.astype(np.float64)
    items = fitted.item_part.T.astype(np.float64)
    for i in range(X.shape[1]):
        c = 1 + X[:, i] / a0
        lhs = users.T @ (c[:, None] * users) + reg * np.eye(2)
        exact = np.linalg.solve(lhs, users.T @ (c * X[:, i]))
        assert np.allclose(items[i], exact, atol=2e-3)


def test_ials_and_bpr_depend_on_the_seed_only():
    split = synthetic_split(n_users=60, n_items=150, mean_interactions=15, n_negatives=20)
    for name, params in [("iALS", {"factors": 4, "iterations": 3}),
                         ("BPR-MF", {"factors": 4, "iterations": 3})]:
        users = np.arange(10)
        a = fit_baseline(name, split, params, seed=1).score_all(users)
        assert np.array_equal(a, fit_baseline(name, split, params, seed=1).score_all(users))
        assert not np.allclose(a, fit_baseline(name, split, params, seed=2).score_all(users))


def test_bpr_ranks_training_items_above_the_others():
    split = synthetic_split(n_users=100, n_items=150, mean_interactions=20, n_negatives=20)
    fitted = fit_baseline("BPR-MF", split, {"factors": 8, "lr": 0.05, "iterations": 200})
    s = fitted.score_all(np.arange(split.n_users))
    trained = np.zeros_like(s, dtype=bool)
    trained[split.train_users, split.train_items] = True
    assert s[trained].mean() > s[~trained].mean() + 0.5


def test_score_all_is_dense_over_every_item_and_not_masked():
    for name in baselines.BASELINES:
        s = scores(name, {"factors": 2} if "factors" in baselines.BASELINES[name].params else {})
        assert s.shape == X.shape and s.dtype == np.float64


@pytest.mark.parametrize("name, params, named", [
    ("item-kNN", {"neighbors": 0}, "neighbors=0"),
    ("item-kNN", {"shrink": -1.0}, "shrink=-1.0"),
    ("EASE^R", {"reg": 0.0}, "reg=0.0"),
    ("EASE^R", {"reg": float("nan")}, "reg=nan"),
    ("SLIM", {"l1_ratio": 1.5}, "l1_ratio=1.5"),
    ("iALS", {"unobserved_weight": 0.0}, "unobserved_weight=0.0"),
    ("iALS", {"factors": 2.5}, "factors=2.5"),
    ("BPR-MF", {"lr": -0.1}, "lr=-0.1"),
    ("PureSVD", {"factors": 4}, "factors=4"),  # as many as the items
    ("RP3beta", {"gamma": 1.0}, "'gamma'"),
    ("Random", {}, "unknown baseline"),
])
def test_out_of_range_hyperparameters_are_rejected_before_fitting(name, params, named,
                                                                  monkeypatch):
    if name in baselines.BASELINES:  # a fit would fail the test: none may start
        monkeypatch.setitem(baselines.BASELINES, name,
                            dataclasses.replace(baselines.BASELINES[name], fit=None))
    with pytest.raises(BaselineError, match=named.replace(".", r"\.").replace("[", r"\[")):
        fit_baseline(name, tiny_split(), params)


def test_non_finite_scores_stop_with_the_model_and_user_named():
    bad = Recommender("EASE^R", {}, np.ones((3, 1)), np.array([[1.0, np.nan, 2.0]]))
    with pytest.raises(NonFiniteScores, match=r"EASE\^R: score nan for user 2, item 1"):
        bad.score_all(np.array([2]))


def test_slim_on_the_gram_matrix_equals_elastic_net_on_x_with_its_column_zeroed():
    from sklearn.linear_model import ElasticNet

    split = synthetic_split(n_users=80, n_items=150, mean_interactions=20, n_negatives=20)
    x = baselines.interactions(split)
    items = np.array([0, 7, 42])
    ours = baselines.slim_columns((x.T @ x).toarray(), x.tocsc(), items, 1e-3, 0.1, 500)
    for column, j in enumerate(items):
        design = x.toarray()
        target = design[:, j].copy()
        design[:, j] = 0.0
        reference = ElasticNet(alpha=1e-3, l1_ratio=0.1, positive=True, fit_intercept=False,
                               max_iter=500, tol=1e-4).fit(design, target).coef_
        assert np.allclose(ours[:, column], reference, atol=1e-6)
        assert ours[j, column] == 0.0
