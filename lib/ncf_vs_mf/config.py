"""Where things live: the committed results, the run store, the caches and the source tree.

Every root comes from an environment variable when it is set, else from a default, so a command
line, a machine or a test can redirect each one:

* ``NCF_VS_MF_RESULTS``: the committed result tables the chapters read (default: ``results/``
  of the git checkout holding the package, else ``./results``);
* ``NCF_VS_MF_RUNS``: the run store ``reproduce`` writes to (default ``./runs``, ignored by git);
* ``NCF_VS_MF_CACHE``: downloads, derived splits and checksum pins (default: the per-user cache);
* ``NCF_VS_MF_BOOK``: the Jupyter Book (``_toc.yml``, ``book/``) the chapters come from. Unlike
  the others, a ``_toc.yml`` in the current directory wins over it; without either, the checkout
  holding the package (so an editable install finds its own book).

``source_root()`` is the checkout holding this package's code: what provenance describes.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

RESULTS_ENV = "NCF_VS_MF_RESULTS"
RUNS_ENV = "NCF_VS_MF_RUNS"
CACHE_ENV = "NCF_VS_MF_CACHE"
BOOK_ENV = "NCF_VS_MF_BOOK"
TOC_NAME = "_toc.yml"


def _git_toplevel(folder: Path) -> Path | None:
    """The work tree containing ``folder``, or None outside git (or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, text=True,
                             capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


@functools.lru_cache(maxsize=1)
def source_root() -> Path | None:
    """The git checkout holding the package's source (None when installed from a wheel)."""
    import ncf_vs_mf

    folder = Path(next(iter(ncf_vs_mf.__path__))).resolve()
    return _git_toplevel(folder)


def results_dir() -> Path:
    """Root of the committed result tables (``$NCF_VS_MF_RESULTS`` or the checkout's results)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    top = source_root()
    return (top / "results") if top is not None else Path("results")


def runs_dir() -> Path:
    """Root of the run store (``$NCF_VS_MF_RUNS`` or ``./runs``)."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser()


def cache_dir() -> Path:
    """Per-user cache of downloads, derived splits and pins (``$NCF_VS_MF_CACHE`` or pooch's)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("ncf-vs-mf"))


def book_root() -> Path:
    """Root of the book: ``./_toc.yml``'s folder, else ``$NCF_VS_MF_BOOK``, else the checkout."""
    here = Path.cwd()
    if (here / TOC_NAME).is_file():
        return here.resolve()
    if os.environ.get(BOOK_ENV):
        return Path(os.environ[BOOK_ENV]).expanduser().resolve()
    # The source tree as in an editable install: lib/ncf_vs_mf/config.py -> the checkout.
    return Path(__file__).resolve().parents[2]
