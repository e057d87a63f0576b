"""The optimiser of the training loop: Adam, with lazy updates for large tables.

Dense Adam touches every parameter at every step. For the book's 100k tables
that is cheap, but an embedding table with 160,000 users (MovieLens 25M)
is rewritten in full after every batch of 1,024 ratings that reads at most
1,024 of its rows, and the cost of an epoch then grows with the number of
ratings *times* the size of the tables (``make benchmark``). With
``sparse=True`` the embedding tables produce sparse gradients and
:class:`LazyAdam` moves only the rows a batch read; every other parameter
keeps torch's fused Adam step.
"""

from __future__ import annotations

import torch
from torch import nn

#: Embedding rows (all tables together) above which ``sparse=None`` means sparse:
#: MovieLens 10M and larger. 100k and 1M keep exact dense Adam.
SPARSE_ROWS = 50_000


class LazyAdam(torch.optim.Optimizer):
    r"""Adam with coupled L2 weight decay for parameters with sparse gradients.

    For the rows :math:`R` that a batch touched, with gradient rows
    :math:`g_r` (duplicates summed) and weight decay :math:`\lambda`:

    .. math::

        g_r &\leftarrow g_r + \lambda w_r \\
        m_r &\leftarrow \beta_1 m_r + (1 - \beta_1) g_r, \qquad
        v_r \leftarrow \beta_2 v_r + (1 - \beta_2) g_r^2 \\
        w_r &\leftarrow w_r - \eta\,
            \frac{m_r / (1 - \beta_1^t)}{\sqrt{v_r / (1 - \beta_2^t)} + \epsilon}

    with :math:`t` the number of steps taken. Rows outside :math:`R` keep
    their weights and moments: they neither decay nor drift on stale momentum,
    the lazy-Adam rule of large recommenders. When every row is touched at
    every step the update equals dense Adam with ``weight_decay`` exactly,
    which the tests check. :class:`torch.optim.SparseAdam` is the same rule
    without the weight decay the book's models are tuned with.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or weight_decay < 0:
            raise ValueError(
                f"LazyAdam lr={lr!r}, weight_decay={weight_decay!r}: use lr > 0 and "
                "weight_decay >= 0"
            )
        super().__init__(
            params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise RuntimeError(
                        "LazyAdam needs sparse gradients: build the embedding with "
                        "sparse=True, or use torch.optim.Adam for dense parameters"
                    )
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = state["step"].item()
                grad = param.grad.coalesce()
                rows = grad.indices()[0]  # (n_touched,)
                g = grad.values()  # (n_touched, dim)
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * param[rows]
                m = state["exp_avg"][rows].mul_(beta1).add_(g, alpha=1 - beta1)
                v = (
                    state["exp_avg_sq"][rows]
                    .mul_(beta2)
                    .addcmul_(g, g, value=1 - beta2)
                )
                state["exp_avg"][rows] = m
                state["exp_avg_sq"][rows] = v
                denom = (v / (1 - beta2**step)).sqrt_().add_(group["eps"])
                step_size = group["lr"] / (1 - beta1**step)
                param.index_add_(0, rows, m.div_(denom), alpha=-step_size)
        return loss


def embedding_rows(model: nn.Module) -> int:
    """Rows of all the embedding tables of ``model`` together."""
    return sum(
        module.num_embeddings
        for module in model.modules()
        if isinstance(module, nn.Embedding)
    )


class RatingOptimizer:
    """Adam for a rating model: fused and dense, or lazy on its embedding tables.

    With ``sparse=True`` every :class:`torch.nn.Embedding` of ``model`` is
    switched to sparse gradients and its table updated by :class:`LazyAdam`;
    the other parameters (layers, batch normalisation, offsets) keep torch's
    Adam. ``sparse=None`` chooses sparse when the tables hold more than
    :data:`SPARSE_ROWS` rows. The object has the ``zero_grad``, ``step``,
    ``state_dict`` and ``load_state_dict`` of a torch optimiser.

    Notes
    -----
    The choice changes the optimiser, not the model: a checkpoint saved
    either way loads the same. Lazy and dense Adam differ only for rows a
    batch did not read, which dense Adam still moves by their momentum and
    weight decay.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        learning_rate: float,
        weight_decay: float,
        sparse: bool | None = None,
    ) -> None:
        if sparse is None:
            sparse = embedding_rows(model) > SPARSE_ROWS
        self.sparse = bool(sparse)
        tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        for table in tables:
            table.sparse = self.sparse
        sparse_ids = {id(t.weight) for t in tables} if self.sparse else set()
        dense = [p for p in model.parameters() if id(p) not in sparse_ids]
        device = dense[0].device.type if dense else "cpu"
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "dense": torch.optim.Adam(
                dense,
                lr=learning_rate,
                weight_decay=weight_decay,
                # One kernel for every parameter tensor instead of a dozen small
                # ops each: about a fifth of a NeuMF epoch on the CPU.
                fused=device in ("cpu", "cuda"),
            )
        }
        if self.sparse:
            self.optimizers["sparse"] = LazyAdam(
                [t.weight for t in tables], lr=learning_rate, weight_decay=weight_decay
            )

    @property
    def sparse_parameters(self) -> list[nn.Parameter]:
        """The embedding tables updated by lazy Adam (none when dense)."""
        if "sparse" not in self.optimizers:
            return []
        return [p for g in self.optimizers["sparse"].param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.step()

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.optimizers):
            raise ValueError(
                f"optimiser state holds {sorted(state)}, this optimiser "
                f"{sorted(self.optimizers)}: resume with the same sparse_embeddings"
            )
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])
