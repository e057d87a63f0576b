"""Shared fixtures: tiny MovieLens folders in both on-disk formats, and the real data.

The two tiny folders hold the same five movies, three users and twelve
ratings, written the way GroupLens and RecBole 1.2.1 ship them, including
the awkward lines: a Latin-1 title, movie 267 without title or year, and a
title whose last parentheses hold "(V)" rather than a year.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_utils.data import (
    GENRES,
    OCCUPATIONS,
    MovieLens,
    load_movielens_100k,
)

# user, item, rating, timestamp, in u.data order (deliberately not sorted)
RATINGS = [
    (196, 1, 3, 881250949),
    (5, 543, 5, 875636053),
    (1, 1, 5, 874965758),
    (196, 267, 1, 881251209),
    (5, 48, 4, 875635927),
    (1, 1412, 2, 876893171),
    (196, 48, 4, 881251028),
    (5, 1, 3, 875636174),
    (1, 543, 4, 876893119),
    (196, 1412, 2, 881250990),
    (1, 48, 5, 874965518),
    (5, 267, 1, 875635868),
]

# id, age, gender, occupation, zip code
USERS = [
    (1, 24, "M", "technician", "85711"),
    (5, 33, "F", "other", "15213"),
    (196, 39, "M", "scientist", "T8H1N"),
]

# u.item as GroupLens ships it (Latin-1); 543's title has an e-acute.
GROUPLENS_ITEM_LINES = [
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
    "48|Hoop Dreams (1994)|01-Jan-1994||http://us.imdb.com/M/title-exact?Hoop%20Dreams%20(1994)|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0",
    "267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
    "543|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables,%20Les%20(1995)|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0",
    "1412|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||http://us.imdb.com/M/title-exact?Land%20Before%20Time%20III%3A%20The%20Time%20of%20the%20Great%20Giving%20(1995)%20(V)|0|0|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
]

# ml-100k.item as RecBole 1.2.1 ships it (UTF-8): the last parentheses of a
# title became release_year, 267 is misspelt, genres are space-separated names.
RECBOLE_ITEM_LINES = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "48\tHoop Dreams\t1994\tDocumentary",
    "267\tunkonwn\tunkonwn\tunknown",
    "543\tMisérables, Les\t1995\tDrama Musical",
    "1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's",
]

TITLES = {
    1: "Toy Story (1995)",
    48: "Hoop Dreams (1994)",
    267: "unknown",
    543: "Misérables, Les (1995)",
    1412: "Land Before Time III: The Time of the Great Giving (1995) (V)",
}


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_grouplens(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_lines(folder / "u.data", ["\t".join(map(str, row)) for row in RATINGS])
    write_lines(folder / "u.user", ["|".join(map(str, row)) for row in USERS])
    write_lines(folder / "u.item", GROUPLENS_ITEM_LINES, encoding="latin-1")
    write_lines(folder / "u.genre", [f"{g}|{i}" for i, g in enumerate(GENRES)])
    write_lines(folder / "u.occupation", list(OCCUPATIONS))
    return folder


def write_recbole(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    write_lines(
        folder / "ml-100k.inter",
        [inter, *("\t".join(map(str, row)) for row in RATINGS)],
    )
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"
    write_lines(
        folder / "ml-100k.user", [user, *("\t".join(map(str, r)) for r in USERS)]
    )
    write_lines(folder / "ml-100k.item", RECBOLE_ITEM_LINES)
    return folder


@pytest.fixture
def grouplens_dir(tmp_path: Path) -> Path:
    """A tiny ``ml-100k`` folder in the GroupLens layout."""
    return write_grouplens(tmp_path / "ml-100k")


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    """The same data as ``grouplens_dir`` in RecBole's atomic files."""
    return write_recbole(tmp_path / "ml-100k-recbole")


@pytest.fixture(scope="session")
def movielens() -> MovieLens:
    """The real MovieLens 100k, from the repository's data cache."""
    return load_movielens_100k(download=False)
