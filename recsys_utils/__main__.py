"""Command line.

* ``python -m recsys_utils fetch-data [--dataset ml-1m]``: fetch and check a
  MovieLens release;
* ``python -m recsys_utils recommend --checkpoint PATH --user 42 [-k 10]``:
  a known user's best unseen movies from a chapter's checkpoint, or with
  ``--similar-to ITEM_ID`` the movies nearest to one movie.

Exit codes: 0 on success, 1 when fetching data fails, 2 on bad input (an
unknown id, ``k < 1``, a missing or foreign checkpoint, missing data).
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from recsys_utils.data import DataSourceError
from recsys_utils.datasets import DATASETS, load_dataset

#: Exit status for input the command cannot use (argparse uses 2 as well).
BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys_utils")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch-data", help="fetch and check a MovieLens release"
    )
    fetch.add_argument(
        "--dataset",
        choices=DATASETS,
        default="ml-100k",
        help="the release to fetch (default: ml-100k)",
    )
    fetch.add_argument(
        "--data-dir", help="cache folder (default: $RECSYS_DATA_DIR or data/)"
    )

    recommend = commands.add_parser(
        "recommend",
        help="recommend movies from a trained checkpoint",
        description="Print a user's best unseen movies, or the movies nearest "
        "to one movie, from a checkpoint saved by a chapter (MovieLens 100k).",
    )
    recommend.add_argument(
        "--checkpoint", required=True, help="a .pt file saved by a chapter"
    )
    target = recommend.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", type=int, help="a MovieLens user id")
    target.add_argument(
        "--similar-to", type=int, metavar="ITEM_ID", help="a MovieLens movie id"
    )
    recommend.add_argument(
        "-k", type=int, default=10, help="how many movies (default: 10)"
    )
    recommend.add_argument(
        "--data-dir", help="data folder (default: $RECSYS_DATA_DIR or data/)"
    )
    return parser


def _fetch(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except DataSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{args.dataset} ready ({data.source}): {len(data.ratings):,} ratings, "
        f"{len(data.users):,} users, {len(data.items):,} movies"
    )
    return 0


def _show(table: pd.DataFrame) -> str:
    """The table as plain text: numbers right-aligned, text left-aligned."""
    decimals = {"predicted_rating": 2, "similarity": 3}
    columns = []
    for name in table.columns:
        values = table[name]
        if name in decimals:
            cells = [f"{v:.{decimals[name]}f}" for v in values]
        else:
            cells = ["" if pd.isna(v) else str(v) for v in values]
        numeric = pd.api.types.is_numeric_dtype(values)
        width = max(len(name), *(len(c) for c in cells)) if cells else len(name)
        align = str.rjust if numeric else str.ljust
        columns.append([align(name, width), *(align(c, width) for c in cells)])
    return "\n".join("  ".join(row).rstrip() for row in zip(*columns, strict=True))


def _recommend(args: argparse.Namespace) -> int:
    # Imported here so that fetch-data does not pay for importing torch.
    from recsys_utils.recommend import load_recommender
    from recsys_utils.training import CheckpointError

    try:
        if args.k < 1:
            raise ValueError(f"-k {args.k} must be >= 1")
        recommender = load_recommender(args.checkpoint, data_dir=args.data_dir)
        data = recommender.data
        model = type(recommender.model).__name__
        if args.user is not None:
            table = recommender.recommend(args.user, args.k)
            heading = f"Top {len(table)} unseen movies for user {args.user} ({model})"
        else:
            table = recommender.similar_movies(args.similar_to, args.k)
            title = data.items.set_index("item_id").loc[args.similar_to, "title"]
            heading = (
                f"{len(table)} movies most similar to {title} ({model} item "
                "vectors, cosine similarity)"
            )
    except (KeyError, ValueError, CheckpointError, DataSourceError) as error:
        message = error.args[0] if error.args else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return BAD_INPUT
    print(heading)
    print(_show(table))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "fetch-data":
        return _fetch(args)
    return _recommend(args)


if __name__ == "__main__":
    sys.exit(main())
