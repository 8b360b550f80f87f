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

from .errors import OneLineParser
from .experiments import EXPERIMENTS
from .experiments import get as get_experiment
from .experiments.commands import add_experiment_parser, add_publish_parser


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reproduce`` (one subcommand per declared experiment) and ``publish``."""
    reproduce = subparsers.add_parser("reproduce", help="run a full-scale experiment grid")
    experiments = reproduce.add_subparsers(dest="experiment", required=True,
                                           parser_class=OneLineParser)
    for name in EXPERIMENTS:
        add_experiment_parser(experiments, get_experiment(name))
    add_publish_parser(subparsers)
