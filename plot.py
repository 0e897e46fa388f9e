"""The figures of the paper's code-space experiments, from a checkpoint (Figures 2, 4, 7, 10).

    python plot.py --preset gmm_labels          # runs/gmm_labels/model/model19.npz
    python plot.py --checkpoint model/model199.npz --images_dir images

What is drawn follows the checkpoint's own config (its prior, code size and labels), written
to images_dir:

- latent.png: the encoder's means of the test digits coloured by digit (Figures 2a/b, 4a/c);
  for a 2-d code the code itself over grey prior samples, else its first two principal
  components;
- prior_samples.png: decoded prior samples, a column per mixture component or swiss roll
  section (with label regularization: that column's digit);
- 2-d Gaussian prior, no labels: manifold.png, decodes at evenly spaced percentiles of the
  Gaussian along each axis (Figure 2e);
- mixture prior: manifold_component{k}.png, one per component, decodes at evenly spaced
  percentiles along that component's radial (rows) and tangential (columns) axes (Figure 4b);
- swiss roll prior: swiss_roll_walk.png, decodes walking along the roll from its centre, a row
  per section (Figure 4d);
- supervised: style_by_class.png, a row per style drawn from the prior, a column per class
  (Figure 7); the semi-supervised and clustering AAEs: the same, a column per category of y;
- with cluster heads (paper §7, Figure 11): latent.png shows the representations
  r = q(y|x) W + z of the test digits with the heads W marked.

logs/plot.json records the files and, with label regularization, component_accuracy: the
fraction of test digits whose code is nearest to their own label's component / section, and
prior_fit: how closely the test codes follow the prior (``priors.prior_fit``). For a
supervised AAE it records how well the style and the class come apart (paper §4): the style
codes of STYLE_DIGITS test digits are each decoded with every class, and
- label_control: the fraction of those images a nearest-centroid classifier (class means of
  the training images) reads as the class they were decoded with (chance 0.1; the same
  classifier on the real test digits: centroid_accuracy);
- style_spread: the pixel variance of those images across styles, per class, over that of
  real test digits of the class (0: the style code does nothing).
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import os
import time

import numpy as np

import config
import families
from data_maker import load_split
from eval import (check_output_folders, checkpoint_path, decode, encode_means, load_model,
                  require_decoder)
from priors import GaussianMixturePrior, GaussianPrior, SwissRollPrior, build_prior, \
    component_accuracy, grid_codes, prior_fit
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger, write_result_json
from utils.metrics import class_centroids, nearest_centroid, representations, style_spread
from utils.paddle_save_image import save_image
from utils.plots import plot_latent_scatter
from utils.run import select_device, stream

PLOT_KEYS = ["data_dir", "N_test", "load_epoch", "checkpoint", "seed", "device", "model_dir",
             "images_dir", "logs_dir", "preset"]
MANIFOLD_STEPS = 10  # decodes per side of a manifold grid (percentiles 5% ... 95%)
WALK_PER_SECTION = 10  # decodes per swiss roll section in swiss_roll_walk.png
BACKGROUND_POINTS = 5000  # prior samples drawn in grey behind a 2-d latent scatter
STYLE_DIGITS = 1000  # test digits whose style codes are decoded with every class


def figure_codes(prior, with_labels, n_classes, seed):
    """Every decoded figure of an experiment as {file name: (codes, decoder labels or None,
    images per grid row)}: pure math on the prior, no networks. ``with_labels``: the decoder
    also takes a class or category (one of ``n_classes``)."""
    figures = {}
    z, y, columns = grid_codes(prior, stream(seed, "sample_grid"), n_classes if with_labels else 0)
    figures["style_by_class.png" if with_labels else "prior_samples.png"] = (z, y, columns)
    if isinstance(prior, GaussianPrior) and prior.dim == 2 and not with_labels:
        figures["manifold.png"] = (prior.percentile_grid(MANIFOLD_STEPS), None, MANIFOLD_STEPS)
    if isinstance(prior, GaussianMixturePrior):
        for k in range(prior.n_components):
            figures[f"manifold_component{k}.png"] = (prior.component_grid(k, MANIFOLD_STEPS),
                                                      None, MANIFOLD_STEPS)
    if isinstance(prior, SwissRollPrior):
        figures["swiss_roll_walk.png"] = (prior.walk(prior.n_components * WALK_PER_SECTION),
                                          None, WALK_PER_SECTION)
    return figures


def main(argv=None):
    cfg = config.parse_config("plot.py", PLOT_KEYS, argv, description=__doc__.split("\n")[0])
    t0 = time.perf_counter()
    path = checkpoint_path(cfg)
    check_output_folders(cfg, ("images_dir", "logs_dir"))
    select_device(cfg.device)
    nets, train_cfg, meta = load_model(path)
    require_decoder(train_cfg, path)
    # the supervised AAE's measures read its decodes with the training images' class means
    family = families.get(train_cfg.labels)
    parts = ("train", "test") if family.decoder_label == "class" else ("test",)
    data = load_split(cfg.data_dir, n_test=cfg.N_test, parts=parts)
    ensure_folder(cfg.images_dir, "--images_dir")
    ensure_folder(cfg.logs_dir, "--logs_dir")
    log = get_logger("plot", os.path.join(cfg.logs_dir, "plot.log"))
    x_test, y_test = data["x_test"], data["y_test"]
    if x_test.shape[1] != nets["decoder"].out_dim:
        raise UserError(f"{path} was trained on images of another size than those in "
                        f"{cfg.data_dir}")
    prior = build_prior(train_cfg)
    # classes of a supervised decoder, categories of the categorical model's (else unused)
    n_classes = nets["decoder"].label_dim
    log.info("plotting %s (trained %s epochs; prior %s, %d-d code, labels %s)", path,
             meta.get("epoch"), train_cfg.prior, train_cfg.latent_dim, train_cfg.labels)

    written = {}
    decoder = nets["decoder"]
    background = heads = None
    if train_cfg.cluster_heads:  # paper §7: the map is r = y W + z, not the style
        codes = representations(nets["encoder"], decoder, x_test)
        heads = decoder.cluster_heads.numpy()
        title = (f"r = y W + z of {len(codes)} test digits; crosses: the {len(heads)} "
                 f"cluster heads")
    else:
        codes = encode_means(nets["encoder"], x_test)
        if train_cfg.latent_dim == 2:
            background = prior.sample(BACKGROUND_POINTS, stream(cfg.seed, "plot_background"))
        what = "style codes" if family.decoder_label else "codes"
        title = (f"{what} of {len(codes)} test digits, {train_cfg.prior} prior"
                 if train_cfg.latent_dim == 2 else None)
    written["latent.png"] = plot_latent_scatter(
        codes, y_test, os.path.join(cfg.images_dir, "latent.png"), background, title, heads)
    for name, (z, labels, columns) in figure_codes(prior, bool(family.decoder_label), n_classes,
                                                   cfg.seed).items():
        images = decode(nets["decoder"], z, labels=labels)
        written[name] = save_image(images, os.path.join(cfg.images_dir, name), nrow=columns)

    fit = None
    # each code's component / section, for both statistics below
    assigned = prior.assign(codes) if heads is None and hasattr(prior, "assign") else None
    if heads is None:  # the codes are z, drawn to follow the prior
        samples = prior.sample(len(codes), stream(cfg.seed, "plot_prior_samples"))
        fit = prior_fit(prior, codes, samples, assigned)
        log.info("prior fit of the test codes: %s", ", ".join(
            f"{k} {v:.3f}" for k, v in fit.items() if k != "component_share"))
    accuracy = None
    if family.label_prior:
        accuracy = component_accuracy(prior, codes, y_test, assigned)
        log.info("component_accuracy %.4f: test digits whose code is nearest to their label's "
                 "part of the prior (chance %.2f)", accuracy, 1 / prior.n_components)
    result = {"checkpoint": path, "trained_epochs": meta.get("epoch"),
              "train_config": train_cfg.to_dict(), "n_test": len(x_test),
              "component_accuracy": accuracy, "prior_fit": fit, "figures": written}
    if family.decoder_label == "class":
        result.update(style_and_class(decoder, codes, data, n_classes))
        log.info("label_control %.4f (chance %.2f; the classifier on real test digits %.4f), "
                 "style_spread %.3f", result["label_control"], 1 / n_classes,
                 result["centroid_accuracy"], result["style_spread"])
    result["seconds"] = time.perf_counter() - t0
    write_result_json(os.path.join(cfg.logs_dir, "plot.json"), result,
                      "the figures are written; the model's codes may hold NaN (a diverged "
                      "training run): plot an earlier checkpoint")
    log.info("wrote %s", ", ".join(sorted(written)))
    return result


def style_and_class(decoder, codes, data, n_classes):
    """The supervised AAE's style/class measures (module docstring) for test style codes."""
    centroids = class_centroids(data["x_train"], data["y_train"], n_classes)
    styles = codes[:STYLE_DIGITS]
    z = np.repeat(styles, n_classes, axis=0)  # each style once per class
    intended = np.tile(np.arange(n_classes), len(styles))
    images = decode(decoder, z, labels=intended)
    x_test, y_test = data["x_test"], data["y_test"]
    return {"style_digits": len(styles),
            "label_control": float(np.mean(nearest_centroid(centroids, images) == intended)),
            "centroid_accuracy": float(np.mean(nearest_centroid(centroids, x_test) == y_test)),
            "style_spread": style_spread(images.reshape(len(styles), n_classes, -1),
                                         x_test, y_test)}


if __name__ == "__main__":
    run_cli(main, all_or_nothing="plot.py")
