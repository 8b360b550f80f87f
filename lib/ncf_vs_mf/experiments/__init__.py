"""The experiment engine and the experiments declared on it (see ``engine`` for the design).

``EXPERIMENTS`` maps a ``reproduce`` subcommand to the module attribute declaring it; modules
are imported only when an experiment is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from .engine import Experiment

EXPERIMENTS: dict[str, str] = {
    "mf": "ncf_vs_mf.experiments.mf:MF",
    "mf-tuning": "ncf_vs_mf.experiments.mf:MF_TUNING",
    "mf-init": "ncf_vs_mf.experiments.mf:MF_INIT",
    "ncf": "ncf_vs_mf.experiments.ncf:NCF",
    "mlp-dot": "ncf_vs_mf.experiments.mlp_dot:MLP_DOT",
    "gmf-reg": "ncf_vs_mf.experiments.gmf_reg:GMF_REG",
    "baselines": "ncf_vs_mf.experiments.baselines:BASELINES_EXPERIMENT",
    "sampled-vs-full": "ncf_vs_mf.experiments.sampled:SAMPLED",
    "serving": "ncf_vs_mf.experiments.serving:SERVING",
}


def get(name: str) -> Experiment:
    """The declared experiment called ``name`` (KeyError naming the known ones)."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    module, _, attribute = EXPERIMENTS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def reproduce(name: str, **arguments: Any) -> Any:
    """Run experiment ``name``'s grid from Python (:func:`ncf_vs_mf.experiments.runner.reproduce`:
    options by their command-line names, e.g. ``reproduce("gmf-reg", dims=[64], out=...)``)."""
    from .runner import reproduce as run

    return run(get(name), registry=get, **arguments)
