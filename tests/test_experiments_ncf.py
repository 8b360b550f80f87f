"""``reproduce ncf`` on the experiment engine: a pre-trained NeuMF waits for its GMF and MLP,
which train once however many cells need them and are reused from the run store; the engine's
rows equal the protocol run directly; a failing fine-tuning keeps every other model's row."""

import pandas as pd
import pytest
import torch

from ncf_vs_mf import experiments, ncf_protocol
from ncf_vs_mf.data import load_dataset, tuning_split
from ncf_vs_mf.experiments.engine import GridFailed
from ncf_vs_mf.ncf_training import NCFConfig

TINY = dict(dataset="synthetic", factors=[2], seeds=[0], epochs=1, max_batches=20,
            device="cpu")
TIMING = {"seconds", "examples_per_second", "pretrain_seconds", "train_seconds", "run_id"}


@pytest.fixture
def trained(monkeypatch):
    """The (model, phase) of every training run, in order."""
    runs = []
    real = ncf_protocol.execute_run

    def counting(task, *args, **kwargs):
        runs.append((task.model, task.phase))
        return real(task, *args, **kwargs)

    monkeypatch.setattr(ncf_protocol, "execute_run", counting)
    return runs


def test_components_train_once_for_every_fine_tuning_and_are_not_published(tmp_path, trained):
    table = experiments.reproduce("ncf", **TINY, models=["NeuMF-pretrained",
                                                         "NeuMF-pretrained-adam"],
                                  runs=tmp_path / "runs", out=tmp_path / "out")
    assert sorted(table["model"]) == ["NeuMF-pretrained", "NeuMF-pretrained-adam"]
    bases = [run for run in trained if run[0] in ("GMF", "MLP")]
    assert sorted(bases) == [("GMF", "test"), ("GMF", "validation"), ("MLP", "test"),
                             ("MLP", "validation")]
    assert len(list((tmp_path / "runs" / "ncf").glob("*.json"))) == 4  # GMF and MLP stored
    trained.clear()
    again = experiments.reproduce("ncf", **TINY, models=["GMF", "MLP"], runs=tmp_path / "runs",
                                  out=tmp_path / "out")
    assert trained == []  # the stored components are published, not retrained
    assert sorted(again["model"]) == ["GMF", "MLP", "NeuMF-pretrained", "NeuMF-pretrained-adam"]


def test_the_engine_rows_are_the_protocol_run_directly(tmp_path):
    torch.set_num_threads(1)
    table = experiments.reproduce("ncf", **TINY, models=["MLP", "NeuMF-pretrained"],
                                  runs=tmp_path / "runs", out=tmp_path / "out")
    split = load_dataset("synthetic")
    tuning = tuning_split(split)
    config = NCFConfig(epochs=1, device="cpu")
    direct = [ncf_protocol.run_protocol(split, tuning, model, 2, 0, config, max_batches=20).row
              for model in ("MLP", "NeuMF-pretrained")]
    theirs = pd.DataFrame(direct)
    columns = [c for c in theirs.columns if c not in TIMING]
    assert set(columns) <= set(table.columns)
    pd.testing.assert_frame_equal(
        table[columns].sort_values("model").reset_index(drop=True),
        theirs[columns].sort_values("model").reset_index(drop=True), check_dtype=False)


def test_full_ranking_columns_rank_the_reported_model_against_every_unseen_item(tmp_path):
    from ncf_vs_mf import protocols
    from ncf_vs_mf.experiments.ncf import ncf_scorer

    torch.set_num_threads(1)
    models = ["GMF", "NeuMF-pretrained"]
    plain = experiments.reproduce("ncf", **TINY, models=models, runs=tmp_path / "a",
                                  out=tmp_path / "plain")
    full = experiments.reproduce("ncf", **TINY, models=models, full_ranking=1,
                                 runs=tmp_path / "b", out=tmp_path / "full")
    assert "hr10_full" not in plain.columns
    full, plain = (t.sort_values("model").reset_index(drop=True) for t in (full, plain))
    assert full["hr10"].tolist() == plain["hr10"].tolist()  # the same runs, columns added
    split = load_dataset("synthetic")
    result = ncf_protocol.run_protocol(split, tuning_split(split), "NeuMF-pretrained", 2, 0,
                                       NCFConfig(epochs=1, device="cpu"), max_batches=20)
    # independently: every item scored by the reported model, ranked by brute force
    scores = protocols.score_matrix(ncf_scorer("NeuMF-pretrained", 2, split,
                                               result.states["test@selected"]),
                                    split.n_users, split.n_items)
    indptr, items = split.train_csr()
    above = []
    for user in range(split.n_users):
        seen = set(items[indptr[user]:indptr[user + 1]].tolist())
        test = split.test_items[user]
        above.append(sum(scores[user, i] >= scores[user, test] for i in range(split.n_items)
                         if i != test and i not in seen))
    expected = sum(r < 10 for r in above) / split.n_users
    row = full[full["model"] == "NeuMF-pretrained"].iloc[0]
    assert row["hr10_full"] == pytest.approx(expected)
    assert (full["hr10_full"] <= full["hr10"]).all()  # 99 negatives are unseen items too


def test_a_failing_fine_tuning_keeps_the_other_rows_and_the_rerun_trains_only_it(
        tmp_path, monkeypatch, capsys):
    real = ncf_protocol.execute_run

    def failing(task, *args, **kwargs):
        if task.model == "NeuMF-pretrained":
            raise RuntimeError("out of memory")
        return real(task, *args, **kwargs)

    monkeypatch.setattr(ncf_protocol, "execute_run", failing)
    kwargs = dict(TINY, models=["MLP", "NeuMF-pretrained"], runs=tmp_path / "runs",
                  out=tmp_path / "out")
    with pytest.raises(GridFailed, match="1 cell failed.*NeuMF-pretrained.*out of memory"):
        experiments.reproduce("ncf", **kwargs)
    assert "FAILED ncf" in capsys.readouterr().out
    first = pd.read_csv(tmp_path / "out" / "ncf_runs.csv")
    assert list(first["model"]) == ["MLP"]
    trained = []
    monkeypatch.setattr(ncf_protocol, "execute_run",
                        lambda task, *a, **k: trained.append(task.model) or real(task, *a, **k))
    again = experiments.reproduce("ncf", **kwargs)
    assert set(trained) == {"NeuMF-pretrained"}  # GMF and MLP come from the run store
    assert sorted(again["model"]) == ["MLP", "NeuMF-pretrained"]
    assert again.loc[again["model"] == "MLP", "run_id"].item() == first["run_id"].item()
