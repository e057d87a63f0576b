"""Tiny MovieLens releases in their GroupLens formats, drawn from a low-rank model.

Real 1M and later releases cannot be fetched where the tests run, so the
chapters are run on folders written here instead: a few dozen users and
movies, a rating from most users for most movies, each rating a rounded
``3 + <u, v> + b_i + noise``, so that a model has structure to learn and
every level of the scale occurs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys_utils.datasets import AGE_GROUPS_1M, GENRES_LATER, OCCUPATIONS_1M

N_USERS, N_MOVIES = 48, 36


def _ratings(seed: int, half_stars: bool) -> list[tuple[int, int, float, int]]:
    rng = np.random.default_rng(seed)
    score = (
        3.2
        + rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(N_MOVIES, 2)).T
        + rng.normal(scale=0.5, size=N_MOVIES)[None, :]
        + rng.normal(scale=0.3, size=(N_USERS, N_MOVIES))
    )
    step, low = (0.5, 0.5) if half_stars else (1.0, 1.0)
    level = np.clip(np.round(score / step) * step, low, 5.0)
    rated = rng.random(size=level.shape) < 0.45
    rated[:, :3] = True  # every user rates the first movies, so none is unseen
    rows = []
    for user, movie in zip(*np.nonzero(rated), strict=True):
        timestamp = 964_000_000 + int(rng.integers(10**7))
        rows.append(
            (int(user) + 1, int(movie) + 1, float(level[user, movie]), timestamp)
        )
    return rows  # sorted by user, as GroupLens writes them


def _titles(rng: np.random.Generator) -> list[tuple[int, str, str]]:
    genres = [g for g in GENRES_LATER if g != "(no genres listed)"]
    movies = []
    for movie in range(1, N_MOVIES + 1):
        picked = rng.choice(len(genres), size=int(rng.integers(1, 4)), replace=False)
        listed = "|".join(genres[k] for k in sorted(picked))
        movies.append(
            (movie, f"Movie {movie} ({1950 + int(rng.integers(60))})", listed)
        )
    return movies


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def write_latest_small(folder: Path, seed: int = 0) -> Path:
    """An ``ml-latest-small`` folder: CSV files, half stars, no demographics."""
    rows = _ratings(seed, half_stars=True)
    _write(
        folder / "ratings.csv",
        ["userId,movieId,rating,timestamp"]
        + [f"{u},{i},{r:.1f},{t}" for u, i, r, t in rows],
    )
    movies = _titles(np.random.default_rng(seed + 1))
    # Later releases write "Children" where the 1M README says "Children's".
    _write(
        folder / "movies.csv",
        ["movieId,title,genres"]
        + [f"{i},{title},{g.replace(chr(39) + 's', '')}" for i, title, g in movies],
    )
    return folder


def write_1m(folder: Path, seed: int = 0) -> Path:
    """An ``ml-1m`` folder: ``::``-separated files, whole stars, demographics."""
    rows = _ratings(seed, half_stars=False)
    _write(folder / "ratings.dat", [f"{u}::{i}::{r:g}::{t}" for u, i, r, t in rows])
    rng = np.random.default_rng(seed + 1)
    movies = _titles(rng)
    genres_1m = [
        (i, title, "|".join(g for g in listed.split("|") if g != "IMAX"))
        for i, title, listed in movies
    ]
    _write(
        folder / "movies.dat",
        [f"{i}::{title}::{g or 'Drama'}" for i, title, g in genres_1m],
        encoding="latin-1",
    )
    ages = list(AGE_GROUPS_1M)
    _write(
        folder / "users.dat",
        [
            f"{user}::{'FM'[user % 2]}::{ages[user % len(ages)]}::"
            f"{user % len(OCCUPATIONS_1M)}::{10000 + user}"
            for user in range(1, N_USERS + 1)
        ],
    )
    return folder
