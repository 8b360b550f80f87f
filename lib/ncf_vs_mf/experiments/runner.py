"""Running a grid: checks first, then pending cells on an executor, each stored as it finishes.

Order of :func:`run_grid`: validate every cell, check that the run store (and the publishing
folder) are writable and that the tables already there read cleanly, refuse to publish into
committed results from changed sources without ``allow_dirty``, load the data (provenance),
then train what is neither stored nor published. A failing cell is reported with its settings
and the others go on; :class:`~ncf_vs_mf.experiments.engine.GridFailed` is raised at the end.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import runs_dir
from ..provenance import Invocation, now
from ..results import format_value
from .cluster import (INPROCESS, LOCAL, SCHEDULER_ENV, DaskExecutor, Task, open_executor,
                      show_progress)
from .datasets import data_folder
from .engine import (Context, Experiment, GridFailed, Requirement, RunResult, describe,
                     settings_of)
from .store import RunStore, StoredRun, digest, is_committed, publish, tables


class GridError(ValueError):
    """The grid cannot start (an unwritable folder, a dirty tree, a missing resource)."""


@dataclass
class GridReport:
    """What a grid run did."""

    cells: list[Any]
    trained: int = 0
    reused: int = 0
    collapsed: int = 0
    published: int = 0
    failures: list[tuple[Any, BaseException]] = field(default_factory=list)
    runs: list[StoredRun] = field(default_factory=list)


def execute_cell(experiment: Experiment, cell: Any, data_dir: str | None,
                 names: tuple[str, ...], *inputs: RunResult) -> RunResult:
    """Worker side: run one cell (its requirements' results come in ``inputs``)."""
    return experiment.run(cell, Context(data_dir, dict(zip(names, inputs))))


def _writable(folder: Path, option: str) -> None:
    """Check that ``folder`` can be written, creating nothing: a failed start leaves no trace."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".probe."):
            pass
    except OSError as error:
        raise GridError(f"{option} {folder}: not writable ({error.strerror or error})") from None


def _print(message: str, bar: Any = None) -> None:
    if bar is not None:
        bar.write(message)
    else:
        print(message, flush=True)


def run_grid(experiment: Experiment, cells: list[Any], *, runs: str | Path,
             out: str | Path | None = None, scheduler: str | None = None, jobs: int = 1,
             threads: int = 1, data_dir: str | None = None, allow_dirty: bool = False,
             command: str | None = None, parameters: dict[str, Any] | None = None,
             registry: Callable[[str], Experiment] | None = None) -> GridReport:
    """Run every pending cell of ``cells`` and store it (and publish it into ``out``)."""
    experiment.validate(cells)
    store = RunStore(Path(runs))
    _writable(store.root, "--runs")
    out = Path(out) if out is not None else None
    if out is not None:
        _writable(out, "--out")
        for table in tables(experiment, out):
            if table is not None:
                table.check()  # a malformed table or provenance stops the grid here
    stored = [store.get(experiment.name, c) for c in cells]  # each record read is checked
    data = experiment.prepare(cells, data_dir)
    invocation = Invocation(command or f"run_grid({experiment.name})", parameters or {}, data)
    if out is not None and is_committed(out) and invocation.changed_sources and not allow_dirty:
        raise GridError(f"--out {out}: tracked source files differ from the commit "
                        f"({invocation.record(0)['commit']}); commit them, or pass "
                        "--allow-dirty to publish results of uncommitted code")
    report = GridReport(cells)
    published = tables(experiment, out)[0].done_text() if out is not None else set()

    def is_published(cell: Any) -> bool:
        return tuple(format_value(v) for v in experiment.key_of(cell).values()) in published

    if out is not None:  # stored runs not yet in the tables go there first
        waiting = [r for r, c in zip(stored, cells) if r is not None and not is_published(c)]
        result = publish(experiment, waiting, out)
        report.published += result.added
    todo = [c for c, r in zip(cells, stored) if r is None and not (out and is_published(c))]
    if experiment.cost is not None:
        todo.sort(key=experiment.cost)  # stable: grid order among equal costs
    report.reused = len(cells) - len(todo)
    print(f"{experiment.name}: {report.reused} of {len(cells)} cells already done; "
          f"{len(todo)} to run", flush=True)
    if not todo:
        return report
    tasks = _tasks(experiment, todo, store, data_dir, registry)
    bar = None
    with open_executor(scheduler, jobs, threads) as executor:
        _check_resources(executor, tasks)
        if show_progress():
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=experiment.name, unit="cell", file=sys.stderr)
        _print(f"{experiment.name}: running on {executor.description}", bar)
        wanted = set(todo)
        try:
            for task, outcome in executor.run(tasks):
                owner, cell = task.payload
                if isinstance(outcome, BaseException):
                    needed = "" if cell in wanted else " (a requirement)"
                    _print(f"FAILED {owner.name}{needed} {describe(cell)}: "
                           f"{type(outcome).__name__}: {outcome}", bar)
                    if cell in wanted:
                        report.failures.append((cell, outcome))
                        if bar is not None:
                            bar.update()
                    continue
                record = {**invocation.record(0), "finished": now()}
                if not store.save(owner.name, cell, outcome, record):
                    report.collapsed += 1
                    _print(f"{owner.name} {describe(cell)}: already stored by another run; "
                           "kept the first", bar)
                if cell not in wanted:
                    continue
                report.trained += 1
                stored_run = store.get(owner.name, cell)
                report.runs.append(stored_run)
                if out is not None:
                    report.published += publish(experiment, [stored_run], out).added
                if bar is not None:
                    bar.update()
                line = (owner.summary(cell, stored_run.result.row) if owner.summary
                        else describe(cell))
                _print(f"done {line}", bar)
        finally:
            if bar is not None:
                bar.close()
    if report.failures:
        raise GridFailed(report.failures)
    return report


def _tasks(experiment: Experiment, todo: list[Any], store: RunStore, data_dir: str | None,
           registry: Callable[[str], Experiment] | None) -> list[Task]:
    """Tasks for the pending cells and, first, for their requirements not yet stored."""
    tasks: dict[str, Task] = {}

    def add(owner: Experiment, cell: Any) -> str:
        task_id = f"{owner.name}-{digest(owner.name, settings_of(cell))}"
        if task_id in tasks:
            return task_id
        needs, names, ready = [], [], []
        for name, need in owner.requires(cell).items():
            other = owner
            if isinstance(need, Requirement):
                if registry is None:
                    raise GridError(f"{owner.name}: requirement {name} names experiment "
                                    f"{need.experiment} but no registry was given")
                other, need = registry(need.experiment), need.cell
            done = store.get(other.name, need)
            if done is not None:
                ready.append((name, done.result))
            else:
                needs.append(add(other, need))
                names.append(name)
        # results already stored are passed by value, pending ones as dependencies
        args = (owner, cell, data_dir, tuple(n for n, _ in ready) + tuple(names),
                *(r for _, r in ready))
        tasks[task_id] = Task(task_id, execute_cell, args, tuple(needs),
                              owner.resources(cell), (owner, cell))
        return task_id

    for cell in todo:
        add(experiment, cell)
    return list(tasks.values())


def _check_resources(executor: Any, tasks: list[Task]) -> None:
    """Fail early when a task asks for a resource (e.g. GPU) that no worker offers."""
    if not isinstance(executor, DaskExecutor):
        return
    offered = executor.offered()
    for task in tasks:
        for name, amount in {**executor.default_resources, **task.resources}.items():
            if offered.get(name, 0) < amount:
                raise GridError(f"cell {describe(task.payload[1])} needs {name}={amount:g} but "
                                f"no worker of {executor.description} offers it (start workers "
                                f"with: dask worker ADDRESS --resources {name}={amount:g})")


def reproduce(experiment: Experiment, *, runs: str | Path | None = None,
              out: str | Path | None = None, scheduler: str | None = None, jobs: int = 1,
              threads: int = 1, data_dir: str | None = None, allow_dirty: bool = False,
              command: str | None = None, registry: Callable[[str], Experiment] | None = None,
              **options: Any) -> Any:
    """``reproduce <experiment>`` from Python: the options by their command-line names.

    ``reproduce(MLP_DOT, dims=[16], users=[4000], seeds=range(2), epochs=32)`` is ``ncf-vs-mf
    reproduce mlp-dot --dims 16 --users 4000 --seeds 0 1 --epochs 32 --scheduler inprocess``;
    options not given take the experiment's defaults. Runs go to the run store ``runs``
    (default ``$NCF_VS_MF_RUNS`` or ``./runs``); with ``out`` they are also published into the
    experiment's tables in that folder, and that whole runs table is returned, else the grid's
    stored rows (key, metrics, ``run_id``). ``scheduler``: "inprocess" (the default for
    ``jobs=1``), "local" (a LocalCluster of ``jobs`` workers, the default otherwise) or a Dask
    scheduler's address.
    """
    values: dict[str, Any] = {}
    known = []
    for f in experiment.fields():
        option = f.metadata.get("option")
        if not option or f.name in experiment.fixed:
            continue
        name = option.lstrip("-").replace("-", "_")
        known.append(name)
        value = options.pop(name, experiment.defaults.get(f.name))
        values[f.name] = (list(value) if f.metadata.get("many") and value is not None
                          else value)
    if options:
        raise TypeError(f"{experiment.name}: unknown options {sorted(options)}; known: "
                        f"{', '.join(known)}")
    cells = experiment.grid(values, {"threads": threads})
    parameters = {**values, "threads": threads, "jobs": jobs}
    return run_cells(experiment, cells, parameters, runs=runs, out=out, scheduler=scheduler,
                     jobs=jobs, threads=threads, data_dir=data_dir, allow_dirty=allow_dirty,
                     registry=registry,
                     command=command or f"ncf_vs_mf.experiments.reproduce("
                                        f"{experiment.name!r}, **{parameters!r})")


def run_cells(experiment: Experiment, cells: list, parameters: dict[str, Any], *,
              runs: str | Path | None, out: str | Path | None, scheduler: str | None,
              jobs: int, threads: int, data_dir: str | None, allow_dirty: bool, command: str,
              registry: Callable[[str], Experiment] | None = None) -> Any:
    """Run ``cells`` into the run store (and publish into ``out``); return the published
    table when ``out`` is given, else the cells' stored rows (key, metrics, ``run_id``)."""
    import pandas as pd

    if scheduler is None and not os.environ.get(SCHEDULER_ENV):
        scheduler = INPROCESS if jobs <= 1 else LOCAL
    store_root = Path(runs) if runs is not None else runs_dir()
    report = run_grid(experiment, cells, runs=store_root, out=out, scheduler=scheduler,
                      jobs=max(1, jobs), threads=threads, data_dir=data_folder(data_dir),
                      allow_dirty=allow_dirty, parameters=parameters, registry=registry,
                      command=command)
    if out is not None:
        return tables(experiment, Path(out))[0].read()
    store = RunStore(store_root)
    rows = []
    for cell in report.cells:
        stored = store.get(experiment.name, cell)
        if stored is not None:
            rows.append({**experiment.key_of(cell), **stored.result.row,
                         "run_id": stored.provenance["run_id"]})
    return pd.DataFrame(rows)
