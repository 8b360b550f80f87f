"""Result tables and the run store cannot be corrupted silently: each probe fails loudly,
naming the file and line, and nothing is counted twice."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from ncf_vs_mf.experiments.engine import RunResult
from ncf_vs_mf.experiments.mf import MF, MFCell
from ncf_vs_mf.experiments.store import RunStore, StoreError, is_committed, publish
from ncf_vs_mf.provenance import Invocation, source_state
from ncf_vs_mf.results import DuplicateRowError, ResultTable, TableError

HEADER = "model,dim,seed,hr10,ndcg10,run_id\n"


def table_at(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return ResultTable(path, ["model", "dim", "seed"])


def test_a_truncated_last_row_is_an_error_naming_the_line(tmp_path):
    table = table_at(tmp_path, HEADER + "MF,8,0,0.5,0.2512,abc\nMF,8,1,0.6,0.25")
    with pytest.raises(TableError, match=r"runs\.csv, line 3: truncated last row"):
        table.read()
    with pytest.raises(TableError, match="line 3"):
        table.done()


def test_a_row_cut_inside_its_key_is_an_error(tmp_path):
    table = table_at(tmp_path, HEADER + "MF,8,0,0.5,0.25,abc\nMF,8\n")
    with pytest.raises(TableError, match=r"runs\.csv, line 3: expected 6 fields, got 2"):
        table.read()


def test_an_empty_key_value_and_a_duplicate_key_are_errors(tmp_path):
    with pytest.raises(TableError, match=r"line 2: empty key value in \['seed'\]"):
        table_at(tmp_path, HEADER + "MF,8,,0.5,0.25,abc\n").read()
    with pytest.raises(TableError, match=r"line 3: duplicate key .* \(first on line 2\)"):
        table_at(tmp_path, HEADER + "MF,8,0,0.5,0.25,a\nMF,8,0,0.6,0.3,b\n").read()


def test_an_empty_table_names_its_file(tmp_path):
    with pytest.raises(TableError, match=r"runs\.csv: empty file"):
        table_at(tmp_path, "").read()


def test_a_truncated_provenance_file_names_its_line_and_no_row_is_written(tmp_path):
    table = ResultTable(tmp_path / "runs.csv", ["dim"])
    table.append([{"dim": 8, "hr10": 0.5}], Invocation("cmd", {}, {}))
    text = table.provenance_path.read_text()
    table.provenance_path.write_text(text[: len(text) // 2])
    with pytest.raises(TableError, match=r"runs\.provenance\.json, line \d+: invalid JSON"):
        table.provenance()
    with pytest.raises(TableError, match="invalid JSON"):
        table.append([{"dim": 16, "hr10": 0.6}], Invocation("cmd", {}, {}))
    assert table.read()["dim"].tolist() == [8]  # the row was not written either


def test_appends_keep_integer_columns_and_old_lines_byte_for_byte(tmp_path):
    path = tmp_path / "runs.csv"
    old = ("model,dim,seed,epochs_selected,hr10,run_id\n"
           "GMF,8,0,12,0.5,a\n"
           "MLP,16,0,,0.6,a\n")  # a missing value in an integer column
    path.write_text(old)
    table = ResultTable(path, ["model", "dim", "seed"])
    table.append([{"model": "NeuMF", "dim": 24, "seed": 0, "epochs_selected": 8, "hr10": 0.7},
                  {"model": "MF", "dim": 8, "seed": 0, "hr10": 0.1}], Invocation("c", {}, {}))
    text = path.read_text()
    assert text.startswith(old)
    assert "NeuMF,24,0,8,0.7," in text and "MF,8,0,,0.1," in text
    assert "8.0" not in text and "12.0" not in text


def test_a_duplicate_row_is_refused_or_skipped(tmp_path):
    table = ResultTable(tmp_path / "runs.csv", ["dim", "seed"])
    table.append([{"dim": 8, "seed": 0, "hr10": 0.5}], Invocation("a", {}, {}))
    with pytest.raises(DuplicateRowError, match=r"runs\.csv: a row with key .*'dim': '8'"):
        table.append([{"dim": 8, "seed": 0, "hr10": 0.9}], Invocation("b", {}, {}))
    with pytest.raises(DuplicateRowError):
        table.append([{"dim": 16, "seed": 0}, {"dim": 16, "seed": 0}], Invocation("c", {}, {}))
    assert table.append([{"dim": 8, "seed": 0}, {"dim": 16, "seed": 0}], Invocation("d", {}, {}),
                        duplicates="skip") == 1
    assert sorted(table.read()["dim"]) == [8, 16]


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".mf_curves.provenance.json.pid{dead}.k2j3h4.tmp"
    stale.write_text("half a record")
    table = ResultTable(tmp_path / "mf_curves.csv", ["dim"])
    table.append([{"dim": 8}], Invocation("c", {}, {}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mf_curves.csv",
                                                          "mf_curves.provenance.json"]


def _cell(dim=8, seed=0, eval_every=8):
    return MFCell(dataset="synthetic", split="test", model="MF", dim=dim, seed=seed, epochs=2,
                  lr=0.05, reg=0.005, negatives=8, dtype="float64", threads=1,
                  eval_every=eval_every, full_ranking=0)


def _result(hr=0.5):
    return RunResult({"hr10": hr, "ndcg10": 0.25, "loss": 0.3, "seconds": 1.0,
                      "updates_per_second": 10},
                     [{"epoch": 1, "loss": 0.4, "hr10": hr / 2, "ndcg10": 0.1},
                      {"epoch": 2, "loss": 0.3, "hr10": hr, "ndcg10": 0.25}])


def _record(run_id="r1"):
    return {**Invocation("cmd", {}, {}, run_id=run_id).record(0), "finished": "2026"}


def test_the_store_keeps_the_first_run_of_a_setting(tmp_path):
    store = RunStore(tmp_path)
    assert store.save("mf", _cell(), _result(0.5), _record("a"))
    assert not store.save("mf", _cell(), _result(0.9), _record("b"))  # collapsed
    (run,) = store.runs("mf")
    assert run.result.row["hr10"] == 0.5 and run.provenance["run_id"] == "a"
    assert [p.name for p in (tmp_path / "mf").iterdir()] == [run.path.name]  # no temp files


def test_a_corrupted_or_moved_record_names_its_file(tmp_path):
    store = RunStore(tmp_path)
    store.save("mf", _cell(), _result(), _record())
    path = store.path("mf", _cell())
    text = path.read_text()
    path.write_text(text[: len(text) // 3])
    with pytest.raises(TableError, match=rf"{path.name}, line \d+: invalid JSON"):
        store.runs("mf")
    path.write_text(text)
    path.rename(store.path("mf", _cell(seed=1)))
    with pytest.raises(StoreError, match="do not match its name"):
        store.runs("mf")


def test_publishing_twice_or_after_a_crash_adds_each_run_once(tmp_path):
    store = RunStore(tmp_path / "runs")
    for seed in (0, 1):
        store.save("mf", _cell(seed=seed), _result(), _record())
    out = tmp_path / "out"
    # a publication killed between the curves and the row left the curves of seed 0
    curves = ResultTable(out / "mf_curves.csv", MF.curves_key())
    curves.append([{**MF.key_of(_cell()), **c} for c in _result().curves],
                  Invocation("killed", {}, {}))
    assert publish(MF, store.runs("mf"), out).added == 2
    again = publish(MF, store.runs("mf"), out)
    assert (again.added, again.collapsed) == (0, 2)
    # the same settings with another curve spacing is the same row: collapsed, not a seed
    store.save("mf", _cell(eval_every=1), _result(0.9), _record("other"))
    assert publish(MF, store.runs("mf"), out).collapsed == 3
    runs = pd.read_csv(out / "mf_runs.csv")
    assert sorted(runs["seed"]) == [0, 1] and set(runs["hr10"]) == {0.5}
    assert len(pd.read_csv(out / "mf_curves.csv")) == 4
    records = json.loads((out / "mf_runs.provenance.json").read_text())
    assert [r["rows_added"] for r in records] == [2]


def _git_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "lib" / "code.py").write_text("x = 1\n")
    (repo / "results" / "t.csv").write_text("a\n1\n")
    env = ["-c", "user.email=t@example.org", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "."], [*env, "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_provenance_hashes_source_changes_but_not_result_files(tmp_path):
    repo = _git_repo(tmp_path)
    clean = source_state(repo)
    assert clean["uncommitted_sha256"] is None and len(clean["commit"]) == 40
    (repo / "results" / "t.csv").write_text("a\n1\n2\n")  # new results: still clean
    assert source_state(repo) == clean
    (repo / "lib" / "code.py").write_text("x = 2\n")
    first = source_state(repo)["uncommitted_sha256"]
    (repo / "lib" / "code.py").write_text("x = 3\n")
    second = source_state(repo)["uncommitted_sha256"]
    assert first and second and first != second


def test_only_folders_tracked_by_git_count_as_committed(tmp_path, repo_root):
    assert is_committed(repo_root / "results" / "ncf_experiments")
    assert not is_committed(repo_root / "runs")  # ignored by git
    assert not is_committed(tmp_path)


def test_every_committed_table_and_provenance_file_reads_strictly(repo_root):
    for path in sorted((repo_root / "results").rglob("*.csv")):
        key = list(MF.key) if path.name in ("mf_runs.csv", "mf_tuning_runs.csv") else []
        table = ResultTable(path, key)
        assert len(table.read()) > 0, path
        assert table.provenance(), path
