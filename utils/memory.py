"""Whether a run fits in this machine's memory: an estimate of the bytes of the largest arrays
train.py and eval.py hold for a config, against the physical memory (or a container's lower
limit), so that a size that cannot fit is refused before any work, naming the option."""
import dataclasses
import os

from utils.errors import UserError


def run_bytes(cfg, pixels, most_rows, label_units):
    """Bytes of the larger of a config's training and evaluation. ``pixels``: per image;
    ``most_rows``: {"train": .., "test": ..} the most images a split can hold;
    ``label_units(cfg)``: (label units beside a code, number of discriminators)."""
    units, n_disc = label_units(cfg)
    params = (cfg.N * (2 * pixels + 4 * cfg.latent_dim + 4 * units + 10)
              + (2 + n_disc) * cfg.N * cfg.N + pixels)
    n_train = min(cfg.N_train, most_rows["train"])
    batch = min(cfg.batch_size, n_train)
    # weights, gradients and two optimizer slots; the training images as float32; a
    # mini-batch's activations and dropout masks
    training = 4 * 4 * params + 4 * pixels * n_train + 4 * batch * (30 * cfg.N + 8 * pixels)
    n_valid = min(cfg.N_valid, most_rows["train"])
    n_test = min(cfg.N_test, most_rows["test"])
    threads = os.cpu_count() or 1
    # the weights; the samples (decoded, concatenated, centred in float64 and float32 copies);
    # per thread a 32 MB block of distances and a 64-row scratch; the log-likelihood of every
    # validation image for every sigma; the test images
    evaluation = (4 * params + 24 * pixels * cfg.N_gen
                  + threads * ((32 << 20) + 4 * 65 * cfg.N_gen)
                  + 16 * cfg.sigma_num * (n_valid + n_test)
                  + 4 * pixels * (n_valid + n_test))
    return max(training, evaluation)


def machine_bytes():
    """The memory this process may use: physical memory, or a lower cgroup v2 limit; None
    where the system does not say."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            memory = min(memory, int(limit))
    except OSError:
        pass
    return memory


def readable(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000


# the sizes a user may have set too large, tried in turn for the one to blame
SIZES = ("N_gen", "N", "latent_dim", "sigma_num", "n_categories")


def refuse_too_large(cfg, **shape):
    """Raise a UserError naming the option to lower when ``cfg`` (a Config) would need more
    memory than the machine has (``shape``: run_bytes's other arguments)."""
    memory = machine_bytes()
    total = run_bytes(cfg, **shape)
    if memory is None or total <= memory:
        return
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    # the option responsible: the one whose default value would shrink the need most
    culprit = min(SIZES, key=lambda name: run_bytes(dataclasses.replace(
        cfg, **{name: min(getattr(cfg, name), defaults[name])}), **shape))
    raise UserError(f"--{culprit} {getattr(cfg, culprit)}: the run would need about "
                    f"{readable(total)} of memory, more than the {readable(memory)} of this "
                    f"machine; choose a smaller --{culprit}")
