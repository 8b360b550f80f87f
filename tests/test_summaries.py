"""Summaries of the result tables (lib/ncf_vs_mf/summaries.py): means with 95% intervals,
ours against published, the Section 3 findings and the Section 3 headline pieces."""

import pandas as pd
import pytest

from ncf_vs_mf import summaries
from ncf_vs_mf.experiments.ncf import NCF_VALIDATION


def test_summaries_over_seeds_and_versus_published():
    runs = pd.DataFrame({"model": "MF", "dim": [16, 16, 16, 32], "hr10": [0.5, 0.6, 0.7, 0.8],
                         "ndcg10": [0.3, 0.3, 0.3, 0.4]})
    table = summaries.over_seeds(runs, ["model", "dim"])
    row = table[table["dim"] == 16].iloc[0]
    # mean 0.6, sd 0.1, n 3: half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735
    assert row["hr10"] == pytest.approx(0.6)
    assert row["hr10_ci95"] == pytest.approx(0.248413, rel=1e-4)
    assert row["ndcg10_ci95"] == pytest.approx(0.0) and row["seeds"] == 3
    assert table[table["dim"] == 32]["hr10_ci95"].isna().all()  # one seed: no interval
    published = pd.DataFrame({"model": ["MLP", "MLP", "NeuMF"], "embedding_dim": [16, 64, 32],
                              "hr10": [0.55, 0.9, 0.7], "ndcg10": [0.2, 0.5, 0.45]})
    diff = summaries.versus_published(table, published)
    assert diff[["model", "dim"]].values.tolist() == [["MLP", 16], ["NeuMF", 32]]
    assert diff["hr10_diff"].tolist() == pytest.approx([0.05, 0.1])
    assert diff["hr10_beyond_ci"].tolist() == [False, False]  # 0.05 < 0.248; NaN interval


def test_rank_of_choice_finds_best_cell_and_rank_of_the_choice():
    grid = pd.DataFrame({"lr": [0.001, 0.002, 0.003], "reg": [0.005] * 3,
                         "hr10": [0.70, 0.75, 0.78], "ndcg10": [0.40, 0.45, 0.47]})
    row = summaries.rank_of_choice(grid, {"lr": 0.002, "reg": 0.005})
    assert row["cells"] == 3 and row["best lr"] == 0.003 and row["best HR@10"] == 0.78
    assert row["choice: rank"] == 2 and row["choice: NDCG@10"] == 0.45
    missing = summaries.rank_of_choice(grid, {"lr": 0.01, "reg": 0.005})
    assert missing["choice: rank"] is None


def test_ncf_summaries_separate_honest_and_test_selected_epochs():
    runs = pd.DataFrame({
        "dataset": "ml-1m", "model": ["MLP", "MLP", "NeuMF-pretrained"], "predictive_factor": [8, 8, 32],
        "dim": [16, 16, 96], "seed": [0, 1, 0], "hr10": [0.60, 0.64, 0.70],
        "ndcg10": [0.35, 0.37, 0.42], "hr10_test_selected": [0.63, 0.65, 0.70],
        "ndcg10_test_selected": [0.36, 0.37, 0.43]})
    table = summaries.ncf_over_seeds(runs)
    mlp = table[table["model"] == "MLP"].iloc[0]
    assert mlp["seeds"] == 2 and mlp["hr10"] == pytest.approx(0.62)
    assert mlp["hr10_ncf_rule"] == pytest.approx(0.64)
    assert mlp["hr10_inflation"] == pytest.approx(0.02)  # mean of 0.03 and 0.01
    # sd of (0.03, 0.01) = 0.014142; t(0.975, 1) = 12.7062: half-width 12.7062 * 0.01 = 0.127062
    assert mlp["hr10_inflation_ci95"] == pytest.approx(0.127062, rel=1e-4)
    assert table["model"].tolist() == ["MLP", "NeuMF (pre-trained)"]  # the published names
    published = pd.DataFrame({"dataset": "ml-1m", "model": ["MLP", "NeuMF (pre-trained)", "MLP"],
                              "embedding_dim": [16, 96, 32], "hr10": [0.671, 0.726, 0.684],
                              "ndcg10": [0.399, 0.445, 0.410]})
    diff = summaries.ncf_versus_published(table, published)
    assert diff[["model", "dim"]].values.tolist() == [["MLP", 16], ["NeuMF (pre-trained)", 96]]
    assert diff["hr10_diff"].tolist() == pytest.approx([0.62 - 0.671, 0.70 - 0.726])
    assert diff["ndcg10_diff_ncf_rule"].tolist() == pytest.approx([0.365 - 0.399, 0.43 - 0.445])
    mf = pd.DataFrame({"model": "MF", "dim": [16, 96], "hr10": [0.69, 0.73],
                       "hr10_ci95": [0.001, 0.001], "ndcg10": [0.41, 0.45],
                       "ndcg10_ci95": [0.001, 0.001]})
    versus = summaries.versus_published(mf, table.rename(columns={"dim": "embedding_dim"}),
                                        label="ncf")
    assert versus["hr10_ncf"].tolist() == pytest.approx([0.62, 0.70])
    assert versus["hr10_diff"].tolist() == pytest.approx([0.07, 0.03])
    assert versus["hr10_beyond_ci"].tolist() == [True, True]


def test_count_higher_counts_positive_differences_per_model():
    diffs = pd.DataFrame({"model": ["MLP", "MLP", "MLP", "NeuMF"], "dim": [16, 32, 64, 24],
                          "hr10_diff": [0.02, -0.01, 0.0, 0.03],
                          "ndcg10_diff": [0.01, 0.02, 0.03, -0.02]})
    table = summaries.count_higher(diffs).set_index("model")
    assert table.loc["MLP", "dims"] == 3 and table.loc["NeuMF", "dims"] == 1
    assert table.loc["MLP", "hr10_diff > 0"] == 1  # a tie (0.0) is not higher
    assert table.loc["MLP", "min hr10_diff"] == pytest.approx(-0.01)
    assert table.loc["MLP", "ndcg10_diff > 0"] == 3 and table.loc["NeuMF", "ndcg10_diff > 0"] == 0
    assert table.index.tolist() == ["MLP", "NeuMF"]  # first-seen order


def _ncf_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Small MF-vs-NCF, ours-vs-published and run tables with hand-checkable values."""
    mf_versus_ncf = pd.DataFrame({
        "model": ["GMF", "MLP", "MLP", "NeuMF (pre-trained)"], "dim": [16, 16, 32, 24],
        "hr10_diff": [-0.004, 0.03, 0.02, 0.01], "ndcg10_diff": [0.002, 0.01, -0.001, 0.02],
        "hr10_beyond_ci": [False, True, True, False],
        "hr10_ours": [0.70, 0.70, 0.72, 0.71], "hr10_ncf": [0.704, 0.67, 0.70, 0.70]})
    ncf_versus = pd.DataFrame({
        "model": ["MLP", "MLP", "NeuMF (pre-trained)"], "dim": [16, 32, 24],
        "hr10_diff": [-0.01, -0.02, 0.003], "hr10_diff_ncf_rule": [-0.005, 0.001, 0.004]})
    runs = pd.DataFrame({
        "model": ["NeuMF", "NeuMF-pretrained", "NeuMF", "NeuMF-pretrained", "NeuMF-pretrained"],
        "predictive_factor": [8, 8, 8, 8, 16], "seed": [0, 0, 1, 1, 0],
        "hr10": [0.68, 0.67, 0.66, 0.69, 0.70], "hr10_test_selected": [0.68, 0.675, 0.67, 0.69, 0.71],
        "epochs_selected": [9, 0, 12, 3, 0]})
    return mf_versus_ncf, ncf_versus, runs


def test_ncf_findings_count_each_statement_where_it_holds():
    mf_versus_ncf, ncf_versus, runs = _ncf_tables()
    table = summaries.ncf_findings(mf_versus_ncf, ncf_versus, runs).set_index("finding")
    counts = list(zip(table["holds"], table["of"]))
    # MF vs MLP/NeuMF: only MLP d=16 and NeuMF d=24 are higher on both metrics (MLP d=32 loses
    # NDCG); beyond the interval: the two MLP rows; GMF: HR lower, so not both
    assert counts[:3] == [(2, 3), (2, 3), (0, 1)]
    assert table.iloc[0]["min"] == pytest.approx(0.01) and table.iloc[0]["max"] == pytest.approx(0.03)
    assert counts[3:5] == [(2, 3), (1, 3)]  # below published; under NCF's rule only MLP d=16
    assert counts[5] == (3, 5) and table.iloc[5]["max"] == pytest.approx(0.01)
    # MF minus NCF's-rule means = MF margin - (rule - published) + (ours - published):
    # MLP 16: 0.03 - 0.005, MLP 32: 0.02 - 0.021, pre-trained NeuMF 24: 0.01 - 0.001
    assert counts[6] == (2, 3)
    assert table.iloc[6][["min", "max"]].tolist() == pytest.approx([-0.001, 0.025])
    # pre-trained vs scratch over the (k, seed) pairs both have: seed 0 -0.01, seed 1 +0.03
    assert counts[7] == (1, 2)
    assert table.iloc[7][["min", "max"]].tolist() == pytest.approx([-0.01, 0.03])
    assert counts[8] == (2, 3) and table.iloc[8]["max"] == 3


def test_ncf_prose_numbers_are_the_quantities_the_text_cites():
    numbers = summaries.ncf_prose_numbers(*_ncf_tables())
    approx = {"gap_gmf_16": -0.004, "gap_gmf_min": -0.004, "gap_mlp_16": 0.03, "gap_mlp_32": 0.02,
              "gap_mlp_min": 0.02, "gap_mlp_max": 0.03, "gap_neumf_pretrained_24": 0.01,
              "gap_learned_min": 0.01, "gap_learned_max": 0.03,
              # ours minus published: -0.01, -0.02, +0.003; under NCF's rule -0.005, +0.001, +0.004
              "below_published_max": 0.02, "below_published_max_ncf_rule": 0.005,
              # means per (model, k): NeuMF k=8 0.005, pre-trained k=8 0.0025, k=16 0.01
              "inflation_mean_max": 0.01, "inflation_run_max": 0.01,
              "gap_learned_ncf_rule_min": -0.001}  # MLP at d = 32 (see the findings test)
    assert {k: numbers[k] for k in approx} == pytest.approx(approx)
    assert (numbers["best_test_epoch_runs"], numbers["runs"]) == (2, 5)
    assert (numbers["gap_learned_ncf_rule_holds"], numbers["learned_settings"]) == (2, 3)
    assert (numbers["pretrained_epoch0"], numbers["pretrained_runs"]) == (1, 1)  # k >= 16
    # MLP d=16 and NeuMF d=24 are ahead on both metrics, the two MLP rows beyond the interval
    assert [numbers[k] for k in ("learned_above", "learned_beyond", "learned_compared")] == [2, 2, 3]
    assert (numbers["strongest_above"], numbers["strongest_dims"]) == (1, 1)
    assert numbers["strongest_gap_min"] == pytest.approx(0.01) == numbers["strongest_gap_max"]
    at_8 = summaries.ncf_prose_numbers(*_ncf_tables(), from_factor=8)
    assert (at_8["pretrained_epoch0"], at_8["pretrained_runs"]) == (2, 3)
    assert "gap_neumf_24" not in numbers  # only the models the comparison holds
    # plain Python numbers: glue's text/plain must parse as a literal, not "np.float64(...)"
    assert all(type(v) in (int, float) for v in numbers.values())


def _with_adam(adam_hr: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MF against from-scratch, SGD- and Adam-fine-tuned NeuMF; Adam has run at d = 24 only."""
    versus = pd.DataFrame({
        "model": ["NeuMF (no pre-training)", "NeuMF (pre-trained)", "NeuMF (pre-trained)",
                  "NeuMF (pre-trained, Adam fine-tuning)"], "dim": [24, 24, 48, 24],
        "hr10_ours": [0.71, 0.71, 0.72, 0.71], "hr10_ncf": [0.68, 0.70, 0.69, adam_hr]})
    versus["hr10_diff"] = versus["hr10_ours"] - versus["hr10_ncf"]
    versus["hr10_beyond_ci"] = versus["hr10_diff"].abs() > 0.004
    runs = pd.DataFrame({"model": "NeuMF-pretrained-adam", "dim": 24, "seed": [0, 1, 2]})
    return versus, runs


def test_the_strongest_neumf_at_each_d_and_the_adam_sentence():
    versus, runs = _with_adam(0.715)
    strongest = summaries.strongest_neumf(versus)
    assert strongest[["dim", "model"]].values.tolist() == [
        [24, "NeuMF (pre-trained, Adam fine-tuning)"], [48, "NeuMF (pre-trained)"]]
    assert strongest["hr10_diff"].tolist() == pytest.approx([-0.005, 0.03])
    text = summaries.adam_finetuning_text(versus, runs)
    assert ("HR@10 0.7150 at d = 24 (mean of 3 seeds, 0.7000 fine-tuned with SGD), where it "
            "is 0.0050 above our MF, a learned similarity beating our dot product.") in text
    assert text.endswith("It has not run at d = 48.")
    behind = summaries.adam_finetuning_text(*_with_adam(0.708))
    assert "where our MF is 0.0020 above it, within our MF's 95% interval." in behind
    none = summaries.adam_finetuning_text(versus[~versus["model"].str.contains("Adam")], runs)
    assert none.startswith("Pre-trained NeuMF fine-tuned with Adam") and "no committed run" in none


def test_selected_epochs_one_row_per_model_and_k_one_column_per_seed():
    table = summaries.selected_epochs(_ncf_tables()[2])
    assert list(table.index) == [("NeuMF (no pre-training)", 8), ("NeuMF (pre-trained)", 8),
                                 ("NeuMF (pre-trained)", 16)]
    assert table.loc[("NeuMF (pre-trained)", 8)].tolist() == [0, 3]
    assert table.loc[("NeuMF (pre-trained)", 16)].tolist()[0] == 0
    assert table.loc[("NeuMF (pre-trained)", 16)].isna().tolist() == [False, True]  # no seed 1


def _mf_run_rows() -> pd.DataFrame:
    """MF runs of two dims and three seeds, plus rows Figure 2 must leave out."""
    base = {"dataset": "ml-1m", "split": "test", "model": "MF", "epochs": 256, "lr": 0.002,
            "reg": 0.005, "negatives": 8, "dtype": "float64", "threads": 1}
    rows = [{**base, "dim": d, "seed": s, "hr10": h, "ndcg10": n}
            for d, s, h, n in [(64, 0, 0.70, 0.40), (64, 1, 0.72, 0.42), (64, 2, 0.74, 0.44),
                               (192, 0, 0.73, 0.45), (192, 1, 0.73, 0.45)]]
    rows += [{**base, "dim": 64, "seed": 0, "hr10": 0.1, "ndcg10": 0.1, "dtype": "float32"},
             {**base, "dim": 64, "seed": 0, "hr10": 0.1, "ndcg10": 0.1, "split": "tuning"},
             {**base, "dim": 64, "seed": 0, "hr10": 0.1, "ndcg10": 0.1, "threads": 2},
             {**base, "dim": 64, "seed": 0, "hr10": 0.1, "ndcg10": 0.1, "dataset": "pinterest-20"},
             # smoke runs published beside the full ones: another key, never in Figure 2
             {**base, "dim": 64, "seed": 0, "hr10": 0.1, "ndcg10": 0.1, "epochs": 1},
             {**base, "dim": 64, "seed": 3, "hr10": 0.1, "ndcg10": 0.1, "lr": 0.05},
             {**base, "dim": 64, "seed": 3, "hr10": 0.1, "ndcg10": 0.1, "negatives": 1},
             {**base, "dim": 64, "seed": 3, "hr10": 0.1, "ndcg10": 0.1, "reg": 0.0}]
    return pd.DataFrame(rows)


def test_full_mf_runs_keep_the_papers_settings_only():
    kept = summaries.full_mf_runs(_mf_run_rows())
    assert len(kept) == 5 and kept["hr10"].min() == pytest.approx(0.70)


def test_section3_results_load_filter_and_average(tmp_path):
    _mf_run_rows().to_csv(tmp_path / "mf_runs.csv", index=False)
    results = summaries.section3_results(tmp_path)
    assert results.mf["dim"].tolist() == [64, 192]
    assert results.mf["hr10"].tolist() == pytest.approx([0.72, 0.73])
    assert results.mf_seeds == (2, 3)
    assert results.ncf.empty and results.ncf_runs.empty  # no ncf_runs.csv
    assert set(results.published["dataset"]) == {"ml-1m"}
    ncf = pd.DataFrame({"dataset": "ml-1m", "model": "NeuMF", "predictive_factor": 64,
                        "dim": 192, "seed": [0, 1, 2, 3], "max_epochs": [20, 20, 20, 1],
                        "lr": 0.001, "finetune_lr": 0.001, "negatives": 4, "batch_size": 256,
                        "reg": 0.0, "validation": NCF_VALIDATION, "max_batches": [0, 0, 50, 0],
                        "hr10": [0.69, 0.71, 0.2, 0.2], "ndcg10": [0.41, 0.43, 0.1, 0.1],
                        "hr10_test_selected": [0.70, 0.71, 0.2, 0.2],
                        "ndcg10_test_selected": [0.41, 0.43, 0.1, 0.1]})
    ncf.to_csv(tmp_path / "ncf_runs.csv", index=False)
    results = summaries.section3_results(tmp_path)
    assert results.ncf["seeds"].tolist() == [2]  # the two smoke runs are left out
    assert results.ncf["hr10"].tolist() == pytest.approx([0.70])


def test_table1_beside_published_puts_our_rows_with_intervals_below_the_paper(tmp_path):
    _mf_run_rows().to_csv(tmp_path / "mf_runs.csv", index=False)
    table = summaries.table1_beside_published(summaries.section3_results(tmp_path), dim=64)
    assert table.columns.tolist() == ["model", "hr10", "hr10_ci95", "ndcg10", "ndcg10_ci95",
                                      "seeds", "source"]
    paper = table[table["source"] == "Rendle et al."].iloc[0]
    assert paper["hr10"] == pytest.approx(0.7294) and pd.isna(paper["hr10_ci95"])
    assert paper["source"] == "Rendle et al."
    ours = table.iloc[-1]
    # HR@10 0.70, 0.72, 0.74: sd 0.02, t(0.975, 2) = 4.3027: half-width 4.3027 * 0.02 / sqrt(3)
    assert ours["hr10"] == pytest.approx(0.72) and ours["hr10_ci95"] == pytest.approx(0.049683, rel=1e-4)
    assert ours["seeds"] == 3 and ours["source"] == "ours, last epoch"
    assert len(table) == 6  # the five rows of Rendle et al.'s Table 1 and ours
    assert table["model"].tolist()[-2:] == ["Matrix Factorization"] * 2
    further = summaries.table1_beside_published(summaries.section3_results(tmp_path), further=True)
    assert "EASE^R" in further["model"].tolist()
    assert "Dacrema et al., extra" in further["source"].tolist()


def test_coarse_grid_means_compare_only_settings_every_value_ran_with():
    grid = pd.DataFrame({"lr": [0.001, 0.001, 0.002, 0.001, 0.001],
                         "reg": [0.001, 0.001, 0.005, 0.01, 0.01],
                         "negatives": [4, 8, 8, 4, 8],
                         "hr10": [0.70, 0.80, 0.90, 0.60, 0.64]})
    means = summaries.coarse_grid_means(grid, "negatives")
    assert means["negatives"].tolist() == [4, 8]
    assert means["hr10"].tolist() == pytest.approx([0.65, 0.72])  # (0.7 + 0.6) / 2, (0.8 + 0.64) / 2
    assert means["settings"].tolist() == [2, 2]  # the m = 8 cell at lr 0.002 is left out


def test_init_text_compares_the_spread_with_the_intervals_by_hand():
    sweep = pd.DataFrame({"dim": 64, "init_std": [0.01, 0.1, 0.3],
                          "hr10": [0.720, 0.726, 0.724], "hr10_ci95": [0.002, 0.003, 0.002]})
    text = summaries.init_text(sweep)
    assert text.startswith("Over σ = 0.01, 0.1, 0.3 the mean HR@10 moves by 0.0060, from "
                           "0.7200 (σ = 0.01) to 0.7260 (σ = 0.1): beyond")  # 0.006 > 0.005
    wide = summaries.init_text(sweep.assign(hr10_ci95=0.004))
    assert "within the seeds' 95% intervals" in wide
    assert "no committed run yet" in summaries.init_text(sweep.iloc[0:0])
