"""Verdicts of the results page, on hand-made results with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from ncf_vs_mf.report import at_a_glance as glance


@pytest.mark.parametrize("holds, total, bound, word", [
    (4, 4, True, "reproduced"), (4, 4, False, "partly"), (3, 4, True, "partly"),
    (2, 4, True, "not reproduced"), (0, 0, True, "not reproduced"),
])
def test_verdict_word(holds, total, bound, word):
    assert glance.verdict_word(holds, total, bound) == word


def _results(mlp_hr: float, published_hr: float):
    mf = pd.DataFrame({"dim": [16, 32], "hr10": [0.70, 0.72], "hr10_ci95": [0.01, 0.01],
                       "ndcg10": [0.42, 0.44], "ndcg10_ci95": [0.01, 0.01]})
    ncf = pd.DataFrame({"model": ["MLP", "GMF"], "dim": [16, 16], "hr10": [mlp_hr, 0.9],
                        "ndcg10": [0.40, 0.9]})
    published = pd.DataFrame({"model": ["MLP", "MLP"], "embedding_dim": [16, 32],
                              "hr10": [0.69, published_hr], "ndcg10": [0.41, 0.43]})
    return SimpleNamespace(mf=mf, ncf=ncf, published=published)


def test_mf_versus_ignores_gmf_and_measures_the_lead():
    versus = glance.mf_versus(_results(0.68, 0.70).mf, _results(0.68, 0.70).ncf, "hr10")
    assert versus["model"].tolist() == ["MLP"]  # GMF is a dot product, not a learned one
    assert versus["difference"].iloc[0] == pytest.approx(0.02)
    assert bool(versus["beyond_interval"].iloc[0])  # 0.02 > 0.01


def test_dot_beats_learned_counts_ours_and_published():
    found = glance.dot_beats_learned(_results(0.68, 0.70))
    assert found["verdict"] == glance.Verdict("reproduced", 2, 2)  # HR and NDCG at d = 16
    assert (found["published_wins"], found["published_total"]) == (4, 4)
    assert found["lead_min"] == pytest.approx(0.02) == found["lead_max"]
    beaten = glance.dot_beats_learned(_results(0.71, 0.73))  # our MLP ahead on HR@10
    assert beaten["verdict"] == glance.Verdict("not reproduced", 1, 2)  # half is not most
    assert beaten["published_losses"]["dim"].tolist() == [32]


def test_an_adam_fine_tuned_neumf_that_beats_mf_changes_the_verdict():
    from ncf_vs_mf.summaries import NCF_MODEL_NAMES, ncf_over_seeds

    results = _results(0.68, 0.70)
    runs = pd.DataFrame({"dataset": "ml-1m", "model": "NeuMF-pretrained-adam",
                         "predictive_factor": 8, "dim": 16, "seed": [0, 1],
                         "hr10": [0.705, 0.715], "ndcg10": [0.43, 0.43],
                         "hr10_test_selected": 0.72, "ndcg10_test_selected": 0.44})
    adam = ncf_over_seeds(runs)  # the name the summaries give it must be a learned one
    assert adam["model"].tolist() == [NCF_MODEL_NAMES["NeuMF-pretrained-adam"]]
    results.ncf = pd.concat([results.ncf, adam[["model", "dim", "hr10", "ndcg10"]]])
    found = glance.dot_beats_learned(results)
    # MLP: MF ahead on both metrics; Adam NeuMF: 0.71 > 0.70 HR@10, 0.43 > 0.42 NDCG@10
    assert found["verdict"] == glance.Verdict("not reproduced", 2, 4)
    assert found["lead_min"] == pytest.approx(-0.01)


def test_dot_products_serve_needs_every_check():
    key = {"mlp_over_dot": 40.0, "fastest_ms": 0.2, "exact_ms": 8.0, "iso_scann_ms": 0.5,
           "iso_exact_ms": 7.7}
    assert glance.dot_products_serve(key)["verdict"] == glance.Verdict("reproduced", 3, 3)
    slow = glance.dot_products_serve({**key, "iso_scann_ms": 9.0})
    assert slow["verdict"] == glance.Verdict("partly", 2, 3)
    assert not slow["checks"]["index faster than exact (isotropic items)"]


def test_mlp_struggles_counts_settings_at_or_above_the_paper_bound():
    key = {"grid_settings_run": 41, "settings_below_001": 0, "d128_hhalf_128k_fresh": 0.047}
    assert glance.mlp_struggles(key)["verdict"] == glance.Verdict("reproduced", 41, 41)
    five = glance.mlp_struggles({**key, "settings_below_001": 5})
    assert five["verdict"] == glance.Verdict("partly", 36, 41)
    missing = glance.mlp_struggles({**key, "d128_hhalf_128k_fresh": float("nan")})
    assert missing["verdict"].word == "partly" and not missing["example_holds"]


def test_gmf_ignores_l2_compares_the_two_ranges():
    assert glance.gmf_ignores_l2({"gmf_hr10_range": 0.05, "mf_hr10_range": 0.17})[
        "verdict"] == glance.Verdict("reproduced", 1, 1)
    assert glance.gmf_ignores_l2({"gmf_hr10_range": 0.2, "mf_hr10_range": 0.17})[
        "verdict"].word == "not reproduced"
