"""``reproduce sampled-vs-full``: model settings parsed and checked (errors name the option),
the NCF epochs read from the committed table, tiny MF and GMF runs on synthetic data scored
under every protocol, a grid through the engine, and the committed rows repeat the numbers the
MF and NCF chapters committed for the same runs."""

import numpy as np
import pandas as pd
import pytest

from ncf_vs_mf import experiments
from ncf_vs_mf.experiments import sampled
from ncf_vs_mf.experiments.engine import Context
from ncf_vs_mf.results import RESULTS_DIR

TINY = dict(dataset="synthetic", seed=0, draws=2, sample_sizes="5 20")


def _cell(model, **changes):
    return sampled.SampledCell(**{**TINY, "model": model, **changes})


def test_model_settings_are_parsed():
    assert sampled.parse_model("MF-192") == ("MF", 192)
    assert sampled.parse_model("NeuMF-16") == ("NeuMF", 16)
    assert sampled.parse_model("EASE^R") == (sampled.BASELINE, 0)
    assert sampled.parse_model("MF") == ("", 0)
    assert _cell("MF-4").epochs == sampled.MF_EPOCHS


def test_bad_settings_name_their_option():
    problems = " ".join(sampled.check(_cell("MLP", seed=-1, draws=0, sample_sizes="5 x")))
    assert "--models MLP: expected MF-<d>" in problems
    assert "--seeds -1" in problems and "--draws 0" in problems
    assert "--sample-sizes '5 x'" in problems
    assert "--models MF-1: need d >= 2" in " ".join(sampled.check(_cell("MF-1")))
    missing = " ".join(sampled.check(_cell("GMF-8", dataset="ml-100k")))
    assert "--models GMF-8: no validation-selected epoch for seed 0 on ml-100k" in missing
    untuned = " ".join(sampled.check(_cell("EASE^R", dataset="ml-100k")))
    assert "--models EASE^R: no tuned setting on ml-100k" in untuned


def test_baselines_take_the_setting_their_chapter_tuned():
    runs = pd.read_csv(RESULTS_DIR / "baselines" / "baselines_runs.csv")
    chosen = runs[(runs["model"] == "iALS") & (runs["split"] == "test") & (runs["seed"] == 1)]
    row = sampled.baseline_row("ml-1m", "iALS", 1)
    assert row["params"] == chosen["params"].iloc[0] and row["hr10"] == chosen["hr10"].iloc[0]
    assert sampled.baseline_row("ml-1m", "EASE^R", 2)["seed"] == 0  # deterministic: one row
    assert sampled.check(_cell("EASE^R", dataset="ml-1m")) == []


def test_ncf_epochs_are_those_the_ncf_chapter_selected():
    runs = pd.read_csv(RESULTS_DIR / "ncf_experiments" / "ncf_runs.csv")
    row = runs[(runs["model"] == "MLP") & (runs["predictive_factor"] == 8) & (runs["seed"] == 0)]
    assert _cell("MLP-8", dataset="ml-1m").epochs == int(row["epochs_selected"].iloc[0])
    assert _cell("MLP-8", dataset="ml-1m", seed=99).epochs == -1


def _check_run(result, model):
    rows = {(r["protocol"], r["estimator"], r["m"], r["draw"]): r for r in result.curves}
    assert len(rows) == len(result.curves) == 1 + 2 + 2 * 2 * 2
    ncf, full = rows[("ncf", "sampled", 99, 0)], rows[("full", "exact", 0, 0)]
    assert result.row["hr10_ncf"] == ncf["hr10"] and result.row["hr10_full"] == full["hr10"]
    # the score matrix ranks NCF's candidates exactly as the trainer's own evaluation did
    assert result.row["hr10_trainer"] == pytest.approx(ncf["hr10"], abs=1e-12)
    assert result.row["hr10_full"] <= rows[("uniform", "sampled", 20, 0)]["hr10"]
    assert np.isfinite([r["hr10"] for r in result.curves]).all(), model


def test_a_tiny_mf_run_is_scored_under_every_protocol():
    _check_run(sampled.run_cell(_cell("MF-4"), Context()), "MF-4")


def test_a_tiny_gmf_run_is_scored_under_every_protocol():
    cell = _cell("GMF-2")
    object.__setattr__(cell, "epochs", 1)  # synthetic data has no committed NCF epochs
    _check_run(sampled.run_cell(cell, Context()), "GMF-2")


def test_a_grid_runs_through_the_engine(tmp_path):
    experiments.reproduce("sampled-vs-full", dataset="synthetic", models=["MF-4"], seeds=[0],
                          draws=2, sample_sizes="5 20", runs=tmp_path / "runs",
                          out=tmp_path / "out", scheduler="inprocess")
    runs = pd.read_csv(tmp_path / "out" / "sampled_runs.csv")
    curves = pd.read_csv(tmp_path / "out" / "sampled_protocols.csv")
    assert runs["model"].tolist() == ["MF-4"] and len(curves) == 11
    assert set(curves["protocol"]) == {"ncf", "uniform", "full"}


COMMITTED = RESULTS_DIR / "sampled_metrics" / "sampled_runs.csv"


@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed sampled-vs-full runs yet")
def test_committed_rows_repeat_the_numbers_of_the_mf_and_ncf_chapters():
    runs = pd.read_csv(COMMITTED)
    mf = pd.read_csv(RESULTS_DIR / "ncf_experiments" / "mf_runs.csv")
    ncf = pd.read_csv(RESULTS_DIR / "ncf_experiments" / "ncf_runs.csv")
    for row in runs.itertuples():
        if row.family == "MF":
            match = mf[(mf["dim"] == row.size) & (mf["seed"] == row.seed) & (mf["split"] == "test")
                       & (mf["epochs"] == 256) & (mf["dtype"] == "float64")]
        elif row.family in sampled.NCF_FAMILIES:
            match = ncf[(ncf["model"] == row.family) & (ncf["predictive_factor"] == row.size)
                        & (ncf["seed"] == row.seed) & (ncf["max_batches"] == 0)]
        else:
            match = pd.DataFrame({"hr10": [sampled.baseline_row(row.dataset, row.model,
                                                                row.seed)["hr10"]]})
        assert row.hr10_trainer in set(match["hr10"]), row.model
        assert row.hr10_ncf == pytest.approx(row.hr10_trainer, abs=1e-9), row.model
        assert row.hr10_full < row.hr10_ncf, row.model


def _curves():
    rows = []
    for model, full, ncf, uniform in [("MF-64", 0.10, 0.60, (0.90, 0.90)),
                                      ("MLP-8", 0.08, 0.65, (0.80, 0.95)),
                                      ("Popularity", 0.05, 0.50, (0.70, 0.60))]:
        rows.append({"model": model, "protocol": "full", "estimator": "exact", "m": 0,
                     "draw": 0, "hr10": full})
        rows.append({"model": model, "protocol": "ncf", "estimator": "sampled", "m": 99,
                     "draw": 0, "hr10": ncf})
        rows += [{"model": model, "protocol": "uniform", "estimator": "sampled", "m": 10,
                  "draw": d, "hr10": v} for d, v in enumerate(uniform)]
    return pd.DataFrame(rows)


def test_report_names_flipped_pairs_and_kendalls_tau_by_hand():
    from ncf_vs_mf.report import sampled as report

    curves = _curves()
    flips = report.flipped_pairs(curves, "ncf", 99)
    assert flips[["better", "worse"]].values.tolist() == [["MF d=64", "MLP k=8"]]
    assert flips["full_gap"].iloc[0] == pytest.approx(0.02)
    # the means 0.90 > 0.875 keep full ranking's order, though one of the two draws flips it
    assert report.flipped_pairs(curves, "uniform", 10).empty
    taus = report.kendall_taus(curves).set_index(["protocol", "m", "draw"])["tau"]
    assert taus[("ncf", 99, 0)] == pytest.approx(1 / 3)  # one of three pairs discordant
    assert taus[("uniform", 10, 0)] == pytest.approx(1.0)  # 0.90 > 0.80 > 0.70: full's order
    assert taus[("uniform", 10, 1)] == pytest.approx(1 / 3)  # 0.95 > 0.90: one pair flips
    table = report.protocol_table(curves)
    assert table["Model"].tolist() == ["MF d=64", "MLP k=8", "Popularity"]
    assert table["m = 10"].tolist() == pytest.approx([0.90, 0.875, 0.65])


def test_mf_versus_learned_counts_the_sampled_wins_that_survive_by_hand():
    from ncf_vs_mf.report import sampled as report

    runs = pd.DataFrame({"model": ["MF-16", "MLP-8", "NeuMF-8", "SLIM"],
                         "hr10_ncf": [0.70, 0.66, 0.71, 0.72],
                         "hr10_full": [0.090, 0.095, 0.080, 0.11]})
    pairs, verdict = report.mf_versus_learned(runs)
    assert pairs[["mf", "other", "other_d"]].values.tolist() == [
        ["MF d=16", "MLP k=8", 16], ["MF d=16", "NeuMF k=8", 24]]
    assert pairs["ncf_gap"].tolist() == pytest.approx([0.04, -0.01])
    assert pairs["full_gap"].tolist() == pytest.approx([-0.005, 0.01])
    # MF wins the MLP pair under NCF's protocol only and the NeuMF pair under full ranking only
    assert verdict.startswith("MF is above MLP or NeuMF in 1 of these 2 pairs under NCF's "
                              "protocol and in 1 under full ranking; 0 of its sampled wins")
    assert report.mf_versus_learned(runs[runs["model"] == "SLIM"])[0].empty
