"""Where a training run starts: from scratch, or from the resume point ``model/last.npz`` of an
interrupted run with the same training settings (``--resume``), at the epoch and batch it
reached, with that epoch's running loss sums and loss.csv's earlier rows."""
import dataclasses
import os

import config
from utils import checkpoint, run
from utils.errors import UserError

# Settings that may differ between a run and its resumption (they do not change the math).
RESUMABLE_CHANGES = {"n_epochs", "resume", "device", "save_every", "sample_every",
                     "model_dir", "images_dir", "logs_dir", "data_dir", "visualdl", "preset"}


@dataclasses.dataclass
class Start:
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already trained
    partial_sums: dict = None  # {loss name: sum over those batches} (None: all zero)
    history: list = dataclasses.field(default_factory=list)  # loss.csv's rows before ``epoch``


def resume_options(saved, n_epochs):
    """The train.py options that reproduce a saved config's training settings."""
    base = config.resolve({"preset": saved.get("preset")}).to_dict()
    options = [f"--preset {saved['preset']}"] if saved.get("preset") else []
    options.append(f"--n_epochs {n_epochs}")
    for key in config.TRAIN_KEYS:
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
    diffs = [f"{k}: {saved.get(k, defaults[k])!r} there, {now[k]!r} now"
             for k in config.TRAIN_KEYS
             if k not in RESUMABLE_CHANGES and saved.get(k, defaults[k]) != now[k]]
    if diffs:
        raise UserError(f"--resume: {path} was trained with other settings "
                        f"({'; '.join(diffs)}); resume it with: python train.py --resume "
                        f"{resume_options(saved, cfg.n_epochs)}")


def start(cfg, model, split, columns, log, is_main=True):
    """Where this run starts (a ``Start``); with --resume, the networks and optimizers of
    ``model`` are restored from the resume point. Also clears what must not outlive a new run
    (another run's best.npz) and temporaries a killed write left."""
    last_path = os.path.join(cfg.model_dir, "last.npz")
    best_path = os.path.join(cfg.model_dir, "best.npz")
    begin = Start()
    if cfg.resume:
        if not os.path.isfile(last_path):
            raise UserError(f"--resume: no {last_path} to resume from; start without --resume")
        meta, arrays = checkpoint.load_resume_point(last_path, model.loss_names)
        check_resumable(meta["config"], cfg, last_path)
        checkpoint.check_same_split(meta, split, last_path, log)
        if meta["epoch"] >= cfg.n_epochs:
            raise UserError(f"--resume: {last_path} has already trained {meta['epoch']} epochs; "
                            f"pass --n_epochs larger than {meta['epoch']} to train on")
        history = run.read_history(os.path.join(cfg.logs_dir, "loss.csv"), meta["epoch"],
                                   columns)
        checkpoint.restore_networks(model.nets, arrays, last_path)
        checkpoint.restore_optimizers(model.opts, arrays, last_path)
        begin = Start(meta["epoch"], meta["batch"],
                      dict(zip(model.loss_names, meta["partial_sums"])), history)
    elif os.path.isfile(last_path):
        checkpoint.refuse_to_replace_unfinished(last_path)
        log.info("a new run: it replaces the finished run's resume point %s and outputs of the "
                 "same names (model*.npz of later epochs stay)", last_path)
    if not cfg.resume and is_main and os.path.isfile(best_path):
        os.remove(best_path)  # another run's best epoch: not this run's
    if cfg.resume and model.select_by and begin.history and not os.path.isfile(best_path):
        log.info("no %s: it will hold the best epoch from now on, if one beats the lowest %s "
                 "of loss.csv", best_path, model.select_by)
    for name in checkpoint.remove_stale_temporaries(cfg.model_dir) if is_main else ():
        log.info("removed %s, left by an interrupted write", name)
    log.info("resumed from %s at epoch %d, batch %d" % (last_path, begin.epoch, begin.batch)
             if cfg.resume else "new run")
    return begin
