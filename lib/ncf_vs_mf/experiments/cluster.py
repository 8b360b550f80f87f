"""Where cells run: in this process, on a Dask ``LocalCluster``, or on any Dask scheduler.

``open_executor`` gives an object whose ``run(tasks)`` yields ``(task, outcome)`` as tasks
finish, the outcome being the task's return value or the exception it raised. A task may name
tasks it needs: it runs after them and receives their results (with Dask: their futures, so a
dependent starts on any worker as soon as its inputs exist, and data moves through Dask, not a
shared filesystem). Only the driver writes files: workers return their results.

A ``LocalCluster`` has ``jobs`` worker processes of ``threads`` threads, each offering the
resource ``CPU=threads``, and every task asks for ``CPU=threads``: one cell at a time per
worker, using all its threads. Its workers are this process's children and exit when it dies,
even by SIGKILL (Dask's parent pipe). On another scheduler (``tcp://HOST:PORT``) each worker
runs as many cells at once as it has threads; cells that train on CUDA ask for ``GPU=1``, so
start GPU workers with ``dask worker tcp://HOST:PORT --resources GPU=1``.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
INPROCESS = "inprocess"
LOCAL = "local"


class DependencyFailed(RuntimeError):
    """A task could not run because a task it needs failed."""


@dataclass
class Task:
    """One unit of work: ``function(*args, *results of needs)``."""

    id: str
    function: Callable[..., Any]
    args: tuple
    needs: tuple[str, ...] = ()
    resources: dict[str, float] = field(default_factory=dict)
    payload: Any = None  # what the driver wants back with the outcome (e.g. the cell)


class InProcess:
    """Runs tasks one after another in this process (notebooks, tests, debugging)."""

    description = "this process (in-process)"

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        results: dict[str, Any] = {}
        for task in tasks:
            failed = [n for n in task.needs if isinstance(results.get(n), BaseException)]
            if failed:
                outcome: Any = DependencyFailed(f"needs {', '.join(failed)}, which failed")
            else:
                try:
                    outcome = task.function(*task.args, *(results[n] for n in task.needs))
                except Exception as error:  # reported with the cell's settings by the driver
                    outcome = error
            results[task.id] = outcome
            yield task, outcome


class DaskExecutor:
    """Runs tasks on a Dask cluster through a ``distributed.Client``."""

    def __init__(self, client: Any, description: str, resources: dict[str, float] | None):
        self.client = client
        self.description = description
        self.default_resources = resources or {}

    def offered(self) -> dict[str, float]:
        """The most of each resource any one worker offers."""
        offered: dict[str, float] = {}
        for worker in self.client.scheduler_info(n_workers=-1)["workers"].values():
            for name, amount in (worker.get("resources") or {}).items():
                offered[name] = max(offered.get(name, 0), amount)
        return offered

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        from distributed import as_completed

        futures: dict[str, Any] = {}
        by_future: dict[Any, Task] = {}
        for task in tasks:
            resources = {**self.default_resources, **task.resources}
            future = self.client.submit(task.function, *task.args,
                                        *(futures[n] for n in task.needs), key=task.id,
                                        resources=resources or None, pure=False, retries=0)
            futures[task.id] = future
            by_future[future] = task
        for future in as_completed(list(futures.values()), loop=self.client.loop):
            task = by_future[future]
            if future.status == "error":
                error = future.exception()
                failed = [n for n in task.needs if futures[n].status == "error"]
                yield task, (DependencyFailed(f"needs {', '.join(failed)}, which failed")
                             if failed else error)
            else:
                yield task, future.result()
            future.release()


@contextmanager
def open_executor(scheduler: str | None, jobs: int, threads: int) -> Iterator[Any]:
    """An executor for ``scheduler``: "inprocess", "local" (default) or a Dask address.

    Without ``scheduler``, ``$DASK_SCHEDULER_ADDRESS`` is used when set, else a LocalCluster.
    """
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or LOCAL
    if scheduler == INPROCESS:
        yield InProcess()
        return
    from distributed import Client, LocalCluster

    if scheduler == LOCAL:
        resources = {"CPU": threads, **_local_gpus()}
        with LocalCluster(n_workers=jobs, threads_per_worker=threads, processes=True,
                          resources=resources, dashboard_address=None, memory_limit=0,
                          silence_logs=logging.CRITICAL, host="127.0.0.1") as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield DaskExecutor(client, f"a local Dask cluster of {jobs} worker process"
                               f"{'es' if jobs != 1 else ''} x {threads} thread"
                               f"{'s' if threads != 1 else ''}", {"CPU": threads})
        return
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConnectionError(f"--scheduler {scheduler}: cannot connect ({error})") from None
    with client:
        yield DaskExecutor(client, f"the Dask scheduler at {scheduler}", None)


def _local_gpus() -> dict[str, float]:
    """``{"GPU": n}`` when this machine has CUDA devices (torch is asked only if imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return {"GPU": float(torch.cuda.device_count())}
    return {}


def show_progress() -> bool:
    """A progress bar on a terminal; none in notebooks, CI or when output is redirected."""
    if os.environ.get("CI") or "ipykernel" in sys.modules:
        return False
    return sys.stderr.isatty()
