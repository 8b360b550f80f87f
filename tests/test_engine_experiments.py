"""``reproduce mlp-dot``, ``gmf-reg`` and ``ncf`` on the experiment engine: a tiny grid gives the
same rows in this process and on a LocalCluster, a rerun skips finished cells, ``--publish``
appends to (a copy of) the committed tables without changing a line already there, and the
engine recomputes committed curve rows bit for bit."""

import json
import shutil

import pandas as pd
import pytest

from ncf_vs_mf import cli, experiments
from ncf_vs_mf.config import RESULTS_ENV

GRIDS = {
    "mlp-dot": dict(dims=[4], users=[300, 200], widths=[1.0], seeds=[0], epochs=1,
                    device="cpu"),
    "gmf-reg": dict(dataset="synthetic", variants=["GMF", "MF"], dims=[4], regs=[0.0, 1e-4],
                    seeds=[0], epochs=1, lr=0.01),
    # a pre-trained NeuMF requires an MLP that is not in the grid: stored, not published
    "ncf": dict(dataset="synthetic", models=["GMF", "NeuMF-pretrained"], factors=[2], seeds=[0],
                epochs=1, max_batches=20, device="cpu"),
}
ARGS = {
    "mlp-dot": ["--dims", "4", "--users", "300", "200", "--widths", "1", "--seeds", "0",
                "--epochs", "1", "--device", "cpu"],
    "gmf-reg": ["--dataset", "synthetic", "--variants", "GMF", "MF", "--dims", "4", "--regs",
                "0", "1e-4", "--seeds", "0", "--epochs", "1", "--lr", "0.01"],
    "ncf": ["--dataset", "synthetic", "--models", "GMF", "NeuMF-pretrained", "--factors", "2",
            "--seeds", "0", "--epochs", "1", "--max-batches", "20", "--device", "cpu"],
}
CELLS = {"mlp-dot": 2, "gmf-reg": 4, "ncf": 2}  # cells of each tiny grid
TIMING = ["seconds", "data_seconds", "train_seconds", "examples_per_second",
          "pretrain_seconds", "run_id"]


def _tables(name, out):
    """Runs and curves of a folder without timings, in key order."""
    experiment = experiments.get(name)
    key = list(experiment.key)
    runs = pd.read_csv(out / f"{experiment.runs_table}.csv")
    curves = pd.read_csv(out / f"{experiment.curves_table}.csv")
    runs = runs.drop(columns=[c for c in TIMING if c in runs.columns])
    curves = curves.drop(columns=[c for c in TIMING if c in curves.columns])
    return (runs.sort_values(key).reset_index(drop=True),
            curves.sort_values(list(experiment.curves_key())).reset_index(drop=True))


@pytest.fixture(scope="module", params=list(GRIDS))
def in_process(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    experiments.reproduce(name, **GRIDS[name], runs=folder / "runs", out=folder / "out",
                          scheduler="inprocess")
    return name, folder, _tables(name, folder / "out")


def test_a_local_cluster_gives_the_rows_of_the_in_process_path(in_process, tmp_path):
    name, _, reference = in_process
    experiments.reproduce(name, **GRIDS[name], jobs=2, runs=tmp_path / "runs",
                          out=tmp_path / "out", scheduler="local")
    for ours, theirs in zip(_tables(name, tmp_path / "out"), reference):
        pd.testing.assert_frame_equal(ours, theirs)
    runs, curves = reference
    assert len(runs) == CELLS[name]
    phases = curves.groupby(list(experiments.get(name).key)).size() / 2  # epochs 0 and 1
    assert len(phases) == len(runs) and set(phases) <= ({1} if name != "ncf" else {2, 3})


def test_a_dask_scheduler_and_two_workers_give_the_rows_of_the_in_process_path(
        in_process, tmp_path, dask_scheduler):
    name, _, reference = in_process
    experiments.reproduce(name, **GRIDS[name], runs=tmp_path / "runs", out=tmp_path / "out",
                          scheduler=dask_scheduler)
    for ours, theirs in zip(_tables(name, tmp_path / "out"), reference):
        pd.testing.assert_frame_equal(ours, theirs)


def test_a_rerun_skips_finished_cells(in_process, tmp_path, capsys):
    name, folder, reference = in_process
    shutil.copytree(folder / "runs", tmp_path / "runs")
    capsys.readouterr()
    grid = dict(GRIDS[name])
    more = {"mlp-dot": {"users": [300, 200, 250]}, "gmf-reg": {"regs": [0.0, 1e-4, 1e-3]},
            "ncf": {"factors": [2, 3]}}[name]
    rows = experiments.reproduce(name, **{**grid, **more}, runs=tmp_path / "runs",
                                 scheduler="inprocess")
    out = capsys.readouterr().out
    new = 1 if name == "mlp-dot" else 2
    total = CELLS[name] + new
    assert f"{CELLS[name]} of {total} cells already done" in out
    assert out.count("done ") == new
    assert len(rows) == total
    again = experiments.reproduce(name, **grid, runs=tmp_path / "runs", scheduler="inprocess")
    assert "0 to run" in capsys.readouterr().out and len(again) == len(reference[0])


def test_mlp_dot_runs_its_cheapest_cells_first(tmp_path, capsys):
    experiments.reproduce("mlp-dot", **GRIDS["mlp-dot"], runs=tmp_path,
                          scheduler="inprocess")
    out = capsys.readouterr().out
    assert out.index("M=200") < out.index("M=300")  # the grid lists 300 first


def test_publish_appends_to_the_committed_tables_without_changing_a_line(
        in_process, tmp_path, monkeypatch, capsys, repo_root):
    name, folder, _ = in_process
    experiment = experiments.get(name)
    committed = repo_root / "results" / experiment.folder
    copy = tmp_path / "results" / experiment.folder
    shutil.copytree(committed, copy)
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    status = cli.main(["reproduce", name, *ARGS[name], "--scheduler", "inprocess",
                       "--runs", str(folder / "runs"), "--publish"])  # stored runs: no training
    assert status == 0, capsys.readouterr().err
    added = CELLS[name]
    assert f"{added} of {added} cells already done" in capsys.readouterr().out
    lines_added = {experiment.runs_table: len(in_process[2][0]),
                   experiment.curves_table: len(in_process[2][1])}
    for table in (experiment.runs_table, experiment.curves_table):
        before = (committed / f"{table}.csv").read_bytes()
        after = (copy / f"{table}.csv").read_bytes()
        assert after.startswith(before)  # the header and every committed line unchanged
        lines = after[len(before):].decode().splitlines()
        assert len(lines) == lines_added[table]
        old = json.loads((committed / f"{table}.provenance.json").read_text())
        new = json.loads((copy / f"{table}.provenance.json").read_text())
        assert new[:len(old)] == old and len(new) == len(old) + 1


@pytest.mark.parametrize("args, fragments", [
    (["mlp-dot", "--dims", "5", "--widths", "0.5"], ["--widths 0.5", "whole number"]),
    (["mlp-dot", "--users", "50"], ["--users 50: need M >= 100"]),
    (["mlp-dot", "--lr", "nan"], ["--lr", "expected a number"]),
    (["mlp-dot", "--device", "gpu"], ["--device gpu"]),
    (["gmf-reg", "--dataset", "synthetic", "--regs", "-1"], ["--regs -1.0: need"]),
    (["gmf-reg", "--dataset", "synthetic", "--negatives", "-1"], ["--negatives -1: need >= 0"]),
    (["gmf-reg", "--variants", "dot"], ["--variants", "invalid choice"]),
    (["ncf", "--dataset", "synthetic", "--epochs", "0"], ["--epochs 0: need >= 1"]),
    (["ncf", "--dataset", "synthetic", "--lr", "-1"], ["--lr -1.0: need a finite value > 0"]),
    (["ncf", "--dataset", "synthetic", "--max-batches", "-5"], ["--max-batches -5: need >= 0"]),
    (["ncf", "--models", "BPR"], ["--models", "invalid choice"]),
])
def test_bad_settings_are_one_line_and_nothing_runs(args, fragments, tmp_path, capsys):
    try:
        status = cli.main(["reproduce", *args, "--scheduler", "inprocess",
                           "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    except SystemExit as stop:  # argparse's own checks
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and "\n" not in err.strip(), err
    assert all(f in err for f in fragments), err
    assert not any(tmp_path.rglob("*.json"))


def test_a_committed_mlp_dot_curve_row_is_recomputed_bit_for_bit(tmp_path, repo_root):
    """d = 16, M = 4,000, h = d/2, seed 0: one epoch through the engine gives exactly the
    committed epoch-1 row of the 32-epoch run (a constant learning rate: the first epochs of a
    run do not depend on how many follow)."""
    experiments.reproduce("mlp-dot", dims=[16], users=[4000], widths=[0.5], seeds=[0],
                          epochs=1, device="cpu", runs=tmp_path, scheduler="inprocess")
    (path,) = (tmp_path / "mlp-dot").glob("*.json")
    ours = json.loads(path.read_text())["curves"][-1]
    committed = pd.read_csv(repo_root / "results" / "mlp_dot" / "mlp_dot_curves.csv")
    row = committed[(committed["dim"] == 16) & (committed["users"] == 4000)
                    & (committed["width"] == 0.5) & (committed["seed"] == 0)
                    & (committed["epochs"] == 32) & (committed["epoch"] == 1)].iloc[0]
    for metric in ("train_loss", "rmse_mlp_test", "error_test", "rmse_mlp_fresh", "error_fresh"):
        assert ours[metric] == row[metric], metric


def test_a_committed_gmf_reg_curve_row_is_recomputed_bit_for_bit(ncf_data_dir, tmp_path,
                                                                  repo_root, monkeypatch):
    from ncf_vs_mf.experiments import datasets

    monkeypatch.setattr(datasets, "_SPLITS", {})  # leave no split loaded for later tests
    experiments.reproduce("gmf-reg", dataset="ml-100k", variants=["GMF"], dims=[64],
                          regs=[1e-5], seeds=[0], epochs=1, data_dir=ncf_data_dir,
                          runs=tmp_path, scheduler="inprocess")
    (path,) = (tmp_path / "gmf-reg").glob("*.json")
    ours = json.loads(path.read_text())["curves"][-1]
    committed = pd.read_csv(repo_root / "results" / "gmf_regularization" / "gmf_reg_curves.csv")
    row = committed[(committed["variant"] == "GMF") & (committed["dim"] == 64)
                    & (committed["reg"] == 1e-5) & (committed["seed"] == 0)
                    & (committed["epochs"] == 20) & (committed["epoch"] == 1)
                    & (committed["dataset"] == "ml-100k")].iloc[0]
    for metric in ("loss", "hr10", "ndcg10", "norm_p", "norm_q", "norm_w"):
        assert ours[metric] == row[metric], metric


@pytest.mark.parametrize("name, reader", [
    ("gmf-reg", "ncf_vs_mf.report.gmf_regularization"),
    ("mlp-dot", "ncf_vs_mf.report.mlp_dot"),
])
def test_a_smoke_run_published_beside_the_book_grid_never_reaches_a_chapter(
        name, reader, tmp_path, repo_root):
    """Runs of other settings (here the tiny grids: 1 epoch, lr 0.01, ...) published into a
    copy of the committed tables are new keys, so they are stored; the chapters' readers select
    the book's settings and give exactly the committed rows."""
    import importlib

    experiment = experiments.get(name)
    committed = repo_root / "results" / experiment.folder
    copy = tmp_path / experiment.folder
    shutil.copytree(committed, copy)
    experiments.reproduce(name, **GRIDS[name], runs=tmp_path / "runs", out=copy,
                          scheduler="inprocess")
    assert len(pd.read_csv(copy / f"{experiment.runs_table}.csv")) > len(
        pd.read_csv(committed / f"{experiment.runs_table}.csv"))
    read = importlib.import_module(reader).read_tables
    for ours, theirs in zip(read(copy), read(committed)):
        pd.testing.assert_frame_equal(ours, theirs)
