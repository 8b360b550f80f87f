"""The reproduce commands: full-scale experiment grids, resumable, on the experiment engine.

Every ``ncf-vs-mf reproduce <experiment>`` (``mf``, ``mf-tuning``, ``ncf``, ``mlp-dot``,
``gmf-reg``, ... : :data:`ncf_vs_mf.experiments.EXPERIMENTS`) is declared once in
:mod:`ncf_vs_mf.experiments`; its options come from the declaration. Runs go to the run store
(``--runs``, default ``./runs``) and into the committed tables only when asked (``--publish``
or ``--out``). Finished cells are skipped on a rerun, so an interrupted grid resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd

from .experiments import EXPERIMENTS
from .experiments import get as get_experiment
from .errors import OneLineParser
from .experiments.commands import add_experiment_parser, add_publish_parser
from .experiments.mf import MF_DIMS, MF_KEY as _MF_KEY, PAPER_HYPERPARAMETERS  # noqa: F401
from .experiments.runner import run_cells

MF_KEY = list(_MF_KEY)


def reproduce_mf(dataset: str = "ml-1m", split: str = "test", dims=MF_DIMS,
                 seeds=(0, 1, 2), epochs: int = 256, lr=(0.002,), reg=(0.005,), negatives=(8,),
                 dtype: str = "float64", threads: int = 1, jobs: int = 1, eval_every: int = 8,
                 data_dir: str | None = None, out: str | os.PathLike | None = None,
                 command: str | None = None, *, runs: str | os.PathLike | None = None,
                 scheduler: str | None = None, allow_dirty: bool = False) -> pd.DataFrame:
    """Train the MF grid through the engine (skipping finished cells); return its rows.

    ``split`` is "test" (the NCF test split: Figure 2, experiment ``mf``) or "tuning" (the
    holdout carved from the training file: Appendix A.2, ``mf-tuning``). Runs go to the run
    store ``runs`` (default ``$NCF_VS_MF_RUNS`` or ``./runs``); with ``out`` they are also
    published into ``mf_runs.csv``/``mf_curves.csv`` (``mf_tuning_*`` for the tuning split)
    in that folder, and the whole table there is returned; else the grid's stored rows.
    ``scheduler``: "inprocess" (default for ``jobs=1``), "local" (a LocalCluster of ``jobs``
    workers, the default otherwise) or a Dask scheduler's address.
    """
    experiment = get_experiment("mf" if split == "test" else "mf-tuning")
    values = dict(dataset=dataset, dim=list(dims), seed=list(seeds), epochs=epochs, lr=list(lr),
                  reg=list(reg), negatives=list(negatives), dtype=dtype, eval_every=eval_every)
    cells = experiment.grid(values, {"threads": threads})
    parameters = {**values, "split": split, "threads": threads, "jobs": jobs}
    return run_cells(experiment, cells, parameters, runs=runs, out=out, scheduler=scheduler,
                     jobs=jobs, threads=threads, data_dir=data_dir, allow_dirty=allow_dirty,
                     command=command or f"ncf_vs_mf.reproduce.reproduce_mf(**{parameters!r})")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reproduce`` (one subcommand per declared experiment) and ``publish``."""
    reproduce = subparsers.add_parser("reproduce", help="run a full-scale experiment grid")
    experiments = reproduce.add_subparsers(dest="experiment", required=True,
                                           parser_class=OneLineParser)
    for name in EXPERIMENTS:
        add_experiment_parser(experiments, get_experiment(name))
    add_publish_parser(subparsers)
