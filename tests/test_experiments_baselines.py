"""``reproduce baselines`` on the experiment engine, in this process: a tiny grid runs the tuning
cells and then each model's chosen setting on the test split, a rerun trains nothing, the
selection is the best tuning HR@10, and a bad grid point is refused before anything runs."""

import pandas as pd
import pytest

from ncf_vs_mf import data, experiments
from ncf_vs_mf.baselines import BASELINES
from ncf_vs_mf.experiments import baselines as exp
from ncf_vs_mf.experiments.engine import RunResult, SettingsError

TINY = dict(dataset="synthetic", models=["Popularity", "EASE^R", "iALS"], grid="smoke",
            seeds=[0, 1])


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baselines")
    table = experiments.reproduce("baselines", **TINY, runs=folder / "runs", out=folder / "out",
                                  scheduler="inprocess")
    return folder, table


def test_grid_runs_tuning_then_the_selected_setting_per_model_and_seed(published):
    _, table = published
    test = table[table["split"] == "test"]
    # Popularity and EASE^R are deterministic (one seed); iALS runs both seeds
    assert sorted(zip(test["model"], test["seed"])) == [("EASE^R", 0), ("Popularity", 0),
                                                        ("iALS", 0), ("iALS", 1)]
    tuning = table[table["split"] == "tuning"]
    # Popularity 1, EASE^R 2 points, iALS 1 point: all tuned with seed 0
    assert len(tuning) == 1 + 2 + 1 and (tuning["seed"] == 0).all()
    assert (test["setting"] == exp.SELECTED).all()
    assert test["selection"].str.startswith("best tuning HR@10 of").all()
    assert (tuning["selection"] == "grid point (tuning split)").all()
    assert table[["fit_seconds", "score_seconds"]].ge(0).all().all()


def test_selected_setting_is_the_best_on_the_tuning_split(published):
    _, table = published
    tuning = table[(table["split"] == "tuning") & (table["model"] == "EASE^R")]
    best = tuning.sort_values(["hr10", "ndcg10"], ascending=False, kind="stable").iloc[0]
    chosen = table[(table["split"] == "test") & (table["model"] == "EASE^R")].iloc[0]
    assert chosen["params"] == best["setting"]


def test_rerun_trains_nothing(published, capsys):
    folder, table = published
    again = experiments.reproduce("baselines", **TINY, runs=folder / "runs",
                                  out=folder / "out", scheduler="inprocess")
    assert "0 to run" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, table)


def test_choose_breaks_ties_by_ndcg_then_grid_order():
    rows = {"a": RunResult({"hr10": 0.5, "ndcg10": 0.2}),
            "b": RunResult({"hr10": 0.5, "ndcg10": 0.3}),
            "c": RunResult({"hr10": 0.5, "ndcg10": 0.3})}
    assert exp.choose(rows) == "b"


def test_setting_text_round_trips():
    for model, points in exp.GRIDS["table1"].items():
        for params in points:
            assert exp.parse_setting(exp.setting_text(params)) == params, model


def test_committed_grids_are_in_range_and_every_model_has_one():
    for name, grid in exp.GRIDS.items():
        assert set(grid) == set(BASELINES), name
        for model, points in grid.items():
            cell = exp.BaselineCell("ml-1m", model, name, 0, "test", exp.SELECTED, 1)
            assert exp.check(cell) == [], (name, model)


def test_bad_grid_point_is_refused_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setitem(exp.GRIDS["smoke"], "EASE^R", [{"reg": -1.0}])
    with pytest.raises(SettingsError, match=r"--grid smoke: EASE\^R reg=-1.0"):
        experiments.reproduce("baselines", **{**TINY, "models": ["EASE^R"]},
                              runs=tmp_path / "runs", scheduler="inprocess")
    assert not (tmp_path / "runs" / "baselines").exists()


def test_report_summaries_of_the_tiny_grid(published):
    from ncf_vs_mf.report import baselines as report

    folder, table = published
    runs = report.load_runs(folder / "out")
    ours = report.test_summary(runs, "synthetic")
    assert ours["model"].tolist() == ["Popularity", "EASE^R", "iALS"]  # BASELINES order
    ials = table[(table["model"] == "iALS") & (table["split"] == "test")]
    assert ours.set_index("model").loc["iALS", "hr10"] == pytest.approx(ials["hr10"].mean())
    assert ours.set_index("model").loc["iALS", "seeds"] == 2
    tuning = report.tuning_summary(runs, "synthetic").set_index("model")
    assert tuning.loc["EASE^R", "points"] == 2
    assert tuning.loc["EASE^R", "best"] >= tuning.loc["EASE^R", "worst"]


def test_beyond_interval_uses_the_floor_for_a_model_run_once():
    from ncf_vs_mf.report.baselines import beyond_interval

    once = pd.Series({"hr10_diff": 0.002, "hr10_ci95": float("nan")})
    assert not beyond_interval(once) and beyond_interval(once, floor=0.001)
    seeds = pd.Series({"hr10_diff": -0.004, "hr10_ci95": 0.003})
    assert beyond_interval(seeds)


def test_at_grid_edge_names_extreme_choices_of_parameters_tried_at_several_values():
    from ncf_vs_mf.report.baselines import at_grid_edge

    points = exp._product(neighbors=(50, 100, 200), shrink=(0.0, 10.0), alpha=(1.0,))
    assert at_grid_edge(points, {"neighbors": 50, "shrink": 10.0, "alpha": 1.0}) == [
        "neighbors=50", "shrink=10"]
    assert at_grid_edge(points, {"neighbors": 100, "shrink": 0.0, "alpha": 1.0}) == ["shrink=0"]


def _pinterest_shaped(source, folder) -> None:
    """Pinterest-20's three NCF files in ``folder``, built from the real ML-1M files: its
    55,187 users are ML-1M's users repeated (user u copies ML-1M user u mod 6,040: the first
    three training pairs, the test item, the 99 negatives); all ids fit Pinterest's 9,916 items."""
    n_users = data.NCF_DATASETS["pinterest-20"].n_users
    train: dict[int, list[str]] = {}
    for line in (source / "ml-1m.train.rating").read_text().splitlines():
        user, rest = line.split("\t", 1)
        if len(train.setdefault(int(user), [])) < 3:
            train[int(user)].append(rest)
    test = [line.split("\t", 1)[1] for line in
            (source / "ml-1m.test.rating").read_text().splitlines()]
    negatives = [line.split("\t", 1) for line in
                 (source / "ml-1m.test.negative").read_text().splitlines()]
    folder.mkdir(parents=True)
    base = [u % len(test) for u in range(n_users)]
    (folder / "pinterest-20.train.rating").write_text(
        "".join(f"{u}\t{rest}\n" for u, b in enumerate(base) for rest in train[b]))
    (folder / "pinterest-20.test.rating").write_text(
        "".join(f"{u}\t{test[b]}\n" for u, b in enumerate(base)))
    (folder / "pinterest-20.test.negative").write_text("".join(
        f"({u},{negatives[b][0].split(',')[1]}\t{negatives[b][1]}\n"
        for u, b in enumerate(base)))


def test_pinterest_runs_through_the_same_path(ncf_data_dir, tmp_path, monkeypatch):
    from ncf_vs_mf.report import baselines as report

    monkeypatch.setenv("NCF_VS_MF_CACHE", str(tmp_path / "cache"))  # its pins go here
    _pinterest_shaped(ncf_data_dir / "ncf", tmp_path / "data" / "ncf")
    table = experiments.reproduce("baselines", dataset="pinterest-20",
                                  models=["Popularity", "PureSVD"], grid="smoke", seeds=[0],
                                  data_dir=str(tmp_path / "data"), runs=tmp_path / "runs",
                                  out=tmp_path / "out", scheduler="inprocess")
    assert set(table["dataset"]) == {"pinterest-20"}
    assert sorted(table.loc[table["split"] == "test", "model"]) == ["Popularity", "PureSVD"]
    assert table["hr10"].between(0, 1).all() and (table["hr10"] > 0).any()
    assert len(list((tmp_path / "cache").rglob("*.sha256"))) == 3  # pinned on first use
    ours = report.test_summary(report.load_runs(tmp_path / "out"), "pinterest-20")
    assert sorted(ours["model"]) == ["Popularity", "PureSVD"]
