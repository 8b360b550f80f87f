"""The reproduce commands: full-scale experiment grids, resumable, run in parallel processes.

``ncf-vs-mf reproduce mf`` trains the matrix factorization of Section 3 on a grid of
dimensions and seeds and appends one row per finished run to ``results/<chapter>/mf_runs.csv``
(with its learning curve in ``mf_curves.csv``); ``reproduce mf-tuning`` does the same on the
tuning split carved from the training file (Appendix A.2). Finished cells are skipped on a
rerun, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from . import data as data_mod
from .results import RESULTS_DIR, Invocation, ResultTable

MF_KEY = ["dataset", "split", "model", "dim", "seed", "epochs", "lr", "reg", "negatives", "dtype",
          "threads"]
PAPER_HYPERPARAMETERS = {  # Rendle et al. 2020, Appendix A.2
    "ml-1m": {"lr": 0.002, "negatives": 8, "reg": 0.005},
    "pinterest-20": {"lr": 0.007, "negatives": 10, "reg": 0.01},
}

_SPLITS: dict[tuple, Any] = {}


def _load_split(dataset: str, split: str, data_dir: str | None):
    """The test split or the tuning split of a dataset (cached per worker process)."""
    key = (dataset, split, data_dir)
    if key not in _SPLITS:
        full = data_mod.load_dataset(dataset, data_dir, download=data_dir is None)
        _SPLITS[key] = full if split == "test" else data_mod.tuning_split(full)
    return _SPLITS[key]


def _train_cell(cell: dict[str, Any], data_dir: str | None, eval_every: int):
    """Worker: train one grid cell and return its result row and curve rows."""
    import numba

    from .mf import MFConfig, train_mf

    numba.set_num_threads(max(1, cell["threads"]))
    split = _load_split(cell["dataset"], cell["split"], data_dir)
    config = MFConfig(dim=cell["dim"], lr=cell["lr"], reg=cell["reg"],
                      negatives=cell["negatives"], epochs=cell["epochs"], seed=cell["seed"],
                      dtype=cell["dtype"], threads=cell["threads"])
    _, history = train_mf(split, config, eval_every=eval_every)
    last = history.rows[-1]
    row = {**cell, "hr10": last["hr10"], "ndcg10": last["ndcg10"], "loss": last["loss"],
           "seconds": round(history.seconds, 1),
           "updates_per_second": round(history.updates / history.seconds)}
    curve = [{**cell, **r} for r in history.rows]
    return row, curve


def run_mf_grid(cells: list[dict[str, Any]], runs: ResultTable, curves: ResultTable,
                invocation: Invocation, data_dir: str | None, eval_every: int,
                jobs: int) -> int:
    """Train every cell not yet in ``runs`` with ``jobs`` processes; return how many ran."""
    done = runs.done()
    todo = [c for c in cells if tuple(c[k] for k in runs.key) not in done]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells already done; {len(todo)} to run",
          flush=True)
    if not todo:
        return 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(_train_cell, cell, data_dir, eval_every): cell for cell in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                pending.pop(future)
                row, curve = future.result()
                curves.append(curve, invocation)  # curve first: a row marks the cell done
                runs.append([row], invocation)
                print(f"done {row['dataset']}/{row['split']} d={row['dim']} seed={row['seed']}: "
                      f"HR@10={row['hr10']:.4f} NDCG@10={row['ndcg10']:.4f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    return len(todo)


def reproduce_mf(dataset: str = "ml-1m", split: str = "test", dims=(16, 32, 64, 96, 128, 192),
                 seeds=(0, 1, 2), epochs: int = 256, lr=(0.002,), reg=(0.005,), negatives=(8,),
                 dtype: str = "float64", threads: int = 1, jobs: int = 1, eval_every: int = 8,
                 data_dir: str | None = None, out: str | os.PathLike = RESULTS_DIR / "ncf_experiments",
                 command: str | None = None) -> pd.DataFrame:
    """Train the MF grid (skipping finished cells) and return the runs table.

    ``split`` is "test" (the NCF test split: Figure 2) or "tuning" (the holdout carved from the
    training file: Appendix A.2); the tables are ``mf_runs.csv``/``mf_tuning_runs.csv`` and the
    learning curves ``mf_curves.csv``/``mf_tuning_curves.csv`` in ``out``.
    """
    data_dir = data_dir or os.environ.get(data_mod.DATA_ENV) or None
    table = "mf" if split == "test" else "mf_tuning"
    runs = ResultTable(Path(out) / f"{table}_runs.csv", MF_KEY)
    curves = ResultTable(Path(out) / f"{table}_curves.csv", MF_KEY + ["epoch"])
    parameters = dict(dataset=dataset, split=split, dims=list(dims), seeds=list(seeds),
                      epochs=epochs, lr=list(lr), reg=list(reg), negatives=list(negatives),
                      dtype=dtype, threads=threads, jobs=jobs, eval_every=eval_every)
    cells = [{"dataset": dataset, "split": split, "model": "MF", "dim": d, "seed": s,
              "epochs": epochs, "lr": a, "reg": r, "negatives": m, "dtype": dtype,
              "threads": threads}
             for s, a, r, m, d in itertools.product(seeds, lr, reg, negatives, dims)]
    invocation = Invocation(
        command=command or f"ncf_vs_mf.reproduce.reproduce_mf(**{parameters!r})",
        parameters=parameters,
        data={"dataset": dataset, "split": split, "files": data_mod.fingerprint(dataset, data_dir),
              "variants": _load_split(dataset, "test", data_dir).provenance})
    run_mf_grid(cells, runs, curves, invocation, data_dir, eval_every, jobs)
    return runs.read()


def _mf_command(args: argparse.Namespace, split: str) -> int:
    reproduce_mf(args.dataset, split, args.dims, args.seeds, args.epochs, args.lr, args.reg,
                 args.negatives, args.dtype, args.threads, args.jobs, args.eval_every,
                 args.data_dir, args.out,
                 command="ncf-vs-mf " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    return 0


def _add_mf_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    paper = PAPER_HYPERPARAMETERS["ml-1m"]
    parser.add_argument("--dataset", default="ml-1m", choices=data_mod.DATASETS)
    parser.add_argument("--dims", type=int, nargs="+", default=defaults["dims"],
                        help="embedding dimensions d (counting the bias coordinate)")
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults["seeds"])
    parser.add_argument("--epochs", type=int, default=defaults["epochs"])
    parser.add_argument("--lr", type=float, nargs="+", default=defaults.get("lr", [paper["lr"]]))
    parser.add_argument("--reg", type=float, nargs="+",
                        default=defaults.get("reg", [paper["reg"]]))
    parser.add_argument("--negatives", type=int, nargs="+",
                        default=defaults.get("negatives", [paper["negatives"]]))
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per run (>1 is Hogwild: fast but not reproducible)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="runs trained in parallel processes")
    parser.add_argument("--eval-every", type=int, default=8,
                        help="log training loss and HR/NDCG every this many epochs")
    parser.add_argument("--data-dir", default=None,
                        help=f"local data folder (default: ${data_mod.DATA_ENV} or the cache)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "ncf_experiments"),
                        help="folder of the result tables")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reproduce`` and its experiments with the package's command line."""
    reproduce = subparsers.add_parser("reproduce", help="run a full-scale experiment grid")
    experiments = reproduce.add_subparsers(dest="experiment", required=True)
    mf = experiments.add_parser("mf", help="Section 3: MF on the NCF test split (Figure 2)")
    _add_mf_arguments(mf, {"dims": [16, 32, 64, 96, 128, 192], "seeds": [0, 1, 2],
                           "epochs": 256})
    mf.set_defaults(func=lambda a: _mf_command(a, "test"))
    tuning = experiments.add_parser("mf-tuning",
                                    help="Appendix A.2: MF on the tuning split (no test data)")
    _add_mf_arguments(tuning, {"dims": [64], "seeds": [0], "epochs": 128,
                               "lr": [0.001, 0.002, 0.003], "reg": [0.001, 0.005, 0.01],
                               "negatives": [8]})
    tuning.set_defaults(func=lambda a: _mf_command(a, "tuning"))
