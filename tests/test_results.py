"""Result tables and the resumable grid runner."""

import json
import os
import stat

import pandas as pd
import pytest

from ncf_vs_mf import summaries
from ncf_vs_mf.reproduce import reproduce_mf
from ncf_vs_mf.results import Invocation, ResultTable, atomic_write_text, provenance_overview


def test_table_appends_rows_with_provenance(tmp_path):
    table = ResultTable(tmp_path / "runs.csv", ["model", "dim"])
    first = Invocation("cmd a", {"x": 1}, {"dataset": "toy"})
    table.append([{"model": "MF", "dim": 8, "hr10": 0.5}], first)
    second = Invocation("cmd b", {"x": 2}, {"dataset": "toy"})
    table.append([{"model": "MF", "dim": 16, "hr10": 0.6}], second)
    rows = table.read()
    assert rows[["dim", "hr10"]].values.tolist() == [[8, 0.5], [16, 0.6]]
    assert table.done() == {("MF", 8), ("MF", 16)}
    records = {r["run_id"]: r for r in table.provenance()}
    assert set(rows["run_id"]) == set(records)
    record = records[first.run_id]
    assert record["command"] == "cmd a" and record["rows_added"] == 1
    for field in ("commit", "libraries", "machine", "started", "duration_seconds", "data"):
        assert field in record


def test_run_ids_that_look_like_numbers_stay_text(tmp_path):
    """uuid hex ids can read as floats ("51e801234567" -> inf); the table must keep them and
    count each invocation's rows (this once failed about 1 run in 200)."""
    table = ResultTable(tmp_path / "runs.csv", ["dim"])
    numeric = [Invocation("cmd a", {}, {}, run_id="51e801234567"),
               Invocation("cmd b", {}, {}, run_id="000000000012")]
    table.append([{"dim": 8}, {"dim": 16}], numeric[0])
    table.append([{"dim": 32}], numeric[1])
    assert table.read()["run_id"].tolist() == ["51e801234567"] * 2 + ["000000000012"]
    assert [r["rows_added"] for r in table.provenance()] == [2, 1]


def test_provenance_names_the_commit_the_run_started_from(tmp_path, monkeypatch):
    from ncf_vs_mf import results

    invocation = Invocation("cmd", {}, {})
    started_at = results.git_commit()
    monkeypatch.setattr(results, "git_commit", lambda: "a-later-commit")
    table = ResultTable(tmp_path / "runs.csv", ["dim"])
    table.append([{"dim": 8}], invocation)
    assert table.provenance()[0]["commit"] == started_at != "a-later-commit"


def test_provenance_overview_has_one_line_per_invocation(tmp_path):
    table = ResultTable(tmp_path / "runs.csv", ["dim"])
    assert provenance_overview(table).empty
    table.append([{"dim": 8}, {"dim": 16}], Invocation("cmd a", {}, {}))
    table.append([{"dim": 32}], Invocation("cmd b", {}, {}))
    overview = provenance_overview(table)
    assert overview["command"].tolist() == ["cmd a", "cmd b"]
    assert overview["run_id"].tolist() == [r["run_id"] for r in table.provenance()]
    assert overview["rows"].tolist() == [2, 1]
    assert "cores" in overview["machine"].iloc[0]


def test_rows_must_carry_the_key(tmp_path):
    table = ResultTable(tmp_path / "runs.csv", ["model", "dim"])
    with pytest.raises(ValueError, match="lack key columns.*dim"):
        table.append([{"model": "MF"}], Invocation("c", {}, {}))


def _append_rows(path: str, writer: int, count: int) -> None:
    """Worker of the concurrency test: ``count`` single-row appends, each its own invocation."""
    table = ResultTable(path, ["writer", "i"])
    for i in range(count):
        table.append([{"writer": writer, "i": i}], Invocation("test", {}, {}))


def test_concurrent_writers_lose_no_rows(tmp_path):
    import multiprocessing

    path = str(tmp_path / "t.csv")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_rows, args=(path, w, 15)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    table = ResultTable(path, ["writer", "i"])
    rows = table.read()
    assert sorted(zip(rows["writer"], rows["i"])) == [(w, i) for w in range(3) for i in range(15)]
    assert len(table.provenance()) == 45  # every invocation's record kept too


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello\n")
    atomic_write_text(tmp_path / "a.txt", "again\n")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "again\n"


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(tmp_path / "a.txt", "bad \ud800 surrogate")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old\n"


def test_a_grid_in_two_processes_gives_the_rows_of_one(tmp_path):
    """The spawned workers (``parallel.worker_pool``) train exactly what the serial path does."""
    kwargs = dict(dataset="synthetic", dims=[4, 8], seeds=[0], epochs=2, lr=[0.05], eval_every=1)
    timing = ["run_id", "seconds", "updates_per_second"]
    serial, parallel = (reproduce_mf(jobs=jobs, out=tmp_path / str(jobs), **kwargs)
                        .drop(columns=timing).sort_values("dim").reset_index(drop=True)
                        for jobs in (1, 2))
    pd.testing.assert_frame_equal(parallel, serial)


def test_grid_resumes_and_skips_finished_cells(tmp_path):
    kwargs = dict(dataset="synthetic", dims=[4, 8], epochs=3, lr=[0.05], jobs=1, eval_every=1,
                  out=tmp_path)
    first = reproduce_mf(seeds=[0], **kwargs)
    assert len(first) == 2
    again = reproduce_mf(seeds=[0, 1], **kwargs)  # only the two seed-1 cells are new
    assert len(again) == 4
    assert again.iloc[:2].equals(first)
    runs = json.loads((tmp_path / "mf_runs.provenance.json").read_text())
    assert [r["rows_added"] for r in runs] == [2, 2]
    curves = pd.read_csv(tmp_path / "mf_curves.csv")
    assert len(curves) == 4 * 3 and set(curves["epoch"]) == {1, 2, 3}
    # the curve's last epoch is the reported number
    last = curves[curves["epoch"] == 3].sort_values(["seed", "dim"])["hr10"].tolist()
    assert last == again.sort_values(["seed", "dim"])["hr10"].tolist()


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
        "hr10_beyond_ci": [False, True, True, False]})
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
    at_8 = summaries.ncf_prose_numbers(*_ncf_tables(), from_factor=8)
    assert (at_8["pretrained_epoch0"], at_8["pretrained_runs"]) == (2, 3)
    assert "gap_neumf_24" not in numbers  # only the models the comparison holds
    # plain Python numbers: glue's text/plain must parse as a literal, not "np.float64(...)"
    assert all(type(v) in (int, float) for v in numbers.values())


def test_selected_epochs_one_row_per_model_and_k_one_column_per_seed():
    table = summaries.selected_epochs(_ncf_tables()[2])
    assert list(table.index) == [("NeuMF (no pre-training)", 8), ("NeuMF (pre-trained)", 8),
                                 ("NeuMF (pre-trained)", 16)]
    assert table.loc[("NeuMF (pre-trained)", 8)].tolist() == [0, 3]
    assert table.loc[("NeuMF (pre-trained)", 16)].tolist()[0] == 0
    assert table.loc[("NeuMF (pre-trained)", 16)].isna().tolist() == [False, True]  # no seed 1


def test_provenance_catalog_lists_each_invocation_once_with_its_tables(tmp_path):
    import json as _json

    from ncf_vs_mf.results import provenance_catalog

    record = {"run_id": "abc", "command": "ncf-vs-mf reproduce mf --data-dir /home/u/data",
              "commit": "0123456789abcdef+dirty", "machine": {"cpu": "CPU X", "cores": 2},
              "started": "2026-11-01T10:00:00+00:00", "duration_seconds": 3725.0,
              "rows_added": 3}
    folder = tmp_path / "results" / "chapter"
    folder.mkdir(parents=True)
    (folder / "mf_runs.provenance.json").write_text(_json.dumps([record]))
    (folder / "mf_curves.provenance.json").write_text(_json.dumps([{**record, "rows_added": 90}]))
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "speed.json").write_text(_json.dumps({"benchmark": "speed", "commit": "fedcba9876",
                                                   "machine": {"cpu": "CPU Y", "cores": 4},
                                                   "started": "2026-11-02T00:00:00"}))
    first, second = provenance_catalog(tmp_path / "results", bench).to_dict("records")
    assert first == {"chapter": "chapter", "tables": "mf_curves, mf_runs",
                     "command": "ncf-vs-mf reproduce mf --data-dir DIR", "commit": "0123456789",
                     "clean": False, "machine": "CPU X, 2 cores", "started": "2026-11-01",
                     "duration": "1 h 02 min", "rows": 3}
    assert {k: second[k] for k in ("chapter", "tables", "command", "clean", "started")} == {
        "chapter": "benchmarks", "tables": "speed", "command": "python benchmarks/speed.py",
        "clean": True, "started": "2026-11-02"}
    assert pd.isna(second["duration"]) and pd.isna(second["rows"])  # not recorded
