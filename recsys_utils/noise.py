"""Random numbers for dropout and embedding noise, drawn in bulk and reused.

Drawing random numbers is the largest single cost of a NeuMF training step on
the CPU. A step of 1,024 ratings needs about 200,000 of them (Gaussian noise
on four embeddings, a dropout mask after every hidden layer), and torch's CPU
generator spends 3 to 3.5 ns on each: a third of an epoch on MovieLens 100k,
more than all the matrix products together (``make benchmark``).

The modules of :mod:`recsys_utils.models` therefore read their numbers from
pools: a block of standard normal numbers, and for each dropout rate ``p`` a
block of dropout masks (0 with probability ``p``, else :math:`1 / (1 - p)`).
Each call takes a contiguous window at a random offset, the shared noise
table of evolution strategies :cite:`salimans2017`. Every number a step reads
has exactly the intended distribution, and the numbers of one window are
independent of each other; windows of different steps can overlap, so a
number comes back, but at another position of another batch. A pool is
redrawn once its numbers have been read :data:`REUSE` times over on average.

:func:`redraw` reseeds every pool from torch's global generator, and
:func:`recsys_utils.training.fit` calls it at the start of every epoch. Each
pool then draws from a generator of its own, seeded from that one number and
the pool's name, so the numbers a step reads depend only on torch's seed and
on what ran since the epoch began: a seeded run, or one resumed from a saved
generator state, sees the same numbers every time. The pools are drawn on
the CPU, whatever the device, and copied to the device of the tensor they
serve.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

#: Numbers in each pool (4 MiB of float32 each).
POOL_SIZE = 1 << 20
#: Times, on average, that each pooled number is read before the pool is redrawn.
REUSE = 8

Draw = Callable[[int, torch.Generator], torch.Tensor]


class RandomPool:
    """A block of random numbers handed out as windows at random offsets.

    ``draw(n, generator)`` makes ``n`` fresh numbers. :meth:`like` returns
    numbers shaped like its argument. A request for more than a quarter of
    the pool gets fresh numbers of its own: its windows would have too few
    places to start from, and the same numbers would land on the same
    positions step after step.
    """

    def __init__(self, draw: Draw, size: int = POOL_SIZE, reuse: int = REUSE) -> None:
        if size < 1 or reuse < 1:
            raise ValueError(f"pool size={size}, reuse={reuse}: both must be >= 1")
        self.draw, self.size, self.reuse = draw, size, reuse
        self._generator = torch.Generator(device="cpu")
        self._offsets = random.Random()
        self._numbers: torch.Tensor | None = None
        self._on_device: dict[torch.device, torch.Tensor] = {}
        self._read = 0

    def reseed(self, seed: int) -> None:
        """Start a new stream of numbers and offsets; nothing is drawn until needed."""
        self._generator.manual_seed(seed)
        # Offsets come from Python's generator: cheaper per call than a torch draw.
        self._offsets.seed(seed)
        self._numbers = None

    def like(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled numbers with the shape, dtype and device of ``x``."""
        n = x.numel()
        if 4 * n > self.size:
            numbers = self.draw(n, self._generator).view(x.shape)
            return numbers.to(device=x.device, dtype=x.dtype)
        if self._numbers is None or self._read >= self.reuse * self.size:
            self._numbers = self.draw(self.size, self._generator)
            self._on_device = {self._numbers.device: self._numbers}
            self._read = 0
        self._read += n
        numbers = self._on_device.get(x.device)
        if numbers is None:
            numbers = self._on_device[x.device] = self._numbers.to(x.device)
        start = self._offsets.randrange(self.size - n + 1)
        window = numbers[start : start + n].view(x.shape)
        return window if window.dtype == x.dtype else window.to(x.dtype)


def _normal(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, generator=generator)


def _keep_masks(p: float) -> Draw:
    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        keep = torch.rand(n, generator=generator) >= p
        return keep.to(torch.float32).mul_(1 / (1 - p))

    return draw


#: Pools by name; each name also picks the pool's seed (:func:`_pool_seed`).
_POOLS: dict[str, RandomPool] = {}
_seed: int | None = None


def _pool_seed(name: str) -> int:
    # A fixed function of the names' bytes: Python's hash() changes per process.
    mixed = _seed
    for byte in name.encode():
        mixed = (mixed * 1_000_003 + byte) % (1 << 63)
    return mixed


def _pool(name: str, draw: Draw) -> RandomPool:
    pool = _POOLS.get(name)
    if pool is None:
        if _seed is None:
            redraw()
        pool = _POOLS[name] = RandomPool(draw)
        pool.reseed(_pool_seed(name))
    return pool


def redraw() -> None:
    """Reseed every pool from one draw of torch's global generator."""
    global _seed
    _seed = int(torch.randint(0, 1 << 62, ()).item())
    for name, pool in _POOLS.items():
        pool.reseed(_pool_seed(name))


def normal_like(x: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers shaped like ``x``."""
    return _pool("normal", _normal).like(x)


def keep_mask_like(x: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask shaped like ``x``: 0 with probability ``p``, else 1 / (1 - p)."""
    return _pool(f"keep {p!r}", _keep_masks(p)).like(x)
