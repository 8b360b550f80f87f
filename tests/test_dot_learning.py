"""Section 4: the synthetic dot-product data, the MLP learner and the grid (summaries and
figures: tests/test_report_mlp_dot.py)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_vs_mf import cli
from ncf_vs_mf import dot_learning as dl
from ncf_vs_mf.models import parameter_count


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def small():
    return dl.generate(4, 300, seed=0, fresh_pairs=3000)


def _keys(pairs: dl.Pairs, n_items: int) -> np.ndarray:
    return pairs.users.astype(np.int64) * n_items + pairs.items


# ----------------------------------------------------------------------------- the data


def test_sigma_emb_by_hand():
    # (1.13^2 - 0.85^2) / 4 = 0.5544 / 4 = 0.1386; 0.1386^(1/4) = 0.610156...
    assert dl.sigma_emb(4) == pytest.approx(0.610156, abs=1e-6)
    for d in (1, 16, 128):  # Var(y) = d sigma^4 + 0.85^2 = 1.13^2
        assert d * dl.sigma_emb(d) ** 4 + 0.85 ** 2 == pytest.approx(1.13 ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        dl.sigma_emb(0)


def test_hidden_width():
    assert [dl.hidden_width(16, w) for w in (0.5, 1.0, 2.0)] == [8, 16, 32]
    with pytest.raises(ValueError, match="even d"):
        dl.hidden_width(5, 0.5)
    with pytest.raises(ValueError, match="whole number >= 1"):
        dl.hidden_width(4, 0.0)


def test_rmse_by_hand():
    assert dl.rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(
        math.sqrt(13 / 3), rel=1e-15)
    with pytest.raises(ValueError, match="no predictions"):
        dl.rmse(np.array([]), np.array([]))


def test_baselines_by_hand():
    p = np.array([[1, 0], [0, 2]], dtype=np.float32)
    q = np.array([[1, 1], [3, 0]], dtype=np.float32)
    users, items = np.array([0, 1], dtype=np.int32), np.array([1, 0], dtype=np.int32)
    pairs = dl.Pairs(p, q, users, items, np.array([4.0, 2.0], dtype=np.float32))
    # dots: <p0, q1> = 3, <p1, q0> = 2; residuals 1 and 0
    assert dl.baseline_rmse(pairs) == pytest.approx({"zero": math.sqrt(10), "dot": math.sqrt(0.5)})


@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_baseline_rmses_match_the_netflix_scale(d, seed):
    """Within 4 standard errors of 1.13 and 0.85, the errors derived from the sample sizes."""
    n_users = 1000
    data = dl.generate(d, n_users, seed, fresh_pairs=20_000)
    for name in ("train", "test", "fresh"):
        pairs = getattr(data, name)
        base = dl.baseline_rmse(pairs)
        se = dl.baseline_standard_errors(d, len(pairs), None if name == "fresh" else n_users)
        assert abs(base["zero"] - 1.13) < 4 * se["zero"], (name, base, se)
        assert abs(base["dot"] - 0.85) < 4 * se["dot"], (name, base, se)
        assert se["zero"] < 0.03 and se["dot"] < 0.01  # the check is not vacuous


def test_standard_errors_describe_the_spread_over_seeds():
    """Over 40 datasets the RMSEs spread as baseline_standard_errors says (within 50%)."""
    d, n_users = 4, 150
    stats = pd.DataFrame([{f"{name}_{k}": v for name in ("test", "fresh")
                           for k, v in dl.baseline_rmse(getattr(data, name)).items()}
                          for data in (dl.generate(d, n_users, s, fresh_pairs=2000)
                                       for s in range(40))])
    for name, n, users in (("test", 1500, n_users), ("fresh", 2000, None)):
        se = dl.baseline_standard_errors(d, n, users)
        for k in ("zero", "dot"):
            assert 0.5 * se[k] < stats[f"{name}_{k}"].std() < 1.5 * se[k], (name, k)


def test_sizes_split_and_fresh_embeddings(small):
    assert (len(small.train), len(small.test), len(small.fresh)) == (27_000, 3_000, 3_000)
    assert small.train.p is small.test.p and small.train.q is small.test.q
    assert small.fresh.p.shape == (3000, 4) and small.fresh.p is not small.train.p
    for pairs in (small.train, small.test, small.fresh):
        assert pairs.users.dtype == np.int32 and pairs.items.dtype == np.int32
        assert pairs.labels.dtype == np.float32 and pairs.p.dtype == np.float32


def test_pairs_are_distinct_and_train_test_disjoint(small):
    train, test = _keys(small.train, 300), _keys(small.test, 300)
    everything = np.concatenate([train, test])
    assert np.unique(everything).size == everything.size
    assert np.intersect1d(train, test).size == 0
    assert small.train.users.max() < 300 and small.train.items.max() < 300


def test_labels_are_the_dot_product_plus_noise(small):
    pairs = small.test
    dots = np.einsum("ij,ij->i", pairs.p[pairs.users].astype(np.float64),
                     pairs.q[pairs.items].astype(np.float64))
    noise = pairs.labels - dots
    assert abs(noise.mean()) < 4 * 0.85 / math.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.85, rel=0.05)
    assert np.corrcoef(noise, dots)[0, 1] == pytest.approx(0.0, abs=0.08)


def test_same_seed_same_data_other_seed_other_data(small):
    again = dl.generate(4, 300, seed=0, fresh_pairs=3000)
    other = dl.generate(4, 300, seed=1, fresh_pairs=3000)
    for name in ("train", "test", "fresh"):
        for array in ("p", "q", "users", "items", "labels"):
            assert np.array_equal(getattr(getattr(small, name), array),
                                  getattr(getattr(again, name), array))
        assert not np.array_equal(getattr(small, name).labels, getattr(other, name).labels)
    assert not np.array_equal(small.train.p, other.train.p)
    assert not np.array_equal(small.train.users, other.train.users)


def test_generation_at_large_m_does_not_allocate_m_squared():
    n_users = 64_000
    tracemalloc.start()
    try:
        data = dl.generate(4, n_users, seed=0, fresh_pairs=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data.train) + len(data.test) == 100 * n_users
    assert peak < 0.05 * n_users * n_users  # about 30 bytes per pair, not M^2
    assert peak > data.nbytes  # tracemalloc did see numpy's arrays


@pytest.mark.parametrize("n_pairs, n_users, n_items", [(5, 4, 5), (15, 4, 5)])
def test_sample_pairs_is_uniform(n_pairs, n_users, n_items):
    """Both branches (sparse: rejection; dense: permutation): every key equally often."""
    rng = np.random.default_rng(0)
    universe, repeats = n_users * n_items, 3000
    counts = np.zeros(universe)
    for _ in range(repeats):
        keys = dl.sample_pairs(n_pairs, n_users, n_items, rng)
        assert np.unique(keys).size == n_pairs and keys.min() >= 0 and keys.max() < universe
        counts[keys] += 1
    share = n_pairs / universe
    expected, sd = repeats * share, math.sqrt(repeats * share * (1 - share))
    assert np.abs(counts - expected).max() < 5 * sd


def test_bad_sizes_are_rejected_with_their_names():
    with pytest.raises(ValueError, match="more pairs requested than exist"):
        dl.generate(4, 50, seed=0)  # 100 * 50 pairs > 50 * 50
    with pytest.raises(ValueError, match="n_users must be an integer >= 1"):
        dl.generate(4, 0, seed=0)
    with pytest.raises(ValueError, match="dim must be"):
        dl.generate(2.5, 200, seed=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        dl.generate(4, 200, seed=-1)
    with pytest.raises(ValueError, match="more pairs requested"):
        dl.sample_pairs(10, 3, 3, np.random.default_rng(0))


# ----------------------------------------------------------------------------- the learner


def test_mlp_shape_parameters_and_seeding():
    before = torch.get_rng_state()
    model = dl.build_mlp(6, 3, seed=1)
    assert torch.equal(torch.get_rng_state(), before)  # global random state untouched
    widths = [(layer.in_features, layer.out_features) for layer in model.layers]
    assert widths == [(12, 12), (12, 6), (6, 3)] and model.output.in_features == 3
    assert sum(p.numel() for p in model.parameters()) == parameter_count("mlp", 6, 3)
    same, other = dl.build_mlp(6, 3, seed=1), dl.build_mlp(6, 3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    assert not torch.equal(model.output.weight, other.output.weight)
    assert model.output.weight.abs().max() <= math.sqrt(6 / 4)  # Glorot-uniform limit


CONFIG = dl.TrainConfig(epochs=2, device="cpu")


def test_training_is_deterministic_and_logs_every_epoch(small):
    model, first = dl.train_mlp(small, 4, seed=0, config=CONFIG)
    again, second = dl.train_mlp(small, 4, seed=0, config=CONFIG)
    assert pd.DataFrame(first.rows).equals(pd.DataFrame(second.rows))  # bit for bit
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert [r["epoch"] for r in first.rows] == [0, 1, 2]
    _, other = dl.train_mlp(small, 4, seed=1, config=CONFIG)
    assert other.final["rmse_mlp_test"] != first.final["rmse_mlp_test"]


def test_final_numbers_are_consistent(small):
    model, result = dl.train_mlp(small, 4, seed=0, config=CONFIG)
    final = result.final
    for name in ("test", "fresh"):
        pairs = getattr(small, name)
        assert final[f"error_{name}"] == pytest.approx(
            final[f"rmse_mlp_{name}"] - final[f"rmse_dot_{name}"], abs=1e-12)
        assert final[f"rmse_dot_{name}"] == dl.baseline_rmse(pairs)["dot"]
        with torch.no_grad():
            predictions = model(torch.from_numpy(pairs.p[pairs.users]),
                                torch.from_numpy(pairs.q[pairs.items])).numpy()
        assert final[f"rmse_mlp_{name}"] == pytest.approx(dl.rmse(predictions, pairs.labels),
                                                          rel=1e-5)
    assert final["train_loss"] == result.rows[-1]["train_loss"]


def test_training_lowers_the_error(small):
    _, result = dl.train_mlp(small, 8, seed=0, config=dl.TrainConfig(epochs=3, device="cpu"))
    errors = [r["error_fresh"] for r in result.rows]
    assert errors[-1] < 0.7 * errors[0]
    assert result.rows[-1]["train_loss"] < result.rows[1]["train_loss"]


def test_max_batches_takes_that_many_steps(small):
    model = dl.build_mlp(4, 4, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    data = dl.TensorPairs.of(small.train, torch.device("cpu"))
    loss = dl.train_epoch(model, optimizer, data, torch.Generator().manual_seed(0), 256,
                          max_batches=3)
    assert math.isfinite(loss)
    assert all(int(s["step"]) == 3 for s in optimizer.state.values())


def test_training_settings_are_checked():
    with pytest.raises(ValueError, match="epochs=-1.*batch_size=0.*lr=0"):
        dl.TrainConfig(epochs=-1, batch_size=0, lr=0.0).validate()


# ----------------------------------------------------------------------------- the grid


def test_grid_cells_and_cost_order():
    cells = dl.grid_cells([8, 16], [1000, 2000], [0.5, 1.0], [0, 1], dl.TrainConfig(epochs=1))
    assert len(cells) == 16 and len({tuple(c[k] for k in dl.KEY) for c in cells}) == 16
    assert {c["h"] for c in cells if c["dim"] == 8} == {4, 8}
    assert all(c["items"] == c["users"] for c in cells)
    ordered = sorted(cells, key=dl.cell_cost)
    assert (ordered[0]["dim"], ordered[0]["users"], ordered[0]["h"]) == (8, 1000, 4)
    assert (ordered[-1]["dim"], ordered[-1]["users"], ordered[-1]["h"]) == (16, 2000, 16)
    with pytest.raises(ValueError, match="even d"):
        dl.grid_cells([5], [1000], [0.5], [0])


def test_run_cell_gives_the_row_and_curve_of_the_committed_tables(tmp_path):
    (cell,) = dl.grid_cells([4], [200], [1.0], [0], dl.TrainConfig(epochs=1))
    row, curve = dl.run_cell(cell, "cpu", 1)
    header = open(dl.RESULTS / "mlp_dot_runs.csv").readline().strip().split(",")
    assert list(row) == header[:-1]  # every column but run_id, in the committed order
    curve_header = open(dl.RESULTS / "mlp_dot_curves.csv").readline().strip().split(",")
    assert [list(r) for r in curve] == [curve_header[:-1]] * 2  # epochs 0 and 1
    assert row["n_train"] == 90 * 200 and row["device"] == "cpu"


def test_command_is_registered_under_reproduce(tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["reproduce", "mlp-dot", "--dims", "8", "--users", "1000",
                              "2000", "--widths", "1", "--seeds", "0", "1", "2"])
    assert args.dim == [8] and args.users == [1000, 2000] and args.width == [1.0]
    assert args.seed == [0, 1, 2] and args.epochs == 32 and args.out is None
    assert args.device == "auto" and not args.publish
    defaults = parser.parse_args(["reproduce", "mlp-dot"])
    assert defaults.users == [4000, 8000, 16000, 32000, 64000, 128000]
    assert defaults.dim == [16, 32, 64, 128] and defaults.width == [0.5, 1.0, 2.0]
    assert defaults.seed == [0, 1, 2, 3, 4]
