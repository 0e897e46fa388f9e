"""Parzen-window log-likelihood of a trained AAE on the MNIST test set (paper §5, Table 1).

Draws N_gen codes from the prior, decodes them (eval mode, no gradients, the decoder's pixel
means), fits a Gaussian Parzen window on those samples, chooses its width sigma by the mean
log-likelihood of the validation split, and reports the test log-likelihood mean +- its
standard error:

    python eval.py                              # model/model199.npz
    python eval.py --load_epoch 0 --N_gen 1000
    python eval.py --checkpoint runs/seed0/model/model199.npz --sigma 0.15

Writes logs/eval.log, logs/eval.json and images/sigma_cv.png (the cross-validation curve),
images/eval_samples.png (100 of the samples).
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import json
import os
import time

import numpy as np
import paddle

import config
from data_maker import load_split
from network import build_networks
from train import select_device
from utils import checkpoint
from utils.errors import UserError, run_cli
from utils.log import get_logger
from utils.paddle_save_image import save_image
from utils.parzen_ll import cross_validate_sigma, mean_and_standard_error, parzen_log_likelihood

EVAL_KEYS = [
    "data_dir", "N_valid", "N_test", "N_gen", "load_epoch", "checkpoint", "trust_pickle",
    "sigma", "sigma_min", "sigma_max", "sigma_num", "seed", "device", "model_dir", "images_dir",
    "logs_dir", "save_samples",
]
GENERATION_BATCH = 1000


def load_model(path, trust_pickle=False):
    """Networks and the training config of a checkpoint, ready for evaluation."""
    if checkpoint.is_pickle_checkpoint(path):
        meta, arrays = checkpoint.load_legacy_pickle(path, trust_pickle)
    else:
        meta, arrays = checkpoint.load(path)
    train_cfg = config.Config.from_dict(meta["config"], where=path)
    out_bias = arrays.get("net/decoder/model.6.bias")  # the decoder's output layer
    if out_bias is None:
        raise UserError(f"{path} holds no decoder weights")
    nets = build_networks(train_cfg, in_dim=out_bias.shape[0])
    checkpoint.restore_networks(nets, arrays, path)
    for layer in nets.values():
        layer.eval()
    return nets, train_cfg, meta


def generate(decoder, train_cfg, n, seed, progress=None):
    """n samples of p(x) = E_z p(x|z), z from the prior: the decoder's pixel means in [0, 1]."""
    z = np.random.default_rng(seed).normal(0.0, train_cfg.std, (n, train_cfg.latent_dim))
    decoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, n, GENERATION_BATCH):
            z_batch = paddle.to_tensor(z[start:start + GENERATION_BATCH].astype("float32"))
            out.append(decoder.probs(z_batch).numpy())
            if progress is not None:
                progress(len(out[-1]))
    return np.concatenate(out).astype(np.float32)


def plot_sigma_curve(sigmas, valid_ll, best_sigma, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.semilogx(sigmas, valid_ll, "o-", ms=4)
    ax.axvline(best_sigma, color="C3", ls="--", label=f"chosen sigma = {best_sigma:.4f}")
    ax.set_xlabel("Parzen window width sigma")
    ax.set_ylabel("mean validation log-likelihood (nats)")
    ax.set_title("sigma cross-validation")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)


def main(argv=None):
    cfg = config.parse_config("eval.py", EVAL_KEYS, argv, description=__doc__.split("\n")[0])
    timings = {}
    t0 = time.perf_counter()
    path = cfg.checkpoint or os.path.join(cfg.model_dir, f"model{cfg.load_epoch}.npz")
    if not os.path.isfile(path):
        hint = ("train one with python train.py" if cfg.checkpoint is None else
                "check the path")
        raise UserError(f"checkpoint {path} not found; {hint}")
    if cfg.save_samples and not cfg.save_samples.endswith(".npy"):
        raise UserError(f"--save_samples {cfg.save_samples}: the file name must end in .npy")
    data = load_split(cfg.data_dir, n_valid=cfg.N_valid, n_test=cfg.N_test)
    for folder in (cfg.images_dir, cfg.logs_dir):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create folder {folder}: {err.strerror}") from None
    log = get_logger("eval", os.path.join(cfg.logs_dir, "eval.log"))
    select_device(cfg.device)
    nets, train_cfg, meta = load_model(path, cfg.trust_pickle)
    x_valid, x_test = data["x_valid"], data["x_test"]
    n_pixels = nets["decoder"].model[6].weight.shape[1]
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
    if cfg.save_samples:
        checkpoint.atomic_write(cfg.save_samples, lambda f: np.save(f, samples))
        log.info("samples saved to %s", cfg.save_samples)
    save_image(samples[:100], os.path.join(cfg.images_dir, "eval_samples.png"), nrow=10)

    t = time.perf_counter()
    if cfg.sigma is None:
        sigmas = config.sigma_grid(cfg)
        bar = _bar(len(x_valid), f"cross-validating {len(sigmas)} sigmas")
        cv = cross_validate_sigma(samples, x_valid, sigmas,
                                  progress=lambda done: bar.update(done - bar.n))
        bar.close()
        sigma, valid_ll = cv["sigma"], cv["valid_ll"]
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
    timings["test"] = time.perf_counter() - t

    result = {
        "ll_mean": ll_mean, "ll_se": ll_se, "sigma": float(sigma),
        "sigma_grid": sigma_grid_used, "valid_ll": valid_ll,
        "n_gen": cfg.N_gen, "n_valid": len(x_valid), "n_test": len(x_test),
        "seed": cfg.seed, "checkpoint": path, "trained_epochs": meta.get("epoch"),
        "train_config": train_cfg.to_dict(), "timings": timings,
    }
    checkpoint.atomic_write(os.path.join(cfg.logs_dir, "eval.json"),
                            lambda f: f.write(json.dumps(result, indent=2).encode()))
    line = f"LL = {ll_mean:.2f} ± {ll_se:.2f} (sigma = {sigma:.4f})"
    log.info("%s on %d test images, %d samples; seconds: %s", line, len(x_test), cfg.N_gen,
             {k: round(v, 2) for k, v in timings.items()})
    print(line)
    return result


if __name__ == "__main__":
    run_cli(main)
