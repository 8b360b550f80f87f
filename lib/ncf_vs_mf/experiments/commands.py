"""``reproduce <experiment>`` and ``publish <experiment>``: options generated from the cells.

Each field of an experiment's cell with an option becomes one (``--dims 8 16`` for an axis,
``--epochs 256`` for a single value), typed by the field's annotation, with the experiment's
default; the engine adds ``--jobs``, ``--threads``, ``--scheduler``, ``--data-dir``, ``--runs``,
``--out``/``--publish`` and ``--allow-dirty``. Every value is checked before anything runs; a
mistake is one line naming the option and what was expected, exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from ..config import RUNS_ENV, results_dir, runs_dir
from ..data import DATA_ENV, DataError
from ..errors import OneLineParser, UsageError
from ..results import TableError
from . import EXPERIMENTS, get
from .cluster import INPROCESS, LOCAL, SCHEDULER_ENV
from .datasets import data_folder
from .engine import Experiment, GridFailed, SettingsError
from .runner import GridError, run_grid
from .store import RunStore, is_committed, publish

GRID_FAILED = 1


def bounded(kind: Callable[[str], Any], low: float, what: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` values >= ``low`` (the message says what is expected)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= low or value != value:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


POSITIVE_INT = bounded(int, 1, "an integer >= 1")
NONNEGATIVE_INT = bounded(int, 0, "an integer >= 0")
POSITIVE_FLOAT = bounded(float, 0, "a number > 0")


def _scheduler(text: str) -> str:
    if text in (INPROCESS, LOCAL) or text.startswith(("tcp://", "tls://", "ws://", "wss://",
                                                      "inproc://")):
        return text
    raise argparse.ArgumentTypeError(f"expected '{LOCAL}', '{INPROCESS}' or a Dask address "
                                     f"such as tcp://HOST:PORT, got {text!r}")


def add_engine_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    """Options of the engine, the same for every experiment."""
    parser.add_argument("--jobs", type=POSITIVE_INT, default=os.cpu_count() or 1,
                        help="worker processes of the local Dask cluster (default: %(default)s)")
    parser.add_argument("--threads", type=POSITIVE_INT, default=1,
                        help="threads per worker process, given to each cell (MF: >1 is "
                             "Hogwild, fast but not reproducible; default: %(default)s)")
    parser.add_argument("--scheduler", type=_scheduler, default=None,
                        help=f"'{LOCAL}' (a LocalCluster of --jobs workers), '{INPROCESS}', or "
                             f"the address of a Dask scheduler, tcp://HOST:PORT (default: "
                             f"${SCHEDULER_ENV}, else local)")
    parser.add_argument("--data-dir", default=None,
                        help=f"local data folder (default: ${DATA_ENV}; without either the "
                             "files are downloaded and verified into the cache)")
    parser.add_argument("--runs", default=None,
                        help=f"run store folder (default: ${RUNS_ENV}, else ./runs)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", default=None,
                        help="also publish the runs into the tables in this folder")
    target.add_argument("--publish", action="store_true",
                        help=f"also publish into the committed tables, results/{experiment.folder}")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="publish into committed results although tracked source files "
                             "differ from the commit")


def _field_type(experiment: Experiment, name: str) -> Callable[[str], Any]:
    kind = typing.get_type_hints(experiment.cell)[name]
    return {int: bounded(int, -2**63, "an integer"),
            float: bounded(float, float("-inf"), "a number")}.get(kind, str)


def add_experiment_parser(subparsers: argparse._SubParsersAction,
                          experiment: Experiment) -> argparse.ArgumentParser:
    """A ``reproduce`` subcommand whose options come from the experiment's cell."""
    parser = subparsers.add_parser(experiment.name, help=experiment.help,
                                   description=experiment.description or experiment.help)
    for f in experiment.fields():
        option = f.metadata.get("option")
        if not option or f.name in experiment.fixed:
            continue
        default = experiment.defaults.get(f.name)
        many = f.metadata.get("many")
        shown = "" if default is None else (" ".join(map(str, default)) if many else default)
        parser.add_argument(option, dest=f.name, type=_field_type(experiment, f.name),
                            nargs="+" if many else None, choices=f.metadata.get("choices"),
                            default=list(default) if many and default is not None else default,
                            help=f"{f.metadata.get('help', '')}" +
                                 (f" (default: {shown})" if shown != "" else ""))
    add_engine_arguments(parser, experiment)
    parser.set_defaults(func=functools.partial(reproduce_command, experiment.name))
    return parser


def command_line() -> str:
    """The command as typed (for provenance)."""
    return "ncf-vs-mf " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def reproduce_command(name: str, args: argparse.Namespace) -> int:
    """Handler of ``reproduce <name>``: build the grid and run it; user errors exit 2."""
    experiment = get(name)
    values = {f.name: getattr(args, f.name) for f in experiment.fields()
              if hasattr(args, f.name) and f.metadata.get("option")}
    engine = {"threads": args.threads}
    out = args.out or (results_dir() / experiment.folder if args.publish else None)
    parameters = {**{k: v for k, v in values.items()}, "jobs": args.jobs,
                  "threads": args.threads, "scheduler": args.scheduler}
    try:
        cells = experiment.grid(values, engine)
        run_grid(experiment, cells, runs=args.runs or runs_dir(), out=out,
                 scheduler=args.scheduler or (LOCAL if not os.environ.get(SCHEDULER_ENV)
                                              else None),
                 jobs=args.jobs, threads=args.threads, data_dir=data_folder(args.data_dir),
                 allow_dirty=args.allow_dirty, command=command_line(), parameters=parameters,
                 registry=get)
    except (SettingsError, GridError, TableError, DataError, ConnectionError) as error:
        raise UsageError(str(error)) from None
    except GridFailed as error:
        print(f"ncf-vs-mf reproduce {name}: {error}", file=sys.stderr)
        return GRID_FAILED
    return 0


def publish_command(args: argparse.Namespace) -> int:
    """Handler of ``publish <experiment>``: stored runs into the committed tables."""
    experiment = get(args.experiment)
    store = RunStore(Path(args.runs or runs_dir()))
    out = Path(args.out) if args.out else results_dir() / experiment.folder
    try:
        runs = store.runs(experiment.name)
        dirty = [r for r in runs if r.provenance.get("uncommitted_sha256")]
        if dirty and is_committed(out) and not args.allow_dirty:
            raise UsageError(f"{len(dirty)} of the {len(runs)} stored runs of {experiment.name} "
                             f"ran on uncommitted source changes (e.g. {dirty[0].path}); pass "
                             "--allow-dirty to publish them into the committed tables")
        report = publish(experiment, runs, out)
    except TableError as error:
        raise UsageError(str(error)) from None
    print(f"published {report.added} runs of {experiment.name} into {out}"
          f" ({report.collapsed} already there)")
    return 0


def add_publish_parser(subparsers: argparse._SubParsersAction) -> None:
    """The top-level ``publish`` command."""
    parser = subparsers.add_parser(
        "publish", help="copy stored runs into the committed result tables",
        description="Copy every run of an experiment in the run store into its committed "
                    "tables (rows already there are kept, not duplicated).")
    parser.add_argument("experiment", choices=list(EXPERIMENTS))
    parser.add_argument("--runs", default=None,
                        help=f"run store folder (default: ${RUNS_ENV}, else ./runs)")
    parser.add_argument("--out", default=None,
                        help="folder of the tables (default: the experiment's results folder)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="publish runs of uncommitted source changes")
    parser.set_defaults(func=publish_command)
