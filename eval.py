"""Parzen-window log-likelihood of a trained AAE on the MNIST test set (paper §3, Table 1).

Draws N_gen codes from the prior, decodes them (eval mode, no gradients, the decoder's pixel
means), fits a Gaussian Parzen window on those samples, chooses its width sigma by the mean
log-likelihood of the validation split, and reports the test log-likelihood mean +- its
standard error:

    python eval.py                              # model/model199.npz
    python eval.py --load_epoch 0 --N_gen 1000
    python eval.py --checkpoint runs/seed0/model/model199.npz --sigma 0.15
    python eval.py --preset gmm_labels          # that preset's runs/gmm_labels/model/model199.npz

Writes logs/eval.log, logs/eval.json and images/sigma_cv.png (the cross-validation curve),
images/eval_samples.png (100 of the samples) and images/latent_scatter.png (the encoder's means
of up to 5000 test digits, coloured by digit; the first two principal components when the code
has more than two dimensions). ``--interpolate`` also writes images/interpolation.png: for
pairs of test digits, the decoded points on the line between their codes.
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import os
import re
import time

import numpy as np
import paddle

import config
from data_maker import load_split
import families
from priors import build_prior
from utils import checkpoint, files
from utils.errors import UserError, check_path_length, ensure_folder, refuse_non_finite, run_cli
from utils.log import get_logger, write_result_json
from utils.metrics import forward_in_batches
from utils.paddle_save_image import save_image
from utils.plots import plot_interpolations, plot_latent_scatter, plot_sigma_curve
from utils.parzen_ll import cross_validate_sigma, mean_and_standard_error, parzen_log_likelihood
from utils.run import select_device, stream
from utils.steps import one_hot

EVAL_KEYS = [
    "data_dir", "N_valid", "N_test", "N_gen", "load_epoch", "checkpoint", "trust_pickle",
    "sigma", "sigma_min", "sigma_max", "sigma_num", "seed", "device", "model_dir", "images_dir",
    "logs_dir", "save_samples", "interpolate", "preset",
]
GENERATION_BATCH = 1000
SCATTER_POINTS = 5000  # test digits in the latent scatter plot: enough to see every class
INTERPOLATION_PAIRS = 8  # rows of images/interpolation.png
INTERPOLATION_STEPS = 10  # columns: both ends (the two digits' codes) and 8 points between
NON_FINITE_HINT = ("try a sigma nearer 0.1 (--sigma, or --sigma_min / --sigma_max), or another "
                   "checkpoint")


def checkpoint_path(cfg):
    """--checkpoint, else <model_dir>/model<load_epoch>.npz; refused if it does not exist."""
    path = cfg.checkpoint or os.path.join(cfg.model_dir, f"model{cfg.load_epoch}.npz")
    if os.path.isdir(path):
        try:
            inside = sorted(name for name in os.listdir(path) if name.endswith(".npz"))
        except OSError:
            inside = []
        example = (f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})"
                   if inside else "")
        raise UserError(f"checkpoint {path} is a folder, not a file: give the path of a "
                        f"checkpoint file{example}")
    if not os.path.isfile(path):
        hint = ("check the path" if cfg.checkpoint is not None else
                f"train one with {train_command(cfg)}")
        raise UserError(f"checkpoint {path} not found; {hint}")
    return path


def train_command(cfg):
    """The train.py command that writes the checkpoints ``cfg`` looks for: its preset, and
    its --model_dir when that is not the preset's (or the default) one."""
    words = ["python train.py"]
    preset = {"preset": cfg.preset} if cfg.preset is not None else {}
    if cfg.preset is not None:
        words.append(f"--preset {cfg.preset}")
    if cfg.model_dir != config.resolve(preset).model_dir:
        words.append(f"--model_dir {cfg.model_dir}")
    return " ".join(words)


def saved_output_size(arrays):
    """Pixels per image a checkpoint's decoder generates: the width of the last layer of its
    ``decoder.model`` (the highest-numbered ``net/decoder/model.<i>.bias``); None without
    decoder weights."""
    layers = [int(m.group(1)) for m in (re.fullmatch(r"net/decoder/model\.(\d+)\.bias", key)
                                        for key in arrays) if m]
    if not layers:
        return None
    return arrays[f"net/decoder/model.{max(layers)}.bias"].size


def load_model(path, trust_pickle=False):
    """Networks and the training config of a checkpoint, ready for evaluation."""
    if checkpoint.is_pickle_checkpoint(path):
        meta, arrays = checkpoint.load_legacy_pickle(path, trust_pickle)
    else:
        meta, arrays = checkpoint.load(path)
    train_cfg = config.Config.from_dict(meta["config"], where=path)
    family = families.get(train_cfg.labels)
    if "networks" in meta:  # what built them, recorded by train.py
        in_dim, n_classes = recorded_sizes(meta["networks"], train_cfg, path)
    else:  # an older checkpoint: the sizes from the shapes of its weights
        in_dim, n_classes = sizes_from_weights(arrays, family, train_cfg, path)
    nets = family.build_networks(train_cfg, in_dim, n_classes)
    checkpoint.restore_networks(nets, arrays, path)
    for layer in nets.values():
        layer.eval()
    return nets, train_cfg, meta


def recorded_sizes(record, train_cfg, path):
    """(pixels per image, classes) of a checkpoint's ``networks`` record, checked."""
    sizes = [record.get(key) if isinstance(record, dict) else None
             for key in ("in_dim", "n_classes")]
    if (not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes)
            or record.get("family") != train_cfg.labels):
        raise UserError(f"{path}: its record of the networks ({record!r}) is damaged or does "
                        f"not fit its --labels {train_cfg.labels} config")
    return tuple(sizes)


def sizes_from_weights(arrays, family, train_cfg, path):
    """(pixels per image, classes) of a checkpoint without a ``networks`` record."""
    in_dim = saved_output_size(arrays)
    first = arrays.get("net/encoder/model.0.weight")
    if in_dim is None and first is not None and first.ndim == 2:  # an encoder alone
        in_dim = first.shape[0]  # (Table 2's classifier)
    if in_dim is None:
        raise UserError(f"{path} holds no decoder or encoder weights")
    try:
        n_classes = family.saved_n_classes(train_cfg, arrays)
    except (KeyError, IndexError):
        n_classes = None
    if not in_dim or not n_classes or n_classes < 1:
        raise UserError(f"{path}: its weights do not fit the --labels {train_cfg.labels} model "
                        "its record describes (missing or mis-shaped first layers): a damaged "
                        "file, or another model's weights under this record")
    return in_dim, n_classes


def require_decoder(train_cfg, path):
    """Refuse a checkpoint whose family has no decoder (Table 2's classifier baseline)."""
    if not families.get(train_cfg.labels).has_decoder:
        raise UserError(f"{path} is a --labels {train_cfg.labels} model without a decoder: it "
                        "generates nothing; give its test error with classify.py")


def generate(decoder, train_cfg, n, seed, progress=None):
    """n samples of p(x) = E_z p(x|z), z from the prior: the decoder's pixel means in [0, 1].
    A supervised decoder p(x|y, z) gets the classes in turn (0, 1, ..., 0, 1, ...), so that
    each class has the same share."""
    z = build_prior(train_cfg).sample(n, stream(seed, "parzen_samples"))
    labels = np.arange(n) % decoder.label_dim if decoder.label_dim else None
    return decode(decoder, z, progress, labels)


def decode(decoder, z, progress=None, labels=None):
    """The decoder's pixel means for codes z [n, latent_dim] (eval mode, no gradients);
    ``labels`` [n] for a supervised decoder."""
    decoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(z), GENERATION_BATCH):
            z_batch = paddle.to_tensor(z[start:start + GENERATION_BATCH].astype("float32"))
            y_batch = (one_hot(labels[start:start + GENERATION_BATCH], decoder.label_dim)
                       if decoder.label_dim else None)
            out.append(decoder.probs(z_batch, y_batch).numpy())
            if progress is not None:
                progress(len(out[-1]))
    return np.concatenate(out).astype(np.float32)


def encode_means(encoder, x):
    """The encoder's mean mu(x) for images x [n, pixels] (eval mode, no gradients).

    The Gaussian encoder's code adds noise eps * exp(logvar / 2) with eps of std eps_std (5
    by default, as large as the prior's), which would blur the picture of where each digit
    goes; mu is that code without the noise, and the code itself for the deterministic
    encoder."""
    encoder.eval()
    return forward_in_batches(encoder.mean, x, GENERATION_BATCH)


def interpolation_pairs(n_test, seed, n_pairs=INTERPOLATION_PAIRS):
    """Indices [pairs, 2] of distinct test images, fixed by the seed; fewer pairs when there
    are fewer than 2 * n_pairs test images."""
    n_pairs = min(n_pairs, n_test // 2)
    # a stream of its own (utils/run.py STREAMS), apart from generate()'s and training's
    rng = stream(seed, "interpolation_pairs")
    return rng.choice(n_test, size=2 * n_pairs, replace=False).reshape(n_pairs, 2)


def line_points(z_start, z_end, n_steps):
    """n_steps evenly spaced points from each row of z_start to the same row of z_end, ends
    included: [rows * n_steps, latent_dim], the points of one row consecutive."""
    t = np.linspace(0.0, 1.0, n_steps)[None, :, None]  # [1, n_steps, 1]
    points = (1.0 - t) * z_start[:, None, :] + t * z_end[:, None, :]  # [rows, n_steps, dim]
    return points.reshape(-1, z_start.shape[1])


def check_samples_path(path):
    """Refuse, before any work, a --save_samples that cannot be written: not a .npy name, a
    folder, or a name too long for the file system (with the temporary file written first)."""
    if not path.endswith(".npy"):
        raise UserError(f"--save_samples {path}: the file name must end in .npy")
    if os.path.isdir(path):
        raise UserError(f"--save_samples {path} is a folder: give a file name ending in .npy")
    # atomic_write writes a temporary name beside it first, then renames it
    check_path_length(path, "--save_samples", reserve=files.TEMPORARY_RESERVE)


def check_output_folders(cfg, names):
    """Refuse, before any work and before creating anything, output folders (``names`` of
    options) whose path the file system cannot hold."""
    for name in names:
        check_path_length(getattr(cfg, name), f"--{name}")


class _Chunks:
    """A file object seen through its ``write`` alone: numpy then writes an array in chunks
    with ``write`` instead of ``ndarray.tofile``, whose error on a full disk carries no reason
    (``OSError: 16 requested and 0 written``); ``write`` raises the system's own error."""

    def __init__(self, f):
        self.write = f.write


def save_samples(path, samples):
    """``samples`` as a .npy file, atomically; a full disk or a refused write is one line."""
    try:
        files.atomic_write(path, lambda f: np.save(_Chunks(f), samples))
    except UserError as err:
        raise UserError(f"{err}; the samples were not saved (choose another --save_samples, "
                        "or make room there)") from None


def _bar(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)


def main(argv=None):
    cfg = config.parse_config("eval.py", EVAL_KEYS, argv, description=__doc__.split("\n")[0])
    timings = {}
    t0 = time.perf_counter()
    path = checkpoint_path(cfg)
    if cfg.save_samples:
        check_samples_path(cfg.save_samples)
    if cfg.interpolate and cfg.N_test < 2:
        raise UserError("--interpolate needs at least 2 test images: raise --N_test")
    check_output_folders(cfg, ("images_dir", "logs_dir"))
    select_device(cfg.device)
    data = load_split(cfg.data_dir, n_valid=cfg.N_valid, n_test=cfg.N_test,
                      parts=("valid", "test"))
    ensure_folder(cfg.images_dir, "--images_dir")
    ensure_folder(cfg.logs_dir, "--logs_dir")
    if cfg.save_samples:
        ensure_folder(os.path.dirname(cfg.save_samples) or ".", "--save_samples")
    result_path = os.path.join(cfg.logs_dir, "eval.json")
    log = get_logger("eval", os.path.join(cfg.logs_dir, "eval.log"))
    nets, train_cfg, meta = load_model(path, cfg.trust_pickle)
    require_decoder(train_cfg, path)
    x_valid, x_test = data["x_valid"], data["x_test"]
    n_pixels = nets["decoder"].out_dim
    if x_valid.shape[1] != n_pixels:
        raise UserError(f"{path} generates images of {n_pixels} pixels, the data in "
                        f"{cfg.data_dir} has {x_valid.shape[1]}")
    log.info("config: %s", cfg.to_dict())
    log.info("evaluating %s (trained %s epochs, seed %s)", path, meta.get("epoch"),
             train_cfg.seed)
    timings["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    bar = _bar(cfg.N_gen, "generating")
    samples = generate(nets["decoder"], train_cfg, cfg.N_gen, cfg.seed, bar.update)
    bar.close()
    timings["generate"] = time.perf_counter() - t
    if not np.isfinite(samples).all():
        raise UserError(f"{path} generates pixel values that are not numbers (NaN): the model "
                        f"diverged in training; evaluate an earlier checkpoint "
                        f"({result_path} is left as it was)")
    if cfg.save_samples:
        save_samples(cfg.save_samples, samples)
        log.info("samples saved to %s", cfg.save_samples)
    save_image(samples[:100], os.path.join(cfg.images_dir, "eval_samples.png"), nrow=10)

    t = time.perf_counter()
    if cfg.sigma is None:
        sigmas = config.sigma_grid(cfg)
        bar = _bar(len(x_valid), f"cross-validating {len(sigmas)} sigmas")
        try:
            cv = cross_validate_sigma(samples, x_valid, sigmas,
                                      progress=lambda done: bar.update(done - bar.n))
        except ValueError as err:  # a validation mean that is NaN: no sigma can be chosen
            raise UserError(f"cannot choose sigma ({err}); {NON_FINITE_HINT} ({result_path} "
                            f"is left as it was)") from None
        bar.close()
        sigma, valid_ll = cv["sigma"], cv["valid_ll"]
        refuse_non_finite({"valid_ll": valid_ll}, result_path, NON_FINITE_HINT)
        for s, ll in zip(sigmas, valid_ll):
            log.info("sigma = %.5f, mean validation LL = %.3f", s, ll)
        plot_sigma_curve(sigmas, valid_ll, sigma, os.path.join(cfg.images_dir, "sigma_cv.png"))
        sigma_grid_used = [float(s) for s in sigmas]
    else:
        sigma, valid_ll, sigma_grid_used = cfg.sigma, None, None
    timings["cross_validate"] = time.perf_counter() - t

    t = time.perf_counter()
    bar = _bar(len(x_test), "test log-likelihood")
    test_ll = parzen_log_likelihood(x_test, samples, sigma,
                                    progress=lambda done: bar.update(done - bar.n))
    bar.close()
    ll_mean, ll_se = mean_and_standard_error(test_ll)
    refuse_non_finite({"ll_mean": ll_mean, "ll_se": ll_se}, result_path, NON_FINITE_HINT)
    timings["test"] = time.perf_counter() - t

    t = time.perf_counter()
    n_codes = min(len(x_test), SCATTER_POINTS)
    codes = encode_means(nets["encoder"], x_test[:n_codes])
    scatter_path = plot_latent_scatter(codes, data["y_test"][:n_codes],
                                       os.path.join(cfg.images_dir, "latent_scatter.png"))
    interpolation_path = None
    if cfg.interpolate:
        pairs = interpolation_pairs(len(x_test), cfg.seed)
        ends = encode_means(nets["encoder"], x_test[pairs.ravel()])  # [2 * pairs, latent_dim]
        # a supervised decoder keeps the first digit's label along the line (only the style moves)
        labels = (np.repeat(data["y_test"][pairs[:, 0]], INTERPOLATION_STEPS)
                  if nets["decoder"].label_dim else None)
        images = decode(nets["decoder"], line_points(ends[0::2], ends[1::2], INTERPOLATION_STEPS),
                        labels=labels)
        interpolation_path = plot_interpolations(
            images, INTERPOLATION_STEPS, os.path.join(cfg.images_dir, "interpolation.png"))
        log.info("interpolated between test images %s", pairs.tolist())
    timings["latent"] = time.perf_counter() - t

    result = {
        "ll_mean": ll_mean, "ll_se": ll_se, "sigma": float(sigma),
        "sigma_grid": sigma_grid_used, "valid_ll": valid_ll,
        "n_gen": cfg.N_gen, "n_valid": len(x_valid), "n_test": len(x_test),
        "seed": cfg.seed, "checkpoint": path, "trained_epochs": meta.get("epoch"),
        "samples": cfg.save_samples,
        "train_config": train_cfg.to_dict(), "timings": timings,
        "latent_scatter": scatter_path, "n_latent": n_codes,
        "interpolation": interpolation_path,
    }
    write_result_json(result_path, result, NON_FINITE_HINT)
    line = f"LL = {ll_mean:.2f} ± {ll_se:.2f} (sigma = {sigma:.4f})"
    log.info("%s on %d test images, %d samples; seconds: %s", line, len(x_test), cfg.N_gen,
             {k: round(v, 2) for k, v in timings.items()})
    print(line)
    return result


if __name__ == "__main__":
    run_cli(main, all_or_nothing="eval.py")
