"""Full ranking of every ML-1M user: an embedding model and NCF's MLP-scored models.

Times what ``protocols.full_ranking_metrics`` does for one trained model: score every item for
all 6,040 users (one matrix product per block of users for a dot product, batched torch
forward passes for GMF / MLP / NeuMF), then rank each test item against every item its user has
not trained on. The scores' values do not change the work, so the models are freshly
initialised (MF: random embeddings; NCF: ``build_model``). Best of ``--repeats`` runs, one
thread. Writes benchmarks/results/full_ranking.{json,md} (or ``--out``). Usage:

    python benchmarks/full_ranking.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ncf_vs_mf import protocols
from ncf_vs_mf.data import load_ncf
from ncf_vs_mf.experiments.ncf import ncf_scorer
from ncf_vs_mf.ncf_training import build_model
from ncf_vs_mf.results import atomic_write_text, environment

OUT = Path(__file__).resolve().parent / "results"


def scorer(spec: str, split, seed: int = 0) -> protocols.Scorer:
    """The scorer of ``MF:d`` (random embeddings) or ``GMF|MLP|NeuMF:k`` (fresh network)."""
    name, size = spec.split(":")
    if name == "MF":
        rng = np.random.default_rng(seed)
        user = rng.normal(0, 0.1, (split.n_users, int(size)))
        item = rng.normal(0, 0.1, (split.n_items, int(size)))
        return protocols.embedding_scorer(user, item, rng.normal(0, 0.1, split.n_items))
    net = build_model(name, split.n_users, split.n_items, int(size), seed=seed)
    return ncf_scorer(name, int(size), split, net.state_dict())


def best_seconds(score: protocols.Scorer, split, repeats: int) -> tuple[float, float, float]:
    """Best-of-``repeats`` seconds of scoring every item, of ranking, and of both together."""
    scoring, ranking = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = protocols.score_matrix(score, split.n_users, split.n_items, block=256)
        scored = time.perf_counter()
        protocols.full_ranks(scores, split)
        ranking.append(time.perf_counter() - scored)
        scoring.append(scored - start)
    totals = [a + b for a, b in zip(scoring, ranking)]
    return min(scoring), min(ranking), min(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with ncf/ml-1m.*")
    parser.add_argument("--models", nargs="+",
                        default=["MF:64", "MF:192", "GMF:16", "MLP:16", "NeuMF:16", "NeuMF:64"],
                        help="MF:d or GMF|MLP|NeuMF:k")
    parser.add_argument("--repeats", type=int, default=3, help="runs per model (best kept)")
    parser.add_argument("--out", default=str(OUT), help="folder of the .json and .md results")
    args = parser.parse_args()

    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    split = load_ncf("ml-1m", args.data_dir)
    rows = []
    for spec in args.models:
        with torch.no_grad():
            scoring, ranking, total = best_seconds(scorer(spec, split), split, args.repeats)
        rows.append({"model": spec, "scoring_s": scoring, "ranking_s": ranking,
                     "total_s": total})
        print(json.dumps(rows[-1]), flush=True)
    record = {"benchmark": "full_ranking", "started": started, **environment(),
              "threads": 1, "repeats": args.repeats, "users": split.n_users,
              "items": split.n_items, "rows": rows}
    out = Path(args.out)
    atomic_write_text(out / "full_ranking.json", json.dumps(record, indent=2) + "\n")
    lines = ["| model | scoring every item (s) | ranking (s) | full ranking, all users (s) |",
             "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['scoring_s']:.2f} | {r['ranking_s']:.2f} | "
              f"{r['total_s']:.2f} |" for r in rows]
    machine = record["machine"]
    lines += ["", f"ML-1M: {split.n_users:,} users x {split.n_items:,} items. Machine: "
              f"{machine['cpu']}, {machine['cores']} cores, {machine['memory']}; one thread; "
              f"best of {args.repeats}; commit {record['commit']}; started {started}."]
    atomic_write_text(out / "full_ranking.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
