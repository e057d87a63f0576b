"""Training under torchrun: the helpers alone, then two real CPU processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_lines
from test_models import planted_tensors, tiny_model

from recsys_utils import __main__ as cli
from recsys_utils import distributed, training
from recsys_utils.data import GENRES, OCCUPATIONS
from recsys_utils.optim import RatingOptimizer
from recsys_utils.training import CheckpointError, TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------
# One process: the helpers answer as for a group of one


def test_without_torchrun_there_is_one_process(monkeypatch) -> None:
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    assert distributed.init_from_env("cpu") is False
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.is_main_process()
    assert distributed.all_reduce_float(2.5) == 2.5
    assert distributed.broadcast_floats([1.0, 2.0]) == [1.0, 2.0]
    assert distributed.all_gather_objects("x") == ["x"]
    distributed.barrier()
    distributed.cleanup()  # nothing to leave, and no error


def test_each_process_takes_its_own_gpu(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device("cuda") == "cuda:1"
    assert distributed.local_device("cpu") == "cpu"
    assert distributed.backend_for("cuda:1") == "nccl"
    assert distributed.backend_for("cpu") == "gloo"


def test_ddp_without_a_process_group_is_refused() -> None:
    train, valid = planted_tensors()
    with pytest.raises(RuntimeError, match=r"needs a process group; start under"):
        fit(
            tiny_model(), train, valid, TrainConfig(n_epochs=1), verbose=False,
            distributed_data_parallel=True,
        )  # fmt: skip


def test_resume_state_of_another_process_count_is_refused(tmp_path: Path) -> None:
    train, valid = planted_tensors()
    model, config = tiny_model(), TrainConfig(n_epochs=3)
    optimizer = RatingOptimizer(model, learning_rate=1e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    checkpoint = tmp_path / "model.pt"
    rng = torch.get_rng_state()
    training._save_progress(
        training.training_state_path(checkpoint), training._Progress(epoch=1),
        model, optimizer, generator, config, len(train), [rng, rng],
    )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"run of 2 processes, this one has 1"):
        fit(
            tiny_model(), train, valid, config, checkpoint_path=checkpoint,
            resume=True, verbose=False,
        )  # fmt: skip


def test_train_command_refuses_a_bad_parameter_in_one_line(capsys) -> None:
    assert cli.main(["train", "--batch-size", "0"]) == cli.BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("error: parameter batch_size=0 (int) is not allowed")
    assert error.count("\n") == 1


# --------------------------------------------------------------------------
# Two processes against one


def _average_in_rank(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: average three sparse gradients, save the results."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=2
    )
    try:
        rows = {0: [[0, 3, 3]], 1: [[3, 4]]}[rank]  # a repeated row; other counts
        values = torch.arange(len(rows[0]) * 2, dtype=torch.float32).view(-1, 2) + rank
        read = torch.nn.Parameter(torch.zeros(5, 2))
        read.grad = torch.sparse_coo_tensor(
            torch.tensor(rows), values, (5, 2), check_invariants=True
        )
        one_side = torch.nn.Parameter(torch.zeros(5, 2))  # only rank 1 read rows
        one_side.grad = torch.sparse_coo_tensor(
            torch.tensor([[1]] if rank else [[]], dtype=torch.int64),
            torch.ones(rank, 2),
            (5, 2),
            check_invariants=True,
        )
        unread = torch.nn.Parameter(torch.zeros(5, 2))  # no process read a row
        unread.grad = torch.sparse_coo_tensor(
            torch.zeros(1, 0, dtype=torch.int64),
            torch.zeros(0, 2),
            (5, 2),
            check_invariants=True,
        )
        distributed.average_sparse_gradients([read, one_side, unread])
        torch.save(
            [p.grad.to_dense() for p in (read, one_side, unread)], f"{out}{rank}.pt"
        )
    finally:
        torch.distributed.destroy_process_group()


def test_sparse_gradients_are_averaged_over_the_processes(tmp_path: Path) -> None:
    out = str(tmp_path / "grads")
    torch.multiprocessing.spawn(
        _average_in_rank, args=(str(tmp_path / "store"), out), nprocs=2
    )
    rank0, rank1 = (torch.load(f"{out}{r}.pt") for r in (0, 1))
    # Rank 0 adds [0, 1] to row 0 and [2, 3] + [4, 5] to row 3; rank 1 adds
    # [1, 2] to row 3 and [3, 4] to row 4. The mean halves the sums.
    expected = torch.tensor([[0, 1], [0, 0], [0, 0], [7, 10], [3, 4]]) / 2
    assert torch.equal(rank0[0], expected) and torch.equal(rank1[0], expected)
    assert torch.equal(rank0[1], rank1[1])
    assert rank0[1][1].tolist() == [0.5, 0.5] and rank0[1].sum() == 1
    assert not rank0[2].any() and not rank1[2].any()


def test_sparse_averaging_alone_changes_nothing() -> None:
    table = torch.nn.Parameter(torch.zeros(3, 2))
    table.grad = torch.sparse_coo_tensor(
        torch.tensor([[2]]), torch.ones(1, 2), (3, 2), check_invariants=True
    )
    before = table.grad
    distributed.average_sparse_gradients([table])
    assert table.grad is before


def write_synthetic_movielens(folder: Path, seed: int = 0) -> Path:
    """A MovieLens 100k folder of 6,000 ratings from a planted rank-2 structure.

    100 users and 100 movies, 60% of the cells rated (sparser, and a model
    this small overfits before it finds the structure); rating = round(3 +
    <u, v> + noise) in 1..5, so a tiny NeuMF learns it in about ten epochs
    and its validation RMSE means something.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items, n_ratings = 100, 100, 6000
    score = rng.normal(size=(n_users, 2)) @ rng.normal(size=(n_items, 2)).T
    cells = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    user, item = np.divmod(cells, n_items)
    noise = rng.normal(scale=0.3, size=n_ratings)
    rating = np.clip(np.rint(3 + score[user, item] + noise), 1, 5).astype(int)
    folder.mkdir(parents=True)
    write_lines(
        folder / "u.data",
        [
            f"{u + 1}\t{i + 1}\t{r}\t{880000000 + k}"
            for k, (u, i, r) in enumerate(zip(user, item, rating, strict=True))
        ],
    )
    occupations = list(OCCUPATIONS)
    write_lines(
        folder / "u.user",
        [
            f"{u}|{20 + u % 40}|{'MF'[u % 2]}|{occupations[u % len(occupations)]}|"
            f"{10000 + u}"
            for u in range(1, n_users + 1)
        ],
    )
    flags = ["0"] * len(GENRES)
    write_lines(
        folder / "u.item",
        [
            f"{i}|Movie {i} (1995)|01-Jan-1995||http://example.org/{i}|"
            + "|".join(flags[:-1] + ["1"])
            for i in range(1, n_items + 1)
        ],
        encoding="latin-1",
    )
    write_lines(folder / "u.genre", [f"{g}|{k}" for k, g in enumerate(GENRES)])
    write_lines(folder / "u.occupation", occupations)
    return folder


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TRAIN_ARGS = [
    "train", "--model", "neumf", "--split", "random", "--seed", "0",
    "--n-epochs", "40", "--patience", "5", "--batch-size", "256",
    "--learning-rate", "0.01", "--weight-decay", "1e-5", "--n-factors", "8",
    "--mlp-layers", "16", "8", "--fusion-size", "8", "--name", "tiny",
]  # fmt: skip

# Each rank writes under its own folder, so that the test can tell which rank
# wrote what, and prints a digest of the weights it trained; the command
# itself is the one a user runs.
PER_RANK_ENTRY = textwrap.dedent(
    """
    import hashlib, os, sys
    os.environ["RECSYS_OUTPUT_DIR"] = os.path.join(sys.argv[1], "rank" + os.environ["RANK"])
    from recsys_utils import experiment
    from recsys_utils.__main__ import main

    fit = experiment.fit

    def fit_and_show(*args, **kwargs):
        result = fit(*args, **kwargs)
        digest = hashlib.sha256()
        for value in result.model.state_dict().values():
            digest.update(value.cpu().numpy().tobytes())
        print(f"weights of rank {os.environ['RANK']}: {digest.hexdigest()}", flush=True)
        return result

    experiment.fit = fit_and_show
    sys.exit(main(sys.argv[2:]))
    """
)


def run_two_processes(
    tmp_path: Path, data_dir: Path, train_args: list[str]
) -> subprocess.CompletedProcess:
    entry = tmp_path / "entry.py"
    entry.write_text(PER_RANK_ENTRY, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        # gloo on the loopback interface only; nothing leaves the machine.
        **({"GLOO_SOCKET_IFNAME": "lo"} if sys.platform == "linux" else {}),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_loopback_port()), str(entry), str(tmp_path / "out"),
        *train_args, "--data-dir", str(data_dir),
    ]  # fmt: skip
    # A session of its own, so that a hung run is killed with all its workers.
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"two-process training hung; its output ended with {stderr[-2000:]}"
        )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize(
    "optimizer", ["off", "on"], ids=["dense Adam", "lazy Adam, sparse all-reduce"]
)
def test_two_processes_train_like_one_and_only_rank_0_writes(
    tmp_path: Path, monkeypatch, capsys, optimizer: str
) -> None:
    data_dir = tmp_path / "data"
    write_synthetic_movielens(data_dir / "ml-100k")
    train_args = [*TRAIN_ARGS, "--sparse-embeddings", optimizer]

    done = run_two_processes(tmp_path, data_dir, train_args)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = tmp_path / "out" / "rank0"
    assert (rank0 / "checkpoints" / "tiny.pt").is_file()
    assert not list((rank0 / "checkpoints").glob("*.resume.pt"))  # removed at the end
    assert not (tmp_path / "out" / "rank1").exists()  # rank 1 wrote nothing at all
    assert done.stdout.count("tiny: test RMSE") == 1  # and printed no summary
    # Same weights and buffers on both ranks: gradients and statistics synced.
    digests = dict(re.findall(r"weights of rank (\d): (\w+)", done.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], done.stdout
    two = json.loads((rank0 / "results" / "tiny.json").read_text(encoding="utf-8"))
    assert two["world_size"] == 2 and two["sparse_embeddings"] == optimizer

    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path / "alone"))
    with torch.random.fork_rng(devices=[]):
        assert cli.main([*train_args, "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "alone/results/tiny.json").read_text("utf-8"))
    assert one["world_size"] == 1

    # Two processes take half as many steps per epoch, each averaging two
    # batches, so the runs are not bit-identical; both stop early near the
    # same optimum. On this fixture the validation RMSEs (about 0.47) differ
    # by about 0.002. 0.05 leaves room for other thread counts and libraries
    # and is small beside the gap to the mean predictor (RMSE about 1.15), so
    # a group that trains badly or not at all fails; the shards themselves
    # are checked in test_devices.
    difference = two["valid_metrics"]["rmse"] - one["valid_metrics"]["rmse"]
    assert abs(difference) < 0.05, (two["valid_metrics"], one["valid_metrics"])
    assert abs(two["metrics"]["rmse"] - one["metrics"]["rmse"]) < 0.05
    print(
        f"validation RMSE: two processes {two['valid_metrics']['rmse']:.4f}, one "
        f"{one['valid_metrics']['rmse']:.4f}; test RMSE: two "
        f"{two['metrics']['rmse']:.4f}, one {one['metrics']['rmse']:.4f}; epochs "
        f"{two['epochs_run']} and {one['epochs_run']}"
    )
