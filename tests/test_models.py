"""Tests of the similarity functions and embedding models (lib/ncf_vs_mf/models.py)."""

from __future__ import annotations

import math

import pytest
import torch

from ncf_vs_mf.models import (
    DotSimilarity,
    EmbeddingModel,
    GMFSimilarity,
    MLPSimilarity,
    NeuMFSimilarity,
    make_similarity,
    mlp_weight_count,
    module_parameter_count,
    ncf_embedding_dim,
    ncf_hidden,
    ncf_model,
    paper_hidden,
    paper_mlp_parameter_claim,
    parameter_count,
    parameter_table,
    predictive_factor_table,
)

P = torch.tensor([1.0, 2.0, 3.0])
Q = torch.tensor([4.0, 5.0, 6.0])


# ---- hand-computed outputs ------------------------------------------------------------

def test_dot_with_biases_matches_eq2_by_hand():
    sim = DotSimilarity()
    with torch.no_grad():
        sim.global_bias.fill_(0.5)
    # b + p1 + q1 + p2 q2 + p3 q3 = 0.5 + 1 + 4 + 10 + 18
    assert sim(P, Q).item() == pytest.approx(33.5)


def test_plain_dot_matches_eq1_and_has_no_parameters():
    sim = DotSimilarity(biases=False)
    assert sim(P, Q).item() == pytest.approx(4 + 10 + 18)
    assert module_parameter_count(sim) == 0


def test_dot_broadcasts_one_user_against_many_items():
    sim = DotSimilarity()
    p = torch.randn(2, 1, 5)
    q = torch.randn(2, 7, 5)
    out = sim(p, q)
    assert out.shape == (2, 7)
    assert torch.allclose(out[1, 3], sim(p[1, 0], q[1, 3]))


def test_gmf_by_hand():
    sim = GMFSimilarity(3)
    with torch.no_grad():
        sim.output.weight.copy_(torch.tensor([[1.0, -1.0, 0.5]]))
        sim.output.bias.fill_(0.25)
    # 1*4 - 1*10 + 0.5*18 + 0.25
    assert sim(P, Q).item() == pytest.approx(3.25)


def test_gmf_sigmoid_output_is_sigmoid_of_logit():
    torch.manual_seed(0)
    logit_sim = GMFSimilarity(3)
    prob_sim = GMFSimilarity(3, output_activation="sigmoid")
    prob_sim.load_state_dict(logit_sim.state_dict())
    assert torch.allclose(prob_sim(P, Q), torch.sigmoid(logit_sim(P, Q)))


def test_gmf_without_bias_is_a_dot_product_with_w_folded_in():
    torch.manual_seed(1)
    sim = GMFSimilarity(6, bias=False)
    p, q = torch.randn(10, 6), torch.randn(10, 6)
    folded = DotSimilarity(biases=False)(sim.fold_into(p), q)
    assert torch.allclose(sim(p, q), folded, atol=1e-6)


def test_gmf_is_invariant_to_the_eq7_rescaling():
    # P/a, Q/a, a^2 w leaves the output unchanged (Section 3.3.3)
    torch.manual_seed(2)
    sim = GMFSimilarity(4, bias=False)
    p, q = torch.randn(5, 4), torch.randn(5, 4)
    before = sim(p, q)
    with torch.no_grad():
        sim.output.weight.mul_(9.0)
    assert torch.allclose(sim(p / 3.0, q / 3.0), before, atol=1e-5)


def test_mlp_by_hand():
    # d = 1, one hidden unit: relu(w1 [p, q] + b1) * w2 + b2
    sim = MLPSimilarity(1, hidden=[1])
    with torch.no_grad():
        sim.layers[0].weight.copy_(torch.tensor([[2.0, -1.0]]))
        sim.layers[0].bias.fill_(0.5)
        sim.output.weight.fill_(3.0)
        sim.output.bias.fill_(-1.0)
    p, q = torch.tensor([[2.0], [0.0]]), torch.tensor([[1.0], [4.0]])
    # pair 0: relu(4 - 1 + 0.5) = 3.5 -> 9.5; pair 1: relu(0 - 4 + 0.5) = 0 -> -1
    assert sim(p, q).tolist() == pytest.approx([9.5, -1.0])


def test_mlp_layer_shapes_follow_hidden():
    sim = MLPSimilarity(8, paper_hidden(4))
    shapes = [tuple(layer.weight.shape) for layer in sim.layers]
    assert shapes == [(16, 16), (8, 16), (4, 8)]
    assert tuple(sim.output.weight.shape) == (1, 4)
    assert sim(torch.randn(3, 5, 8), torch.randn(3, 5, 8)).shape == (3, 5)
    assert sim(torch.randn(3, 1, 8), torch.randn(3, 5, 8)).shape == (3, 5)


def test_mlp_init_follows_ncf_keras_defaults():
    torch.manual_seed(3)
    sim = MLPSimilarity(16, ncf_hidden(8))
    for layer in sim.layers:
        limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= limit
        assert torch.count_nonzero(layer.bias) == 0
    assert sim.output.weight.abs().max() <= math.sqrt(3.0 / 8)
    assert torch.count_nonzero(sim.output.bias) == 0


def test_neumf_is_gmf_logit_plus_mlp_logit():
    # NCF's single output layer on [p_g * q_g, h] splits into Eq. 5's two terms
    torch.manual_seed(4)
    sim = NeuMFSimilarity(d=6, mlp_dim=4, hidden=[4, 2])
    p, q = torch.randn(7, 6), torch.randn(7, 6)
    w = sim.output.weight[0]
    w_gmf, w_mlp = w[:2], w[2:]
    gmf_part = (p[:, 4:] * q[:, 4:]) @ w_gmf
    mlp_part = sim.mlp.features(p[:, :4], q[:, :4]) @ w_mlp
    assert torch.allclose(sim(p, q), gmf_part + mlp_part + sim.output.bias, atol=1e-6)


def test_neumf_pretrained_init_mixes_logits_with_alpha():
    torch.manual_seed(5)
    gmf = GMFSimilarity(3)
    mlp = MLPSimilarity(4, ncf_hidden(2))
    with torch.no_grad():  # non-zero biases so that their mixing is tested too
        gmf.output.bias.fill_(0.3)
        mlp.output.bias.fill_(-0.7)
        for layer in mlp.layers:
            layer.bias.uniform_(-0.1, 0.1)
    p_mlp, q_mlp = torch.randn(9, 4), torch.randn(9, 4)
    p_gmf, q_gmf = torch.randn(9, 3), torch.randn(9, 3)
    for alpha in (0.5, 0.2):
        neumf = NeuMFSimilarity.from_pretrained(gmf, mlp, alpha=alpha)
        expected = alpha * gmf(p_gmf, q_gmf) + (1 - alpha) * mlp(p_mlp, q_mlp)
        got = neumf(torch.cat([p_mlp, p_gmf], 1), torch.cat([q_mlp, q_gmf], 1))
        assert torch.allclose(got, expected, atol=1e-6)
    # the copies are independent of the sources
    with torch.no_grad():
        neumf.mlp.layers[0].weight.add_(1.0)
    assert not torch.allclose(neumf.mlp.layers[0].weight, mlp.layers[0].weight)


def test_embedding_model_neumf_from_pretrained():
    torch.manual_seed(6)
    gmf_model = ncf_model("gmf", 5, 11, k=2)
    mlp_model = ncf_model("mlp", 5, 11, k=2)
    neumf = EmbeddingModel.neumf_from_pretrained(gmf_model, mlp_model, alpha=0.5)
    users, items = torch.tensor([0, 1, 4, 4]), torch.tensor([3, 10, 0, 7])
    expected = 0.5 * gmf_model(users, items) + 0.5 * mlp_model(users, items)
    assert torch.allclose(neumf(users, items), expected, atol=1e-6)
    assert neumf.d == 6 and neumf.similarity.mlp_dim == 4


def test_neumf_rejects_bad_split():
    with pytest.raises(ValueError):
        NeuMFSimilarity(d=4, mlp_dim=4, hidden=[2])
    with pytest.raises(ValueError):
        NeuMFSimilarity.from_pretrained(GMFSimilarity(2), MLPSimilarity(2, [2]), alpha=1.5)


# ---- full models ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dot", "gmf", "mlp", "neumf"])
def test_score_matches_forward_pairwise(name):
    torch.manual_seed(7)
    d = 6
    model = EmbeddingModel(8, 20, d, make_similarity(name, d), init_std=0.5)
    users = torch.arange(8)
    items = torch.randint(0, 20, (8, 5))
    scores = model.score(users, items, batch_size=3)
    assert scores.shape == (8, 5)
    pairwise = model(users.repeat_interleave(5), items.reshape(-1)).reshape(8, 5)
    assert torch.allclose(scores, pairwise, atol=1e-5)
    assert model.training  # score() restores the mode


def test_score_accepts_numpy_and_rejects_bad_shapes():
    import numpy as np
    model = EmbeddingModel(3, 4, 2, DotSimilarity())
    out = model.score(np.array([0, 2]), np.array([[0, 1, 3], [3, 2, 1]]))
    assert out.shape == (2, 3)
    with pytest.raises(ValueError):
        model.score(torch.tensor([0, 1]), torch.tensor([0, 1]))


def test_embedding_init_std():
    torch.manual_seed(8)
    model = EmbeddingModel(2000, 2000, 16, DotSimilarity(), init_std=0.01)
    assert model.user_embedding.weight.std().item() == pytest.approx(0.01, rel=0.05)
    model = EmbeddingModel(2000, 2000, 16, DotSimilarity(), init_std=0.1)
    assert model.item_embedding.weight.std().item() == pytest.approx(0.1, rel=0.05)


def test_seed_determinism():
    def build():
        torch.manual_seed(42)
        return ncf_model("neumf", 10, 12, k=4)
    a, b = build(), build()
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    assert torch.equal(a(users, items), b(users, items))


def test_training_step_reduces_loss():
    torch.manual_seed(9)
    model = ncf_model("mlp", 6, 6, k=2)
    users, items = torch.arange(6), torch.arange(6)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = loss_fn(model(users, items), labels).item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = loss_fn(model(users, items), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < first


# ---- predictive factors and parameter counts ------------------------------------------

def test_predictive_factor_recasting():
    assert [ncf_embedding_dim(m, 8) for m in ("gmf", "mlp", "neumf")] == [8, 16, 24]
    assert ncf_hidden(8) == [32, 16, 8]
    table = predictive_factor_table([8, 64])
    assert table.loc[64, "NeuMF d = 3k"] == 192
    assert table.loc[8, "MLP d = 2k"] == 16
    models = {m: ncf_model(m, 3, 3, k=8) for m in ("gmf", "mlp", "neumf")}
    assert [models[m].d for m in ("gmf", "mlp", "neumf")] == [8, 16, 24]
    assert models["mlp"].similarity.hidden == [32, 16, 8]
    with pytest.raises(ValueError):
        ncf_embedding_dim("dot", 8)


@pytest.mark.parametrize("d", [3, 6, 12, 48])
@pytest.mark.parametrize("name", ["dot", "gmf", "mlp", "neumf"])
def test_closed_form_parameter_count_matches_modules(name, d):
    assert parameter_count(name, d) == module_parameter_count(make_similarity(name, d))


@pytest.mark.parametrize("h", [2, 4, 16])
def test_parameter_count_mlp_other_widths(h):
    d = 8
    assert parameter_count("mlp", d, h) == module_parameter_count(MLPSimilarity(d, paper_hidden(h)))
    hidden = [5, 3]
    assert parameter_count("mlp", d, hidden=hidden) == module_parameter_count(MLPSimilarity(d, hidden))
    assert parameter_count("neumf", 10, mlp_dim=4, hidden=hidden) == module_parameter_count(
        NeuMFSimilarity(10, 4, hidden))


def test_parameter_count_without_biases():
    assert parameter_count("dot", 8, biases=False) == 0
    assert parameter_count("gmf", 8, biases=False) == module_parameter_count(GMFSimilarity(8, bias=False))


@pytest.mark.parametrize("d, claimed", [(8, 1_152), (64, 73_728), (256, 1_179_648)])
def test_paper_18_d_squared_counts_hidden_weight_matrices(d, claimed):
    # Section 4.1: "For h = d, the number of model parameters are about 18d^2, so for example
    # for d=8: 1,152 or d=64: 73,728 or for d=256: 1,179,648." These are exactly 18 d^2: the
    # entries of the three hidden weight matrices (2d x 4d, 4d x 2d, 2d x d); the hidden
    # biases (7d) and the output layer (d + 1) are not counted.
    assert paper_mlp_parameter_claim(d) == claimed == 18 * d * d
    assert mlp_weight_count(d, paper_hidden(d)) == claimed
    sim = MLPSimilarity(d, paper_hidden(d))
    hidden_weights = sum(layer.weight.numel() for layer in sim.layers)
    assert hidden_weights == claimed
    assert module_parameter_count(sim) == claimed + 8 * d + 1 == parameter_count("mlp", d)


def test_ncf_neumf_parameter_count_example():
    # predictive factor 8: d = 24, MLP on 16 coordinates with hidden 32-16-8, GMF on 8
    # hidden: 32*32+32 + 32*16+16 + 16*8+8 = 1720; output: (8 + 8) + 1 = 17
    assert parameter_count("neumf", 24) == 1737 == module_parameter_count(
        ncf_model("neumf", 2, 2, k=8).similarity)


def test_parameter_table_rows():
    table = parameter_table([8, 24])
    assert table.loc[8, "paper's 18d²"] == mlp_weight_count(8, paper_hidden(8)) == 1152
    assert table.loc[8, "MLP h = d"] == 1152 + 8 * 8 + 1
    assert table.loc[24, "NeuMF (d = 3k)"] == 1737
    assert table.loc[8, "dot (Eq. 2)"] == 1
