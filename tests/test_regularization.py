"""Section 3.3.3: Eq. 7 holds exactly for GMF with L2 on P and Q only, and for nothing else.

Identities are checked in float64 on random models and data; training runs on a tiny synthetic
split with one thread (seconds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ncf_vs_mf import cli
from ncf_vs_mf.data import synthetic_split
from ncf_vs_mf.models import DotSimilarity, EmbeddingModel, GMFSimilarity
from ncf_vs_mf.ncf_training import NCFConfig, fit, l2_penalty, similarity_weights
from ncf_vs_mf.regularization import (
    VARIANTS, absorb_weights, balance, build_variant, eq7_sides,
    regularized_loss, rescale, symmetry_residual, train_variant,
    weight_norms,
)

torch.set_num_threads(1)


def _random_gmf(seed: int, n_users: int = 7, n_items: int = 9, d: int = 5) -> EmbeddingModel:
    """A float64 GMF with O(1) random parameters (not the tiny initial ones) and a bias."""
    torch.manual_seed(seed)
    model = EmbeddingModel(n_users, n_items, d, GMFSimilarity(d), init_std=1.0).double()
    with torch.no_grad():
        model.similarity.output.weight.normal_()
        model.similarity.output.bias.normal_()
    return model


def _examples(seed: int, n_users: int = 7, n_items: int = 9, n: int = 40):
    """Random (user, item, label) examples."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g),
            torch.randint(0, 2, (n,), generator=g).double())


@pytest.fixture(scope="module")
def split():
    return synthetic_split(n_users=120, n_items=220, mean_interactions=25, preference_scale=1.0,
                           seed=5)


# ----------------------------------------------------------------------------- Eq. 7


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("a", [0.1, 0.7, 3.0, 25.0])
def test_rescaling_leaves_every_output_unchanged(seed, a):
    model = _random_gmf(seed)
    users, items, _ = _examples(seed)
    scaled = rescale(model, a)
    torch.testing.assert_close(scaled(users, items), model(users, items), rtol=1e-12, atol=1e-12)
    # ... and the parameters really moved: P/a, a^2 w
    torch.testing.assert_close(scaled.user_embedding.weight * a, model.user_embedding.weight)
    torch.testing.assert_close(scaled.similarity.weight, a * a * model.similarity.weight)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("a", [0.1, 0.7, 3.0, 25.0])
@pytest.mark.parametrize("reg", [1e-3, 0.1, 2.0])
def test_eq7_holds_to_floating_point_precision(seed, a, reg):
    model = _random_gmf(seed)
    left, right = eq7_sides(model, *_examples(seed), reg=reg, a=a)
    assert right == pytest.approx(left, rel=1e-12)
    # not trivially: the penalty is a sizeable part of the loss and it did change
    assert l2_penalty(model, reg).item() > 1e-3 * left


def test_eq7_by_hand():
    """One user, one item, d = 2: every term computed on paper."""
    model = EmbeddingModel(1, 1, 2, GMFSimilarity(2, bias=False)).double()
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.item_embedding.weight.copy_(torch.tensor([[3.0, -1.0]]))
        model.similarity.output.weight.copy_(torch.tensor([[0.5, 0.25]]))
    one = torch.zeros(1, dtype=torch.long)
    # phi = 0.5*1*3 + 0.25*2*(-1) = 1; label 1: log loss ln(1 + e^-1); penalty 0.1*(5 + 10) = 1.5
    expected = math.log1p(math.exp(-1.0)) + 1.5
    left, right = eq7_sides(model, one, one, torch.ones(1, dtype=torch.float64), reg=0.1, a=2.0)
    assert left == pytest.approx(expected, rel=1e-14)
    assert right == pytest.approx(expected, rel=1e-14)  # (P/2, Q/2, 4w) at lambda = 0.4


@pytest.mark.parametrize("seed", range(3))
def test_eq7_fails_when_w_is_regularized_too(seed):
    model = _random_gmf(seed)
    left, right = eq7_sides(model, *_examples(seed), reg=0.1, a=3.0, reg_similarity=0.1)
    # the w term goes from 0.1 ||w||^2 to 0.9 * 81 ||w||^2: a large, predictable gap
    w2 = model.similarity.weight.square().sum().item()
    assert right - left == pytest.approx((0.9 * 81 - 0.1) * w2, rel=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_eq7_fails_when_lambda_is_not_scaled(seed):
    """Same outputs, but L(P/a, Q/a, a^2 w, lambda) < L(P, Q, w, lambda) for a > 1."""
    model = _random_gmf(seed)
    data = _examples(seed)
    same_lambda = regularized_loss(rescale(model, 3.0), *data, reg=0.1)
    assert same_lambda < regularized_loss(model, *data, reg=0.1) - 1e-3


def test_mf_with_biases_has_no_such_symmetry():
    """Scaling P, Q of Eq. 2's dot product changes the outputs: there is no w to compensate."""
    torch.manual_seed(0)
    model = EmbeddingModel(7, 9, 5, DotSimilarity(), init_std=1.0).double()
    with pytest.raises(TypeError, match="GMF"):
        rescale(model, 2.0)
    users, items, _ = _examples(0)
    before = model(users, items)
    with torch.no_grad():
        model.user_embedding.weight.div_(2.0)
        model.item_embedding.weight.div_(2.0)
    assert (model(users, items) - before).abs().max() > 0.1


def test_rescale_rejects_bad_a():
    with pytest.raises(ValueError, match="a must be"):
        rescale(_random_gmf(0), 0.0)
    with pytest.raises(ValueError, match="a must be"):
        rescale(_random_gmf(0), float("nan"))


# ----------------------------------------------------------------------------- the symmetry


@pytest.mark.parametrize("seed", range(4))
def test_symmetry_residual_is_zero(seed):
    residual, scale = symmetry_residual(_random_gmf(seed), *_examples(seed))
    assert scale > 1e-3
    assert abs(residual) < 1e-12 * scale


def test_balance_by_hand():
    model = _random_gmf(0)
    p2 = model.user_embedding.weight.square().sum().item()
    q2 = model.item_embedding.weight.square().sum().item()
    w2 = model.similarity.weight.square().sum().item()
    assert balance(model) == pytest.approx(p2 + q2 - 2 * w2, rel=1e-12)


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_balance_drifts_only_by_the_penalty_under_small_gradient_steps(reg):
    """One plain gradient step of size eta: change = -4 eta lambda (||P||^2 + ||Q||^2) + O(eta^2)."""
    model = _random_gmf(1)
    users, items, labels = _examples(1)
    eta = 1e-5
    before = balance(model)
    embed2 = (model.user_embedding.weight.square().sum()
              + model.item_embedding.weight.square().sum()).item()
    loss = (F.binary_cross_entropy_with_logits(model(users, items), labels)
            + l2_penalty(model, reg))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.sub_(eta * g)
    change = balance(model) - before
    expected = -4 * eta * reg * embed2
    assert abs(change - expected) < 1e-3 * eta * max(embed2, 1.0)  # the O(eta^2) rest is tiny
    if reg:
        assert change < 0


# ----------------------------------------------------------------------------- the fixes


@pytest.mark.parametrize("seed", range(3))
def test_absorbing_w_gives_a_dot_product_with_the_same_outputs(seed):
    model = _random_gmf(seed)
    users, items, _ = _examples(seed)
    absorbed = absorb_weights(model)
    torch.testing.assert_close(absorbed(users, items), model(users, items), rtol=1e-12, atol=1e-12)
    assert torch.equal(absorbed.similarity.weight, torch.ones_like(absorbed.similarity.weight))
    p, q = absorbed.user_embedding(users), absorbed.item_embedding(items)
    torch.testing.assert_close(absorbed(users, items),
                               (p * q).sum(-1) + absorbed.similarity.output.bias)


def test_variants_have_the_parameters_they_claim():
    gmf, absorbed, mf = (build_variant(v, 5, 6, 4, seed=0) for v in ("GMF", "GMF-absorbed", "MF"))
    assert len(similarity_weights(gmf)) == 1
    assert similarity_weights(absorbed) == []  # w frozen at 1: nothing to regularize or train
    assert torch.equal(absorbed.similarity.weight, torch.ones(4))
    assert similarity_weights(mf) == []
    with pytest.raises(ValueError, match="unknown variant"):
        build_variant("NeuMF", 5, 6, 4, seed=0)


def test_penalty_on_w_is_added_only_when_asked():
    model = _random_gmf(2)
    base = l2_penalty(model, 0.1).item()
    p2 = model.user_embedding.weight.square().sum() + model.item_embedding.weight.square().sum()
    assert base == pytest.approx(0.1 * p2.item(), rel=1e-14)
    with_w = l2_penalty(model, 0.1, 0.3).item()
    assert with_w - base == pytest.approx(0.3 * model.similarity.weight.square().sum().item())


def test_fit_rejects_negative_regularization(split):
    model = build_variant("GMF", split.n_users, split.n_items, 4, seed=0)
    with pytest.raises(ValueError, match="reg_similarity"):
        fit(model, split.train_users, split.train_items, split, epochs=1, seed=0,
            reg_similarity=-1.0, device="cpu")


# ----------------------------------------------------------------------------- training


CONFIG = NCFConfig(epochs=4, lr=0.01, device="cpu")


def test_training_logs_norms_and_is_deterministic(split):
    _, first = train_variant(split, "GMF", 8, 1e-4, seed=0, config=CONFIG)
    _, second = train_variant(split, "GMF", 8, 1e-4, seed=0, config=CONFIG)
    columns = ["epoch", "hr10", "ndcg10", "norm_p", "norm_q", "norm_w"]
    same = pd.DataFrame(first.rows)[columns].equals(pd.DataFrame(second.rows)[columns])
    assert same  # bit for bit: same seed, same numbers
    assert [r["epoch"] for r in first.rows] == list(range(5))
    assert {"norm_p", "norm_q", "norm_w"} <= set(first.rows[-1])


def test_norm_columns_match_the_trained_model(split):
    model, result = train_variant(split, "GMF-reg-w", 8, 1e-4, seed=1, config=CONFIG)
    norms = weight_norms(model)
    for key, value in norms.items():
        assert result.rows[-1][key] == pytest.approx(value, rel=1e-12)
    _, mf = train_variant(split, "MF", 8, 1e-4, seed=1, config=CONFIG)
    assert math.isnan(mf.rows[-1]["norm_w"])


def test_absorbed_variant_keeps_w_at_one(split):
    model, _ = train_variant(split, "GMF-absorbed", 8, 1e-4, seed=0, config=CONFIG)
    assert torch.equal(model.similarity.weight, torch.ones(8))


def test_regularization_shrinks_gmf_embeddings_but_not_its_w(split):
    """The dynamics of Section 3.3.3 in miniature: more lambda, smaller P and Q; w is free."""
    config = NCFConfig(epochs=6, lr=0.01, device="cpu")
    norms = {reg: train_variant(split, "GMF", 8, reg, seed=0, config=config)[1].rows[-1]
             for reg in (0.0, 1e-4)}
    assert norms[1e-4]["norm_p"] < 0.7 * norms[0.0]["norm_p"]
    assert norms[1e-4]["norm_q"] < 0.7 * norms[0.0]["norm_q"]
    assert norms[1e-4]["norm_w"] > norms[0.0]["norm_w"]  # scale moves into w
    reg_w = train_variant(split, "GMF-reg-w", 8, 1e-4, seed=0, config=config)[1].rows[-1]
    assert reg_w["norm_w"] < norms[1e-4]["norm_w"]


def test_train_variant_rejects_bad_parameters(split):
    with pytest.raises(ValueError, match="reg must be"):
        train_variant(split, "GMF", 8, -1.0, seed=0, config=CONFIG)
    with pytest.raises(ValueError, match="unknown variant"):
        train_variant(split, "gmf", 8, 0.0, seed=0, config=CONFIG)
    with pytest.raises(ValueError, match="epochs"):
        train_variant(split, "GMF", 8, 0.0, seed=0, config=NCFConfig(epochs=-1))


# ----------------------------------------------------------------------------- grid


def test_the_grid_covers_the_product():
    from ncf_vs_mf.experiments.gmf_reg import GMF_REG

    values = {**GMF_REG.defaults, "dataset": "synthetic", "variant": ["GMF", "MF"],
              "dim": [8, 16], "reg": [0, 1e-4], "seed": [0, 1]}
    cells = GMF_REG.grid(values, {"threads": 1})
    assert len(cells) == 16 and {c.reg for c in cells} == {0.0, 1e-4}
    assert all(isinstance(c.reg, float) for c in cells)  # 0 and 0.0: one setting


def test_command_is_registered_under_reproduce():
    parser = cli.build_parser()
    args = parser.parse_args(["reproduce", "gmf-reg", "--dataset", "synthetic", "--regs", "0",
                              "1e-4", "--dims", "8", "16"])
    assert args.reg == [0.0, 1e-4] and args.dim == [8, 16]
    assert args.out is None and not args.publish and args.dataset == "synthetic"
    assert set(args.variant) == set(VARIANTS)


def test_command_rejects_bad_parameters_with_status_2(capsys):
    assert cli.main(["reproduce", "gmf-reg", "--dataset", "synthetic", "--regs", "-1"]) == 2
    assert "--regs" in capsys.readouterr().err


def test_rescaled_initialisation_starts_from_the_same_outputs(split):
    config = NCFConfig(epochs=0, device="cpu")
    plain, _ = train_variant(split, "GMF", 8, 0.0, seed=3, config=config)
    scaled, result = train_variant(split, "GMF", 8, 0.0, seed=3, config=config, init_scale=2.0)
    assert result.rows[0]["norm_p"] == pytest.approx(weight_norms(plain)["norm_p"] / 2)
    assert result.rows[0]["norm_w"] == pytest.approx(weight_norms(plain)["norm_w"] * 4)
    users, items, _ = _examples(0, split.n_users, split.n_items)
    torch.testing.assert_close(scaled(users, items), plain(users, items))
    with pytest.raises(TypeError, match="GMF"):
        train_variant(split, "MF", 8, 0.0, seed=3, config=config, init_scale=2.0)


def test_select_filters_every_given_column():
    from ncf_vs_mf.regularization import select

    table = pd.DataFrame({"dataset": ["a", "a", "a", "b"], "epochs": [20, 20, 10, 20],
                          "dim": [64, 32, 64, 64], "reg": [0.0, 0.0, 0.0, 0.0],
                          "variant": ["GMF", "MF", "GMF", "GMF"]})
    assert select(table, "a", 20).index.tolist() == [0, 1]
    assert select(table, "a", 20, dims=[64]).index.tolist() == [0]
    assert select(table, "a", 20, variants=["MF"], regs=[0.0]).index.tolist() == [1]
    assert select(table, "a", 20, regs=[1e-4]).empty


def test_final_summary_means_over_seeds():
    from ncf_vs_mf.regularization import final_summary

    runs = pd.DataFrame({"variant": ["GMF", "GMF", "MF"], "reg": [0.0, 0.0, 0.0],
                         "hr10": [0.5, 0.7, 0.6], "ndcg10": [0.2, 0.4, 0.3],
                         "norm_p": [1.0, 3.0, 2.0], "norm_q": [1.0, 1.0, 1.0],
                         "norm_w": [2.0, 4.0, float("nan")]})
    out = final_summary(runs, ["variant", "reg"]).set_index("variant")
    assert out.loc["GMF", "hr10"] == pytest.approx(0.6) and out.loc["GMF", "norm_w"] == 3.0
    assert out.loc["GMF", "seeds"] == 2 and out.loc["MF", "seeds"] == 1
    assert np.isnan(out.loc["MF", "norm_w"])
    assert final_summary(runs.iloc[:0], ["variant", "reg"]).empty
