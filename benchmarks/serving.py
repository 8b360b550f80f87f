"""Serving cost of dot-product and MLP similarities (Rendle et al. 2020, Section 5), measured.

Four measurements, all single-threaded where a request's latency is timed (so the numbers are
per core; index builds and batched recall computations use --build-threads):

1. scoring: one user, and a batch of users, against n items with phi_dot (torch and numpy
   matrix products), phi_MLP and phi_NeuMF (the torch modules called on every pair, and with the
   first layer's item half precomputed), n = 10^3..10^6, d = 16..256; best of each; plus the
   top-10 selection over n scores and the MLP re-scoring of a few hundred candidates;
2. the real catalog: matrix factorization trained on ML-1M at d = 64 with the paper's settings
   (seed 0), its 3,706 item vectors indexed by exact search, faiss HNSW and IVF (with and
   without the one-coordinate reduction of inner-product to nearest-neighbour search) and
   ScaNN: recall@10 against per-query latency for each index setting, build time, memory;
3. synthetic catalogs of up to 10^6 items at d = 64, shaped like the trained ML-1M items
   (their measured spectrum decay and norm spread) and isotropic Gaussian: the same curves;
4. the MLP side: an MLP fitted to the catalog's dot products, its exact top-10 by brute force,
   and a two-stage pipeline (ScaNN retrieves C candidates, the MLP re-ranks) with its recall
   against the MLP's exact top-10 and its per-query latency.

Writes benchmarks/results/serving.json (every row, the summaries, machine, commit, libraries,
parameters, durations) and serving.md, atomically. Usage (about 15 minutes on 2 cores):

    python benchmarks/serving.py --data-dir ../shared/data
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS, before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ncf_vs_mf import serving  # noqa: E402
from ncf_vs_mf.data import load_ncf  # noqa: E402
from ncf_vs_mf.mf import MFConfig, train_mf  # noqa: E402
from ncf_vs_mf.models import (  # noqa: E402
    make_similarity, mlp_weight_count, ncf_hidden, paper_hidden)
from ncf_vs_mf.results import atomic_write_text, environment  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    """Progress on stderr-free stdout, flushed (the run takes minutes)."""
    print(time.strftime("%H:%M:%S"), message, flush=True)


# --------------------------------------------------------------------------------------
# 1. Scoring cost
# --------------------------------------------------------------------------------------

def neumf_mlp_dim(d: int) -> int:
    """NeuMF's MLP part for any d: NCF's 2k of d = 3k, rounded down (the GMF part takes the rest)."""
    return 2 * (d // 3)


def work_per_pair(family: str, variant: str, d: int) -> int:
    """Multiply-adds per (user, item) pair, to skip settings too slow to time.

    The MLP's layers (NeuMF: its MLP part plus the GMF's weighted product); the cached variant
    skips the first layer, whose two halves are computed once per user and once per item.
    """
    if family == "dot":
        return d
    mlp_dim, hidden = ((neumf_mlp_dim(d), ncf_hidden(d // 3)) if family == "neumf"
                       else (d, paper_hidden(d)))
    total = mlp_weight_count(mlp_dim, hidden) + hidden[-1] + (d - mlp_dim)
    return total - (2 * mlp_dim * hidden[0] if variant == "cached" else 0)


def scorers(d: int, items: np.ndarray) -> dict[tuple[str, str], Callable[[np.ndarray], object]]:
    """Every (family, variant) scoring function of users against the catalog at dimension d."""
    mlp = make_similarity("mlp", d)
    neumf = make_similarity("neumf", d, mlp_dim=neumf_mlp_dim(d))
    cached_mlp, cached_neumf = serving.CachedMLPScorer(mlp, items), serving.CachedMLPScorer(neumf, items)
    items_t = torch.from_numpy(items)
    return {
        ("dot", "torch"): lambda u: serving.dot_scores(u, items_t),
        ("dot", "numpy"): lambda u: u @ items.T,
        ("mlp", "module"): lambda u: serving.similarity_scores(mlp, u, items_t),
        ("mlp", "cached"): cached_mlp.scores,
        ("neumf", "module"): lambda u: serving.similarity_scores(neumf, u, items_t),
        ("neumf", "cached"): cached_neumf.scores,
    }


def scoring_rows(ns: Sequence[int], dims: Sequence[int], batches: Sequence[int], max_work: float,
                 max_batch_work: float, rerank: int) -> list[dict]:
    """Time every scorer at every (n, d, batch) whose work fits the limit (multiply-adds)."""
    rows = []
    rng = np.random.default_rng(0)
    for d in dims:
        users, items = serving.isotropic_catalog(max(ns), max(batches), d, seed=d)
        for n in ns:
            for (family, variant), score in scorers(d, items[:n]).items():
                for batch in batches:
                    if batch * n * work_per_pair(family, variant, d) > (
                            max_work if batch == 1 else max_batch_work):
                        continue
                    seconds = serving.best_time(lambda: score(users[:batch]), repeats=5, budget=1.0)
                    rows.append({"family": family, "variant": variant, "n": n, "d": d,
                                 "batch": batch, "seconds": seconds,
                                 "seconds_per_user": seconds / batch})
        scorer = serving.CachedMLPScorer(make_similarity("mlp", d), items[:max(ns)])
        ids = rng.integers(0, max(ns), size=(1, rerank))
        seconds = serving.best_time(lambda: scorer.scores(users[:1], items=ids), repeats=20)
        rows.append({"family": "mlp-rerank", "variant": "cached", "n": rerank, "d": d, "batch": 1,
                     "seconds": seconds, "seconds_per_user": seconds})
        log(f"scoring d = {d} done")
    for n in ns:
        scores = torch.from_numpy(rng.standard_normal((1, n)).astype(np.float32))
        seconds = serving.best_time(lambda: serving.top_k(scores, 10), repeats=20)
        rows.append({"family": "select", "variant": "torch.topk", "n": n, "d": 0, "batch": 1,
                     "seconds": seconds, "seconds_per_user": seconds})
    return rows


# --------------------------------------------------------------------------------------
# 2. and 3. Retrieval indexes on a catalog
# --------------------------------------------------------------------------------------

def index_options(kind: str, args: argparse.Namespace) -> dict:
    """Build options per index kind from the command line (faiss threads: set_threads)."""
    if kind == "scann":
        return {"threads": args.build_threads, "reorder": args.scann_reorder}
    if kind.startswith("hnsw"):
        return {"m": args.hnsw_m, "ef_construction": args.hnsw_ef_construction}
    if kind.startswith("ivf"):
        return {"nlist": args.ivf_nlist or None}
    return {}


def index_rows(catalog: str, users: np.ndarray, items: np.ndarray, recall_queries: int,
               kinds: Sequence[str], args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Recall/latency per index setting, and build time and memory per index, on one catalog."""
    n, build_threads = items.shape[0], args.build_threads
    serving.set_threads(build_threads)
    queries = users[:recall_queries]
    exact = serving.exact_top_k(queries, items)
    curves, builds = [], []
    for kind in kinds:
        serving.set_threads(build_threads)
        index, build_seconds = serving.build_index(kind, items, **index_options(kind, args))
        builds.append({"catalog": catalog, "n": n, "d": items.shape[1], "index": kind,
                       "build_seconds": build_seconds, "memory_bytes": index.memory_bytes(),
                       "vectors_bytes": items.astype(np.float32).nbytes})
        for setting in index.settings:
            serving.set_threads(build_threads)
            recall = serving.recall_at_k(index.search(queries, 10, setting), exact)
            serving.set_threads(1)
            if kind == "scann":
                index.searcher.set_num_threads(1)
            latencies = serving.per_query_latency(lambda q: index.search(q, 10, setting),
                                                  users[:args.latency_queries],
                                                  budget=args.latency_budget)
            curves.append({"catalog": catalog, "n": n, "d": items.shape[1], "index": kind,
                           "knob": index.knob, "setting": setting, "recall": recall,
                           "latency_ms": float(np.median(latencies)) * 1e3,
                           "latency_p90_ms": float(np.quantile(latencies, 0.9)) * 1e3,
                           "latency_queries": len(latencies)})
        log(f"{catalog} n = {n:,}: {kind} built in {build_seconds:.1f} s")
        del index
    return curves, builds


def missed_target(curves: Sequence[dict], target: float) -> set[str]:
    """Indexes none of whose settings reached the recall target: not built at larger n (their
    builds are the slowest part of the run, and a larger catalog is only harder)."""
    best: dict[str, float] = {}
    for row in curves:
        best[row["index"]] = max(best.get(row["index"], 0.0), row["recall"])
    return {index for index, recall in best.items() if recall < target}


def ml1m_vectors(data_dir: str | None, dim: int, epochs: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Retrieval vectors (users [1, p], items [q_bias, q]) of MF trained on ML-1M (seed 0)."""
    split = load_ncf("ml-1m", data_dir)
    start = time.perf_counter()
    model, history = train_mf(split, MFConfig(dim=dim, epochs=epochs, seed=0))
    users, items = serving.mf_retrieval_vectors(model.user, model.item)
    info = {"dim": dim, "epochs": epochs, "seed": 0, "hr10": history.rows[-1]["hr10"],
            "ndcg10": history.rows[-1]["ndcg10"], "train_seconds": time.perf_counter() - start,
            "n_users": split.n_users, "n_items": split.n_items}
    return users, items, info


def catalog_stats(name: str, users: np.ndarray, items: np.ndarray) -> dict:
    """Spectrum decay and norm spread of a catalog's items and users."""
    return {"catalog": name, "item_spectrum_decay": serving.spectrum_decay(items),
            "user_spectrum_decay": serving.spectrum_decay(users),
            "item_log_norm_spread": serving.log_norm_spread(items)}


# --------------------------------------------------------------------------------------
# 4. The MLP side: brute force and two stages
# --------------------------------------------------------------------------------------

def two_stage_rows(catalog: str, users: np.ndarray, items: np.ndarray,
                   args: argparse.Namespace) -> list[dict]:
    """Recall against exact MLP top-10 and per-query latency of brute force and two stages."""
    n, d = items.shape
    queries, budget = args.two_stage_queries, args.latency_budget
    serving.set_threads(args.build_threads)
    mlp = serving.fit_mlp_to_dot(users, items, paper_hidden(d), steps=args.mlp_steps, seed=0)
    scorer = serving.CachedMLPScorer(mlp, items)
    sample = users[-queries:]  # not the users the indexes' recall was measured on
    exact_mlp = serving.mlp_top_k(scorer, sample)
    exact_dot = serving.exact_top_k(sample, items)
    index, _ = serving.build_index("scann", items, **index_options("scann", args))
    serving.set_threads(1)
    index.searcher.set_num_threads(1)
    brute = serving.per_query_latency(lambda q: serving.mlp_top_k(scorer, q), sample,
                                      budget=budget, min_queries=2)
    rows = [{"catalog": catalog, "n": n, "d": d, "method": "exact MLP (brute force)",
             "candidates": n, "recall_vs_exact_mlp": 1.0,
             "latency_ms": float(np.median(brute)) * 1e3, "queries": queries},
            {"catalog": catalog, "n": n, "d": d, "method": "exact dot (no MLP)", "candidates": 10,
             "recall_vs_exact_mlp": serving.recall_at_k(exact_dot, exact_mlp),
             "latency_ms": np.nan, "queries": queries}]
    retrievers = {"exact dot": lambda q, c: serving.exact_top_k(q, items, c),
                  "scann": lambda q, c: index.search(q, c)}
    for name, retrieve in retrievers.items():
        for c in args.candidates:
            if c > n:
                continue
            found = serving.two_stage_top_k(sample, scorer, retrieve, c)
            latencies = serving.per_query_latency(
                lambda q: serving.two_stage_top_k(q, scorer, retrieve, c), sample, budget=budget)
            rows.append({"catalog": catalog, "n": n, "d": d,
                         "method": f"two-stage ({name} + MLP)", "candidates": c,
                         "recall_vs_exact_mlp": serving.recall_at_k(found, exact_mlp),
                         "latency_ms": float(np.median(latencies)) * 1e3, "queries": queries})
    log(f"two-stage on {catalog} n = {n:,} done")
    return rows


# --------------------------------------------------------------------------------------
# Summaries and output
# --------------------------------------------------------------------------------------

def summaries(record: dict, target: float, index_d: int, rerank: int) -> dict:
    """The numbers the chapter quotes and the tests check the shape of."""
    best = serving.best_scoring(record["scoring"])
    ratio = serving.cost_ratio(best)
    at_recall = serving.latency_vs_n(record["index_curves"], target)
    synthetic = at_recall[at_recall["catalog"] != "ml-1m"]
    trained_like = synthetic[synthetic["catalog"] == "trained-like"]
    return {
        "mlp_over_dot_ratio": {int(r.d): float(r.ratio) for r in ratio.itertuples()},
        "neumf_over_dot_ratio": {int(r.d): float(r.ratio) for r in
                                 serving.cost_ratio(best, "neumf").itertuples()},
        "scoring_fits": serving.scoring_fits(best),
        "recall_target": target,
        "latency_at_recall": at_recall.replace({np.nan: None}).to_dict("records"),
        "latency_vs_n_slopes": serving.latency_slopes(synthetic),
        "advice": serving.advice_table(best, trained_like, [1, 10, 100], index_d, rerank)
                         .to_dict("records"),
    }


def markdown(record: dict) -> str:
    """A short human-readable summary of the run."""
    machine = record["machine"]
    lines = [f"# Serving cost benchmark", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; commit "
             f"{record['commit']}; started {record['started']}; took "
             f"{record['duration_seconds'] / 60:.1f} min. Latencies: 1 thread.", "",
             "| d | MLP / dot time (one user, largest n) | NeuMF / dot |", "|---|---|---|"]
    for d, r in record["mlp_over_dot_ratio"].items():
        lines.append(f"| {d} | {r:.0f}x | {record['neumf_over_dot_ratio'].get(d, float('nan')):.0f}x |")
    lines += ["", "Fitted t = c n^a d^b (one user, n >= 10^4):", ""]
    for family, fit in record["scoring_fits"].items():
        lines.append(f"- {family}: a = {fit['n_exponent']:.2f}, b = {fit['d_exponent']:.2f}")
    lines += ["", f"Latency (ms, median) at recall@10 >= {record['recall_target']}:", "",
              "| catalog | index | n | latency ms | recall | setting |", "|---|---|---|---|---|---|"]
    for r in record["latency_at_recall"]:
        latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}"
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        lines.append(f"| {r['catalog']} | {r['index']} | {r['n']:,} | {latency} | {recall} | "
                     f"{r['setting']} |")
    lines += ["", "Latency ~ n^a at that recall:", ""]
    for catalog, slopes in record["latency_vs_n_slopes"].items():
        text = ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in slopes.items())
        lines.append(f"- {catalog}: {text}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--ns", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--max-work", type=float, default=7e11,
                        help="skip one-user scoring settings above this many multiply-adds")
    parser.add_argument("--max-batch-work", type=float, default=1e11,
                        help="the same limit for batches of users")
    parser.add_argument("--index-ns", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--index-dim", type=int, default=64)
    parser.add_argument("--indexes", nargs="+",
                        default=["exact", "hnsw", "hnsw-ip", "ivf", "ivf-ip", "scann"])
    parser.add_argument("--hnsw-m", type=int, default=16, help="HNSW links per node")
    parser.add_argument("--hnsw-ef-construction", type=int, default=40)
    parser.add_argument("--ivf-nlist", type=int, default=0, help="IVF cells (0: about sqrt(n))")
    parser.add_argument("--scann-reorder", type=int, default=300,
                        help="ScaNN candidates re-scored exactly")
    parser.add_argument("--recall-queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--latency-budget", type=float, default=2.0,
                        help="seconds of single-query timing per setting (at least 20 queries)")
    parser.add_argument("--mf-epochs", type=int, default=256)
    parser.add_argument("--two-stage-ns", type=int, nargs="+", default=[100_000])
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 20, 50, 100, 200, 500, 1000])
    parser.add_argument("--two-stage-queries", type=int, default=100)
    parser.add_argument("--mlp-steps", type=int, default=1000)
    parser.add_argument("--rerank", type=int, default=200)
    parser.add_argument("--recall-target", type=float, default=0.9)
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    durations: dict[str, float] = {}

    serving.set_threads(1)
    scoring = scoring_rows(args.ns, args.dims, args.batches, args.max_work, args.max_batch_work,
                           args.rerank)
    durations["scoring"] = time.perf_counter() - t0

    t = time.perf_counter()
    ml_users, ml_items, ml_info = ml1m_vectors(args.data_dir, args.index_dim, args.mf_epochs)
    durations["ml1m_training"] = time.perf_counter() - t
    log(f"ML-1M MF trained: HR@10 {ml_info['hr10']:.4f}")
    stats = [catalog_stats("ml-1m", ml_users, ml_items)]
    decay, spread = stats[0]["item_spectrum_decay"], stats[0]["item_log_norm_spread"]
    curves, builds = index_rows("ml-1m", ml_users, ml_items, len(ml_users), args.indexes, args)
    skipped: list[dict] = []
    two_stage = two_stage_rows("ml-1m", ml_users, ml_items, args)
    durations["ml1m_indexes_and_two_stage"] = time.perf_counter() - t - durations["ml1m_training"]

    t = time.perf_counter()
    n_users = args.recall_queries + args.two_stage_queries
    for kind in serving.CATALOG_KINDS:
        users, items = serving.make_catalog(kind, max(args.index_ns), n_users, args.index_dim,
                                            seed=0, decay=decay, norm_spread=spread)
        stats.append(catalog_stats(kind, users, items[:100_000]))
        kinds = list(args.indexes)
        for n in sorted(args.index_ns):
            more_curves, more_builds = index_rows(kind, users, items[:n], args.recall_queries,
                                                  kinds, args)
            curves += more_curves
            builds += more_builds
            failed = missed_target(more_curves, args.recall_target)
            skipped += [{"catalog": kind, "after_n": n, "index": k} for k in failed]
            kinds = [k for k in kinds if k not in failed]
        if kind == "trained-like":
            for n in args.two_stage_ns:
                two_stage += two_stage_rows(kind, users, items[:n], args)
    durations["synthetic_indexes_and_two_stage"] = time.perf_counter() - t

    record = {"benchmark": "serving", "started": started, **environment(),
              "scann": metadata.version("scann"),
              "parameters": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
              "ml1m_model": ml_info, "catalog_stats": stats, "skipped_indexes": skipped,
              "scoring": scoring, "index_curves": curves, "index_builds": builds,
              "two_stage": two_stage}
    record.update(summaries(record, args.recall_target, args.index_dim, args.rerank))
    record["durations_seconds"] = durations
    record["duration_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    atomic_write_text(out / "serving.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(out / "serving.md", markdown(record))
    log(f"wrote {out / 'serving.json'} in {record['duration_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
