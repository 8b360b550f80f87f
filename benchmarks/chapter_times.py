"""How long each chapter takes to run, with its defaults and with the lab's parameter changes.

Runs every chapter of ``_toc.yml`` (and the variants of the teaching page's lab plan) with
papermill through ``ncf_vs_mf.chapters.run_chapter`` into a temporary folder, one after the
other, and writes the wall-clock seconds of each to ``benchmarks/results/chapter_times.json``
(with the commit, the machine and the start time). The teaching page quotes these times.

    python benchmarks/chapter_times.py [--out benchmarks/results/chapter_times.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from ncf_vs_mf.chapters import book_chapters, run_chapter
from ncf_vs_mf.results import atomic_write_text, environment

# The lab plan's parameter changes (teaching page): chapter -> overrides, as on the command line.
LAB_VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("definitions", {"d": "32"}),
    ("ncf_experiments", {"live_dim": "32", "live_epochs": "60"}),
    ("gmf_regularization", {"live_regs": "0,0.001,0.01"}),
    ("mlp_dot_product", {"demo_users": "4000"}),
    ("serving", {"demo_n": "100000"}),
]


def time_chapter(name: str, overrides: dict[str, str], folder: Path) -> float:
    """Seconds to execute one chapter with papermill (kernel start included)."""
    chapter = next(c for c in book_chapters() if c.name == name)
    start = time.perf_counter()
    run_chapter(chapter, overrides, folder)
    return round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "chapter_times.json"))
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        # the teaching page reads this file, so it is not timed itself
        plan = [(c.name, {}) for c in book_chapters() if c.name != "teaching"] + LAB_VARIANTS
        for name, overrides in plan:
            seconds = time_chapter(name, overrides, Path(tmp))
            runs.append({"chapter": name, "parameters": overrides, "seconds": seconds})
            print(f"{name} {overrides or 'defaults'}: {seconds:.0f} s", file=sys.stderr)
    record = {"benchmark": "chapter_times", "started": started, **environment(),
              "runs": runs}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
