"""Run bookkeeping shared by every model family's training: seeding and named random streams,
the device and data-parallel processes, Ctrl-C safety, the run lock, loss.csv, VisualDL and
the progress bar. Nothing here touches a model's math."""
import contextlib
import csv
import os
import signal
import time

import numpy as np
import paddle
import paddle.distributed as dist

from utils import files
from utils.errors import Terminated, UserError
from utils.log import read_loss_csv

# ---------------------------------------------------------------------------------------
# Randomness. Every draw is a function of the seed and a key, so a resumed run repeats an
# uninterrupted one exactly, without saving generator states. Keys: [seed, epoch] for the
# order of an epoch's images, [seed, step] for Paddle's generator in a training step
# (SeedSequence, a separate derivation), and for everything else [seed, STREAMS[purpose],
# ...], values above any epoch, so no two purposes share a stream.
# ---------------------------------------------------------------------------------------
STREAMS = {
    "sample_grid": 2**32 - 1,  # the codes decoded for every epoch's sample grid
    "labeled_subset": 2**32 - 2,  # which training images keep their label
    "labeled_batches": 2**32 - 3,  # the order of the labelled mini-batches
    "parzen_samples": 2**32 - 4,  # eval.py: the prior samples decoded for the Parzen window
    "interpolation_pairs": 2**32 - 5,  # eval.py --interpolate: the test pairs
    "plot_background": 2**32 - 6,  # plot.py: prior samples behind the code scatter
    "plot_prior_samples": 2**32 - 7,  # plot.py: prior samples compared with the codes
}


def seed_everything(seed):
    """The one seeding function: Paddle's global generators (CPU and GPU) and numpy's."""
    paddle.seed(seed)
    np.random.seed(seed % 2**32)


def stream(seed, purpose, *more):
    """The numpy Generator of one purpose of STREAMS (``more``: further keys, e.g. a pass)."""
    return np.random.default_rng([seed, STREAMS[purpose], *more])


def step_seed(seed, step, rank=0, world=1):
    """The seed of one training step; data-parallel processes each draw their own numbers."""
    key = [seed, step] if world == 1 else [seed, step, rank]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint32)[0])


def epoch_order(seed, epoch, n):
    """The shuffled order of the training images in ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# ---------------------------------------------------------------------------------------
# Device and processes
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
    """The mean of ``values`` ({name: float}) over the data-parallel processes, and whether
    any raised ``flag`` (so that all of them stop at the same step)."""
    names = list(values)
    shared = paddle.to_tensor([values[k] for k in names] + [float(flag)], dtype="float32")
    dist.all_reduce(shared)
    totals = shared.numpy().tolist()
    world = dist.get_world_size()
    return {k: v / world for k, v in zip(names, totals)}, totals[-1] > 0


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so the saved
    state is always that of a completed step."""

    def __init__(self):
        self.requested = False
        self.signal = None
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
        self.signal = signum

    def stop(self, message):
        """End the run once its state is saved: SIGTERM as ``Terminated`` (exit status 143,
        ``message`` on stderr), Ctrl-C as ``KeyboardInterrupt`` (130), as every script does."""
        if self.signal == signal.SIGTERM:
            raise Terminated(message)
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RunLock:
    """One training run per folder at a time: an exclusive lock on <folder>/.train.lock for
    each folder given (the model and the logs folder). The run removes the lock file when it
    ends, by an error too; if it is killed, the operating system releases the lock and the
    file left behind is taken over by the next run. The file is opened without following a
    symbolic link of that name."""

    NAME = ".train.lock"

    def __init__(self, *folders):
        # each folder once (a lock taken twice by one process would refuse itself)
        self.folders = list(dict.fromkeys(os.path.realpath(f) for f in folders))
        self._held = []  # (path, file descriptor)

    def _take(self, fcntl, folder):
        path = os.path.join(folder, self.NAME)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            except OSError as err:
                if os.path.islink(path):
                    raise UserError(f"{path} is a symbolic link: the run lock is never taken "
                                    "through one; remove it") from None
                raise UserError(f"cannot create the run lock {path}: {err.strerror}; choose "
                                "a writable folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise UserError(f"another train.py is using {folder}; wait for it to end, or "
                                "choose other --model_dir, --images_dir and --logs_dir") from None
            # the run that held it may have removed the file meanwhile: lock the one there now
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except OSError:
                same = False
            if same:
                return path, fd
            os.close(fd)

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock
            return self
        try:
            for folder in self.folders:
                self._held.append(self._take(fcntl, folder))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for path, fd in self._held:
            try:  # removed while still held, so no other run can hold this file meanwhile
                if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
                    os.remove(path)
            except OSError:
                pass
            os.close(fd)
        self._held = []


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------
def write_loss_csv(path, history, names):
    """loss.csv: one row per epoch, the columns ``names`` between epoch and seconds."""
    def write(f):
        f.write(("epoch," + ",".join(names) + ",seconds\n").encode())
        for row in history:
            # repr: full precision, so a resumed run reads back exactly what was written
            f.write((f"{row['epoch']}," + ",".join(repr(row[k]) for k in names)
                     + f",{row['seconds']!r}\n").encode())
    files.atomic_write(path, write)


def read_history(path, before_epoch, columns):
    """loss.csv's rows of the epochs before ``before_epoch``, for a resumed run; refuses a
    damaged file, one of another model (other ``columns``) or one that lacks an epoch already
    trained."""
    try:
        history = read_loss_csv(path, before_epoch)
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as err:
        raise UserError(f"--resume: {path} is damaged ({err}); restore it or start a new run "
                        "without --resume") from None
    expected = {"epoch", "seconds", *columns}
    for row in history:
        if set(row) != expected:
            raise UserError(f"--resume: {path} has the columns {', '.join(row)}, this model "
                            f"writes {', '.join(['epoch', *columns, 'seconds'])}: it is another "
                            "run's; restore this run's loss.csv or start a new run")
    if [row["epoch"] for row in history] != list(range(before_epoch)):
        raise UserError(f"--resume: {path} does not hold one row for each of the epochs "
                        f"0-{before_epoch - 1} already trained; restore it or start a new run")
    return history


# One fixed file, rewritten by every run: VisualDL shows only the newest "vdlrecords*" file of
# a folder, so a resumed run must not start a second one.
VISUALDL_FILE = "vdlrecords.train.log"


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
    from PIL import Image
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


class ThroughputLog:
    """One log line every ``every`` training steps with the fields of Paddle's benchmark logs
    (TIPC): epoch, iter, the step's losses, ``avg_reader_cost`` (seconds per step spent getting
    the mini-batch), ``avg_batch_cost`` (seconds per whole step), ``avg_samples`` (images per
    step) and ``ips`` (images per second), averaged over the steps since the last line. Only
    reads the clock: nothing of the step changes."""

    def __init__(self, log, every, n_epochs, batches_per_epoch):
        self.log, self.every = log, every
        self.n_epochs, self.batches_per_epoch = n_epochs, batches_per_epoch
        self._reset()

    def _reset(self):
        self.steps, self.reader_cost, self.batch_cost, self.samples = 0, 0.0, 0.0, 0

    def begin(self):
        """A step starts (before its mini-batch is taken)."""
        self._t_step = time.perf_counter()

    def batch_ready(self):
        """The step's mini-batch is ready: the time since ``begin`` is its reader cost."""
        self.reader_cost += time.perf_counter() - self._t_step

    def step_done(self, epoch, batch, losses, rows):
        """The step (of ``rows`` images) has ended with ``losses`` ({name: float})."""
        self.batch_cost += time.perf_counter() - self._t_step
        self.steps += 1
        self.samples += rows
        if self.steps < self.every:
            return
        self.log.info("epoch: [%d/%d], iter: [%d/%d], %s, avg_reader_cost: %.5f sec, "
                      "avg_batch_cost: %.5f sec, avg_samples: %.1f, ips: %.1f images/sec",
                      epoch, self.n_epochs, batch + 1, self.batches_per_epoch,
                      ", ".join(f"{k}: {v:.6f}" for k, v in losses.items()),
                      self.reader_cost / self.steps, self.batch_cost / self.steps,
                      self.samples / self.steps, self.samples / max(self.batch_cost, 1e-12))
        self._reset()


def progress_bar(enabled=True):
    """tqdm on a terminal; silent (log lines only) when output goes to a file, and in all but
    the first data-parallel process."""
    from tqdm import tqdm
    return lambda **kw: tqdm(leave=False, disable=None if enabled else True, dynamic_ncols=True,
                             **kw)


def update_progress(bar, losses, images_seen, t_epoch, every):
    """One step more on the progress bar; every ``every`` steps, the first three losses and
    the epoch's images per second so far beside it."""
    bar.update(1)
    if bar.n % every == 0:
        bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses.items())[:3]},
                        img_per_s=f"{images_seen / (time.perf_counter() - t_epoch):.0f}")


def replay_history_to_visualdl(writer, history, images_dir):
    """A resumed run's earlier epochs (loss.csv's rows), written again to a new VisualDL file
    (open_visualdl empties it); nothing without ``writer``."""
    for past in history if writer is not None else ():
        log_epoch_to_visualdl(writer, past,
                              grid_path=os.path.join(images_dir, f"epoch{past['epoch']}.png"))


def shard_size(batch_size, n_train, world):
    """Rows of each mini-batch one of ``world`` data-parallel processes trains on; refuses
    sizes that do not split into equal shards."""
    if batch_size > n_train:
        raise UserError(f"--batch_size {batch_size} is larger than the {n_train} training images")
    if world > 1 and (batch_size % world or n_train % batch_size):
        raise UserError(f"data parallel over {world} processes needs --batch_size divisible by "
                        f"{world} and --N_train divisible by --batch_size (got {batch_size} "
                        f"and {n_train}), so that every process gets equal shards")
    return batch_size // world
