"""Provenance: which code, libraries and machine produced a number, and how it was invoked.

The code is named by its commit and, when tracked source files differ from that commit, by a
sha256 of those differences (``git diff HEAD``); result tables and executed notebooks
(``SOURCE_EXCLUDES``) are data, not code, and never make a tree count as changed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import source_root

LIBRARIES = ("ncf-vs-mf", "numpy", "numba", "torch", "pandas", "faiss-cpu", "implicit", "dask",
             "distributed")
SOURCE_EXCLUDES = ("results", "executed", "benchmarks/results")


def _git(*args: str, root: Path) -> str:
    """Output of a git command in ``root`` (raises CalledProcessError or OSError on failure)."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8", "replace")


def source_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit", "uncommitted_sha256"}``: the checkout's commit and a hash of its uncommitted
    changes to tracked source files (None when there are none; commit "unknown" outside git)."""
    root = root or source_root()
    if root is None:
        return {"commit": "unknown", "uncommitted_sha256": None}
    try:
        commit = _git("rev-parse", "HEAD", root=root).strip()
        excludes = [f":(exclude){path}" for path in SOURCE_EXCLUDES]
        diff = subprocess.run(["git", "diff", "HEAD", "--binary", "--", ".", *excludes],
                              cwd=root, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "uncommitted_sha256": None}
    return {"commit": commit,
            "uncommitted_sha256": hashlib.sha256(diff).hexdigest() if diff else None}


def git_commit() -> str:
    """The commit of the source checkout, with '+dirty' when tracked source files changed."""
    state = source_state()
    return state["commit"] + ("+dirty" if state["uncommitted_sha256"] else "")


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
    """Installed versions of the libraries that can change a result."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, Any]:
    """Where a number came from: commit (+ uncommitted changes), libraries and machine."""
    state = source_state()
    commit = state["commit"] + ("+dirty" if state["uncommitted_sha256"] else "")
    return {"commit": commit, "uncommitted_sha256": state["uncommitted_sha256"],
            "libraries": library_versions(), "machine": machine_description()}


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Invocation:
    """Provenance of one command run, its environment (commit, libraries, machine) taken when
    it starts: the code that ran is the code of that moment, whatever is committed later."""

    command: str
    parameters: dict[str, Any]
    data: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: str = field(default_factory=now)
    _t0: float = field(default_factory=time.perf_counter)
    _environment: dict[str, Any] = field(default_factory=lambda: environment(), repr=False)

    @property
    def changed_sources(self) -> bool:
        """Whether tracked source files differed from the commit when the command started."""
        return bool(self._environment.get("uncommitted_sha256"))

    def record(self, rows_added: int) -> dict[str, Any]:
        """The provenance record of this invocation, as written beside a table."""
        return {
            "run_id": self.run_id, "command": self.command, "parameters": self.parameters,
            "data": self.data, **self._environment, "started": self.started,
            "duration_seconds": round(time.perf_counter() - self._t0, 1),
            "rows_added": rows_added,
        }
