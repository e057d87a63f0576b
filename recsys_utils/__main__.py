"""Command line.

* ``python -m recsys_utils fetch-data [--dataset ml-1m]``: fetch and check a
  MovieLens release;
* ``python -m recsys_utils recommend --checkpoint PATH --user 42 [-k 10]``:
  a known user's best unseen movies from a chapter's checkpoint, or with
  ``--similar-to ITEM_ID`` the movies nearest to one movie;
* ``python -m recsys_utils train --model neumf --split random``: train one
  model with the book's loop and write its results and checkpoint; under
  ``torchrun`` the processes train it together (DistributedDataParallel).

Exit codes: 0 on success, 1 when fetching data fails, 2 on bad input (an
unknown id, ``k < 1``, a missing or foreign checkpoint, missing data, a
bad training parameter).
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from recsys_utils.data import DataSourceError
from recsys_utils.datasets import DATASETS, load_dataset
from recsys_utils.params import DEVICES
from recsys_utils.splits import SPLITS

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
    _add_train(commands)
    return parser


#: Models the train command builds, by the name it takes.
TRAIN_MODELS: tuple[str, ...] = ("neumf", "mf", "autoencoder")


def _add_train(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train one model with the book's loop",
        description="Train one model on one split with early stopping, score it on "
        "the test part, and write results/<name>.json and checkpoints/<name>.pt "
        "under $RECSYS_OUTPUT_DIR (default: the repository). Under torchrun every "
        "process trains a shard of each epoch and rank 0 alone writes.",
    )
    train.add_argument("--model", choices=TRAIN_MODELS, default="neumf")
    train.add_argument(
        "--task", choices=("regression", "classification"), default="regression"
    )
    train.add_argument("--dataset", choices=DATASETS, default="ml-100k")
    train.add_argument("--split", choices=SPLITS, default="random")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--n-epochs", type=int, default=60)
    train.add_argument("--batch-size", type=int, default=1024)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=3e-4)
    train.add_argument("--patience", type=int, default=5)
    train.add_argument("--valid-fraction", type=float, default=0.1)
    train.add_argument("--n-factors", type=int, default=32)
    train.add_argument(
        "--mlp-layers", type=int, nargs="+", default=[64, 32, 16], metavar="WIDTH"
    )
    train.add_argument("--fusion-size", type=int, default=16)
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--embedding-noise", type=float, default=0.05)
    train.add_argument("--device", choices=DEVICES, default="cpu")
    train.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="autocast: auto is on for CUDA only (default: auto)",
    )
    train.add_argument(
        "--sparse-embeddings",
        choices=("auto", "on", "off"),
        default="auto",
        help="lazy Adam on the embedding tables: auto is on for tables too large "
        "for a dense update at every step (default: auto)",
    )
    train.add_argument("--n-threads", type=int, default=1)
    train.add_argument(
        "--name",
        help="stem of the files written (default: train_<model>_<dataset>_<split>)",
    )
    train.add_argument(
        "--data-dir", help="data folder (default: $RECSYS_DATA_DIR or data/)"
    )


def _fetch(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except DataSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
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
    from recsys_utils.recommend import load_recommender, model_label
    from recsys_utils.training import CheckpointError

    try:
        if args.k < 1:
            raise ValueError(f"-k {args.k} must be >= 1")
        recommender = load_recommender(args.checkpoint, data_dir=args.data_dir)
        data = recommender.data
        model = model_label(recommender.model)
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


def _model_builder(args: argparse.Namespace, params, n_users: int, n_items: int):
    """The builder and the options of the model ``args.model`` names."""
    from recsys_utils.models import autoencoder_builder, mf_builder, neumf_builder

    options = {"n_factors": params.n_factors, "task": args.task}
    if args.model == "mf":
        return mf_builder(n_users, n_items, **options), options
    options |= {
        "dropout": params.dropout,
        "embedding_noise": params.embedding_noise,
        "batch_norm": params.batch_norm,
    }
    if args.model == "autoencoder":
        return autoencoder_builder(n_users, n_items, **options), options
    options |= {"mlp_layers": tuple(args.mlp_layers), "fusion_size": args.fusion_size}
    return neumf_builder(n_users, n_items, **options), options


def _train(args: argparse.Namespace) -> int:
    # Imported here so that fetch-data does not pay for importing torch.
    from dataclasses import replace

    from recsys_utils import distributed, paths
    from recsys_utils.data import IdIndex
    from recsys_utils.experiment import run_experiment, save_results, train_config
    from recsys_utils.params import RunParameters
    from recsys_utils.training import CheckpointError

    name = args.name or f"train_{args.model}_{args.dataset}_{args.split}"
    switch = {"auto": None, "on": True, "off": False}
    mixed_precision = switch[args.mixed_precision]
    try:
        params = RunParameters(
            seed=args.seed,
            dataset=args.dataset,
            split=args.split,
            n_epochs=args.n_epochs,
            batch_size=args.batch_size,
            n_factors=args.n_factors,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            dropout=args.dropout,
            embedding_noise=args.embedding_noise,
            patience=args.patience,
            valid_fraction=args.valid_fraction,
            device=args.device,
            n_threads=args.n_threads,
        )
        config = train_config(params)  # resolves "auto" to a device present
        distributed.init_from_env(config.device)
        # Kept, because the process group is gone by the time the summary prints.
        main_process, world_size = (
            distributed.is_main_process(),
            distributed.world_size(),
        )
        config = replace(
            config,
            device=distributed.local_device(config.device),
            mixed_precision=mixed_precision,
            sparse_embeddings=switch[args.sparse_embeddings],
        )
        data = load_dataset(args.dataset, args.data_dir)
        index = IdIndex.from_tables(data.users, data.items)
        build, options = _model_builder(args, params, index.n_users, index.n_items)
        checkpoint = paths.checkpoints_dir() / f"{name}.pt"
        outcome = run_experiment(
            data,
            params,
            build,
            checkpoint_path=checkpoint,
            verbose=main_process,
            config=config,
        )
        if main_process:
            results = save_results(
                name,
                params,
                {args.split: outcome},
                primary=args.split,
                model_options=options,
                extra={
                    "world_size": world_size,
                    "train_device": config.device,
                    "mixed_precision": args.mixed_precision,
                    "sparse_embeddings": args.sparse_embeddings,
                },
            )
    except (ValueError, KeyError, CheckpointError, DataSourceError) as error:
        message = error.args[0] if error.args else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return BAD_INPUT
    finally:
        distributed.cleanup()
    if main_process:
        report = outcome.report
        print(
            f"{name}: test RMSE {report.rmse:.4f}  MAE {report.mae:.4f}  "
            f"({outcome.fit.epochs_run} epochs, best {outcome.fit.best_epoch}, "
            f"{world_size} processes); wrote {results} and {checkpoint}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "fetch-data":
        return _fetch(args)
    if args.command == "train":
        return _train(args)
    return _recommend(args)


if __name__ == "__main__":
    sys.exit(main())
