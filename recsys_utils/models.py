"""Neural rating models. No I/O here: models take tensors and return tensors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from recsys_utils import noise
from recsys_utils.features import Features
from recsys_utils.metrics import FIVE_STARS, RatingScale
from recsys_utils.params import (
    ParameterError,
    check_bool,
    check_choice,
    check_float,
    check_int,
)

Task = Literal["regression", "classification"]
#: Classes of the whole-star releases; a model's own count is its scale's levels.
N_RATING_CLASSES = FIVE_STARS.n_levels


class GaussianNoise(nn.Module):
    """Add N(0, std^2) noise in training mode; the identity at evaluation.

    The numbers come from the pool of :mod:`recsys_utils.noise`.
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.std > 0:
            return torch.add(x, noise.normal_like(x), alpha=self.std)
        return x


class Dropout(nn.Module):
    """Inverted dropout: zero each unit with probability ``p`` while training.

    The same rule as :class:`torch.nn.Dropout`, drawn differently: the
    mask, already scaled by :math:`1 / (1 - p)`, is a window of the pool of
    :mod:`recsys_utils.noise`, so a step pays one multiplication for it.
    Fresh masks from torch's Bernoulli sampler were a fifth of a NeuMF epoch
    on the CPU (``make benchmark``).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p={p!r} is not allowed: use a number in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * noise.keep_mask_like(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def lookup(table: nn.Embedding | torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows ``table(index)`` of an embedding (or of a weight tensor).

    Both ways give the same rows and gradients; this one is the fast one on
    the CPU. The backward pass of an embedding sorts the indices before it
    adds the gradient rows up, about 50 us a call even for a table of width
    1, while ``index_select`` adds them in place; and that addition takes
    ten times longer with the book's 32-bit indices than with 64-bit ones,
    so the indices are widened first (a copy of one batch). With four
    lookups a step, the embeddings' backward passes were a sixth of a NeuMF
    epoch's profile on 100k. A sparse table (lazy Adam) keeps the embedding,
    whose gradient is row-sparse.
    """
    if isinstance(table, nn.Embedding):
        if table.sparse:
            return table(index)
        table = table.weight
    return table.index_select(0, index.long())


def mlp_block(
    n_in: int,
    n_out: int,
    *,
    dropout: float,
    batch_norm: bool,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Linear -> (BatchNorm) -> activation -> (Dropout)."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(activation())
    if dropout > 0:
        layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


def register_features(
    model: nn.Module,
    config,
    user_features: torch.Tensor | None,
    item_features: torch.Tensor | None,
) -> list[str]:
    """Attach the content-feature tables as buffers; return the kinds attached.

    Buffers are saved with the weights, so a model rebuilt from a checkpoint
    gets zeros here and its tables back from ``load_state_dict``.
    """
    kinds = []
    for kind, n_rows, n_columns, table in (
        ("user", config.n_users, config.n_user_features, user_features),
        ("item", config.n_items, config.n_item_features, item_features),
    ):
        if n_columns == 0:
            continue
        if table is None:
            table = torch.zeros(n_rows, n_columns)
        if tuple(table.shape) != (n_rows, n_columns):
            raise ValueError(
                f"{kind}_features has shape {tuple(table.shape)}; the configuration "
                f"expects ({n_rows}, {n_columns})"
            )
        model.register_buffer(
            f"{kind}_features", torch.as_tensor(table, dtype=torch.float32)
        )
        kinds.append(kind)
    return kinds


class RatingModel(nn.Module):
    """Base of the book's models: ``forward(user, item)`` and a loss penalty."""

    def penalty(self) -> torch.Tensor | float:
        """A term added to the training loss (0 unless a model needs one)."""
        return 0.0


Classifier = Literal["softmax", "cumulative"]


class RatingOutput(nn.Module):
    r"""The last layer of every model: a hidden vector to a rating or to classes.

    * ``task="regression"``: a score
      :math:`s = w^\top h + \mu + b_u + b_i` (biases optional), then a
      linear recalibration :math:`a + b s`, the identity while training
      (see :func:`recsys_utils.training.calibrate`).
    * ``task="classification", classifier="softmax"``: :math:`K` logits
      :math:`W h`, one per rating level of ``scale`` (five for 1..5, ten
      for half stars).
    * ``task="classification", classifier="cumulative"``: the ordered
      (cumulative-link) logit model. The same score :math:`s` and
      :math:`K - 1` increasing thresholds :math:`\theta_1 < \dots < \theta_{K-1}`
      give :math:`P(r \le k) = \sigma(\theta_k - s)`; a rating's probability
      is the difference of consecutive cumulative ones, so the classes keep
      their order. The output is the log of those probabilities, which
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
        scale: RatingScale = FIVE_STARS,
    ) -> None:
        super().__init__()
        self.task = task
        self.softmax = task == "classification" and classifier == "softmax"
        self.linear = nn.Linear(n_in, scale.n_levels if self.softmax else 1)
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
            # Thresholds start half-way between the ratings: 1.5, 2.5, 3.5, 4.5
            # on the whole-star scale.
            first = scale.minimum + scale.step / 2
            self.first_threshold = nn.Parameter(torch.tensor(float(first)))
            # softplus(log(e^step - 1)) = step: gaps of one level to start with,
            # always positive (log(e - 1) for whole stars).
            self.threshold_gaps = nn.Parameter(
                torch.full((scale.n_levels - 2,), math.log(math.expm1(scale.step)))
            )

    def thresholds(self) -> torch.Tensor:
        """The increasing cut points of the cumulative model, shape (n_levels - 1,)."""
        gaps = nn.functional.softplus(self.threshold_gaps)
        return torch.cat(
            [self.first_threshold.view(1), self.first_threshold + gaps.cumsum(0)]
        )

    def forward(
        self, hidden: torch.Tensor, user: torch.Tensor, item: torch.Tensor
    ) -> torch.Tensor:
        out = self.linear(hidden)  # (B, n_levels) or (B, 1)
        if self.softmax:
            return out
        score = out.squeeze(1) + self.offset  # (B,)
        if self.use_bias:
            score = (
                score
                + lookup(self.user_bias, user).squeeze(1)
                + lookup(self.item_bias, item).squeeze(1)
            )
        if self.task == "regression":
            return self.calibration[0] + self.calibration[1] * score
        cumulative = torch.sigmoid(
            self.thresholds()[None, :] - score[:, None]
        )  # (B, n_levels - 1)
        ones = torch.ones_like(score)[:, None]
        bounds = torch.cat(
            [torch.zeros_like(ones), cumulative, ones], dim=1
        )  # (B, n_levels + 1)
        # Clamp before the log: far-apart thresholds can make a difference underflow.
        return torch.log(
            (bounds[:, 1:] - bounds[:, :-1]).clamp_min(1e-7)
        )  # (B, n_levels)


def check_widths(name: str, layers: object) -> None:
    """Refuse anything but a non-empty tuple of positive whole numbers."""
    if (
        not isinstance(layers, tuple)
        or not layers
        or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in layers)
    ):
        raise ParameterError(
            f"parameter {name}={layers!r} ({type(layers).__name__}) is not "
            "allowed: use a list of whole numbers >= 1, such as [64, 32, 16] "
            f"(with papermill: -y '{name}: [64, 32, 16]')"
        )


@dataclass(frozen=True)
class ModelConfig:
    """The fields every model configuration has (see :class:`NeuMFConfig`).

    Checkpoints store configurations as dicts of plain values (tuples become
    lists), which ``torch.load(weights_only=True)`` accepts; the dataclasses
    turn lists back into tuples when they are built. ``rating_levels`` is the
    release's :class:`~recsys_utils.metrics.RatingScale`; a configuration
    saved before it existed rebuilds with the whole stars 1..5.
    """

    n_users: int
    n_items: int
    n_factors: int = 32
    dropout: float = 0.2
    batch_norm: bool = True
    embedding_noise: float = 0.05
    use_bias: bool = True
    task: Task = "regression"
    classifier: Classifier = "softmax"
    rating_offset: float = 3.5
    n_user_features: int = 0
    n_item_features: int = 0
    rating_levels: tuple[float, ...] = FIVE_STARS.levels

    @property
    def scale(self) -> RatingScale:
        """The rating levels the model predicts over."""
        return RatingScale(self.rating_levels)

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, config: dict):
        return cls(**config)


def check_shared(config) -> None:
    """Check the fields every model configuration has; normalise the rating levels."""
    # RatingScale refuses uneven levels and turns a checkpoint's list into a tuple.
    object.__setattr__(
        config, "rating_levels", RatingScale(config.rating_levels).levels
    )
    check_float("dropout", config.dropout, 0.0, 1.0, high_open=True)
    check_float("embedding_noise", config.embedding_noise, 0.0, 10.0)
    check_bool("batch_norm", config.batch_norm)
    check_bool("use_bias", config.use_bias)
    check_choice("task", config.task, ("regression", "classification"))
    check_choice("classifier", config.classifier, ("softmax", "cumulative"))


@dataclass(frozen=True)
class NeuMFConfig(ModelConfig):
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
        One output (a rating) or one logit per rating level.
    classifier : {"softmax", "cumulative"}
        For classification, independent logits per rating or the ordered
        cumulative-link model (see :class:`RatingOutput`).
    rating_offset : float
        Starting value of the global offset, usually the mean training rating.
    n_user_features, n_item_features : int
        Widths of the content features of users and movies (0: none, the pure
        collaborative model). With features, the model is the hybrid one.
    rating_levels : tuple of float
        The release's rating levels (see
        :class:`~recsys_utils.metrics.RatingScale`): (1, ..., 5), or the ten
        half stars of 10M and later.
    feature_size : int
        Width of the small branch that reads each kind of feature.
    """

    mlp_layers: tuple[int, ...] = (64, 32, 16)
    fusion_size: int = 16
    feature_size: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.mlp_layers, list):  # papermill and JSON hand over lists
            object.__setattr__(self, "mlp_layers", tuple(self.mlp_layers))
        for name in ("n_users", "n_items", "n_factors", "fusion_size", "feature_size"):
            check_int(name, getattr(self, name))
        for name in ("n_user_features", "n_item_features"):
            check_int(name, getattr(self, name), minimum=0)
        check_widths("mlp_layers", self.mlp_layers)
        if self.mlp_layers[0] < 2:
            raise ParameterError(
                "parameter mlp_layers must start with a width >= 2 (two embeddings meet there)"
            )
        check_shared(self)


class NeuMF(RatingModel):
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

    Each side keeps its two embeddings in one table, ``user_embedding``
    :math:`[p_u; p'_u]` and ``item_embedding`` :math:`[q_i; q'_i]`, the GMF
    columns first: one lookup, one noise draw and one gradient a side
    and step instead of two of each. The columns are independent
    parameters all the same; only their storage is shared. Checkpoints of
    the four separate tables (``user_gmf``, ``user_mlp``, ...) still load.
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
        self.widths = (c.n_factors, mlp_dim)  # GMF and MLP columns of a table
        self.user_embedding = nn.Embedding(c.n_users, c.n_factors + mlp_dim)
        self.item_embedding = nn.Embedding(c.n_items, c.n_factors + mlp_dim)
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
        for kind in register_features(self, c, user_features, item_features):
            self.feature_nets[kind] = mlp_block(
                getattr(self, f"{kind}_features").shape[1],
                c.feature_size,
                dropout=c.dropout,
                batch_norm=c.batch_norm,
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
            scale=c.scale,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Small embeddings keep the first GMF products near zero, so early
        # training is dominated by the biases, as in biased matrix factorisation.
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=0.05)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A checkpoint from before the tables were joined: join them here.
        for side in ("user", "item"):
            gmf, mlp = f"{prefix}{side}_gmf.weight", f"{prefix}{side}_mlp.weight"
            if gmf in state_dict and mlp in state_dict:
                state_dict[f"{prefix}{side}_embedding.weight"] = torch.cat(
                    [state_dict.pop(gmf), state_dict.pop(mlp)], dim=1
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _rows(
        self, table: nn.Embedding, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One side's GMF and MLP rows for ``index``, with their embedding noise."""
        return self.noise(lookup(table, index)).split(self.widths, dim=1)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predict for index tensors of shape (batch,).

        Returns shape (batch,) for regression, (batch, n_levels) logits for
        classification (log-probabilities for the cumulative classifier).
        """
        user_gmf, user_mlp = self._rows(self.user_embedding, user)
        item_gmf, item_mlp = self._rows(self.item_embedding, item)
        gmf = user_gmf * item_gmf  # (B, F)
        mlp = self.mlp(torch.cat([user_mlp, item_mlp], dim=1))  # (B, mlp_layers[-1])
        parts = [gmf, mlp]
        if "user" in self.feature_nets:
            parts.append(self.feature_nets["user"](lookup(self.user_features, user)))
        if "item" in self.feature_nets:
            parts.append(self.feature_nets["item"](lookup(self.item_features, item)))
        hidden = self.fusion(torch.cat(parts, dim=1))  # (B, fusion_size)
        return self.output(hidden, user, item)


def _builder(model_class, config_class, n_users, n_items, features, options):
    """A function that builds a fresh model of ``model_class`` given the rating offset.

    The options are checked at once, so a bad one fails before data is loaded.
    With ``features`` the model reads both feature tables.
    """
    tables = (None, None)
    if features is not None:
        options = {
            **options,
            "n_user_features": features.user.shape[1],
            "n_item_features": features.item.shape[1],
        }
        tables = (torch.as_tensor(features.user), torch.as_tensor(features.item))
    config_class(n_users, n_items, **options)

    def build(rating_offset: float):
        config = config_class(n_users, n_items, **options, rating_offset=rating_offset)
        return model_class(config, *tables)

    return build


def neumf_builder(
    n_users: int, n_items: int, features: Features | None = None, **options
) -> Callable[[float], NeuMF]:
    """Builder of :class:`NeuMF`; ``options`` are :class:`NeuMFConfig` fields.

    With ``features`` the model is the hybrid one.
    """
    return _builder(NeuMF, NeuMFConfig, n_users, n_items, features, options)


@dataclass(frozen=True)
class AutoencoderConfig(ModelConfig):
    """Everything needed to rebuild an :class:`AutoencoderRecommender`.

    Attributes
    ----------
    n_users, n_items : int
        Rows of the embedding tables.
    n_factors : int
        Size of the user and of the item embedding.
    encoder_layers : tuple of int
        Widths of the encoder's layers, narrowing; the decoder mirrors them.
    latent_size : int
        Width of the latent code.
    variational : bool
        Encode a mean and a log-variance and sample the code with the
        reparameterisation trick :cite:`kingma2014`, adding a weighted KL term
        to the loss; otherwise a plain linear code.
    kl_weight : float
        Weight of the KL divergence in the loss.
    residual : bool
        Give the output layer the encoder's input as well as the decoder's
        output: a path from input to output that skips the bottleneck.
    dropout, batch_norm, embedding_noise, use_bias, task, classifier,
    rating_offset, n_user_features, n_item_features, rating_levels
        As in :class:`NeuMFConfig`.
    """

    encoder_layers: tuple[int, ...] = (64, 32)
    latent_size: int = 16
    variational: bool = True
    kl_weight: float = 1e-3
    residual: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.encoder_layers, list):
            object.__setattr__(self, "encoder_layers", tuple(self.encoder_layers))
        for name in ("n_users", "n_items", "n_factors", "latent_size"):
            check_int(name, getattr(self, name))
        for name in ("n_user_features", "n_item_features"):
            check_int(name, getattr(self, name), minimum=0)
        check_widths("encoder_layers", self.encoder_layers)
        check_float("kl_weight", self.kl_weight, 0.0, 1e3)
        check_bool("variational", self.variational)
        check_bool("residual", self.residual)
        check_shared(self)


class AutoencoderRecommender(RatingModel):
    r"""An autoencoder over a (user, movie) pair that decodes a rating.

    The input :math:`x = [p_u; q_i; x_u; y_i]` (embeddings, then features
    when given) is encoded by layers that narrow (linear, batch
    normalisation, LeakyReLU, dropout) into a latent code :math:`z`. In the
    variational version the encoder gives :math:`\mu` and
    :math:`\log\sigma^2`, :math:`z = \mu + \sigma \odot \epsilon` while
    training (:math:`z = \mu` at prediction), and the loss gains
    :math:`\beta\,\mathrm{KL}(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, I))`.
    A decoder mirroring the encoder widens :math:`z` back; with ``residual``
    the output layer reads :math:`[\mathrm{dec}(z); x]`, so information
    that the bottleneck drops can still reach the rating.
    """

    # Log-variances are clamped here: exp() of a large value would overflow
    # the KL term and the sampling noise.
    LOGVAR_RANGE = (-10.0, 10.0)

    def __init__(
        self,
        config: AutoencoderConfig,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = c = config
        self.user_embedding = nn.Embedding(c.n_users, c.n_factors)
        self.item_embedding = nn.Embedding(c.n_items, c.n_factors)
        nn.init.normal_(self.user_embedding.weight, std=0.05)
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        self.noise = GaussianNoise(c.embedding_noise)
        self.kinds = register_features(self, c, user_features, item_features)
        n_in = 2 * c.n_factors + c.n_user_features + c.n_item_features

        def block(n_from: int, n_to: int) -> nn.Sequential:
            return mlp_block(
                n_from,
                n_to,
                dropout=c.dropout,
                batch_norm=c.batch_norm,
                activation=nn.LeakyReLU,
            )

        widths = (n_in, *c.encoder_layers)
        self.encoder = nn.Sequential(
            *(block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        )
        self.to_mean = nn.Linear(widths[-1], c.latent_size)
        self.to_logvar = nn.Linear(widths[-1], c.latent_size) if c.variational else None
        back = (c.latent_size, *reversed(c.encoder_layers))
        self.decoder = nn.Sequential(
            *(block(a, b) for a, b in zip(back[:-1], back[1:], strict=True))
        )
        self.output = RatingOutput(
            back[-1] + (n_in if c.residual else 0),
            c.n_users,
            c.n_items,
            task=c.task,
            classifier=c.classifier,
            use_bias=c.use_bias,
            rating_offset=c.rating_offset,
            scale=c.scale,
        )
        self._kl = torch.tensor(0.0)

    def _input(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        parts = [
            self.noise(lookup(self.user_embedding, user)),
            self.noise(lookup(self.item_embedding, item)),
        ]
        if "user" in self.kinds:
            parts.append(lookup(self.user_features, user))
        if "item" in self.kinds:
            parts.append(lookup(self.item_features, item))
        return torch.cat(parts, dim=1)  # (B, n_in)

    def encode(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """The latent mean of each pair, shape (batch, latent_size)."""
        return self.to_mean(self.encoder(self._input(user, item)))

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        x = self._input(user, item)
        h = self.encoder(x)  # (B, encoder_layers[-1])
        mean = self.to_mean(h)  # (B, latent_size)
        if self.to_logvar is not None:
            logvar = self.to_logvar(h).clamp(*self.LOGVAR_RANGE)
            z = (
                mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
                if self.training
                else mean
            )
            kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)
            self._kl = kl.mean()
        else:
            z = mean
        decoded = self.decoder(z)  # (B, encoder_layers[0])
        hidden = torch.cat([decoded, x], dim=1) if self.config.residual else decoded
        return self.output(hidden, user, item)

    def penalty(self) -> torch.Tensor | float:
        """The weighted KL term of the last forward pass (0 without the variational layer)."""
        if self.to_logvar is None:
            return 0.0
        return self.config.kl_weight * self._kl


def autoencoder_builder(
    n_users: int, n_items: int, features: Features | None = None, **options
) -> Callable[[float], AutoencoderRecommender]:
    """Builder of :class:`AutoencoderRecommender`; ``options`` are its config fields."""
    return _builder(
        AutoencoderRecommender, AutoencoderConfig, n_users, n_items, features, options
    )


@dataclass(frozen=True)
class MatrixFactorizationConfig(ModelConfig):
    """Everything needed to rebuild a :class:`MatrixFactorization` model.

    The fields are those of :class:`NeuMFConfig` that a dot product uses;
    dropout, batch normalisation and embedding noise default to off, as in
    the classical model, and content features are not read.
    """

    dropout: float = 0.0
    batch_norm: bool = False
    embedding_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_factors"):
            check_int(name, getattr(self, name))
        if self.n_user_features or self.n_item_features:
            raise ParameterError(
                "MatrixFactorization reads no content features: use NeuMF for a "
                "hybrid model"
            )
        check_shared(self)


class MatrixFactorization(RatingModel):
    r"""Biased matrix factorisation :cite:`koren2009`, trained with the book's loop.

    .. math::

        \hat r_{ui} = \mu + b_u + b_i + w\, p_u^\top q_i

    A single learned weight :math:`w` scales the dot product (it can be
    absorbed into the embeddings, so the model is the classical one). It
    shares :class:`RatingOutput` with the neural models, so the same training
    loop, recalibration and checkpoints apply, and the comparison with NeuMF
    isolates what the neural layers add.
    """

    def __init__(
        self,
        config: MatrixFactorizationConfig,
        user_features: None = None,
        item_features: None = None,
    ) -> None:
        super().__init__()
        self.config = config
        c = config
        self.user_factors = nn.Embedding(c.n_users, c.n_factors)
        self.item_factors = nn.Embedding(c.n_items, c.n_factors)
        self.noise = GaussianNoise(c.embedding_noise)
        self.dropout = Dropout(c.dropout)
        self.output = RatingOutput(
            1,
            c.n_users,
            c.n_items,
            task=c.task,
            classifier=c.classifier,
            use_bias=c.use_bias,
            rating_offset=c.rating_offset,
            scale=c.scale,
        )
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=0.05)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predict for index tensors of shape (batch,); shapes as :class:`NeuMF`."""
        product = self.dropout(
            self.noise(lookup(self.user_factors, user))
            * self.noise(lookup(self.item_factors, item))
        )  # (B, F)
        return self.output(product.sum(dim=1, keepdim=True), user, item)


def mf_builder(
    n_users: int, n_items: int, **options
) -> Callable[[float], MatrixFactorization]:
    """Builder of :class:`MatrixFactorization`; ``options`` are its config fields."""
    return _builder(
        MatrixFactorization, MatrixFactorizationConfig, n_users, n_items, None, options
    )


MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "NeuMF": (NeuMF, NeuMFConfig),
    "AutoencoderRecommender": (AutoencoderRecommender, AutoencoderConfig),
    "MatrixFactorization": (MatrixFactorization, MatrixFactorizationConfig),
}


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
