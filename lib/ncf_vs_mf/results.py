"""Result tables: tidy CSV files under ``results/<chapter>/`` with provenance, written atomically.

A table is one CSV (one row per run and setting) plus ``<table>.provenance.json`` holding one
record per invocation of the command that added rows (command, parameters, commit, data hashes,
library versions, machine, start time, duration). Each row names its invocation in a ``run_id``
column. Rows are appended by rewriting the file to a temporary name and renaming it, so an
interrupted run never leaves a half-written table, and a rerun skips the settings already done.
Appends hold an exclusive lock on the table's folder (POSIX ``flock``), so several processes may
add rows to the same table at once without losing any.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX (Windows): one writer per table, as before
    fcntl = None

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "results"
LIBRARIES = ("ncf-vs-mf", "numpy", "numba", "torch", "pandas", "faiss-cpu", "implicit")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename.

    The file gets the permissions a plain ``open`` would give (temporary files are private).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        try:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.chmod(tmp.name, 0o666 & ~_umask())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (blocking): writers of its tables take turns."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _umask() -> int:
    """The process umask (reading it means setting it; it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically (no index column)."""
    atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def git_commit() -> str:
    """The commit of the working tree, with '+dirty' when it has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, text=True, capture_output=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_description() -> dict[str, Any]:
    """What ran the experiment: CPU model, cores, memory, OS and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory,
            "platform": platform.platform(), "python": sys.version.split()[0]}


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, Any]:
    """Where a number came from: commit, library versions and machine (for any record)."""
    return {"commit": git_commit(), "libraries": library_versions(),
            "machine": machine_description()}


@dataclass
class Invocation:
    """Provenance of one command run, its environment (commit, libraries, machine) taken when
    it starts: the code that ran is the code of that moment, whatever is committed later."""

    command: str
    parameters: dict[str, Any]
    data: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
                         .isoformat(timespec="seconds"))
    _t0: float = field(default_factory=time.perf_counter)
    _environment: dict[str, Any] = field(default_factory=lambda: environment(), repr=False)

    def record(self, rows_added: int) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "command": self.command, "parameters": self.parameters,
            "data": self.data, **self._environment, "started": self.started,
            "duration_seconds": round(time.perf_counter() - self._t0, 1),
            "rows_added": rows_added,
        }


class ResultTable:
    """A resumable tidy table keyed by some columns (e.g. dataset, model, dim, seed)."""

    def __init__(self, path: str | os.PathLike, key: Iterable[str]):
        self.path = Path(path)
        self.key = list(key)
        self.provenance_path = self.path.with_suffix(".provenance.json")

    def read(self) -> pd.DataFrame:
        """All rows so far (empty frame if the table does not exist yet). ``run_id`` is read as
        text: a hex id such as "51e801234567" would otherwise parse as a number (here inf)."""
        if not self.path.exists():
            return pd.DataFrame(columns=self.key)
        return pd.read_csv(self.path, dtype={"run_id": str})

    def done(self) -> set[tuple]:
        """Keys of the settings already in the table: a rerun skips them."""
        table = self.read()
        return {tuple(row) for row in table[self.key].itertuples(index=False, name=None)}

    def has(self, setting: dict[str, Any]) -> bool:
        return tuple(setting[k] for k in self.key) in self.done()

    def append(self, rows: list[dict[str, Any]], invocation: Invocation) -> None:
        """Add rows (tagged with the invocation's run_id) and rewrite the table atomically."""
        if not rows:
            return
        missing = [k for k in self.key if k not in rows[0]]
        if missing:
            raise ValueError(f"rows for {self.path} lack key columns {missing}")
        new = pd.DataFrame([{**row, "run_id": invocation.run_id} for row in rows])
        with folder_lock(self.path.parent):
            table = pd.concat([self.read(), new], ignore_index=True) if self.path.exists() else new
            atomic_write_csv(self.path, table)
            self._record(invocation)

    def _record(self, invocation: Invocation) -> None:
        records = self.provenance()
        added = int((self.read()["run_id"] == invocation.run_id).sum())
        records = [r for r in records if r["run_id"] != invocation.run_id]
        records.append(invocation.record(added))
        atomic_write_text(self.provenance_path, json.dumps(records, indent=2) + "\n")

    def provenance(self) -> list[dict[str, Any]]:
        """Provenance records of every invocation that wrote to this table."""
        if not self.provenance_path.exists():
            return []
        return json.loads(self.provenance_path.read_text())


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
        record = json.loads(path.read_text(encoding="utf-8"))
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
                 "duration", "rows"])
