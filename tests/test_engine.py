"""The experiment engine: the same rows in this process, on a LocalCluster and on a real Dask
scheduler with two workers; a killed driver takes its workers with it and the rerun resumes;
a failing cell leaves every other cell written; requirements run first and are reused."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import psutil
import pytest

from ncf_vs_mf import cli
from ncf_vs_mf.experiments.engine import (Experiment, GridFailed, RunResult, axis,
                                          from_engine)
from ncf_vs_mf.experiments.runner import run_grid
from ncf_vs_mf.experiments.store import RunStore
from ncf_vs_mf import experiments

TIMING = ["seconds", "updates_per_second", "run_id"]
GRID = dict(dataset="synthetic", dims=[4, 8], seeds=[0, 1], epochs=2, lr=[0.05], eval_every=1)


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs and curves without timings, in a fixed order (workers finish in any order)."""
    runs = pd.read_csv(out / "mf_runs.csv").drop(columns=TIMING)
    curves = pd.read_csv(out / "mf_curves.csv").drop(columns=["run_id"])
    return (runs.sort_values(["seed", "dim"]).reset_index(drop=True),
            curves.sort_values(["seed", "dim", "epoch"]).reset_index(drop=True))


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inprocess")
    experiments.reproduce("mf", **GRID, runs=folder / "runs", out=folder / "out", scheduler="inprocess")
    return _tables(folder / "out")


def test_a_local_cluster_gives_the_rows_of_the_in_process_path(in_process, tmp_path):
    experiments.reproduce("mf", **GRID, jobs=2, runs=tmp_path / "runs", out=tmp_path / "out",
                 scheduler="local")
    for ours, reference in zip(_tables(tmp_path / "out"), in_process):
        pd.testing.assert_frame_equal(ours, reference)


def test_a_dask_scheduler_and_two_workers_give_the_same_rows(in_process, tmp_path,
                                                            dask_scheduler):
    experiments.reproduce("mf", **GRID, runs=tmp_path / "runs", out=tmp_path / "out", scheduler=dask_scheduler)
    for ours, reference in zip(_tables(tmp_path / "out"), in_process):
        pd.testing.assert_frame_equal(ours, reference)


def _grid_command(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ncf_vs_mf", "reproduce", "mf", "--dataset", "synthetic",
            "--dims", "4", "6", "8", "10", "12", "--seeds", "0", "--epochs", "40",
            "--lr", "0.05", "--eval-every", "20", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), *extra]


def test_killing_the_driver_stops_its_workers_and_the_rerun_resumes(tmp_path):
    driver = subprocess.Popen(_grid_command(tmp_path, "--jobs", "2"), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "runs" / "mf"
    deadline = time.monotonic() + 120
    while not (store.is_dir() and any(store.glob("*.json"))):
        assert driver.poll() is None, "the grid ended before any run was stored"
        assert time.monotonic() < deadline, "no run stored within two minutes"
        time.sleep(0.2)
    children = psutil.Process(driver.pid).children(recursive=True)
    assert len(children) >= 2  # the two worker processes (and multiprocessing's tracker)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"workers still running 10 s after the driver died: {alive}"
    done_before = len(list(store.glob("*.json")))
    assert done_before < 5  # killed mid-grid
    rerun = subprocess.run(_grid_command(tmp_path, "--scheduler", "inprocess"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before} of 5 cells already done" in rerun.stdout
    runs = pd.read_csv(tmp_path / "out" / "mf_runs.csv")
    curves = pd.read_csv(tmp_path / "out" / "mf_curves.csv")
    assert sorted(runs["dim"]) == [4, 6, 8, 10, 12]
    assert len(curves) == 5 * 2 and not curves.duplicated(["dim", "epoch"]).any()
    assert len(list(store.glob("*.json"))) == 5


def test_a_failing_cell_leaves_the_others_written_and_exits_non_zero(tmp_path, capsys):
    status = cli.main(["reproduce", "mf", "--dataset", "synthetic", "--dims", "4", "8",
                       "--seeds", "0", "--epochs", "2", "--lr", "0.05", "1e30",
                       "--scheduler", "inprocess", "--runs", str(tmp_path / "runs"),
                       "--out", str(tmp_path / "out")])
    assert status == 1
    output = capsys.readouterr()
    assert output.out.count("FAILED mf ") == 2 and "lr=1e+30" in output.out
    assert "TrainingDiverged" in output.out and "2 cells failed" in output.err
    runs = pd.read_csv(tmp_path / "out" / "mf_runs.csv")
    assert sorted(runs["dim"]) == [4, 8] and set(runs["lr"]) == {0.05}


def test_a_grid_that_cannot_start_creates_no_folder(tmp_path, capsys):
    status = cli.main(["reproduce", "mf", "--dims", "8", "--seeds", "0", "--epochs", "1",
                       "--data-dir", str(tmp_path / "no-data"), "--scheduler", "inprocess",
                       "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "ml-1m.train.rating not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- requirements

CALLS: list[str] = []


@dataclass(frozen=True)
class ToyCell:
    stage: str = axis("--stages", "base or tuned")
    seed: int = axis("--seeds", "seeds")
    threads: int = from_engine("threads")


def _toy_run(cell: ToyCell, context) -> RunResult:
    CALLS.append(f"{cell.stage}{cell.seed}")
    base = context.inputs.get("base")
    weights = base.artifacts["weights"] + b"+tuned" if base else f"w{cell.seed}".encode()
    return RunResult({"value": len(weights), "weights": weights.decode()}, [],
                     {"weights": weights})


TOY = Experiment(name="toy", help="toy", cell=ToyCell, run=_toy_run, runs_table="toy_runs",
                 curves_table=None, key=("stage", "seed"), folder="toy",
                 requires=lambda c: {"base": replace(c, stage="base")} if c.stage == "tuned"
                 else {})


def test_a_requirement_runs_first_once_and_is_reused_from_the_store(tmp_path):
    CALLS.clear()
    cells = TOY.grid({"stage": ["tuned"], "seed": [0, 1]}, {"threads": 1})
    run_grid(TOY, cells, runs=tmp_path / "runs", out=tmp_path / "out", scheduler="inprocess")
    assert CALLS == ["base0", "tuned0", "base1", "tuned1"]
    rows = pd.read_csv(tmp_path / "out" / "toy_runs.csv")
    assert rows["stage"].tolist() == ["tuned", "tuned"]  # requirements are stored, not published
    assert rows["weights"].tolist() == ["w0+tuned", "w1+tuned"]
    CALLS.clear()
    more = TOY.grid({"stage": ["tuned", "base"], "seed": [0, 2]}, {"threads": 1})
    run_grid(TOY, more, runs=tmp_path / "runs", scheduler="inprocess")
    assert CALLS == ["base2", "tuned2"]  # base0 and tuned0 come from the store
    assert len(RunStore(tmp_path / "runs").runs("toy")) == 6


def test_a_failed_requirement_fails_its_dependents(tmp_path):
    def run(cell, context):
        if cell.stage == "base":
            raise RuntimeError("no base")
        return RunResult({"value": 1})

    failing = replace(TOY, run=run)
    with pytest.raises(GridFailed, match="1 cell failed.*stage=tuned.*DependencyFailed"):
        run_grid(failing, failing.grid({"stage": ["tuned"], "seed": [0]}, {"threads": 1}),
                 runs=tmp_path / "runs", scheduler="inprocess")
    assert RunStore(tmp_path / "runs").runs("toy") == []
