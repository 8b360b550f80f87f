"""NCF's own models trained here: negatives, determinism, honest epoch selection, pre-training.

Everything runs on tiny synthetic splits with one torch thread (the whole file takes seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ncf_vs_mf.data import synthetic_split, tuning_split
from ncf_vs_mf.evaluation import SampledEvaluator
from ncf_vs_mf.models import EmbeddingModel
from ncf_vs_mf import ncf_training
from ncf_vs_mf.ncf_training import (
    ComponentStore, FamilyPlan, NCFConfig, NegativeSampler, build_model, evaluate_model,
    execute_run, fit, resolve_device, run_family, run_protocol, select_epoch,
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
    """GMF, MLP and pre-trained NeuMF (SGD) of one k and seed, 3 epochs each."""
    return run_family(split, tuning, ["GMF", "MLP", "NeuMF-pretrained"], k=4, seed=0,
                      config=NCFConfig(epochs=3, device="cpu"))


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


def test_family_components_equal_standalone_runs(split, tuning, pretrained_run):
    standalone = run_protocol(split, tuning, "GMF", 4, seed=0, config=NCFConfig(epochs=3))
    assert _without_timing(standalone.row) == _without_timing(pretrained_run[0].row)


def _drain(plan) -> list:
    """Every run the plan hands out now, without finishing any."""
    tasks = []
    while (task := plan.next_task()) is not None:
        tasks.append(task)
    return tasks


def test_a_family_plan_hands_out_runs_as_their_inputs_exist(split, tuning):
    """Pre-trained NeuMF's validation run waits for both components' validation runs only;
    its test run for their whole protocol; a test run started before its validation run ends
    keeps every epoch, one started after keeps the selected epoch."""
    config = NCFConfig(epochs=2, device="cpu")
    plan = FamilyPlan(["NeuMF-pretrained"], k=2, seed=0, config=config)
    first = _drain(plan)
    assert [(t.model, t.phase) for t in first] == [
        ("GMF", "validation"), ("GMF", "test"), ("MLP", "validation"), ("MLP", "test")]
    assert all(t.keep == (0, 1, 2) for t in first if t.phase == "test")
    run = {(t.model, t.phase): execute_run(t, split, tuning, config, max_batches=10)
           for t in first}
    assert plan.done(first[0], run["GMF", "validation"]) == []
    assert plan.next_task() is None  # the MLP validation run is still missing
    assert plan.done(first[2], run["MLP", "validation"]) == []
    [neumf_validation] = _drain(plan)
    assert (neumf_validation.model, neumf_validation.phase) == ("NeuMF-pretrained", "validation")
    for state, part in zip(neumf_validation.init, ("GMF", "MLP")):
        assert state is run[part, "validation"].best_state
    [gmf] = plan.done(first[1], run["GMF", "test"])
    assert gmf.model == "GMF" and plan.next_task() is None  # the test run waits for the MLP
    [mlp] = plan.done(first[3], run["MLP", "test"])
    rest = _drain(plan)
    same = all(part.row["epoch_test_selected"] == part.row["epochs_selected"]
               for part in (gmf, mlp))
    assert [t.phase for t in rest] == ["test"] + ([] if same else ["test-ncf-components"])
    assert rest[0].init == (gmf.states["test@selected"], mlp.states["test@selected"])
    with pytest.raises(ValueError, match="not handed out"):
        plan.done(first[0], run["GMF", "validation"])

    sequential = FamilyPlan(["GMF"], k=2, seed=0, config=config)
    validation = sequential.next_task()
    sequential.done(validation, execute_run(validation, split, tuning, config, max_batches=10))
    test = sequential.next_task()
    assert test.phase == "test" and test.keep == (select_epoch(run["GMF", "validation"].rows),)


def test_runs_in_any_order_give_the_sequential_result(split, tuning, pretrained_run):
    """Runs handed out all at once and finished in reverse order (as parallel processes may)
    give exactly the rows and curves of the sequential protocol."""
    config = NCFConfig(epochs=3, device="cpu")
    plan = FamilyPlan(["GMF", "MLP", "NeuMF-pretrained"], k=4, seed=0, config=config)
    results = {}
    while not plan.finished:
        tasks = _drain(plan)
        fits = [execute_run(t, split, tuning, config) for t in tasks]
        for task, fit_result in reversed(list(zip(tasks, fits))):
            results.update({r.model: r for r in plan.done(task, fit_result)})
    for expected in pretrained_run:
        got = results[expected.model]
        assert _without_timing(got.row) == _without_timing(expected.row)
        assert _curves_without_timing(got.curves) == _curves_without_timing(expected.curves)


def test_a_failing_run_abandons_only_its_family(split, tuning):
    """In a pool, the family whose run fails gets no further runs; the others finish."""
    from concurrent.futures import ThreadPoolExecutor

    from ncf_vs_mf.ncf_training import run_plans

    config = NCFConfig(epochs=1, device="cpu")
    plans = [FamilyPlan(["MLP"], k=2, seed=1, config=config),
             FamilyPlan(["GMF"], k=2, seed=0, config=config)]
    ran, results, errors = [], [], []

    def execute(task):
        ran.append((task.model, task.phase))
        if task.model == "MLP" and task.phase == "test":
            raise RuntimeError("out of memory")
        return execute_run(task, split, tuning, config, max_batches=5)

    with ThreadPoolExecutor(1) as pool:  # one at a time: the order is fixed
        run_plans(plans, execute, pool=pool, slots=1,
                  on_result=lambda plan, result: results.append(result.model),
                  on_error=lambda plan, error: errors.append((plan.models, str(error))))
    assert ran == [("MLP", "validation"), ("MLP", "test"), ("GMF", "validation"),
                   ("GMF", "test")]
    assert results == ["GMF"] and errors == [(["MLP"], "out of memory")]
    with pytest.raises(RuntimeError, match="out of memory"):  # without on_error: raised
        run_plans([FamilyPlan(["MLP"], k=2, seed=1, config=config)], execute)


def test_components_must_match_the_plan(split, tuning, pretrained_run):
    gmf = pretrained_run[0]
    with pytest.raises(ValueError, match="k=8, seed=0.*GMF k=4"):
        FamilyPlan(["NeuMF-pretrained"], k=8, seed=0, components={"GMF": gmf})
    with pytest.raises(ValueError, match="'NeuMF'"):
        FamilyPlan(["NeuMF-pretrained"], k=4, seed=0, components={"NeuMF": gmf})


# ----------------------------------------------------------------------------- grid


def test_reproduce_ncf_writes_resumable_tables(tmp_path):
    from ncf_vs_mf.reproduce import NCF_KEY, reproduce_ncf

    threads = 3  # not the runs' own setting (1): restoring it is then visible
    torch.set_num_threads(threads)
    kwargs = dict(dataset="synthetic", models=["GMF", "NeuMF-pretrained"], factors=[2],
                  seeds=[0], epochs=1, jobs=1, max_batches=20, out=tmp_path)
    runs = reproduce_ncf(**kwargs)
    assert sorted(runs["model"]) == ["GMF", "NeuMF-pretrained"]
    required = {"dataset", "model", "dim", "predictive_factor", "seed", "epochs_selected",
                "hr10", "ndcg10", "hr10_test_selected", "ndcg10_test_selected", "seconds",
                "run_id"}
    assert required <= set(runs.columns) and set(NCF_KEY) <= set(runs.columns)
    assert runs.set_index("model").loc["NeuMF-pretrained", "dim"] == 6
    curves = pd.read_csv(tmp_path / "ncf_curves.csv")
    assert {"validation", "test"} <= set(curves["phase"])
    assert (tmp_path / "ncf_runs.provenance.json").exists()
    again = reproduce_ncf(**kwargs)  # resumes: nothing left to run
    assert len(again) == 2 and set(again["run_id"]) == set(runs["run_id"])
    assert torch.get_num_threads() == threads  # in-process runs restore the thread setting
    torch.set_num_threads(1)


def test_a_family_stopped_midway_keeps_its_finished_models(tmp_path, monkeypatch, capsys):
    """A requested MLP is trained first (before the GMF needed only for pre-training) and saved
    the moment it is done: a failure in the family's pre-trained NeuMF loses only that model,
    and the rerun trains only it."""
    from ncf_vs_mf import ncf_training
    from ncf_vs_mf.reproduce import reproduce_ncf

    real = ncf_training.execute_run
    done = []

    def failing_neumf(task, *args, **kwargs):
        if task.model == "NeuMF-pretrained":
            raise RuntimeError("stopped")
        done.append((task.model, task.phase))
        return real(task, *args, **kwargs)

    kwargs = dict(dataset="synthetic", models=["MLP", "NeuMF-pretrained"], factors=[2],
                  seeds=[0], epochs=1, jobs=1, max_batches=20, out=tmp_path)
    monkeypatch.setattr(ncf_training, "execute_run", failing_neumf)
    with pytest.raises(RuntimeError, match="1 NCF family failed"):
        reproduce_ncf(**kwargs)
    # GMF trained for pre-training only: not a result row
    assert done == [("MLP", "validation"), ("MLP", "test"), ("GMF", "validation"),
                    ("GMF", "test")]
    log = capsys.readouterr().out
    assert "done synthetic MLP k=2 (d=4) seed=0" in log and "FAILED" in log
    first = pd.read_csv(tmp_path / "ncf_runs.csv")
    assert list(first["model"]) == ["MLP"]
    assert set(pd.read_csv(tmp_path / "ncf_curves.csv")["model"]) == {"MLP"}
    stored = sorted(p.name.split("_")[0] for p in (tmp_path / "components").glob("*.pt"))
    assert stored == ["GMF", "MLP"]
    done.clear()

    def counting(task, *args, **kwargs):
        done.append(task.model)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(ncf_training, "execute_run", counting)
    again = reproduce_ncf(**kwargs)
    assert set(done) == {"NeuMF-pretrained"}  # GMF and MLP come from components/, not retrained
    assert sorted(again["model"]) == ["MLP", "NeuMF-pretrained"]
    mlp = again[again["model"] == "MLP"]
    assert len(mlp) == 1 and mlp["run_id"].item() == first["run_id"].item()
    torch.set_num_threads(1)


def _curves_without_timing(curves: list[dict]) -> list[dict]:
    return [_without_timing(row) for row in curves]


def test_stored_components_give_the_same_pretrained_neumf(split, tuning, pretrained_run,
                                                          tmp_path, monkeypatch):
    """Components saved by one family and loaded by the next give a pre-trained NeuMF equal to
    the one built from freshly trained components, without training GMF or MLP again."""
    from ncf_vs_mf import ncf_training

    config = NCFConfig(epochs=3, device="cpu")
    store = ComponentStore(tmp_path, split, tuning, config)
    first = run_family(split, tuning, ["GMF", "MLP"], k=4, seed=0, config=config, store=store)
    assert sorted(p.name.split("_")[0] for p in tmp_path.glob("*.pt")) == ["GMF", "MLP"]
    real = ncf_training.execute_run
    trained = []

    def counting(task, *args, **kwargs):
        trained.append(task.model)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(ncf_training, "execute_run", counting)
    again = ComponentStore(tmp_path, split, tuning, config)  # as a new process would build it
    [neumf] = run_family(split, tuning, ["NeuMF-pretrained"], k=4, seed=0, config=config,
                         store=again)
    assert set(trained) == {"NeuMF-pretrained"}
    expected = pretrained_run[2]
    assert _without_timing(neumf.row) == _without_timing(expected.row)
    assert _curves_without_timing(neumf.curves) == _curves_without_timing(expected.curves)
    loaded = again.load("GMF", 4, 0)
    assert _without_timing(loaded.row) == _without_timing(first[0].row)
    assert _curves_without_timing(loaded.curves) == _curves_without_timing(first[0].curves)
    for which, state in first[0].states.items():
        assert all(torch.equal(state[name], loaded.states[which][name]) for name in state)


def test_components_of_other_settings_or_data_are_not_used(split, tuning, tmp_path):
    config = NCFConfig(epochs=1, device="cpu")
    store = ComponentStore(tmp_path, split, tuning, config)
    run_family(split, tuning, ["GMF"], k=2, seed=0, config=config, store=store)
    assert store.load("GMF", 2, 0) is not None
    assert store.load("GMF", 2, 1) is None and store.load("GMF", 4, 0) is None
    assert ComponentStore(tmp_path, split, tuning, NCFConfig(epochs=2)).load("GMF", 2, 0) is None
    other = dataclasses.replace(split, train_items=split.train_items[::-1].copy())
    assert ComponentStore(tmp_path, other, tuning, config).load("GMF", 2, 0) is None
    # settings that only pre-trained NeuMF reads do not invalidate its components
    mixed = dataclasses.replace(config, alpha=0.3, finetune_lr=0.01)
    assert ComponentStore(tmp_path, split, tuning, mixed).load("GMF", 2, 0) is not None


def test_an_unreadable_component_file_is_named(split, tuning, tmp_path):
    config = NCFConfig(epochs=1, device="cpu")
    store = ComponentStore(tmp_path, split, tuning, config)
    path = store.path("GMF", 2, 0)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=f"{path.name}.*delete the file"):
        store.load("GMF", 2, 0)


def test_ncf_jobs_run_cheap_cells_first_and_keep_families_together():
    from ncf_vs_mf.reproduce import _ncf_jobs

    cells = [{"model": m, "predictive_factor": k, "seed": s}
             for s in (0, 1) for k in (64, 8) for m in ("GMF", "MLP", "NeuMF", "NeuMF-pretrained")]
    jobs = _ncf_jobs(cells)
    assert [(j[0]["predictive_factor"], j[0]["seed"], len(j)) for j in jobs] == [
        (8, 0, 3), (8, 0, 1), (8, 1, 3), (8, 1, 1), (64, 0, 3), (64, 0, 1), (64, 1, 3), (64, 1, 1)]
    assert {c["model"] for c in jobs[0]} == {"GMF", "MLP", "NeuMF-pretrained"}


def test_a_grid_in_two_processes_gives_the_rows_of_one(tmp_path):
    """The spawned workers (``parallel.worker_pool``) train exactly what the serial path does."""
    from ncf_vs_mf.reproduce import reproduce_ncf

    kwargs = dict(dataset="synthetic", models=["MLP", "NeuMF", "NeuMF-pretrained"], factors=[2],
                  seeds=[0, 1], epochs=2, max_batches=20)
    tables = [reproduce_ncf(jobs=jobs, out=tmp_path / str(jobs), **kwargs) for jobs in (1, 2)]
    serial, parallel = ([_without_timing(row) for row in table.drop(columns="run_id")
                         .sort_values(["seed", "model"]).to_dict("records")] for table in tables)
    assert len(serial) == 6 and parallel == serial
    order = ["seed", "model", "phase", "epoch"]
    serial, parallel = (pd.read_csv(tmp_path / str(jobs) / "ncf_curves.csv")
                        .drop(columns=["run_id", "train_seconds"]).sort_values(order)
                        .reset_index(drop=True) for jobs in (1, 2))
    pd.testing.assert_frame_equal(parallel, serial)


def test_an_exploding_finite_loss_stops_training_naming_epoch_and_settings():
    from ncf_vs_mf.ncf_training import TrainingDiverged, build_model, fit

    split = synthetic_split(n_users=60, n_items=150, mean_interactions=10, n_negatives=20)
    model = build_model("GMF", split.n_users, split.n_items, 8, seed=0)
    with pytest.raises(TrainingDiverged, match=r"exploded in epoch 1: mean log loss .* 100 x "
                                               r"the first batch's .*lr=1000000\.0, optimizer=adam"):
        fit(model, split.train_users, split.train_items, split, epochs=3, seed=0, lr=1e6,
            batch_size=32, label="GMF k=8 seed=0")
