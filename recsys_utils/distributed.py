"""Several training processes, on one machine or several, started by torchrun.

``torchrun`` (``python -m torch.distributed.run``) starts one process per
device and tells each its place through environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`init_from_env` joins the process group they describe; without
torchrun it does nothing and everything here answers as for one process, so
the same code runs alone or in a group.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

#: Environment variables torchrun sets in every process it starts.
TORCHRUN_VARIABLES: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """Whether a process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def backend_for(device: str) -> str:
    """``"nccl"`` for CUDA, ``"gloo"`` for the CPU (NCCL moves only GPU tensors)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def local_device(device: str) -> str:
    """The device of this process: ``cuda:LOCAL_RANK`` for CUDA, else ``device``.

    Each process on a machine takes its own GPU; on the CPU they share it.
    """
    if torch.device(device).type != "cuda" or not launched_by_torchrun():
        return device
    return f"cuda:{int(os.environ['LOCAL_RANK'])}"


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group torchrun describes; return whether one was joined.

    Without torchrun's variables, or with a group already initialised, this
    does nothing. The backend follows ``device`` (:func:`backend_for`).
    """
    if is_distributed():
        return True
    if not launched_by_torchrun():
        return False
    if not dist.is_available():
        raise RuntimeError(
            "torch was built without torch.distributed; run without torchrun"
        )
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local_device(device))
    dist.init_process_group(backend=backend_for(device))
    logger.info("rank %d of %d joined (%s)", rank(), world_size(), dist.get_backend())
    return True


def rank() -> int:
    """This process's place in the group, 0 without one."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together, 1 without a group."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process writes files and prints: rank 0, or the only one."""
    return rank() == 0


def _collective_device() -> torch.device:
    # NCCL reduces only tensors on this process's GPU; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """The sum of ``values`` over every process (the values themselves alone)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_reduce_float(value: float) -> float:
    """The sum of one float over every process."""
    return all_reduce_sum([value])[0]


def broadcast_floats(values: list[float], source: int = 0) -> list[float]:
    """Rank ``source``'s ``values`` on every process, so all decide alike."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.broadcast(tensor, src=source)
    return tensor.tolist()


def average_sparse_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Replace each row-sparse gradient by its mean over every process.

    The tables that train with lazy Adam produce sparse gradients. Rather
    than leave them to DistributedDataParallel, whose sparse all-reduce on
    gloo corrupted the heap in about one run in ten on the book's two-process
    test, each process gathers every process's rows with dense collectives
    (row counts, then the padded row indices and values) and adds them up.
    All processes gather the same rows in rank order, so they end with the
    same gradient. Alone, nothing changes.
    """
    if not is_distributed():
        return
    size, device = world_size(), _collective_device()
    for parameter in parameters:
        grad = parameter.grad
        if grad is None or not grad.is_sparse:
            continue
        grad = grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(size)]
        dist.all_gather(counts, torch.tensor([len(rows)], device=device))
        longest = int(max(c.item() for c in counts))
        if longest == 0:
            continue  # no process read a row (gloo refuses empty tensors)
        padded_rows = torch.zeros(longest, dtype=torch.int64, device=device)
        padded_rows[: len(rows)] = rows
        padded_values = values.new_zeros((longest, *values.shape[1:]))
        padded_values[: len(rows)] = values
        all_rows = [torch.empty_like(padded_rows) for _ in range(size)]
        all_values = [torch.empty_like(padded_values) for _ in range(size)]
        dist.all_gather(all_rows, padded_rows)
        dist.all_gather(all_values, padded_values)
        kept = [int(c.item()) for c in counts]
        summed = torch.sparse_coo_tensor(
            torch.cat([r[:n] for r, n in zip(all_rows, kept, strict=True)])[None],
            torch.cat([v[:n] for v, n in zip(all_values, kept, strict=True)]),
            grad.shape,
            check_invariants=True,
        ).coalesce()
        parameter.grad = summed / size


def broadcast_buffers(model: torch.nn.Module, source: int = 0) -> None:
    """Copy rank ``source``'s buffers (batch-norm statistics) into every process."""
    if not is_distributed():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=source)


def all_gather_objects(value: object) -> list[object]:
    """Every process's ``value``, in rank order (``[value]`` alone)."""
    if not is_distributed():
        return [value]
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for alone)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group, if this process joined one."""
    if is_distributed():
        dist.destroy_process_group()
