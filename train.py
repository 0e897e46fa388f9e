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

import numpy as np
import paddle
import paddle.nn.functional as F

import config
import network
from data_maker import load_split
from families import FAMILIES
from priors import PaddleRandom, build_prior, grid_codes
from utils import checkpoint, run
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger
from utils.paddle_save_image import save_image
from utils.plots import plot_losses, plot_samples_by_epoch
from utils.steps import (aae_optimizer_plan, average_gradients, discriminator_loss, frozen,
                         generator_loss, make_optimizers, no_sync, set_learning_rates, update)

TRAIN_KEYS = config.TRAIN_KEYS
LOSS_NAMES = ("recon_loss", "d_loss", "g_loss")  # the likelihood model's, in loss.csv
PROGRESS_EVERY = 20  # steps between updates of the progress bar's figures
# steps between train.log's throughput lines (TIPC's benchmark fields); chosen so that a
# full epoch (590 steps) gives ~30 lines and the lite TIPC run (test_tipc/) a few
THROUGHPUT_EVERY = 20
# Settings that may differ between a run and its resumption (they do not change the math).
RESUMABLE_CHANGES = {"n_epochs", "resume", "device", "save_every", "sample_every",
                     "model_dir", "images_dir", "logs_dir", "data_dir", "visualdl", "preset"}


# ---------------------------------------------------------------------------------------
# The three phases of one mini-batch (paper §2). ``nets``: {name: layer}; ``opts``:
# {name: (optimizer, the layer it updates)}; ``sync`` averages gradients across processes.
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
        return update(g_loss, opts, ("generator",), sync)


class LikelihoodAAE:
    """The model of Table 1 (paper §3): encoder q(z|x), decoder p(x|z) and discriminator D(z),
    with an 8-d Gaussian prior. A model family is a class with this interface:

    - ``build_networks(cfg, in_dim, n_classes)`` and ``optimizer_plan(cfg)`` (static);
    - ``__init__(cfg, data)`` picks the training images (``x_train``, and ``y_train``: the
      labels the model is given, or None) and builds ``nets``, ``opts`` and ``loss_names``;
    - ``step(x, y, step, sync)`` trains on one mini-batch and returns {loss name: float};
    - ``epoch_metrics(x_train)`` gives figures measured after each epoch ({name: float};
      ``x_train``: the training images as one tensor);
    - ``grid(seed)`` gives the codes of the sample grid (None: no decoder); ``describe()`` a
      log line or None."""

    data_parts = ("train",)  # the parts of the split it uses
    data_parallel = True  # whether it can be sharded over processes
    metric_names = ()  # the names epoch_metrics returns (loss.csv columns after the losses)
    select_by = None  # a metric (lower is better) whose best epoch is kept as model/best.npz

    @staticmethod
    def build_networks(cfg, in_dim, n_classes=None):
        return network.build_networks(cfg, in_dim)

    # {optimizer: (network it updates, learning rate, momentum)}: the reference's four Adams
    optimizer_plan = staticmethod(aae_optimizer_plan)

    def __init__(self, cfg, data):
        self.x_train, self.y_train = data["x_train"], None
        self.prior = build_prior(cfg)
        self.nets = self.build_networks(cfg, self.x_train.shape[1])
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

    def epoch_metrics(self, x_train):
        return {}

    def grid(self, seed):
        z, _, columns = grid_codes(self.prior, run.stream(seed, "sample_grid"))
        return paddle.to_tensor(z.astype("float32")), None, columns

    def describe(self):
        return None


def model_family(cfg):
    """The class that trains ``cfg``: this file's likelihood AAE, or the family --labels names."""
    return FAMILIES.get(cfg.labels, LikelihoodAAE)


# ---------------------------------------------------------------------------------------
# Checkpoint and resume
# ---------------------------------------------------------------------------------------
def resume_options(saved, n_epochs):
    """The train.py options that reproduce a saved config's training settings."""
    base = config.resolve({"preset": saved.get("preset")}).to_dict()
    options = [f"--preset {saved['preset']}"] if saved.get("preset") else []
    options.append(f"--n_epochs {n_epochs}")
    for key in TRAIN_KEYS:
        if key in ("preset", "resume", "n_epochs") or key not in saved:
            continue
        if saved[key] != base[key]:
            options.append(f"--{key} {config.cli_text(saved[key])}")
    return " ".join(options)


def check_resumable(saved, cfg, path):
    """Refuse to resume a run made with other training settings (``saved``: its config)."""
    config.check_retired(saved, path)
    # A setting missing from an older checkpoint did not exist yet: that run had its default.
    defaults = config.Config().to_dict()
    now = cfg.to_dict()
    diffs = [f"{k}: {saved.get(k, defaults[k])!r} there, {now[k]!r} now" for k in TRAIN_KEYS
             if k not in RESUMABLE_CHANGES and saved.get(k, defaults[k]) != now[k]]
    if diffs:
        raise UserError(f"--resume: {path} was trained with other settings ({'; '.join(diffs)}); "
                        f"resume it with: python train.py --resume {resume_options(saved, cfg.n_epochs)}")


# ---------------------------------------------------------------------------------------
# The loop: every family, one process or data parallel
# ---------------------------------------------------------------------------------------
def main(argv=None):
    cfg = config.parse_config("train.py", TRAIN_KEYS, argv, description=__doc__.split("\n")[0])
    log_writer = run.visualdl_log_writer() if cfg.visualdl else None
    device = run.select_device(cfg.device)
    rank, world = run.init_data_parallel()
    is_main = rank == 0  # the one process that writes logs, images and checkpoints
    family = model_family(cfg)
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
    last_path = os.path.join(cfg.model_dir, "last.npz")
    best_path = os.path.join(cfg.model_dir, "best.npz")
    csv_path = os.path.join(cfg.logs_dir, "loss.csv")
    log = get_logger("train", os.path.join(cfg.logs_dir, "train.log") if is_main else None)
    if not is_main:
        log.setLevel("WARNING")
    sync = average_gradients if world > 1 else no_sync
    run.seed_everything(cfg.seed)
    model = family(cfg, data)
    nets, opts, names = model.nets, model.opts, model.loss_names
    plan = family.optimizer_plan(cfg)
    columns = names + family.metric_names  # of loss.csv
    n_train, in_dim = model.x_train.shape
    if cfg.batch_size > n_train:
        raise UserError(f"--batch_size {cfg.batch_size} is larger than the {n_train} "
                        "training images")
    if world > 1 and (cfg.batch_size % world or n_train % cfg.batch_size):
        raise UserError(f"data parallel over {world} processes needs --batch_size divisible by "
                        f"{world} and --N_train divisible by --batch_size (got {cfg.batch_size} "
                        f"and {n_train}), so that every process gets equal shards")
    shard = cfg.batch_size // world  # rows of each mini-batch this process works on
    split = checkpoint.split_record(data["meta"], n_train)

    start_epoch, start_batch, partial_sums, history = 0, 0, dict.fromkeys(names, 0.0), []
    if cfg.resume:
        if not os.path.isfile(last_path):
            raise UserError(f"--resume: no {last_path} to resume from; start without --resume")
        meta, arrays = checkpoint.load_resume_point(last_path, names)
        check_resumable(meta["config"], cfg, last_path)
        checkpoint.check_same_split(meta, split, last_path, log)
        start_epoch, start_batch = meta["epoch"], meta["batch"]
        if start_epoch >= cfg.n_epochs:
            raise UserError(f"--resume: {last_path} has already trained {start_epoch} epochs; "
                            f"pass --n_epochs larger than {start_epoch} to train on")
        history = run.read_history(csv_path, start_epoch, columns)
        checkpoint.restore_networks(nets, arrays, last_path)
        checkpoint.restore_optimizers(opts, arrays, last_path)
        partial_sums = dict(zip(names, meta["partial_sums"]))
    elif os.path.isfile(last_path):
        checkpoint.refuse_to_replace_unfinished(last_path)
        log.info("a new run: it replaces the finished run's resume point %s and outputs of the "
                 "same names (model*.npz of later epochs stay)", last_path)
    if not cfg.resume and is_main and os.path.isfile(best_path):
        os.remove(best_path)  # another run's best epoch: not this run's
    if cfg.resume and family.select_by and history and not os.path.isfile(best_path):
        log.info("no %s: it will hold the best epoch from now on, if one beats the lowest %s "
                 "of loss.csv", best_path, family.select_by)
    for name in checkpoint.remove_stale_temporaries(cfg.model_dir) if is_main else ():
        log.info("removed %s, left by an interrupted write", name)
    log.info("resumed from %s at epoch %d, batch %d" % (last_path, start_epoch, start_batch)
             if cfg.resume else "new run")
    if is_main:
        checkpoint.atomic_write(os.path.join(cfg.logs_dir, "train_config.json"),
                                lambda f: f.write(cfg.to_json().encode()))
    log.info("config: %s", cfg.applicable(TRAIN_KEYS))
    log.info("device %s x %d process(es), threads %s, %d training images of %d pixels, data %s",
             device, world, utils.cpu_env.SETTINGS, n_train, in_dim, data["meta"])
    if model.describe():
        log.info("%s", model.describe())

    x_all = paddle.to_tensor(model.x_train)
    batches_per_epoch = math.ceil(n_train / cfg.batch_size)
    grid = model.grid(cfg.seed)  # (codes, decoder labels, columns), or None: no decoder
    saved_resume_point = [False]  # whether this run has written last.npz

    def save_state(epoch, batch, sums):
        checkpoint.save(last_path, nets, {"config": cfg.to_dict(), "epoch": epoch, "batch": batch,
                                          "partial_sums": [sums[k] for k in names],
                                          "split": split}, opts)
        saved_resume_point[0] = True

    def save_samples(epoch):
        for layer in nets.values():
            layer.eval()
        with paddle.no_grad():
            images = nets["decoder"].probs(grid[0], grid[1]).numpy()
        return save_image(images, os.path.join(cfg.images_dir, f"epoch{epoch}.png"),
                          nrow=grid[2])

    def write_epoch_outputs(epoch, row, images_per_s, vdl):
        """Every output of the epoch, all or none (checkpoint.all_or_nothing), the resume
        point renamed last: if a write fails (a full disk) or the run is stopped meanwhile, no
        file of the epoch appears and the resumed run trains the epoch again and writes them
        all, so none is lost."""
        grid_path = None
        with checkpoint.all_or_nothing():
            run.write_loss_csv(csv_path, history, columns)
            weights = {"config": cfg.to_dict(), "epoch": epoch + 1, "split": split}
            if (epoch + 1) % cfg.save_every == 0 or epoch == cfg.n_epochs - 1:
                path = os.path.join(cfg.model_dir, f"model{epoch}.npz")
                checkpoint.save(path, nets, weights)
                saved = [path]
            else:
                saved = []
            metric = family.select_by
            # history holds this epoch and, after a resume, the epochs of loss.csv before it;
            # ties: the later epoch
            if metric and row[metric] <= min(past[metric] for past in history):
                checkpoint.save(best_path, nets, {**weights, metric: row[metric]})
                saved.append(best_path)
            if grid is not None and (epoch % cfg.sample_every == 0 or epoch == cfg.n_epochs - 1):
                grid_path = save_samples(epoch)
            plot_losses(history, os.path.join(cfg.images_dir, "loss_curve.png"))
            save_state(epoch + 1, 0, dict.fromkeys(names, 0.0))
        for path in saved:
            if path == best_path:
                log.info("saved %s (%s %.6f, the lowest so far)", best_path, metric, row[metric])
            else:
                log.info("saved %s", path)
        if vdl is not None:  # after the renames: it reads the epoch's sample grid
            run.log_epoch_to_visualdl(vdl, row, images_per_s, grid_path)

    # created only now, so a refused --resume leaves the old VisualDL file alone
    vdl = (run.open_visualdl(log_writer, os.path.join(cfg.logs_dir, "vdl"))
           if log_writer is not None and is_main else None)
    progress = run.progress_bar(enabled=is_main)
    throughput = run.ThroughputLog(log, THROUGHPUT_EVERY, cfg.n_epochs, batches_per_epoch)
    t_run = time.perf_counter()
    steps_run = 0
    with vdl or contextlib.nullcontext(), run.StopFlag() as stop:
        for past in history if vdl is not None else ():  # epochs before a resumption
            run.log_epoch_to_visualdl(vdl, past, grid_path=os.path.join(
                cfg.images_dir, f"epoch{past['epoch']}.png"))
        for epoch in range(start_epoch, cfg.n_epochs):
            set_learning_rates(cfg, opts, plan, epoch)
            order = run.epoch_order(cfg.seed, epoch, n_train)
            x_epoch = paddle.gather(x_all, paddle.to_tensor(order))  # one copy, cheap slices
            y_epoch = model.y_train[order] if model.y_train is not None else None
            first = start_batch if epoch == start_epoch else 0
            sums = dict(partial_sums) if epoch == start_epoch else dict.fromkeys(names, 0.0)
            t_epoch = time.perf_counter()
            bar = progress(total=batches_per_epoch, initial=first, desc=f"epoch {epoch}")
            for batch in range(first, batches_per_epoch):
                throughput.begin()
                step = epoch * batches_per_epoch + batch
                paddle.seed(run.step_seed(cfg.seed, step, rank, world))
                start = batch * cfg.batch_size
                rows = min(cfg.batch_size, n_train - start)  # the last batch may be short
                mine = slice(start + rank * shard, start + min(rows, (rank + 1) * shard))
                x_batch = x_epoch[mine]
                y_batch = y_epoch[mine] if y_epoch is not None else None
                throughput.batch_ready()
                losses = model.step(x_batch, y_batch, step, sync)
                stop_now = stop.requested
                if world > 1:  # every process logs and decides on the same numbers
                    losses, stop_now = run.mean_over_processes(losses, stop_now)
                if not all(math.isfinite(v) for v in losses.values()):
                    where = (f"the last good state is in {last_path}" if saved_resume_point[0]
                             else "this run saved no resume point yet")
                    raise UserError(f"non-finite loss at epoch {epoch}, batch {batch} ({losses}); "
                                    f"training stopped, {where}; try a smaller learning rate")
                for name in names:
                    sums[name] += losses[name] * rows
                steps_run += 1
                throughput.step_done(epoch, batch, losses, rows)
                bar.update(1)
                if bar.n % PROGRESS_EVERY == 0:
                    seen = (batch + 1 - first) * cfg.batch_size
                    bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses.items())[:3]},
                                    img_per_s=f"{seen / (time.perf_counter() - t_epoch):.0f}")
                if stop_now and batch + 1 < batches_per_epoch:
                    bar.close()
                    if is_main:
                        save_state(epoch, batch + 1, sums)
                    log.info("interrupted: state after epoch %d batch %d saved to %s; "
                             "continue with --resume", epoch, batch, last_path)
                    stop.stop(f"terminated: state saved to {last_path}; continue with --resume")
            bar.close()
            seconds = time.perf_counter() - t_epoch
            # images trained on in this epoch by this run (fewer after a mid-epoch resume)
            images_per_s = (n_train - first * cfg.batch_size) / seconds
            row = {"epoch": epoch, **{k: sums[k] / n_train for k in names}, "seconds": seconds,
                   **model.epoch_metrics(x_all)}
            history.append(row)
            log.info("[Epoch %d/%d] %s  (%.1f s, %.0f img/s)", epoch, cfg.n_epochs,
                     "  ".join(f"{k} {row[k]:.6f}" for k in columns), seconds, images_per_s)
            if is_main:
                write_epoch_outputs(epoch, row, images_per_s, vdl)
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
