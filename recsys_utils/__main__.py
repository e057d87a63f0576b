"""Command line: ``python -m recsys_utils fetch-data [--dataset ml-1m]``."""

from __future__ import annotations

import argparse
import logging
import sys

from recsys_utils.data import DataSourceError
from recsys_utils.datasets import DATASETS, load_dataset


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
