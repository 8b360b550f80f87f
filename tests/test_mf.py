"""The compiled MF trainer against an independent per-example implementation, and its contract."""

import dataclasses

import numpy as np
import pytest

from ncf_vs_mf.data import synthetic_split
from ncf_vs_mf.evaluation import SampledEvaluator
from ncf_vs_mf.mf import (MFConfig, TrainingDiverged, _generator_states, _State, encode_examples,
                          train_mf)
from ncf_vs_mf.mf_reference import sgd_pass

MASK = (1 << 64) - 1


class SplitMix:
    """Pure-Python splitmix64 and Lemire bounded draws: a second implementation of the stream."""

    def __init__(self, state: int):
        self.state = state

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        while True:
            m = (self.next() >> 32) * n
            low = m & 0xFFFFFFFF
            if low >= n or low >= (2**32 - n) % n:
                return m >> 32


def reference_training(split, config):
    """Train with the per-example reference loop on exactly the kernel's example stream."""
    state = _State.initial(split.n_users, split.n_items, config)
    model = state.model(config.dim)
    user, item, b = model.user.copy(), model.item.copy(), 0.0
    encoded, bits = encode_examples(split.train_users, split.train_items, config.negatives,
                                    split.n_items)
    examples, marker = encoded.tolist(), (1 << bits) - 1
    rng = SplitMix(int(_generator_states(config.seed, 1)[0]))
    losses = []
    for _ in range(config.epochs):
        for i in range(len(examples) - 1, 0, -1):
            j = rng.below(i + 1)
            examples[i], examples[j] = examples[j], examples[i]
        us, its, ys = [], [], []
        for e in examples:
            us.append(e >> bits)
            if e & marker == marker:
                its.append(rng.below(split.n_items))
                ys.append(0.0)
            else:
                its.append(e & marker)
                ys.append(1.0)
        b, loss = sgd_pass(user, item, b, us, its, np.array(ys), config.lr, config.reg)
        losses.append(loss)
    return user, item, b, losses


@pytest.fixture(scope="module")
def tiny():
    return synthetic_split(n_users=40, n_items=150, mean_interactions=12, n_negatives=20, seed=3)


@pytest.mark.parametrize("dim", [2, 5, 20])
def test_kernel_matches_reference_loop(tiny, dim):
    config = MFConfig(dim=dim, lr=0.05, reg=0.01, negatives=3, epochs=3, seed=7)
    model, history = train_mf(tiny, config, eval_every=1)
    user, item, b, losses = reference_training(tiny, config)
    np.testing.assert_allclose(model.user, user, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.item, item, rtol=1e-9, atol=1e-12)
    assert model.global_bias == pytest.approx(b, rel=1e-9)
    np.testing.assert_allclose([r["loss"] for r in history.rows], losses, rtol=1e-9)


def test_same_seed_same_bits_other_seed_differs(tiny):
    config = MFConfig(dim=8, lr=0.05, epochs=4, seed=1)
    a, _ = train_mf(tiny, config)
    b, _ = train_mf(tiny, config)
    c, _ = train_mf(tiny, dataclasses.replace(config, seed=2))
    assert np.array_equal(a.user, b.user) and np.array_equal(a.item, b.item)
    assert not np.array_equal(a.user, c.user)


@pytest.mark.parametrize("n_users, n_items, dtype", [(6, 8, np.int32), (6040, 3706, np.int32),
                                                     (2**20, 2**12, np.int64)])
def test_examples_encode_each_positive_once_and_m_negatives(n_users, n_items, dtype):
    users, items = np.array([0, 0, 5, n_users - 1]), np.array([3, 7, 2, n_items - 1])
    examples, bits = encode_examples(users, items, negatives=2, n_items=n_items)
    assert examples.dtype == dtype and examples.size == 12
    marker = (1 << bits) - 1
    assert marker > n_items - 1  # the negative marker is never a valid item
    positives = examples[(examples & marker) != marker]
    assert sorted(zip((positives >> bits).tolist(), (positives & marker).tolist())) == sorted(
        zip(users.tolist(), items.tolist()))
    negatives = examples[(examples & marker) == marker] >> bits
    assert sorted(negatives.tolist()) == sorted(2 * users.tolist())


def test_model_scores_follow_eq2(tiny):
    model, _ = train_mf(tiny, MFConfig(dim=4, lr=0.05, epochs=1))
    u, i = 3, 11
    p, q = model.user[u], model.item[i]
    expected = model.global_bias + p[0] + q[0] + p[1] * q[1] + p[2] * q[2] + p[3] * q[3]
    assert model.scores(np.array([u]), np.array([i]))[0] == pytest.approx(expected)


def test_training_learns_beyond_random(tiny):
    ev = SampledEvaluator(tiny)
    model, history = train_mf(tiny, MFConfig(dim=8, lr=0.05, reg=0.001, epochs=30), evaluator=ev)
    # 20 negatives + 1: random ranking gives HR@10 = 10/21 ~ 0.48 in expectation
    assert history.rows[-1]["hr10"] > 0.6
    assert model.evaluate(ev).hr == history.rows[-1]["hr10"]


def test_float32_close_to_float64(tiny):
    base = MFConfig(dim=8, lr=0.05, epochs=5)
    m64, _ = train_mf(tiny, base)
    m32, _ = train_mf(tiny, dataclasses.replace(base, dtype="float32"))
    assert m32.user.dtype == np.float32
    np.testing.assert_allclose(m32.user, m64.user, atol=1e-4)


def test_hogwild_trains(tiny):
    model, history = train_mf(tiny, MFConfig(dim=8, lr=0.05, epochs=3, threads=2))
    assert np.isfinite(model.user).all() and history.updates > 0


@pytest.mark.parametrize("field, value, message", [
    ("dim", 1, "d >= 2"), ("lr", 0.0, "learning rate > 0"), ("lr", -1.0, "learning rate > 0"),
    ("reg", -0.1, "lambda >= 0"), ("negatives", 0, "m >= 1"), ("epochs", 0, "epoch"),
])
def test_invalid_settings_rejected_before_training(tiny, field, value, message):
    with pytest.raises(ValueError, match=message) as info:
        train_mf(tiny, dataclasses.replace(MFConfig(), **{field: value}))
    assert f"{field}=" in str(info.value)


def test_divergence_names_epoch_and_settings(tiny):
    with pytest.raises(TrainingDiverged, match=r"epoch \d+.*'lr': 1e\+30"):
        train_mf(tiny, MFConfig(dim=8, lr=1e30, epochs=5))
