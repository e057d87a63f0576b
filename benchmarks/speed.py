"""How fast the book trains, against the two references a reader would try.

Run with ``make benchmark`` (not part of the test suite). For each model of
the book on the canonical fold u1, trained with the batch size, learning
rate, weight decay and patience its chapter publishes, it prints seconds per
epoch, ratings per second, epochs to the early stop, total training time and
the peak memory of a process that trains only that model. In the same run it
times

* a per-example ``Dataset`` + ``DataLoader`` loop training the same NeuMF
  with the same settings, the way most tutorials write it, and
* scikit-surprise's SVD (its default setting) fitting the same ratings,

and prints the ratios. It then generates synthetic rating sets with the
shape of MovieLens 1M, 10M and 25M (the same numbers of users, movies and
ratings, with a power-law popularity of users and movies) and measures the
time per epoch and the peak memory of NeuMF on each, with dense Adam and with
lazy Adam on the embedding tables, so that the growth of the cost is measured
without downloading anything. Everything goes to
``results/benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch

from recsys_utils import paths
from recsys_utils._io import write_text_atomic
from recsys_utils.data import IdIndex, load_movielens_100k
from recsys_utils.features import build_features
from recsys_utils.models import autoencoder_builder, mf_builder, neumf_builder
from recsys_utils.optim import RatingOptimizer
from recsys_utils.params import published_parameters
from recsys_utils.splits import make_split
from recsys_utils.training import RatingTensors, TrainConfig, fit, seeded

#: Users, movies and ratings of the larger releases (GroupLens READMEs).
SHAPES = {
    "ml-1m": (6_040, 3_706, 1_000_209),
    "ml-10m": (69_878, 10_677, 10_000_054),
    "ml-25m": (162_541, 59_047, 25_000_095),
}
#: The chapter whose published training settings each model trains with.
CHAPTERS = {
    "NeuMF": "03_ncf_regression",
    "hybrid NeuMF": "05_hybrid_ncf_regression",
    "autoencoder": "06_autoencoder",
    "matrix factorisation": "07_benchmarks",
}
SETTINGS = ("batch_size", "learning_rate", "weight_decay", "patience")


def published_settings(model: str) -> dict:
    """Batch size, learning rate, weight decay and patience of ``model``'s chapter.

    Matrix factorisation is a baseline of the benchmarks chapter, which tunes
    its size and weight decay on validation; here it takes that chapter's
    step size, batch size and patience, with the largest size and the
    smallest weight decay of its grid (:func:`mf_factors`).
    """
    published = published_parameters(CHAPTERS[model])
    if model == "matrix factorisation":
        return {
            "batch_size": published["batch_size"],
            "learning_rate": published["mf_learning_rate"],
            "weight_decay": min(published["mf_weight_decays"]),
            "patience": published["patience"],
        }
    return {name: published[name] for name in SETTINGS}


def mf_factors() -> int:
    """The largest matrix factorisation size the benchmarks chapter tries."""
    return max(published_parameters(CHAPTERS["matrix factorisation"])["mf_factors"])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _u1():
    data = load_movielens_100k()
    index = IdIndex.from_tables(data.users, data.items)
    split = make_split(data.ratings, "u1", seed=42)
    return data, index, split


def _builder(model: str, data, index):
    n_users, n_items = index.n_users, index.n_items
    if model == "NeuMF":
        return neumf_builder(n_users, n_items, task="regression", embedding_noise=0.1)
    if model == "hybrid NeuMF":
        features = build_features(data.users, data.items, index)
        return neumf_builder(
            n_users, n_items, features, task="regression", embedding_noise=0.1
        )
    if model == "autoencoder":
        features = build_features(data.users, data.items, index)
        return autoencoder_builder(n_users, n_items, features, task="regression")
    if model == "matrix factorisation":
        return mf_builder(n_users, n_items, n_factors=mf_factors())
    raise ValueError(f"model {model!r} is not benchmarked")


def train_book_model(model: str, n_epochs: int) -> dict:
    """Train one model of the book on u1 to its early stop (run in a child process)."""
    data, index, split = _u1()
    train, valid = (
        RatingTensors.from_frame(f, index) for f in (split.train, split.valid)
    )
    # Seeded like the chapters: torch seeds each new process at random, and an
    # unseeded start moved matrix factorisation's early stop from 24 to 145 epochs.
    with seeded(42):
        built = _builder(model, data, index)(float(split.train["rating"].mean()))
    config = TrainConfig(n_epochs=n_epochs, seed=42, **published_settings(model))
    result = fit(built, train, valid, config, verbose=False)
    # The median epoch, its validation pass (10,000 ratings) included.
    epoch = result.history["seconds"].median()
    return {
        "seconds_per_epoch": epoch,
        "ratings_per_second": len(train) / epoch,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "peak_mb": peak_rss_mb(),
    }


class _PerExample(torch.utils.data.Dataset):
    """The tutorial way: one (user, item, rating) triple per ``__getitem__``."""

    def __init__(self, tensors: RatingTensors) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, i: int):
        return self.tensors.user[i], self.tensors.item[i], self.tensors.rating[i]


def train_per_example(n_epochs: int) -> dict:
    """NeuMF trained by a per-example DataLoader loop (run in a child process)."""
    torch.set_num_threads(1)
    torch.manual_seed(42)
    data, index, split = _u1()
    train = RatingTensors.from_frame(split.train, index)
    model = _builder("NeuMF", data, index)(float(split.train["rating"].mean()))
    settings = published_settings("NeuMF")
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=settings["learning_rate"],
        weight_decay=settings["weight_decay"],
    )
    loader = torch.utils.data.DataLoader(
        _PerExample(train), batch_size=settings["batch_size"], shuffle=True
    )
    times = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        model.train()
        for user, item, rating in loader:
            loss = torch.nn.functional.mse_loss(model(user, item), rating)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return {"seconds_per_epoch": float(np.median(times)), "peak_mb": peak_rss_mb()}


def fit_surprise_svd() -> dict:
    """scikit-surprise SVD, default setting, on u1's training ratings."""
    from recsys_utils.baselines import build_algo, to_trainset

    _, _, split = _u1()
    trainset = to_trainset(pd.concat([split.train, split.valid]))
    start = time.perf_counter()
    build_algo("SVD", {}, seed=42).fit(trainset)
    return {"fit_seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb()}


def synthetic_ratings(
    n_users: int, n_items: int, n_ratings: int, seed: int = 0
) -> RatingTensors:
    """Ratings with MovieLens' shape: power-law activity of users and movies.

    Users and movies are drawn with probabilities proportional to
    ``rank ** -0.8`` (a few very active users and very popular movies, a long
    tail); repeated pairs are kept, since only the cost is measured.
    """
    rng = np.random.default_rng(seed)

    def skewed(n: int, size: int) -> np.ndarray:
        weights = np.arange(1, n + 1, dtype=np.float64) ** -0.8
        return rng.choice(n, size=size, p=weights / weights.sum()).astype(np.int32)

    return RatingTensors(
        torch.from_numpy(skewed(n_users, n_ratings)),
        torch.from_numpy(skewed(n_items, n_ratings)),
        torch.from_numpy(rng.integers(1, 6, n_ratings).astype(np.float32)),
    )


def time_synthetic(name: str, n_batches: int, sparse: bool) -> dict:
    """Seconds per epoch of NeuMF on a synthetic set shaped like ``name``.

    Times ``n_batches`` training steps of the book's optimiser, dense Adam or
    lazy Adam on the embedding tables (``sparse``), and scales to a full
    epoch, since a dense 25M epoch takes the better part of an hour; the peak
    memory includes the whole set's tensors.
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_users, n_items, n_ratings = SHAPES[name]
    ratings = synthetic_ratings(n_users, n_items, n_ratings)
    model = neumf_builder(n_users, n_items, task="regression", embedding_noise=0.1)(3.5)
    settings = published_settings("NeuMF")
    optimizer = RatingOptimizer(
        model,
        learning_rate=settings["learning_rate"],
        weight_decay=settings["weight_decay"],
        sparse=sparse,
    )
    batch = settings["batch_size"]
    order = torch.randperm(n_ratings)
    model.train()
    step_times = []
    for step in range(n_batches + 2):
        rows = order[step * batch : (step + 1) * batch]
        start = time.perf_counter()
        out = model(ratings.user[rows].long(), ratings.item[rows].long())
        loss = torch.nn.functional.mse_loss(out, ratings.rating[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
    per_step = float(np.median(step_times[2:]))  # the first steps warm up
    n_steps = -(-n_ratings // batch)
    return {
        "users": n_users,
        "movies": n_items,
        "ratings": n_ratings,
        "optimizer": "lazy Adam" if sparse else "dense Adam",
        "seconds_per_epoch": per_step * n_steps,
        "ratings_per_second": batch / per_step,
        "tensor_bytes_per_rating": sum(
            t.element_size() for t in (ratings.user, ratings.item, ratings.rating)
        ),
        "peak_mb": peak_rss_mb(),
    }


def in_child(function, *args):
    """Run ``function`` in a fresh process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="most epochs per model")
    parser.add_argument(
        "--reference-epochs", type=int, default=2, help="epochs of the per-example loop"
    )
    parser.add_argument(
        "--batches", type=int, default=30, help="steps timed per synthetic set"
    )
    parser.add_argument(
        "--models",
        nargs="*",
        default=["NeuMF", "hybrid NeuMF", "autoencoder", "matrix factorisation"],
    )
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    args = parser.parse_args(argv)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread"
    )
    models = {}
    for model in args.models:
        models[model] = in_child(train_book_model, model, args.epochs)
        row = models[model]
        print(
            f"{model:22s} {row['seconds_per_epoch']:.3f} s/epoch  "
            f"{row['ratings_per_second']:>9,.0f} ratings/s  {row['epochs_run']:3d} epochs  "
            f"{row['train_seconds']:6.1f} s  peak {row['peak_mb']:.0f} MiB",
            flush=True,
        )
    per_example = in_child(train_per_example, args.reference_epochs)
    svd = in_child(fit_surprise_svd)
    print(
        f"per-example DataLoader loop: {per_example['seconds_per_epoch']:.3f} s/epoch"
    )
    print(f"scikit-surprise SVD fit:     {svd['fit_seconds']:.2f} s")
    ratios = {}
    if "NeuMF" in models:
        neumf = models["NeuMF"]
        ratios = {
            "per_example_over_book_epoch": per_example["seconds_per_epoch"]
            / neumf["seconds_per_epoch"],
            "neumf_training_over_svd_fit": neumf["train_seconds"] / svd["fit_seconds"],
        }
        print(
            f"the book's epoch is {ratios['per_example_over_book_epoch']:.1f}x faster "
            "than the per-example loop; NeuMF trains to its early stop in "
            f"{ratios['neumf_training_over_svd_fit']:.1f}x the time SVD takes to fit"
        )
    scaling = {"dense Adam": {}, "lazy Adam": {}}
    for name in args.shapes:
        for sparse in (False, True):
            row = in_child(time_synthetic, name, args.batches, sparse)
            scaling[row["optimizer"]][name] = row
            print(
                f"synthetic {name:7s} {row['ratings']:>11,} ratings  "
                f"{row['optimizer']:10s} {row['seconds_per_epoch']:8.1f} s/epoch  "
                f"peak {row['peak_mb']:.0f} MiB",
                flush=True,
            )
    document = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "threads": 1,
        "settings": {model: published_settings(model) for model in args.models},
        "models": models,
        "per_example_loop": per_example,
        "surprise_svd": svd,
        "ratios": ratios,
        "synthetic": scaling,
    }
    path = write_text_atomic(
        paths.results_dir() / "benchmark.json", json.dumps(document, indent=2) + "\n"
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
