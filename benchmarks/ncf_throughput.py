"""Training throughput of NCF's models: our vectorized loop vs a plain Dataset/DataLoader loop.

Same model, same optimizer, batch 256, on ML-1M (or, without ``--data-dir``, random data of
ML-1M's shape: 6,040 users, 3,706 items, 994,169 positives). Two configurations by default:
MLP-3 with k = 32 (d = 64 per side) and NeuMF with k = 32 (d = 96: the same MLP plus a 32-wide
GMF; no NeuMF has d = 64, as d = 3k). Variants, each timed over ``--max-batches`` batches after
``--warmup`` batches:

* ``ours``: ``ncf_training``'s loop -- one vectorized negative-sampling call and one permutation
  per epoch, batches sliced from tensors, fused Adam;
* ``ours_default_adam``: the same loop with torch's default (unfused) Adam, to separate the
  optimizer kernel from the data pipeline;
* ``dataloader``: a map-style ``torch.utils.data.Dataset`` over the epoch's examples,
  ``DataLoader(batch_size=256, shuffle=True)`` with default collation, fused Adam; its epoch's
  negatives drawn per example in Python as NCF's ``get_train_instances`` does (timed on
  ``--sampling-examples`` positives and scaled to the epoch).

Reported: examples per second of the steps alone and of a whole epoch including building the
examples (4 negatives per positive: 4,970,845 examples per ML-1M epoch), and the implied epoch
time. Writes benchmarks/results/ncf_throughput.{json,md} (or ``--out``). Usage:

    python benchmarks/ncf_throughput.py --data-dir ../shared/data --threads 1
    python benchmarks/ncf_throughput.py --max-batches 20 --warmup 2 --out /tmp/ncf-bench  # check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ncf_vs_mf.data import load_ncf
from ncf_vs_mf.ncf_training import (
    NegativeSampler, make_optimizer, build_model, embedding_dim, resolve_device,
)
from ncf_vs_mf.results import atomic_write_text, environment
from timing import add_timing_arguments, sync

OUT = Path(__file__).resolve().parent / "results"
ML1M_SHAPE = {"n_users": 6040, "n_items": 3706, "n_train": 994_169}


def ml1m_shaped(seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Random distinct (user, item) positives with ML-1M's counts (every user has some)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n = ML1M_SHAPE["n_users"], ML1M_SHAPE["n_items"], ML1M_SHAPE["n_train"]
    base = np.arange(n_users) * n_items + rng.integers(0, n_items, n_users)  # one per user
    pool = np.setdiff1d(np.unique(rng.integers(0, n_users * n_items, size=int(n * 1.2))), base)
    keys = np.sort(np.concatenate([base, rng.choice(pool, size=n - n_users, replace=False)]))
    return keys // n_items, keys % n_items, n_users, n_items


def training_pairs(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, int, int, str]:
    """(users, items, n_users, n_items, description): ML-1M's NCF training file from
    ``data_dir``, or without it random pairs of ML-1M's shape."""
    if data_dir:
        split = load_ncf("ml-1m", data_dir)
        return (split.train_users.astype(np.int64), split.train_items.astype(np.int64),
                split.n_users, split.n_items, "ml-1m (NCF training file)")
    users, items, n_users, n_items = ml1m_shaped()
    return (users, items, n_users, n_items,
            "random pairs of ML-1M's shape (6,040 users, 3,706 items, 994,169 positives)")


def python_negatives(users: np.ndarray, items: np.ndarray, n_items: int, m: int,
                     rng: np.random.Generator) -> tuple[list, list, list]:
    """NCF's ``get_train_instances``: a Python loop with a set lookup per draw."""
    positives = set(zip(users.tolist(), items.tolist()))
    user_input, item_input, labels = [], [], []
    for u, i in zip(users.tolist(), items.tolist()):
        user_input.append(u)
        item_input.append(i)
        labels.append(1.0)
        for _ in range(m):
            j = int(rng.integers(n_items))
            while (u, j) in positives:
                j = int(rng.integers(n_items))
            user_input.append(u)
            item_input.append(j)
            labels.append(0.0)
    return user_input, item_input, labels


class EpochDataset(Dataset):
    """One training example per index, as a plain map-style dataset would hand them out."""

    def __init__(self, users, items, labels):
        self.users, self.items, self.labels = users, items, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.users[index], self.items[index], self.labels[index]


def train_step(model, optimizer, users, items, labels) -> None:
    loss = F.binary_cross_entropy_with_logits(model(users, items), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def time_ours(model, optimizer, sampler, device, warmup: int, batches: int,
              batch_size: int = 256) -> tuple[float, float]:
    """(seconds to build an epoch's tensors, seconds for ``batches`` steps)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    users, items, labels = sampler.epoch(rng, 4)
    users_t, items_t = torch.from_numpy(users).to(device), torch.from_numpy(items).to(device)
    labels_t = torch.from_numpy(labels).to(device)
    build = time.perf_counter() - start
    for b in range(warmup):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        train_step(model, optimizer, users_t[sl], items_t[sl], labels_t[sl])
    sync(device)
    start = time.perf_counter()
    for b in range(warmup, warmup + batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        train_step(model, optimizer, users_t[sl], items_t[sl], labels_t[sl])
    sync(device)
    return build, time.perf_counter() - start


def time_dataloader(model, optimizer, users, items, labels, device, warmup: int, batches: int,
                    batch_size: int = 256) -> float:
    """Seconds for ``batches`` steps fed by a DataLoader (after ``warmup`` steps)."""
    loader = DataLoader(EpochDataset(users, items, labels), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    for _ in range(warmup):
        u, i, y = next(it)
        train_step(model, optimizer, u.to(device), i.to(device), y.float().to(device))
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        u, i, y = next(it)
        train_step(model, optimizer, u.to(device), i.to(device), y.float().to(device))
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder with ncf/ml-1m.*; without it, random ML-1M-shaped data")
    parser.add_argument("--configs", nargs="+", default=["MLP:32", "NeuMF:32"],
                        help="MODEL:k pairs (MODEL in GMF, MLP, NeuMF)")
    parser.add_argument("--sampling-examples", type=int, default=100_000,
                        help="positives whose negatives the Python sampler draws (scaled up)")
    add_timing_arguments(parser, max_batches=2000, out=OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    users, items, n_users, n_items, data = training_pairs(args.data_dir)
    sampler = NegativeSampler(users, items, n_users, n_items)
    n_epoch = 5 * users.shape[0]

    # NCF's per-example Python negative sampling, on a subsample, scaled to the epoch
    rng = np.random.default_rng(0)
    sub = rng.choice(users.shape[0], size=min(args.sampling_examples, users.shape[0]),
                     replace=False)
    start = time.perf_counter()
    py_users, py_items, py_labels = python_negatives(users[sub], items[sub], n_items, 4, rng)
    python_build = (time.perf_counter() - start) * users.shape[0] / sub.shape[0]
    # the DataLoader iterates over a full-size epoch (its negatives from the vectorized sampler;
    # only their construction time above is the Python loop's)
    dl_users, dl_items, dl_labels = sampler.epoch(np.random.default_rng(1), 4)
    dl_labels = dl_labels.astype(np.float32)

    rows = []
    for spec in args.configs:
        name, k = spec.split(":")
        k = int(k)
        row = {"model": name, "predictive_factor": k, "dim": embedding_dim(name, k)}
        for variant, optimizer_kind in (("ours", "adam"), ("ours_default_adam", "adam-unfused"),
                                        ("dataloader", "adam")):
            model = build_model(name, n_users, n_items, k, seed=0).to(device)
            if optimizer_kind == "adam-unfused":
                optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
            else:
                optimizer = make_optimizer("adam", model.parameters(), 0.001)
            if variant == "dataloader":
                steps = time_dataloader(model, optimizer, dl_users, dl_items, dl_labels, device,
                                        args.warmup, args.max_batches)
                build = python_build
            else:
                build, steps = time_ours(model, optimizer, sampler, device, args.warmup,
                                         args.max_batches)
            step_rate = args.max_batches * 256 / steps
            epoch_seconds = build + n_epoch / step_rate
            row[f"{variant}_steps_examples_per_s"] = step_rate
            row[f"{variant}_epoch_build_s"] = build
            row[f"{variant}_epoch_examples_per_s"] = n_epoch / epoch_seconds
            row[f"{variant}_epoch_s"] = epoch_seconds
        row["speedup_epoch_vs_dataloader"] = (row["ours_epoch_examples_per_s"]
                                              / row["dataloader_epoch_examples_per_s"])
        row["speedup_steps_vs_dataloader"] = (row["ours_steps_examples_per_s"]
                                              / row["dataloader_steps_examples_per_s"])
        rows.append(row)
        print(json.dumps(row), flush=True)

    record = {"benchmark": "ncf_throughput", "started": started, **environment(),
              "device": str(device), "threads": args.threads, "data": data,
              "examples_per_epoch": n_epoch, "batches_timed": args.max_batches,
              "warmup_batches": args.warmup, "python_sampling_positives": int(sub.shape[0]),
              "rows": rows}
    out = Path(args.out)
    atomic_write_text(out / "ncf_throughput.json", json.dumps(record, indent=2) + "\n")
    lines = ["| model | k | d | ours (k ex/s, steps) | ours, epoch | unfused Adam, epoch | "
             "DataLoader (steps) | DataLoader + Python sampling, epoch | ours epoch (s) | "
             "DataLoader epoch (s) | speedup (epoch) |",
             "|---" * 11 + "|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['predictive_factor']} | {r['dim']} | "
            f"{r['ours_steps_examples_per_s'] / 1e3:.0f} | {r['ours_epoch_examples_per_s'] / 1e3:.0f} | "
            f"{r['ours_default_adam_epoch_examples_per_s'] / 1e3:.0f} | "
            f"{r['dataloader_steps_examples_per_s'] / 1e3:.0f} | "
            f"{r['dataloader_epoch_examples_per_s'] / 1e3:.0f} | {r['ours_epoch_s']:.0f} | "
            f"{r['dataloader_epoch_s']:.0f} | {r['speedup_epoch_vs_dataloader']:.1f}x |")
    machine = record["machine"]
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
              f"device {device}, {args.threads} torch thread(s); commit {record['commit']}; "
              f"started {started}. Data: {data}; {n_epoch:,} examples per epoch; "
              f"{args.max_batches} batches of 256 timed per variant after {args.warmup} warm-up "
              "batches."]
    atomic_write_text(out / "ncf_throughput.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
