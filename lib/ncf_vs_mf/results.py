"""Result tables: tidy CSV files under ``results/<chapter>/`` with provenance, written atomically.

A table is one CSV (one row per run and setting) plus ``<table>.provenance.json`` holding one
record per invocation of the command that added rows (command, parameters, commit, data hashes,
library versions, machine, start time, duration). Each row names its invocation in a ``run_id``
column. Appends keep the existing lines byte for byte (an integer column stays an integer) and
add the new ones through a temporary file and a rename, provenance first, so an interrupted run
never leaves a half-written table nor a row without its record. A key seen twice is refused:
a rerun can never add a second copy of a setting (which a chapter would count as another seed).
Appends hold an exclusive lock on the table's folder (POSIX ``flock``), so several processes
may add rows to the same table at once without losing any.

Reading is strict: an empty file, a last line without its newline (a truncated row), a line
with the wrong number of fields, an empty key value, a duplicate key or a provenance file that
is not valid JSON raises :class:`TableError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX (Windows): one writer per table, as before
    fcntl = None

import numpy as np
import pandas as pd

from .config import results_dir, source_root
from .provenance import (Invocation, environment, git_commit, library_versions,  # noqa: F401
                         machine_description, source_state)

REPO_ROOT = source_root()
RESULTS_DIR = results_dir()
TEMP_SUFFIX = ".tmp"

__all__ = ["RESULTS_DIR", "Invocation", "ResultTable", "TableError", "DuplicateRowError",
           "atomic_write_bytes", "atomic_write_text", "atomic_write_csv", "folder_lock",
           "environment", "git_commit", "provenance_overview", "provenance_catalog",
           "read_json", "select_rows"]


class TableError(ValueError):
    """A result table or provenance file is malformed; the message names the file and line."""


class DuplicateRowError(TableError):
    """Rows whose key is already in the table (or twice among the new rows)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left in ``folder`` by writers that were killed mid-write."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = re.fullmatch(r"\..+\.pid(\d+)\.[^.]+\.tmp", entry.name)
        if match and not _pid_alive(int(match.group(1))):
            try:
                entry.unlink()
            except OSError:
                pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename.

    The file gets the permissions a plain ``open`` would give (temporary files are private);
    temporary files of killed writers (named with their process id) are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.",
                                     suffix=TEMP_SUFFIX, delete=False) as tmp:
        try:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.chmod(tmp.name, 0o666 & ~_umask())
        except BaseException:
            os.unlink(tmp.name)
            raise
    try:
        os.replace(tmp.name, path)
    except BaseException:
        os.unlink(tmp.name)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


_HELD = threading.local()  # folders this thread holds the lock of (nested locks are free)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (blocking): writers of its tables take turns.

    Re-entrant within a thread, so a publication can hold it across several appends."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    held = _HELD.__dict__.setdefault("folders", set())
    name = str(folder.resolve())
    if fcntl is None or name in held:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(name)
        yield
    finally:
        held.discard(name)
        os.close(fd)  # closing the descriptor releases the lock


def _umask() -> int:
    """The process umask (reading it means setting it; it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically (no index column)."""
    atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def read_json(path: Path) -> Any:
    """Parse a JSON file; a malformed one raises :class:`TableError` naming file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TableError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TableError(f"{path}, line {error.lineno}: invalid JSON ({error.msg}); restore it "
                         "from git or delete it") from None


def format_value(value: Any) -> str:
    """One CSV field: shortest round-trip floats, integers as integers, None/NaN empty."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([format_value(v) for v in values])
    return buffer.getvalue()


class _Parsed:
    """The checked text of a table: header, the lines' fields and their line numbers."""

    def __init__(self, path: Path, key: list[str]):
        self.path = path
        raw = path.read_bytes()
        if not raw.strip():
            raise TableError(f"{path}: empty file, expected a header line (restore it from git "
                             "or delete it)")
        try:
            self.text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TableError(f"{path}: not UTF-8 text (byte {error.start})") from None
        self.lines = self.text.splitlines(keepends=True)
        if not self.text.endswith("\n"):
            raise TableError(f"{path}, line {len(self.lines)}: truncated last row (the file does "
                             "not end with a newline); restore the file from git or delete the line")
        rows = list(csv.reader(self.lines))
        self.header, self.rows = rows[0], rows[1:]
        missing = [k for k in key if k not in self.header]
        if missing:
            raise TableError(f"{path}, line 1: header lacks the key columns {missing}")
        positions = [self.header.index(k) for k in key]
        self.keys: dict[tuple[str, ...], int] = {}
        for number, fields in enumerate(self.rows, start=2):
            if len(fields) != len(self.header):
                raise TableError(f"{path}, line {number}: expected {len(self.header)} fields, "
                                 f"got {len(fields)}")
            value = tuple(fields[p] for p in positions)
            empty = [k for k, v in zip(key, value) if v == ""]
            if empty:
                raise TableError(f"{path}, line {number}: empty key value in {empty}")
            if key and value in self.keys:  # no key (a bare reader): no uniqueness
                raise TableError(f"{path}, line {number}: duplicate key "
                                 f"{dict(zip(key, value))} (first on line {self.keys[value]})")
            self.keys[value] = number

    def frame(self) -> pd.DataFrame:
        return pd.read_csv(io.StringIO(self.text), dtype={"run_id": str})


def _key_text(row: dict[str, Any], key: list[str]) -> tuple[str, ...]:
    """A row's key as the text it has (or will have) in the file."""
    return tuple(format_value(row[k]) for k in key)


def select_rows(table: pd.DataFrame, settings: dict[str, Any], name: str = "table") -> pd.DataFrame:
    """The rows of ``table`` whose columns equal every given setting (TableError naming a
    setting the table has no column for)."""
    unknown = [column for column in settings if column not in table.columns]
    if unknown:
        raise TableError(f"{name}: no columns {unknown}; it has {list(table.columns)}")
    mask = np.ones(len(table), dtype=bool)
    for column, value in settings.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask].reset_index(drop=True)


class ResultTable:
    """A resumable tidy table keyed by some columns (e.g. dataset, model, dim, seed)."""

    def __init__(self, path: str | os.PathLike, key: Iterable[str]):
        self.path = Path(path)
        self.key = list(key)
        self.provenance_path = self.path.with_suffix(".provenance.json")

    def _parsed(self) -> _Parsed | None:
        return _Parsed(self.path, self.key) if self.path.exists() else None

    def read(self) -> pd.DataFrame:
        """All rows so far, checked (empty frame if the table does not exist yet). ``run_id`` is
        read as text: a hex id such as "51e801234567" would otherwise parse as a number (inf)."""
        parsed = self._parsed()
        return pd.DataFrame(columns=self.key) if parsed is None else parsed.frame()

    def check(self) -> None:
        """Raise :class:`TableError` if the table or its provenance is malformed."""
        self._parsed()
        self.provenance()

    def done(self) -> set[tuple]:
        """Keys of the settings already in the table: a rerun skips them."""
        table = self.read()
        return {tuple(row) for row in table[self.key].itertuples(index=False, name=None)}

    def done_text(self) -> set[tuple[str, ...]]:
        """Keys already in the table as their text (compare with ``_key_text``)."""
        parsed = self._parsed()
        return set() if parsed is None else set(parsed.keys)

    def has(self, setting: dict[str, Any]) -> bool:
        """Whether a row with this setting's key is in the table."""
        return _key_text(setting, self.key) in self.done_text()

    def select(self, **settings: Any) -> pd.DataFrame:
        """The rows whose columns equal every given setting (a chapter's exact selection)."""
        return select_rows(self.read(), settings, str(self.path))

    def append(self, rows: list[dict[str, Any]], invocation: Invocation,
               duplicates: str = "refuse") -> int:
        """Add rows (tagged with the invocation's run_id); return how many were added.

        A row whose key is already in the table is refused (:class:`DuplicateRowError`), or
        dropped with ``duplicates="skip"``. The provenance record is written before the rows.
        """
        if duplicates not in ("refuse", "skip"):
            raise ValueError(f"duplicates={duplicates!r}: expected 'refuse' or 'skip'")
        if not rows:
            return 0
        missing = sorted({k for row in rows for k in self.key if k not in row})
        if missing:
            raise ValueError(f"rows for {self.path} lack key columns {missing}")
        with folder_lock(self.path.parent):
            parsed = self._parsed()
            seen = set(parsed.keys) if parsed else set()
            fresh = []
            for row in rows:
                key = _key_text(row, self.key)
                if key in seen:
                    if duplicates == "skip":
                        continue
                    raise DuplicateRowError(f"{self.path}: a row with key "
                                            f"{dict(zip(self.key, key))} is already there")
                seen.add(key)
                fresh.append({**row, "run_id": invocation.run_id})
            if not fresh:
                return 0
            header = parsed.header if parsed else list(dict.fromkeys(
                [*self.key, *(c for r in fresh for c in r if c != "run_id"), "run_id"]))
            extra = [c for r in fresh for c in r if c not in header]
            extra = list(dict.fromkeys(extra))
            old = parsed.lines[1:] if parsed else []
            if extra:  # a new column: the old lines get an empty field (nothing else changes)
                old = [line[:-1] + "," * len(extra) + "\n" for line in old]
                header = header + extra
            self._record(invocation, added=len(fresh), parsed=parsed)
            new = [_csv_line(r.get(c) for c in header) for r in fresh]
            atomic_write_text(self.path, _csv_line(header) + "".join(old) + "".join(new))
        return len(fresh)

    def remove(self, where: Callable[[dict[str, str]], bool]) -> int:
        """Delete the lines whose fields (as text) satisfy ``where``; return how many."""
        with folder_lock(self.path.parent):
            parsed = self._parsed()
            if parsed is None:
                return 0
            keep = [line for line, fields in zip(parsed.lines[1:], parsed.rows)
                    if not where(dict(zip(parsed.header, fields)))]
            removed = len(parsed.rows) - len(keep)
            if removed:
                atomic_write_text(self.path, parsed.lines[0] + "".join(keep))
        return removed

    def _record(self, invocation: Invocation, added: int, parsed: _Parsed | None) -> None:
        records = self.provenance()
        before = 0
        if parsed is not None and "run_id" in parsed.header:
            column = parsed.header.index("run_id")
            before = sum(fields[column] == invocation.run_id for fields in parsed.rows)
        records = [r for r in records if r["run_id"] != invocation.run_id]
        records.append(invocation.record(before + added))
        atomic_write_text(self.provenance_path, json.dumps(records, indent=2) + "\n")

    def provenance(self) -> list[dict[str, Any]]:
        """Provenance records of every invocation that wrote to this table (checked)."""
        if not self.provenance_path.exists():
            return []
        records = read_json(self.provenance_path)
        if not isinstance(records, list) or not all(isinstance(r, dict) and "run_id" in r
                                                    for r in records):
            raise TableError(f"{self.provenance_path}: expected a JSON list of records with "
                             "a run_id each")
        return records


def provenance_overview(table: ResultTable) -> pd.DataFrame:
    """Who produced a table's rows: one line per invocation (command, commit, machine, date,
    rows). Durations are left out: they differ between machines and runs, not the rows."""
    records = table.provenance()
    return pd.DataFrame([{
        "run_id": r["run_id"], "command": r["command"], "commit": r["commit"][:10],
        "machine": f"{r['machine']['cpu']}, {r['machine']['cores']} cores, {r['machine']['memory']}",
        "started": r["started"][:10], "rows": r["rows_added"]} for r in records],
        columns=["run_id", "command", "commit", "machine", "started", "rows"])


def _duration(seconds: float | None) -> str | None:
    """Seconds as "1 h 05 min" / "12 min" / "40 s" (None stays None)."""
    if seconds is None:
        return None
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def provenance_catalog(results_dir: str | os.PathLike,
                       benchmarks_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every invocation behind the result tables under ``results_dir`` (one line each, with
    the tables it wrote) and every benchmark record (``*.json``) under ``benchmarks_dir``.

    The folder given to ``--data-dir`` is shown as ``DIR``: it names a place on the machine
    that ran the command, not a setting of the experiment."""
    results_dir = Path(results_dir)
    lines: dict[str, dict[str, Any]] = {}
    for path in sorted(results_dir.rglob("*.provenance.json")):
        table = path.relative_to(results_dir).as_posix().removesuffix(".provenance.json")
        for record in ResultTable(path.with_name(path.name.replace(".provenance.json", ".csv")),
                                  []).provenance():
            line = lines.setdefault(record["run_id"], {
                "chapter": table.split("/")[0], "tables": [], "command": record["command"],
                "commit": record["commit"], "machine": record["machine"],
                "started": record["started"], "seconds": record.get("duration_seconds"),
                "rows": 0})
            line["tables"].append(table.split("/")[-1])
            if table.endswith("_runs"):
                line["rows"] += int(record.get("rows_added", 0))
    for path in sorted(Path(benchmarks_dir).glob("*.json")) if benchmarks_dir else []:
        record = read_json(path)
        lines[f"benchmark:{path.stem}"] = {
            "chapter": "benchmarks", "tables": [path.stem],
            "command": f"python benchmarks/{record.get('benchmark', path.stem)}.py",
            "commit": record.get("commit", "unknown"), "machine": record.get("machine", {}),
            "started": record.get("started", ""), "seconds": record.get("duration_seconds"),
            "rows": None}
    return pd.DataFrame([{
        "chapter": line["chapter"], "tables": ", ".join(sorted(set(line["tables"]))),
        "command": re.sub(r"--data-dir[ =]\S+", "--data-dir DIR", line["command"]),
        "commit": line["commit"][:10],
        "clean": not line["commit"].endswith("+dirty"),
        "machine": f"{line['machine'].get('cpu', '?')}, {line['machine'].get('cores', '?')} cores",
        "started": str(line["started"])[:10], "duration": _duration(line["seconds"]),
        "rows": line["rows"]} for line in lines.values()],
        columns=["chapter", "tables", "command", "commit", "clean", "machine", "started",
                 "duration", "rows"]).astype({"rows": "Int64"})  # benchmarks add no rows
