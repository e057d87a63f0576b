"""What training does differently on an accelerator: precision and host copies.

On the CPU, the book's published device, nothing here changes a number:
mixed precision is off unless asked for, and tensors are moved exactly as
before. On CUDA, autocast runs the matrix products in bfloat16 (or float16
with a gradient scaler where bfloat16 is missing), and whole splits and the
per-epoch batch order are copied from pinned host memory without blocking.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast on or off, its type, and loss scaling.

    ``dtype`` is None when autocast is off; ``scale_loss`` is True only for
    float16, whose narrow exponent needs the loss scaled before backward.
    """

    device_type: str
    dtype: torch.dtype | None = None
    scale_loss: bool = False

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Run a block under autocast when enabled, and untouched otherwise."""
        if not self.enabled:
            # A disabled autocast context is not entered at all, so a run in
            # full precision executes exactly the operations it always did.
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh gradient scaler for float16, None otherwise."""
        if not self.scale_loss:
            return None
        return torch.amp.GradScaler(self.device_type)


def resolve_precision(mixed_precision: bool | None, device: str) -> Precision:
    """Decide the autocast settings for ``device``.

    Parameters
    ----------
    mixed_precision : bool or None
        ``None`` decides automatically: on for CUDA, off for the CPU and MPS.
        ``True`` forces it on (on the CPU, bfloat16 autocast, useful to test
        the code path); ``False`` forces it off.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

    Returns
    -------
    Precision
        On CUDA, bfloat16 where ``torch.cuda.is_bf16_supported()``, else
        float16 with loss scaling. On the CPU and MPS, bfloat16 without
        scaling when forced on.
    """
    if mixed_precision is not None and not isinstance(mixed_precision, bool):
        raise ValueError(
            f"mixed_precision={mixed_precision!r} is not allowed: use None, True "
            "or False"
        )
    device_type = torch.device(device).type
    if mixed_precision is None:
        mixed_precision = device_type == "cuda"
    if not mixed_precision:
        return Precision(device_type)
    if device_type == "cuda" and not torch.cuda.is_bf16_supported():
        return Precision(device_type, torch.float16, scale_loss=True)
    return Precision(device_type, torch.bfloat16)


def backward_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    before_step: Callable[[], None] | None = None,
) -> None:
    """``loss.backward()`` then ``optimizer.step()``, through ``scaler`` if any.

    ``before_step``, if given, runs between the two (to synchronise gradients).
    """
    if scaler is None:
        loss.backward()
        if before_step is not None:
            before_step()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if before_step is not None:
        before_step()
    # A RatingOptimizer holds one torch optimiser per kind of parameter.
    for part in getattr(optimizer, "optimizers", {"all": optimizer}).values():
        scaler.step(part)  # skipped when a gradient overflowed float16
    scaler.update()


def uses_pinned_copies(device: str | torch.device) -> bool:
    """Whether host tensors bound for ``device`` go through pinned memory."""
    return torch.device(device).type == "cuda"


def _pinned_copy(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    # Page-locked memory lets the copy engine read the tensor while the host
    # carries on; the caching allocator keeps it alive until the copy is done.
    return tensor.pin_memory().to(device, non_blocking=True)


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """Move a host tensor to ``device``: pinned and non-blocking for CUDA.

    On the CPU the tensor itself is returned, so nothing is copied.
    """
    device = torch.device(device)
    if tensor.device == device:
        return tensor
    if uses_pinned_copies(device) and tensor.device.type == "cpu":
        return _pinned_copy(tensor, device)
    return tensor.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device
