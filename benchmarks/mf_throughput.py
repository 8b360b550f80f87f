"""Throughput of the MF trainer, measured side by side in one run on ML-1M.

Compares, at d = 64 and d = 192, SGD updates per second of
  * our compiled kernel (deterministic, 1 thread; float64 and float32; Hogwild with 2 threads),
  * the same algorithm as a plain per-example Python/numpy loop (on a subsample of examples),
  * the `implicit` package's BPR at the same thread count (one BPR step touches three rows --
    user, positive and negative item -- where one of our steps touches two),
and times the ML-1M loader and the sampled evaluator. Writes a JSON record and a Markdown table
to benchmarks/results/. Usage:

    python benchmarks/mf_throughput.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ncf_vs_mf.data import load_ncf
from ncf_vs_mf.evaluation import SampledEvaluator
from ncf_vs_mf.mf import MFConfig, _State, train_mf
from ncf_vs_mf.mf_reference import epoch_examples, sgd_pass
from ncf_vs_mf.results import atomic_write_text, environment

OUT = Path(__file__).resolve().parent / "results"


def best_of(fn, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(split, dim: int, dtype: str, threads: int, epochs: int) -> float:
    """Updates per second of our kernel, timed over whole epochs after a compile run."""
    config = MFConfig(dim=dim, dtype=dtype, threads=threads, epochs=epochs)
    train_mf(split, MFConfig(dim=dim, dtype=dtype, threads=threads, epochs=1))  # compile
    _, history = train_mf(split, config)
    return history.updates / history.seconds


def python_loop(split, dim: int, n_examples: int) -> float:
    """Updates per second of the per-example numpy loop on the first examples of an epoch."""
    rng = np.random.default_rng(0)
    model = _State.initial(split.n_users, split.n_items, MFConfig(dim=dim)).model(dim)
    users, items, labels = epoch_examples(split.train_users, split.train_items, split.n_items, 8,
                                          rng)
    users, items, labels = users[:n_examples], items[:n_examples], labels[:n_examples]
    seconds = best_of(lambda: sgd_pass(model.user, model.item, 0.0, users, items, labels,
                                       0.002, 0.005), 2)
    return n_examples / seconds


def implicit_bpr(split, dim: int, threads: int) -> float:
    """BPR samples (one (u, i, j) step each) per second: the per-iteration cost is the slope."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    matrix = sp.csr_matrix((np.ones(split.n_train, np.float32),
                            (split.train_users, split.train_items)),
                           shape=(split.n_users, split.n_items))

    def fit(iterations: int) -> None:
        BayesianPersonalizedRanking(factors=dim - 1, iterations=iterations, num_threads=threads,
                                    random_state=0).fit(matrix, show_progress=False)

    slope = (best_of(lambda: fit(6), 2) - best_of(lambda: fit(1), 2)) / 5
    return split.n_train / slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 192])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--python-examples", type=int, default=30_000)
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_seconds = best_of(lambda: load_ncf("ml-1m", args.data_dir), 3)
    split = load_ncf("ml-1m", args.data_dir)
    evaluator = SampledEvaluator(split)
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(split.n_users, 192)), rng.normal(size=(split.n_items, 192))
    evaluator.evaluate_embeddings(P, Q)
    eval_seconds = best_of(lambda: evaluator.evaluate_embeddings(P, Q), 10)

    rows = []
    for dim in args.dims:
        row = {"dim": dim,
               "ours_float64_1thread": ours(split, dim, "float64", 1, args.epochs),
               "ours_float32_1thread": ours(split, dim, "float32", 1, args.epochs),
               "ours_float32_hogwild_2threads": ours(split, dim, "float32", 2, args.epochs),
               "python_numpy_loop": python_loop(split, dim, args.python_examples),
               "implicit_bpr_1thread": implicit_bpr(split, dim, 1),
               "implicit_bpr_2threads": implicit_bpr(split, dim, 2)}
        row["speedup_vs_python_float64"] = row["ours_float64_1thread"] / row["python_numpy_loop"]
        row["speedup_vs_implicit_float64"] = row["ours_float64_1thread"] / row["implicit_bpr_1thread"]
        row["speedup_vs_implicit_float32"] = row["ours_float32_1thread"] / row["implicit_bpr_1thread"]
        row["speedup_vs_implicit_hogwild"] = (row["ours_float32_hogwild_2threads"]
                                              / row["implicit_bpr_2threads"])
        rows.append(row)
        print(json.dumps(row), flush=True)

    record = {"benchmark": "mf_throughput", "started": started, **environment(),
              "data": "ml-1m (NCF split; 994,169 positives, m = 8: 8,947,521 updates per epoch)",
              "epochs_timed": args.epochs, "ml1m_load_seconds": load_seconds,
              "evaluate_6040x100_d192_float64_seconds": eval_seconds, "rows": rows}
    OUT.mkdir(exist_ok=True)
    atomic_write_text(OUT / "mf_throughput.json", json.dumps(record, indent=2) + "\n")
    lines = ["| d | ours f64 (M upd/s) | ours f32 | ours f32 Hogwild 2 thr | Python loop | "
             "implicit BPR 1 thr (M steps/s) | implicit BPR 2 thr | ours f64 / Python | "
             "ours f64 / BPR | ours f32 / BPR | Hogwild / BPR 2 thr |",
             "|---" * 11 + "|"]
    for r in rows:
        lines.append(
            f"| {r['dim']} | {r['ours_float64_1thread'] / 1e6:.2f} | "
            f"{r['ours_float32_1thread'] / 1e6:.2f} | {r['ours_float32_hogwild_2threads'] / 1e6:.2f} | "
            f"{r['python_numpy_loop'] / 1e6:.3f} | {r['implicit_bpr_1thread'] / 1e6:.2f} | "
            f"{r['implicit_bpr_2threads'] / 1e6:.2f} | {r['speedup_vs_python_float64']:.0f}x | "
            f"{r['speedup_vs_implicit_float64']:.1f}x | {r['speedup_vs_implicit_float32']:.1f}x | "
            f"{r['speedup_vs_implicit_hogwild']:.1f}x |")
    machine = record["machine"]
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
              f"commit {record['commit']}; started {started}.",
              f"ML-1M load: {load_seconds:.2f} s; sampled evaluation (6,040 users x 100 items, "
              f"d = 192, float64): {eval_seconds * 1000:.0f} ms."]
    atomic_write_text(OUT / "mf_throughput.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
