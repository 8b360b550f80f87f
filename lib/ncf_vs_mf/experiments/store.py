"""The run store (one JSON file per finished run) and publishing runs into the committed tables.

A run is stored as ``<root>/<experiment>/<digest>.json``, ``digest`` being a hash of the
experiment's name and every setting of its cell: its metrics row, curve rows and provenance in
one record, written to a temporary file and linked into place with ``os.link``, which fails if
the run is already there. A finished run is thus recorded once, whole or not at all; a second
run of the same settings (an overlapping invocation, a resumed grid) is collapsed into the
first, never stored as another seed. Artifacts (bytes for dependent runs) are written beside
the record before it, so a record never names missing artifacts.

Publishing copies stored runs into an experiment's committed CSV tables
(:class:`~ncf_vs_mf.results.ResultTable`): provenance, then curves, then the row (a row marks
a run published); a run whose key is already in the table is collapsed, and curve rows left by
an interrupted publication of the same key are replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..config import source_root
from ..results import (ResultTable, TableError, folder_lock, format_value, read_json,
                       remove_stale_temporaries)
from .engine import Experiment, RunResult, book_settings, settings_of

FORMAT = 1
RECORD_FIELDS = ("format", "experiment", "digest", "settings", "row", "curves", "provenance",
                 "artifacts")


class StoreError(TableError):
    """A run record is malformed or does not match its file name; the message names the file."""


def digest(experiment: str, settings: dict[str, Any]) -> str:
    """The run's identity: sha256 of the experiment name and its settings (canonical JSON)."""
    text = json.dumps({"experiment": experiment, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class StoredRun:
    """One finished run as read from the store."""

    experiment: str
    settings: dict[str, Any]
    result: RunResult
    provenance: dict[str, Any]
    path: Path


@dataclass
class RunStore:
    """Finished runs, one file each, under ``root/<experiment>/``."""

    root: Path
    _index: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def folder(self, experiment: str) -> Path:
        return self.root / experiment

    def path(self, experiment: str, cell: Any) -> Path:
        return self.folder(experiment) / f"{digest(experiment, settings_of(cell))}.json"

    def has(self, experiment: str, cell: Any) -> bool:
        return self.path(experiment, cell).exists()

    def save(self, experiment: str, cell: Any, result: RunResult,
             provenance: dict[str, Any]) -> bool:
        """Record a finished run atomically; False if the same settings were already stored."""
        settings = settings_of(cell)
        name = digest(experiment, settings)
        folder = self.folder(experiment)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        target = folder / f"{name}.json"
        if target.exists():
            return False
        artifacts = {}
        for key, data in result.artifacts.items():
            artifact = folder / f"{name}.{key}.bin"
            _write_new(artifact, data)
            artifacts[key] = artifact.name
        record = {"format": FORMAT, "experiment": experiment, "digest": name,
                  "settings": settings, "row": result.row, "curves": result.curves,
                  "provenance": provenance, "artifacts": artifacts}
        text = json.dumps(record, indent=1, default=_plain) + "\n"
        return _write_new(target, text.encode("utf-8"))

    def load(self, path: Path) -> StoredRun:
        """Read one record strictly (:class:`StoreError` naming the file)."""
        record = read_json(path)
        if not isinstance(record, dict) or any(k not in record for k in RECORD_FIELDS):
            raise StoreError(f"{path}: not a run record (expected the fields {RECORD_FIELDS})")
        if record["format"] != FORMAT:
            raise StoreError(f"{path}: record format {record['format']}, expected {FORMAT}")
        if digest(record["experiment"], record["settings"]) != record["digest"] or \
                path.name != f"{record['digest']}.json":
            raise StoreError(f"{path}: its settings do not match its name (edited or moved?)")
        artifacts = {}
        for key, name in record["artifacts"].items():
            artifact = path.parent / name
            try:
                artifacts[key] = artifact.read_bytes()
            except OSError as error:
                raise StoreError(f"{artifact}: artifact {key} of {path} unreadable "
                                 f"({error.strerror})") from None
        result = RunResult(record["row"], record["curves"], artifacts)
        return StoredRun(record["experiment"], record["settings"], result,
                         record["provenance"], path)

    def get(self, experiment: str, cell: Any) -> StoredRun | None:
        """The stored run of a cell, or None."""
        path = self.path(experiment, cell)
        return self.load(path) if path.exists() else None

    def runs(self, experiment: str) -> list[StoredRun]:
        """Every stored run of an experiment, oldest first (each record checked)."""
        folder = self.folder(experiment)
        if not folder.is_dir():
            return []
        runs = [self.load(p) for p in folder.glob("*.json") if not p.name.startswith(".")]
        return sorted(runs, key=lambda r: (r.provenance.get("finished", ""), r.path.name))


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (``.item()``)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def _write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` atomically; False (and nothing written) if it exists."""
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.",
                                     suffix=".tmp", delete=False) as tmp:
        try:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    try:
        os.chmod(tmp.name, 0o644)
        os.link(tmp.name, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp.name)


# ----------------------------------------------------------------------------- publishing


class _Recorded:
    """A stored provenance record in the shape ``ResultTable.append`` expects."""

    def __init__(self, record: dict[str, Any]):
        self.run_id = record["run_id"]
        self._record = record

    def record(self, rows_added: int) -> dict[str, Any]:
        return {**self._record, "rows_added": rows_added}


def tables(experiment: Experiment, out: Path) -> tuple[ResultTable, ResultTable | None]:
    """The experiment's committed runs and curves tables in folder ``out``."""
    runs = ResultTable(Path(out) / f"{experiment.runs_table}.csv", experiment.key)
    curves = (ResultTable(Path(out) / f"{experiment.curves_table}.csv", experiment.curves_key())
              if experiment.curves_table else None)
    return runs, curves


def book_tables(experiment: Experiment, folder: str | os.PathLike, axes: Iterable[str] = (),
                **overrides: Any) -> tuple[Any, Any]:
    """A chapter's runs and curves of ``experiment`` from the committed tables in
    ``folder``, read strictly and restricted to :func:`~.engine.book_settings` (``axes``,
    ``overrides``; an override of None leaves that column free): rows of other settings, e.g.
    a smoke run published beside the full grid, are never shown. Curves are None without a
    curves table."""
    settings = book_settings(experiment, axes, **overrides)
    runs, curves = tables(experiment, Path(folder))
    return runs.select(**settings), (curves.select(**settings) if curves is not None else None)


@dataclass
class Published:
    """What a publication did: rows added and runs collapsed into rows already there."""

    added: int = 0
    collapsed: int = 0


def publish(experiment: Experiment, runs: Iterable[StoredRun], out: Path) -> Published:
    """Copy stored runs into the experiment's tables in ``out`` (see the module docstring)."""
    with folder_lock(Path(out)):  # one publication at a time: check and write together
        return _publish(experiment, runs, Path(out))


def _publish(experiment: Experiment, runs: Iterable[StoredRun], out: Path) -> Published:
    runs_table, curves_table = tables(experiment, out)
    done = runs_table.done_text()
    report = Published()
    groups: dict[str, list[tuple[dict, list[dict]]]] = {}
    records: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = {k: run.settings[k] for k in experiment.key}
        text = tuple(format_value(v) for v in key.values())
        if text in done:
            report.collapsed += 1
            continue
        done.add(text)
        run_id = run.provenance["run_id"]
        records[run_id] = run.provenance
        groups.setdefault(run_id, []).append(
            ({**key, **run.result.row}, [{**key, **c} for c in run.result.curves]))
    for run_id, items in groups.items():
        invocation = _Recorded(records[run_id])
        if curves_table is not None:
            keys = {tuple(format_value(row[k]) for k in experiment.key) for row, _ in items}
            curves_table.remove(lambda r: tuple(r[k] for k in experiment.key) in keys)
            curves_table.append([c for _, curve in items for c in curve], invocation)
        report.added += runs_table.append([row for row, _ in items], invocation)
    return report


def is_committed(folder: Path) -> bool:
    """Whether ``folder`` lies in the source checkout and is not ignored by git."""
    root = source_root()
    if root is None:
        return False
    try:
        Path(folder).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", str(Path(folder).resolve()) + "/"],
                                 cwd=root, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return True
    return not ignored
