"""The experiment engine: an experiment is declared once, the engine runs its grid.

Design note. An :class:`Experiment` declares

* its **cell**: a frozen dataclass holding every setting that changes a result (a field is a
  grid axis, a fixed value or a value taken from an engine option, see :func:`axis`,
  :func:`fixed`, :func:`from_engine`); the cell is the run's identity in the run store;
* its **run** function, ``run(cell, context) -> RunResult`` (a module-level function, so Dask
  workers import it): one row of metrics, the curve rows, and optional ``artifacts`` (bytes,
  e.g. trained weights) for the runs that depend on it;
* its **tables** (the committed CSVs the chapters read) and the folder they live in.

A field may also be :func:`derived` from the others (set in the cell's ``__post_init__``, e.g.
the hidden width h = width * d of Section 4), and an experiment may give a ``cost`` so that
pending cells run cheapest first (a grid cut short then holds all the cheap cells).

The engine does the rest for every experiment: validation before anything runs, pending
detection by the full settings key (run store plus, when publishing, the committed table),
scheduling on Dask (``cluster``), failure isolation, provenance, resume and progress.

Dependencies. ``requires(cell)`` returns the runs a cell needs, by name: e.g. the pre-trained
NeuMF experiment declares ``requires=lambda c: {"GMF": replace(c, model="GMF"), "MLP":
replace(c, model="MLP")}`` with the GMF and MLP cells of the NCF experiment (or of any
registered experiment: a required cell names its experiment through ``Requirement``). The
engine looks each requirement up in the run store first (a finished GMF is reused, with its
artifacts: no retraining); otherwise it schedules it once, however many cells need it, and
hands the dependents' tasks the Dask futures of their requirements, so a fine-tuning starts on
any worker as soon as its GMF and MLP are done, with their ``RunResult`` (weights included) in
``context.inputs``. A requirement that is not itself in the requested grid is stored but not
published; if it fails, its dependents are reported as failed with it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping


class GridFailed(RuntimeError):
    """Some cells of a grid failed (each was reported with its settings); the others are stored."""

    def __init__(self, failures: list[tuple[Any, BaseException]]):
        self.failures = failures
        first_cell, first_error = failures[0]
        super().__init__(f"{len(failures)} cell{'s' if len(failures) != 1 else ''} failed; the "
                         f"first: {describe(first_cell)}: {type(first_error).__name__}: "
                         f"{first_error}")


class SettingsError(ValueError):
    """A cell's settings cannot run; the message names the option and what is expected."""


# ----------------------------------------------------------------------------- declarations


def axis(option: str, help: str = "", choices: Iterable[Any] | None = None,
         many: bool = True) -> Any:
    """A grid axis: option ``--dims 8 16`` (``many``) or ``--epochs 256`` (one value)."""
    return field(metadata={"option": option, "help": help, "many": many,
                           "choices": tuple(choices) if choices is not None else None})


def fixed() -> Any:
    """A setting the experiment fixes (``Experiment.fixed``): no option."""
    return field(metadata={"option": None})


def derived() -> Any:
    """A setting computed from the others in the cell's ``__post_init__`` (e.g. h = width * d):
    no option, not a grid axis, but part of the cell (and its key) like any other field."""
    return field(init=False, metadata={"option": None, "derived": True})


def from_engine(name: str) -> Any:
    """A setting that takes the value of the engine option ``name`` (e.g. ``threads``)."""
    return field(metadata={"option": None, "engine": name})


@dataclass
class RunResult:
    """What a worker returns for one cell: its row, its curve rows and artifacts for dependents."""

    row: dict[str, Any]
    curves: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What a run function gets besides its cell: the data folder and its requirements' results."""

    data_dir: str | None = None
    inputs: Mapping[str, RunResult] = field(default_factory=dict)


@dataclass(frozen=True)
class Requirement:
    """A cell of another experiment (by registered name) that a cell needs."""

    experiment: str
    cell: Any


@dataclass(frozen=True)
class Experiment:
    """One experiment: its cell type, how to run a cell, and its tables."""

    name: str  # the ``reproduce`` subcommand and the run store folder
    help: str
    cell: type
    run: Callable[[Any, Context], RunResult]
    runs_table: str  # file stem of the committed runs table, e.g. "mf_runs"
    curves_table: str | None  # file stem of its curves table (key + "epoch"), or None
    key: tuple[str, ...]  # the runs table's key columns (a subset of the cell's fields)
    folder: str  # folder of the tables under the results root, e.g. "ncf_experiments"
    defaults: Mapping[str, tuple] = field(default_factory=dict)  # option -> default values
    fixed: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = ()  # grid order, outermost axis first (default: field order)
    check: Callable[[Any], list[str]] = lambda cell: []  # problems, each naming its option
    prepare: Callable[[list[Any], str | None], dict[str, Any]] = lambda cells, data_dir: {}
    requires: Callable[[Any], Mapping[str, Any]] = lambda cell: {}
    resources: Callable[[Any], dict[str, float]] = lambda cell: {}
    resolve: Callable[[dict[str, list]], dict[str, list]] = lambda values: values
    summary: Callable[[Any, dict[str, Any]], str] | None = None  # the "done ..." line
    description: str = ""
    curve_extra_key: tuple[str, ...] = ("epoch",)
    cost: Callable[[Any], float] | None = None  # pending cells run cheapest first (None: grid order)

    def fields(self) -> list[dataclasses.Field]:
        """The cell's fields, in declaration order."""
        return list(dataclasses.fields(self.cell))

    def option_of(self, name: str) -> str:
        """The command-line option that sets field ``name`` (or the field name)."""
        for f in self.fields():
            if f.name == name and f.metadata.get("option"):
                return f.metadata["option"]
            if f.name == name and f.metadata.get("engine"):
                return "--" + f.metadata["engine"]
        return name

    def grid(self, values: Mapping[str, list], engine: Mapping[str, Any]) -> list[Any]:
        """Every cell of the grid: the product of the axes' values, fixed and engine values."""
        values = self.resolve(dict(values))
        axes: dict[str, list] = {}
        for f in self.fields():
            if not f.init:  # derived from the others
                continue
            if f.name in self.fixed:
                axes[f.name] = [self.fixed[f.name]]
            elif f.metadata.get("engine"):
                axes[f.name] = [engine[f.metadata["engine"]]]
            else:
                chosen = values[f.name]
                axes[f.name] = list(chosen) if f.metadata.get("many") else [chosen]
        order = list(self.order) + [n for n in axes if n not in self.order]
        cells = []
        for combination in itertools.product(*(axes[n] for n in order)):
            cells.append(self.cell(**dict(zip(order, combination))))
        return list(dict.fromkeys(cells))  # a value given twice is one cell

    def validate(self, cells: Iterable[Any]) -> None:
        """Raise :class:`SettingsError` for the first cell that cannot run."""
        for cell in cells:
            problems = self.check(cell)
            if problems:
                raise SettingsError(f"{self.name}: " + "; ".join(problems))

    def key_of(self, cell: Any) -> dict[str, Any]:
        """The cell's values of the runs table's key columns."""
        return {k: getattr(cell, k) for k in self.key}

    def curves_key(self) -> tuple[str, ...]:
        """The curves table's key: the runs key plus the epoch (and e.g. the phase)."""
        return self.key + self.curve_extra_key


def describe(cell: Any) -> str:
    """A cell's settings in one line: ``dim=8 seed=0 ...``."""
    if dataclasses.is_dataclass(cell):
        return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(cell).items())
    return str(cell)


def settings_of(cell: Any) -> dict[str, Any]:
    """A cell as a plain dict (what the run store records)."""
    return dataclasses.asdict(cell)


def book_settings(experiment: Experiment, axes: Iterable[str] = (),
                  engine: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The settings of the runs a chapter shows: every key column that the experiment fixes or
    sets once (``--epochs 256``) at its default, the grid ``axes`` named (e.g. lr, lambda and
    m, at their default after ``resolve``: one value each), ``overrides`` (e.g. the dataset)
    and the engine's defaults (``threads`` 1). A smoke run (fewer epochs, other rates, truncated
    epochs) differs in one of them, so its rows are never shown."""
    engine = {"threads": 1, **(engine or {})}
    axes = set(axes)
    values = experiment.resolve({**experiment.defaults, **overrides})
    settings: dict[str, Any] = {}
    for f in experiment.fields():
        if f.name not in experiment.key or not f.init:
            continue
        if f.name in experiment.fixed:
            settings[f.name] = experiment.fixed[f.name]
        elif f.metadata.get("engine"):
            settings[f.name] = engine[f.metadata["engine"]]
        elif not f.metadata.get("many") or f.name in axes:
            value = values.get(f.name)
            if isinstance(value, (list, tuple)):
                if len(value) != 1:
                    raise ValueError(f"{experiment.name}: {f.name} has {len(value)} default "
                                     "values; a chapter's runs need one")
                value = value[0]
            if value is not None:
                settings[f.name] = value
    return settings
