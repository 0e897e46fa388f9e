"""The categorical AAE of the paper's §5-7 (Figure 8): semi-supervised classification,
unsupervised clustering and dimensionality reduction.

The encoder q(y, z|x) outputs a categorical q(y|x) over K categories and a style code z; the
decoder reconstructs x from [z, y] (y enters as the softmax of q(y|x)). Two discriminators
regularize the two codes: D_z matches z to a Gaussian, D_y matches q(y|x) to one-hot samples
of Cat(K). A mini-batch goes through four phases: reconstruction, both discriminators, the
encoder as a generator against both, and, with labels (§5), a classification phase on a
labelled mini-batch. Without labels it is the clustering AAE (§6). With ``--cluster_heads``
(§7, Figure 10) the decoder sees r = y W + z, W a learned matrix of cluster heads.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from config import N_CLASSES
from families.base import ModelFamily
from families.labels import labeled_subset  # the same seeded draw as label regularization
from network import Decoder, Discriminator, Dropout, add_noise, hidden_stack, with_label
from priors import CategoricalPrior, PaddleRandom, build_prior, grid_codes
from utils import run
from utils.metrics import class_probabilities, classification_error, clustering_error
from utils.steps import (aae_optimizer_plan, discriminator_loss, frozen, generator_loss,
                         make_optimizers, no_sync, one_hot, update)


class CategoricalEncoder(nn.Layer):
    """q(y, z|x) (paper Figure 8): one hidden stack, then two heads: ``class_logits`` of the
    categorical q(y|x) over ``n_categories`` and a deterministic ``style`` code z.

    Two corruptions of the image it is shown, in train mode only (the decoder's target stays
    the clean image): ``input_noise`` > 0 adds N(0, input_noise^2) noise; ``input_dropout`` > 0
    zeroes each pixel with that probability (scaling the others like dropout), the 20% input
    dropout public implementations read in the paper's clustering appendix. ``batchnorm``:
    batch normalization after each hidden linear layer (the same reading of that appendix)."""

    def __init__(self, in_dim, hidden, n_categories, latent_dim, dropout=0.2, input_noise=0.0,
                 input_dropout=0.0, batchnorm=False):
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        self.input_noise = float(input_noise)
        self.input_dropout = Dropout(input_dropout)  # draws nothing at 0
        self.model = nn.Sequential(*hidden_stack(in_dim, hidden, dropout, batchnorm))
        self.class_logits = nn.Linear(hidden, n_categories)
        self.style = nn.Linear(hidden, latent_dim)

    def hidden(self, x):
        """The last hidden layer: [B, hidden]."""
        x = add_noise(x.reshape([x.shape[0], -1]), self.input_noise, self.training)
        return self.model(self.input_dropout(x))

    def logits(self, x):
        """The logits of q(y|x): [B, n_categories] (softmax gives the class probabilities)."""
        return self.class_logits(self.hidden(x))

    def mean(self, x):
        """The style code z (for the code-space plots, as ``Encoder.mean``)."""
        return self.style(self.hidden(x))

    def forward(self, x):
        h = self.hidden(x)  # [B, hidden]
        return F.softmax(self.class_logits(h), axis=1), self.style(h)  # [B, K], [B, latent]


def categorical_encoder(cfg, in_dim):
    """The CategoricalEncoder of a run's config."""
    return CategoricalEncoder(in_dim, cfg.N, cfg.n_categories, cfg.latent_dim, cfg.dropout,
                              cfg.input_noise, cfg.input_dropout, cfg.encoder_batchnorm)


class ClusterHeadDecoder(nn.Layer):
    """The dimensionality-reduction AAE's decoder (paper §7, Figure 10): a learned matrix W
    [n_categories, latent_dim] whose rows are the cluster heads; it decodes the representation
    r = y W + z, the head of y's category plus the style."""

    def __init__(self, latent_dim, hidden, out_dim, n_categories, dropout=0.2, head_std=1.0):
        super().__init__()
        self.label_dim = int(n_categories)
        # rows drawn from N(0, head_std^2 I) (the paper gives no initialisation)
        self.cluster_heads = self.create_parameter(
            [self.label_dim, latent_dim], default_initializer=nn.initializer.Normal(0.0, head_std))
        self.model = nn.Sequential(*hidden_stack(latent_dim, hidden, dropout),
                                   nn.Linear(hidden, out_dim))

    out_dim = Decoder.out_dim

    def representation(self, z, y_probs):
        """r = y W + z [B, latent_dim]: the dimensionality-reduction AAE's code."""
        with_label(z, y_probs, self.label_dim, "decoder")  # checks y's width
        return z + paddle.matmul(y_probs.astype(z.dtype), self.cluster_heads)

    def forward(self, z, y_probs):
        return self.model(self.representation(z, y_probs))  # [B, out] logits

    def probs(self, z, y_probs):
        return F.sigmoid(self.forward(z, y_probs))


def cluster_head_cost(heads, eta):
    """Paper §7: every pair of cluster heads (rows of ``heads`` [K, d]) closer than ``eta``
    costs eta - their distance; pairs at least eta apart cost nothing."""
    k = heads.shape[0]
    diff = heads.unsqueeze(1) - heads.unsqueeze(0)  # [K, K, d]
    # the epsilon keeps sqrt differentiable on the diagonal, which the mask then drops
    distance = paddle.sqrt((diff * diff).sum(axis=-1) + 1e-12)  # [K, K]
    upper = paddle.to_tensor(np.triu(np.ones((k, k), dtype=np.float32), 1))  # each pair once
    return (F.relu(eta - distance) * upper).sum()


# ---------------------------------------------------------------------------------------
# The four phases (paper Figure 8)
# ---------------------------------------------------------------------------------------
def reconstruction_phase(x, nets, opts, sync=no_sync, cluster_head_eta=None, image_sum=False):
    """x -> (q(y|x), z) -> decoder([z, y]), the softmax y decoded as it is; a decoder with
    cluster heads also pays ``cluster_head_cost``. ``image_sum``: the step is taken on the BCE
    summed over each image's pixels (--recon_reduction image_sum), not on its mean. Returns
    (BCE per pixel, the heads' cost or None)."""
    encoder, decoder = nets["encoder"], nets["decoder"]
    encoder.train()
    decoder.train()
    y_probs, z_codes = encoder(x)
    head_cost = None
    if cluster_head_eta is not None:
        head_cost = cluster_head_cost(decoder.cluster_heads, cluster_head_eta)
    recon_loss = F.binary_cross_entropy_with_logits(decoder(z_codes, y_probs), x)
    # the paper's SGD rates are meant for a per-image cost (Appendix); the default keeps the
    # reference's per-pixel mean, and multiplies nothing, so its step is unchanged
    objective = recon_loss * float(x.shape[1]) if image_sum else recon_loss
    update(objective if head_cost is None else objective + head_cost, opts,
           ("decoder", "encoder"), sync)
    return recon_loss, head_cost


def discriminator_phase(x, z_prior, y_prior, nets, opts, sync=no_sync, train_codes=False):
    """D_z learns Gaussian samples z_prior against the style codes, D_y one-hot samples
    y_prior of Cat(K) against the softmax q(y|x); returns (D_z's loss, D_y's loss). The codes
    are the eval-mode encoder's (no input corruption or dropout); ``train_codes``
    (--disc_codes train): the train-mode encoder's, the codes the generator phase shows them
    (the paper does not say which; with batch normalisation this forward also moves its
    running statistics)."""
    if train_codes:
        nets["encoder"].train()
    else:
        nets["encoder"].eval()
    with paddle.no_grad():  # codes are constants here
        y_codes, z_codes = nets["encoder"](x)
    losses = []
    for codes, prior, name in ((z_codes, z_prior, "discriminator"),
                               (y_codes, y_prior, "discriminator_y")):
        nets[name].train()
        d_logits = nets[name](paddle.concat([prior, codes]))
        losses.append(update(discriminator_loss(d_logits), opts, (name,), sync))
    return tuple(losses)


def generator_phase(x, nets, opts, sync=no_sync):
    """One encoder update that makes D_z take its style codes and D_y its q(y|x) for prior
    samples; returns (the z loss, the y loss)."""
    d_z, d_y = nets["discriminator"], nets["discriminator_y"]
    nets["encoder"].train()
    d_z.train()
    d_y.train()
    with frozen(d_z, d_y):
        y_codes, z_codes = nets["encoder"](x)
        g_z_loss, g_y_loss = generator_loss(d_z(z_codes)), generator_loss(d_y(y_codes))
        update(g_z_loss + g_y_loss, opts, ("encoder_adversarial",), sync)
    return g_z_loss, g_y_loss


def classification_phase(x_labeled, y_labeled, nets, opts, sync=no_sync):
    """The semi-supervised phase (paper §5): q(y|x) minimises the cross-entropy on a labelled
    mini-batch (``y_labeled``: int64 tensor of classes); returns that loss."""
    nets["encoder"].train()
    class_loss = F.cross_entropy(nets["encoder"].logits(x_labeled), y_labeled.reshape([-1, 1]))
    return update(class_loss, opts, ("classifier",), sync)


# ---------------------------------------------------------------------------------------
# Which images keep their label, and in which mini-batches they are seen
# ---------------------------------------------------------------------------------------
def semi_supervised_subset(y, n_labeled, n_classes, seed):
    """The labelled training images (paper §5: 100, 1000 or all labels): indices into y, the
    same number of each class, fixed by the seed; all of them when n_labeled >= len(y)."""
    if n_labeled >= len(y):
        return np.arange(len(y))
    return labeled_subset(y, n_labeled, 0, n_classes, seed)[0]


def labeled_batch_indices(n_labeled, batch_size, step, seed):
    """Rows of the labelled set for training step ``step``: the set is cycled through, each
    pass in a new order fixed by (seed, pass), in mini-batches of min(batch_size, n_labeled);
    a function of the step, so a resumed run draws the same batches."""
    size = min(batch_size, n_labeled)
    per_pass = n_labeled // size  # whole mini-batches per pass (a remainder waits a pass)
    pass_index, k = divmod(step, per_pass)
    order = run.stream(seed, "labeled_batches", pass_index).permutation(n_labeled)
    return order[k * size:(k + 1) * size]


def validation_error(clustering, encoder, x_train, y_train, x_valid, y_valid):
    """The error on the validation images, measured as classify.py measures the test error:
    semi-supervised, argmax q(y|x) against the label; clustering, each category labelled by
    the training image it is most sure of (paper §6)."""
    valid_probs = class_probabilities(encoder, x_valid)
    if clustering:
        return clustering_error(class_probabilities(encoder, x_train), y_train, valid_probs,
                                y_valid)
    return classification_error(valid_probs, y_valid)


class CategoricalAAE(ModelFamily):
    """The categorical AAE of Figure 8: the common part of SemiSupervisedAAE and ClusteringAAE
    below, not a family of its own (the interface: families/base.py)."""

    data_parts = ("train", "valid")  # the validation error is measured every epoch
    data_parallel = False  # its labelled mini-batches are not sharded
    metric_names = ("valid_error",)
    select_by = "valid_error"  # model/best.npz: the epoch of the lowest validation error
    classifies = True
    decoder_label = "category"
    has_classification_phase = False  # q(y|x) also trained on labelled images (§5)

    @classmethod
    def build_networks(cls, cfg, in_dim, n_classes=N_CLASSES):
        k = cfg.n_categories
        # built in this order: the order fixes which random numbers initialise which weights
        encoder = categorical_encoder(cfg, in_dim)
        if cfg.cluster_heads:
            # heads start at the spread their cost asks for (std eta, chosen): Adam at gen_lr
            # moves them only ~0.1 an epoch
            decoder = ClusterHeadDecoder(cfg.latent_dim, cfg.N, in_dim, k, cfg.dropout,
                                         head_std=cfg.cluster_head_eta)
        else:
            decoder = Decoder(cfg.latent_dim, cfg.N, in_dim, cfg.dropout, label_dim=k)
        return {
            "encoder": encoder,
            "decoder": decoder,
            "discriminator": Discriminator(cfg.latent_dim, cfg.N, cfg.dropout,
                                           noise_std=cfg.disc_noise),
            "discriminator_y": Discriminator(k, cfg.N, cfg.dropout, noise_std=cfg.disc_noise),
        }

    @classmethod
    def optimizer_plan(cls, cfg):
        plan = {**aae_optimizer_plan(cfg),
                "discriminator_y": ("discriminator_y", cfg.reg_lr, cfg.reg_momentum)}
        if cls.has_classification_phase:  # q(y|x)'s own optimizer
            plan["classifier"] = ("encoder", cfg.class_lr, cfg.class_momentum)
        return plan

    def __init__(self, cfg, data):
        # cfg, data: the run's Config and split (load_split's dict)
        self.cfg = cfg
        self.x_train, self.y_train = data["x_train"], None  # the images' labels stay unseen
        self.y_train_true = data["y_train"]  # for the clustering error's category labels
        self.x_valid, self.y_valid = data["x_valid"], data["y_valid"]
        self.prior = build_prior(cfg)
        self.category_prior = CategoricalPrior(cfg.n_categories)
        self.x_labeled = self.y_labeled = None
        if self.has_classification_phase:
            rows = semi_supervised_subset(self.y_train_true, cfg.n_labeled, N_CLASSES, cfg.seed)
            self.x_labeled = paddle.to_tensor(self.x_train[rows])
            self.y_labeled = self.y_train_true[rows].astype(np.int64)
        self.nets = self.build_networks(cfg, self.x_train.shape[1])
        self.opts = make_optimizers(cfg, self.nets, self.optimizer_plan(cfg))
        self.loss_names = (("recon_loss", "d_loss", "g_loss", "d_y_loss", "g_y_loss")
                           + (("class_loss",) if self.y_labeled is not None else ())
                           + (("head_loss",) if cfg.cluster_heads else ()))
        self.random = PaddleRandom()

    def step(self, x, y, step, sync=no_sync):
        n = x.shape[0]
        recon_loss, head_cost = reconstruction_phase(
            x, self.nets, self.opts, sync, self.cfg.cluster_head_eta if self.cfg.cluster_heads
            else None, image_sum=self.cfg.recon_reduction == "image_sum")
        z_prior = paddle.to_tensor(self.prior.sample(n, self.random).astype("float32"))
        y_prior = paddle.to_tensor(self.category_prior.sample(n, self.random).astype("float32"))
        d_z_loss, d_y_loss = discriminator_phase(x, z_prior, y_prior, self.nets, self.opts, sync,
                                                 train_codes=self.cfg.disc_codes == "train")
        g_z_loss, g_y_loss = generator_phase(x, self.nets, self.opts, sync)
        losses = {"recon_loss": recon_loss, "d_loss": d_z_loss, "g_loss": g_z_loss,
                  "d_y_loss": d_y_loss, "g_y_loss": g_y_loss}
        if self.y_labeled is not None:
            losses["class_loss"] = self.classify_labeled(step, sync)
        if head_cost is not None:
            losses["head_loss"] = head_cost
        return {name: float(value) for name, value in losses.items()}

    def classify_labeled(self, step, sync=no_sync):
        """The classification phase on step ``step``'s labelled mini-batch; returns its loss."""
        rows = labeled_batch_indices(len(self.y_labeled), self.cfg.batch_size, step,
                                     self.cfg.seed)
        return classification_phase(paddle.gather(self.x_labeled, paddle.to_tensor(rows)),
                                    paddle.to_tensor(self.y_labeled[rows]), self.nets,
                                    self.opts, sync)

    def epoch_metrics(self, x_train):
        return {"valid_error": validation_error(
            self.clusters, self.nets["encoder"], x_train, self.y_train_true,
            self.x_valid, self.y_valid)}

    def grid(self, seed):
        k = self.cfg.n_categories
        z, categories, columns = grid_codes(self.prior, run.stream(seed, "sample_grid"), k)
        return paddle.to_tensor(z.astype("float32")), one_hot(categories, k), columns

    def describe(self):
        if self.y_labeled is None:
            return None
        return (f"{self.cfg.labels}: {len(self.y_labeled)} labelled images (per class "
                f"{np.bincount(self.y_labeled, minlength=N_CLASSES).tolist()}) of "
                f"{len(self.x_train)}")


class SemiSupervisedAAE(CategoricalAAE):
    """Paper §5, Table 2 (``--labels semi_supervised``): the classification phase trains
    q(y|x) on a labelled mini-batch after the three phases of every step."""

    has_classification_phase = True


class ClusteringAAE(CategoricalAAE):
    """Paper §6, Table 3 (``--labels clustering``): no labels; each category is a cluster,
    named after the validation image it is most sure of."""

    clusters = True


class SupervisedClassifier(SemiSupervisedAAE):  # (it inherits what is added there)
    """Table 2's baseline (not in the paper): the semi-supervised AAE's encoder, labelled set,
    labelled mini-batches, optimizer and dropout, trained by the classification phase alone.
    What the semi-supervised AAE gains over it is what its unlabelled images and adversarial
    regularization add. Its 'epoch' is as many steps as the AAE's, one labelled mini-batch
    each."""

    has_decoder = False
    decoder_label = None

    @classmethod
    def build_networks(cls, cfg, in_dim, n_classes=N_CLASSES):
        # the same first network, so the same initial weights as the AAE's encoder
        return {"encoder": categorical_encoder(cfg, in_dim)}

    @classmethod
    def optimizer_plan(cls, cfg):
        return {"classifier": ("encoder", cfg.class_lr, cfg.class_momentum)}

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.loss_names = ("class_loss",)

    def step(self, x, y, step, sync=no_sync):
        return {"class_loss": float(self.classify_labeled(step, sync))}

    def grid(self, seed):
        return None  # no decoder: nothing to draw
