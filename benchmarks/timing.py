"""Command-line options and clock helpers shared by the PyTorch training-throughput benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_timing_arguments(parser: argparse.ArgumentParser, max_batches: int, out: Path) -> None:
    """--max-batches, --warmup, --threads, --device and --out, with this benchmark's defaults."""
    parser.add_argument("--max-batches", type=int, default=max_batches,
                        help="timed batches per variant")
    parser.add_argument("--warmup", type=int, default=50, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--out", default=str(out), help="folder of the .json and .md results")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize()
