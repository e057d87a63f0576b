"""Every MovieLens release: tiny folders in each layout, their errors, downloads.

Each fixture writes a handful of users, movies and ratings the way GroupLens
ships the release, with the awkward parts: a Latin-1 title in 1M, a colon
in a ``::`` title, quoted CSV titles holding commas and quotes, "Children"
spelt without its apostrophe, half stars, and a title without a year.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_grouplens

from recsys_utils import __main__ as cli
from recsys_utils import datasets
from recsys_utils.data import (
    DataSourceError,
    IdIndex,
    genre_columns,
    load_movielens_100k,
)
from recsys_utils.datasets import (
    AGE_GROUPS_1M,
    DATASETS,
    GENRES_1M,
    GENRES_LATER,
    OCCUPATIONS_1M,
    load_dataset,
    read_release_folder,
)
from recsys_utils.features import build_features, describe_features
from recsys_utils.models import neumf_builder
from recsys_utils.params import ParameterError, RunParameters, check_dataset
from recsys_utils.training import seeded

CSV_RELEASES = ("ml-20m", "ml-25m", "ml-latest-small")

ML1M_RATINGS = [
    (1, 1, 5, 978300760),
    (1, 3, 3, 978302109),
    (2, 1, 4, 978298413),
    (6, 2, 1, 978299026),
    (2, 3, 2, 978237008),
]
ML1M_USERS = ["1::F::1::10::48067", "2::M::56::16::70072", "6::F::50::9::55117"]
ML1M_MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Café au Lait (1993)::Comedy",
    "3::Seven (Se7en) (1995)::Crime|Thriller",
    "4::A Film Without Year::Drama",
]

ML10M_RATINGS = [
    (1, 122, 5.0, 838985046),
    (1, 185, 4.5, 838983525),
    (5, 122, 0.5, 1176405133),
    (5, 5218, 3.5, 1230000000),
]
ML10M_MOVIES = [
    "122::Boomerang (1992)::Comedy|Romance",
    "185::Net, The (1995)::Action|Crime|Thriller",
    "5218::Ice Age: The Meltdown (2002)::Animation|Children|Comedy|IMAX",
    "8606::Pull My Daisy (1958)::(no genres listed)",
]

CSV_RATINGS = [
    (1, 1, 4.0, 964982703),
    (1, 29, 3.5, 964981247),
    (7, 29, 0.5, 1106635946),
    (7, 131262, 5.0, 1430000000),
    (3, 1, 2.5, 1500000000),
]
CSV_MOVIES = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",'
    "Adventure|Drama|Fantasy|Mystery|Sci-Fi",
    '40,"""Great Performances"" Cats (1998)",Musical',
    "131262,Innocence (2014),Adventure|Fantasy|Horror|IMAX",
    "170,Babylon 5,Sci-Fi",
]


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def dat_ratings(rows) -> list[str]:
    return [
        "::".join(f"{v:g}" if isinstance(v, float) else str(v) for v in r) for r in rows
    ]


def write_ml1m(folder: Path) -> Path:
    write_lines(folder / "ratings.dat", dat_ratings(ML1M_RATINGS))
    write_lines(folder / "users.dat", ML1M_USERS)
    write_lines(folder / "movies.dat", ML1M_MOVIES, encoding="latin-1")
    return folder


def write_ml10m(folder: Path) -> Path:
    write_lines(folder / "ratings.dat", dat_ratings(ML10M_RATINGS))
    write_lines(folder / "movies.dat", ML10M_MOVIES)
    return folder


def write_csv_release(folder: Path) -> Path:
    ratings = [
        ",".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r)
        for r in CSV_RATINGS
    ]
    write_lines(folder / "ratings.csv", ["userId,movieId,rating,timestamp", *ratings])
    write_lines(folder / "movies.csv", CSV_MOVIES)
    return folder


WRITERS = {"ml-1m": write_ml1m, "ml-10m": write_ml10m} | dict.fromkeys(
    CSV_RELEASES, write_csv_release
)


def flagged(items: pd.DataFrame, item_id: int) -> list[str]:
    row = items.set_index("item_id").loc[item_id, genre_columns(items)]
    return row[row.astype(bool)].index.tolist()


def message_of(raised: pytest.ExceptionInfo) -> str:
    message = str(raised.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------
# The three layouts, value by value


def test_ml1m_tables_hold_the_fixture_values(tmp_path: Path) -> None:
    assert (
        "Café".encode("latin-1")
        in write_ml1m(tmp_path / "ml-1m").joinpath("movies.dat").read_bytes()
    )
    data = load_dataset("ml-1m", tmp_path, download=False)
    assert (data.dataset, data.source) == ("ml-1m", "grouplens-folder")

    ratings = data.ratings
    assert list(ratings.itertuples(index=False, name=None)) == ML1M_RATINGS
    assert ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int32",
        "item_id": "int32",
        "rating": "int8",
        "timestamp": "int64",
    }

    users = data.users
    assert list(users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert users["user_id"].tolist() == [1, 2, 6]
    assert users["age"].tolist() == [1, 56, 50]  # the bracket codes, kept
    assert users["age"].map(AGE_GROUPS_1M).tolist() == ["Under 18", "56+", "50-55"]
    assert users["gender"].tolist() == ["F", "M", "F"]
    assert users["occupation"].tolist() == [
        "K-12 student",
        "self-employed",
        "homemaker",
    ]
    assert list(users["occupation"].cat.categories) == list(OCCUPATIONS_1M)
    assert users["zip_code"].tolist() == ["48067", "70072", "55117"]

    items = data.items
    assert list(items.columns) == ["item_id", "title", "release_year", *GENRES_1M]
    assert items["title"].tolist() == [
        "Toy Story (1995)",
        "Café au Lait (1993)",
        "Seven (Se7en) (1995)",
        "A Film Without Year",
    ]
    assert items["release_year"].tolist() == [1995, 1993, 1995, pd.NA]
    assert str(items["release_year"].dtype) == "Int16"
    assert flagged(items, 1) == ["Animation", "Children's", "Comedy"]
    assert flagged(items, 3) == ["Crime", "Thriller"]


def test_ml10m_is_read_from_the_folder_name_inside_its_zip(tmp_path: Path) -> None:
    write_ml10m(tmp_path / "ml-10M100K")
    data = load_dataset("ml-10m", tmp_path, download=False)
    ratings = data.ratings
    assert list(ratings.itertuples(index=False, name=None)) == ML10M_RATINGS
    assert ratings["rating"].dtype == np.float32
    assert ratings["user_id"].dtype == np.int32
    assert list(data.users.columns) == ["user_id"]
    assert data.users["user_id"].tolist() == [1, 5]

    items = data.items
    assert list(items.columns) == ["item_id", "title", "release_year", *GENRES_LATER]
    assert items["title"].tolist() == [
        "Boomerang (1992)",
        "Net, The (1995)",
        "Ice Age: The Meltdown (2002)",
        "Pull My Daisy (1958)",
    ]
    assert items["release_year"].tolist() == [1992, 1995, 2002, 1958]
    # "Children" in the file is the README's "Children's".
    assert flagged(items, 5218) == ["Animation", "Children's", "Comedy", "IMAX"]
    assert flagged(items, 8606) == ["(no genres listed)"]


@pytest.mark.parametrize("name", CSV_RELEASES)
def test_csv_release_tables_hold_the_fixture_values(tmp_path: Path, name: str) -> None:
    write_csv_release(tmp_path / name)
    data = load_dataset(name, tmp_path, download=False)
    assert data.dataset == name
    ratings = data.ratings
    assert list(ratings.itertuples(index=False, name=None)) == CSV_RATINGS
    assert ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int32",
        "item_id": "int32",
        "rating": "float32",
        "timestamp": "int64",
    }
    assert list(data.users.columns) == ["user_id"]
    assert data.users["user_id"].tolist() == [1, 3, 7]
    assert data.users["user_id"].dtype == np.int32

    items = data.items.set_index("item_id")
    assert items["title"].to_dict() == {
        1: "Toy Story (1995)",
        29: "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
        40: '"Great Performances" Cats (1998)',
        170: "Babylon 5",
        131262: "Innocence (2014)",
    }
    assert items["release_year"].tolist() == [1995, 1995, 1998, pd.NA, 2014]
    assert list(data.items.columns[3:]) == list(GENRES_LATER)
    assert flagged(data.items, 1) == [
        "Adventure", "Animation", "Children's", "Comedy", "Fantasy",
    ]  # fmt: skip
    assert flagged(data.items, 131262) == ["Adventure", "Fantasy", "Horror", "IMAX"]


def test_named_folder_is_read_instead_of_the_cache(tmp_path: Path) -> None:
    folder = write_csv_release(tmp_path / "anywhere")
    data = load_dataset("ml-25m", tmp_path / "empty", folder=folder, download=False)
    assert len(data.ratings) == len(CSV_RATINGS)


def test_ml100k_through_load_dataset_is_load_movielens_100k(tmp_path: Path) -> None:
    write_grouplens(tmp_path / "ml-100k")
    via_dataset = load_dataset("ml-100k", tmp_path, download=False)
    direct = load_movielens_100k(tmp_path, download=False)
    assert (via_dataset.source, via_dataset.dataset) == (direct.source, "ml-100k")
    for table in ("ratings", "users", "items"):
        pd.testing.assert_frame_equal(
            getattr(via_dataset, table), getattr(direct, table)
        )


def test_real_ml100k_through_load_dataset(movielens) -> None:
    data = load_dataset("ml-100k", download=False)
    for table in ("ratings", "users", "items"):
        pd.testing.assert_frame_equal(getattr(data, table), getattr(movielens, table))


# --------------------------------------------------------------------------
# Features


def test_features_without_demographics_have_no_user_columns(tmp_path: Path) -> None:
    data = read_release_folder("ml-20m", write_csv_release(tmp_path / "ml-20m"))
    index = IdIndex.from_tables(data.users, data.items)
    features = build_features(data.users, data.items, index)
    assert features.user.shape == (3, 0) and features.user_names == ()
    assert features.item.shape == (5, len(GENRES_LATER) + 2)
    assert features.item_names[-2:] == ("year", "year missing")
    assert np.isfinite(features.item).all()

    options = {
        "n_factors": 4,
        "mlp_layers": [8, 4],
        "fusion_size": 4,
        "feature_size": 3,
    }
    with seeded(0):
        model = neumf_builder(index.n_users, index.n_items, features, **options)(3.5)
    assert set(model.feature_nets) == {"item"}  # movies' features only
    out = model.eval()(torch.tensor([0, 1, 2]), torch.tensor([0, 4, 2]))
    assert out.shape == (3,) and torch.isfinite(out).all()
    assert describe_features(features, "ml-20m") == (
        "ml-20m records nothing about its users, so the model reads only the movie's "
        f"genres and release year ({len(GENRES_LATER) + 2} columns) and knows a user "
        "through the user's embeddings alone."
    )


def test_features_of_ml1m_use_its_own_occupations(tmp_path: Path, recwarn) -> None:
    data = read_release_folder("ml-1m", write_ml1m(tmp_path / "ml-1m"))
    features = build_features(
        data.users, data.items, IdIndex.from_tables(data.users, data.items)
    )
    assert len(recwarn) == 0  # no occupation fell outside the known list
    assert features.user_names == (
        "age",
        "gender=F",
        *(f"occupation={o}" for o in OCCUPATIONS_1M),
        "occupation=unknown",
    )
    column = features.user_names.index("occupation=self-employed")
    assert features.user[:, column].tolist() == [0.0, 1.0, 0.0]
    n_user, n_item = len(features.user_names), len(features.item_names)
    assert describe_features(features, "ml-1m") == (
        "On ml-1m the model reads the user's age, gender and occupation and the "
        f"movie's genres and release year ({n_user} user and {n_item} movie columns)."
    )


# --------------------------------------------------------------------------
# Errors, each in one line naming the file or value


def test_unknown_dataset_name_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError) as raised:
        load_dataset("ml-2m")
    message = message_of(raised)
    assert "'ml-2m'" in message and "'ml-25m'" in message and "'ml-100k'" in message


def test_absent_release_without_download_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as raised:
        load_dataset("ml-10m", tmp_path, download=False)
    message = message_of(raised)
    assert str(tmp_path / "ml-10m") in message and "download=False" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-10m.zip" in message
    assert str(tmp_path / "ml-10M100K" / "ratings.dat") in message


@pytest.mark.parametrize(
    ("name", "absent"), [("ml-1m", "users.dat"), ("ml-25m", "movies.csv")]
)
def test_folder_missing_a_file_names_it(tmp_path: Path, name: str, absent: str) -> None:
    folder = WRITERS[name](tmp_path / name)
    (folder / absent).unlink()
    with pytest.raises(DataSourceError) as raised:
        load_dataset(name, tmp_path, download=False)
    message = message_of(raised)
    assert f"{folder} lacks {absent}" in message
    assert f"https://files.grouplens.org/datasets/movielens/{name}.zip" in message


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        (
            "ml-1m",
            "1::2::6::978300760",
            "ratings.dat line 2: rating 6 is not on the scale 1..5",
        ),
        (
            "ml-1m",
            "1::2::3.5::978300760",
            "ratings.dat line 2: rating 3.5 is not on the scale 1..5",
        ),
        (
            "ml-10m",
            "1::122::0.75::838985046",
            "ratings.dat line 2: rating 0.75 is not on the scale 0.5..5",
        ),
        ("ml-10m", "1::122::0::838985046", "ratings.dat line 2: rating 0 is not"),
        (
            "ml-20m",
            "1,1,5.5,964982703",
            "ratings.csv line 3: rating 5.5 is not on the scale 0.5..5",
        ),
        (
            "ml-1m",
            "1::x::5::978300760",
            "ratings.dat line 2: item_id 'x' is not a whole number",
        ),
        (
            "ml-25m",
            "1,1,four,964982703",
            "ratings.csv line 3: rating 'four' is not a number",
        ),
        ("ml-1m", "1::2::5", "ratings.dat line 2: 3 fields instead of 4"),
        (
            "ml-10m",
            "1::122::5::838985046::9",
            "ratings.dat line 2: 5 fields instead of 4",
        ),
        ("ml-1m", "1:9:2::5::978300760", "ratings.dat line 2: 3 fields instead of 4"),
        (
            "ml-latest-small",
            "1,1,4.0,964982703,9",
            "ratings.csv line 3: 5 fields instead of 4",
        ),
        ("ml-latest-small", "1,1,4.0", "ratings.csv line 3: 3 fields instead of 4"),
        (
            "ml-1m",
            "1::99::5::978300760",
            "ratings.dat line 2: item_id 99 is absent from movies.dat",
        ),
        (
            "ml-1m",
            "77::1::5::978300760",
            "ratings.dat line 2: user_id 77 is absent from users.dat",
        ),
        (
            "ml-25m",
            "1,99,4.0,964982703",
            "ratings.csv line 3: item_id 99 is absent from movies.csv",
        ),
    ],
    ids=[
        "1m-rating-6",
        "1m-half-star",
        "10m-rating-0.75",
        "10m-rating-0",
        "csv-rating-5.5",
        "1m-non-numeric-id",
        "csv-non-numeric-rating",
        "dat-3-fields",
        "dat-5-fields",
        "dat-stray-colon",
        "csv-5-fields",
        "csv-3-fields",
        "1m-unknown-movie",
        "1m-unknown-user",
        "csv-unknown-movie",
    ],
)
def test_bad_rating_line_is_refused_naming_file_and_line(
    tmp_path: Path, name: str, line: str, expected: str
) -> None:
    folder = WRITERS[name](tmp_path / name)
    ratings = folder / ("ratings.csv" if name in CSV_RELEASES else "ratings.dat")
    lines = ratings.read_text().splitlines()
    header = lines[:1] if name in CSV_RELEASES else []
    first = lines[1] if name in CSV_RELEASES else lines[0]
    write_lines(ratings, [*header, first, line])
    with pytest.raises(DataSourceError) as raised:
        load_dataset(name, tmp_path, download=False)
    assert expected in message_of(raised)


def test_blank_lines_do_not_shift_the_line_named(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m")
    write_lines(folder / "ratings.dat", ["1::1::5::1", "", "1::2::9::2"])
    with pytest.raises(DataSourceError, match="ratings.dat line 3: rating 9"):
        load_dataset("ml-1m", tmp_path, download=False)


@pytest.mark.parametrize(
    ("name", "file", "lines", "expected"),
    [
        (
            "ml-1m",
            "movies.dat",
            ["1::Toy Story (1995)"],
            "movies.dat line 1: expected 3 fields",
        ),
        (
            "ml-10m",
            "movies.dat",
            ["122::Boomerang (1992)::Comedy|Anime"],
            "movies.dat line 1: genre 'Anime' is not one of the 20 genres of ml-10m",
        ),
        (
            "ml-1m",
            "movies.dat",
            ["1::Toy Story (1995)::IMAX"],
            "movies.dat line 1: genre 'IMAX' is not one of the 18 genres of ml-1m",
        ),
        (
            "ml-20m",
            "movies.csv",
            ["movieId,title,genres", "1,Toy Story, The (1995),Comedy"],
            "movies.csv line 2: expected 3 fields",
        ),
        (
            "ml-20m",
            "movies.csv",
            ["movieId,name,genres", "1,Toy Story (1995),Comedy"],
            "movies.csv starts with 'movieId,name,genres'",
        ),
        (
            "ml-20m",
            "ratings.csv",
            ["user,movie,rating,timestamp"],
            "ratings.csv starts with 'user,movie,rating,timestamp'",
        ),
        (
            "ml-1m",
            "users.dat",
            ["1::F::19::10::48067"],
            "users.dat: age 19 of user 1 is not one of",
        ),
        (
            "ml-1m",
            "users.dat",
            ["1::F::1::21::48067"],
            "users.dat: occupation 21 of user 1",
        ),
    ],
    ids=[
        "dat-fields",
        "unknown-genre",
        "genre-of-a-later-release",
        "csv-unquoted-comma",
        "movies-header",
        "ratings-header",
        "age-code",
        "occupation-code",
    ],
)
def test_bad_movie_or_user_file_is_refused_naming_it(
    tmp_path: Path, name: str, file: str, lines: list[str], expected: str
) -> None:
    folder = WRITERS[name](tmp_path / name)
    write_lines(folder / file, lines)
    with pytest.raises(DataSourceError) as raised:
        load_dataset(name, tmp_path, download=False)
    assert expected in message_of(raised)


# --------------------------------------------------------------------------
# Downloads, served from file:// URLs


def serve_release(root: Path, name: str, *, md5: str | None = None) -> Path:
    """Write ``<name>.zip`` and ``<name>.zip.md5`` under ``root``, as GroupLens does."""
    release = datasets.RELEASES[name]
    source = WRITERS[name](root / "source" / release.zip_folder)
    archive = root / "server" / f"{name}.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(source.iterdir()):
            handle.writestr(f"{release.zip_folder}/{path.name}", path.read_bytes())
        handle.writestr(f"{release.zip_folder}/README.txt", b"not extracted")
    digest = md5 or hashlib.md5(archive.read_bytes()).hexdigest()
    (root / "server" / f"{name}.zip.md5").write_text(f"MD5 ({name}.zip) = {digest}\n")
    return root / "server"


@pytest.mark.parametrize("name", ["ml-1m", "ml-10m", "ml-latest-small"])
def test_download_is_verified_extracted_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(
        datasets, "GROUPLENS_BASE_URL", serve_release(tmp_path, name).as_uri()
    )
    cache = tmp_path / "cache"
    data = load_dataset(name, cache)
    assert data.source == "grouplens-archive"
    assert sorted(p.name for p in cache.iterdir()) == [name, f"{name}.zip"]
    assert sorted(p.name for p in (cache / name).iterdir()) == sorted(
        datasets.RELEASES[name].files
    )
    again = load_dataset(name, cache, download=False)
    assert again.source == "grouplens-folder"
    pd.testing.assert_frame_equal(again.ratings, data.ratings)


def test_download_with_wrong_md5_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve_release(tmp_path, "ml-1m", md5="0" * 32)
    monkeypatch.setattr(datasets, "GROUPLENS_BASE_URL", server.as_uri())
    cache = tmp_path / "cache"
    with pytest.raises(DataSourceError) as raised:
        load_dataset("ml-1m", cache)
    assert "MD5" in message_of(raised) and "differs" in str(raised.value)
    assert list(cache.iterdir()) == []


def test_unreachable_server_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "GROUPLENS_BASE_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(DataSourceError) as raised:
        load_dataset("ml-25m", tmp_path / "cache")
    message = message_of(raised)
    assert message.startswith(f"could not load ml-25m: {tmp_path / 'cache' / 'ml-25m'}")
    assert "fetching it failed" in message and "unzip it into" in message


# --------------------------------------------------------------------------
# Parameters and the command line


def test_every_dataset_name_is_a_valid_parameter() -> None:
    for name in DATASETS:
        assert check_dataset("dataset", name) == name
        assert RunParameters(dataset=name, split="random").dataset == name
    with pytest.raises(ParameterError, match="parameter dataset='ml-2m'"):
        check_dataset("dataset", "ml-2m")


def test_canonical_folds_are_refused_beyond_ml100k() -> None:
    with pytest.raises(ParameterError) as raised:
        RunParameters(dataset="ml-1m")
    assert "parameter split='u1'" in message_of(raised)
    assert "use 'random' with dataset='ml-1m'" in str(raised.value)


def test_fetch_data_reads_the_dataset_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_ml1m(tmp_path / "ml-1m")
    assert (
        cli.main(["fetch-data", "--dataset", "ml-1m", "--data-dir", str(tmp_path)]) == 0
    )
    assert "ml-1m ready (grouplens-folder): 5 ratings, 3 users, 4 movies" in (
        capsys.readouterr().out
    )


def test_fetch_data_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(datasets, "GROUPLENS_BASE_URL", (tmp_path / "nowhere").as_uri())
    argv = ["fetch-data", "--dataset", "ml-20m", "--data-dir", str(tmp_path)]
    # The status train and recommend give for the same error.
    assert cli.main(argv) == cli.BAD_INPUT == 2
    error = capsys.readouterr().err
    assert error.startswith("error: could not load ml-20m") and error.count("\n") == 1
