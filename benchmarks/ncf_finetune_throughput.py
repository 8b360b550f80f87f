"""Pre-trained NeuMF's SGD fine-tuning: row-sparse updates (ours) vs torch's dense SGD.

Plain SGD leaves every embedding row outside a batch unchanged, so ``ncf_training.RowSparseSGD``
updates only the batch's rows (from sparse embedding gradients) instead of zero-filling and
sweeping the whole tables at every step. Both variants start from the same NeuMF and take the
same batches of ML-1M (or, without ``--data-dir``, random data of ML-1M's shape); the benchmark
checks that they end with bitwise the same weights and reports training examples per second of
the steps, the two variants taking turns so that a change in the machine's load hits both
alike. Writes benchmarks/results/ncf_finetune_throughput.{json,md} (or ``--out``). Usage:

    python benchmarks/ncf_finetune_throughput.py --data-dir ../shared/data --threads 1
    python benchmarks/ncf_finetune_throughput.py --max-batches 20 --warmup 2 --out /tmp/ft  # check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ncf_vs_mf.ncf_training import (
    NegativeSampler, RowSparseSGD, build_model, embedding_dim, resolve_device,
    sparse_embedding_gradients,
)
from ncf_vs_mf.results import atomic_write_text, environment
from ncf_throughput import train_step, training_pairs
from timing import add_timing_arguments, sync

OUT = Path(__file__).resolve().parent / "results"
VARIANTS = ("row_sparse", "dense")


def time_variants(k: int, n_users: int, n_items: int, sampler: NegativeSampler,
                  device: torch.device, warmup: int, batches: int, rounds: int,
                  batch_size: int = 256) -> tuple[dict[str, float], dict[str, dict]]:
    """Seconds for ``batches`` SGD steps (lr 0.001) of NeuMF at k per variant, and the weights.

    The variants take turns, ``batches / rounds`` steps at a time, so that a change in the
    machine's load during the benchmark hits both alike; each walks the same batches.
    """
    data = [torch.from_numpy(a).to(device) for a in sampler.epoch(np.random.default_rng(0), 4)]
    models = {v: build_model("NeuMF", n_users, n_items, k, seed=0).to(device) for v in VARIANTS}
    optimizers = {"row_sparse": RowSparseSGD(models["row_sparse"].parameters(), lr=0.001),
                  "dense": torch.optim.SGD(models["dense"].parameters(), lr=0.001)}
    seconds = dict.fromkeys(VARIANTS, 0.0)
    per_round = batches // rounds
    with sparse_embedding_gradients(models["row_sparse"], True):
        for start, count, timed in [(0, warmup, False)] + [
                (warmup + r * per_round, per_round, True) for r in range(rounds)]:
            for variant in VARIANTS:
                sync(device)
                t0 = time.perf_counter()
                for b in range(start, start + count):
                    sl = slice(b * batch_size, (b + 1) * batch_size)
                    train_step(models[variant], optimizers[variant], *(x[sl] for x in data))
                sync(device)
                if timed:
                    seconds[variant] += time.perf_counter() - t0
    return seconds, {v: m.state_dict() for v, m in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder with ncf/ml-1m.*; without it, random ML-1M-shaped data")
    parser.add_argument("--factors", nargs="+", type=int, default=[8, 16, 32, 64],
                        help="NeuMF predictive factors k (d = 3k)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="turns each variant takes (--max-batches split evenly)")
    add_timing_arguments(parser, max_batches=2000, out=OUT)
    args = parser.parse_args()
    if args.rounds < 1 or args.max_batches % args.rounds:
        parser.error(f"--max-batches ({args.max_batches}) must be a multiple of --rounds "
                     f"({args.rounds})")

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    users, items, n_users, n_items, data = training_pairs(args.data_dir)
    sampler = NegativeSampler(users, items, n_users, n_items)

    rows = []
    for k in args.factors:
        row = {"model": "NeuMF", "predictive_factor": k, "dim": embedding_dim("NeuMF", k)}
        seconds, weights = time_variants(k, n_users, n_items, sampler, device, args.warmup,
                                         args.max_batches, args.rounds)
        for variant in VARIANTS:
            row[f"{variant}_examples_per_s"] = args.max_batches * 256 / seconds[variant]
        row["speedup"] = row["row_sparse_examples_per_s"] / row["dense_examples_per_s"]
        row["bitwise_identical"] = all(torch.equal(weights["row_sparse"][name], tensor)
                                       for name, tensor in weights["dense"].items())
        rows.append(row)
        print(json.dumps(row), flush=True)

    record = {"benchmark": "ncf_finetune_throughput", "started": started, **environment(),
              "device": str(device), "threads": args.threads, "data": data,
              "batches_timed": args.max_batches, "warmup_batches": args.warmup,
              "rounds": args.rounds, "rows": rows}
    out = Path(args.out)
    atomic_write_text(out / "ncf_finetune_throughput.json", json.dumps(record, indent=2) + "\n")
    lines = ["| model | k | d | row-sparse SGD (k ex/s) | dense SGD (k ex/s) | speedup | "
             "same weights |", "|---" * 7 + "|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['predictive_factor']} | {r['dim']} | "
                     f"{r['row_sparse_examples_per_s'] / 1e3:.0f} | "
                     f"{r['dense_examples_per_s'] / 1e3:.0f} | {r['speedup']:.2f}x | "
                     f"{'bitwise' if r['bitwise_identical'] else 'NO'} |")
    machine = record["machine"]
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
              f"device {device}, {args.threads} torch thread(s); commit {record['commit']}; "
              f"started {started}. Data: {data}; {args.max_batches} batches of 256 timed per "
              f"variant after {args.warmup} warm-up batches, the same batches for both, the "
              f"variants taking turns in {args.rounds} rounds."]
    atomic_write_text(out / "ncf_finetune_throughput.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
