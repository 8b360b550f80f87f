"""Result tables and the resumable grid runner."""

import json
import os
import stat

import pandas as pd
import pytest

from ncf_vs_mf import experiments
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
    """A LocalCluster of two worker processes trains exactly what the in-process path does."""
    kwargs = dict(dataset="synthetic", dims=[4, 8], seeds=[0], epochs=2, lr=[0.05], eval_every=1)
    timing = ["run_id", "seconds", "updates_per_second"]
    serial, parallel = (experiments.reproduce("mf", jobs=jobs, out=tmp_path / str(jobs), runs=tmp_path / f"runs{jobs}",
                                     **kwargs)
                        .drop(columns=timing).sort_values("dim").reset_index(drop=True)
                        for jobs in (1, 2))
    pd.testing.assert_frame_equal(parallel, serial)


def test_grid_resumes_and_skips_finished_cells(tmp_path):
    kwargs = dict(dataset="synthetic", dims=[4, 8], epochs=3, lr=[0.05], jobs=1, eval_every=1,
                  out=tmp_path, runs=tmp_path / "runs")
    first = experiments.reproduce("mf", seeds=[0], **kwargs)
    assert len(first) == 2
    again = experiments.reproduce("mf", seeds=[0, 1], **kwargs)  # only the two seed-1 cells are new
    assert len(again) == 4
    assert again.iloc[:2].equals(first)
    runs = json.loads((tmp_path / "mf_runs.provenance.json").read_text())
    assert [r["rows_added"] for r in runs] == [2, 2]
    curves = pd.read_csv(tmp_path / "mf_curves.csv")
    assert len(curves) == 4 * 3 and set(curves["epoch"]) == {1, 2, 3}
    # the curve's last epoch is the reported number
    last = curves[curves["epoch"] == 3].sort_values(["seed", "dim"])["hr10"].tolist()
    assert last == again.sort_values(["seed", "dim"])["hr10"].tolist()


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
