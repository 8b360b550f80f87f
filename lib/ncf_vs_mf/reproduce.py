"""The reproduce commands: full-scale experiment grids, resumable, run in parallel.

``ncf-vs-mf reproduce mf``, ``reproduce mf-tuning`` (Section 3, Appendix A.2), ``reproduce
mlp-dot`` (Section 4) and ``reproduce gmf-reg`` (Section 3.3.3) are declared on the experiment
engine (:mod:`ncf_vs_mf.experiments`): they train into the run store (``--runs``, default
``./runs``) and publish into the committed tables only when asked (``--publish`` or ``--out``).
``reproduce ncf`` trains NCF's own GMF, MLP and NeuMF (``ncf_training``) with the epoch
selected on the tuning split, into ``ncf_runs.csv`` and ``ncf_curves.csv``; it still runs on
its own process pool (``parallel``) until it is ported.
Finished cells are skipped on a rerun, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import shlex
import sys
from concurrent.futures import FIRST_COMPLETED, wait  # noqa: F401  (kept for the NCF runner)
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from . import data as data_mod
from .errors import UsageError
from .experiments import get as get_experiment
from .experiments.commands import (NONNEGATIVE_INT, POSITIVE_INT, OneLineParser,
                                   add_experiment_parser, add_publish_parser)
from .experiments.datasets import data_provenance, load_split
from .experiments.mf import MF_DIMS, MF_KEY as _MF_KEY, PAPER_HYPERPARAMETERS  # noqa: F401
from .experiments.runner import run_cells
from .parallel import worker_pool
from .results import RESULTS_DIR, Invocation, ResultTable, pending_cells

MF_KEY = list(_MF_KEY)
_EVALUATIONS: dict[tuple, Any] = {}  # NCF's evaluation data per (dataset, folder, device)


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


def _add_common_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    """Parallelism, data location and output folder of the runners not yet on the engine."""
    parser.add_argument("--jobs", type=POSITIVE_INT, default=os.cpu_count() or 1,
                        help=f"{unit} trained in parallel processes")
    parser.add_argument("--data-dir", default=None,
                        help=f"local data folder (default: ${data_mod.DATA_ENV} or the cache)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "ncf_experiments"),
                        help="folder of the result tables")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reproduce`` (and its experiments) and ``publish`` with the command line."""
    reproduce = subparsers.add_parser("reproduce", help="run a full-scale experiment grid")
    experiments = reproduce.add_subparsers(dest="experiment", required=True,
                                           parser_class=OneLineParser)
    for name in ("mf", "mf-tuning"):
        add_experiment_parser(experiments, get_experiment(name))
    ncf = experiments.add_parser(
        "ncf", help="Section 3 / issue 4: NCF's GMF, MLP and NeuMF trained here, epochs "
                    "selected on the tuning split (plus NCF's best-test-epoch numbers)")
    _add_ncf_arguments(ncf)
    ncf.set_defaults(func=_ncf_command)
    for name in ("mlp-dot", "gmf-reg"):
        add_experiment_parser(experiments, get_experiment(name))
    add_publish_parser(subparsers)


# ----------------------------------------------------------------------------- NCF's models

NCF_KEY = ["dataset", "model", "predictive_factor", "dim", "seed", "max_epochs", "lr",
           "finetune_lr", "negatives", "batch_size", "reg", "validation", "max_batches"]
NCF_DEFAULT_MODELS = ("GMF", "MLP", "NeuMF", "NeuMF-pretrained")
COMPONENTS_FOLDER = "components"  # trained GMF and MLP for pre-training, not committed
NCF_VALIDATION = "tuning split (latest training interaction per user, 100 negatives, seed 0)"


def _ncf_cells(dataset: str, models, factors, seeds, config, max_batches: int) -> list[dict]:
    """One cell (a future result row's key) per model, predictive factor and seed."""
    from .ncf_training import embedding_dim

    return [{"dataset": dataset, "model": m, "predictive_factor": k, "dim": embedding_dim(m, k),
             "seed": s, "max_epochs": config.epochs, "lr": config.lr,
             "finetune_lr": config.finetune_lr, "negatives": config.negatives,
             "batch_size": config.batch_size, "reg": config.reg, "validation": NCF_VALIDATION,
             "max_batches": max_batches}
            for s, k, m in itertools.product(seeds, factors, models)]


def _ncf_jobs(todo: list[dict]) -> list[list[dict]]:
    """Group cells into families, one ``FamilyPlan`` each: per (k, seed), GMF, MLP and pre-trained
    NeuMF share one (pre-training reuses its GMF and MLP instead of training them twice); plain
    NeuMF is a family of its own. Runs are handed out family by family in this order: smallest
    k first, so that a grid cut short (the whole grid is many CPU hours) has committed the cheap
    cells of every seed."""
    from .ncf_training import PRETRAINED_MODELS

    groups: dict[tuple, list[dict]] = {}
    for cell in todo:
        family = cell["model"] in ("GMF", "MLP") or cell["model"] in PRETRAINED_MODELS
        key = (cell["predictive_factor"], cell["seed"], family)
        groups.setdefault(key, []).append(cell)
    # within one k the pre-training family first: it takes about three times a single model
    return sorted(groups.values(), key=lambda g: (g[0]["predictive_factor"], g[0]["seed"], -len(g)))


def _under_cell(cell: dict, record: dict) -> dict:
    """The cell's columns first, then the record's others (the cell's values win)."""
    return {**cell, **{k: v for k, v in record.items() if k not in cell}}


def _execute_ncf_run(task, dataset: str, data_dir: str | None, threads: int,
                     config_kwargs: dict[str, Any], max_batches: int | None):
    """Worker: train one run of NCF's protocol (splits and evaluators built once per process)."""
    import torch

    from . import ncf_training

    torch.set_num_threads(max(1, threads))
    config = ncf_training.NCFConfig(**config_kwargs)
    split = load_split(dataset, "test", data_dir)
    tuning = load_split(dataset, "tuning", data_dir)
    key = (dataset, data_dir, config.device)
    if key not in _EVALUATIONS:
        _EVALUATIONS[key] = ncf_training.prepare_evaluations(split, tuning, config.device)
    return ncf_training.execute_run(task, split, tuning, config, _EVALUATIONS[key], max_batches)


def run_ncf_grid(cells: list[dict[str, Any]], runs: ResultTable, curves: ResultTable,
                 invocation: Invocation, data_dir: str | None, threads: int, jobs: int,
                 config_kwargs: dict[str, Any]) -> int:
    """Train every cell not yet in ``runs`` with ``jobs`` processes; return how many ran.

    The cells' training runs are scheduled one by one (``ncf_training.FamilyPlan``): the
    validation and test runs of a model train side by side, and a pre-trained NeuMF starts as
    soon as its GMF and MLP runs are done, so one family of k = 64 uses both processes. Each
    finished model appends its curve rows, then its result row (a row marks a cell done, so an
    interrupted grid resumes at the first unfinished model); the trained GMF and MLP go to the
    ``components`` folder beside the tables, so a rerun fine-tunes without training them
    again. A failing family is reported and the others continue; the error is raised at the end.
    """
    from .ncf_training import ComponentStore, FamilyPlan, NCFConfig, ProtocolResult, run_plans

    todo = pending_cells(cells, runs)
    if not todo:
        return 0
    dataset, max_batches = todo[0]["dataset"], todo[0]["max_batches"] or None
    config = NCFConfig(**config_kwargs)
    split, tuning = load_split(dataset, "test", data_dir), load_split(dataset, "tuning", data_dir)
    store = ComponentStore(runs.path.parent / COMPONENTS_FOLDER, split, tuning, config,
                           max_batches, threads=max(1, threads))
    plans, cells_of = [], {}
    for job in _ncf_jobs(todo):
        plan = FamilyPlan.from_store([c["model"] for c in job], job[0]["predictive_factor"],
                                     job[0]["seed"], config, store)
        plans.append(plan)
        cells_of[plan] = {cell["model"]: cell for cell in job}  # plans hash by identity
    failures = []

    def record(plan: FamilyPlan, result: ProtocolResult) -> None:
        store.add(result)
        cell = cells_of[plan].get(result.model)
        if cell is None:  # a GMF or MLP trained only for pre-training
            return
        row = _under_cell(cell, result.row)
        curves.append([_under_cell(cell, r) for r in result.curves], invocation)  # a row marks done
        runs.append([row], invocation)
        print(f"done {row['dataset']} {row['model']} k={row['predictive_factor']} "
              f"(d={row['dim']}) seed={row['seed']}: epoch {row['epochs_selected']} "
              f"HR@10={row['hr10']:.4f} NDCG@10={row['ndcg10']:.4f}; NCF's rule "
              f"(epoch {row['epoch_test_selected']}) HR@10="
              f"{row['hr10_test_selected']:.4f} ({row['seconds']:.0f} s)", flush=True)

    def fail(plan: FamilyPlan, error: Exception) -> None:
        names = ", ".join(f"{m} k={plan.k} seed={plan.seed}" for m in plan.models
                          if m not in plan.results)
        print(f"FAILED {names} (its models done before the error are saved): {error!r}",
              flush=True)
        failures.append((names, error))

    execute = functools.partial(_execute_ncf_run, dataset=dataset, data_dir=data_dir,
                                threads=threads, config_kwargs=config_kwargs,
                                max_batches=max_batches)
    if jobs <= 1:  # in this process (notebooks, tests); the thread setting is restored after
        import torch

        saved = torch.get_num_threads()
        try:
            run_plans(plans, execute, on_result=record, on_error=fail)
        finally:
            torch.set_num_threads(saved)
    else:
        with worker_pool(jobs) as pool:
            run_plans(plans, execute, pool=pool, slots=jobs, on_result=record, on_error=fail)
    if failures:
        raise RuntimeError(f"{len(failures)} NCF famil{'y' if len(failures) == 1 else 'ies'} "
                           "failed: " + "; ".join(f"{n}: {e!r}" for n, e in failures))
    return len(todo)


def reproduce_ncf(dataset: str = "ml-1m", models=NCF_DEFAULT_MODELS, factors=(8, 16, 32, 64),
                  seeds=(0, 1, 2), epochs: int = 20, lr: float = 0.001,
                  finetune_lr: float = 0.001, negatives: int = 4, batch_size: int = 256,
                  reg: float = 0.0, device: str = "auto", threads: int = 1, jobs: int = 1,
                  max_batches: int = 0, data_dir: str | None = None,
                  out: str | os.PathLike = RESULTS_DIR / "ncf_experiments",
                  command: str | None = None) -> pd.DataFrame:
    """Train NCF's models on the grid (skipping finished cells) and return the runs table.

    Writes ``ncf_runs.csv`` (one row per model, predictive factor and seed: the validation-
    selected epoch and its test metrics, NCF's best-test-epoch metrics, timings) and
    ``ncf_curves.csv`` (every epoch of every run, column ``phase``) in ``out``. See
    ``ncf_training`` for the protocol. ``max_batches`` > 0 truncates every epoch (smoke tests;
    such rows carry the value in their key and never count as full runs).

    Pre-trained NeuMF needs GMF and MLP of the same k and seed: its family trains them too
    (the same seeds give the same numbers as the GMF/MLP cells, so when those cells are
    requested as well they are trained once and written from there). The grid is scheduled run
    by run (``run_ncf_grid``), so with ``jobs=2`` a model's validation and test runs train side
    by side. Each model's rows are written when it is done, and the trained GMF and MLP are
    kept in ``out/components/`` (not committed; about 25 MB per (k, seed) at k = 64), so a grid
    stopped during a pre-trained NeuMF loads them on the rerun instead of training them again
    (on the same machine). Cost on a 2-core 2.8 GHz
    Xeon, one thread per process, measured while the MF grid occupied both cores: an ML-1M
    epoch takes about 20-50 s (GMF, k = 8..64), 55-135 s (MLP), 45-170 s (NeuMF), 35-120 s
    (NeuMF's SGD fine-tuning); a cell trains 2 x 20 epochs (pre-trained NeuMF 2-3 x 20
    fine-tuning epochs), so the default grid is roughly 12-14 CPU hours per seed.
    """
    from .ncf_training import MODELS, NCFConfig

    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown NCF models {unknown}; choose from {list(MODELS)}")
    data_dir = data_dir or os.environ.get(data_mod.DATA_ENV) or None
    config_kwargs = dict(epochs=epochs, lr=lr, finetune_lr=finetune_lr, negatives=negatives,
                         batch_size=batch_size, reg=reg, device=device)
    config = NCFConfig(**config_kwargs)
    config.validate()
    runs = ResultTable(Path(out) / "ncf_runs.csv", NCF_KEY)
    curves = ResultTable(Path(out) / "ncf_curves.csv", NCF_KEY + ["phase", "epoch"])
    parameters = dict(dataset=dataset, models=list(models), factors=list(factors),
                      seeds=list(seeds), threads=threads, jobs=jobs, max_batches=max_batches,
                      **asdict(config))
    cells = _ncf_cells(dataset, models, factors, seeds, config, max_batches)
    invocation = Invocation(
        command=command or f"ncf_vs_mf.reproduce.reproduce_ncf(**{parameters!r})",
        parameters=parameters,
        data=data_provenance(dataset, data_dir, validation=NCF_VALIDATION))
    run_ncf_grid(cells, runs, curves, invocation, data_dir, threads, jobs, config_kwargs)
    return runs.read()


def _ncf_command(args: argparse.Namespace) -> int:
    try:
        _run_ncf_command(args)
    except ValueError as error:  # bad settings (NCFConfig.validate), raised before training
        if isinstance(error, data_mod.DataError):
            raise
        raise UsageError(f"ncf: {error}") from None
    return 0


def _run_ncf_command(args: argparse.Namespace) -> None:
    reproduce_ncf(args.dataset, args.models, args.factors, args.seeds, args.epochs, args.lr,
                  args.finetune_lr, args.negatives, args.batch_size, args.reg, args.device,
                  args.threads, args.jobs, args.max_batches, args.data_dir, args.out,
                  command="ncf-vs-mf " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


def _add_ncf_arguments(parser: argparse.ArgumentParser) -> None:
    from .ncf_training import MODELS

    parser.add_argument("--dataset", default="ml-1m", choices=data_mod.DATASETS)
    parser.add_argument("--models", nargs="+", default=list(NCF_DEFAULT_MODELS), choices=MODELS,
                        help="NeuMF-pretrained fine-tunes with plain SGD (NCF paper, Sec. 3.4.1); "
                             "NeuMF-pretrained-adam with Adam (NCF README command)")
    parser.add_argument("--factors", type=int, nargs="+", default=[8, 16, 32, 64],
                        help="predictive factors k (d = k for GMF, 2k for MLP, 3k for NeuMF)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=POSITIVE_INT, default=20,
                        help="epochs per run (NCF's README: 20); the epoch is selected in 0..N")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    parser.add_argument("--finetune-lr", type=float, default=0.001,
                        help="learning rate of pre-trained NeuMF's fine-tuning")
    parser.add_argument("--negatives", type=NONNEGATIVE_INT, default=4)
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=256)
    parser.add_argument("--reg", type=float, default=0.0,
                        help="L2 on the embedding tables, Keras-style (NCF default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--threads", type=POSITIVE_INT, default=1, help="torch threads per process")
    parser.add_argument("--max-batches", type=NONNEGATIVE_INT, default=0,
                        help="truncate every epoch to this many batches (smoke tests only)")
    _add_common_arguments(parser, "jobs")
