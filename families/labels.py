"""The label-conditioned AAEs: the likelihood model's three phases with a one-hot label
beside the code.

- ``LabelRegularizedAAE`` (paper §2.3, Figures 3-4): the discriminator also sees a one-hot
  label with an extra 'unlabelled' slot, and a labelled image's prior sample comes from its
  label's mixture component or swiss roll section; the decoder sees the code alone.
- ``SupervisedAAE`` (paper §4, Figures 6-7): the decoder also sees the one-hot label, so the
  code is left with the style; with ``--label_critic`` (not in the paper) the discriminator
  sees the label too, next to prior samples drawn whatever the label.
"""
import numpy as np
import paddle
import paddle.nn.functional as F

import network
from config import N_CLASSES
from families.base import ModelFamily
from priors import UNLABELED, PaddleRandom, build_prior, grid_codes
from utils import run
from utils.errors import UserError
from utils.steps import (discriminator_loss, frozen, generator_loss, make_optimizers, no_sync,
                         one_hot, update)


def labeled_subset(y, n_labeled, n_unlabeled, n_classes, seed):
    """The training images of label regularization (paper §2.3: 10k labelled + 40k unlabelled
    MNIST digits): (indices into y, the labels the model is given: UNLABELED for the
    unlabelled ones). The labelled ones hold the same number of each class (the first
    n_labeled % n_classes classes one more), the unlabelled ones are drawn from the rest; both
    are fixed by the seed."""
    rng = run.stream(seed, "labeled_subset")
    per_class = np.full(n_classes, n_labeled // n_classes)
    per_class[:n_labeled % n_classes] += 1
    labeled = []
    for digit in range(n_classes):
        members = np.flatnonzero(y == digit)
        if len(members) < per_class[digit]:
            raise UserError(f"--n_labeled {n_labeled} needs {per_class[digit]} images of class "
                            f"{digit}, the first --N_train {len(y)} training images hold "
                            f"{len(members)}; lower --n_labeled or raise --N_train")
        labeled.append(rng.choice(members, per_class[digit], replace=False))
    labeled = np.sort(np.concatenate(labeled))
    rest = np.setdiff1d(np.arange(len(y)), labeled)
    if n_unlabeled > len(rest):
        raise UserError(f"--n_labeled {n_labeled} + --n_unlabeled {n_unlabeled} exceed the "
                        f"--N_train {len(y)} training images; lower them or raise --N_train")
    unlabeled = np.sort(rng.choice(rest, n_unlabeled, replace=False))
    return (np.concatenate([labeled, unlabeled]),
            np.concatenate([y[labeled], np.full(n_unlabeled, UNLABELED, dtype=y.dtype)]))


class _LabelConditionedAAE(ModelFamily):
    """The three phases of train.py's likelihood model, with labels; a subclass says which
    network sees which label (``label_units``, ``prior_and_labels``). The optimizers are the
    likelihood model's."""

    @classmethod
    def build_networks(cls, cfg, in_dim, n_classes=N_CLASSES):
        return network.build_networks(cfg, in_dim, *cls.label_units(cfg, n_classes))

    def __init__(self, cfg, data):
        self.cfg = cfg
        self.prior = build_prior(cfg)
        self.x_train, self.y_train = self.training_images(data["x_train"], data["y_train"])
        self.nets = self.build_networks(cfg, self.x_train.shape[1])
        self.opts = make_optimizers(cfg, self.nets, self.optimizer_plan(cfg))
        self.loss_names = ("recon_loss", "d_loss", "g_loss")
        self.random = PaddleRandom()

    def sample_prior(self, n, labels=None):
        return paddle.to_tensor(self.prior.sample(n, self.random, labels).astype("float32"))

    def step(self, x, y, step, sync=no_sync):
        """``y``: the batch's labels (numpy ints, UNLABELED where a label is not given)."""
        enc, dec, disc = self.nets["encoder"], self.nets["decoder"], self.nets["discriminator"]
        y_decoder = one_hot(y, dec.label_dim) if dec.label_dim else None
        enc.train()
        dec.train()
        recon_loss = F.binary_cross_entropy_with_logits(dec(enc(x), y_decoder), x)
        update(recon_loss, self.opts, ("decoder", "encoder"), sync)

        z_prior, y_disc = self.prior_and_labels(y, y_decoder)
        enc.eval()
        disc.train()
        with paddle.no_grad():  # codes are constants here
            z_codes = enc(x)
        d_logits = disc(paddle.concat([z_prior, z_codes]),
                        None if y_disc is None else paddle.concat([y_disc, y_disc]))
        d_loss = update(discriminator_loss(d_logits), self.opts, ("discriminator",), sync)

        enc.train()
        with frozen(disc):
            g_loss = update(generator_loss(disc(enc(x), y_disc)), self.opts,
                            ("encoder_adversarial",), sync)
        return {"recon_loss": float(recon_loss), "d_loss": float(d_loss),
                "g_loss": float(g_loss)}


class LabelRegularizedAAE(_LabelConditionedAAE):
    """Paper §2.3: D(z, y) with a one-hot label of n_classes + 1 units, the last meaning
    'unlabelled' (11 for MNIST); the prior sample of a labelled image comes from its label's
    part of the prior, that of an unlabelled one from the whole prior."""

    label_prior = True

    @classmethod
    def saved_n_classes(cls, train_cfg, arrays):
        # D's first layer sees [code, one-hot label, 'unlabelled']
        return arrays["net/discriminator/model.0.weight"].shape[0] - train_cfg.latent_dim - 1

    @staticmethod
    def label_units(cfg, n_classes):
        return 0, n_classes + 1  # (decoder, discriminator)

    def training_images(self, x, y):
        used, y_seen = labeled_subset(y, self.cfg.n_labeled, self.cfg.n_unlabeled, N_CLASSES,
                                      self.cfg.seed)
        return x[used], y_seen

    def prior_and_labels(self, y, y_decoder):
        units = self.nets["discriminator"].label_dim
        return (self.sample_prior(len(y), y),
                one_hot(np.where(y == UNLABELED, units - 1, y), units))

    def grid(self, seed):
        z, _, columns = grid_codes(self.prior, run.stream(seed, "sample_grid"))
        return paddle.to_tensor(z.astype("float32")), None, columns

    def describe(self):
        given = self.y_train != UNLABELED
        return (f"label regularization: {int(given.sum())} labelled images (per class "
                f"{np.bincount(self.y_train[given], minlength=N_CLASSES).tolist()}), "
                f"{int((~given).sum())} unlabelled")


class SupervisedAAE(_LabelConditionedAAE):
    """Paper §4: the decoder p(x|y, z) sees every image's one-hot label."""

    decoder_label = "class"

    @classmethod
    def saved_n_classes(cls, train_cfg, arrays):
        return arrays["net/decoder/model.0.weight"].shape[0] - train_cfg.latent_dim  # [z, y]

    @staticmethod
    def label_units(cfg, n_classes):
        return n_classes, (n_classes if cfg.label_critic else 0)  # (decoder, discriminator)

    def training_images(self, x, y):
        return x, y

    def prior_and_labels(self, y, y_decoder):
        # --label_critic: D sees the label with both the code and a prior sample drawn
        # whatever the label, so it can tell a style code that depends on it.
        y_disc = y_decoder if self.nets["discriminator"].label_dim else None
        return self.sample_prior(len(y)), y_disc

    def grid(self, seed):
        label_dim = self.nets["decoder"].label_dim
        z, classes, columns = grid_codes(self.prior, run.stream(seed, "sample_grid"), label_dim)
        return paddle.to_tensor(z.astype("float32")), one_hot(classes, label_dim), columns
