"""The three networks of the MNIST adversarial autoencoder (paper §3 and Appendix A).

Encoder q(z|x), decoder p(x|z) and discriminator D(z): fully connected, two hidden layers of
``hidden`` units with ReLU, dropout after each hidden layer as in the reference reproduction.
Layer indices inside each ``model`` Sequential are the reference's (Linear at 0, 3 and 6), so
the parameter names match its checkpoints (``model.0.weight``, ``mu.weight``, ...).

The decoder and the discriminator optionally take a one-hot label next to the code
(``label_dim`` extra input units), for the label-conditioned AAEs in families/labels.py;
with ``label_dim=0``, the default, they are the likelihood model's networks. The categorical
AAE's encoder and cluster-head decoder live in families/categorical.py.

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


def hidden_stack(in_dim, hidden, dropout, batch_norm=False):
    """Linear, Dropout, ReLU, twice: the reference's layer order (indices 0..5). With
    ``batch_norm``, a BatchNorm1D after each Linear (the categorical encoder's option)."""
    layers = []
    for width_in in (in_dim, hidden):
        layers.append(nn.Linear(width_in, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1D(hidden))
        layers += [Dropout(dropout), nn.ReLU()]
    return layers


def leaky_stack(in_dim, widths, batch_norm):
    """Linear and LeakyReLU(0.2) per width, batch normalisation before the second activation
    if ``batch_norm``: the layers of eriklindernoren/PyTorch-GAN's aae.py, the network the
    reference reproduction compared itself with (``--architecture pytorch_gan``)."""
    layers = []
    for i, width in enumerate(widths):
        layers.append(nn.Linear(in_dim, width))
        if batch_norm and i == 1:
            layers.append(nn.BatchNorm1D(width))
        layers.append(nn.LeakyReLU(0.2))
        in_dim = width
    return layers


class Encoder(nn.Layer):
    """q(z|x). ``kind='gaussian'``: z = mu + exp(logvar / 2) * eps with eps ~ N(0, eps_std^2),
    drawn in train and eval mode alike (as the reference does; its eps_std is the prior's 5).
    ``kind='deterministic'``: z = mu, the encoder the paper used for its likelihood result.
    ``body``: other hidden layers than the reference's (ending in ``hidden`` units)."""

    def __init__(self, in_dim, hidden, latent_dim, dropout=0.2, kind="gaussian", eps_std=5.0,
                 body=None):
        super().__init__()
        if kind not in ("gaussian", "deterministic"):
            raise ValueError(f"unknown encoder kind {kind!r}")
        self.kind = kind
        self.eps_std = float(eps_std)
        self.model = nn.Sequential(*(body or hidden_stack(in_dim, hidden, dropout)))
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


def add_noise(x, std, training):
    """x + N(0, std^2) noise in training; x itself in eval mode or with std 0 (nothing drawn)."""
    if training and std > 0:
        return x + paddle.normal(0.0, std, x.shape)
    return x


def with_label(z, label, label_dim, who):
    """[z, label] for a network with ``label_dim`` extra input units, z alone without."""
    if not label_dim:
        if label is not None:
            raise ValueError(f"this {who} takes no label input")
        return z
    if label is None or label.shape[-1] != label_dim:
        raise ValueError(f"this {who} needs a one-hot label of {label_dim} units")
    return paddle.concat([z, label.astype(z.dtype)], axis=1)  # [B, latent_dim + label_dim]


class Decoder(nn.Layer):
    """p(x|z): code -> logits of the pixel means (Bernoulli decoder, sigmoid output).

    ``label_dim`` > 0: the supervised AAE's decoder p(x|y, z) (paper §4, Figure 6), which also
    receives the one-hot label y, so that the code z is left to learn the style (and the
    categorical AAE's, which receives q(y|x), paper Figure 8)."""

    def __init__(self, latent_dim, hidden, out_dim, dropout=0.2, label_dim=0, body=None):
        super().__init__()
        self.label_dim = int(label_dim)
        body = body or hidden_stack(latent_dim + self.label_dim, hidden, dropout)
        self.model = nn.Sequential(*body, nn.Linear(hidden, out_dim))

    @property
    def out_dim(self):
        """Pixels per image (the output layer's width)."""
        return self.model[-1].weight.shape[1]

    def forward(self, z, y=None):
        return self.model(with_label(z, y, self.label_dim, "decoder"))  # [B, out] logits

    def probs(self, z, y=None):
        return F.sigmoid(self.forward(z, y))  # [B, out_dim] pixel means in [0, 1]


class Discriminator(nn.Layer):
    """D(z): the logit of 'z was drawn from the prior' (as opposed to 'z is a code of q(z|x)').

    ``label_dim`` > 0: D(z, y) of the paper's §2.3 (Figure 3), which also receives a one-hot
    label with an extra slot for 'unlabelled'; the label selects the decision boundary of its
    own mixture component (or swiss roll section), the extra slot that of the whole prior.

    ``noise_std`` > 0 (``--disc_noise``): in training, N(0, noise_std^2) noise is added to every
    z it is shown (prior samples and codes alike; the label is left as it is), which blurs what
    the discriminator can tell apart. 0, the default, draws nothing."""

    def __init__(self, latent_dim, hidden, dropout=0.2, label_dim=0, noise_std=0.0, body=None):
        super().__init__()
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.label_dim = int(label_dim)
        self.noise_std = float(noise_std)
        body = body or hidden_stack(latent_dim + self.label_dim, hidden, dropout)
        self.model = nn.Sequential(*body, nn.Linear(hidden, 1))

    def forward(self, z, y_onehot=None):
        z = add_noise(z, self.noise_std, self.training)
        return self.model(with_label(z, y_onehot, self.label_dim, "discriminator"))  # [B, 1]


def build_networks(cfg, in_dim, decoder_labels=0, discriminator_labels=0):
    """The three networks for a Config; ``in_dim`` comes from the data (784 pixels for MNIST).
    The label units are 0 for the likelihood model (families/labels.py sets them)."""
    if cfg.architecture == "pytorch_gan":
        return pytorch_gan_networks(cfg, in_dim)
    return {
        "encoder": Encoder(in_dim, cfg.N, cfg.latent_dim, cfg.dropout, cfg.encoder, cfg.eps_std),
        "decoder": Decoder(cfg.latent_dim, cfg.N, in_dim, cfg.dropout, decoder_labels),
        "discriminator": Discriminator(cfg.latent_dim, cfg.N, cfg.dropout, discriminator_labels,
                                       noise_std=cfg.disc_noise),
    }


def pytorch_gan_networks(cfg, in_dim):
    """The networks of eriklindernoren/PyTorch-GAN's aae.py at ``cfg.N`` units (its 512):
    encoder in-N-N with batch normalisation before the second LeakyReLU, then mu and logvar
    heads (z = mu + exp(logvar / 2) * eps, its eps ~ N(0, 1) with ``--eps_std 1``); decoder
    latent-N-N-in likewise; discriminator latent-N-N/2-1, no batch normalisation. No dropout.
    Trained here by the reference's phases and losses, not PyTorch-GAN's (docs/deviations.md)."""
    n = cfg.N
    return {
        "encoder": Encoder(in_dim, n, cfg.latent_dim, kind=cfg.encoder, eps_std=cfg.eps_std,
                           body=leaky_stack(in_dim, (n, n), batch_norm=True)),
        "decoder": Decoder(cfg.latent_dim, n, in_dim,
                           body=leaky_stack(cfg.latent_dim, (n, n), batch_norm=True)),
        "discriminator": Discriminator(cfg.latent_dim, n // 2, noise_std=cfg.disc_noise,
                                       body=leaky_stack(cfg.latent_dim, (n, n // 2),
                                                        batch_norm=False)),
    }
