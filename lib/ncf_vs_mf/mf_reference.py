"""The same SGD as :mod:`ncf_vs_mf.mf`, written as a plain per-example Python/numpy loop.

It is the yardstick of the speed benchmark and the oracle of the tests: it follows Eqs. (9)-(12)
of Rendle et al. literally (whole user vector first, then the item with the updated user
vector) on an explicit sequence of examples, with no compilation and no fused loops.
"""

from __future__ import annotations

import numpy as np


def sgd_pass(user: np.ndarray, item: np.ndarray, global_bias: float, users: np.ndarray,
             items: np.ndarray, labels: np.ndarray, lr: float, reg: float) -> tuple[float, float]:
    """SGD over the given examples in order; rows are [bias, factors]. Returns (b, mean loss)."""
    total = 0.0
    for u, i, y in zip(users, items, labels):
        p, q = user[u], item[i]
        s = global_bias + p[0] + q[0] + p[1:] @ q[1:]
        sig = 1.0 / (1.0 + np.exp(-s))
        total += np.logaddexp(0.0, s) - y * s
        g = sig - y
        p[0] -= lr * (g + reg * p[0])
        p[1:] -= lr * (g * q[1:] + reg * p[1:])
        q[0] -= lr * (g + reg * q[0])
        q[1:] -= lr * (g * p[1:] + reg * q[1:])
        global_bias -= lr * (g + reg * global_bias)
    return global_bias, total / max(len(labels), 1)


def epoch_examples(train_users: np.ndarray, train_items: np.ndarray, n_items: int,
                   negatives: int, rng: np.random.Generator):
    """One epoch's examples the straightforward way: positives, m fresh negatives each, shuffled."""
    users = np.concatenate([train_users, np.repeat(train_users, negatives)])
    items = np.concatenate([train_items, rng.integers(0, n_items, train_users.size * negatives)])
    labels = np.concatenate([np.ones(train_users.size), np.zeros(train_users.size * negatives)])
    order = rng.permutation(users.size)
    return users[order], items[order], labels[order]
