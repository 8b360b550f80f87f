"""``reproduce mf-init``: the initialization check of the Appendix on the experiment engine. At
the paper's sigma = 0.1 it trains exactly the run of ``reproduce mf``; other sigmas differ; a
negative sigma is refused naming its option."""

import pandas as pd
import pytest

from ncf_vs_mf import cli, experiments

TINY = dict(dataset="synthetic", dims=[4], seeds=[0], epochs=2, lr=[0.05], eval_every=1)
TIMING = ["seconds", "updates_per_second", "run_id"]


def test_sigma_0_1_is_the_mf_run_and_other_sigmas_differ(tmp_path):
    init = experiments.reproduce("mf-init", **TINY, init_std=[0.1, 0.01], runs=tmp_path / "a",
                                 out=tmp_path / "init")
    plain = experiments.reproduce("mf", **TINY, runs=tmp_path / "b", out=tmp_path / "mf")
    assert sorted(init["init_std"]) == [0.01, 0.1]
    at_paper = init[init["init_std"] == 0.1].drop(columns=TIMING + ["init_std"])
    pd.testing.assert_frame_equal(at_paper.reset_index(drop=True),
                                  plain.drop(columns=TIMING).reset_index(drop=True))
    small = init[init["init_std"] == 0.01].iloc[0]
    assert small["hr10"] != at_paper.iloc[0]["hr10"] or small["loss"] != at_paper.iloc[0]["loss"]
    curves = pd.read_csv(tmp_path / "init" / "mf_init_curves.csv")
    assert set(curves["init_std"]) == {0.01, 0.1} and len(curves) == 2 * 2  # epochs 1, 2


def test_a_negative_sigma_is_refused_naming_the_option(tmp_path, capsys):
    status = cli.main(["reproduce", "mf-init", "--dataset", "synthetic", "--init-std", "-0.1",
                       "--scheduler", "inprocess", "--runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "--init-std -0.1: need >= 0" in err, err
    assert not any(tmp_path.rglob("*.json"))


def test_full_ranking_columns_match_an_independent_full_ranking_of_the_same_model(tmp_path):
    from ncf_vs_mf import data
    from ncf_vs_mf.evaluation import evaluate_full_ranking
    from ncf_vs_mf.mf import MFConfig, train_mf

    plain = experiments.reproduce("mf", **TINY, runs=tmp_path / "a", out=tmp_path / "plain")
    full = experiments.reproduce("mf", **TINY, full_ranking=1, runs=tmp_path / "b",
                                 out=tmp_path / "full")
    assert "hr10_full" not in plain.columns
    row = full.iloc[0]
    assert row["hr10"] == plain.iloc[0]["hr10"]  # the same run: only columns are added
    split = data.load_dataset("synthetic")
    model, _ = train_mf(split, MFConfig(dim=4, epochs=2, lr=0.05, reg=0.005, negatives=8,
                                        seed=0))
    reference = evaluate_full_ranking(split, model.user[:, 1:], model.item[:, 1:],
                                      model.item[:, 0])
    assert (row["hr10_full"], row["ndcg10_full"]) == pytest.approx((reference.hr, reference.ndcg))
    # the 99 sampled negatives are a subset of the unseen items: full ranks are never better
    assert row["hr10_full"] <= row["hr10"]
