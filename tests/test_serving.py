"""Tests of the serving-cost code (lib/ncf_vs_mf/serving.py) and of the committed benchmark's shape.

Correctness is checked against independent implementations (numpy brute force, the torch
modules of ncf_vs_mf.models, MFModel's own scores); the committed measurements in
results/serving/ (``ncf-vs-mf reproduce serving``) are checked for their shape only (what
grows with what), never for their values, which belong to the machine that ran them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_vs_mf import serving
from ncf_vs_mf.config import results_dir
from ncf_vs_mf.mf import MFModel
from ncf_vs_mf.models import DotSimilarity, make_similarity, paper_hidden

RESULTS = results_dir() / "serving"


@pytest.fixture(autouse=True)
def one_thread():
    serving.set_threads(1)


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, np.ndarray]:
    """A small trained-like catalog: 40 users, 2,000 items, d = 16."""
    return serving.trained_like_catalog(2000, 40, 16, seed=1)


def brute_force_top_k(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Independent exact top-k: float64 scores, a full stable sort per user."""
    scores = np.asarray(users, np.float64) @ np.asarray(items, np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def as_sets(ids: np.ndarray) -> list[set[int]]:
    return [set(map(int, row)) for row in ids]


# ---- scoring ---------------------------------------------------------------------------

def test_exact_top_k_matches_an_independent_brute_force(catalog):
    users, items = catalog
    ours = serving.exact_top_k(users, items, k=10, user_chunk=7)
    assert ours.shape == (40, 10)
    np.testing.assert_array_equal(ours, brute_force_top_k(users, items, 10))


def test_dot_scores_equal_the_dot_similarity_module(catalog):
    users, items = catalog
    module = serving.similarity_scores(DotSimilarity(biases=False), users[:5], items, chunk=300)
    assert torch.allclose(serving.dot_scores(users[:5], items), module, atol=1e-5)


@pytest.mark.parametrize("name, d", [("mlp", 16), ("neumf", 24)])
def test_cached_mlp_scorer_equals_calling_the_module(name, d):
    torch.manual_seed(0)
    users, items = serving.isotropic_catalog(700, 6, d, seed=2)
    similarity = make_similarity(name, d)
    scorer = serving.CachedMLPScorer(similarity, items)
    reference = serving.similarity_scores(similarity, users, items, chunk=128)
    assert torch.allclose(scorer.scores(users, chunk=100), reference, atol=1e-5)
    ids = np.random.default_rng(0).integers(0, 700, size=(6, 9))
    picked = torch.gather(reference, 1, torch.from_numpy(ids))
    assert torch.allclose(scorer.scores(users, items=ids), picked, atol=1e-5)


def test_mf_retrieval_vectors_rank_items_like_eq2():
    rng = np.random.default_rng(3)
    model = MFModel(rng.normal(size=(5, 9)), rng.normal(size=(300, 9)), global_bias=0.7)
    queries, items = serving.mf_retrieval_vectors(model.user, model.item)
    for u in range(5):
        eq2 = model.scores(np.full(300, u), np.arange(300))
        assert np.array_equal(np.argsort(-eq2)[:10], serving.exact_top_k(queries[u:u + 1], items)[0])


# ---- the reduction of inner-product search to nearest-neighbour search -----------------

def test_one_extra_coordinate_turns_inner_product_top_k_into_euclidean_nearest():
    users, items = serving.trained_like_catalog(1500, 30, 12, norm_spread=1.0, seed=4)
    reduced_items = serving.mips_to_nn_items(items)
    reduced_queries = serving.mips_to_nn_queries(users)
    norms = np.linalg.norm(reduced_items.astype(np.float64), axis=1)
    assert np.allclose(norms, norms.max(), rtol=1e-5)  # all items on one sphere
    distances = ((reduced_queries[:, None, :].astype(np.float64)
                  - reduced_items[None, :, :].astype(np.float64)) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :10]
    assert as_sets(nearest) == as_sets(brute_force_top_k(users, items, 10))


# ---- indexes ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, options, setting", [
    ("exact", {}, None),
    ("hnsw", {"m": 32, "ef_construction": 200}, 2000),
    ("hnsw-ip", {"m": 32, "ef_construction": 200}, 2000),
    ("ivf", {"nlist": 16}, 16),  # every list scanned
    ("ivf-ip", {"nlist": 16}, 16),
    ("scann", {"num_leaves": 10, "reorder": 2000}, 10),  # every leaf, every item re-scored
])
def test_near_exhaustive_settings_have_recall_one(catalog, kind, options, setting):
    users, items = catalog
    index, seconds = serving.build_index(kind, items, **options)
    found = index.search(users, 10, setting)
    assert found.shape == (40, 10) and seconds >= 0 and index.memory_bytes() > items.nbytes // 2
    assert serving.recall_at_k(found, serving.exact_top_k(users, items)) == 1.0


def test_cheapest_settings_lose_recall_on_the_hard_catalog():
    users, items = serving.isotropic_catalog(5000, 50, 32, seed=5)
    exact = serving.exact_top_k(users, items)
    index, _ = serving.build_index("ivf", items)
    recalls = [serving.recall_at_k(index.search(users, 10, s), exact) for s in index.settings]
    assert recalls[0] < 0.5 and recalls[-1] > 0.9


def test_seeded_scann_builds_the_same_index_twice(catalog):
    users, items = catalog
    found = [serving.build_index("scann", items, num_leaves=20, seed=3)[0].search(users, 10, 2)
             for _ in range(2)]
    np.testing.assert_array_equal(found[0], found[1])


def test_reduction_helps_ivf_when_norms_are_skewed():
    users, items = serving.trained_like_catalog(5000, 100, 16, norm_spread=0.5, seed=2)
    exact = serving.exact_top_k(users, items)
    recall = {}
    for kind in ("ivf", "ivf-ip"):
        index, _ = serving.build_index(kind, items, nlist=64)
        recall[kind] = serving.recall_at_k(index.search(users, 10, 4), exact)
    assert recall["ivf"] > recall["ivf-ip"] + 0.1


def test_unknown_index_is_rejected():
    with pytest.raises(ValueError, match="unknown index"):
        serving.build_index("lsh", np.zeros((3, 2), np.float32))


def test_recall_at_k_by_hand():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [8, 7, 6, 5]])
    assert serving.recall_at_k(found, exact) == pytest.approx((2 / 4 + 4 / 4) / 2)


# ---- synthetic catalogs ---------------------------------------------------------------

def test_trained_like_catalog_has_a_decaying_spectrum_and_skewed_norms():
    users, items = serving.trained_like_catalog(20000, 20000, 32, decay=1.0, norm_spread=0.6,
                                                seed=6)
    assert users.dtype == items.dtype == np.float32
    assert serving.spectrum_decay(users) == pytest.approx(1.0, abs=0.1)  # users keep it exactly
    assert serving.spectrum_decay(items) > 0.5  # items too, after their norms were reset
    assert serving.log_norm_spread(items) == pytest.approx(0.6, abs=0.03)


def test_isotropic_catalog_has_a_flat_spectrum_and_equal_norms():
    users, items = serving.isotropic_catalog(20000, 100, 32, seed=7)
    assert abs(serving.spectrum_decay(items)) < 0.05
    assert serving.log_norm_spread(items) < 0.15  # chi distribution with 32 degrees of freedom
    assert np.mean(np.sum(items.astype(np.float64) ** 2, axis=1)) == pytest.approx(1.0, abs=0.02)


def test_catalogs_are_seeded_and_named():
    a = serving.make_catalog("trained-like", 50, 5, 8, seed=3)
    b = serving.make_catalog("trained-like", 50, 5, 8, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="unknown catalog kind"):
        serving.make_catalog("gaussian", 50, 5, 8)


# ---- the MLP side ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_on_catalog(catalog):
    users, items = catalog
    mlp = serving.fit_mlp_to_dot(users, items, paper_hidden(16), steps=300, batch=256, seed=0)
    return mlp, serving.CachedMLPScorer(mlp, items)


def test_mlp_fitted_to_dot_products_learns_them_roughly(catalog, mlp_on_catalog):
    users, items = catalog
    mlp, scorer = mlp_on_catalog
    dot = serving.dot_scores(users, items).flatten().numpy()
    learned = scorer.scores(users).flatten().numpy()
    assert np.corrcoef(dot, learned)[0, 1] > 0.8


def test_two_stage_with_every_item_as_candidate_is_exact_mlp_top_k(catalog, mlp_on_catalog):
    users, items = catalog
    _, scorer = mlp_on_catalog
    exact_mlp = serving.mlp_top_k(scorer, users, chunk=333)
    reference = np.argsort(-scorer.scores(users).numpy(), axis=1, kind="stable")[:, :10]
    assert as_sets(exact_mlp) == as_sets(reference)
    every = serving.two_stage_top_k(users, scorer, lambda q, c: serving.exact_top_k(q, items, c),
                                    n_candidates=len(items))
    assert as_sets(every) == as_sets(exact_mlp)


def test_two_stage_recall_grows_with_the_number_of_candidates(catalog, mlp_on_catalog):
    users, items = catalog
    _, scorer = mlp_on_catalog
    exact_mlp = serving.mlp_top_k(scorer, users)
    recalls = [serving.recall_at_k(
        serving.two_stage_top_k(users, scorer, lambda q, c: serving.exact_top_k(q, items, c), c),
        exact_mlp) for c in (10, 30, 100, 300, 2000)]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0 and recalls[0] < 1.0


# ---- measurement helpers ---------------------------------------------------------------

def test_power_law_fits_recover_known_exponents():
    rng = np.random.default_rng(8)
    n = np.repeat([1e3, 1e4, 1e5, 1e6], 4)
    d = np.tile([16, 32, 64, 128], 4)
    noise = np.exp(rng.normal(0, 0.05, n.size))
    exponent, factor = serving.fit_power_law(n, 3e-9 * n ** 0.5 * noise)
    assert exponent == pytest.approx(0.5, abs=0.03) and factor == pytest.approx(3e-9, rel=0.3)
    fit = serving.fit_cost_model(n, d, 2e-10 * n * d ** 2 * noise)
    assert fit["n_exponent"] == pytest.approx(1.0, abs=0.03)
    assert fit["d_exponent"] == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError):
        serving.fit_power_law([5, 5], [1, 2])


def test_best_time_is_the_minimum_and_respects_repeats():
    calls = []
    seconds = serving.best_time(lambda: calls.append(1), repeats=4, budget=10.0)
    assert len(calls) == 4 and 0 <= seconds < 0.1
    latencies = serving.per_query_latency(lambda q: q.sum(), np.ones((7, 3)))
    assert latencies.shape == (7,) and (latencies >= 0).all()


def test_latency_vs_n_picks_the_fastest_setting_that_reaches_the_target():
    curve = [{"catalog": "c", "index": "hnsw", "n": 100, "setting": s, "recall": r, "latency_ms": t}
             for s, r, t in [(1, 0.5, 0.1), (2, 0.92, 0.4), (3, 0.99, 0.9)]]
    curve += [{"catalog": "c", "index": "hnsw", "n": 1000, "setting": 1, "recall": 0.8,
               "latency_ms": 0.2}]
    table = serving.latency_vs_n(curve, 0.9).set_index("n")
    assert table.loc[100, "latency_ms"] == 0.4 and table.loc[100, "setting"] == 2
    assert np.isnan(table.loc[1000, "latency_ms"])


def synthetic_scoring_rows() -> list[dict]:
    """Timings that follow the O() argument exactly: dot c n d, MLP c n d^2 (two variants)."""
    rows = []
    for n in (1_000, 10_000, 100_000):
        for d in (16, 64):
            for family, variant, seconds in [("dot", "torch", 1e-9 * n * d),
                                             ("dot", "numpy", 2e-9 * n * d),
                                             ("mlp", "cached", 1e-9 * n * d * d),
                                             ("mlp", "module", 3e-9 * n * d * d)]:
                rows.append({"family": family, "variant": variant, "n": n, "d": d, "batch": 1,
                             "seconds": seconds, "seconds_per_user": seconds})
        rows.append({"family": "select", "variant": "torch.topk", "n": n, "d": 0, "batch": 1,
                     "seconds": 1e-9 * n, "seconds_per_user": 1e-9 * n})
    for d in (16, 64):
        rows.append({"family": "mlp-rerank", "variant": "cached", "n": 200, "d": d, "batch": 1,
                     "seconds": 1e-9 * 200 * d * d, "seconds_per_user": 1e-9 * 200 * d * d})
    return rows


def test_summaries_of_a_run_follow_its_rows():
    best = serving.best_scoring(synthetic_scoring_rows())
    assert set(best.loc[best["family"] == "dot", "variant"]) == {"torch"}  # the faster one
    assert set(best.loc[best["family"] == "mlp", "variant"]) == {"cached"}
    ratio = serving.cost_ratio(best).set_index("d")
    assert ratio.loc[16, "n"] == 100_000 and ratio.loc[64, "ratio"] == pytest.approx(64)
    fits = serving.scoring_fits(best)
    assert fits["dot"]["d_exponent"] == pytest.approx(1) and fits["mlp"]["d_exponent"] == pytest.approx(2)
    at_recall = pd.DataFrame([{"catalog": "c", "index": "hnsw", "n": n, "latency_ms": 0.01 * n ** 0.5,
                               "recall": 0.95, "setting": 64} for n in (10_000, 100_000)])
    assert serving.latency_slopes(at_recall)["c"]["hnsw"] == pytest.approx(0.5)
    advice = serving.advice_table(best, at_recall, [0.5, 5, 5000], index_d=64, rerank=200)
    advice = advice.set_index(["n", "d"])
    # n = 10^5, d = 64: exact dot 6.4 + 0.1 ms (selection), MLP 409.6 + 0.1 ms, index 3.16 ms,
    # re-ranking 200 candidates 0.82 ms; at d = 16 the index is estimated at 3.16 / 4 ms
    assert advice.loc[(100_000, 64)].to_dict() == {
        "dot, 0.5 ms": "-", "MLP, 0.5 ms": "-", "dot, 5 ms": "hnsw", "MLP, 5 ms": "two-stage",
        "dot, 5000 ms": "exact", "MLP, 5000 ms": "exact"}
    assert advice.loc[(100_000, 16), "dot, 5 ms"] == "exact"
    assert advice.loc[(100_000, 16), "dot, 0.5 ms"] == "-"  # 0.79 ms estimated
    assert advice.loc[(100_000, 16), "MLP, 5 ms"] == "two-stage"


# ---- the committed full-scale measurements: their shape, not their values --------------

@pytest.fixture(scope="module")
def committed() -> dict:
    from ncf_vs_mf.report.serving import load_record

    if not (RESULTS / "serving_runs.csv").is_file():
        pytest.skip(f"{RESULTS} not committed yet: run ncf-vs-mf reproduce serving --publish")
    record = load_record(RESULTS)
    return {**record, "best": serving.best_scoring(record["scoring"])}


def test_committed_tables_record_where_they_ran():
    from ncf_vs_mf.results import ResultTable

    for record in ResultTable(RESULTS / "serving_runs.csv", []).provenance():
        assert {"commit", "machine", "libraries", "parameters", "duration_seconds"} <= set(record)
        assert record["machine"]["cores"] >= 1


def test_committed_mlp_over_dot_ratio_grows_with_d(committed):
    ratio = serving.cost_ratio(committed["best"]).set_index("d")["ratio"]
    dims = sorted(ratio.index)
    assert ratio[dims[-1]] > 4 * ratio[dims[0]]
    assert serving.fit_power_law(dims, [ratio[d] for d in dims])[0] > 0.5


def test_committed_fits_show_mlp_quadratic_dot_linear_in_d(committed):
    fits = serving.scoring_fits(committed["best"])
    assert fits["dot"]["d_exponent"] < fits["mlp"]["d_exponent"]
    assert fits["mlp"]["d_exponent"] > 1.4 and 0.7 < fits["mlp"]["n_exponent"] < 1.2


def test_committed_approximate_search_grows_slower_than_n(committed):
    at_recall = serving.latency_vs_n(committed["index_curves"], committed["recall_target"])
    slopes = serving.latency_slopes(at_recall[at_recall["catalog"] != "ml-1m"])["trained-like"]
    approximate = [s for name, s in slopes.items() if name != "exact" and s is not None]
    assert approximate and max(approximate) < 0.8 * slopes["exact"]
