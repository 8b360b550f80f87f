"""Training throughput of the Section 4 MLP: our loop vs a plain Dataset/DataLoader loop.

The same model (``dot_learning.build_mlp``: hidden [4h, 2h, h] on [p, q]), the same optimizer
(fused Adam where available, lr 0.001) and MSE loss, batches of 256, on the synthetic data of
``dot_learning.generate`` (default d = 64, h = d, M = 16,000: 1,440,000 training pairs).
Variants, each timed over ``--max-batches`` batches after ``--warmup`` batches:

* ``ours``: ``dot_learning.train_epoch`` -- one ``randperm`` per epoch, batches sliced from
  the shuffled int32 index tensors, embedding rows gathered per batch (the epoch's shuffle is
  charged to the timed batches alone, which slightly understates ours);
* ``dataloader``: a map-style ``torch.utils.data.Dataset`` whose ``__getitem__`` returns one
  pair's (p, q, y), fed by ``DataLoader(batch_size=256, shuffle=True)`` with default collation.

Reported: training examples per second of each and the speedup, and the implied time of one
epoch and of a 32-epoch cell. Writes benchmarks/results/mlp_dot_throughput.{json,md} (or
``--out``). Usage:

    python benchmarks/mlp_dot_throughput.py --threads 1
    python benchmarks/mlp_dot_throughput.py --max-batches 20 --warmup 2 --out /tmp/bench  # check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ncf_vs_mf.dot_learning import (
    Pairs, TensorPairs, build_mlp, generate, hidden_width, train_epoch,
)
from ncf_vs_mf.ncf_training import make_optimizer, resolve_device
from ncf_vs_mf.results import atomic_write_text, environment
from timing import add_timing_arguments, sync

OUT = Path(__file__).resolve().parent / "results"


class PairDataset(Dataset):
    """One training pair per index, its embeddings looked up as a plain Dataset would."""

    def __init__(self, pairs: Pairs):
        self.p, self.q = torch.from_numpy(pairs.p), torch.from_numpy(pairs.q)
        self.users, self.items = pairs.users, pairs.items
        self.labels = torch.from_numpy(pairs.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.p[self.users[index]], self.q[self.items[index]], self.labels[index]


def time_ours(pairs: Pairs, dim: int, h: int, device: torch.device, warmup: int,
              batches: int, batch_size: int) -> float:
    """Seconds for ``batches`` steps of the library's loop (after ``warmup`` steps)."""
    model = build_mlp(dim, h, seed=0).to(device)
    optimizer = make_optimizer("adam", model.parameters(), 0.001)
    data = TensorPairs.of(pairs, device)
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, optimizer, data, generator, batch_size, max_batches=warmup)
    sync(device)
    start = time.perf_counter()
    train_epoch(model, optimizer, data, generator, batch_size, max_batches=batches)
    sync(device)
    return time.perf_counter() - start


def time_dataloader(pairs: Pairs, dim: int, h: int, device: torch.device, warmup: int,
                    batches: int, batch_size: int) -> float:
    """Seconds for ``batches`` steps fed by a shuffling DataLoader (after ``warmup`` steps)."""
    model = build_mlp(dim, h, seed=0).to(device)
    optimizer = make_optimizer("adam", model.parameters(), 0.001)
    loader = DataLoader(PairDataset(pairs), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    batches_seen = iter(loader)
    start = None
    for step in range(warmup + batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        p, q, y = (t.to(device) for t in next(batches_seen))
        loss = F.mse_loss(model(p, q), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def markdown(record: dict) -> str:
    """The benchmark record as a one-row markdown table and the conditions it was taken in."""
    row, machine = record["row"], record["machine"]
    table = {"d": row["dim"], "h": row["h"], "M": f"{row['users']:,}",
             "training pairs": f"{row['train_pairs']:,}",
             "ours (k ex/s)": f"{row['ours_examples_per_s'] / 1e3:.0f}",
             "DataLoader (k ex/s)": f"{row['dataloader_examples_per_s'] / 1e3:.0f}",
             "speedup": f"{row['speedup']:.1f}x",
             "ours, epoch (s)": f"{row['ours_epoch_s']:.0f}",
             "DataLoader, epoch (s)": f"{row['dataloader_epoch_s']:.0f}",
             "ours, 32 epochs (s)": f"{row['ours_cell_32_epochs_s']:.0f}"}
    conditions = [
        f"{machine['cpu']} ({machine['cores']} cores, {machine['memory']}), "
        f"{record['device']}, {record['threads']} torch thread(s)",
        f"commit {record['commit']}, started {record['started']}",
        f"timed: {record['batches_timed']} batches of {record['batch_size']} per variant, "
        f"after {record['warmup_batches']} warm-up batches; the epoch and 32-epoch times are "
        "extrapolated from the rates and leave out evaluation"]
    lines = ["| " + " | ".join(table) + " |", "|---" * len(table) + "|",
             "| " + " | ".join(str(v) for v in table.values()) + " |", ""]
    return "\n".join(lines + [f"- {c}" for c in conditions]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension d")
    parser.add_argument("--width", type=float, default=1.0, help="h as a multiple of d")
    parser.add_argument("--users", type=int, default=16_000, help="users M (= items N)")
    parser.add_argument("--batch-size", type=int, default=256)
    add_timing_arguments(parser, max_batches=3000, out=OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    h = hidden_width(args.dim, args.width)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    train = generate(args.dim, args.users, seed=0, fresh_pairs=1).train
    needed = (args.warmup + args.max_batches) * args.batch_size
    if needed > len(train):
        parser.error(f"--warmup + --max-batches = {args.warmup + args.max_batches} batches "
                     f"need {needed:,} training pairs; M = {args.users} gives {len(train):,} "
                     f"(raise --users)")
    row = {"dim": args.dim, "h": h, "users": args.users, "train_pairs": len(train)}
    for variant, timer in (("ours", time_ours), ("dataloader", time_dataloader)):
        seconds = timer(train, args.dim, h, device, args.warmup, args.max_batches,
                        args.batch_size)
        rate = args.max_batches * args.batch_size / seconds
        row[f"{variant}_examples_per_s"] = rate
        row[f"{variant}_epoch_s"] = len(train) / rate
        row[f"{variant}_cell_32_epochs_s"] = 32 * len(train) / rate
    row["speedup"] = row["ours_examples_per_s"] / row["dataloader_examples_per_s"]
    print(json.dumps(row), flush=True)

    record = {"benchmark": "mlp_dot_throughput", "started": started, **environment(),
              "device": str(device), "threads": args.threads, "batch_size": args.batch_size,
              "batches_timed": args.max_batches, "warmup_batches": args.warmup, "row": row}
    out = Path(args.out)
    atomic_write_text(out / "mlp_dot_throughput.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "mlp_dot_throughput.md", markdown(record))

if __name__ == "__main__":
    main()
