"""Train the MNIST adversarial autoencoder (Makhzani et al. 2015, §2 and §3).

Every mini-batch goes through three phases, as in the paper's §2 and the reference
reproduction:

1. reconstruction: encoder and decoder minimise the reconstruction BCE (Adam, ``gen_lr``);
2. regularization, discriminator: D learns to tell prior samples z ~ N(0, std^2 I) from codes
   of the encoder (encoder in eval mode, codes treated as constants; Adam, ``reg_lr``);
3. regularization, generator: the encoder (train mode) learns to make D call its codes prior
   samples (its own Adam, ``reg_lr``).

The prior is chosen by ``--prior`` (priors.py). ``--labels`` selects one of four variants:
``regularization`` (paper §2.3, Figures 3-4): D also sees a one-hot label with an extra
'unlabelled' slot, and a labelled image's prior sample comes from its label's mixture component
or swiss roll section; ``supervised`` (paper §4, Figures 6-7): the decoder also sees the one-hot
label, so the code is left with the style. ``semi_supervised`` / ``clustering`` (paper §5-6,
Figure 8): the encoder also outputs a categorical q(y|x), the decoder sees [z, y], y and z
each have a discriminator, and ``semi_supervised`` adds a classification phase on labelled
mini-batches. ``--preset NAME`` selects an experiment's settings.

    python train.py                      # the paper/reference config, 200 epochs
    python train.py --n_epochs 1 --N_train 2000
    python train.py --resume             # continue from model/last.npz
    python train.py --preset gmm_labels  # Figure 4a/b; python train.py --help lists presets

Outputs: logs/train.log, logs/loss.csv (epoch means), logs/train_config.json,
images/epoch{N}.png (a fixed set of prior samples decoded), images/loss_curve.png,
images/samples_by_epoch.png (the grids of the first, a tenth, half and the last epoch),
model/last.npz (resume point, every epoch) and model/model{N}.npz (weights, every
``save_every`` epochs and at the end). With ``--visualdl``, also logs/vdl/ for VisualDL
(``visualdl --logdir logs/vdl``): the epoch losses, images/s and sample grids.
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import contextlib
import math
import os
import signal
import time

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F
from PIL import Image

import config
from data_maker import N_CLASSES, load_split
from network import CATEGORICAL_MODES, build_networks
from priors import UNLABELED, CategoricalPrior, PaddleRandom, build_prior
from utils import checkpoint
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger, read_loss_csv
from utils.metrics import class_probabilities, classification_error, clustering_error
from utils.paddle_save_image import save_image
from utils.plots import plot_losses, plot_samples_by_epoch

TRAIN_KEYS = [
    "data_dir", "N_train", "N", "latent_dim", "std", "dropout", "encoder", "eps_std",
    "disc_noise", "n_epochs", "batch_size", "gen_lr", "reg_lr", "seed", "save_every",
    "sample_every", "resume", "device", "model_dir", "images_dir", "logs_dir", "visualdl",
    "prior", "n_components", "gmm_radius", "gmm_radial_std", "gmm_tangential_std",
    "swiss_roll_radius", "swiss_roll_turns", "labels", "label_critic", "n_labeled", "n_unlabeled",
    "preset", "n_categories", "cluster_heads", "cluster_head_eta", "class_lr", "optimizer",
    "gen_momentum", "reg_momentum", "class_momentum", "lr_decay_epochs", "adam_decay_epochs",
    "adam_beta1", "input_noise",
]
# Settings that may differ between a run and its resumption (they do not change the math).
# (A preset only names settings; the settings themselves are compared.)
RESUMABLE_CHANGES = {"n_epochs", "resume", "device", "save_every", "sample_every",
                     "model_dir", "images_dir", "logs_dir", "data_dir", "visualdl", "preset"}
LOSS_NAMES = ("recon_loss", "d_loss", "g_loss")
# The categorical model adds y's adversarial losses (d_loss, g_loss are then z's), and with
# labels the cross-entropy of q(y|x) on the labelled mini-batches.
CATEGORICAL_LOSS_NAMES = ("d_y_loss", "g_y_loss")
CLASS_LOSS_NAMES = ("class_loss",)
HEAD_LOSS_NAMES = ("head_loss",)  # the cluster heads' distance cost (paper §7)
# The categorical models' error on the validation split after each epoch (loss.csv column)
VALID_ERROR = "valid_error"
SAMPLE_GRID_ROWS = 10
# One fixed file, rewritten by every run: VisualDL shows only the newest "vdlrecords*" file of
# a folder, so a resumed run must not start a second one.
VISUALDL_FILE = "vdlrecords.train.log"
# --labels whose decoder takes a class (or category) input next to the code
DECODER_LABEL_MODES = ("supervised",) + CATEGORICAL_MODES


# ---------------------------------------------------------------------------------------
# The three phases of one mini-batch
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def frozen(layer):
    """No gradients for ``layer``'s weights inside the block (gradients still flow through)."""
    params = layer.parameters()
    for p in params:
        p.stop_gradient = True
    try:
        yield
    finally:
        for p in params:
            p.stop_gradient = False


def no_sync(*layers):
    """One process: the gradients are already those of the whole mini-batch."""


def average_gradients(*layers):
    """Data parallel: every process holds the gradient of its shard's mean loss; with equal
    shards their average is the gradient of the whole mini-batch's mean loss."""
    world = dist.get_world_size()
    with paddle.no_grad():  # in-place edits of gradients are refused while recording
        for layer in layers:
            for p in layer.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.scale_(1.0 / world)


def reconstruction_phase(x, encoder, decoder, encoder_opt, decoder_opt, sync=no_sync,
                         y_onehot=None):
    """Phase 1: update encoder and decoder to reconstruct x; returns the BCE per pixel.
    ``y_onehot``: the labels, for the supervised AAE's decoder p(x|y, z)."""
    encoder.train()
    decoder.train()
    return fit_reconstruction(decoder(encoder(x), y_onehot), x, encoder, decoder, encoder_opt,
                              decoder_opt, sync)


def fit_reconstruction(x_logits, x, encoder, decoder, encoder_opt, decoder_opt, sync=no_sync,
                       extra_cost=None):
    """One update of encoder and decoder on the reconstruction BCE of ``x_logits`` (plus
    ``extra_cost`` when given); returns the BCE."""
    recon_loss = F.binary_cross_entropy_with_logits(x_logits, x)
    (recon_loss if extra_cost is None else recon_loss + extra_cost).backward()
    sync(encoder, decoder)
    decoder_opt.step()
    encoder_opt.step()
    decoder_opt.clear_grad(set_to_zero=False)
    encoder_opt.clear_grad(set_to_zero=False)
    return recon_loss


def discriminator_phase(x, z_prior, encoder, discriminator, discriminator_opt, sync=no_sync,
                        y_onehot=None):
    """Phase 2: update D to output 1 on prior samples z_prior and 0 on codes of x; returns
    its loss. ``y_onehot``: with label regularization, the one-hot label D sees with both the
    prior sample and the code of each row (z_prior[i] was drawn from that label's part of the
    prior, paper §2.3)."""
    encoder.eval()
    discriminator.train()
    with paddle.no_grad():  # codes are constants here: no encoder gradient is needed
        z_codes = encoder(x)
    d_labels = None if y_onehot is None else paddle.concat([y_onehot, y_onehot])
    return fit_discriminator(z_prior, z_codes, discriminator, discriminator_opt, sync, d_labels)


def fit_discriminator(z_prior, z_codes, discriminator, discriminator_opt, sync=no_sync,
                      d_labels=None):
    """One update of a discriminator: output 1 on the prior samples, 0 on the codes (both
    constants); returns its loss. ``d_labels``: its label input for [prior; codes]."""
    # One pass over [prior; codes]: the layers act row by row, so this equals two passes.
    d_logits = discriminator(paddle.concat([z_prior, z_codes]), d_labels)
    targets = paddle.concat([paddle.ones([z_codes.shape[0], 1]),
                             paddle.zeros([z_codes.shape[0], 1])])
    # The reference's loss is mean BCE on prior samples + mean BCE on codes: with equal
    # halves, twice the mean over the concatenation.
    d_loss = 2.0 * F.binary_cross_entropy_with_logits(d_logits, targets)
    d_loss.backward()
    sync(discriminator)
    discriminator_opt.step()
    discriminator_opt.clear_grad(set_to_zero=False)
    return d_loss


def generator_phase(x, encoder, discriminator, generator_opt, sync=no_sync, y_onehot=None):
    """Phase 3: update the encoder so D takes its codes for prior samples; returns its loss.
    ``y_onehot``: as in the discriminator phase."""
    encoder.train()
    discriminator.train()
    with frozen(discriminator):  # D is not updated here, so its weight gradients are skipped
        d_logits = discriminator(encoder(x), y_onehot)
        g_loss = F.binary_cross_entropy_with_logits(d_logits, paddle.ones_like(d_logits))
        g_loss.backward()
    sync(encoder)
    generator_opt.step()
    generator_opt.clear_grad(set_to_zero=False)
    return g_loss


def categorical_reconstruction_phase(x, encoder, decoder, encoder_opt, decoder_opt,
                                     sync=no_sync, cluster_head_eta=None):
    """Phase 1 of the semi-supervised / clustering AAE (paper Figure 8): x -> (q(y|x), z) ->
    decoder([z, y]), the softmax y decoded as it is. A decoder with cluster heads (paper §7)
    decodes r = y W + z and its heads also pay ``cluster_head_cost``. Returns (the BCE per
    pixel, the heads' cost or None)."""
    encoder.train()
    decoder.train()
    y_probs, z_codes = encoder(x)
    head_cost = None
    if decoder.cluster_heads is not None:
        head_cost = cluster_head_cost(decoder.cluster_heads, cluster_head_eta)
    recon_loss = fit_reconstruction(decoder(z_codes, y_probs), x, encoder, decoder, encoder_opt,
                                    decoder_opt, sync, head_cost)
    return recon_loss, head_cost


def cluster_head_cost(heads, eta):
    """Paper §7: every pair of cluster heads (rows of ``heads`` [K, d]) closer than ``eta``
    costs eta - their distance; pairs at least eta apart cost nothing."""
    k = heads.shape[0]
    diff = heads.unsqueeze(1) - heads.unsqueeze(0)  # [K, K, d]
    # the epsilon keeps sqrt differentiable on the diagonal, which the mask then drops
    distance = paddle.sqrt((diff * diff).sum(axis=-1) + 1e-12)  # [K, K]
    upper = paddle.to_tensor(np.triu(np.ones((k, k), dtype=np.float32), 1))  # each pair once
    return (F.relu(eta - distance) * upper).sum()


def categorical_discriminator_phase(x, z_prior, y_prior, encoder, discriminators,
                                    discriminator_opts, sync=no_sync):
    """Phase 2 of the semi-supervised / clustering AAE (paper Figure 8): D_z learns Gaussian
    samples z_prior against the style codes, D_y one-hot samples y_prior of Cat(K) against the
    softmax q(y|x); returns (d_z loss, d_y loss)."""
    encoder.eval()
    with paddle.no_grad():  # codes are constants here
        y_codes, z_codes = encoder(x)
    losses = []
    for codes, prior, name in ((z_codes, z_prior, "discriminator"),
                               (y_codes, y_prior, "discriminator_y")):
        discriminators[name].train()
        losses.append(fit_discriminator(prior, codes, discriminators[name],
                                        discriminator_opts[name], sync))
    return tuple(losses)


def categorical_generator_phase(x, encoder, discriminators, generator_opt, sync=no_sync):
    """Phase 3 of the categorical model: one encoder update that makes D_z take its style codes
    and D_y its q(y|x) for prior samples; returns (g_z loss, g_y loss)."""
    encoder.train()
    d_z, d_y = discriminators["discriminator"], discriminators["discriminator_y"]
    d_z.train()
    d_y.train()
    with frozen(d_z), frozen(d_y):
        y_codes, z_codes = encoder(x)
        z_logits, y_logits = d_z(z_codes), d_y(y_codes)
        g_z_loss = F.binary_cross_entropy_with_logits(z_logits, paddle.ones_like(z_logits))
        g_y_loss = F.binary_cross_entropy_with_logits(y_logits, paddle.ones_like(y_logits))
        (g_z_loss + g_y_loss).backward()
    sync(encoder)
    generator_opt.step()
    generator_opt.clear_grad(set_to_zero=False)
    return g_z_loss, g_y_loss


def classification_phase(x_labeled, y_labeled, encoder, classifier_opt, sync=no_sync):
    """The semi-supervised phase (paper §5): the encoder's q(y|x) minimises the cross-entropy
    on a labelled mini-batch (``y_labeled``: int64 tensor of classes); returns that loss."""
    encoder.train()
    class_loss = F.cross_entropy(encoder.logits(x_labeled), y_labeled.reshape([-1, 1]))
    class_loss.backward()
    sync(encoder)
    classifier_opt.step()
    classifier_opt.clear_grad(set_to_zero=False)
    return class_loss


def categorical_train_step(x, nets, opts, sample_prior, sample_categories, sync=no_sync,
                           labeled=None, cluster_head_eta=None):
    """Reconstruction, both regularizations and, given ``labeled`` = (x, y) of a labelled
    mini-batch, classification: the semi-supervised AAE (paper §5); without, the clustering
    AAE (§6). Returns the losses as floats, in the order of ``loss_names``."""
    enc = nets["encoder"]
    recon_loss, head_cost = categorical_reconstruction_phase(
        x, enc, nets["decoder"], opts["encoder"][0], opts["decoder"][0], sync, cluster_head_eta)
    z_prior = sample_prior(x.shape[0])
    y_prior = sample_categories(x.shape[0])
    d_losses = categorical_discriminator_phase(
        x, z_prior, y_prior, enc, nets,
        {name: opts[name][0] for name in ("discriminator", "discriminator_y")}, sync)
    g_losses = categorical_generator_phase(x, enc, nets, opts["generator"][0], sync)
    losses = [recon_loss, d_losses[0], g_losses[0], d_losses[1], g_losses[1]]
    if labeled is not None:
        losses.append(classification_phase(*labeled, enc, opts["classifier"][0], sync))
    if head_cost is not None:
        losses.append(head_cost)
    return tuple(float(v) for v in losses)


def loss_names(cfg):
    """The losses train_step returns for a Config, in order (the columns of loss.csv)."""
    names = LOSS_NAMES
    if cfg.labels in CATEGORICAL_MODES:
        names += CATEGORICAL_LOSS_NAMES
    if cfg.labels == "semi_supervised":
        names += CLASS_LOSS_NAMES
    if cfg.cluster_heads:
        names += HEAD_LOSS_NAMES
    return names


def train_step(x, nets, opts, sample_prior, sync=no_sync, y=None, sample_categories=None,
               labeled=None, cluster_head_eta=None):
    """The three phases on one mini-batch; returns the three losses as floats.
    ``sample_prior(n)`` draws n codes from p(z) (``sample_prior(n, y)`` with label
    regularization: row i from the part of p(z) of label y[i]); ``sync`` averages gradients
    across data-parallel processes; ``y``: the batch's labels as numpy ints, UNLABELED (-1)
    where a label is not given, when a network takes labels.

    The semi-supervised / clustering AAE (its networks include ``discriminator_y``) runs
    ``categorical_train_step`` instead: ``sample_categories(n)`` draws one-hot y of Cat(K),
    ``labeled`` is a labelled mini-batch (x, y) for its classification phase, or None, and
    ``cluster_head_eta`` the margin of the cluster heads' cost (with cluster heads)."""
    if "discriminator_y" in nets:
        return categorical_train_step(x, nets, opts, sample_prior, sample_categories, sync,
                                      labeled, cluster_head_eta)
    enc, dec, disc = nets["encoder"], nets["decoder"], nets["discriminator"]
    y_decoder = one_hot(y, dec.label_dim) if dec.label_dim else None
    recon_loss = reconstruction_phase(x, enc, dec, opts["encoder"][0], opts["decoder"][0], sync,
                                      y_decoder)
    if disc.label_dim and dec.label_dim:
        # --label_critic (supervised AAE): D sees the label with both the code and a prior
        # sample drawn whatever the label, so it can tell a style code that depends on it.
        z_prior = sample_prior(x.shape[0])
        y_disc = y_decoder
    elif disc.label_dim:
        # Paper §2.3: the last of D's label units means 'unlabelled'; its prior samples come
        # from the whole prior, those of a labelled image from its label's component.
        z_prior = sample_prior(x.shape[0], y)
        y_disc = one_hot(np.where(y == UNLABELED, disc.label_dim - 1, y), disc.label_dim)
    else:
        z_prior = sample_prior(x.shape[0])  # drawn before the codes' noise, as the reference
        y_disc = None
    d_loss = discriminator_phase(x, z_prior, enc, disc, opts["discriminator"][0], sync, y_disc)
    g_loss = generator_phase(x, enc, disc, opts["generator"][0], sync, y_disc)
    return float(recon_loss), float(d_loss), float(g_loss)


def validation_error(labels_mode, encoder, x_train, y_train, x_valid, y_valid):
    """The categorical model's error on the validation images, measured as classify.py
    measures the test error: semi-supervised, argmax q(y|x) against the label; clustering,
    each category labelled by the training image it is most sure of (paper §6)."""
    valid_probs = class_probabilities(encoder, x_valid)
    if labels_mode == "clustering":
        return clustering_error(class_probabilities(encoder, x_train), y_train, valid_probs,
                                y_valid)
    return classification_error(valid_probs, y_valid)


def one_hot(labels, n_units):
    """[n, n_units] float32 one-hot rows of integer labels in [0, n_units)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_units):
        raise ValueError(f"labels must be in [0, {n_units}) for {n_units} label units, got "
                         f"[{labels.min()}, {labels.max()}]")
    return paddle.to_tensor(np.eye(n_units, dtype=np.float32)[labels])


def phase_settings(cfg):
    """{optimizer name: (learning rate, momentum)} of each phase; the momentum is used only
    with --optimizer momentum."""
    settings = {"encoder": (cfg.gen_lr, cfg.gen_momentum),
                "decoder": (cfg.gen_lr, cfg.gen_momentum),
                "discriminator": (cfg.reg_lr, cfg.reg_momentum),
                "generator": (cfg.reg_lr, cfg.reg_momentum)}
    if cfg.labels in CATEGORICAL_MODES:  # the categorical model: D_y, and q(y|x)'s own
        settings["discriminator_y"] = (cfg.reg_lr, cfg.reg_momentum)
        if cfg.labels == "semi_supervised":
            settings["classifier"] = (cfg.class_lr, cfg.class_momentum)
    return settings


def make_optimizers(cfg, nets):
    """One optimizer per phase and network, as the reference: {name: (optimizer, the layer
    it updates)}. The encoder has one for reconstruction and one for regularization (and the
    semi-supervised model one for classification), each with its own state. Adam by default;
    SGD with momentum with --optimizer momentum."""
    layers = {"encoder": "encoder", "decoder": "decoder", "discriminator": "discriminator",
              "generator": "encoder", "discriminator_y": "discriminator_y",
              "classifier": "encoder"}
    opts = {}
    for name, (lr, momentum) in phase_settings(cfg).items():
        layer = nets[layers[name]]
        if cfg.optimizer == "momentum":  # set_learning_rates applies each epoch's schedule
            optimizer = paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum,
                                                  parameters=layer.parameters())
        else:
            optimizer = paddle.optimizer.Adam(learning_rate=lr, beta1=cfg.adam_beta1,
                                              parameters=layer.parameters())
        opts[name] = (optimizer, layer)
    return opts


def set_learning_rates(cfg, opts, epoch):
    """The rates of ``epoch``: each phase's rate times ``cfg.lr_factor(epoch)`` (a step
    schedule: --lr_decay_epochs with momentum SGD, --adam_decay_epochs with Adam, none by
    default)."""
    for name, (lr, _) in phase_settings(cfg).items():
        opts[name][0].set_lr(lr * cfg.lr_factor(epoch))


# ---------------------------------------------------------------------------------------
# Randomness: every draw is a function of (seed, epoch) or (seed, step), so a resumed run
# repeats an uninterrupted one exactly, without saving generator states.
# ---------------------------------------------------------------------------------------
def seed_everything(seed):
    """The one seeding function: Paddle's global generators (CPU and GPU) and numpy's."""
    paddle.seed(seed)
    np.random.seed(seed % 2**32)


def step_seed(seed, step, rank=0, world=1):
    """The seed of one training step; data-parallel processes each draw their own numbers."""
    key = [seed, step] if world == 1 else [seed, step, rank]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint32)[0])


def epoch_order(seed, epoch, n):
    """The shuffled order of the training images in ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def sample_grid_codes(seed, prior, labels_mode, n_classes, rows=SAMPLE_GRID_ROWS):
    """The codes decoded for every epoch's sample grid (the same ones each epoch): (codes,
    decoder labels or None, images per grid row).

    Supervised (and the categorical model, whose n_classes is its K categories): a row per
    style drawn from the prior, a column per class (the paper's Figure 7). A prior with
    components: a column per component (with label regularization, the component of that
    column's digit). Otherwise rows * rows samples of the prior."""
    rng = np.random.default_rng([seed, 2**32 - 1])
    if labels_mode in DECODER_LABEL_MODES:
        styles = prior.sample(rows, rng)  # [rows, latent_dim]
        return (np.repeat(styles, n_classes, axis=0), np.tile(np.arange(n_classes), rows),
                n_classes)
    if prior.n_components:
        components = np.tile(np.arange(prior.n_components), rows)
        return prior.sample(len(components), rng, components), None, prior.n_components
    return prior.sample(rows * rows, rng), None, rows


def semi_supervised_subset(y, n_labeled, n_classes, seed):
    """The labelled training images of the semi-supervised AAE (paper §5: 100, 1000 or all
    labels): indices into y, the same number of each class (as ``labeled_subset``, whose
    seeded draw it shares), fixed by the seed; all of them when n_labeled >= len(y)."""
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
    order = np.random.default_rng([seed, 2**32 - 3, pass_index]).permutation(n_labeled)
    return order[k * size:(k + 1) * size]


def labeled_subset(y, n_labeled, n_unlabeled, n_classes, seed):
    """The training images of label regularization (paper §2.3: 10k labelled + 40k unlabelled
    MNIST digits): (indices into y, the labels the model is given: UNLABELED for the
    unlabelled ones). The labelled ones hold the same number of each class (the first
    n_labeled % n_classes classes one more), the unlabelled ones are drawn from the rest; both
    are fixed by the seed."""
    rng = np.random.default_rng([seed, 2**32 - 2])  # a stream of its own (see epoch_order)
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


# ---------------------------------------------------------------------------------------
# Run bookkeeping
# ---------------------------------------------------------------------------------------
def select_device(name):
    """'auto' -> GPU when Paddle was built with CUDA and sees one, else CPU."""
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "gpu" and not has_gpu:
        raise UserError("--device gpu: this Paddle has no usable GPU (install paddlepaddle-gpu "
                        "and check that a GPU is visible), or use --device cpu")
    device = "gpu" if (name == "gpu" or (name == "auto" and has_gpu)) else "cpu"
    # under paddle.distributed.launch each process is given its own GPU
    paddle.set_device(f"gpu:{dist.ParallelEnv().device_id}" if device == "gpu" else "cpu")
    return device


def init_data_parallel():
    """(rank, number of processes). Started by ``python -m paddle.distributed.launch`` with
    several processes, join their group (NCCL between GPUs, gloo between CPU processes);
    otherwise (0, 1) and nothing to do."""
    world = dist.get_world_size()
    if world > 1:
        dist.init_parallel_env()
    return dist.get_rank(), world


def mean_over_processes(values, flag):
    """The mean of ``values`` over the data-parallel processes, and whether any raised
    ``flag`` (so that all of them stop at the same step)."""
    shared = paddle.to_tensor(list(values) + [float(flag)], dtype="float32")
    dist.all_reduce(shared)
    totals = shared.numpy().tolist()
    world = dist.get_world_size()
    return [v / world for v in totals[:-1]], totals[-1] > 0


def check_resumable(saved_cfg, cfg, path):
    # A setting missing from an older checkpoint did not exist yet: that run had its default.
    defaults = config.Config().to_dict()
    diffs = [f"{k}: {saved_cfg.get(k, defaults[k])!r} there, {v!r} now"
             for k, v in cfg.to_dict().items()
             if k not in RESUMABLE_CHANGES and saved_cfg.get(k, defaults[k]) != v]
    if diffs:
        raise UserError(f"--resume: {path} was made with another config ({'; '.join(diffs)}); "
                        "use the same options or start a new run without --resume")


def write_loss_csv(path, history, names=LOSS_NAMES):
    def write(f):
        f.write(("epoch," + ",".join(names) + ",seconds\n").encode())
        for row in history:
            # repr: full precision, so a resumed run reads back exactly what was written
            f.write((f"{row['epoch']}," + ",".join(repr(row[k]) for k in names)
                     + f",{row['seconds']!r}\n").encode())
    checkpoint.atomic_write(path, write)


def visualdl_log_writer():
    """VisualDL's LogWriter class. VisualDL is optional, so it is imported only for
    --visualdl, and its absence is reported before any work starts."""
    try:
        from visualdl import LogWriter
    except ImportError:
        raise UserError("--visualdl needs VisualDL: pip install visualdl") from None
    return LogWriter


def open_visualdl(log_writer, folder):
    """A LogWriter on folder/VISUALDL_FILE, emptied first: VisualDL appends to an existing file
    (seen with 2.5), where a hard kill can leave a half-written record, and an earlier run's
    epochs would remain. A resumed run writes its earlier epochs again from loss.csv."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, VISUALDL_FILE))
    return log_writer(logdir=folder, file_name=VISUALDL_FILE)


def log_epoch_to_visualdl(writer, row, images_per_s=None, grid_path=None):
    """One epoch's mean losses, its speed and its sample grid (if that PNG exists), at step
    = epoch. The speed is None for epochs replayed after --resume: loss.csv does not keep it."""
    epoch = row["epoch"]
    for name in (k for k in row if k not in ("epoch", "seconds")):
        writer.add_scalar(f"loss/{name}", row[name], epoch)
    if images_per_s is not None:
        writer.add_scalar("speed/images_per_s", images_per_s, epoch)
    if grid_path is not None and os.path.isfile(grid_path):
        with Image.open(grid_path) as image:
            # a writable copy: VisualDL rescales images with values in [0, 1] in place
            pixels = np.array(image.convert("L"))
        writer.add_image("samples", pixels, epoch, dataformats="HW")
    writer.flush()  # so a running VisualDL board shows each epoch as it ends


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so the saved
    state is always that of a completed step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (some notebook runners): keep defaults
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------
def main(argv=None):
    cfg = config.parse_config("train.py", TRAIN_KEYS, argv, description=__doc__.split("\n")[0])
    log_writer = visualdl_log_writer() if cfg.visualdl else None
    device = select_device(cfg.device)
    rank, world = init_data_parallel()
    is_main = rank == 0  # the one process that writes logs, images and checkpoints
    categorical = cfg.labels in CATEGORICAL_MODES
    # the categorical models also report their error on the validation split every epoch
    data = load_split(cfg.data_dir, n_train=cfg.N_train,
                      parts=("train", "valid") if categorical else ("train",))
    x_np, y_np = data["x_train"], data["y_train"]
    n_classes = N_CLASSES  # 10 digits (not y.max() + 1: a small subset may lack one)
    prior = build_prior(cfg)
    if cfg.labels == "regularization":
        if prior.n_components != n_classes:
            raise UserError(f"--labels regularization gives each of the {n_classes} classes "
                            f"its own part of the prior: --n_components must be {n_classes}, "
                            f"got {prior.n_components}")
        used, y_np = labeled_subset(y_np, cfg.n_labeled, cfg.n_unlabeled, n_classes, cfg.seed)
        x_np = x_np[used]
    x_labeled = y_labeled = None  # the labelled set of the semi-supervised AAE
    if categorical and world > 1:
        raise UserError(f"--labels {cfg.labels} runs in one process only (its labelled "
                        "mini-batches are not sharded)")
    if cfg.labels == "semi_supervised":
        if cfg.n_categories != n_classes:
            raise UserError(f"--labels semi_supervised: q(y|x) has one category per class: "
                            f"--n_categories must be {n_classes}, got {cfg.n_categories}")
        labeled_rows = semi_supervised_subset(y_np, cfg.n_labeled, n_classes, cfg.seed)
        x_labeled = paddle.to_tensor(x_np[labeled_rows])
        y_labeled = y_np[labeled_rows].astype(np.int64)
    # the labels the model is given with each training image
    y_seen = y_np if cfg.labels in ("regularization", "supervised") else None
    n_train, in_dim = x_np.shape
    if cfg.batch_size > n_train:
        raise UserError(f"--batch_size {cfg.batch_size} is larger than the {n_train} "
                        "training images")
    if world > 1 and (cfg.batch_size % world or n_train % cfg.batch_size):
        raise UserError(f"data parallel over {world} processes needs --batch_size divisible by "
                        f"{world} and --N_train divisible by --batch_size (got {cfg.batch_size} "
                        f"and {n_train}), so that every process gets equal shards")
    shard = cfg.batch_size // world  # rows of each mini-batch this process works on
    if is_main:
        ensure_folder(cfg.model_dir, "--model_dir")
        ensure_folder(cfg.images_dir, "--images_dir")
        ensure_folder(cfg.logs_dir, "--logs_dir")
    last_path = os.path.join(cfg.model_dir, "last.npz")
    csv_path = os.path.join(cfg.logs_dir, "loss.csv")
    log = get_logger("train", os.path.join(cfg.logs_dir, "train.log") if is_main else None)
    if not is_main:
        log.setLevel("WARNING")
    sync = average_gradients if world > 1 else no_sync

    seed_everything(cfg.seed)
    nets = build_networks(cfg, in_dim, n_classes)
    opts = make_optimizers(cfg, nets)
    names = loss_names(cfg)
    columns = names + (VALID_ERROR,) if categorical else names  # of loss.csv
    start_epoch, start_batch, partial_sums = 0, 0, [0.0] * len(names)
    history = []
    if cfg.resume:
        for name in checkpoint.remove_stale_temporaries(cfg.model_dir) if is_main else ():
            log.info("removed %s, left by an interrupted write", name)
        if not os.path.isfile(last_path):
            raise UserError(f"--resume: no {last_path} to resume from; start without --resume")
        meta, arrays = checkpoint.load(last_path)
        check_resumable(meta["config"], cfg, last_path)
        checkpoint.restore_networks(nets, arrays, last_path)
        checkpoint.restore_optimizers(opts, arrays, last_path)
        start_epoch, start_batch = meta["epoch"], meta["batch"]
        partial_sums = meta["partial_sums"]
        history = read_loss_csv(csv_path, start_epoch)
        log.info("resumed from %s at epoch %d, batch %d", last_path, start_epoch, start_batch)
    else:
        log.info("new run")
    if is_main:
        checkpoint.atomic_write(os.path.join(cfg.logs_dir, "train_config.json"),
                                lambda f: f.write(cfg.to_json().encode()))
    log.info("config: %s", cfg.to_dict())
    log.info("device %s x %d process(es), threads %s, %d training images of %d pixels, data %s",
             device, world, utils.cpu_env.SETTINGS, n_train, in_dim, data["meta"])
    if cfg.labels == "regularization":
        log.info("label regularization: %d labelled images (per class %s), %d unlabelled",
                 int(np.sum(y_seen != UNLABELED)),
                 np.bincount(y_seen[y_seen != UNLABELED], minlength=n_classes).tolist(),
                 int(np.sum(y_seen == UNLABELED)))
    if y_labeled is not None:
        log.info("semi-supervised: %d labelled images (per class %s) of %d", len(y_labeled),
                 np.bincount(y_labeled, minlength=n_classes).tolist(), n_train)

    x_all = paddle.to_tensor(x_np)
    x_valid, y_valid = data.get("x_valid"), data.get("y_valid")
    del data, x_np
    batches_per_epoch = math.ceil(n_train / cfg.batch_size)
    z_grid, y_grid, grid_columns = sample_grid_codes(
        cfg.seed, prior, cfg.labels, cfg.n_categories if categorical else n_classes)
    z_grid = paddle.to_tensor(z_grid.astype("float32"))
    y_grid = one_hot(y_grid, nets["decoder"].label_dim) if y_grid is not None else None

    def save_state(epoch, batch, sums):
        checkpoint.save(last_path, nets, {"config": cfg.to_dict(), "epoch": epoch,
                                          "batch": batch, "partial_sums": sums}, opts)

    def save_samples(epoch):
        for layer in nets.values():
            layer.eval()
        with paddle.no_grad():
            images = nets["decoder"].probs(z_grid, y_grid).numpy()
        return save_image(images, os.path.join(cfg.images_dir, f"epoch{epoch}.png"),
                          nrow=grid_columns)

    paddle_random = PaddleRandom()  # Paddle's generator, seeded at every step below

    def sample_prior(n, labels=None):
        return paddle.to_tensor(prior.sample(n, paddle_random, labels).astype("float32"))

    category_prior = CategoricalPrior(cfg.n_categories) if categorical else None

    def sample_categories(n):
        return paddle.to_tensor(category_prior.sample(n, paddle_random).astype("float32"))

    def labeled_batch(step):
        """The labelled mini-batch of a training step (semi-supervised only), else None."""
        if y_labeled is None:
            return None
        rows = labeled_batch_indices(len(y_labeled), cfg.batch_size, step, cfg.seed)
        return (paddle.gather(x_labeled, paddle.to_tensor(rows)),
                paddle.to_tensor(y_labeled[rows]))

    def write_epoch_outputs(epoch, row, images_per_s):
        """The resume point, the loss CSV and plot, the sample grid, the kept checkpoint."""
        save_state(epoch + 1, 0, [0.0] * len(names))
        write_loss_csv(csv_path, history, columns)
        grid_path = None
        if epoch % cfg.sample_every == 0 or epoch == cfg.n_epochs - 1:
            grid_path = save_samples(epoch)
        if vdl is not None:
            log_epoch_to_visualdl(vdl, row, images_per_s, grid_path)
        if (epoch + 1) % cfg.save_every == 0 or epoch == cfg.n_epochs - 1:
            path = os.path.join(cfg.model_dir, f"model{epoch}.npz")
            checkpoint.save(path, nets, {"config": cfg.to_dict(), "epoch": epoch + 1})
            log.info("saved %s", path)
        plot_losses(history, os.path.join(cfg.images_dir, "loss_curve.png"))

    vdl = None  # created only now, so a refused --resume leaves the old VisualDL file alone
    if log_writer is not None and is_main:
        vdl = open_visualdl(log_writer, os.path.join(cfg.logs_dir, "vdl"))

    progress = _progress_bar(enabled=is_main)
    t_run = time.perf_counter()
    steps_run = 0
    with vdl or contextlib.nullcontext(), StopFlag() as stop:
        if vdl is not None:
            for past in history:  # the epochs before a resumption (the file was emptied)
                grid_path = os.path.join(cfg.images_dir, f"epoch{past['epoch']}.png")
                log_epoch_to_visualdl(vdl, past, grid_path=grid_path)
        for epoch in range(start_epoch, cfg.n_epochs):
            set_learning_rates(cfg, opts, epoch)
            order_np = epoch_order(cfg.seed, epoch, n_train)
            order = paddle.to_tensor(order_np)
            x_epoch = paddle.gather(x_all, order)  # one copy per epoch, then cheap slices
            y_epoch = y_seen[order_np] if y_seen is not None else None
            first = start_batch if epoch == start_epoch else 0
            sums = list(partial_sums) if epoch == start_epoch else [0.0] * len(names)
            t_epoch = time.perf_counter()
            bar = progress(total=batches_per_epoch, initial=first, desc=f"epoch {epoch}")
            for batch in range(first, batches_per_epoch):
                step = epoch * batches_per_epoch + batch
                paddle.seed(step_seed(cfg.seed, step, rank, world))
                start = batch * cfg.batch_size
                rows = min(cfg.batch_size, n_train - start)  # the last batch may be short
                mine = slice(start + rank * shard, start + min(rows, (rank + 1) * shard))
                x = x_epoch[mine]
                y = y_epoch[mine] if y_epoch is not None else None
                losses = train_step(x, nets, opts, sample_prior, sync, y,
                                    sample_categories if categorical else None,
                                    labeled_batch(step), cfg.cluster_head_eta)
                stop_now = stop.requested
                if world > 1:  # every process logs and decides on the same numbers
                    losses, stop_now = mean_over_processes(losses, stop_now)
                if not all(math.isfinite(v) for v in losses):
                    raise UserError(
                        f"non-finite loss at epoch {epoch}, batch {batch} "
                        f"({dict(zip(names, losses))}); training stopped, the last good "
                        f"state is in {last_path}; try a smaller learning rate")
                for i, v in enumerate(losses):
                    sums[i] += v * rows
                steps_run += 1
                bar.update(1)
                if bar.n % 20 == 0:
                    seen = (batch + 1 - first) * cfg.batch_size
                    bar.set_postfix(recon=f"{losses[0]:.4f}", d=f"{losses[1]:.3f}",
                                    g=f"{losses[2]:.3f}",
                                    img_per_s=f"{seen / (time.perf_counter() - t_epoch):.0f}")
                if stop_now and batch + 1 < batches_per_epoch:
                    bar.close()
                    if is_main:
                        save_state(epoch, batch + 1, sums)
                    log.info("interrupted: state after epoch %d batch %d saved to %s; "
                             "continue with --resume", epoch, batch, last_path)
                    raise KeyboardInterrupt
            bar.close()
            seconds = time.perf_counter() - t_epoch
            # images trained on in this epoch by this run (fewer after a mid-epoch resume)
            images_per_s = (n_train - first * cfg.batch_size) / seconds
            means = [s / n_train for s in sums]
            row = {"epoch": epoch, **dict(zip(names, means)), "seconds": seconds}
            if categorical:
                row[VALID_ERROR] = validation_error(cfg.labels, nets["encoder"], x_all, y_np,
                                                    x_valid, y_valid)
            history.append(row)
            log.info("[Epoch %d/%d] %s  (%.1f s, %.0f img/s)", epoch, cfg.n_epochs,
                     "  ".join(f"{k} {row[k]:.6f}" for k in columns), seconds,
                     images_per_s)
            if is_main:
                write_epoch_outputs(epoch, row, images_per_s)
            if stop_now:
                log.info("interrupted after epoch %d; continue with --resume", epoch)
                raise KeyboardInterrupt

    elapsed = time.perf_counter() - t_run
    log.info("finished: %d epochs, %d steps in %.1f s", cfg.n_epochs, steps_run, elapsed)
    if is_main:
        plot_samples_by_epoch(cfg.images_dir, cfg.n_epochs,
                              os.path.join(cfg.images_dir, "samples_by_epoch.png"))
    final = history[-1] if history else {}
    return {
        **{k: final.get(k) for k in columns},
        "epochs": cfg.n_epochs,
        "history": history,
        "steps": steps_run,
        "seconds": elapsed,
        "ms_per_step": 1000.0 * elapsed / steps_run if steps_run else None,
        "checkpoint": os.path.join(cfg.model_dir, f"model{cfg.n_epochs - 1}.npz"),
    }


def _progress_bar(enabled=True):
    """tqdm on a terminal; silent (log lines only) when output goes to a file, and in all but
    the first data-parallel process."""
    from tqdm import tqdm
    return lambda **kw: tqdm(leave=False, disable=None if enabled else True, dynamic_ncols=True,
                             **kw)


if __name__ == "__main__":
    run_cli(main)
