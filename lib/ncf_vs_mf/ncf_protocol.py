"""NCF's models under an honest selection protocol: the epoch is chosen on the tuning split.

:mod:`ncf_vs_mf.ncf_training` trains one run; this module combines runs into the protocol that
gives a result row (and, for GMF and MLP, the states a pre-trained NeuMF starts from).
``run_protocol`` trains a model's runs one after the other in this process; the experiment
engine (``reproduce ncf``, :mod:`ncf_vs_mf.experiments.ncf`) runs one cell per model and hands a
pre-trained NeuMF the stored results of its GMF and MLP (``pack_states``/``unpack_states``).

The selection protocol (what the ``hr10``/``ndcg10`` of a run mean)
------------------------------------------------------------------
Rendle et al.'s Appendix A.2 protocol, applied to the number of epochs:

1. *Validation run.* Train on the tuning split's training part (``data.tuning_split``: the
   training file minus each user's latest training interaction) for up to ``epochs`` (20, as
   NCF's README runs) epochs, evaluating HR@10/NDCG@10 on the tuning holdout (that latest
   interaction against sampled non-interacted items) after every epoch and before the first.
   The selected epoch E is the *earliest* epoch with the highest validation HR@10 (epoch 0, the
   initial model, is a candidate: that is NCF's rule, ``best_iter = -1`` with the initial
   performance and a strict ``hr > best_hr``; it matters for pre-trained NeuMF, whose epoch 0 is
   the mixed GMF + MLP ensemble). Nothing of the test split is trained on or looked at; the only
   link is that the tuning holdout's sampled negatives avoid the test items (``tuning_split``),
   a property of how the holdout is built, shared with the MF tuning runs, not a choice made by
   looking at test outcomes.
2. *Test run.* Train the same model (same seed) on the full training file for ``epochs`` epochs,
   evaluating the test split after every epoch. The reported ``hr10``/``ndcg10`` are the test
   metrics after epoch E. The other epochs' test metrics are recorded but do not influence E.
3. *NCF's rule, for comparison.* From the test run's curve, the earliest epoch with the best
   *test* HR@10 and its HR/NDCG (``hr10_test_selected``...): what NCF's code prints as "Best
   Iteration". For models without pre-training it is the maximum of the curve that contains the
   honest number, so ``hr10_test_selected >= hr10`` by construction.

We do *not* train on the training file and pick the epoch on a holdout inside it at the same
time: the holdout interactions would then be trained on while selecting. Training twice (tuning
part, then full file) is what Rendle et al. did for their matrix factorization, and it keeps the
final model's training data identical to NCF's.

Pre-trained NeuMF under this protocol: the validation run fine-tunes NeuMF built from the GMF
and MLP *validation runs* at their own validation-selected epochs; the test run fine-tunes NeuMF
built from the full-file GMF and MLP at those same epochs; its fine-tuning epoch is chosen on the
validation run. NCF's rule for it is NCF's whole pipeline: components taken at their best *test*
epochs, then the best test epoch of that fine-tuning (a third fine-tuning run, skipped when the
test-selected component epochs coincide with the validation-selected ones). Because the two
pipelines start from different components, ``hr10_test_selected >= hr10`` is not guaranteed for
pre-trained NeuMF, only very likely.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .data import LeaveOneOutSplit
from .models import EmbeddingModel, ncf_model
from .ncf_training import (BASE_MODELS, BASE_PARTS, PRETRAINED_MODELS, EvalData, FitResult,
                           NCFConfig, build_model, embedding_dim, fit, prepare_evaluations,
                           run_seed, select_epoch, similarity_name)

__all__ = ["PHASES", "ProtocolResult", "RunTask", "execute_run", "run_protocol", "pack_states",
           "unpack_states"]

PHASES = ("validation", "test", "test-ncf-components")
STATES = ("validation", "test@selected", "test@best")  # what a pre-trained NeuMF starts from


@dataclass
class ProtocolResult:
    """One model, predictive factor and seed under the validation protocol (module docstring).

    ``row`` is the result-table row, ``curves`` the per-epoch rows of every run (column
    ``phase``: "validation", "test", and for pre-trained NeuMF possibly
    "test-ncf-components"). ``states`` keeps the models pre-trained NeuMF starts from:
    "validation" (validation run at its selected epoch), "test@selected" and "test@best"
    (test run at the validation-selected and at the test-selected epoch); a pre-trained
    NeuMF keeps "test@selected", the model its row reports.
    """

    model: str
    k: int
    seed: int
    row: dict[str, Any]
    curves: list[dict[str, Any]]
    states: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunTask:
    """One training run of the protocol.

    ``phase`` is "validation" (tuning split), "test" (full training file) or, for pre-trained
    NeuMF, "test-ncf-components" (NCF's rule). ``init`` holds the GMF and MLP states a
    pre-trained NeuMF starts from; ``keep`` the epochs whose states the run returns.
    """

    model: str
    k: int
    seed: int
    phase: str
    init: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
    keep: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.model} k={self.k} seed={self.seed} ({self.phase} run)"


def load_model(model_name: str, k: int, n_users: int, n_items: int,
               state: dict[str, torch.Tensor]) -> EmbeddingModel:
    """A model of ``model_name`` at predictive factor k with the given ``state_dict``."""
    model = ncf_model(similarity_name(model_name), n_users, n_items, k)
    model.load_state_dict(state)
    return model


def execute_run(task: RunTask, split: LeaveOneOutSplit, tuning: LeaveOneOutSplit,
                config: NCFConfig = NCFConfig(),
                evaluations: Mapping[str, EvalData] | None = None,
                max_batches: int | None = None) -> FitResult:
    """Train one run: on the tuning split's training part for "validation", else the full file.

    ``evaluations`` may hold the two splits prepared once ("validation", "test"), so that many
    runs in one process do not rebuild them. The run's seed depends on (model, k, seed, phase)
    only, so a run gives the same numbers in whichever process and order it is trained.
    """
    data = tuning if task.phase == "validation" else split
    seed = run_seed(task.model, task.k, task.seed, task.phase)
    if task.init is None:
        net = build_model(task.model, data.n_users, data.n_items, task.k, seed, config.init_std)
        optimizer, lr = "adam", config.lr
    else:
        gmf, mlp = (load_model(part, task.k, split.n_users, split.n_items, state)
                    for part, state in zip(BASE_PARTS, task.init))
        net = EmbeddingModel.neumf_from_pretrained(gmf, mlp, alpha=config.alpha)
        optimizer, lr = PRETRAINED_MODELS[task.model], config.finetune_lr
    evaluation = (evaluations or {}).get(task.phase.split("-")[0], data)
    return fit(net, data.train_users, data.train_items, evaluation, epochs=config.epochs,
               seed=seed + 1, optimizer=optimizer, lr=lr, batch_size=config.batch_size,
               negatives=config.negatives, reg=config.reg, device=config.device,
               eval_chunk=config.eval_chunk, keep_epochs=task.keep, max_batches=max_batches,
               label=task.label)


def _summary(model: str, k: int, seed: int, config: NCFConfig, validation: FitResult,
             test: FitResult, ncf_rule: FitResult) -> dict[str, Any]:
    selected = select_epoch(validation.rows)
    test_best = select_epoch(ncf_rule.rows)
    return {
        "model": model, "predictive_factor": k, "dim": embedding_dim(model, k), "seed": seed,
        "max_epochs": config.epochs, "epochs_selected": selected,
        "hr10": test.metric(selected, "hr10"), "ndcg10": test.metric(selected, "ndcg10"),
        "val_hr10": validation.metric(selected, "hr10"),
        "val_ndcg10": validation.metric(selected, "ndcg10"),
        "epoch_test_selected": test_best,
        "hr10_test_selected": ncf_rule.metric(test_best, "hr10"),
        "ndcg10_test_selected": ncf_rule.metric(test_best, "ndcg10"),
        "hr10_last": test.rows[-1]["hr10"], "ndcg10_last": test.rows[-1]["ndcg10"],
        "optimizer": PRETRAINED_MODELS.get(model, "adam"),  # pre-trained NeuMF: fine-tuning's
        "lr": config.lr, "finetune_lr": config.finetune_lr,
        "negatives": config.negatives, "batch_size": config.batch_size, "reg": config.reg,
        "device": test.device, "threads": test.threads,
    }


def _protocol_result(model: str, k: int, seed: int, row: dict[str, Any],
                     runs: dict[str, FitResult],
                     states: dict[str, dict[str, torch.Tensor]]) -> ProtocolResult:
    """The result of a model whose runs are all done: curves of every run, and its timings
    (pre-trained NeuMF: fine-tuning only; its GMF and MLP are in ``pretrain_seconds``)."""
    curves = [{"model": model, "predictive_factor": k, "dim": embedding_dim(model, k),
               "seed": seed, "phase": phase, **r}
              for phase, fit_result in runs.items() for r in fit_result.rows]
    row["seconds"] = round(sum(r.seconds for r in runs.values()), 1)
    row["examples_per_second"] = round(sum(r.examples for r in runs.values())
                                       / max(sum(r.train_seconds for r in runs.values()), 1e-9))
    return ProtocolResult(model, k, seed, row, curves, states)


def _check_components(model: str, k: int, seed: int,
                      components: Mapping[str, ProtocolResult]) -> None:
    for name, result in components.items():
        if name not in BASE_PARTS or (result.model, result.k, result.seed) != (name, k, seed):
            raise ValueError(f"{model}: components must be GMF/MLP results at k={k}, "
                             f"seed={seed}; got {name!r}: {result.model} k={result.k} "
                             f"seed={result.seed}")


def run_protocol(split: LeaveOneOutSplit, tuning: LeaveOneOutSplit, model: str, k: int,
                 seed: int, config: NCFConfig = NCFConfig(),
                 components: Mapping[str, ProtocolResult] | None = None,
                 evaluations: Mapping[str, EvalData] | None = None,
                 max_batches: int | None = None, verbose: bool = False) -> ProtocolResult:
    """Train one model under the validation protocol and return its row, curves and states.

    ``tuning`` must be ``data.tuning_split(split, ...)`` (or any split carved from the training
    file only): the epoch is selected on it. For pre-trained NeuMF, ``components`` may hold the
    ``ProtocolResult`` of GMF and MLP with the same k and seed (those missing are trained here,
    with the seeds they have when trained alone, so they equal the GMF and MLP rows).
    """
    config.validate()
    similarity_name(model)
    if evaluations is None:
        evaluations = prepare_evaluations(split, tuning, config.device)

    def train(task: RunTask) -> FitResult:
        result = execute_run(task, split, tuning, config, evaluations, max_batches)
        if verbose:
            print(f"{task.label}: best epoch {result.best_epoch} "
                  f"HR@10={result.metric(result.best_epoch):.4f} ({result.seconds:.0f} s)",
                  flush=True)
        return result

    if model in BASE_MODELS:
        validation = train(RunTask(model, k, seed, "validation"))
        selected = select_epoch(validation.rows)
        test = train(RunTask(model, k, seed, "test", keep=(selected,)))
        row = _summary(model, k, seed, config, validation, test, test)
        states = {"validation": validation.best_state, "test@selected": test.states[selected],
                  "test@best": test.best_state}
        return _protocol_result(model, k, seed, row, {"validation": validation, "test": test},
                                states)
    parts = dict(components or {})
    _check_components(model, k, seed, parts)
    for part in BASE_PARTS:
        if part not in parts:
            parts[part] = run_protocol(split, tuning, part, k, seed, config, None, evaluations,
                                       max_batches, verbose)
    gmf, mlp = parts["GMF"], parts["MLP"]

    def start(which: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return gmf.states[which], mlp.states[which]

    validation = train(RunTask(model, k, seed, "validation", init=start("validation")))
    selected = select_epoch(validation.rows)
    fits = {"validation": validation,
            "test": train(RunTask(model, k, seed, "test", init=start("test@selected"),
                                  keep=(selected,)))}
    same = all(p.row["epoch_test_selected"] == p.row["epochs_selected"] for p in (gmf, mlp))
    if not same:  # NCF's rule starts from the components at their best test epochs
        fits["test-ncf-components"] = train(RunTask(model, k, seed, "test-ncf-components",
                                                    init=start("test@best")))
    row = _summary(model, k, seed, config, fits["validation"], fits["test"],
                   fits.get("test-ncf-components", fits["test"]))
    row.update({"gmf_epochs": gmf.row["epochs_selected"],
                "mlp_epochs": mlp.row["epochs_selected"],
                "gmf_epochs_test_selected": gmf.row["epoch_test_selected"],
                "mlp_epochs_test_selected": mlp.row["epoch_test_selected"],
                "pretrain_seconds": round(gmf.row["seconds"] + mlp.row["seconds"], 1)})
    return _protocol_result(model, k, seed, row, fits,
                            {"test@selected": fits["test"].states[selected]})


def pack_states(result: ProtocolResult) -> bytes:
    """A GMF or MLP result's pre-training states as bytes (an artifact of its run)."""
    buffer = io.BytesIO()
    torch.save({which: result.states[which] for which in STATES}, buffer)
    return buffer.getvalue()


def unpack_states(data: bytes) -> dict[str, dict[str, torch.Tensor]]:
    """The states written by :func:`pack_states` (tensors only: ``weights_only`` loading)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
