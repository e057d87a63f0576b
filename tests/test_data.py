"""Loading MovieLens 100k: both formats, bad files, sources, fetching, IdIndex."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import RATINGS, TITLES, write_grouplens, write_recbole

from recsys_utils import data
from recsys_utils.data import (
    GENRES,
    RECBOLE_FILES,
    RECBOLE_MEMBER_DIR,
    DataSourceError,
    IdIndex,
    describe,
    fetch_grouplens_archive,
    fetch_recbole_wheel,
    load_movielens_100k,
    read_grouplens_folder,
    read_recbole_folder,
    safe_extract,
)


def write_ratings(folder: Path, lines: list[str]) -> None:
    (folder / "u.data").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def folder_members(folder: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------
# The two formats


def test_grouplens_and_recbole_folders_give_identical_tables(
    grouplens_dir: Path, recbole_dir: Path
) -> None:
    grouplens = read_grouplens_folder(grouplens_dir)
    recbole = read_recbole_folder(recbole_dir)
    pd.testing.assert_frame_equal(grouplens.ratings, recbole.ratings)
    pd.testing.assert_frame_equal(grouplens.users, recbole.users)
    pd.testing.assert_frame_equal(grouplens.items, recbole.items)


def test_tables_hold_the_fixture_values(grouplens_dir: Path) -> None:
    movielens = read_grouplens_folder(grouplens_dir)
    ratings = movielens.ratings
    assert list(ratings.itertuples(index=False, name=None)) == RATINGS
    assert movielens.users["user_id"].tolist() == [1, 5, 196]
    assert movielens.users["zip_code"].tolist() == ["85711", "15213", "T8H1N"]
    items = movielens.items.set_index("item_id")
    assert items["title"].to_dict() == TITLES
    toy_story = items.loc[1, list(GENRES)]
    assert toy_story[toy_story].index.tolist() == ["Animation", "Children's", "Comedy"]
    assert movielens.source == "grouplens-folder"


def test_latin1_title_decodes(grouplens_dir: Path) -> None:
    assert b"Mis\xe9rables" in (grouplens_dir / "u.item").read_bytes()
    items = read_grouplens_folder(grouplens_dir).items.set_index("item_id")
    assert items.loc[543, "title"] == "Misérables, Les (1995)"


def test_utf8_resaved_item_file_gives_same_titles(grouplens_dir: Path) -> None:
    before = read_grouplens_folder(grouplens_dir).items
    path = grouplens_dir / "u.item"
    path.write_text(path.read_bytes().decode("latin-1"), encoding="utf-8")
    after = read_grouplens_folder(grouplens_dir).items
    assert after["title"].tolist() == before["title"].tolist()


@pytest.mark.parametrize("reader", ["grouplens", "recbole"])
def test_movie_267_is_unknown_without_year(
    reader: str, grouplens_dir: Path, recbole_dir: Path
) -> None:
    if reader == "grouplens":
        movielens = read_grouplens_folder(grouplens_dir)
    else:
        movielens = read_recbole_folder(recbole_dir)
    movie = movielens.items.set_index("item_id").loc[267]
    assert movie["title"] == "unknown"
    assert pd.isna(movie["release_year"])
    assert movie["unknown"]


def test_video_title_still_gets_its_year(grouplens_dir: Path) -> None:
    items = read_grouplens_folder(grouplens_dir).items.set_index("item_id")
    assert items.loc[1412, "title"].endswith("(1995) (V)")
    assert items.loc[1412, "release_year"] == 1995
    assert items.loc[48, "release_year"] == 1994


# --------------------------------------------------------------------------
# Bad files


def test_item_line_with_wrong_field_count_names_file_and_line(
    grouplens_dir: Path,
) -> None:
    path = grouplens_dir / "u.item"
    with path.open("ab") as handle:  # the sixth line
        handle.write(b"9|Dead Man Walking (1995)|01-Jan-1995\n")
    with pytest.raises(DataSourceError, match=r"u\.item line 6: expected 24 fields"):
        read_grouplens_folder(grouplens_dir)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\t1\tfive\t874965758", "'rating' holds a non-numeric value"),
        ("1\t1\t4", "line 2: expected 4 fields"),
        ("1\t1\t6\t874965758", "rating 6 .* outside 1..5"),
        ("1\t1\t0\t874965758", "rating 0 .* outside 1..5"),
        ("77\t1\t4\t874965758", "name a user_id absent .*first: 77"),
        ("1\t999\t4\t874965758", "name a item_id absent .*first: 999"),
    ],
    ids=[
        "non-numeric",
        "truncated",
        "rating-6",
        "rating-0",
        "unknown-user",
        "unknown-item",
    ],
)
def test_bad_rating_line_is_refused(
    grouplens_dir: Path, line: str, message: str
) -> None:
    write_ratings(grouplens_dir, ["1\t48\t5\t874965518", line])
    with pytest.raises(DataSourceError, match=message):
        read_grouplens_folder(grouplens_dir)


@pytest.mark.parametrize(
    ("line", "column", "value"),
    [
        ("1\t48\t3.5\t874965518", "rating", "3.5"),
        ("1\t48\t4\tinf", "timestamp", "inf"),
        ("1\t48\t4\tnan", "timestamp", "nan"),
    ],
    ids=["rating-3.5", "timestamp-inf", "timestamp-nan"],
)
def test_value_that_is_not_a_whole_number_is_refused(
    grouplens_dir: Path, line: str, column: str, value: str
) -> None:
    # int(float(...)) would silently truncate 3.5 to 3
    write_ratings(grouplens_dir, [line])
    with pytest.raises(DataSourceError, match=f"'{column}' holds '{value}'"):
        read_grouplens_folder(grouplens_dir)


def test_recbole_scientific_timestamp_is_read(recbole_dir: Path) -> None:
    path = recbole_dir / "ml-100k.inter"
    lines = path.read_text().splitlines()
    lines[1] = "196\t1\t3\t8.8125e8"
    path.write_text("\n".join(lines) + "\n")
    ratings = read_recbole_folder(recbole_dir).ratings
    assert ratings["timestamp"].iloc[0] == 881_250_000


def test_folder_missing_user_file_names_it(grouplens_dir: Path) -> None:
    (grouplens_dir / "u.user").unlink()
    with pytest.raises(DataSourceError, match="lacks u.user"):
        read_grouplens_folder(grouplens_dir)


def test_recbole_unknown_genre_is_refused(recbole_dir: Path) -> None:
    path = recbole_dir / "ml-100k.item"
    path.write_text(path.read_text().replace("Documentary", "Anime"))
    with pytest.raises(DataSourceError, match="unknown genre 'Anime'"):
        read_recbole_folder(recbole_dir)


# --------------------------------------------------------------------------
# Choosing a source


def test_empty_cache_without_download_explains_what_was_tried(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataSourceError) as raised:
        load_movielens_100k(data_dir=tmp_path, download=False)
    message = str(raised.value)
    assert f"folder {tmp_path / 'ml-100k'}: absent" in message
    assert "download=False" in message
    assert "Unzip ml-100k.zip" in message
    # The folder was named explicitly: the variable would not change anything.
    assert "RECSYS_DATA_DIR" not in message


def test_empty_default_cache_points_at_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataSourceError, match="set \\$RECSYS_DATA_DIR"):
        load_movielens_100k(download=False)


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail, rather than reach the network, if a loader tries to fetch."""

    def refuse(*args, **kwargs):
        pytest.fail("the loader tried to download although a cached folder exists")

    monkeypatch.setattr(data, "fetch_grouplens_archive", refuse)
    monkeypatch.setattr(data, "fetch_recbole_wheel", refuse)


@pytest.mark.usefixtures("no_download")
def test_cached_grouplens_folder_is_read_without_download(
    grouplens_dir: Path,
) -> None:
    movielens = load_movielens_100k(data_dir=grouplens_dir.parent)
    assert movielens.source == "grouplens-folder"
    assert len(movielens.ratings) == len(RATINGS)


@pytest.mark.usefixtures("no_download")
def test_cached_recbole_folder_is_read_without_download(recbole_dir: Path) -> None:
    movielens = load_movielens_100k(data_dir=recbole_dir.parent)
    assert movielens.source == "recbole-wheel"
    assert len(movielens.ratings) == len(RATINGS)


def test_named_folder_wins_over_cache(grouplens_dir: Path, tmp_path: Path) -> None:
    movielens = load_movielens_100k(
        data_dir=tmp_path / "empty", folder=grouplens_dir, download=False
    )
    assert len(movielens.items) == len(TITLES)


# --------------------------------------------------------------------------
# Dense indices


def test_id_index_round_trip(grouplens_dir: Path) -> None:
    movielens = read_grouplens_folder(grouplens_dir)
    index = IdIndex.from_tables(movielens.users, movielens.items)
    users = movielens.ratings["user_id"].to_numpy()
    items = movielens.ratings["item_id"].to_numpy()
    np.testing.assert_array_equal(index.user_id(index.user_index(users)), users)
    np.testing.assert_array_equal(index.item_id(index.item_index(items)), items)


def test_id_index_maps_sparse_ids_to_dense_positions() -> None:
    index = IdIndex(np.array([3, 10, 42]), np.array([7]))
    assert index.n_users == 3
    assert index.user_index([42, 3, 10, 3]).tolist() == [2, 0, 1, 0]


@pytest.mark.parametrize("unknown", [11, 43, 0])
def test_id_index_unknown_id_raises_naming_it(unknown: int) -> None:
    index = IdIndex(np.array([3, 10, 42]), np.array([7]))
    with pytest.raises(KeyError, match=rf"unknown user id\(s\) \[{unknown}\]"):
        index.user_index([3, unknown])


# --------------------------------------------------------------------------
# Safe extraction and fetching


@pytest.mark.parametrize(
    "evil", ["../evil.txt", "/abs/evil.txt", "ml-100k/../../evil.txt", "..\\evil.txt"]
)
def test_safe_extract_refuses_escaping_member(tmp_path: Path, evil: str) -> None:
    archive_path = make_zip(
        tmp_path / "evil.zip", {"ml-100k/u.data": b"1\t1\t5\t0\n", evil: b"owned"}
    )
    target = tmp_path / "target"
    target.mkdir()
    with (
        zipfile.ZipFile(archive_path) as archive,
        pytest.raises(DataSourceError, match="outside"),
    ):
        safe_extract(archive, target)
    assert everything_under(target) == []
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/abs/evil.txt").exists()


def test_safe_extract_writes_a_normal_archive(tmp_path: Path) -> None:
    archive_path = make_zip(
        tmp_path / "good.zip", {"ml-100k/u.data": b"ratings", "ml-100k/u.item": b"i"}
    )
    with zipfile.ZipFile(archive_path) as archive:
        safe_extract(archive, tmp_path / "target")
    assert (tmp_path / "target/ml-100k/u.data").read_bytes() == b"ratings"
    assert (tmp_path / "target/ml-100k/u.item").read_bytes() == b"i"


def test_safe_extract_writes_only_the_members_asked_for(tmp_path: Path) -> None:
    archive_path = make_zip(tmp_path / "good.zip", {"a/keep": b"1", "a/skip": b"2"})
    with zipfile.ZipFile(archive_path) as archive:
        safe_extract(archive, tmp_path / "target", ["a/keep"])
    assert everything_under(tmp_path / "target") == ["a", "a/keep"]


@pytest.fixture
def fake_grouplens_zip(tmp_path: Path) -> Path:
    folder = write_grouplens(tmp_path / "source" / "ml-100k")
    return make_zip(tmp_path / "fake.zip", folder_members(folder, "ml-100k"))


@pytest.fixture
def fake_recbole_wheel(tmp_path: Path) -> Path:
    folder = write_recbole(tmp_path / "source" / "ml-100k-recbole")
    members = folder_members(folder, RECBOLE_MEMBER_DIR)
    members["recbole/__init__.py"] = b"import os\n"
    return make_zip(tmp_path / "recbole-1.2.1-py3-none-any.whl", members)


def test_grouplens_archive_with_wrong_md5_leaves_nothing(
    tmp_path: Path, fake_grouplens_zip: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataSourceError, match="MD5 .* differs"):
        fetch_grouplens_archive(cache, url=fake_grouplens_zip.as_uri())
    assert everything_under(cache) == []


def test_grouplens_archive_with_right_md5_is_cached(
    tmp_path: Path, fake_grouplens_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md5 = hashlib.md5(fake_grouplens_zip.read_bytes()).hexdigest()
    monkeypatch.setattr(data, "GROUPLENS_MD5", md5)
    cache = tmp_path / "cache"
    folder = fetch_grouplens_archive(cache, url=fake_grouplens_zip.as_uri())
    assert folder == cache / "ml-100k"
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    assert (cache / "ml-100k.zip").read_bytes() == fake_grouplens_zip.read_bytes()
    assert load_movielens_100k(cache, download=False).source == "grouplens-folder"


def test_recbole_wheel_with_wrong_sha256_leaves_nothing(
    tmp_path: Path, fake_recbole_wheel: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataSourceError, match="SHA-256 .* differs"):
        fetch_recbole_wheel(cache, wheel=fake_recbole_wheel)
    assert everything_under(cache) == []


def test_recbole_wheel_with_right_sha256_yields_only_data_files(
    tmp_path: Path, fake_recbole_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = hashlib.sha256(fake_recbole_wheel.read_bytes()).hexdigest()
    monkeypatch.setattr(data, "RECBOLE_SHA256", sha256)
    cache = tmp_path / "cache"
    folder = fetch_recbole_wheel(cache, wheel=fake_recbole_wheel)
    assert everything_under(cache) == [
        "ml-100k-recbole",
        *(f"ml-100k-recbole/{name}" for name in sorted(RECBOLE_FILES)),
    ]
    assert read_recbole_folder(folder).items["title"].tolist() == list(TITLES.values())


# --------------------------------------------------------------------------
# The real data


def test_real_data_sizes(movielens) -> None:
    assert len(movielens.ratings) == 100_000
    assert len(movielens.users) == 943
    assert len(movielens.items) == 1682
    assert movielens.ratings["user_id"].nunique() == 943
    assert movielens.ratings["item_id"].nunique() == 1682


def test_real_ratings_are_whole_stars(movielens) -> None:
    assert sorted(movielens.ratings["rating"].unique()) == [1, 2, 3, 4, 5]


def test_real_ids_keep_movielens_values(movielens) -> None:
    assert movielens.users["user_id"].tolist() == list(range(1, 944))
    assert movielens.items["item_id"].tolist() == list(range(1, 1683))
    first = movielens.ratings.iloc[0]
    assert (first["user_id"], first["item_id"], first["rating"]) == (196, 242, 3)


def test_real_data_dtypes(movielens) -> None:
    assert movielens.ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int32",
        "item_id": "int32",
        "rating": "int8",
        "timestamp": "int64",
    }
    users, items = movielens.users, movielens.items
    assert users["age"].dtype == np.int16
    for column in ("gender", "occupation", "zip_code"):
        assert pd.api.types.is_string_dtype(users[column])
    assert pd.api.types.is_string_dtype(items["title"])
    assert str(items["release_year"].dtype) == "Int16"
    assert set(items[list(GENRES)].dtypes.astype(str)) == {"bool"}
    assert list(items.columns) == ["item_id", "title", "release_year", *GENRES]


def test_real_data_description(movielens) -> None:
    summary = describe(movielens)
    assert summary["density"] == round(100_000 / (943 * 1682), 4)
    assert summary["min ratings per user"] == 20


def test_partial_download_of_a_killed_run_is_removed_and_replaced(
    tmp_path: Path, fake_grouplens_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md5 = hashlib.md5(fake_grouplens_zip.read_bytes()).hexdigest()
    monkeypatch.setattr(data, "GROUPLENS_MD5", md5)
    cache = tmp_path / "cache"
    # What a killed download leaves: its scratch folder with half an archive.
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stale = cache / f".fetch-{finished.stdout.strip()}-x1y2"
    stale.mkdir(parents=True)
    (stale / "ml-100k.zip").write_bytes(fake_grouplens_zip.read_bytes()[:100])
    folder = fetch_grouplens_archive(cache, url=fake_grouplens_zip.as_uri())
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k", "ml-100k.zip"]
    assert load_movielens_100k(cache, download=False).source == "grouplens-folder"
    assert folder == cache / "ml-100k"


def test_scratch_folder_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / f".fetch-{os.getpid()}-abcd"
    live.mkdir()
    with data._scratch(tmp_path) as scratch:
        assert Path(scratch).name.startswith(f".fetch-{os.getpid()}-")
    assert live.is_dir()
