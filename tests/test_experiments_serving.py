"""``reproduce serving`` on the experiment engine: a tiny grid run in this process gives rows and
curves with the expected columns and sane values (recall in [0, 1], exact search at recall 1,
two-stage with every item as candidate exact), a rerun skips finished cells, settings a method
does not use collapse into one cell, and a bad setting is refused naming its option."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ncf_vs_mf import cli, experiments
from ncf_vs_mf.config import results_dir
from ncf_vs_mf.experiments import serving as grid
from ncf_vs_mf.experiments.engine import SettingsError
from ncf_vs_mf.report import serving as report

TINY = dict(catalogs=["trained-like", "isotropic"], ns=[300], dims=[8], pool=0, users=40,
            recall_queries=30, latency_queries=3, latency_budget=0.01, stage_queries=10,
            mlp_steps=5)
METHODS = ["stats", "exact", "ivf", "hnsw-ip", "mlp-top-k", "two-stage-exact"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    experiments.reproduce("serving", methods=METHODS, **TINY, runs=folder / "runs",
                          out=folder / "out", scheduler="inprocess")
    experiments.reproduce("serving", methods=["dot-torch", "mlp-cached", "select"],
                          catalogs=["isotropic"], ns=[300, 600], dims=[8], batches=[1, 4],
                          runs=folder / "runs", out=folder / "out", scheduler="inprocess")
    runs = pd.read_csv(folder / "out" / "serving_runs.csv")
    curves = pd.read_csv(folder / "out" / "serving_curves.csv")
    return folder, runs, curves


def test_rows_have_the_declared_key_and_one_row_per_cell(tiny):
    _, runs, curves = tiny
    key = list(experiments.get("serving").key)
    assert list(runs.columns[:len(key)]) == key and "run_id" in runs.columns
    assert not runs.duplicated(key).any() and not curves.duplicated(key + ["setting"]).any()
    # 6 methods x 2 catalogues, then dot and MLP at 2 n x 2 batches and select at 2 n
    assert len(runs) == 12 + 2 * 2 * 2 + 2


def test_recall_is_a_share_and_exact_search_finds_the_exact_top_k(tiny):
    _, _, curves = tiny
    assert curves["recall"].between(0, 1).all()
    assert (curves.loc[curves["method"] == "exact", "recall"] == 1.0).all()
    assert (curves["latency_ms"] > 0).all()
    ivf = curves[curves["method"] == "ivf"].sort_values("setting")
    assert len(ivf) > 1
    for _, g in ivf.groupby("catalog"):  # every cell scanned: exact
        assert g["recall"].iloc[-1] == pytest.approx(1.0)


def test_two_stage_with_more_candidates_recovers_more_of_the_mlp_top_k(tiny):
    _, _, curves = tiny
    stages = curves[curves["method"] == "two-stage-exact"]
    for _, g in stages.groupby("catalog"):
        g = g.sort_values("setting")
        assert list(g["setting"]) == [10, 20, 50, 100, 200]  # C <= n
        # an item of the MLP's top-k among C candidates is among any larger set's top-k
        assert g["recall"].is_monotonic_increasing


def test_scoring_rows_are_per_user_times_and_the_record_reads_back(tiny):
    folder, runs, _ = tiny
    scoring = runs[runs["method"].isin(grid.SCORING)]
    assert (scoring["seconds"] > 0).all()
    assert scoring["seconds_per_user"].to_numpy() == pytest.approx(
        (scoring["seconds"] / scoring["batch"]).to_numpy())
    assert set(scoring.loc[scoring["method"] == "select", "d"]) == {0}
    assert set(scoring.loc[scoring["method"] != "select", "seed"]) == {8}  # seeded by d
    record = report.load_record(folder / "out", 0.9, 20)
    assert {r["family"] for r in record["scoring"]} == {"dot", "mlp", "select"}
    assert {s["catalog"] for s in record["catalog_stats"]} == {"trained-like", "isotropic"}
    assert record["parameters"] == {"rerank": 20, "index_dim": 8}
    brute = [r for r in record["two_stage"] if r["method"].startswith("exact MLP")]
    assert [r["candidates"] for r in brute] == [300, 300]
    stats = {s["catalog"]: s for s in record["catalog_stats"]}
    assert stats["trained-like"]["item_spectrum_decay"] > stats["isotropic"][
        "item_spectrum_decay"]


def test_a_rerun_skips_every_finished_cell(tiny, capsys):
    folder, runs, _ = tiny
    before = (folder / "out" / "serving_runs.csv").read_bytes()
    experiments.reproduce("serving", methods=METHODS, **TINY, runs=folder / "runs",
                          out=folder / "out", scheduler="inprocess")
    assert "12 of 12 cells already done; 0 to run" in capsys.readouterr().out
    assert (folder / "out" / "serving_runs.csv").read_bytes() == before


def test_a_remeasurement_replaces_the_older_row_in_what_the_chapter_reads(tiny, tmp_path):
    folder, _, _ = tiny
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    experiments.reproduce("serving", methods=["exact"], **{**TINY, "catalogs": ["isotropic"]},
                          threads=2, runs=tmp_path / "runs", out=out, scheduler="inprocess")
    runs = pd.read_csv(out / "serving_runs.csv")
    assert sorted(runs.loc[runs["method"] == "exact", "threads"]) == [1, 1, 2]
    record = report.load_record(out)
    builds = [(b["catalog"], b["index"]) for b in record["index_builds"]]
    assert len(builds) == len(set(builds)) == 6
    exact = [c for c in record["index_curves"] if c["index"] == "exact"]
    assert len(exact) == 2  # one setting per catalogue, the re-measured one for isotropic


def test_unused_settings_collapse_into_one_cell():
    serving_experiment = experiments.get("serving")
    values = {f.name: serving_experiment.defaults.get(f.name) for f in serving_experiment.fields()}
    values.update(method=["select", "exact"], catalog=["ml-1m"], n=[1000, 2000], d=[16, 64],
                  batch=[1, 64], seed=[0])
    cells = serving_experiment.grid({k: list(v) if isinstance(v, tuple) else v
                                     for k, v in values.items()}, {"threads": 1})
    # exact on ml-1m: its 3,706 items whatever n, batch 1: one cell per d;
    # select: no d, no catalogue, batch 1: one cell per n
    assert sorted((c.method, c.n, c.d) for c in cells) == [
        ("exact", 3706, 16), ("exact", 3706, 64), ("select", 1000, 0), ("select", 2000, 0)]
    assert all(c.hnsw_m == 0 and c.decay == 0.0 for c in cells)


def test_too_slow_scoring_settings_are_left_out_of_the_grid():
    cell = grid.ServingCell(method="mlp-module", catalog="isotropic", n=1_000_000, d=256,
                            batch=1, seed=0, pool=0, users=64, k=10, recall_queries=0,
                            latency_queries=0, latency_budget=0.0, stage_queries=0, hnsw_m=0,
                            hnsw_ef_construction=0, ivf_nlist=0, scann_reorder=0, decay=0.0,
                            norm_spread=0.0, mf_epochs=0, mlp_steps=0, candidates=0,
                            threads=1)
    # 18 d^2 + d multiply-adds per pair at d = 256: 1.18e12 > 7e11
    assert grid.work_per_pair("mlp-module", 256) == 18 * 256 ** 2 + 256
    assert not grid.fits_budget(cell)
    assert grid.work_per_pair("mlp-cached", 256) == 10 * 256 ** 2 + 256


@pytest.mark.parametrize("options, message", [
    (dict(methods=["exact"], ns=[5], k=10), "--k 10: more than the n = 5 items"),
    (dict(methods=["hnsw"], hnsw_m=1), "--hnsw-m 1: need >= 2"),
    (dict(methods=["dot-torch"], catalogs=["ml-1m"]), "--catalogs ml-1m: scoring methods"),
    (dict(methods=["exact"], users=10, recall_queries=30), "--users 10: need >= 30"),
    (dict(methods=["mlp-top-k"], latency_budget=0), "--latency-budget 0.0: need a number"),
])
def test_a_bad_setting_is_refused_naming_its_option(tmp_path, options, message):
    options = {"catalogs": ["isotropic"], "dims": [8], **options}
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        experiments.reproduce("serving", **options, runs=tmp_path / "runs",
                              scheduler="inprocess")
    assert not (tmp_path / "runs" / "serving").exists()


def test_the_command_line_refuses_a_bad_setting_in_one_line(tmp_path, capsys):
    status = cli.main(["reproduce", "serving", "--methods", "exact", "--catalogs", "isotropic",
                       "--ns", "5", "--runs", str(tmp_path), "--scheduler", "inprocess"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--k 10" in error


def test_the_committed_tables_read_back_complete():
    record = report.load_record(results_dir() / experiments.get("serving").folder)
    assert len(record["scoring"]) == 215 and len(record["index_builds"]) == 39
    assert {s["catalog"] for s in record["catalog_stats"]} == {"ml-1m", "trained-like",
                                                               "isotropic"}
    exact = [c for c in record["index_curves"] if c["index"] == "exact"]
    assert exact and all(c["recall"] == 1.0 for c in exact)
    assert all(0 <= c["recall"] <= 1 for c in record["index_curves"])
