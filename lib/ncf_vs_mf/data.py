"""Datasets of the book: the NCF leave-one-out splits, MovieLens-100K and a synthetic stand-in.

Every dataset is returned as a :class:`LeaveOneOutSplit`: compact integer arrays holding the
training pairs, one held-out test item per user and that user's sampled negatives, exactly the
shape of the NCF files (He et al. 2017). Files are looked up in a data directory (argument
``data_dir``, else the environment variable ``NCF_VS_MF_DATA``, else a per-user cache that is
filled by verified downloads).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

DATA_ENV = "NCF_VS_MF_DATA"
NCF_URL = "https://raw.githubusercontent.com/hexiangnan/neural_collaborative_filtering/master/Data/"
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
N_NCF_NEGATIVES = 99


class DataError(ValueError):
    """A data file is missing, corrupt or malformed; the message names the file."""


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it lives, and how to recognise a good copy.

    ``sha256``/``git_blob`` pin the published original (either may be unknown: ``None``);
    ``variants`` maps the sha256 of known, documented variants to a description of how they
    differ. A file matching none of them is rejected.
    """

    name: str
    subdir: str
    url: str
    sha256: str | None = None
    git_blob: str | None = None
    variants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NCFDatasetInfo:
    """An NCF-format split: its three files and its published shape."""

    name: str
    train: DataFile
    test: DataFile
    negatives: DataFile
    n_users: int
    n_items: int


_ML1M_TRAIN_RECONSTRUCTION = (
    "reconstruction of the NCF original from raw MovieLens-1M with NCF's id rules: the same "
    "994,169 (user, item, rating) rows; timestamps exact for users 0-2998 and 0 (unknown) for "
    "users 2999-6039; line order within a user differs"
)


def _ncf_file(name: str, sha256: str | None = None, git_blob: str | None = None,
              variants: dict[str, str] | None = None) -> DataFile:
    return DataFile(name, "ncf", NCF_URL + name, sha256, git_blob, variants or {})


NCF_DATASETS: dict[str, NCFDatasetInfo] = {
    "ml-1m": NCFDatasetInfo(
        name="ml-1m",
        train=_ncf_file(
            "ml-1m.train.rating",
            git_blob="31ba384fd58dac8fbd09d2dfc6616431f3563ab5",
            variants={
                "5a6e67c858f87d3698a4f364d3779e6fa3bba5d3073bb075617e89be98b49f9c":
                    _ML1M_TRAIN_RECONSTRUCTION,
            },
        ),
        test=_ncf_file(
            "ml-1m.test.rating",
            sha256="231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5",
            git_blob="1b79e03c96710c3b0c35deb19155ef74f7965a02",
        ),
        negatives=_ncf_file(
            "ml-1m.test.negative",
            sha256="127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4",
            git_blob="c82844fb99d021f94751a6f915a230a1e8b8da92",
        ),
        n_users=6040,
        n_items=3706,
    ),
    # Pinterest-20: no checksum was available to the project when this registry was written;
    # the first verified copy is pinned locally (trust on first use, see `_verify`).
    "pinterest-20": NCFDatasetInfo(
        name="pinterest-20",
        train=_ncf_file("pinterest-20.train.rating"),
        test=_ncf_file("pinterest-20.test.rating"),
        negatives=_ncf_file("pinterest-20.test.negative"),
        n_users=55187,
        n_items=9916,
    ),
}

ML100K_RATINGS = DataFile(
    "u.data", "ml-100k", ML100K_URL,
    sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
)

DATASETS = ("ml-1m", "pinterest-20", "ml-100k", "synthetic")


# ----------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """The per-user cache that verified downloads go to (``$NCF_VS_MF_CACHE`` overrides it)."""
    from .config import cache_dir

    return cache_dir()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Return the data directory and whether it is a user-given local folder.

    A local folder (argument or ``NCF_VS_MF_DATA``) is only read, never downloaded into.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser(), True
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), True
    return default_cache_dir(), False


def _hash_file(path: Path) -> tuple[str, str]:
    """sha256 and git blob id (sha1 of 'blob <size>\\0' + content) of a file."""
    sha256, blob = hashlib.sha256(), hashlib.sha1()
    blob.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


def _pin_file(path: Path) -> Path:
    """Where the checksum of a file without a published one is pinned on first use.

    Files in the cache are pinned beside themselves; files of a local folder (only read, never
    written into) in the cache's ``pins/`` folder, one pin per file name: any later copy, from
    whatever folder, must match the first one seen.
    """
    cache = default_cache_dir()
    try:
        path.resolve().relative_to(cache.resolve())
        return path.with_name(path.name + ".sha256")
    except ValueError:
        return cache / "pins" / path.parent.name / (path.name + ".sha256")


def _verify(spec: DataFile, path: Path) -> str:
    """Check a file against the registry; return 'original' or the variant description.

    Raises :class:`DataError` naming the file, the expected and the actual hash on mismatch.
    Files with no published checksum are pinned on first use in a ``.sha256`` file beside them.
    """
    sha256, blob = _hash_file(path)
    if spec.sha256 == sha256 or spec.git_blob == blob:
        return "original"
    if sha256 in spec.variants:
        return spec.variants[sha256]
    if spec.sha256 is None and spec.git_blob is None and not spec.variants:
        pin = _pin_file(path)
        if not pin.exists():
            pin.parent.mkdir(parents=True, exist_ok=True)
            pin.write_text(sha256 + "\n")
            return f"unverified (no published checksum; pinned on first use in {pin})"
        expected = pin.read_text().strip()
        if expected == sha256:
            return "unverified (matches the checksum pinned on first use)"
        expected_desc = f"sha256 {expected} (pinned on first use in {pin})"
    else:
        wanted = [f"sha256 {spec.sha256}"] if spec.sha256 else []
        wanted += [f"git blob {spec.git_blob}"] if spec.git_blob else []
        wanted += [f"sha256 {h} (known variant)" for h in spec.variants]
        expected_desc = " or ".join(wanted)
    raise DataError(
        f"checksum mismatch for {path}: expected {expected_desc}; got sha256 {sha256} "
        f"(git blob {blob}). Delete the file and fetch it again from {spec.url}."
    )


DOWNLOAD_TIMEOUT = (5, 60)  # seconds to connect, seconds between received bytes


def _fetch(url: str, target: Path) -> None:
    """Download ``url`` to ``target``; without a network fail within seconds, saying what to do."""
    import pooch

    try:
        pooch.HTTPDownloader(progressbar=False, timeout=DOWNLOAD_TIMEOUT)(url, str(target), None)
    except Exception as error:  # requests' connection, timeout and HTTP errors
        raise DataError(
            f"could not download {url} ({type(error).__name__}: {str(error)[:200]}). Without a "
            f"network, copy the files into a folder and pass it with --data-dir (or set "
            f"{DATA_ENV}).") from None


def _download(spec: DataFile, target: Path) -> None:
    """Download to a temporary file, verify, then move into place (nothing half-written)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp) / spec.name
        _fetch(spec.url, tmp_path)
        status = _verify(spec, tmp_path)
        if status.startswith("unverified"):
            sha256, _ = _hash_file(tmp_path)
            _pin_file(target).write_text(sha256 + "\n")
        os.replace(tmp_path, target)


def _download_ml100k(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "ml-100k.zip"
        _fetch(ML100K_URL, archive)
        with zipfile.ZipFile(archive) as zf, zf.open("ml-100k/u.data") as src, \
                open(Path(tmp) / "u.data", "wb") as dst:
            shutil.copyfileobj(src, dst)
        _verify(ML100K_RATINGS, Path(tmp) / "u.data")
        os.replace(Path(tmp) / "u.data", target)


def locate(spec: DataFile, data_dir: str | os.PathLike | None = None,
           download: bool = True) -> tuple[Path, str]:
    """Find (or download into the cache) a verified copy of ``spec``; return path and status."""
    root, local = resolve_data_dir(data_dir)
    path = root / spec.subdir / spec.name
    if not path.exists():
        if local or not download:
            raise DataError(
                f"data file {spec.name} not found: looked for {path}. Download it from "
                f"{spec.url} into {root / spec.subdir}, or unset {DATA_ENV} and pass no "
                f"data_dir to let the library download and verify it into {default_cache_dir()}."
            )
        if spec is ML100K_RATINGS:
            _download_ml100k(path)
        else:
            _download(spec, path)
    return path, _verify(spec, path)


# ----------------------------------------------------------------------------- container


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """Implicit feedback split in the NCF form: training pairs and one test item per user.

    ``test_negatives[u]`` are the sampled items user ``u`` ranks the test item against.
    ``train_timestamps`` may be 0 where unknown (see ``provenance``).
    """

    name: str
    n_users: int
    n_items: int
    train_users: np.ndarray  # int32, (n_train,)
    train_items: np.ndarray  # int32, (n_train,)
    train_timestamps: np.ndarray  # int64, (n_train,)
    test_items: np.ndarray  # int32, (n_users,): test item of user u at index u
    test_negatives: np.ndarray  # int32, (n_users, n_negatives)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.train_users.shape[0])

    def candidates(self) -> np.ndarray:
        """Items each user ranks, negatives first and the test item last (NCF's order)."""
        return np.concatenate([self.test_negatives, self.test_items[:, None]], axis=1)

    def train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Training items grouped by user: (indptr, items), items sorted within a user."""
        order = np.lexsort((self.train_items, self.train_users))
        counts = np.bincount(self.train_users, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return indptr, self.train_items[order]


# ----------------------------------------------------------------------------- parsing


def _first_bad_line(path: Path, n_fields: int, pair_first: bool = False) -> str:
    """Describe the first malformed line of a tab-separated integer file (slow path)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if pair_first and fields:
                head = fields[0]
                if not (head.startswith("(") and head.endswith(")") and head.count(",") == 1):
                    return f"{path}, line {lineno}: expected '(user,item)' first, got {head!r}"
                fields = head[1:-1].split(",") + fields[1:]
            if len(fields) != n_fields:
                return (f"{path}, line {lineno}: expected {n_fields} tab-separated fields, "
                        f"got {len(fields)}")
            for value in fields:
                try:
                    number = int(value)
                except ValueError:
                    return f"{path}, line {lineno}: expected integers, got {value!r}"
                if not -2**63 <= number < 2**63:
                    return f"{path}, line {lineno}: number {value} is too large for an id"
    return f"{path}: could not be parsed"


def _check_complete(path: Path) -> None:
    """A text data file must end with a newline: else its last number may be cut short."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            raise DataError(f"{path}: file is empty")
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            with open(path, "rb") as whole:
                lines = sum(1 for _ in whole)
            raise DataError(f"{path}, line {lines}: truncated (the file does not end with a "
                            "newline); delete it and fetch it again")


def read_rating_file(path: Path) -> np.ndarray:
    """Parse an NCF ``.rating`` file into an int64 array of (user, item, rating, timestamp)."""
    _check_complete(path)
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype=np.int64, engine="c",
                            names=["user", "item", "rating", "timestamp"],
                            skip_blank_lines=False)
    except (ValueError, OverflowError, pd.errors.ParserError):
        raise DataError(_first_bad_line(path, 4)) from None
    if table.shape[0] == 0:
        raise DataError(f"{path}: file is empty")
    return table.to_numpy()


def read_negative_file(path: Path) -> np.ndarray:
    """Parse an NCF ``.test.negative`` file: rows of (user, item, neg_1, ..., neg_99)."""
    _check_complete(path)
    try:
        table = pd.read_csv(path, sep="\t", header=None, engine="c", dtype=str,
                            skip_blank_lines=False, keep_default_na=False)
    except (ValueError, pd.errors.ParserError):
        raise DataError(_first_bad_line(path, N_NCF_NEGATIVES + 2, pair_first=True)) from None
    if table.shape[1] != N_NCF_NEGATIVES + 1 or (table == "").to_numpy().any():
        raise DataError(_first_bad_line(path, N_NCF_NEGATIVES + 2, pair_first=True))
    head = table[0].str.extract(r"^\((-?\d+),(-?\d+)\)$")
    try:
        pairs = head.to_numpy(dtype=np.int64)
        negatives = table.iloc[:, 1:].to_numpy(dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        raise DataError(_first_bad_line(path, N_NCF_NEGATIVES + 2, pair_first=True)) from None
    return np.concatenate([pairs, negatives], axis=1)


def _check_range(path: Path, column: str, values: np.ndarray, limit: int, offset: int = 1) -> None:
    bad = np.flatnonzero((values < 0) | (values >= limit))
    if bad.size:
        raise DataError(f"{path}, line {bad[0] + offset}: {column} id {values[bad[0]]} out of "
                        f"range, expected 0 <= id < {limit}")


def assemble_split(name: str, train: np.ndarray, test: np.ndarray, negatives: np.ndarray,
                   n_users: int, n_items: int, paths: tuple[Path, Path, Path],
                   provenance: dict[str, str]) -> LeaveOneOutSplit:
    """Validate parsed NCF tables against each other and pack them into a split."""
    train_path, test_path, neg_path = paths
    _check_range(train_path, "user", train[:, 0], n_users)
    _check_range(train_path, "item", train[:, 1], n_items)
    _check_range(test_path, "user", test[:, 0], n_users)
    _check_range(test_path, "item", test[:, 1], n_items)
    _check_range(neg_path, "user", negatives[:, 0], n_users)
    for col in range(1, negatives.shape[1]):
        _check_range(neg_path, "item", negatives[:, col], n_items)
    test_items = np.full(n_users, -1, dtype=np.int64)
    users = test[:, 0]
    seen = np.zeros(n_users, dtype=bool)
    for line, user in enumerate(users, start=1):  # 6,040 rows: cheap, and names the line
        if seen[user]:
            raise DataError(f"{test_path}, line {line}: user {user} appears twice in the test file")
        seen[user] = True
    if not seen.all():
        missing = int(np.flatnonzero(~seen)[0])
        raise DataError(f"{test_path}: user {missing} has no test item (expected one per user)")
    test_items[users] = test[:, 1]
    if negatives.shape[0] != n_users or not np.array_equal(negatives[:, 0], users):
        raise DataError(f"{neg_path}: its (user,item) rows must list the users of {test_path} "
                        "in the same order")
    mismatch = np.flatnonzero(negatives[:, 1] != test[:, 1])
    if mismatch.size:
        line = int(mismatch[0]) + 1
        raise DataError(f"{neg_path}, line {line}: test item {negatives[line - 1, 1]} differs "
                        f"from {test_path}, line {line} ({test[line - 1, 1]})")
    neg_by_user = np.empty((n_users, negatives.shape[1] - 2), dtype=np.int32)
    neg_by_user[users] = negatives[:, 2:]
    return LeaveOneOutSplit(
        name=name, n_users=n_users, n_items=n_items,
        train_users=train[:, 0].astype(np.int32), train_items=train[:, 1].astype(np.int32),
        train_timestamps=train[:, 3].astype(np.int64),
        test_items=test_items.astype(np.int32), test_negatives=neg_by_user,
        provenance=provenance,
    )


def load_ncf(name: str = "ml-1m", data_dir: str | os.PathLike | None = None,
             download: bool = True) -> LeaveOneOutSplit:
    """Load a verified NCF split (``"ml-1m"`` or ``"pinterest-20"``).

    ``provenance`` records, per file, whether it is the published original or which known
    variant it is (the ML-1M training file of the development data is a reconstruction).
    """
    if name not in NCF_DATASETS:
        raise DataError(f"unknown NCF dataset {name!r}; expected one of {sorted(NCF_DATASETS)}")
    info = NCF_DATASETS[name]
    located = [locate(spec, data_dir, download) for spec in (info.train, info.test, info.negatives)]
    paths = tuple(path for path, _ in located)
    provenance = {spec.name: status for spec, (_, status)
                  in zip((info.train, info.test, info.negatives), located)}
    train = read_rating_file(paths[0])
    test = read_rating_file(paths[1])
    negatives = read_negative_file(paths[2])
    return assemble_split(name, train, test, negatives, info.n_users, info.n_items,
                          paths, provenance)


# ----------------------------------------------------------------------------- derived splits


def _sample_unseen(rng: np.random.Generator, n_items: int, seen: np.ndarray, k: int) -> np.ndarray:
    """k distinct items not in ``seen`` (sorted unique array), uniformly at random."""
    pool = np.setdiff1d(np.arange(n_items), seen, assume_unique=True)
    if pool.size < k:
        raise DataError(f"cannot sample {k} negatives: only {pool.size} unseen items")
    return rng.choice(pool, size=k, replace=False)


def leave_latest_out(name: str, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                     n_users: int, n_items: int, n_negatives: int, seed: int,
                     exclude: tuple[np.ndarray, np.ndarray] | None = None,
                     provenance: dict[str, str] | None = None) -> LeaveOneOutSplit:
    """Hold out each user's latest interaction and sample negatives the user never saw.

    Ties for the latest timestamp (including all-zero, i.e. unknown, timestamps) are broken
    uniformly at random with ``seed``, so the split does not depend on line order. Negatives
    are distinct and avoid every item of the user in ``items`` and in ``exclude`` (pairs known
    elsewhere, e.g. the final test items when carving a tuning split from a training file).
    """
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(users.shape[0])
    order = np.lexsort((tiebreak, timestamps, users))
    users_o, items_o, ts_o = users[order], items[order], timestamps[order]
    counts = np.bincount(users_o, minlength=n_users)
    if (counts < 2).any():
        user = int(np.flatnonzero(counts < 2)[0])
        raise DataError(f"user {user} has {counts[user]} interactions; a leave-one-out split "
                        "needs at least 2")
    last = np.cumsum(counts) - 1
    is_test = np.zeros(users_o.shape[0], dtype=bool)
    is_test[last] = True
    all_users, all_items = users, items
    if exclude is not None:
        all_users = np.concatenate([users, exclude[0]])
        all_items = np.concatenate([items, exclude[1]])
    seen_order = np.lexsort((all_items, all_users))
    seen_users, seen_items = all_users[seen_order], all_items[seen_order]
    bounds = np.searchsorted(seen_users, np.arange(n_users + 1))
    negatives = np.empty((n_users, n_negatives), dtype=np.int32)
    for user in range(n_users):
        seen = np.unique(seen_items[bounds[user]:bounds[user + 1]])
        negatives[user] = _sample_unseen(rng, n_items, seen, n_negatives)
    return LeaveOneOutSplit(
        name=name, n_users=n_users, n_items=n_items,
        train_users=users_o[~is_test].astype(np.int32),
        train_items=items_o[~is_test].astype(np.int32),
        train_timestamps=ts_o[~is_test].astype(np.int64),
        test_items=items_o[is_test].astype(np.int32),
        test_negatives=negatives,
        provenance={"split": f"leave latest out, {n_negatives} negatives, seed {seed}",
                    **(provenance or {})},
    )


def tuning_split(split: LeaveOneOutSplit, n_negatives: int = 100, seed: int = 0) -> LeaveOneOutSplit:
    """The tuning split of Rendle et al. Appendix A.2, carved from the training data only.

    Each user's last training interaction becomes the tuning test item (random tie-break among
    equal latest timestamps: the reconstructed ML-1M file has timestamp 0 for half its users),
    ranked against ``n_negatives`` sampled items the user has not interacted with in training.
    The final test items never enter: they are neither trained on nor used as negatives.
    """
    return leave_latest_out(
        f"{split.name}-tuning", split.train_users, split.train_items, split.train_timestamps,
        split.n_users, split.n_items, n_negatives, seed,
        exclude=(np.arange(split.n_users), split.test_items),
        provenance={"parent": split.name, **split.provenance},
    )


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, **arrays)
    os.replace(tmp.name, path)


def load_ml100k(data_dir: str | os.PathLike | None = None, seed: int = 0,
                n_negatives: int = N_NCF_NEGATIVES, download: bool = True) -> LeaveOneOutSplit:
    """MovieLens-100K with our own NCF-style split (latest interaction held out, seeded).

    Ids become 0-based. The split is cached beside the user cache so reruns are instant.
    """
    path, status = locate(ML100K_RATINGS, data_dir, download)
    cache = default_cache_dir() / "splits" / f"ml-100k-seed{seed}-neg{n_negatives}.npz"
    keys = ("train_users", "train_items", "train_timestamps", "test_items", "test_negatives")
    provenance = {"u.data": status,
                  "split": f"leave latest out, {n_negatives} negatives, seed {seed}"}
    if cache.exists():
        try:
            with np.load(cache) as stored:
                return LeaveOneOutSplit("ml-100k", 943, 1682, *(stored[k] for k in keys),
                                        provenance=provenance)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{cache}: corrupted split cache ({type(error).__name__}: {error}); "
                            "delete it and it is rebuilt from u.data") from None
    raw = read_rating_file(path)
    _check_range(path, "user", raw[:, 0] - 1, 943)
    _check_range(path, "item", raw[:, 1] - 1, 1682)
    split = leave_latest_out("ml-100k", raw[:, 0] - 1, raw[:, 1] - 1, raw[:, 3], 943, 1682,
                             n_negatives, seed, provenance={"u.data": status})
    _atomic_save_npz(cache, **{k: getattr(split, k) for k in keys})
    return split


def synthetic_split(n_users: int = 600, n_items: int = 400, rank: int = 8,
                    mean_interactions: int = 40, popularity_exponent: float = 1.0,
                    preference_scale: float = 2.5, n_negatives: int = N_NCF_NEGATIVES,
                    seed: int = 0) -> LeaveOneOutSplit:
    """A small seeded dataset in NCF form: low-rank preferences plus Zipf-like popularity.

    User u picks items without replacement with probability proportional to
    ``exp(s <x_u, y_i>) * popularity_i`` (Gumbel top-k), where <x_u, y_i> has unit variance and
    ``s = preference_scale`` sets how much personal taste matters next to popularity; the pick
    order plays the role of time.
    Used by tests and by the book's live cells, which must run offline in seconds.
    """
    if n_items <= mean_interactions + n_negatives:
        raise ValueError(f"n_items={n_items} must exceed mean_interactions + n_negatives")
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0 / rank ** 0.25, size=(n_users, rank))
    y = rng.normal(0.0, 1.0 / rank ** 0.25, size=(n_items, rank))
    log_pop = -popularity_exponent * np.log1p(rng.permutation(n_items))
    logits = preference_scale * (x @ y.T) + log_pop
    sizes = np.clip(rng.poisson(mean_interactions, size=n_users), 5, n_items - n_negatives - 1)
    gumbel = logits + rng.gumbel(size=logits.shape)
    ranked = np.argsort(-gumbel, axis=1)
    users = np.repeat(np.arange(n_users), sizes)
    items = np.concatenate([ranked[u, :sizes[u]] for u in range(n_users)])
    timestamps = np.concatenate([np.arange(s) for s in sizes])
    return leave_latest_out("synthetic", users, items, timestamps, n_users, n_items,
                            n_negatives, seed + 1,
                            provenance={"generator": f"synthetic_split(seed={seed})"})


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, seed: int = 0,
                 download: bool = True) -> LeaveOneOutSplit:
    """Load any dataset of the book by name: ml-1m, pinterest-20, ml-100k or synthetic."""
    if name in NCF_DATASETS:
        return load_ncf(name, data_dir, download)
    if name == "ml-100k":
        return load_ml100k(data_dir, seed=seed, download=download)
    if name == "synthetic":
        return synthetic_split(seed=seed)
    raise DataError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")


def subsample_users(split: LeaveOneOutSplit, n_users: int, seed: int = 0) -> LeaveOneOutSplit:
    """The same split restricted to ``n_users`` random users (ids re-numbered, items kept)."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(split.n_users, size=n_users, replace=False))
    new_id = np.full(split.n_users, -1, dtype=np.int32)
    new_id[keep] = np.arange(n_users, dtype=np.int32)
    mask = new_id[split.train_users] >= 0
    return replace(split, name=f"{split.name}-users{n_users}", n_users=n_users,
                   train_users=new_id[split.train_users[mask]],
                   train_items=split.train_items[mask],
                   train_timestamps=split.train_timestamps[mask],
                   test_items=split.test_items[keep], test_negatives=split.test_negatives[keep])


def fingerprint(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of every file a dataset is built from (for provenance records)."""
    if name in NCF_DATASETS:
        info = NCF_DATASETS[name]
        specs = (info.train, info.test, info.negatives)
    elif name == "ml-100k":
        specs = (ML100K_RATINGS,)
    else:
        return {"generator": "synthetic_split (seeded, no files)"}
    return {spec.name: _hash_file(locate(spec, data_dir, download=False)[0])[0] for spec in specs}
