"""NCF's own models trained here: negatives, determinism, honest epoch selection, pre-training.

Everything runs on tiny synthetic splits with one torch thread (the whole file takes seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from ncf_vs_mf.data import synthetic_split, tuning_split
from ncf_vs_mf.evaluation import SampledEvaluator
from ncf_vs_mf.models import EmbeddingModel
from ncf_vs_mf import ncf_training
from ncf_vs_mf.ncf_protocol import RunTask, execute_run, pack_states, run_protocol, unpack_states
from ncf_vs_mf.ncf_training import (
    NCFConfig, NegativeSampler, build_model, evaluate_model, fit, resolve_device, select_epoch,
)

TIMING = {"seconds", "examples_per_second", "pretrain_seconds", "train_seconds"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for the whole module, its module-scoped runs included: rows record the
    thread count, and tests of other modules may have left another one."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def split():
    return synthetic_split(n_users=150, n_items=250, mean_interactions=25, preference_scale=1.0,
                           seed=3)


@pytest.fixture(scope="module")
def tuning(split):
    return tuning_split(split, n_negatives=100, seed=0)


@pytest.fixture(scope="module")
def pretrained_run(split, tuning):
    """GMF, MLP and pre-trained NeuMF (SGD, from those two) of one k and seed, 3 epochs each."""
    config = NCFConfig(epochs=3, device="cpu")
    gmf, mlp = (run_protocol(split, tuning, m, 4, seed=0, config=config) for m in ("GMF", "MLP"))
    neumf = run_protocol(split, tuning, "NeuMF-pretrained", 4, seed=0, config=config,
                         components={"GMF": gmf, "MLP": mlp})
    return gmf, mlp, neumf


def _without_timing(row: dict) -> dict:
    """The row without wall-clock columns; NaN (epoch 0's loss) as None, so rows compare."""
    return {k: (None if isinstance(v, float) and np.isnan(v) else v)
            for k, v in row.items() if k not in TIMING}


# ----------------------------------------------------------------------------- negatives


def test_negatives_never_hit_a_training_positive(split):
    sampler = NegativeSampler(split.train_users, split.train_items, split.n_users, split.n_items)
    negatives = sampler.negatives(np.random.default_rng(0), 4)
    assert negatives.shape == (split.n_train, 4)
    positives = set(zip(split.train_users.tolist(), split.train_items.tolist()))
    users = np.repeat(split.train_users, 4)
    assert not any((u, i) in positives for u, i in zip(users.tolist(), negatives.ravel().tolist()))
    assert negatives.min() >= 0 and negatives.max() < split.n_items


def test_an_epoch_holds_every_positive_and_m_fresh_negatives_per_positive(split):
    sampler = NegativeSampler(split.train_users, split.train_items, split.n_users, split.n_items)
    rng = np.random.default_rng(1)
    users, items, labels = sampler.epoch(rng, 4)
    assert users.shape == items.shape == labels.shape == (5 * split.n_train,)
    pos = labels == 1
    assert pos.sum() == split.n_train
    got = sorted(zip(users[pos].tolist(), items[pos].tolist()))
    assert got == sorted(zip(split.train_users.tolist(), split.train_items.tolist()))
    assert np.array_equal(np.bincount(users[~pos], minlength=split.n_users),
                          4 * np.bincount(split.train_users, minlength=split.n_users))
    assert not sampler.is_positive(users[~pos], items[~pos]).any()
    # shuffled: positives are spread over the epoch, not first
    assert 0.1 < pos[: split.n_train].mean() < 0.3
    # redrawn: the next epoch has other negatives and another order
    users2, items2, labels2 = sampler.epoch(rng, 4)
    assert not np.array_equal(items, items2)
    neg1 = np.sort(users[~pos].astype(np.int64) * split.n_items + items[~pos])
    neg2 = np.sort(users2[labels2 == 0].astype(np.int64) * split.n_items + items2[labels2 == 0])
    assert not np.array_equal(neg1, neg2)


def test_negatives_are_uniform_over_the_items_outside_the_users_positives():
    # user 0 has items 0..2, user 1 has items 5..9; 10 items in all
    users = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    items = np.array([0, 1, 2, 5, 6, 7, 8, 9])
    sampler = NegativeSampler(users, items, n_users=2, n_items=10)
    negatives = sampler.negatives(np.random.default_rng(7), 3000)
    for user, allowed in ((0, np.arange(3, 10)), (1, np.arange(0, 5))):
        drawn = negatives[users == user].ravel()
        assert set(np.unique(drawn)) == set(allowed)
        counts = np.bincount(drawn, minlength=10)[allowed]
        assert stats.chisquare(counts).pvalue > 1e-3


def test_a_user_with_every_item_cannot_get_negatives():
    with pytest.raises(ValueError, match="every item"):
        NegativeSampler(np.zeros(3, int), np.arange(3), n_users=1, n_items=3)


# ----------------------------------------------------------------------------- devices, selection


def test_device_auto_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert NCFConfig().device == "auto" and resolve_device(NCFConfig().device).type == "cpu"


def test_select_epoch_takes_the_earliest_best_hr():
    rows = [{"epoch": e, "hr10": h} for e, h in enumerate([0.1, 0.5, 0.7, 0.7, 0.6])]
    assert select_epoch(rows) == 2
    assert select_epoch([{"epoch": 0, "hr10": 0.3}, {"epoch": 1, "hr10": 0.3}]) == 0
    with pytest.raises(ValueError):
        select_epoch([])


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="batch_size"):
        NCFConfig(batch_size=0).validate()
    with pytest.raises(ValueError, match="alpha"):
        NCFConfig(alpha=1.5).validate()


# ----------------------------------------------------------------------------- training


def test_training_is_deterministic_for_a_seed(split):
    def train():
        model = build_model("NeuMF", split.n_users, split.n_items, 4, seed=11)
        result = fit(model, split.train_users, split.train_items, split, epochs=2, seed=5,
                     device="cpu")
        return model, result

    (m1, r1), (m2, r2) = train(), train()
    for (name, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), name
    assert [_without_timing(r) for r in r1.rows][1:] == [_without_timing(r) for r in r2.rows][1:]
    assert r1.rows[0]["hr10"] == r2.rows[0]["hr10"]
    # another seed gives another model
    other = build_model("NeuMF", split.n_users, split.n_items, 4, seed=12)
    assert not torch.equal(other.user_embedding.weight, m1.user_embedding.weight)


def _sgd_fit(split, reg: float = 0.0) -> EmbeddingModel:
    """NeuMF (k = 4) after 2 epochs of fit's SGD at a large lr, so that rounding would show."""
    model = build_model("NeuMF", split.n_users, split.n_items, 4, seed=11)
    fit(model, split.train_users, split.train_items, split, epochs=2, seed=5, optimizer="sgd",
        lr=0.5, reg=reg, device="cpu")
    return model


@pytest.mark.parametrize("reg", [0.0, 1e-3])
def test_row_sparse_sgd_gives_bitwise_the_dense_sgd_update(split, monkeypatch, reg):
    monkeypatch.setattr(ncf_training, "ROW_SPARSE_MIN_ENTRIES", 0)  # tables this small too
    used = []
    real = ncf_training.sparse_embedding_gradients
    monkeypatch.setattr(ncf_training, "sparse_embedding_gradients",
                        lambda model, enabled: used.append(enabled) or real(model, enabled))
    ours = _sgd_fit(split, reg)
    assert used == [reg == 0]  # the row path, unless a penalty makes the gradients dense
    assert not ours.user_embedding.sparse and not ours.item_embedding.sparse  # restored
    # the reference: torch's own SGD on dense embedding gradients (150 users, 250 items: a
    # batch of 256 repeats rows, so the order in which duplicates are summed is exercised)
    monkeypatch.setattr(ncf_training, "sparse_embedding_gradients",
                        lambda model, enabled: contextlib.nullcontext())
    monkeypatch.setattr(ncf_training, "make_optimizer",
                        lambda name, params, lr: torch.optim.SGD(params, lr=lr))
    dense = _sgd_fit(split, reg)
    for (name, a), (_, b) in zip(ours.state_dict().items(), dense.state_dict().items()):
        assert torch.equal(a, b), name
    # and the test can tell: torch's SGD on the *sparse* gradients adds duplicates one by one
    monkeypatch.setattr(ncf_training, "sparse_embedding_gradients",
                        lambda model, enabled: contextlib.nullcontext(
                            [setattr(t, "sparse", True)
                             for t in (model.user_embedding, model.item_embedding)]))
    if reg == 0:
        naive = _sgd_fit(split, reg)
        assert not torch.equal(naive.item_embedding.weight, dense.item_embedding.weight)


def test_protocol_runs_are_reproducible(split, tuning):
    config = NCFConfig(epochs=2, device="cpu")
    a = run_protocol(split, tuning, "GMF", 4, seed=1, config=config)
    b = run_protocol(split, tuning, "GMF", 4, seed=1, config=config)
    assert _without_timing(a.row) == _without_timing(b.row)
    assert ([_without_timing(r) for r in a.curves] == [_without_timing(r) for r in b.curves])


def test_tiny_end_to_end_run_learns_far_above_random(split, tuning):
    result = run_protocol(split, tuning, "NeuMF", 4, seed=0, config=NCFConfig(epochs=3))
    # 100 candidates: a random ranking has HR@10 = 0.1
    assert result.row["hr10"] > 0.25 and result.row["val_hr10"] > 0.25
    test_curve = [r for r in result.curves if r["phase"] == "test"]
    assert test_curve[0]["hr10"] < 0.2  # the untrained model (epoch 0) is near random
    assert test_curve[-1]["loss"] < test_curve[1]["loss"]
    assert result.row["dim"] == 12 and result.row["predictive_factor"] == 4


def test_validation_selection_never_looks_at_the_test_data(split, tuning):
    """Scrambling every test item and test negative changes test numbers, not the epoch."""
    rng = np.random.default_rng(99)
    scrambled = dataclasses.replace(
        split,
        test_items=rng.integers(0, split.n_items, split.n_users).astype(np.int32),
        test_negatives=rng.integers(0, split.n_items, split.test_negatives.shape).astype(np.int32))
    config = NCFConfig(epochs=3, device="cpu")
    honest = run_protocol(split, tuning, "MLP", 4, seed=2, config=config)
    perturbed = run_protocol(scrambled, tuning, "MLP", 4, seed=2, config=config)
    assert honest.row["epochs_selected"] == perturbed.row["epochs_selected"]
    validation = [_without_timing(r) for r in honest.curves if r["phase"] == "validation"]
    assert validation == [_without_timing(r) for r in perturbed.curves
                          if r["phase"] == "validation"]
    test_hr = [r["hr10"] for r in honest.curves if r["phase"] == "test"]
    assert test_hr != [r["hr10"] for r in perturbed.curves if r["phase"] == "test"]


def test_test_selected_metric_bounds_the_validation_selected_one(split, tuning):
    for model in ("GMF", "MLP"):
        result = run_protocol(split, tuning, model, 4, seed=3, config=NCFConfig(epochs=4))
        row = result.row
        test_curve = [r for r in result.curves if r["phase"] == "test"]
        assert row["hr10_test_selected"] >= row["hr10"]
        assert row["hr10_test_selected"] == max(r["hr10"] for r in test_curve)
        assert row["epoch_test_selected"] == select_epoch(test_curve)
        assert row["hr10"] == test_curve[row["epochs_selected"]]["hr10"]
        assert row["hr10_last"] == test_curve[-1]["hr10"]


# ----------------------------------------------------------------------------- pre-training


def test_pretrained_initialisation_mixes_the_gmf_and_mlp_logits(split):
    gmf = build_model("GMF", split.n_users, split.n_items, 4, seed=1, init_std=0.5)
    mlp = build_model("MLP", split.n_users, split.n_items, 4, seed=2, init_std=0.5)
    neumf = EmbeddingModel.neumf_from_pretrained(gmf, mlp, alpha=0.5)
    users = torch.arange(split.n_users).repeat_interleave(3)
    items = torch.randint(0, split.n_items, users.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = 0.5 * gmf(users, items) + 0.5 * mlp(users, items)
        assert torch.allclose(neumf(users, items), mixed, atol=1e-6)
        assert mixed.std() > 1e-3  # not a degenerate comparison


def test_pretrained_neumf_starts_from_the_selected_components(split, tuning, pretrained_run):
    gmf, mlp, neumf = pretrained_run
    assert neumf.row["optimizer"] == "sgd"  # He et al. Sec. 3.4.1: vanilla SGD fine-tuning
    assert neumf.row["gmf_epochs"] == gmf.row["epochs_selected"]
    assert neumf.row["mlp_epochs"] == mlp.row["epochs_selected"]
    # epoch 0 of the validation fine-tuning is the alpha = 0.5 mix of the validation-selected
    # GMF and MLP: evaluate that mix by hand
    evaluator = SampledEvaluator(tuning)
    models = {}
    for name, part in (("GMF", gmf), ("MLP", mlp)):
        models[name] = build_model(name, split.n_users, split.n_items, 4, seed=0)
        models[name].load_state_dict(part.states["validation"])
    users = torch.as_tensor(evaluator.users, dtype=torch.long)
    cands = torch.as_tensor(evaluator.candidates, dtype=torch.long)
    with torch.no_grad():
        logits = sum(0.5 * m(users[:, None].expand_as(cands), cands) for m in models.values())
    expected = evaluator.evaluate(torch.sigmoid(logits).float().numpy())
    start = next(r for r in neumf.curves if r["phase"] == "validation" and r["epoch"] == 0)
    assert abs(start["hr10"] - expected.hr) <= 1.0 / split.n_users
    # the components' own selected validation score is what they were chosen for
    assert gmf.row["val_hr10"] == evaluate_model(models["GMF"], tuning).hr
    # a third, NCF's-rule fine-tuning exists exactly when the test-selected components differ
    differs = (gmf.row["epoch_test_selected"] != gmf.row["epochs_selected"]
               or mlp.row["epoch_test_selected"] != mlp.row["epochs_selected"])
    assert differs == any(r["phase"] == "test-ncf-components" for r in neumf.curves)


def test_pretrained_neumf_trains_its_own_components_when_none_are_given(split, tuning,
                                                                       pretrained_run):
    """Without components, run_protocol trains GMF and MLP itself with the seeds they have
    alone: the same fine-tuning, the same row and curves."""
    alone = run_protocol(split, tuning, "NeuMF-pretrained", 4, seed=0,
                         config=NCFConfig(epochs=3, device="cpu"))
    expected = pretrained_run[2]
    assert _without_timing(alone.row) == _without_timing(expected.row)
    assert _curves_without_timing(alone.curves) == _curves_without_timing(expected.curves)


def test_a_test_run_keeps_the_states_asked_for(split, tuning):
    config = NCFConfig(epochs=2, device="cpu")
    run = execute_run(RunTask("GMF", 2, 0, "test", keep=(0, 2)), split, tuning, config,
                      max_batches=10)
    assert sorted(run.states) == [0, 2] and len(run.rows) == 3


def test_packed_states_round_trip_exactly(pretrained_run):
    gmf = pretrained_run[0]
    states = unpack_states(pack_states(gmf))
    assert sorted(states) == sorted(gmf.states)
    for which, state in gmf.states.items():
        assert all(torch.equal(state[name], states[which][name]) for name in state)


def test_components_must_match_the_model(split, tuning, pretrained_run):
    gmf = pretrained_run[0]
    with pytest.raises(ValueError, match="k=8, seed=0.*GMF k=4"):
        run_protocol(split, tuning, "NeuMF-pretrained", 8, seed=0, components={"GMF": gmf})
    with pytest.raises(ValueError, match="'NeuMF'"):
        run_protocol(split, tuning, "NeuMF-pretrained", 4, seed=0, components={"NeuMF": gmf})


def _curves_without_timing(curves: list[dict]) -> list[dict]:
    return [_without_timing(row) for row in curves]
