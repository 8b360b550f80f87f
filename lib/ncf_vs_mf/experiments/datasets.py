"""The splits experiments train on, loaded once per process (driver or Dask worker)."""

from __future__ import annotations

import os
from typing import Any

from .. import data as data_mod

_SPLITS: dict[tuple, data_mod.LeaveOneOutSplit] = {}


def data_folder(data_dir: str | os.PathLike | None) -> str | None:
    """The data folder a grid reads: the argument, else ``$NCF_VS_MF_DATA``, else None
    (the per-user cache, filled by verified downloads)."""
    chosen = data_dir or os.environ.get(data_mod.DATA_ENV) or None
    return str(chosen) if chosen is not None else None


def load_split(dataset: str, split: str, data_dir: str | None) -> data_mod.LeaveOneOutSplit:
    """The test split or the tuning split of a dataset, downloaded and verified when no data
    folder is given (cached per process)."""
    key = (dataset, split, data_dir)
    if key not in _SPLITS:
        full = data_mod.load_dataset(dataset, data_dir, download=data_dir is None)
        _SPLITS[key] = full if split == "test" else data_mod.tuning_split(full)
    return _SPLITS[key]


def data_provenance(dataset: str, data_dir: str | None, **extra: Any) -> dict[str, Any]:
    """Provenance of a dataset: file hashes and which published variant each file is."""
    split = load_split(dataset, "test", data_dir)  # first: it downloads what is missing
    return {"dataset": dataset, **extra, "files": data_mod.fingerprint(dataset, data_dir),
            "variants": split.provenance}
