"""What the build and the benchmark measured: run times, speed targets, growth.

The appendix reads two files that the build writes, ``results/run_times.json``
(one entry per chapter, from ``scripts/run_chapters.py``) and
``results/benchmark.json`` (from ``benchmarks/speed.py``), and turns them
into tables with the functions here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils import paths


@dataclass(frozen=True)
class Target:
    """A speed target of the project: a measured value against a bound."""

    name: str
    bound: float
    unit: str
    at_most: bool  # True: the value must not exceed the bound

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound


#: The project's speed targets on a two-core CPU.
TARGETS: dict[str, Target] = {
    "epoch": Target("NeuMF epoch on u1, validation included", 0.15, "s", True),
    "per_example": Target("faster per epoch than a per-example loop", 5.0, "x", False),
    "to_svd": Target("NeuMF to its early stop, over an SVD fit", 2.0, "x", True),
    "book": Target("every chapter of the book, published parameters", 600.0, "s", True),
}


def load_run_times(
    path: str | Path | None = None, *, exclude: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The chapters of the latest build in ``run_times.json``, in order of start.

    Columns ``seconds``, ``start`` and ``end`` (seconds since the build
    started), ``params`` and ``build``; indexed by chapter. Entries from older
    builds (a chapter rerun alone later, say) are left out, so the table
    describes one run of ``scripts/run_chapters.py``; so are the chapters in
    ``exclude`` (a page that reads the file leaves out its own earlier runs).
    """
    path = Path(path) if path else paths.results_dir() / "run_times.json"
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no run times yet; run the chapters with scripts/run_chapters.py"
        ) from None
    table = pd.DataFrame.from_dict(entries, orient="index").drop(
        index=list(exclude), errors="ignore"
    )
    if table.empty:
        raise FileNotFoundError(f"{path}: no run times of other chapters yet")
    if "build" not in table:
        raise ValueError(
            f"{path}: written by an older run_chapters.py without start and end "
            "times; run the chapters again"
        )
    latest = table[table["build"] == table["build"].max()]
    return latest.sort_values("start").rename_axis("chapter")


def elapsed_seconds(times: pd.DataFrame) -> float:
    """Wall-clock seconds from the first chapter's start to the last one's end."""
    return float(times["end"].max() - times["start"].min())


def growth_exponent(n: np.ndarray, seconds: np.ndarray) -> float:
    r"""The exponent :math:`a` of a power law :math:`t \propto n^a`, by least squares.

    Fitted on the logarithms; 1 means the cost grows linearly with ``n``.
    """
    n, seconds = np.asarray(n, dtype=float), np.asarray(seconds, dtype=float)
    if len(n) < 2 or np.ptp(n) == 0:
        raise ValueError("growth_exponent needs at least two different sizes")
    slope, _ = np.polyfit(np.log(n), np.log(seconds), 1)
    return float(slope)


def scaling_table(benchmark: dict) -> pd.DataFrame:
    """The synthetic-shape timings as rows: one per (optimiser, shape)."""
    rows = [
        {"optimizer": optimizer, "shape": shape, **row}
        for optimizer, shapes in benchmark["synthetic"].items()
        for shape, row in shapes.items()
    ]
    return pd.DataFrame(rows)


def target_table(benchmark: dict, book_seconds: float | None) -> pd.DataFrame:
    """Each speed target beside its measured value and whether it was met.

    ``book_seconds`` is the wall-clock time of the chapters (None: unknown,
    the row is left out). The NeuMF rows need the benchmark's NeuMF model
    and its references.
    """
    measured = {}
    neumf = benchmark["models"].get("NeuMF")
    if neumf is not None:
        measured["epoch"] = neumf["seconds_per_epoch"]
        measured["per_example"] = benchmark["ratios"]["per_example_over_book_epoch"]
        measured["to_svd"] = benchmark["ratios"]["neumf_training_over_svd_fit"]
    if book_seconds is not None:
        measured["book"] = book_seconds
    rows = []
    for key, value in measured.items():
        target = TARGETS[key]
        bound = f"{'≤' if target.at_most else '≥'} {target.bound:g} {target.unit}"
        rows.append(
            {
                "target": target.name,
                "bound": bound,
                "measured": value,
                "met": "yes" if target.met(value) else "no",
            }
        )
    columns = ["target", "bound", "measured", "met"]
    return pd.DataFrame(rows, columns=columns).set_index("target")


#: How the profiler's operator names group into the parts of a training step.
_OP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm")),
    ("random numbers (noise, dropout, shuffling)",
     ("aten::normal_", "aten::uniform_", "aten::bernoulli_", "aten::randperm")),
    ("embedding lookups and their gradients",
     ("aten::index_select", "aten::index_add_", "aten::scatter_add_",
      "aten::embedding_dense_backward", "aten::index", "aten::embedding")),
    ("optimiser step", ("Optimizer.", "aten::_fused_adam")),
    ("batch normalisation", ("aten::native_batch_norm",)),
)  # fmt: skip


def _group_of(name: str) -> str:
    for group, prefixes in _OP_GROUPS:
        if name.startswith(prefixes):
            return group
    return "everything else (element-wise, copies, dispatch)"


def epoch_profile(train_epochs) -> pd.DataFrame:
    """Where the time of ``train_epochs()`` goes, by part of a training step.

    Runs the callable under :mod:`torch.profiler` and sums each operator's
    own CPU time into the groups of a step (matrix products, random numbers,
    embedding lookups, the optimiser, batch normalisation, the rest). Returns
    the share of each group, largest first; the profiler slows every call
    down a little, so shares are reliable and absolute times are not.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epochs()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        group = _group_of(event.key)
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total
    shares = pd.Series(totals) / sum(totals.values())
    return shares.sort_values(ascending=False).rename("share").to_frame()


def linear_shapes(model) -> list[tuple[int, int]]:
    """(inputs, outputs) of every linear layer of ``model``, in order."""
    from torch import nn

    return [
        (module.in_features, module.out_features)
        for module in model.modules()
        if isinstance(module, nn.Linear)
    ]


def matmul_seconds(
    shapes: list[tuple[int, int]], batch_size: int, n_repeats: int = 200
) -> float:
    """Seconds the matrix products of one training step take on their own.

    For every linear layer the forward product ``(batch, in) @ (in, out)``
    and the two products of its backward pass (the input's and the weight's
    gradient) are timed in a tight loop, at the layer's own shapes and on
    torch's current thread count: the arithmetic of a step with no Python,
    no other operators and warm caches.
    """
    import time

    import torch

    def seconds_per_call(a: torch.Tensor, b: torch.Tensor) -> float:
        a @ b  # warm up
        start = time.perf_counter()
        for _ in range(n_repeats):
            a @ b
        return (time.perf_counter() - start) / n_repeats

    total = 0.0
    for n_in, n_out in shapes:
        x, w = torch.randn(batch_size, n_in), torch.randn(n_out, n_in)
        grad = torch.randn(batch_size, n_out)
        # forward, the input's gradient, the weight's gradient
        for a, b in ((x, w.T), (grad, w), (grad.T, x)):
            total += seconds_per_call(a, b)
    return total
