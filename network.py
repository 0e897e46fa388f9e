"""The three networks of the MNIST adversarial autoencoder (paper §5 and Appendix A).

Encoder q(z|x), decoder p(x|z) and discriminator D(z): fully connected, two hidden layers of
``hidden`` units with ReLU, dropout after each hidden layer as in the reference reproduction.
Layer indices inside each ``model`` Sequential are the reference's (Linear at 0, 3 and 6), so
the parameter names match its checkpoints (``model.0.weight``, ``mu.weight``, ...).

Every network takes its sizes as arguments; nothing here reads globals or files. The decoder
and the discriminator return logits, so the losses can use the numerically stable
``binary_cross_entropy_with_logits``; ``Decoder.probs`` gives pixel means in [0, 1].
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

# Keep decisions of the dropout mask are integers in [0, 2^24): exact, cheap to draw, and the
# keep probability is represented to 2^-24 (the same resolution as a float32 uniform).
_MASK_RESOLUTION = 1 << 24


class Dropout(nn.Layer):
    """Inverted dropout, the same as ``nn.Dropout(p)`` (mode 'upscale_in_train').

    Written out because Paddle's CPU dropout kernel costs ~1.3-1.5 ms per 100x1200 call against
    ~0.6 ms for drawing integer keep decisions and multiplying (measured on a 2-core AMD
    EPYC, Paddle 3.3.1; a step has ten such calls). Same distribution: each unit is kept with
    probability 1 - p and scaled by 1 / (1 - p); the identity in eval mode.
    """

    def __init__(self, p):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = float(p)
        self._threshold = int(round(self.p * _MASK_RESOLUTION))

    def forward(self, x):
        if not self.training or self._threshold == 0:
            return x
        draws = paddle.randint(0, _MASK_RESOLUTION, x.shape, dtype="int32")
        keep = (draws >= self._threshold).astype(x.dtype)
        return x * (keep * (1.0 / (1.0 - self.p)))

    def extra_repr(self):
        return f"p={self.p}"


def _hidden_stack(in_dim, hidden, dropout):
    """Linear, Dropout, ReLU, twice: the reference's layer order (indices 0..5)."""
    return [
        nn.Linear(in_dim, hidden), Dropout(dropout), nn.ReLU(),
        nn.Linear(hidden, hidden), Dropout(dropout), nn.ReLU(),
    ]


class Encoder(nn.Layer):
    """q(z|x). ``kind='gaussian'``: z = mu + exp(logvar / 2) * eps with eps ~ N(0, eps_std^2),
    drawn in train and eval mode alike (as the reference does; its eps_std is the prior's 5).
    ``kind='deterministic'``: z = mu, the encoder the paper used for its likelihood result."""

    def __init__(self, in_dim, hidden, latent_dim, dropout=0.2, kind="gaussian", eps_std=5.0):
        super().__init__()
        if kind not in ("gaussian", "deterministic"):
            raise ValueError(f"unknown encoder kind {kind!r}")
        self.kind = kind
        self.eps_std = float(eps_std)
        self.model = nn.Sequential(*_hidden_stack(in_dim, hidden, dropout))
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim) if kind == "gaussian" else None

    def mean(self, x):
        """mu(x), the code without the Gaussian encoder's noise (for plots of the code space)."""
        return self.mu(self.model(x.reshape([x.shape[0], -1])))

    def forward(self, x):
        h = self.model(x.reshape([x.shape[0], -1]))  # [B, hidden]
        mu = self.mu(h)  # [B, latent_dim]
        if self.kind == "deterministic":
            return mu
        eps = paddle.normal(0.0, self.eps_std, mu.shape)
        return mu + paddle.exp(0.5 * self.logvar(h)) * eps


class Decoder(nn.Layer):
    """p(x|z): code -> logits of the pixel means (Bernoulli decoder, sigmoid output)."""

    def __init__(self, latent_dim, hidden, out_dim, dropout=0.2):
        super().__init__()
        self.model = nn.Sequential(*_hidden_stack(latent_dim, hidden, dropout),
                                   nn.Linear(hidden, out_dim))

    def forward(self, z):
        return self.model(z)  # [B, out_dim] logits

    def probs(self, z):
        return F.sigmoid(self.model(z))  # [B, out_dim] pixel means in [0, 1]


class Discriminator(nn.Layer):
    """D(z): the logit of 'z was drawn from the prior' (as opposed to 'z is a code of q(z|x)')."""

    def __init__(self, latent_dim, hidden, dropout=0.2):
        super().__init__()
        self.model = nn.Sequential(*_hidden_stack(latent_dim, hidden, dropout),
                                   nn.Linear(hidden, 1))

    def forward(self, z):
        return self.model(z)  # [B, 1] logits


def build_networks(cfg, in_dim):
    """The three networks for a Config; ``in_dim`` comes from the data (784 for MNIST)."""
    return {
        "encoder": Encoder(in_dim, cfg.N, cfg.latent_dim, cfg.dropout, cfg.encoder, cfg.eps_std),
        "decoder": Decoder(cfg.latent_dim, cfg.N, in_dim, cfg.dropout),
        "discriminator": Discriminator(cfg.latent_dim, cfg.N, cfg.dropout),
    }
