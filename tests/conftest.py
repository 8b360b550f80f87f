"""Shared fixtures.

Real-data tests take the ``ncf_data_dir`` fixture: the folder named by ``$NCF_VS_MF_DATA``,
else ``../shared/data`` beside the repository when it exists (as on the development machines
and in CI); without either the test is skipped, saying why. The folder is only read.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncf_vs_mf.data import DATA_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def data_dir_or_reason() -> tuple[Path | None, str]:
    """The real-data folder, or None and the reason there is none."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            return path.resolve(), ""
        return None, f"${DATA_ENV}={configured} is not a folder"
    if SHARED_DATA.is_dir():
        return SHARED_DATA.resolve(), ""
    return None, (f"no real data: set ${DATA_ENV} to a folder with the NCF files (ncf/) and "
                  f"MovieLens 100K (ml-100k/), or place them in {SHARED_DATA}")


@pytest.fixture(scope="session")
def ncf_data_dir() -> Path:
    """Folder with the real data files (``ncf/``, ``ml-100k/``); skips the test without it."""
    path, reason = data_dir_or_reason()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def dask_scheduler(tmp_path_factory) -> Iterator[str]:
    """The address of a real ``dask scheduler`` with two ``dask worker`` processes (one thread
    each) started on 127.0.0.1 for the session, as a user would start them."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    quiet = dict(cwd=tmp_path_factory.mktemp("dask"), stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                   address.rsplit(":", 1)[1], "--no-dashboard"], **quiet)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host",
                 "127.0.0.1", "--memory-limit", "0"], **quiet))
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(30)
