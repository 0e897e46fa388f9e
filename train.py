"""Train the MNIST adversarial autoencoder of Table 1 (Makhzani et al. 2015, §2-3).

Every mini-batch goes through the paper's three phases (§2), as in the reference reproduction:

1. reconstruction: encoder and decoder minimise the reconstruction BCE (Adam, ``gen_lr``);
2. regularization, discriminator: D learns to tell prior samples z ~ N(0, std^2 I) from codes
   of the encoder (encoder in eval mode, codes treated as constants; Adam, ``reg_lr``);
3. regularization, generator: the encoder (train mode) learns to make D call its codes prior
   samples (its own Adam, ``reg_lr``).

The same loop trains the paper's other model families (families/, chosen by ``--labels``,
usually through ``--preset NAME``); this file holds the likelihood model's own step.

    python train.py                      # the paper/reference config, 200 epochs
    python train.py --n_epochs 1 --N_train 2000
    python train.py --resume             # continue from model/last.npz
    python train.py --preset cluster_16  # another experiment; python train.py --help lists them

Outputs: logs/train.log, logs/loss.csv (epoch means), logs/train_config.json,
images/epoch{N}.png (a fixed set of prior samples decoded), images/loss_curve.png,
images/samples_by_epoch.png, model/last.npz (resume point, every epoch) and model/model{N}.npz
(weights, every ``save_every`` epochs and at the end); for the families that measure a validation
error every epoch, model/best.npz (weights after the epoch where it was lowest); with
``--visualdl``, logs/vdl/.
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import contextlib
import math
import os
import time

import paddle
import paddle.nn.functional as F

import config
import families
import network
from data_maker import load_split
from families.base import ModelFamily
from priors import PaddleRandom, build_prior, grid_codes
from utils import checkpoint, resume, run
from utils.epoch_outputs import EpochOutputs
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger
from utils.plots import plot_samples_by_epoch
from utils.steps import (average_gradients, discriminator_loss, frozen, generator_loss,
                         make_optimizers, no_sync, set_learning_rates, update)

TRAIN_KEYS = config.TRAIN_KEYS
LOSS_NAMES = ("recon_loss", "d_loss", "g_loss")  # the likelihood model's, in loss.csv
PROGRESS_EVERY = 20  # steps between updates of the progress bar's figures
# steps between train.log's throughput lines (TIPC's benchmark fields); chosen so that a
# full epoch (590 steps) gives ~30 lines and the lite TIPC run (test_tipc/) a few
THROUGHPUT_EVERY = 20


# ---------------------------------------------------------------------------------------
# The three phases of one mini-batch (paper §2). ``nets``: {name: layer}; ``opts``:
# {name: utils.steps.PhaseOptimizer}; ``sync`` averages gradients across processes.
# ---------------------------------------------------------------------------------------
def reconstruction_phase(x, nets, opts, sync=no_sync):
    """Phase 1: encoder and decoder learn to reconstruct x; returns the BCE per pixel."""
    nets["encoder"].train()
    nets["decoder"].train()
    x_logits = nets["decoder"](nets["encoder"](x))
    recon_loss = F.binary_cross_entropy_with_logits(x_logits, x)
    return update(recon_loss, opts, ("decoder", "encoder"), sync)


def discriminator_phase(x, z_prior, nets, opts, sync=no_sync):
    """Phase 2: D learns to output 1 on prior samples z_prior and 0 on codes of x."""
    nets["encoder"].eval()
    nets["discriminator"].train()
    with paddle.no_grad():  # codes are constants here: no encoder gradient is needed
        z_codes = nets["encoder"](x)
    # One pass over [prior; codes]: the layers act row by row, so this equals two passes.
    d_logits = nets["discriminator"](paddle.concat([z_prior, z_codes]))
    return update(discriminator_loss(d_logits), opts, ("discriminator",), sync)


def generator_phase(x, nets, opts, sync=no_sync):
    """Phase 3: the encoder learns to make D take its codes for prior samples."""
    nets["encoder"].train()
    nets["discriminator"].train()
    with frozen(nets["discriminator"]):  # D is not updated here: skip its weight gradients
        g_loss = generator_loss(nets["discriminator"](nets["encoder"](x)))
        return update(g_loss, opts, ("encoder_adversarial",), sync)


class LikelihoodAAE(ModelFamily):
    """The model of Table 1 (paper §3): encoder q(z|x), decoder p(x|z) and discriminator D(z),
    with an 8-d Gaussian prior (the interface: families/base.py)."""

    @classmethod
    def build_networks(cls, cfg, in_dim, n_classes=config.N_CLASSES):
        return network.build_networks(cfg, in_dim)  # no label inputs

    def __init__(self, cfg, data):
        self.x_train, self.y_train = data["x_train"], None
        self.prior = build_prior(cfg)
        self.nets = self.build_networks(cfg, self.x_train.shape[1])
        # the reference's four Adams: the encoder has one for each phase it takes part in
        self.opts = make_optimizers(cfg, self.nets, self.optimizer_plan(cfg))
        self.loss_names = LOSS_NAMES
        self.random = PaddleRandom()  # Paddle's generator, seeded by the loop at every step

    def step(self, x, y, step, sync=no_sync):
        recon_loss = reconstruction_phase(x, self.nets, self.opts, sync)
        # drawn before the codes' noise, as the reference
        z_prior = paddle.to_tensor(self.prior.sample(x.shape[0], self.random).astype("float32"))
        d_loss = discriminator_phase(x, z_prior, self.nets, self.opts, sync)
        g_loss = generator_phase(x, self.nets, self.opts, sync)
        return {"recon_loss": float(recon_loss), "d_loss": float(d_loss),
                "g_loss": float(g_loss)}

    def grid(self, seed):
        z, _, columns = grid_codes(self.prior, run.stream(seed, "sample_grid"))
        return paddle.to_tensor(z.astype("float32")), None, columns


# ---------------------------------------------------------------------------------------
# The loop: every family, one process or data parallel
# ---------------------------------------------------------------------------------------
def main(argv=None):
    cfg = config.parse_config("train.py", TRAIN_KEYS, argv, description=__doc__.split("\n")[0])
    log_writer = run.visualdl_log_writer() if cfg.visualdl else None
    device = run.select_device(cfg.device)
    rank, world = run.init_data_parallel()
    is_main = rank == 0  # the one process that writes logs, images and checkpoints
    family = families.get(cfg.labels)
    if world > 1 and not family.data_parallel:
        raise UserError(f"--labels {cfg.labels} runs in one process only (its labelled "
                        "mini-batches are not sharded)")
    data = load_split(cfg.data_dir, n_train=cfg.N_train, parts=family.data_parts)
    if is_main:
        ensure_folder(cfg.model_dir, "--model_dir")
        ensure_folder(cfg.images_dir, "--images_dir")
        ensure_folder(cfg.logs_dir, "--logs_dir")
    with run.RunLock(cfg.model_dir, cfg.logs_dir) if is_main else contextlib.nullcontext():
        return train(cfg, family, data, device, rank, world, log_writer)


def train(cfg, family, data, device, rank, world, log_writer):
    is_main = rank == 0
    log = get_logger("train", os.path.join(cfg.logs_dir, "train.log") if is_main else None)
    if not is_main:
        log.setLevel("WARNING")
    sync = average_gradients if world > 1 else no_sync
    run.seed_everything(cfg.seed)
    model = family(cfg, data)  # its networks take the first random numbers of the seed
    names, plan = model.loss_names, family.optimizer_plan(cfg)
    columns = names + family.metric_names  # of loss.csv
    n_train, in_dim = model.x_train.shape
    shard = run.shard_size(cfg.batch_size, n_train, world)  # rows of a batch per process
    split = checkpoint.split_record(data["meta"], n_train)
    begin = resume.start(cfg, model, split, columns, log, is_main)
    history = begin.history
    outputs = EpochOutputs(cfg, model, split, columns, log)
    if is_main:
        outputs.write_config()
    log.info("config: %s", cfg.applicable(TRAIN_KEYS))
    log.info("device %s x %d process(es), threads %s, %d training images of %d pixels, data %s",
             device, world, utils.cpu_env.SETTINGS, n_train, in_dim, data["meta"])
    if model.describe():
        log.info("%s", model.describe())

    x_all = paddle.to_tensor(model.x_train)
    batches_per_epoch = math.ceil(n_train / cfg.batch_size)
    # created only now, so a refused --resume leaves the old VisualDL file alone
    vdl = (run.open_visualdl(log_writer, os.path.join(cfg.logs_dir, "vdl"))
           if log_writer is not None and is_main else None)
    progress = run.progress_bar(enabled=is_main)
    throughput = run.ThroughputLog(log, THROUGHPUT_EVERY, cfg.n_epochs, batches_per_epoch)
    t_run, steps_run = time.perf_counter(), 0
    with vdl or contextlib.nullcontext(), run.StopFlag() as stop:
        run.replay_history_to_visualdl(vdl, history, cfg.images_dir)
        for epoch in range(begin.epoch, cfg.n_epochs):
            set_learning_rates(cfg, model.opts, plan, epoch)
            order = run.epoch_order(cfg.seed, epoch, n_train)
            x_epoch = paddle.gather(x_all, paddle.to_tensor(order))  # one copy, cheap slices
            y_epoch = model.y_train[order] if model.y_train is not None else None
            first = begin.batch if epoch == begin.epoch else 0
            sums = dict.fromkeys(names, 0.0)
            if epoch == begin.epoch and begin.partial_sums:
                sums.update(begin.partial_sums)
            t_epoch = time.perf_counter()
            bar = progress(total=batches_per_epoch, initial=first, desc=f"epoch {epoch}")
            for batch in range(first, batches_per_epoch):
                throughput.begin()
                step = epoch * batches_per_epoch + batch
                paddle.seed(run.step_seed(cfg.seed, step, rank, world))
                start = batch * cfg.batch_size
                rows = min(cfg.batch_size, n_train - start)  # the last batch may be short
                mine = slice(start + rank * shard, start + min(rows, (rank + 1) * shard))
                y_batch = y_epoch[mine] if y_epoch is not None else None
                throughput.batch_ready()
                losses = model.step(x_epoch[mine], y_batch, step, sync)
                stop_now = stop.requested
                if world > 1:  # every process logs and decides on the same numbers
                    losses, stop_now = run.mean_over_processes(losses, stop_now)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise UserError(f"non-finite loss at epoch {epoch}, batch {batch} ({losses}); "
                                    f"training stopped, {outputs.where_saved()}; try a smaller "
                                    "learning rate")
                for name in names:
                    sums[name] += losses[name] * rows
                steps_run += 1
                throughput.step_done(epoch, batch, losses, rows)
                run.update_progress(bar, losses, (batch + 1 - first) * cfg.batch_size, t_epoch,
                                    PROGRESS_EVERY)
                if stop_now and batch + 1 < batches_per_epoch:
                    bar.close()
                    if is_main:
                        outputs.save_resume_point(epoch, batch + 1, sums)
                    log.info("interrupted: state after epoch %d batch %d saved to %s; "
                             "continue with --resume", epoch, batch, outputs.last_path)
                    stop.stop(f"terminated: state saved to {outputs.last_path}; continue with "
                              "--resume")
            bar.close()
            seconds = time.perf_counter() - t_epoch
            # images trained on in this epoch by this run (fewer after a mid-epoch resume)
            images_per_s = (n_train - first * cfg.batch_size) / seconds
            history.append({"epoch": epoch, **{k: sums[k] / n_train for k in names},
                            "seconds": seconds, **model.epoch_metrics(x_all)})
            log.info("[Epoch %d/%d] %s  (%.1f s, %.0f img/s)", epoch, cfg.n_epochs,
                     "  ".join(f"{k} {history[-1][k]:.6f}" for k in columns), seconds,
                     images_per_s)
            if is_main:
                outputs.write_epoch(epoch, history, images_per_s, vdl)
            if stop_now and epoch + 1 < cfg.n_epochs:  # after the last epoch: finished
                log.info("interrupted after epoch %d; continue with --resume", epoch)
                stop.stop(f"terminated after epoch {epoch}: continue with --resume")

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


if __name__ == "__main__":
    run_cli(main)
