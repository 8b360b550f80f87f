"""Serving cost (Rendle et al. 2020, Section 5): the grids of ``ncf-vs-mf reproduce serving``.

A thin call of the ``serving`` experiment (:mod:`ncf_vs_mf.experiments.serving`): scoring,
catalogue statistics, retrieval indexes and the MLP side, one cell at a time (``--jobs 1``:
timings need a quiet machine), into the run store and, with ``--publish``, into the committed
tables ``results/serving/``. Usage (about 15 minutes on 2 cores):

    python benchmarks/serving.py --data-dir ../shared/data --publish
"""

from __future__ import annotations

import argparse
import os

from ncf_vs_mf import experiments
from ncf_vs_mf.config import results_dir
from ncf_vs_mf.experiments import serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of index builds and recall (timings: one thread)")
    parser.add_argument("--publish", action="store_true",
                        help="also publish into results/serving (needs a committed tree)")
    args = parser.parse_args()
    out = results_dir() / serving.SERVING.folder if args.publish else None
    for grid in (serving.SCORING_GRID, serving.STATS_GRID, {}, serving.MLP_SIDE_GRID):
        experiments.reproduce("serving", **grid, jobs=1, threads=args.threads,
                              data_dir=args.data_dir, out=out)


if __name__ == "__main__":
    main()
