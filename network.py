"""The three networks of the MNIST adversarial autoencoder (paper §3 and Appendix A).

Encoder q(z|x), decoder p(x|z) and discriminator D(z): fully connected, two hidden layers of
``hidden`` units with ReLU, dropout after each hidden layer as in the reference reproduction.
Layer indices inside each ``model`` Sequential are the reference's (Linear at 0, 3 and 6), so
the parameter names match its checkpoints (``model.0.weight``, ``mu.weight``, ...).

The decoder and the discriminator optionally take a one-hot label next to the code
(``label_dim`` extra input units): the supervised AAE's decoder (paper §4) and the
label-regularized discriminator (paper §2.3). With ``label_dim=0``, the default, they are the
likelihood model's networks, unchanged.

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


def add_noise(x, std, training):
    """x + N(0, std^2) noise in training; x itself in eval mode or with std 0 (nothing drawn)."""
    if training and std > 0:
        return x + paddle.normal(0.0, std, x.shape)
    return x


class CategoricalEncoder(nn.Layer):
    """q(y, z|x) of the semi-supervised and clustering AAEs (paper §5-6, Figure 8): one hidden
    stack, then two heads: ``class_logits`` of the categorical q(y|x) over ``n_categories``
    and a deterministic ``style`` code z of ``latent_dim`` units.

    ``input_noise`` > 0: in training, N(0, input_noise^2) noise is added to every image it is
    shown, like dropout only in train mode (the decoder's target stays the clean image)."""

    def __init__(self, in_dim, hidden, n_categories, latent_dim, dropout=0.2, input_noise=0.0):
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        self.input_noise = float(input_noise)
        self.model = nn.Sequential(*_hidden_stack(in_dim, hidden, dropout))
        self.class_logits = nn.Linear(hidden, n_categories)
        self.style = nn.Linear(hidden, latent_dim)

    def hidden(self, x):
        """The last hidden layer: [B, hidden]."""
        x = add_noise(x.reshape([x.shape[0], -1]), self.input_noise, self.training)
        return self.model(x)

    def logits(self, x):
        """The logits of q(y|x): [B, n_categories] (softmax gives the class probabilities)."""
        return self.class_logits(self.hidden(x))

    def mean(self, x):
        """The style code z (for the code-space plots, as ``Encoder.mean``)."""
        return self.style(self.hidden(x))

    def forward(self, x):
        h = self.hidden(x)  # [B, hidden]
        return F.softmax(self.class_logits(h), axis=1), self.style(h)  # [B, K], [B, latent]


def _with_label(z, label, label_dim, who):
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
    receives the one-hot label y, so that the code z is left to learn the style.

    ``cluster_heads``: the dimensionality-reduction AAE's decoder (paper §7, Figure 10). It
    holds a learned matrix W [label_dim, latent_dim] whose rows are the cluster heads, and
    decodes the representation r = y W + z: the head of y's category plus the style."""

    def __init__(self, latent_dim, hidden, out_dim, dropout=0.2, label_dim=0,
                 cluster_heads=False, head_std=1.0):
        super().__init__()
        self.label_dim = int(label_dim)
        self.cluster_heads = None
        in_units = latent_dim + self.label_dim
        if cluster_heads:
            if not self.label_dim:
                raise ValueError("cluster heads need label_dim > 0 categories")
            # rows drawn from N(0, head_std^2 I) (the paper gives no initialisation)
            self.cluster_heads = self.create_parameter(
                [self.label_dim, latent_dim],
                default_initializer=nn.initializer.Normal(0.0, head_std))
            in_units = latent_dim
        self.model = nn.Sequential(*_hidden_stack(in_units, hidden, dropout),
                                   nn.Linear(hidden, out_dim))

    def representation(self, z, y):
        """r = y W + z [B, latent_dim]: the dimensionality-reduction AAE's code."""
        if y is None or y.shape[-1] != self.label_dim:
            raise ValueError(f"this decoder needs a category input of {self.label_dim} units")
        return z + paddle.matmul(y.astype(z.dtype), self.cluster_heads)

    def forward(self, z, y_onehot=None):
        if self.cluster_heads is not None:
            return self.model(self.representation(z, y_onehot))  # [B, out] logits
        return self.model(_with_label(z, y_onehot, self.label_dim, "decoder"))  # [B, out] logits

    def probs(self, z, y_onehot=None):
        return F.sigmoid(self.forward(z, y_onehot))  # [B, out_dim] pixel means in [0, 1]


class Discriminator(nn.Layer):
    """D(z): the logit of 'z was drawn from the prior' (as opposed to 'z is a code of q(z|x)').

    ``label_dim`` > 0: D(z, y) of the paper's §2.3 (Figure 3), which also receives a one-hot
    label with an extra slot for 'unlabelled'; the label selects the decision boundary of its
    own mixture component (or swiss roll section), the extra slot that of the whole prior.

    ``input_noise`` > 0: in training, N(0, input_noise^2) noise is added to every z it is
    shown (prior samples and codes alike; the label is left as it is), which blurs what the
    discriminator can tell apart. 0, the default, draws nothing."""

    def __init__(self, latent_dim, hidden, dropout=0.2, label_dim=0, input_noise=0.0):
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        self.label_dim = int(label_dim)
        self.input_noise = float(input_noise)
        self.model = nn.Sequential(*_hidden_stack(latent_dim + self.label_dim, hidden, dropout),
                                   nn.Linear(hidden, 1))

    def forward(self, z, y_onehot=None):
        z = add_noise(z, self.input_noise, self.training)
        return self.model(_with_label(z, y_onehot, self.label_dim, "discriminator"))  # [B, 1]


def label_units(cfg, n_classes):
    """(decoder, discriminator) label input units for a Config: the supervised decoder takes a
    one-hot of n_classes; the label-regularized discriminator one of n_classes + 1, the last
    unit meaning 'unlabelled' (paper §2.3: 11 units for MNIST's 10 digits); with
    ``label_critic``, the supervised AAE's discriminator one of n_classes (every digit keeps
    its label)."""
    if cfg.labels == "regularization":
        return 0, n_classes + 1
    if cfg.labels == "supervised":
        return n_classes, (n_classes if cfg.label_critic else 0)
    return 0, 0


CATEGORICAL_MODES = ("semi_supervised", "clustering")  # --labels of the Figure 8 model


def build_networks(cfg, in_dim, n_classes=10):
    """The three networks for a Config; ``in_dim`` and ``n_classes`` come from the data (784
    pixels and 10 digits for MNIST; n_classes matters only with labels).

    The semi-supervised / clustering AAE (paper Figure 8) has four: the encoder q(y, z|x), the
    decoder p(x|y, z) (y enters as the softmax of q(y|x), in the label units; with
    ``cluster_heads`` through r = y W + z), and two discriminators, one on the style z and one
    on the categorical y."""
    if cfg.labels in CATEGORICAL_MODES:
        k = cfg.n_categories
        return {
            "encoder": CategoricalEncoder(in_dim, cfg.N, k, cfg.latent_dim, cfg.dropout,
                                          input_noise=cfg.input_noise),
            # cluster heads start at the spread their cost asks for (std eta, chosen): Adam at
            # gen_lr moves them only ~0.1 an epoch
            "decoder": Decoder(cfg.latent_dim, cfg.N, in_dim, cfg.dropout, label_dim=k,
                               cluster_heads=cfg.cluster_heads, head_std=cfg.cluster_head_eta),
            "discriminator": Discriminator(cfg.latent_dim, cfg.N, cfg.dropout,
                                           input_noise=cfg.disc_noise),
            "discriminator_y": Discriminator(k, cfg.N, cfg.dropout, input_noise=cfg.disc_noise),
        }
    decoder_labels, discriminator_labels = label_units(cfg, n_classes)
    return {
        "encoder": Encoder(in_dim, cfg.N, cfg.latent_dim, cfg.dropout, cfg.encoder, cfg.eps_std),
        "decoder": Decoder(cfg.latent_dim, cfg.N, in_dim, cfg.dropout, decoder_labels),
        "discriminator": Discriminator(cfg.latent_dim, cfg.N, cfg.dropout, discriminator_labels,
                                       input_noise=cfg.disc_noise),
    }
