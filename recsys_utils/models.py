"""Neural rating models. No I/O here: models take tensors and return tensors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from recsys_utils.features import Features
from recsys_utils.params import (
    ParameterError,
    check_bool,
    check_choice,
    check_float,
    check_int,
)

Task = Literal["regression", "classification"]
N_RATING_CLASSES = 5


class GaussianNoise(nn.Module):
    """Add N(0, std^2) noise in training mode; the identity at evaluation."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.std > 0:
            return x + torch.randn_like(x) * self.std
        return x


def mlp_block(
    n_in: int, n_out: int, *, dropout: float, batch_norm: bool
) -> nn.Sequential:
    """Linear -> (BatchNorm) -> ReLU -> (Dropout)."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


Classifier = Literal["softmax", "cumulative"]


class RatingOutput(nn.Module):
    r"""The last layer of every model: a hidden vector to a rating or to classes.

    * ``task="regression"``: a score
      :math:`s = w^\top h + \mu + b_u + b_i` (biases optional), then a
      linear recalibration :math:`a + b s`, the identity while training
      (see :func:`recsys_utils.training.calibrate`).
    * ``task="classification", classifier="softmax"``: five logits
      :math:`W h`, one per rating.
    * ``task="classification", classifier="cumulative"``: the ordered
      (cumulative-link) logit model. The same score :math:`s` and four
      increasing thresholds :math:`\theta_1 < \dots < \theta_4` give
      :math:`P(r \le k) = \sigma(\theta_k - s)`; a rating's probability is
      the difference of consecutive cumulative ones, so the five classes
      keep their order. The output is the log of those probabilities, which
      softmax and cross-entropy treat exactly like logits.
    """

    def __init__(
        self,
        n_in: int,
        n_users: int,
        n_items: int,
        *,
        task: Task,
        classifier: Classifier,
        use_bias: bool,
        rating_offset: float,
    ) -> None:
        super().__init__()
        self.task = task
        self.softmax = task == "classification" and classifier == "softmax"
        self.linear = nn.Linear(n_in, N_RATING_CLASSES if self.softmax else 1)
        self.use_bias = use_bias and not self.softmax
        if self.use_bias:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        if not self.softmax:
            self.offset = nn.Parameter(torch.tensor(float(rating_offset)))
        if task == "regression":
            # (shift, scale) of a linear recalibration fitted after training on
            # validation data; the identity until then. A buffer, not a
            # parameter: gradient descent never touches it.
            self.register_buffer("calibration", torch.tensor([0.0, 1.0]))
        if task == "classification" and not self.softmax:
            # Thresholds start half-way between the ratings: 1.5, 2.5, 3.5, 4.5.
            self.first_threshold = nn.Parameter(torch.tensor(1.5))
            # softplus(log(e - 1)) = 1: unit gaps to start with, always positive.
            self.threshold_gaps = nn.Parameter(
                torch.full((N_RATING_CLASSES - 2,), math.log(math.e - 1))
            )

    def thresholds(self) -> torch.Tensor:
        """The four increasing cut points of the cumulative model, shape (4,)."""
        gaps = nn.functional.softplus(self.threshold_gaps)
        return torch.cat(
            [self.first_threshold.view(1), self.first_threshold + gaps.cumsum(0)]
        )

    def forward(
        self, hidden: torch.Tensor, user: torch.Tensor, item: torch.Tensor
    ) -> torch.Tensor:
        out = self.linear(hidden)  # (B, 5) or (B, 1)
        if self.softmax:
            return out
        score = out.squeeze(1) + self.offset  # (B,)
        if self.use_bias:
            score = (
                score
                + self.user_bias(user).squeeze(1)
                + self.item_bias(item).squeeze(1)
            )
        if self.task == "regression":
            return self.calibration[0] + self.calibration[1] * score
        cumulative = torch.sigmoid(
            self.thresholds()[None, :] - score[:, None]
        )  # (B, 4)
        ones = torch.ones_like(score)[:, None]
        bounds = torch.cat([torch.zeros_like(ones), cumulative, ones], dim=1)  # (B, 6)
        # Clamp before the log: far-apart thresholds can make a difference underflow.
        return torch.log((bounds[:, 1:] - bounds[:, :-1]).clamp_min(1e-7))  # (B, 5)


@dataclass(frozen=True)
class NeuMFConfig:
    """Everything needed to rebuild a :class:`NeuMF` model.

    Attributes
    ----------
    n_users, n_items : int
        Rows of the embedding tables (see :class:`recsys_utils.data.IdIndex`).
    n_factors : int
        Size of the GMF embeddings.
    mlp_layers : tuple of int
        Widths of the MLP branch; its embeddings have ``mlp_layers[0] // 2``
        dimensions each, so their concatenation matches the first layer.
    fusion_size : int
        Width of the hidden layer that mixes the two branches.
    dropout : float
        Dropout rate after every hidden layer (0 switches it off).
    batch_norm : bool
        Batch normalisation after every hidden linear layer.
    embedding_noise : float
        Standard deviation of the Gaussian noise added to embeddings while
        training (0 switches it off).
    use_bias : bool
        Add a learned user bias, item bias and global offset to the output,
        the baseline predictor of :cite:`koren2009`.
    task : {"regression", "classification"}
        One output (a rating) or five (logits over ratings 1..5).
    classifier : {"softmax", "cumulative"}
        For classification, independent logits per rating or the ordered
        cumulative-link model (see :class:`RatingOutput`).
    rating_offset : float
        Starting value of the global offset, usually the mean training rating.
    n_user_features, n_item_features : int
        Widths of the content features of users and movies (0: none, the pure
        collaborative model). With features, the model is the hybrid one.
    feature_size : int
        Width of the small branch that reads each kind of feature.
    """

    n_users: int
    n_items: int
    n_factors: int = 32
    mlp_layers: tuple[int, ...] = (64, 32, 16)
    fusion_size: int = 16
    dropout: float = 0.2
    batch_norm: bool = True
    embedding_noise: float = 0.05
    use_bias: bool = True
    task: Task = "regression"
    classifier: Classifier = "softmax"
    rating_offset: float = 3.5
    n_user_features: int = 0
    n_item_features: int = 0
    feature_size: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.mlp_layers, list):  # papermill and JSON hand over lists
            object.__setattr__(self, "mlp_layers", tuple(self.mlp_layers))
        for name in ("n_users", "n_items", "n_factors", "fusion_size", "feature_size"):
            check_int(name, getattr(self, name))
        for name in ("n_user_features", "n_item_features"):
            check_int(name, getattr(self, name), minimum=0)
        layers = self.mlp_layers
        if (
            not isinstance(layers, tuple)
            or not layers
            or any(
                isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in layers
            )
        ):
            raise ParameterError(
                f"parameter mlp_layers={layers!r} ({type(layers).__name__}) is not "
                "allowed: use a list of whole numbers >= 1, such as [64, 32, 16] "
                "(with papermill: -y 'mlp_layers: [64, 32, 16]')"
            )
        if self.mlp_layers[0] < 2:
            raise ParameterError(
                "parameter mlp_layers must start with a width >= 2 (two embeddings meet there)"
            )
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_float("embedding_noise", self.embedding_noise, 0.0, 10.0)
        check_bool("batch_norm", self.batch_norm)
        check_bool("use_bias", self.use_bias)
        check_choice("task", self.task, ("regression", "classification"))
        check_choice("classifier", self.classifier, ("softmax", "cumulative"))

    def to_dict(self) -> dict:
        config = asdict(self)
        config["mlp_layers"] = list(self.mlp_layers)
        return config

    @classmethod
    def from_dict(cls, config: dict) -> NeuMFConfig:
        config = dict(config)
        config["mlp_layers"] = tuple(config["mlp_layers"])
        return cls(**config)


class NeuMF(nn.Module):
    r"""Neural matrix factorisation :cite:`he2017`, for explicit ratings.

    Two branches read their own user and item embeddings:

    .. math::

        \phi^{GMF} = p_u \odot q_i, \qquad
        \phi^{MLP} = \mathrm{MLP}([p'_u; q'_i]),

    and a fusion layer maps their concatenation to the output,
    :math:`\hat r_{ui} = \mu + b_u + b_i + w^\top h([\phi^{GMF}; \phi^{MLP}])`
    for regression; for classification :class:`RatingOutput` turns the same
    hidden vector into five logits or a cumulative-link distribution.

    The hybrid model adds content features: fixed tables of user features
    :math:`x_u` and movie features :math:`y_i`, each read by a small branch
    of its own, whose outputs join the fusion layer's input,
    :math:`h([\phi^{GMF}; \phi^{MLP}; g(x_u); g'(y_i)])`.
    """

    def __init__(
        self,
        config: NeuMFConfig,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        c = config
        mlp_dim = c.mlp_layers[0] // 2
        self.user_gmf = nn.Embedding(c.n_users, c.n_factors)
        self.item_gmf = nn.Embedding(c.n_items, c.n_factors)
        self.user_mlp = nn.Embedding(c.n_users, mlp_dim)
        self.item_mlp = nn.Embedding(c.n_items, mlp_dim)
        self.noise = GaussianNoise(c.embedding_noise)

        widths = (2 * mlp_dim, *c.mlp_layers[1:])
        self.mlp = nn.Sequential(
            *(
                mlp_block(n_in, n_out, dropout=c.dropout, batch_norm=c.batch_norm)
                for n_in, n_out in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        # Content features: fixed tables (buffers, saved with the weights), each
        # read by its own small branch before the fusion layer.
        self.feature_nets = nn.ModuleDict()
        for kind, n_rows, n_columns, table in (
            ("user", c.n_users, c.n_user_features, user_features),
            ("item", c.n_items, c.n_item_features, item_features),
        ):
            if n_columns == 0:
                continue
            if table is None:  # rebuilt from a checkpoint: load_state_dict fills it
                table = torch.zeros(n_rows, n_columns)
            if tuple(table.shape) != (n_rows, n_columns):
                raise ValueError(
                    f"{kind}_features has shape {tuple(table.shape)}; the configuration "
                    f"expects ({n_rows}, {n_columns})"
                )
            self.register_buffer(
                f"{kind}_features", torch.as_tensor(table, dtype=torch.float32)
            )
            self.feature_nets[kind] = mlp_block(
                n_columns, c.feature_size, dropout=c.dropout, batch_norm=c.batch_norm
            )
        self.fusion = mlp_block(
            c.n_factors + widths[-1] + c.feature_size * len(self.feature_nets),
            c.fusion_size,
            dropout=c.dropout,
            batch_norm=c.batch_norm,
        )
        self.output = RatingOutput(
            c.fusion_size,
            c.n_users,
            c.n_items,
            task=c.task,
            classifier=c.classifier,
            use_bias=c.use_bias,
            rating_offset=c.rating_offset,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Small embeddings keep the first GMF products near zero, so early
        # training is dominated by the biases, as in biased matrix factorisation.
        for table in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(table.weight, std=0.05)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predict for index tensors of shape (batch,).

        Returns shape (batch,) for regression, (batch, 5) logits for
        classification (log-probabilities for the cumulative classifier).
        """
        gmf = self.noise(self.user_gmf(user)) * self.noise(
            self.item_gmf(item)
        )  # (B, F)
        mlp_in = torch.cat(
            [self.noise(self.user_mlp(user)), self.noise(self.item_mlp(item))], dim=1
        )
        mlp = self.mlp(mlp_in)  # (B, mlp_layers[-1])
        parts = [gmf, mlp]
        if "user" in self.feature_nets:
            parts.append(self.feature_nets["user"](self.user_features[user]))
        if "item" in self.feature_nets:
            parts.append(self.feature_nets["item"](self.item_features[item]))
        hidden = self.fusion(torch.cat(parts, dim=1))  # (B, fusion_size)
        return self.output(hidden, user, item)


def neumf_builder(
    n_users: int, n_items: int, features: Features | None = None, **options
) -> Callable[[float], NeuMF]:
    """A function that builds a fresh :class:`NeuMF` given the rating offset.

    ``options`` are :class:`NeuMFConfig` fields; they are checked at once.
    With ``features`` the model is the hybrid one, reading both feature tables.
    """
    if features is not None:
        options = {
            **options,
            "n_user_features": features.user.shape[1],
            "n_item_features": features.item.shape[1],
        }
        tables = (torch.as_tensor(features.user), torch.as_tensor(features.item))
    else:
        tables = (None, None)
    NeuMFConfig(n_users, n_items, **options)  # fail now, not after loading data

    def build(rating_offset: float) -> NeuMF:
        config = NeuMFConfig(n_users, n_items, **options, rating_offset=rating_offset)
        return NeuMF(config, *tables)

    return build


MODELS: dict[str, tuple[type[nn.Module], type]] = {"NeuMF": (NeuMF, NeuMFConfig)}


def build_model(name: str, config: dict) -> nn.Module:
    """Rebuild a model from its class name and configuration dictionary."""
    if name not in MODELS:
        raise ValueError(
            f"model {name!r} is unknown; known models: {', '.join(MODELS)}"
        )
    model_class, config_class = MODELS[name]
    return model_class(config_class.from_dict(config))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
