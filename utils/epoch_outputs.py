"""What a training run writes (only its main process writes; the others build the object and
skip the writes): the resume point model/last.npz, the weights model{N}.npz and
model/best.npz, logs/loss.csv, the sample grid images/epoch{N}.png and images/loss_curve.png,
and the epoch's VisualDL record."""
import os

import paddle

from config import N_CLASSES
from utils import checkpoint, files, run
from utils.paddle_save_image import save_image
from utils.plots import plot_losses


class EpochOutputs:
    """The files of one run. ``model``: its family's instance (nets, opts, loss_names, grid,
    select_by); ``split``: the record of the data it trains on (checkpoint.split_record)."""

    def __init__(self, cfg, model, split, columns, log):
        self.cfg, self.model, self.split, self.columns, self.log = cfg, model, split, columns, log
        self.select_by = model.select_by
        self.last_path = os.path.join(cfg.model_dir, "last.npz")
        self.best_path = os.path.join(cfg.model_dir, "best.npz")
        self.csv_path = os.path.join(cfg.logs_dir, "loss.csv")
        # what builds the networks again (eval.py): the family's build_networks arguments
        self.networks = {"family": cfg.labels, "in_dim": int(model.x_train.shape[1]),
                         "n_classes": N_CLASSES}
        self.grid = model.grid(cfg.seed)  # (codes, decoder labels, columns), or None
        self.saved_resume_point = False  # whether this run has written last.npz

    def write_config(self):
        files.atomic_write(os.path.join(self.cfg.logs_dir, "train_config.json"),
                           lambda f: f.write(self.cfg.to_json().encode()))

    def save_resume_point(self, epoch, batch, sums):
        """last.npz: networks, optimizer slots and where the run is (``sums``: the running
        loss sums of the unfinished epoch)."""
        checkpoint.save(self.last_path, self.model.nets,
                        {"config": self.cfg.to_dict(), "networks": self.networks,
                         "epoch": epoch, "batch": batch,
                         "partial_sums": [sums[k] for k in self.model.loss_names],
                         "split": self.split}, self.model.opts)
        self.saved_resume_point = True

    def where_saved(self):
        """For an error message: where the last good state is."""
        return (f"the last good state is in {self.last_path}" if self.saved_resume_point
                else "this run saved no resume point yet")

    def save_samples(self, epoch):
        nets = self.model.nets
        for layer in nets.values():
            layer.eval()
        with paddle.no_grad():
            images = nets["decoder"].probs(self.grid[0], self.grid[1]).numpy()
        return save_image(images, os.path.join(self.cfg.images_dir, f"epoch{epoch}.png"),
                          nrow=self.grid[2])

    def write_epoch(self, epoch, history, images_per_s, vdl):
        """Every output of the epoch (its row is history[-1]), all or none
        (files.all_or_nothing), the resume point renamed last: if a write fails (a full disk)
        or the run is stopped meanwhile, no file of the epoch appears and the resumed run
        trains the epoch again and writes them all, so none is lost."""
        cfg, row, metric = self.cfg, history[-1], self.select_by
        grid_path = None
        with files.all_or_nothing():
            run.write_loss_csv(self.csv_path, history, self.columns)
            weights = {"config": cfg.to_dict(), "networks": self.networks, "epoch": epoch + 1,
                       "split": self.split}
            saved = []
            if (epoch + 1) % cfg.save_every == 0 or epoch == cfg.n_epochs - 1:
                saved.append(os.path.join(cfg.model_dir, f"model{epoch}.npz"))
                checkpoint.save(saved[-1], self.model.nets, weights)
            # history holds this epoch and, after a resume, the epochs of loss.csv before it;
            # ties: the later epoch
            if metric and row[metric] <= min(past[metric] for past in history):
                checkpoint.save(self.best_path, self.model.nets, {**weights, metric: row[metric]})
                saved.append(self.best_path)
            if self.grid is not None and (epoch % cfg.sample_every == 0
                                          or epoch == cfg.n_epochs - 1):
                grid_path = self.save_samples(epoch)
            plot_losses(history, os.path.join(cfg.images_dir, "loss_curve.png"))
            self.save_resume_point(epoch + 1, 0, dict.fromkeys(self.model.loss_names, 0.0))
        for path in saved:
            if path == self.best_path:
                self.log.info("saved %s (%s %.6f, the lowest so far)", path, metric, row[metric])
            else:
                self.log.info("saved %s", path)
        if vdl is not None:  # after the renames: it reads the epoch's sample grid
            run.log_epoch_to_visualdl(vdl, row, images_per_s, grid_path)
