"""Process pools for the reproduce grids: spawned workers that stop when the grid's process does.

Workers are spawned, not forked: forking a process whose numba OpenMP or torch thread pools
have run can abort or hang the child (and spawning needs an importable ``__main__``: a script or
a notebook, not stdin). A worker watches its parent and exits when it is gone, so stopping a
grid with ``kill`` (not only Ctrl-C, which reaches the whole process group) leaves no orphan
training on and appending rows that a rerun would train again.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool"]

PARENT_CHECK_SECONDS = 2.0


def _exit_with_parent(parent: int, interval: float) -> None:
    """Worker initializer: a daemon thread ends the process once ``parent`` is no longer its
    parent (the parent died and the worker was re-parented)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)  # no cleanup: results are written atomically, a half-done model is dropped

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` spawned worker processes that exit when this process dies."""
    return ProcessPoolExecutor(max_workers=max(1, jobs),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent,
                               initargs=(os.getpid(), PARENT_CHECK_SECONDS))
