"""The numbers the README's Results section quotes are the library's, from the committed tables.

The README is read by people who never open the book, so its Section 3 numbers are checked
against ``summaries`` here: a new result row that changes a mean or a range fails this test
until the README says the same as the chapter.
"""

from __future__ import annotations

import re

import pytest

from ncf_vs_mf import summaries
from ncf_vs_mf.chapters import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = REPO_ROOT / "results" / "ncf_experiments"


@pytest.fixture(scope="module")
def section3():
    return summaries.section3_results(RESULTS)


@pytest.fixture(scope="module")
def ncf_numbers(section3):
    return summaries.section3_ncf_numbers(section3)


def _numbers(pattern: str) -> list[float]:
    match = re.search(pattern, README, flags=re.DOTALL)
    assert match, f"README no longer says {pattern!r}"
    return [float(g) for g in match.groups()]


def test_mf_table_is_the_mean_over_seeds(section3):
    dims = _row(r"\| d \|")
    mf = section3.mf.set_index("dim")
    assert [int(d) for d in dims] == mf.index.tolist()
    for label, metric in (("HR@10", "hr10"), ("NDCG@10", "ndcg10")):
        assert _row(rf"\| {label} \|") == [f"{v:.4f}" for v in mf[metric]], label


def _row(start: str) -> list[str]:
    line = next(line for line in README.splitlines() if re.match(start, line))
    return [cell.strip() for cell in line.strip().strip("|").split("|")[1:]]


def test_seed_counts(section3):
    (quoted,) = _numbers(r"mean of (\d+) seeds")
    seeds = section3.mf["seeds"]
    assert quoted == seeds.min() == seeds.max()  # one count for every d


def test_d192_against_table1(section3):
    hr, ndcg = _numbers(r"At d = 192 we get HR@10 ([\d.]+) and NDCG@10 ([\d.]+)")
    row = section3.mf.set_index("dim").loc[192]
    assert (hr, ndcg) == (round(row["hr10"], 4), round(row["ndcg10"], 4))


def test_ncf_ranges(section3, ncf_numbers):
    low, high = _numbers(r"by ([\d.]+) to ([\d.]+) HR@10, beyond its 95%")
    assert (low, high) == (round(ncf_numbers["gap_learned_min"], 3),
                           round(ncf_numbers["gap_learned_max"], 3))
    below = _numbers(r"land ([\d.]+) to ([\d.]+) HR@10 below NCF's")
    assert below[1] == round(ncf_numbers["below_published_max"], 3)
    mean, single = _numbers(r"adds at most\s+([\d.]+) on average over seeds \(([\d.]+) in one run\)")
    assert (mean, single) == (round(ncf_numbers["inflation_mean_max"], 3),
                              round(ncf_numbers["inflation_run_max"], 3))
    (rule,) = _numbers(r"stay below our MF\s+at every d \(by at least ([\d.]+)\)")
    assert rule == round(ncf_numbers["gap_learned_ncf_rule_min"], 3)


def test_mf_against_published_mlp(section3):
    low, high = _numbers(r"published MLP at every dimension \(\+([\d.]+) to \+([\d.]+) HR@10\)")
    mf = section3.mf.set_index("dim")["hr10"]
    mlp = section3.published[section3.published["model"] == "MLP"]
    leads = [mf.loc[d] - h for d, h in zip(mlp["embedding_dim"], mlp["hr10"])]
    assert (low, high) == (round(min(leads), 3), round(max(leads), 3))


def test_the_tuning_grid_numbers():
    tuning = summaries.tuning_runs(RESULTS)
    coarse = tuning[(tuning["dim"] == 64) & (tuning["epochs"] == 128)]
    fine = tuning[(tuning["dim"] == 128) & (tuning["epochs"] == 256)]
    choice = {"lr": 0.002, "negatives": 8, "reg": 0.005}
    cells, lr, m, reg, rank, gap = _numbers(
        r"gives (\d+) cells: the\s+best is lr ([\d.]+), m = (\d+), lambda ([\d.]+), and the "
        r"paper's lr 0.002, m = 8, lambda 0.005 ranks\s+(\d+)th, ([\d.]+) HR@10 below it")
    first = summaries.rank_of_choice(coarse, choice, label="paper")
    assert (cells, lr, m, reg, rank) == (first["cells"], first["best lr"],
                                         first["best negatives"], first["best reg"],
                                         first["paper: rank"])
    assert gap == round(first["best HR@10"] - first["paper: HR@10"], 4)
    a2 = coarse[coarse["lr"].isin([0.001, 0.003, 0.01]) & coarse["reg"].isin([0.001, 0.003, 0.01])]
    by_m = summaries.coarse_grid_means(a2, "negatives").set_index("negatives")
    settings, m4, m8, m16 = _numbers(r"over the (\d+) lr x lambda cells each ran, m = 4, 8, 16 "
                                     r"average\s+HR@10 (\d\.\d+), (\d\.\d+) and (\d\.\d+)")
    assert settings == by_m["settings"].min() == by_m["settings"].max()
    assert [m4, m8, m16] == [round(by_m.loc[m, "hr10"], 4) for m in (4, 8, 16)]
    (final_rank, final_cells) = _numbers(r"paper's choice ranks (\d)nd of (\d+)\.")
    last = summaries.rank_of_choice(fine, choice, label="paper")
    assert (final_rank, final_cells) == (last["paper: rank"], last["cells"])


def test_the_initialization_spread():
    (spread,) = _numbers(r"`reproduce mf-init`\) moves the mean HR@10 by (\d\.\d+), within")
    sweep = summaries.over_seeds(summaries.init_runs(RESULTS), ["dim", "init_std"])
    assert spread == round(sweep["hr10"].max() - sweep["hr10"].min(), 4)
    assert "within the seeds' 95% intervals" in summaries.init_text(sweep)
