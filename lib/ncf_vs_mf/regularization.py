"""Why GMF's extra weights break L2 regularization (Rendle et al. 2020, Section 3.3.3, Eq. 7).

GMF scores a pair by phi(p, q) = w^T (p * q) + b (Eq. 6, with the output bias of NCF's Dense
layer). Its loss with L2 on the embedding tables only (NCF's Keras regularizer) is

    L(P, Q, w, lambda) = l(outputs) + lambda (||P||_F^2 + ||Q||_F^2).

Scaling (P, Q, w) to (P/a, Q/a, a^2 w) leaves every output unchanged and divides the penalty by
a^2, so L(P, Q, w, lambda) = L(P/a, Q/a, a^2 w, a^2 lambda) (Eq. 7): every lambda > 0 poses the
same problem up to a change of variables. The identity needs three things: the penalty is
homogeneous of degree 2 in (P, Q) (squared norms; any per-row weighting is fine), w is not
penalized, and nothing the scaling changes is penalized. :func:`eq7_sides` computes both sides;
:func:`train_variant` trains the variants the chapter compares, logging the norms per epoch;
``ncf-vs-mf reproduce gmf-reg`` (:mod:`ncf_vs_mf.experiments.gmf_reg`, on the experiment engine)
runs the full grid into the run store and, with ``--publish``, ``results/gmf_regularization/``;
:mod:`ncf_vs_mf.report.gmf_regularization` draws and summarizes it for the chapter.

Variants (all trained by ``ncf_training.fit``: NCF's log loss, Adam, batches of 256, 4 negatives
per positive outside the user's positives, redrawn every epoch, embeddings N(0, 0.01^2)):

================  ==========================================================================
``GMF``           NCF's GMF, L2 ``reg`` on P and Q only: Eq. 7 holds
``GMF-reg-w``     the first fix: the same ``reg`` on w as well
``GMF-absorbed``  the second fix: w absorbed into the embeddings (frozen at 1), i.e. a plain
                  dot product <p, q> + b
``MF``            the dot product with biases of Eq. 2 (``DotSimilarity``), L2 on P and Q
================  ==========================================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .data import LeaveOneOutSplit
from .models import DotSimilarity, EmbeddingModel, GMFSimilarity
from .ncf_training import FitResult, NCFConfig, NegativeSampler, fit, l2_penalty
from .results import RESULTS_DIR

__all__ = [
    "VARIANTS",
    "build_variant",
    "epoch_examples",
    "rescale",
    "absorb_weights",
    "regularized_loss",
    "eq7_sides",
    "weight_norms",
    "balance",
    "symmetry_residual",
    "train_variant",
    "select",
    "final_summary",
]

VARIANTS = ("GMF", "GMF-reg-w", "GMF-absorbed", "MF")
RESULTS = RESULTS_DIR / "gmf_regularization"
LAMBDA_GRID = (0.0, 1e-7, 1e-6, 1e-5, 3e-5, 1e-4)  # the chapter's sweep (Keras-style lambda)
KEY = ["dataset", "variant", "dim", "reg", "seed", "epochs", "lr", "batch_size", "negatives",
       "init_std"]


def _check_variant(variant: str) -> None:
    """Reject unknown variant names with the list of valid ones."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")


def _gmf(model: EmbeddingModel) -> GMFSimilarity:
    """The model's GMF similarity, or a clear error for any other similarity."""
    if not isinstance(model.similarity, GMFSimilarity):
        raise TypeError(f"needs a GMF model, got a {type(model.similarity).__name__}")
    return model.similarity


# ----------------------------------------------------------------------------- models


def build_variant(variant: str, n_users: int, n_items: int, d: int, seed: int,
                  init_std: float = 0.01) -> EmbeddingModel:
    """A freshly initialised model of one variant (CPU), initialisation fixed by ``seed``."""
    _check_variant(variant)
    torch.manual_seed(seed)
    if variant == "MF":
        return EmbeddingModel(n_users, n_items, d, DotSimilarity(), init_std=init_std)
    model = EmbeddingModel(n_users, n_items, d, GMFSimilarity(d), init_std=init_std)
    if variant == "GMF-absorbed":
        with torch.no_grad():
            model.similarity.output.weight.fill_(1.0)
        model.similarity.output.weight.requires_grad_(False)  # w = 1: <p, q> + b
    return model


def variant_reg_similarity(variant: str, reg: float) -> float:
    """The L2 coefficient on the similarity's weights: ``reg`` for GMF-reg-w, else 0."""
    _check_variant(variant)
    return reg if variant == "GMF-reg-w" else 0.0


def rescale(model: EmbeddingModel, a: float) -> EmbeddingModel:
    """A copy of a GMF model with (P, Q, w) -> (P/a, Q/a, a^2 w): the same outputs (Eq. 7)."""
    _gmf(model)
    if not (a > 0 and math.isfinite(a)):
        raise ValueError(f"a must be a finite number > 0, got {a!r}")
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.user_embedding.weight.div_(a)
        scaled.item_embedding.weight.div_(a)
        scaled.similarity.output.weight.mul_(a * a)
    return scaled


def absorb_weights(model: EmbeddingModel) -> EmbeddingModel:
    """A copy of a GMF model with w folded into the embeddings and w = 1: the same outputs.

    p_f -> sign(w_f) sqrt|w_f| p_f and q_f -> sqrt|w_f| q_f, so w_f p_f q_f is unchanged and the
    similarity becomes the plain dot product <p, q> + b (Section 3.3.3, last paragraph).
    """
    gmf = _gmf(model)
    absorbed = copy.deepcopy(model)
    w = gmf.weight.detach()
    root = w.abs().sqrt()
    with torch.no_grad():
        absorbed.user_embedding.weight.mul_(torch.sign(w) * root)
        absorbed.item_embedding.weight.mul_(root)
        absorbed.similarity.output.weight.fill_(1.0)
    return absorbed


# ----------------------------------------------------------------------------- Eq. 7


def epoch_examples(split: LeaveOneOutSplit, seed: int,
                   negatives: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch's (users, items, float64 labels) as training draws them: data for Eq. 7 checks."""
    sampler = NegativeSampler(split.train_users, split.train_items, split.n_users, split.n_items)
    users, items, labels = sampler.epoch(np.random.default_rng(seed), negatives)
    return (torch.from_numpy(users).long(), torch.from_numpy(items).long(),
            torch.from_numpy(labels).double())


def regularized_loss(model: EmbeddingModel, users: torch.Tensor, items: torch.Tensor,
                     labels: torch.Tensor, reg: float, reg_similarity: float = 0.0) -> float:
    """L: mean log loss over the examples plus the L2 penalty that training adds (``l2_penalty``)."""
    with torch.no_grad():
        logits = model(users, items)
        data_loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return float(data_loss + l2_penalty(model, reg, reg_similarity))


def eq7_sides(model: EmbeddingModel, users: torch.Tensor, items: torch.Tensor,
              labels: torch.Tensor, reg: float, a: float,
              reg_similarity: float = 0.0) -> tuple[float, float]:
    """Both sides of Eq. 7: L(P, Q, w, lambda) and L(P/a, Q/a, a^2 w, a^2 lambda).

    With ``reg_similarity`` > 0 (w penalized too, scaled by a^2 like lambda) the two differ
    unless w = 0: the identity is a property of penalizing P and Q only.
    """
    left = regularized_loss(model, users, items, labels, reg, reg_similarity)
    right = regularized_loss(rescale(model, a), users, items, labels, a * a * reg,
                             a * a * reg_similarity)
    return left, right


def weight_norms(model: EmbeddingModel) -> dict[str, float]:
    """Frobenius norms ||P||, ||Q|| and ||w|| (NaN without a GMF w): the chapter's dynamics."""
    w = model.similarity.weight if isinstance(model.similarity, GMFSimilarity) else None
    return {"norm_p": float(model.user_embedding.weight.detach().norm()),
            "norm_q": float(model.item_embedding.weight.detach().norm()),
            "norm_w": float(w.detach().norm()) if w is not None else float("nan")}


def balance(model: EmbeddingModel) -> float:
    """||P||^2 + ||Q||^2 - 2 ||w||^2: constant under gradient flow on the unpenalized loss.

    With the penalty lambda (||P||^2 + ||Q||^2) it falls at the rate 4 lambda (||P||^2 + ||Q||^2):
    regularization moves scale out of the embeddings into w instead of removing it.
    """
    gmf = _gmf(model)
    return float(model.user_embedding.weight.detach().square().sum()
                 + model.item_embedding.weight.detach().square().sum()
                 - 2 * gmf.weight.detach().square().sum())


def symmetry_residual(model: EmbeddingModel, users: torch.Tensor, items: torch.Tensor,
                      labels: torch.Tensor) -> tuple[float, float]:
    """<P, dl/dP> + <Q, dl/dQ> - 2 <w, dl/dw> of the mean log loss, and the scale of its terms.

    Zero for any loss of GMF's outputs: the derivative of l(P/a, Q/a, a^2 w) in a at a = 1.
    This is what makes :func:`balance` a conserved quantity without regularization.
    """
    gmf = _gmf(model)
    params = [model.user_embedding.weight, model.item_embedding.weight, gmf.output.weight]
    logits = model(users, items)
    loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    grads = torch.autograd.grad(loss, params)
    terms = [float((p.detach() * g).sum()) for p, g in zip(params, grads)]
    return terms[0] + terms[1] - 2 * terms[2], max(abs(t) for t in terms)


# ----------------------------------------------------------------------------- training


def train_variant(split: LeaveOneOutSplit, variant: str, dim: int, reg: float, seed: int,
                  config: NCFConfig = NCFConfig(), max_batches: int | None = None,
                  init_scale: float = 1.0) -> tuple[EmbeddingModel, FitResult]:
    """Train one variant on ``split`` with NCF's settings in ``config`` and L2 ``reg``.

    Every logged row (epoch 0 = the initial model) carries the test HR@10/NDCG@10, the mean
    training log loss of the epoch (without the penalty) and the norms ||P||, ||Q||, ||w||.
    The seed fixes initialisation (``seed``) and negatives and order (``seed + 1``).
    ``init_scale`` = a starts GMF from the rescaled initialisation (P/a, Q/a, a^2 w): by Eq. 7,
    training with a^2 lambda from there poses the same problem as lambda from the usual start.
    """
    config.validate()
    if not (reg >= 0 and math.isfinite(reg)):
        raise ValueError(f"reg must be a finite number >= 0, got {reg!r}")
    model = build_variant(variant, split.n_users, split.n_items, dim, seed, config.init_std)
    if init_scale != 1.0:
        model = rescale(model, init_scale)
    result = fit(model, split.train_users, split.train_items, split, epochs=config.epochs,
                 seed=seed + 1, lr=config.lr, batch_size=config.batch_size,
                 negatives=config.negatives, reg=reg,
                 reg_similarity=variant_reg_similarity(variant, reg), device=config.device,
                 eval_chunk=config.eval_chunk, max_batches=max_batches,
                 epoch_stats=weight_norms, label=f"{variant} d={dim} reg={reg:g} seed={seed}")
    return model, result


# ----------------------------------------------------------------------------- summaries


def select(table: pd.DataFrame, dataset: str, epochs: int, dims: Sequence[int] | None = None,
           regs: Sequence[float] | None = None,
           variants: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of a result table for one dataset and epoch budget (and d, lambda, variant)."""
    keep = (table["dataset"] == dataset) & (table["epochs"] == epochs)
    for column, values in (("dim", dims), ("reg", regs), ("variant", variants)):
        if values is not None:
            keep &= table[column].isin(list(values))
    return table[keep]


def final_summary(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per setting: mean final metrics and ||P||, ||Q||, ||w|| over seeds, and the seed count."""
    columns = ["hr10", "ndcg10", "norm_p", "norm_q", "norm_w"]
    groups = runs.groupby(by, sort=True)
    return groups[columns].mean().assign(seeds=groups.size()).reset_index()
