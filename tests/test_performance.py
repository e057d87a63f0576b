"""Run times, speed targets and growth, as the appendix reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys_utils import plots
from recsys_utils.performance import (
    TARGETS,
    elapsed_seconds,
    epoch_profile,
    growth_exponent,
    linear_shapes,
    load_run_times,
    matmul_seconds,
    scaling_table,
    target_table,
)


def _entry(build: str, start: float, end: float) -> dict:
    return {"seconds": end - start, "params": "published", "build": build,
            "start": start, "end": end}  # fmt: skip


@pytest.fixture
def run_times(tmp_path: Path) -> Path:
    path = tmp_path / "run_times.json"
    entries = {
        "01_data": _entry("2026-12-04T10:00:00Z", 0.0, 20.0),
        "03_regression": _entry("2026-12-04T10:00:00Z", 20.0, 140.0),
        "02_classification": _entry("2026-12-04T10:00:00Z", 20.0, 200.0),
        # A chapter rerun on its own later: not part of the build above.
        "05_other": _entry("2026-12-04T11:30:00Z", 0.0, 30.0),
    }
    path.write_text(json.dumps(entries))
    return path


def test_run_times_keep_the_latest_build_in_order_of_start(run_times: Path) -> None:
    times = load_run_times(run_times)
    assert list(times.index) == ["05_other"]  # the newest build wins
    times = load_run_times(run_times, exclude=("05_other",))
    assert elapsed_seconds(times) == 200.0
    entries = json.loads(run_times.read_text())
    del entries["05_other"]
    run_times.write_text(json.dumps(entries))
    times = load_run_times(run_times)
    assert list(times.index)[0] == "01_data"
    assert set(times.index) == {"01_data", "02_classification", "03_regression"}
    # Two chapters side by side: the build took 200 s, not the 320 s they add up to.
    assert elapsed_seconds(times) == 200.0
    assert times["seconds"].sum() == 320.0


def test_run_times_refuse_a_missing_or_old_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the chapters with scripts"):
        load_run_times(tmp_path / "absent.json")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"01_data": {"seconds": 3.0, "params": "small"}}))
    with pytest.raises(ValueError, match="without start and end times"):
        load_run_times(old)


def test_growth_exponent_recovers_a_power_law() -> None:
    n = np.array([1e6, 1e7, 2.5e7])
    assert growth_exponent(n, 3e-6 * n) == pytest.approx(1.0)
    assert growth_exponent(n, 1e-12 * n**1.7) == pytest.approx(1.7)
    with pytest.raises(ValueError, match="at least two different sizes"):
        growth_exponent(np.array([5.0, 5.0]), np.array([1.0, 2.0]))


BENCHMARK = {
    "models": {"NeuMF": {"seconds_per_epoch": 0.12, "train_seconds": 9.0}},
    "ratios": {"per_example_over_book_epoch": 4.0, "neumf_training_over_svd_fit": 9.0},
    "synthetic": {
        "dense Adam": {"ml-1m": {"ratings": 10, "seconds_per_epoch": 1.0, "peak_mb": 5},
                       "ml-10m": {"ratings": 100, "seconds_per_epoch": 30.0, "peak_mb": 9}},
        "lazy Adam": {"ml-1m": {"ratings": 10, "seconds_per_epoch": 2.0, "peak_mb": 5},
                      "ml-10m": {"ratings": 100, "seconds_per_epoch": 20.0, "peak_mb": 8}},
    },
}  # fmt: skip


def test_target_table_says_which_targets_were_met() -> None:
    table = target_table(BENCHMARK, book_seconds=700.0)
    met = dict(zip(table["bound"], table["met"], strict=True))
    assert met == {"≤ 0.15 s": "yes", "≥ 5 x": "no", "≤ 2 x": "no", "≤ 600 s": "no"}
    assert table.loc[TARGETS["epoch"].name, "measured"] == 0.12
    assert len(target_table(BENCHMARK, book_seconds=None)) == 3
    without_neumf = {**BENCHMARK, "models": {}, "ratios": {}}
    assert target_table(without_neumf, book_seconds=None).empty


def test_scaling_table_and_its_chart() -> None:
    scaling = scaling_table(BENCHMARK)
    assert len(scaling) == 4
    lazy = scaling[scaling["optimizer"] == "lazy Adam"]
    assert growth_exponent(lazy["ratings"], lazy["seconds_per_epoch"]) == pytest.approx(
        1.0
    )
    fig = plots.scaling_chart(scaling)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]


def test_run_time_chart_draws_a_bar_per_chapter(run_times: Path) -> None:
    times = load_run_times(run_times)
    fig = plots.run_time_chart(times)
    assert len(fig.axes[0].patches) == len(times)


def test_epoch_profile_splits_a_training_step_into_parts() -> None:
    import torch

    from recsys_utils.models import neumf_builder
    from recsys_utils.training import RatingTensors, TrainConfig, fit, seeded

    with seeded(0):
        model = neumf_builder(20, 30, task="regression", n_factors=4,
                              mlp_layers=(8, 4), fusion_size=4)(3.0)  # fmt: skip
        data = RatingTensors(torch.randint(0, 20, (600,)),
                             torch.randint(0, 30, (600,)), torch.rand(600) * 4 + 1)  # fmt: skip
    config = TrainConfig(n_epochs=2, batch_size=64, early_stopping=False)
    shares = epoch_profile(lambda: fit(model, data, data, config, verbose=False))
    assert shares["share"].sum() == pytest.approx(1.0)
    for part in ("matrix products", "optimiser step", "batch normalisation"):
        assert shares.loc[part, "share"] > 0
    assert shares.index[0] == shares["share"].idxmax()
    # Three linear layers in the MLP and fusion, and the output layer.
    assert linear_shapes(model) == [(8, 4), (8, 4), (4, 1)]


def test_matmul_seconds_times_every_layer() -> None:
    seconds = matmul_seconds([(64, 32), (32, 16)], batch_size=256, n_repeats=5)
    assert 0 < seconds < 1.0
