"""MovieLens 100k: find the files, read them into three tidy tables.

Sources are tried in a fixed order and the first that works wins:

1. a folder in the GroupLens layout (``u.data``, ``u.item``, ``u.user``,
   ``u.genre``, ``u.occupation``), either ``<data_dir>/ml-100k`` or one the
   caller names;
2. the GroupLens archive ``ml-100k.zip``, checked against its published MD5
   and extracted with every member path confined to the target folder;
3. the copy of ML-100k inside the PyPI wheel ``recbole==1.2.1``, fetched by
   pip, checked against a pinned SHA-256, of which only the three data files
   are read (the package is never imported or installed).

Whatever served, :func:`load_movielens_100k` returns identical tables
[harper2015]_. Ids keep their MovieLens values; the dense 0-based indices
that embeddings need come from :class:`IdIndex`.

References
----------
.. [harper2015] F. M. Harper and J. A. Konstan, "The MovieLens Datasets:
   History and Context", ACM TiiS 5(4), 2015.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from recsys_utils import paths
from recsys_utils._io import file_digest

logger = logging.getLogger(__name__)

#: The 19 genre flags of ``u.item``, in file order (``u.genre``).
GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: The 21 occupations of ``u.occupation``, in file order.
OCCUPATIONS: tuple[str, ...] = (
    "administrator", "artist", "doctor", "educator", "engineer",
    "entertainment", "executive", "healthcare", "homemaker", "lawyer",
    "librarian", "marketing", "none", "other", "programmer", "retired",
    "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip

GROUPLENS_FILES: tuple[str, ...] = (
    "u.data",
    "u.item",
    "u.user",
    "u.genre",
    "u.occupation",
)
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_MD5 = "0e33842e24a9c977be4e0107933c0723"

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_MEMBER_DIR = "recbole/dataset_example/ml-100k"
RECBOLE_FILES: tuple[str, ...] = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")

RATING_VALUES: tuple[int, ...] = (1, 2, 3, 4, 5)

Source = Literal["grouplens-folder", "grouplens-archive", "recbole-wheel"]

_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)")

#: The columns of an items table that are not genre flags.
ITEM_COLUMNS: tuple[str, ...] = ("item_id", "title", "release_year")

T = TypeVar("T")


class DataSourceError(RuntimeError):
    """No source could supply a MovieLens release, or a source supplied bad files."""


@dataclass(frozen=True)
class MovieLens:
    """The three tidy tables of one MovieLens release.

    Attributes
    ----------
    ratings : DataFrame
        ``user_id, item_id, rating, timestamp`` in file order (the canonical
        folds of 100k depend on that order). Ids are int32, timestamps
        int64; ratings are int8 for the whole-star releases (100k, 1M) and
        float32 for the half-star ones.
    users : DataFrame
        ``user_id, age, gender, occupation, zip_code``, sorted by id. A
        release without demographics (10M and later) has the single column
        ``user_id``, holding every user who rated something.
    items : DataFrame
        ``item_id, title, release_year`` and one boolean column per genre of
        the release (:data:`GENRES` for 100k), sorted by id.
        ``release_year`` is nullable; :func:`genre_columns` lists the flags.
    source : str
        Which source served the files.
    dataset : str
        The release, ``"ml-100k"``, ``"ml-1m"``, ...
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    source: Source
    dataset: str = "ml-100k"


def genre_columns(items: pd.DataFrame) -> list[str]:
    """The genre flags of an items table, in column order."""
    return [column for column in items.columns if column not in ITEM_COLUMNS]


# --------------------------------------------------------------------------
# Reading the two on-disk formats


def _read_text(path: Path) -> str:
    """Decode a GroupLens file: UTF-8 when it is valid, else Latin-1 (the original)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _split_lines(
    text: str, sep: str, n_fields: int, path: Path, skip: int = 0
) -> list[list[str]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if number <= skip or not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_fields:
            raise DataSourceError(
                f"{path} line {number}: expected {n_fields} fields separated by "
                f"{sep!r}, found {len(fields)}; replace the file with an intact copy"
            )
        rows.append(fields)
    return rows


def _to_int(values: list[str], column: str, path: Path) -> np.ndarray:
    try:
        # float() first: RecBole writes ratings as "3" but timestamps may be "8.8e8"
        numbers = [float(v) for v in values]
    except ValueError as error:
        raise DataSourceError(
            f"{path}: column {column!r} holds a non-numeric value ({error}); "
            "replace the file with an intact copy"
        ) from None
    bad = [v for v, x in zip(values, numbers, strict=True) if not x.is_integer()]
    if bad:  # int() would truncate 3.5 to 3 and overflow on inf
        raise DataSourceError(
            f"{path}: column {column!r} holds {bad[0]!r}, not a whole number; "
            "replace the file with an intact copy"
        )
    return np.array(numbers, dtype=np.int64)


def _ratings_table(rows: list[list[str]], path: Path) -> pd.DataFrame:
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    table = pd.DataFrame(
        {
            "user_id": _to_int(list(columns[0]), "user_id", path).astype(np.int32),
            "item_id": _to_int(list(columns[1]), "item_id", path).astype(np.int32),
            "rating": _to_int(list(columns[2]), "rating", path).astype(np.int8),
            "timestamp": _to_int(list(columns[3]), "timestamp", path),
        }
    )
    return table


def _users_table(rows: list[list[str]], path: Path) -> pd.DataFrame:
    table = pd.DataFrame(
        rows, columns=["user_id", "age", "gender", "occupation", "zip_code"]
    )
    table["user_id"] = _to_int(table["user_id"].tolist(), "user_id", path).astype(
        np.int32
    )
    table["age"] = _to_int(table["age"].tolist(), "age", path).astype(np.int16)
    for column in ("gender", "occupation", "zip_code"):
        table[column] = table[column].astype(str)
    return table.sort_values("user_id", ignore_index=True)


def _items_table(
    item_ids: list[str], titles: list[str], genre_flags: np.ndarray, path: Path
) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "item_id": _to_int(item_ids, "item_id", path).astype(np.int32),
            "title": pd.Series(titles, dtype=str),
        }
    )
    # The release year is read from the title, the one place both sources carry it.
    years = [_YEAR_IN_TITLE.findall(title) for title in titles]
    table["release_year"] = pd.array(
        [int(y[-1]) if y else None for y in years], dtype="Int16"
    )
    for position, genre in enumerate(GENRES):
        table[genre] = genre_flags[:, position].astype(bool)
    return table.sort_values("item_id", ignore_index=True)


def read_grouplens_folder(folder: str | Path) -> MovieLens:
    """Read a folder in the GroupLens layout (``u.data``, ``u.item``, ...)."""
    folder = Path(folder)
    missing = [name for name in GROUPLENS_FILES if not (folder / name).is_file()]
    if missing:
        raise DataSourceError(
            f"{folder} lacks {', '.join(missing)}; a GroupLens ml-100k folder holds "
            f"{', '.join(GROUPLENS_FILES)}"
        )

    path = folder / "u.data"
    ratings = _ratings_table(_split_lines(_read_text(path), "\t", 4, path), path)

    path = folder / "u.user"
    users = _users_table(_split_lines(_read_text(path), "|", 5, path), path)

    path = folder / "u.item"
    # id | title | release date | video release date | IMDb URL | 19 genre flags
    rows = _split_lines(_read_text(path), "|", 5 + len(GENRES), path)
    flags = np.array([_to_int(row[5:], "genre", path) for row in rows]).reshape(
        -1, len(GENRES)
    )
    items = _items_table(
        [row[0] for row in rows], [row[1] for row in rows], flags, path
    )

    return _checked(MovieLens(ratings, users, items, "grouplens-folder"), folder)


def read_recbole_folder(folder: str | Path) -> MovieLens:
    """Read the three RecBole atomic files of ML-100k (``ml-100k.{inter,user,item}``).

    RecBole split each GroupLens title into a title and the year in its last
    parentheses, misspelt movie 267's "unknown" as "unkonwn", and listed genres
    as space-separated names. This undoes all three, so the tables equal the
    GroupLens ones.
    """
    folder = Path(folder)
    missing = [name for name in RECBOLE_FILES if not (folder / name).is_file()]
    if missing:
        raise DataSourceError(f"{folder} lacks {', '.join(missing)}")

    path = folder / "ml-100k.inter"
    ratings = _ratings_table(
        _split_lines(_read_text(path), "\t", 4, path, skip=1), path
    )

    path = folder / "ml-100k.user"
    users = _users_table(_split_lines(_read_text(path), "\t", 5, path, skip=1), path)

    path = folder / "ml-100k.item"
    rows = _split_lines(_read_text(path), "\t", 4, path, skip=1)
    titles, flags = [], np.zeros((len(rows), len(GENRES)), dtype=np.int64)
    genre_position = {genre: position for position, genre in enumerate(GENRES)}
    for row_number, (_, title, year, genres) in enumerate(rows):
        title, year = title.replace("unkonwn", "unknown"), year.replace("unkonwn", "")
        titles.append(f"{title} ({year})" if year else title)
        for genre in genres.split():
            if genre not in genre_position:
                raise DataSourceError(
                    f"{path}: unknown genre {genre!r} on data line {row_number + 1}"
                )
            flags[row_number, genre_position[genre]] = 1
    items = _items_table([row[0] for row in rows], titles, flags, path)

    return _checked(MovieLens(ratings, users, items, "recbole-wheel"), folder)


def _checked(data: MovieLens, where: Path) -> MovieLens:
    """Refuse tables that a model would silently mis-train on."""
    ratings = data.ratings
    bad = ~ratings["rating"].isin(RATING_VALUES)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataSourceError(
            f"{where}: rating {int(ratings['rating'].iloc[first])} on rating row {first + 1} "
            "is outside 1..5; replace the file with an intact copy"
        )
    for column, table in (("user_id", data.users), ("item_id", data.items)):
        if table[column].duplicated().any():
            raise DataSourceError(
                f"{where}: duplicate {column} values in the {column[:4]}s table"
            )
        unknown = ~ratings[column].isin(table[column])
        if unknown.any():
            raise DataSourceError(
                f"{where}: {int(unknown.sum())} ratings name a {column} absent from the "
                f"{column[:4]}s file (first: {int(ratings[column][unknown].iloc[0])}); "
                "the files come from different releases"
            )
    return data


# --------------------------------------------------------------------------
# Fetching


def safe_extract(
    archive: zipfile.ZipFile, target: Path, members: list[str] | None = None
) -> None:
    """Extract ``members`` (default: all) of a zip archive below ``target``.

    Every member path is checked before anything is written: an absolute
    path or one that climbs out with ``..`` is refused.
    """
    target = Path(target).resolve()
    names = archive.namelist() if members is None else members
    for name in names:
        pure = PurePosixPath(name.replace("\\", "/"))
        destination = (target / pure).resolve()
        if (
            pure.is_absolute()
            or ".." in pure.parts
            or not destination.is_relative_to(target)
        ):
            raise DataSourceError(
                f"archive member {name!r} would be written outside {target}; refused"
            )
    for name in names:
        archive.extract(name, target)


_SCRATCH_PREFIX = ".fetch-"


def _scratch(data_dir: Path) -> tempfile.TemporaryDirectory:
    """A scratch folder for one download, named after this process.

    A run that was killed leaves its scratch folder behind (a partial
    download, a half-extracted archive). Those folders are never read as
    data; the next fetch removes every one whose process is gone.
    """
    for stale in data_dir.glob(f"{_SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(_SCRATCH_PREFIX).split("-")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            logger.info("removing %s, left by an interrupted download", stale)
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.TemporaryDirectory(
        dir=data_dir, prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-"
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def download_zip(
    data_dir: Path,
    name: str,
    url: str,
    md5: str,
    member_folder: str,
    check: Callable[[Path], T],
    *,
    members: list[str] | None = None,
    timeout: float = 30.0,
) -> tuple[Path, T]:
    """Download a GroupLens zip, verify it, extract it into ``<data_dir>/<name>``.

    Everything happens in a scratch folder inside ``data_dir``: the archive
    must match ``md5``, its members (``members``, default all) are extracted
    with :func:`safe_extract`, and ``check`` must accept the extracted
    ``member_folder`` before it is renamed to ``<data_dir>/<name>`` and the
    archive kept as ``<data_dir>/<name>.zip``. A partial download, a wrong
    checksum or a bad file therefore leaves the cache as it was.

    Returns
    -------
    folder : Path
        ``<data_dir>/<name>``.
    checked : object
        What ``check`` returned, so a caller need not read the files twice.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with _scratch(data_dir) as scratch:
        partial = Path(scratch) / f"{name}.zip"
        logger.info("downloading %s", url)
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            open(partial, "wb") as out,
        ):
            shutil.copyfileobj(response, out)
        digest = file_digest(partial, "md5")
        if digest != md5:
            raise DataSourceError(
                f"{url}: MD5 {digest} differs from the published {md5}; not cached"
            )
        with zipfile.ZipFile(partial) as archive:
            absent = sorted(set(members or []) - set(archive.namelist()))
            if absent:
                raise DataSourceError(f"{url} lacks {', '.join(absent)}; not cached")
            safe_extract(archive, Path(scratch), members)
        extracted = Path(scratch) / member_folder
        checked = check(extracted)
        shutil.rmtree(data_dir / name, ignore_errors=True)
        extracted.rename(data_dir / name)
        partial.replace(data_dir / f"{name}.zip")
    return data_dir / name, checked


def fetch_grouplens_archive(
    data_dir: Path, url: str = GROUPLENS_URL, timeout: float = 30.0
) -> Path:
    """Download ``ml-100k.zip``, verify its MD5, extract it; return the ``ml-100k`` folder."""
    folder, _ = download_zip(
        data_dir,
        "ml-100k",
        url,
        GROUPLENS_MD5,
        "ml-100k",
        read_grouplens_folder,
        timeout=timeout,
    )
    return folder


def fetch_recbole_wheel(data_dir: Path, wheel: Path | None = None) -> Path:
    """Take ML-100k out of the ``recbole==1.2.1`` wheel; return the folder of its files.

    ``pip download`` fetches the wheel (no dependencies, nothing installed)
    unless ``wheel`` names a local copy. The wheel must match
    :data:`RECBOLE_SHA256`; only the three data members are extracted.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "ml-100k-recbole"
    with _scratch(data_dir) as scratch:
        scratch = Path(scratch)
        if wheel is None:
            command = [
                sys.executable, "-m", "pip", "download", RECBOLE_REQUIREMENT, "--no-deps",
                "--only-binary=:all:", "--disable-pip-version-check", "--dest", str(scratch),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            wheel = scratch / RECBOLE_WHEEL
            if done.returncode != 0 or not wheel.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [
                    "no output"
                ]
                raise DataSourceError(
                    f"pip download {RECBOLE_REQUIREMENT} failed: {tail[0]}"
                )
        digest = file_digest(wheel, "sha256")
        if digest != RECBOLE_SHA256:
            raise DataSourceError(
                f"{wheel.name}: SHA-256 {digest} differs from the pinned {RECBOLE_SHA256}"
            )
        members = [f"{RECBOLE_MEMBER_DIR}/{name}" for name in RECBOLE_FILES]
        with zipfile.ZipFile(wheel) as archive:
            safe_extract(archive, scratch / "wheel", members)
        extracted = scratch / "wheel" / RECBOLE_MEMBER_DIR
        read_recbole_folder(extracted)
        shutil.rmtree(target, ignore_errors=True)
        extracted.rename(target)
    return target


def load_movielens_100k(
    data_dir: str | Path | None = None,
    *,
    folder: str | Path | None = None,
    download: bool = True,
) -> MovieLens:
    """Load MovieLens 100k from the first source that works.

    Parameters
    ----------
    data_dir : path, optional
        Cache folder; default ``$RECSYS_DATA_DIR`` or ``data/`` in the repository.
    folder : path, optional
        A GroupLens ``ml-100k`` folder to read instead of the cache.
    download : bool
        Whether to try the network sources when no folder is usable.

    Raises
    ------
    DataSourceError
        When no source works; the message lists what was tried.
    """
    data_dir_given = data_dir
    data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
    if folder is not None:
        return read_grouplens_folder(folder)

    tried: list[str] = []
    local = data_dir / "ml-100k"
    if local.is_dir():
        return read_grouplens_folder(local)
    tried.append(f"folder {local}: absent")
    if (data_dir / "ml-100k-recbole").is_dir():
        return read_recbole_folder(data_dir / "ml-100k-recbole")

    if download:
        attempts = (
            (
                "grouplens-archive",
                lambda: read_grouplens_folder(fetch_grouplens_archive(data_dir)),
            ),
            (
                "recbole-wheel",
                lambda: read_recbole_folder(fetch_recbole_wheel(data_dir)),
            ),
        )
        for source, attempt in attempts:
            try:
                data = attempt()
            except (OSError, DataSourceError, zipfile.BadZipFile) as error:
                logger.info("source %s failed: %s", source, error)
                tried.append(f"{source}: {error}")
                continue
            logger.info("MovieLens 100k served by %s", source)
            return MovieLens(data.ratings, data.users, data.items, source)  # type: ignore[arg-type]
    else:
        tried.append("downloads: not allowed (download=False)")

    raise DataSourceError(
        "could not load MovieLens 100k; tried " + "; ".join(tried) + ". "
        f"Unzip ml-100k.zip from grouplens.org so that {local}/u.data exists"
        + (
            f", or set ${paths.DATA_DIR_ENV} to a folder holding ml-100k/ "
            "(or the ml-100k-recbole/ cache this package writes)."
            if data_dir_given is None
            else "."
        )
    )


# --------------------------------------------------------------------------
# Dense indices


@dataclass(frozen=True)
class IdIndex:
    """Map MovieLens ids to dense 0-based positions and back.

    The one place where ids become embedding rows. Positions follow the
    sorted ids of the users and items tables, so every known user and movie
    has a row even if a split leaves it out of training.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray

    @classmethod
    def from_tables(cls, users: pd.DataFrame, items: pd.DataFrame) -> IdIndex:
        return cls(
            np.sort(users["user_id"].to_numpy()), np.sort(items["item_id"].to_numpy())
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @staticmethod
    def _lookup(known: np.ndarray, ids, what: str) -> np.ndarray:
        ids = np.asarray(ids)
        position = np.searchsorted(known, ids).clip(0, len(known) - 1)
        found = known[position] == ids
        if not found.all():
            missing = np.unique(ids[~found])[:5].tolist()
            raise KeyError(
                f"unknown {what} id(s) {missing}; they are not in the {what}s table"
            )
        return position.astype(np.int64)

    def user_index(self, user_ids) -> np.ndarray:
        return self._lookup(self.user_ids, user_ids, "user")

    def item_index(self, item_ids) -> np.ndarray:
        return self._lookup(self.item_ids, item_ids, "item")

    def user_id(self, user_index) -> np.ndarray:
        return self.user_ids[np.asarray(user_index)]

    def item_id(self, item_index) -> np.ndarray:
        return self.item_ids[np.asarray(item_index)]


def describe(data: MovieLens) -> pd.Series:
    """Sizes and sparsity of the rating matrix, for the data chapter."""
    ratings = data.ratings
    n_users, n_items = ratings["user_id"].nunique(), ratings["item_id"].nunique()
    return pd.Series(
        {
            "ratings": len(ratings),
            "users": n_users,
            "movies": n_items,
            "density": round(len(ratings) / (n_users * n_items), 4),
            "mean rating": round(float(ratings["rating"].mean()), 3),
            "min ratings per user": int(ratings.groupby("user_id").size().min()),
            "min ratings per movie": int(ratings.groupby("item_id").size().min()),
        },
        dtype=object,
    )
