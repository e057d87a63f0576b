"""The pools of random numbers behind dropout and embedding noise."""

from __future__ import annotations

import pytest
import torch

from recsys_utils import noise
from recsys_utils.models import Dropout, GaussianNoise
from recsys_utils.noise import RandomPool


def _draw_after_seed(seed: int, first: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed, redraw, then read both kinds of numbers with ``first`` read first."""
    torch.manual_seed(seed)
    noise.redraw()
    x = torch.empty(64, 8)
    if first == "normal":
        normal = noise.normal_like(x).clone()
        mask = noise.keep_mask_like(x, 0.3).clone()
    else:
        mask = noise.keep_mask_like(x, 0.3).clone()
        normal = noise.normal_like(x).clone()
    return normal, mask


def test_a_seed_gives_the_same_numbers_in_any_order_of_use() -> None:
    normal, mask = _draw_after_seed(3, "normal")
    normal_again, mask_again = _draw_after_seed(3, "mask")
    torch.testing.assert_close(normal, normal_again, rtol=0, atol=0)
    torch.testing.assert_close(mask, mask_again, rtol=0, atol=0)
    other, _ = _draw_after_seed(4, "normal")
    assert not torch.equal(normal, other)


def test_normal_windows_are_standard_normal() -> None:
    torch.manual_seed(0)
    noise.redraw()
    numbers = torch.cat([noise.normal_like(torch.empty(4096)) for _ in range(200)])
    assert abs(numbers.mean().item()) < 0.01
    assert abs(numbers.std().item() - 1) < 0.01


def test_keep_masks_drop_p_and_scale_the_rest() -> None:
    torch.manual_seed(0)
    noise.redraw()
    masks = torch.cat(
        [noise.keep_mask_like(torch.empty(4096), 0.2) for _ in range(100)]
    )
    assert masks.unique().tolist() == pytest.approx([0.0, 1.25])
    assert abs((masks == 0).float().mean().item() - 0.2) < 0.005


def test_windows_take_shape_dtype_and_distinct_positions() -> None:
    pool = RandomPool(lambda n, g: torch.arange(n, dtype=torch.float32), size=1000)
    pool.reseed(0)
    window = pool.like(torch.empty(4, 5, dtype=torch.float64))
    assert window.shape == (4, 5) and window.dtype == torch.float64
    start = int(window[0, 0])
    # A window is a contiguous run of the pool: 20 distinct numbers in order.
    assert window.flatten().tolist() == list(range(start, start + 20))


def test_pool_is_redrawn_once_read_reuse_times_over() -> None:
    draws = []

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        draws.append(n)
        return torch.rand(n, generator=generator)

    pool = RandomPool(draw, size=100, reuse=2)
    pool.reseed(0)
    for _ in range(8):  # 200 numbers read: the first pool's allowance
        pool.like(torch.empty(25))
    assert draws == [100]
    pool.like(torch.empty(25))
    assert draws == [100, 100]


def test_a_request_for_over_a_quarter_of_the_pool_gets_fresh_numbers() -> None:
    draws = []

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        draws.append(n)
        return torch.randn(n, generator=generator)

    pool = RandomPool(draw, size=40)
    pool.reseed(0)
    numbers = pool.like(torch.empty(3, 7))
    assert numbers.shape == (3, 7)
    assert draws == [21]  # not the pool's 40
    pool.like(torch.empty(10))
    assert draws == [21, 40]  # a quarter: from the pool


def test_bad_pool_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="size=0"):
        RandomPool(torch.randn, size=0)


def test_modules_use_pooled_numbers_while_training_only() -> None:
    x = torch.ones(256, 16)
    for module in (GaussianNoise(0.5), Dropout(0.5)):
        module.eval()
        assert torch.equal(module(x), x)
        module.train()
        torch.manual_seed(1)
        noise.redraw()
        first = module(x)
        torch.manual_seed(1)
        noise.redraw()
        assert torch.equal(module(x), first)
        assert not torch.equal(first, x)
