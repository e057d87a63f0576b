"""Every MovieLens release, read into the same three tables.

:func:`load_dataset` returns a :class:`~recsys_utils.data.MovieLens` for
each name in :data:`DATASETS` [harper2015]_. ``ml-100k`` is served by
:func:`~recsys_utils.data.load_movielens_100k`, unchanged. The other
releases are read from a folder in the GroupLens layout, ``<data_dir>/<name>``
(10M also as ``ml-10M100K``, the folder inside its zip), or downloaded as
``<name>.zip`` from GroupLens when that folder is absent:

===============  ===============  =======================  =============
release          ratings          movies                   users
===============  ===============  =======================  =============
ml-1m            ``ratings.dat``  ``movies.dat``, Latin-1  ``users.dat``
ml-10m           ``ratings.dat``  ``movies.dat``, UTF-8    none
ml-20m           ``ratings.csv``  ``movies.csv``           none
ml-25m           ``ratings.csv``  ``movies.csv``           none
ml-latest-small  ``ratings.csv``  ``movies.csv``           none
===============  ===============  =======================  =============

The ``.dat`` files separate fields with ``::``, the ``.csv`` files are
comma-separated with a header and quoted titles.
1M and 100k rate in whole stars, the later releases in half stars (0.5 to
5). The ratings files, up to 25 million lines, are read by pandas' C parser
straight into int32 ids (20 bytes a rating in memory), with no Python loop
unless a file turns out to be malformed and the bad line must be found; the
small movies and users files are read line by line, so their errors name
the line.

Releases without demographics (10M and later) get a users table with the
single column ``user_id``: every user who rated something, and no column
pretending to hold an age or an occupation. See
:func:`~recsys_utils.features.build_features` for what the hybrid models
make of that.

References
----------
.. [harper2015] F. M. Harper and J. A. Konstan, "The MovieLens Datasets:
   History and Context", ACM TiiS 5(4), 2015.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils import paths
from recsys_utils.data import (
    DataSourceError,
    MovieLens,
    _read_text,
    _split_lines,
    _to_int,
    download_zip,
    load_movielens_100k,
)

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = (
    "ml-100k",
    "ml-1m",
    "ml-10m",
    "ml-20m",
    "ml-25m",
    "ml-latest-small",
)

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"

#: The 18 genres of the 1M README, in its order.
GENRES_1M: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
    "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: The genres of 10M and later: 1M's, then IMAX and the flag of a movie without any.
GENRES_LATER: tuple[str, ...] = (*GENRES_1M, "IMAX", "(no genres listed)")

#: Spellings in the files that differ from the README: 10M and later write
#: "Children", which is read as the README's "Children's" so that the column
#: has one name in every release.
GENRE_ALIASES: dict[str, str] = {"Children": "Children's"}

#: The 21 occupations of the 1M README, indexed by their code in ``users.dat``.
OCCUPATIONS_1M: tuple[str, ...] = (
    "other or not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

#: The age brackets of ``users.dat``: the code in the file, the bracket it stands for.
AGE_GROUPS_1M: dict[int, str] = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}

RATINGS_CSV_HEADER = "userId,movieId,rating,timestamp"
MOVIES_CSV_HEADER = ("movieId", "title", "genres")

_YEAR_AT_END = re.compile(r"\((\d{4})\)\s*$")
_MD5 = re.compile(r"\b[0-9a-fA-F]{32}\b")

# Splitting "u::i::r::t" on ":" yields empty gaps between the four values;
# pandas' C parser takes only one-character separators, and its python engine,
# which takes "::", is about forty times slower.
_DAT_COLUMNS = ("user_id", "gap1", "item_id", "gap2", "rating", "gap3", "timestamp")
_GAPS = ("gap1", "gap2", "gap3")
_RATING_DTYPES = {
    "user_id": np.int32,
    "item_id": np.int32,
    "rating": np.float32,
    "timestamp": np.int64,
}


@dataclass(frozen=True)
class Release:
    """Where one MovieLens release keeps its files and what they hold."""

    name: str
    zip_folder: str  # the folder inside <name>.zip
    ratings_file: str
    movies_file: str
    users_file: str | None
    half_stars: bool
    genres: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        names = (self.ratings_file, self.movies_file, self.users_file)
        return tuple(name for name in names if name is not None)

    @property
    def folders(self) -> tuple[str, ...]:
        """Folder names accepted under the data folder, the cache's own first."""
        return tuple(dict.fromkeys((self.name, self.zip_folder)))

    @property
    def url(self) -> str:
        return f"{GROUPLENS_BASE_URL}/{self.name}.zip"


RELEASES: dict[str, Release] = {
    "ml-1m": Release(
        "ml-1m", "ml-1m", "ratings.dat", "movies.dat", "users.dat", False, GENRES_1M
    ),
    "ml-10m": Release(
        "ml-10m", "ml-10M100K", "ratings.dat", "movies.dat", None, True, GENRES_LATER
    ),
    **{
        name: Release(name, name, "ratings.csv", "movies.csv", None, True, GENRES_LATER)
        for name in ("ml-20m", "ml-25m", "ml-latest-small")
    },
}


# --------------------------------------------------------------------------
# Ratings: the one big file, read by pandas


def _read_ratings(path: Path, half_stars: bool) -> pd.DataFrame:
    """``user_id, item_id, rating, timestamp`` of a ``ratings.dat`` or ``ratings.csv``.

    Ids come out int32, timestamps int64; ratings int8 for whole stars,
    float32 for half stars.
    """
    is_csv = path.suffix == ".csv"
    if is_csv:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline().strip()
        if header != RATINGS_CSV_HEADER:
            raise DataSourceError(
                f"{path} starts with {header[:60]!r}, not the header "
                f"{RATINGS_CSV_HEADER!r}; replace the file with an intact copy"
            )
        options = {"sep": ",", "header": 0, "names": list(_RATING_DTYPES)}
        dtypes = _RATING_DTYPES
    else:
        options = {"sep": ":", "header": None, "names": list(_DAT_COLUMNS)}
        dtypes = {**_RATING_DTYPES, **dict.fromkeys(_GAPS, np.float32)}
    try:
        table = pd.read_csv(path, dtype=dtypes, **options)
    except ValueError as error:  # pandas' ParserError is a ValueError too
        raise _bad_ratings_file(path, is_csv, error) from None
    if not is_csv:
        if table[list(_GAPS)].notna().to_numpy().any():  # "1:2::3::4" and the like
            raise _bad_ratings_file(path, is_csv, None)
        table = table.drop(columns=list(_GAPS))

    ratings = table["rating"]
    allowed = np.arange(1, 11) / 2 if half_stars else np.arange(1, 6)
    bad = ~ratings.isin(allowed)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        scale = "0.5..5 in half stars" if half_stars else "1..5 in whole stars"
        raise DataSourceError(
            f"{path} line {_line_of_row(path, row, is_csv)}: rating "
            f"{ratings.iloc[row]:g} is not on the scale {scale}; replace the file "
            "with an intact copy"
        )
    if not half_stars:
        table["rating"] = ratings.astype(np.int8)
    return table


def _bad_ratings_file(
    path: Path, is_csv: bool, error: ValueError | None
) -> DataSourceError:
    """Name the first malformed line; only runs once pandas has refused the file."""
    sep, first = (",", 2) if is_csv else ("::", 1)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number < first or not line.strip():
                continue
            problem = _bad_rating_line(line.rstrip("\r\n").split(sep))
            if problem:
                return DataSourceError(
                    f"{path} line {number}: {problem} (expected userId{sep}movieId"
                    f"{sep}rating{sep}timestamp); replace the file with an intact copy"
                )
    reason = str(error).strip().splitlines()[0] if error else "unreadable"
    return DataSourceError(f"{path}: {reason}; replace the file with an intact copy")


def _bad_rating_line(fields: list[str]) -> str | None:
    if len(fields) != 4:
        return f"{len(fields)} fields instead of 4"
    for field, name in zip(fields, _RATING_DTYPES, strict=True):
        try:
            value = float(field) if name == "rating" else int(field)
        except ValueError:
            kind = "number" if name == "rating" else "whole number"
            return f"{name} {field!r} is not a {kind}"
        if name in ("user_id", "item_id") and not 0 <= value < 2**31:
            return f"{name} {field!r} is outside 0..2**31-1"
    return None


def _line_of_row(path: Path, row: int, has_header: bool) -> int:
    """The line number of data row ``row`` (0-based), skipping blank lines as pandas does."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if (has_header and number == 1) or not line.strip():
                continue
            seen += 1
            if seen == row:
                return number
    return row + 1 + has_header


# --------------------------------------------------------------------------
# Movies and users: small files, read line by line for precise errors


def _movie_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """``(line, movie id, title, genres)`` of a ``movies.dat`` or ``movies.csv``."""
    text = _read_text(path)  # 1M's movies.dat is Latin-1, the others UTF-8
    if path.suffix == ".csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        if tuple(header) != MOVIES_CSV_HEADER:
            raise DataSourceError(
                f"{path} starts with {','.join(header)[:60]!r}, not the header "
                f"{','.join(MOVIES_CSV_HEADER)!r}; replace the file with an intact copy"
            )
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != 3:
                raise DataSourceError(
                    f"{path} line {reader.line_num}: expected 3 fields "
                    f"(movieId,title,genres), found {len(fields)}; replace the file "
                    "with an intact copy"
                )
            rows.append((reader.line_num, *fields))
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3:
            raise DataSourceError(
                f"{path} line {number}: expected 3 fields separated by '::' "
                f"(MovieID::Title::Genres), found {len(fields)}; replace the file "
                "with an intact copy"
            )
        rows.append((number, *fields))
    return rows


def _read_movies(path: Path, genres: tuple[str, ...], name: str) -> pd.DataFrame:
    """``item_id, title, release_year`` and one bool column per genre of the release."""
    rows = _movie_rows(path)
    position = {genre: k for k, genre in enumerate(genres)}
    item_ids = np.zeros(len(rows), dtype=np.int32)
    flags = np.zeros((len(rows), len(genres)), dtype=bool)
    for k, (number, item_id, _, listed) in enumerate(rows):
        if not item_id.strip().isdigit() or int(item_id) >= 2**31:
            raise DataSourceError(
                f"{path} line {number}: movie id {item_id!r} is not a whole number; "
                "replace the file with an intact copy"
            )
        item_ids[k] = int(item_id)
        for genre in listed.split("|"):
            genre = GENRE_ALIASES.get(genre, genre)
            if genre not in position:
                raise DataSourceError(
                    f"{path} line {number}: genre {genre!r} is not one of the "
                    f"{len(genres)} genres of {name}; replace the file with an intact copy"
                )
            flags[k, position[genre]] = True

    titles = pd.Series([row[2] for row in rows], dtype=str)
    table = pd.DataFrame({"item_id": item_ids, "title": titles})
    year = titles.str.extract(_YEAR_AT_END, expand=False)
    table["release_year"] = pd.to_numeric(year).astype("Int16")
    for k, genre in enumerate(genres):
        table[genre] = flags[:, k]
    duplicated = table["item_id"].duplicated()
    if duplicated.any():
        first = int(table["item_id"][duplicated].iloc[0])
        raise DataSourceError(f"{path}: movie id {first} appears more than once")
    return table.sort_values("item_id", ignore_index=True)


def _read_users_1m(path: Path) -> pd.DataFrame:
    """``user_id, age, gender, occupation, zip_code`` of 1M's ``users.dat``.

    ``age`` keeps the bracket code of the file, the lower bound of the
    bracket except for 1 ("Under 18"), see :data:`AGE_GROUPS_1M`; used as a
    number it keeps the brackets' order. ``occupation`` becomes a
    categorical of the names in :data:`OCCUPATIONS_1M`.
    """
    rows = _split_lines(_read_text(path), "::", 5, path)
    user_id, gender, age, occupation, zip_code = (
        (list(column) for column in zip(*rows, strict=True))
        if rows
        else ([], [], [], [], [])
    )
    ages = _to_int(age, "age", path)
    codes = _to_int(occupation, "occupation", path)
    for column, values, allowed in (
        ("age", ages, set(AGE_GROUPS_1M)),
        ("occupation", codes, set(range(len(OCCUPATIONS_1M)))),
        ("gender", np.array(gender), {"F", "M"}),
    ):
        bad = ~np.isin(values, list(allowed))
        if bad.any():
            raise DataSourceError(
                f"{path}: {column} {values[bad][0].item()!r} of user "
                f"{user_id[np.flatnonzero(bad)[0]]} is not one of the 1M README's codes "
                f"{sorted(allowed)}; replace the file with an intact copy"
            )
    table = pd.DataFrame(
        {
            "user_id": _to_int(user_id, "user_id", path).astype(np.int32),
            "age": ages.astype(np.int16),
            "gender": pd.Series(gender, dtype=str),
            "occupation": pd.Categorical.from_codes(codes, categories=OCCUPATIONS_1M),
            "zip_code": pd.Series(zip_code, dtype=str),
        }
    )
    if table["user_id"].duplicated().any():
        raise DataSourceError(f"{path}: a user id appears more than once")
    return table.sort_values("user_id", ignore_index=True)


def _check_known(
    ratings: pd.DataFrame,
    table: pd.DataFrame,
    column: str,
    ratings_path: Path,
    table_path: Path,
) -> None:
    unknown = ~ratings[column].isin(table[column])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        line = _line_of_row(ratings_path, row, ratings_path.suffix == ".csv")
        raise DataSourceError(
            f"{ratings_path} line {line}: {column} {ratings[column].iloc[row]} is absent "
            f"from {table_path.name} (ratings naming an absent id: {int(unknown.sum())}); "
            "the files come from different releases"
        )


# --------------------------------------------------------------------------
# Folders, downloads, and the one entry point


def read_release_folder(name: str, folder: str | Path) -> MovieLens:
    """Read a GroupLens folder of release ``name`` (not ml-100k; see :func:`load_dataset`).

    Raises
    ------
    DataSourceError
        When a file is missing or malformed, a rating is off the release's
        scale, or a rating names a movie (or, in 1M, a user) that the other
        files lack; the one-line message names the file, the line where it
        can, and the fix.
    """
    release = RELEASES[name]
    folder = Path(folder)
    missing = [f for f in release.files if not (folder / f).is_file()]
    if missing:
        raise DataSourceError(
            f"{folder} lacks {', '.join(missing)}; an {name} folder holds "
            f"{', '.join(release.files)}: unzip {release.url} into {folder.parent}"
        )

    ratings_path = folder / release.ratings_file
    ratings = _read_ratings(ratings_path, release.half_stars)
    movies_path = folder / release.movies_file
    items = _read_movies(movies_path, release.genres, name)
    _check_known(ratings, items, "item_id", ratings_path, movies_path)
    if release.users_file is None:
        # No demographics: the users are whoever rated, and nothing else is claimed.
        users = pd.DataFrame({"user_id": np.sort(ratings["user_id"].unique())})
    else:
        users_path = folder / release.users_file
        users = _read_users_1m(users_path)
        _check_known(ratings, users, "user_id", ratings_path, users_path)
    logger.info("%s read from %s: %d ratings", name, folder, len(ratings))
    return MovieLens(ratings, users, items, "grouplens-folder", name)


def published_md5(url: str, timeout: float = 30.0) -> str:
    """The MD5 in the ``.md5`` file that GroupLens publishes beside a zip."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read(4096).decode("ascii", errors="replace")
    found = _MD5.search(text)
    if found is None:
        raise DataSourceError(f"{url} holds no MD5 checksum")
    return found.group().lower()


def fetch_release(
    name: str, data_dir: Path, timeout: float = 30.0
) -> tuple[Path, MovieLens]:
    """Download ``<name>.zip`` from GroupLens into ``<data_dir>/<name>`` and read it.

    The archive is checked against the MD5 that GroupLens publishes in
    ``<name>.zip.md5`` next to it, fetched at the same time: no checksum is
    pinned here, so this guards against a truncated or corrupt download,
    not against a tampered server. Only the files the reader needs are
    extracted (safely, see :func:`~recsys_utils.data.safe_extract`), and
    nothing is cached unless they read without error.
    """
    release = RELEASES[name]
    md5 = published_md5(f"{release.url}.md5", timeout)
    folder, data = download_zip(
        data_dir,
        name,
        release.url,
        md5,
        release.zip_folder,
        lambda extracted: read_release_folder(name, extracted),
        members=[f"{release.zip_folder}/{f}" for f in release.files],
        timeout=timeout,
    )
    return folder, MovieLens(
        data.ratings, data.users, data.items, "grouplens-archive", name
    )


def _one_line(error: BaseException) -> str:
    # urlopen wraps the reason as "<urlopen error ...>"; the reason alone reads better.
    if isinstance(error, urllib.error.URLError) and not isinstance(
        error, urllib.error.HTTPError
    ):
        error = error.reason if isinstance(error.reason, BaseException) else error
    return " ".join(str(error).split()) or type(error).__name__


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    folder: str | Path | None = None,
    download: bool = True,
) -> MovieLens:
    """Load the MovieLens release ``name``: ratings, users and movies.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`. ``"ml-100k"`` is handed to
        :func:`~recsys_utils.data.load_movielens_100k` with the same arguments.
    data_dir : path, optional
        Cache folder; default ``$RECSYS_DATA_DIR`` or ``data/`` in the
        repository. The release is read from ``<data_dir>/<name>`` (10M also
        from ``<data_dir>/ml-10M100K``).
    folder : path, optional
        A GroupLens folder of the release to read instead of the cache.
    download : bool
        Whether to fetch ``<name>.zip`` from GroupLens when the cache lacks
        the release (see :func:`fetch_release` for the checksum).

    Returns
    -------
    MovieLens
        Ratings in file order with int32 ids; ratings int8 for whole-star
        releases (100k, 1M), float32 for half-star ones. ``users`` holds
        only ``user_id`` for the releases without demographics (10M and
        later). ``items`` has one bool column per genre of the release.

    Raises
    ------
    ValueError
        When ``name`` is not in :data:`DATASETS`.
    DataSourceError
        When the release cannot be found or fetched, or its files are bad;
        the message is one line saying what to do.
    """
    if name not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; use one of {', '.join(map(repr, DATASETS))}"
        )
    if name == "ml-100k":
        return load_movielens_100k(data_dir, folder=folder, download=download)
    if folder is not None:
        return read_release_folder(name, folder)

    release = RELEASES[name]
    data_dir_given = data_dir is not None
    data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
    for candidate in release.folders:
        if (data_dir / candidate).is_dir():
            return read_release_folder(name, data_dir / candidate)

    unzipped = data_dir / release.zip_folder / release.ratings_file
    advice = (
        f"download {release.url} and unzip it into {data_dir} so that {unzipped} exists"
        + (
            ""
            if data_dir_given
            else f", or set ${paths.DATA_DIR_ENV} to a folder holding {name}/"
        )
    )
    if not download:
        raise DataSourceError(
            f"could not load {name}: {data_dir / name} is absent and download=False; {advice}"
        )
    try:
        _, data = fetch_release(name, data_dir)
    except (OSError, DataSourceError, zipfile.BadZipFile) as error:
        raise DataSourceError(
            f"could not load {name}: {data_dir / name} is absent and fetching it failed "
            f"({_one_line(error)}); {advice}"
        ) from error
    return data
