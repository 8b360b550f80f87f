"""Loaders: real files, the documented ML-1M variant, and clear errors on bad input."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from ncf_vs_mf import data
from ncf_vs_mf.data import DataError

ML1M = data.NCF_DATASETS["ml-1m"]


def write_ncf(folder: Path, train: str, test: str, negatives: str) -> Path:
    (folder / "ncf").mkdir(parents=True, exist_ok=True)
    (folder / "ncf" / "toy.train.rating").write_text(train)
    (folder / "ncf" / "toy.test.rating").write_text(test)
    (folder / "ncf" / "toy.test.negative").write_text(negatives)
    return folder / "ncf"


def neg_line(user: int, item: int, negs) -> str:
    return f"({user},{item})\t" + "\t".join(map(str, negs)) + "\n"


def load_toy(folder: Path, n_users=2, n_items=120):
    paths = tuple(folder / "ncf" / f"toy.{s}" for s in ("train.rating", "test.rating", "test.negative"))
    return data.assemble_split("toy", data.read_rating_file(paths[0]), data.read_rating_file(paths[1]),
                               data.read_negative_file(paths[2]), n_users, n_items, paths, {})


GOOD_TRAIN = "0\t1\t5\t10\n0\t2\t4\t11\n1\t3\t3\t12\n"
GOOD_TEST = "0\t4\t5\t20\n1\t5\t5\t21\n"
GOOD_NEG = neg_line(0, 4, range(10, 109)) + neg_line(1, 5, range(20, 119))


def test_toy_split_loads(tmp_path):
    write_ncf(tmp_path, GOOD_TRAIN, GOOD_TEST, GOOD_NEG)
    split = load_toy(tmp_path)
    assert split.n_train == 3 and split.test_items.tolist() == [4, 5]
    assert split.test_negatives.shape == (2, 99) and split.test_negatives.dtype == np.int32
    assert split.candidates()[1, -1] == 5


@pytest.mark.parametrize("bad_train, where", [
    ("0\t1\t5\t10\n0\t2\t4\n1\t3\t3\t12\n", "line 2: expected 4 tab-separated fields, got 3"),
    ("0\t1\t5\t10\n0\tx\t4\t11\n", "line 2: expected integers, got 'x'"),
])
def test_malformed_rating_line_names_file_and_line(tmp_path, bad_train, where):
    write_ncf(tmp_path, bad_train, GOOD_TEST, GOOD_NEG)
    with pytest.raises(DataError, match="toy.train.rating, " + where):
        load_toy(tmp_path)


def test_out_of_range_ids(tmp_path):
    write_ncf(tmp_path, GOOD_TRAIN + "7\t1\t5\t10\n", GOOD_TEST, GOOD_NEG)
    with pytest.raises(DataError, match=r"toy.train.rating, line 4: user id 7 out of range"):
        load_toy(tmp_path)
    write_ncf(tmp_path, GOOD_TRAIN, GOOD_TEST, neg_line(0, 4, [500] + list(range(98))) + neg_line(1, 5, range(99)))
    with pytest.raises(DataError, match=r"toy.test.negative, line 1: item id 500 out of range"):
        load_toy(tmp_path)


def test_user_twice_in_test_file(tmp_path):
    write_ncf(tmp_path, GOOD_TRAIN, "0\t4\t5\t20\n0\t5\t5\t21\n", GOOD_NEG)
    with pytest.raises(DataError, match=r"toy.test.rating, line 2: user 0 appears twice"):
        load_toy(tmp_path)


def test_negatives_line_without_99_items(tmp_path):
    write_ncf(tmp_path, GOOD_TRAIN, GOOD_TEST, neg_line(0, 4, range(10, 109)) + neg_line(1, 5, range(20, 118)))
    with pytest.raises(DataError, match=r"toy.test.negative, line 2: expected 101 tab-separated fields, got 100"):
        load_toy(tmp_path)


def test_negative_file_must_match_test_items(tmp_path):
    write_ncf(tmp_path, GOOD_TRAIN, GOOD_TEST, neg_line(0, 4, range(10, 109)) + neg_line(1, 6, range(20, 119)))
    with pytest.raises(DataError, match=r"toy.test.negative, line 2: test item 6 differs"):
        load_toy(tmp_path)


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(DataError) as info:
        data.load_ncf("ml-1m", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "ncf" / "ml-1m.train.rating") in message
    assert "raw.githubusercontent.com" in message and data.DATA_ENV in message


def test_environment_variable_points_at_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.resolve_data_dir() == (tmp_path, True)
    with pytest.raises(DataError, match=str(tmp_path)):
        data.load_ncf("ml-1m")


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    (tmp_path / "ncf").mkdir()
    bad = tmp_path / "ncf" / "ml-1m.test.rating"
    bad.write_text("0\t1\t5\t0\n")
    with pytest.raises(DataError) as info:
        data.locate(ML1M.test, tmp_path)
    message = str(info.value)
    assert "ml-1m.test.rating" in message and ML1M.test.sha256 in message
    assert data._hash_file(bad)[0] in message


def test_download_that_fails_verification_caches_nothing(tmp_path, monkeypatch):
    import pooch

    def fake_download(self, url, output_file, pooch_obj):
        Path(output_file).write_text("not the NCF file\n")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", fake_download)
    monkeypatch.setattr(data, "default_cache_dir", lambda: tmp_path)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.locate(ML1M.test)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_unpinned_file_is_pinned_on_first_use_then_checked(tmp_path):
    spec = data.NCF_DATASETS["pinterest-20"].test
    (tmp_path / "ncf").mkdir()
    path = tmp_path / "ncf" / spec.name
    path.write_text("0\t1\t1\t0\n")
    assert data._verify(spec, path).startswith("unverified")
    data._pin_file(path).write_text(data._hash_file(path)[0] + "\n")
    assert "matches the checksum pinned" in data._verify(spec, path)
    path.write_text("0\t2\t1\t0\n")
    with pytest.raises(DataError, match="pinned on first use"):
        data._verify(spec, path)


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def ml1m(ncf_data_dir):
    return data.load_ncf("ml-1m", ncf_data_dir)


def test_ml1m_shape_and_known_variant(ml1m):
    assert (ml1m.n_users, ml1m.n_items, ml1m.n_train) == (6040, 3706, 994169)
    assert ml1m.test_negatives.shape == (6040, 99)
    assert ml1m.provenance["ml-1m.test.rating"] == "original"
    assert ml1m.provenance["ml-1m.test.negative"] == "original"
    assert ml1m.provenance["ml-1m.train.rating"].startswith("reconstruction")
    # the documented oddity: 156 users have their test item among their own negatives
    assert int((ml1m.test_negatives == ml1m.test_items[:, None]).any(axis=1).sum()) == 156


def test_tuning_split_uses_training_data_only(ml1m):
    tuning = data.tuning_split(ml1m, seed=0)
    assert tuning.n_train == ml1m.n_train - ml1m.n_users
    assert tuning.test_negatives.shape == (6040, 100)
    train_pairs = set(zip(tuning.train_users.tolist(), tuning.train_items.tolist()))
    assert not any((u, i) in train_pairs for u, i in enumerate(tuning.test_items.tolist()))
    # negatives avoid the user's training items, its tuning item and its final test item
    indptr, items = ml1m.train_csr()
    for u in range(0, 6040, 97):
        negs = set(tuning.test_negatives[u].tolist())
        assert len(negs) == 100
        assert not negs & set(items[indptr[u]:indptr[u + 1]].tolist())
        assert ml1m.test_items[u] not in negs
    # users with known timestamps hold out a latest one
    u = 5
    mask = ml1m.train_users == u
    held = tuning.test_items[u]
    assert ml1m.train_timestamps[mask][ml1m.train_items[mask] == held][0] == ml1m.train_timestamps[mask].max()


def test_ml100k_split_is_seeded_and_well_formed(ncf_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "default_cache_dir", lambda: tmp_path)
    split = data.load_ml100k(ncf_data_dir, seed=0)
    again = data.load_ml100k(ncf_data_dir, seed=0)  # from the cache
    assert (split.n_users, split.n_items, split.n_train) == (943, 1682, 100000 - 943)
    assert np.array_equal(split.test_negatives, again.test_negatives)
    for u in range(0, 943, 50):
        seen = set(split.train_items[split.train_users == u].tolist()) | {split.test_items[u]}
        assert not seen & set(split.test_negatives[u].tolist())
    assert not np.array_equal(data.load_ml100k(ncf_data_dir, seed=1).test_negatives, split.test_negatives)


def test_synthetic_split_is_seeded_and_popularity_skewed():
    a, b = data.synthetic_split(seed=4), data.synthetic_split(seed=4)
    assert np.array_equal(a.train_items, b.train_items)
    counts = np.sort(np.bincount(a.train_items, minlength=a.n_items))[::-1]
    assert counts[: a.n_items // 10].sum() > 2.5 * counts[-a.n_items // 10:].sum()
    assert not (a.test_negatives == a.test_items[:, None]).any()


def test_a_file_cut_in_its_last_number_is_an_error(tmp_path):
    path = tmp_path / "x.train.rating"
    path.write_text("0\t1\t5\t978300760\n1\t2\t5\t9783")  # the last timestamp cut short
    with pytest.raises(DataError, match=r"x\.train\.rating, line 2: truncated"):
        data.read_rating_file(path)


def test_an_id_too_large_names_the_file_and_line(tmp_path):
    path = tmp_path / "x.train.rating"
    path.write_text("0\t1\t5\t978300760\n1\t99999999999999999999\t5\t3\n")
    with pytest.raises(DataError, match=r"x\.train\.rating, line 2: number 9+ is too large"):
        data.read_rating_file(path)


def test_a_file_without_published_checksum_is_pinned_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_VS_MF_CACHE", str(tmp_path / "cache"))
    spec = data.NCF_DATASETS["pinterest-20"].train
    local = tmp_path / "mine" / "ncf"
    local.mkdir(parents=True)
    path = local / spec.name
    path.write_text("0\t1\t1\t0\n")
    status = data._verify(spec, path)
    pins = list((tmp_path / "cache" / "pins").rglob("*.sha256"))
    assert "pinned on first use" in status and len(pins) == 1
    assert "matches the checksum pinned" in data._verify(spec, path)
    path.write_text("0\t2\t1\t0\n")
    with pytest.raises(DataError, match="checksum mismatch.*pinned on first use"):
        data._verify(spec, path)


def test_a_corrupted_split_cache_names_its_file(ncf_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_VS_MF_CACHE", str(tmp_path))
    cache = tmp_path / "splits" / "ml-100k-seed0-neg99.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(DataError, match=r"ml-100k-seed0-neg99\.npz: corrupted split cache"):
        data.load_ml100k(ncf_data_dir, download=False)


def test_without_a_network_the_download_fails_within_seconds_naming_data_dir(tmp_path,
                                                                              monkeypatch):
    import socket
    import time

    try:
        socket.getaddrinfo("raw.githubusercontent.com", 443)
        pytest.skip("a network is available: the no-network failure cannot be checked")
    except OSError:
        pass
    monkeypatch.setenv("NCF_VS_MF_CACHE", str(tmp_path))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    start = time.monotonic()
    with pytest.raises(DataError, match="could not download .*--data-dir"):
        data.load_dataset("ml-1m", None, download=True)
    assert time.monotonic() - start < 30
