"""An interrupted training run leaves no corrupt file and resumes exactly."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_models import planted_tensors, tiny_model

from recsys_utils import training
from recsys_utils.training import (
    CheckpointError,
    TrainConfig,
    fit,
    load_checkpoint,
    predict,
    training_state_path,
)


@pytest.fixture(scope="module")
def planted():
    return planted_tensors()


CONFIG = TrainConfig(n_epochs=8, batch_size=128, learning_rate=0.01, patience=3)


def interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    """Make the ``epoch``-th validation raise KeyboardInterrupt, as Ctrl-C would."""
    calls = {"n": 0}
    validate = training._validate

    def validate_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return validate(*args, **kwargs)

    monkeypatch.setattr(training, "_validate", validate_then_interrupt)


def without_seconds(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds")


@pytest.mark.parametrize("sparse", [False, True], ids=["dense Adam", "lazy Adam"])
def test_resumed_run_ends_like_an_uninterrupted_one(
    planted, tmp_path: Path, monkeypatch, sparse: bool
) -> None:
    train, valid = planted
    config = dataclasses.replace(CONFIG, sparse_embeddings=sparse)
    whole = fit(tiny_model(), train, valid, config, verbose=False)

    checkpoint = tmp_path / "model.pt"
    interrupt_at_epoch(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        fit(
            tiny_model(),
            train,
            valid,
            config,
            checkpoint_path=checkpoint,
            verbose=False,
        )
    monkeypatch.undo()
    assert training_state_path(checkpoint).is_file()
    assert not list(tmp_path.glob("*.part"))  # no half-written file left behind

    model = tiny_model(seed=1)  # other starting weights: all must come from the file
    resumed = fit(
        model, train, valid, config, checkpoint_path=checkpoint, resume=True,
        verbose=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(
        without_seconds(resumed.history), without_seconds(whole.history)
    )
    assert resumed.best_epoch == whole.best_epoch
    np.testing.assert_array_equal(predict(model, valid), predict(whole.model, valid))
    assert not training_state_path(checkpoint).exists()  # removed once training ends
    saved, meta = load_checkpoint(checkpoint)
    assert meta["epoch"] == whole.best_epoch


def test_resume_without_a_state_file_starts_afresh(planted, tmp_path: Path) -> None:
    train, valid = planted
    result = fit(
        tiny_model(), train, valid, CONFIG, checkpoint_path=tmp_path / "m.pt",
        resume=True, verbose=False,
    )  # fmt: skip
    assert result.history["epoch"].iloc[0] == 1


def test_resume_with_other_settings_is_refused(
    planted, tmp_path: Path, monkeypatch
) -> None:
    train, valid = planted
    checkpoint = tmp_path / "model.pt"
    interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fit(
            tiny_model(),
            train,
            valid,
            CONFIG,
            checkpoint_path=checkpoint,
            verbose=False,
        )
    monkeypatch.undo()
    other = TrainConfig(**{**CONFIG.__dict__, "learning_rate": 0.05})
    with pytest.raises(CheckpointError, match=r"other training settings.*delete it"):
        fit(
            tiny_model(), train, valid, other, checkpoint_path=checkpoint,
            resume=True, verbose=False,
        )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"other model settings"):
        fit(
            tiny_model(n_factors=4), train, valid, CONFIG, checkpoint_path=checkpoint,
            resume=True, verbose=False,
        )  # fmt: skip


def test_corrupt_state_file_is_refused_with_the_fix(planted, tmp_path: Path) -> None:
    train, valid = planted
    checkpoint = tmp_path / "model.pt"
    training_state_path(checkpoint).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"cannot resume.*delete it"):
        fit(
            tiny_model(), train, valid, CONFIG, checkpoint_path=checkpoint,
            resume=True, verbose=False,
        )  # fmt: skip


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from recsys_utils import training
    from test_models import tiny_model, tensors
    import numpy as np

    rng = np.random.default_rng(0)
    user, item = rng.integers(0, 30, 2000), rng.integers(0, 40, 2000)
    rating = rng.integers(1, 6, 2000).astype(float)
    train, valid = tensors(user, item, rating), tensors(user[:300], item[:300], rating[:300])
    save = training.save_checkpoint

    def save_then_die(path, model, meta=None):
        out = save(path, model, meta)
        if meta["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup code runs at all
        return out

    training.save_checkpoint = save_then_die
    config = training.TrainConfig(n_epochs=50, batch_size=64, early_stopping=False)
    training.fit(tiny_model(), train, valid, config, checkpoint_path=sys.argv[1],
                 verbose=False)
    """
)


def test_killed_process_leaves_only_whole_files(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(checkpoint)], env=env, cwd=root,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr
    _, meta = load_checkpoint(checkpoint)  # whole, loadable
    assert meta["epoch"] == 2
    state = torch.load(training_state_path(checkpoint), weights_only=True)
    assert state["epoch"] == 1  # the state of the last finished epoch
