"""Baselines of the clustering experiment (paper §6, Table 3): k-means on the raw pixels.

A clustering AAE is worth its adversarial part only if it beats clustering the pixels
directly. This script clusters the training images with k-means (scikit-learn) into K
clusters and labels each cluster by every rule classify.py reports for the clustering AAE:

- ``test_error``: the paper's rule, each cluster labelled by the validation image it is most
  sure of; for k-means, the validation image nearest the cluster's centre;
- ``test_error_train_labels``: the same with the training images;
- ``test_error_majority_labels``: the most common label of the cluster's training images.

Every test image takes the label of its nearest centre. scikit-learn is needed here only
(requirements-dev.txt).

    python baselines.py                    # K = 16 and 30, seed 0 -> results/baselines/
    python baselines.py --k 16 --seed 1 --logs_dir /tmp/kmeans
"""
import utils.cpu_env  # noqa: F401  (thread settings, as every script)

import argparse
import os
import sys
import time

import numpy as np

import config
from data_maker import load_split
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger, write_result_json
from utils.metrics import cluster_labels, labelled_clusters_error, majority_cluster_labels

DEFAULT_K = (16, 30)  # the paper's Table 3
N_INIT = 10  # k-means restarts, the best kept (scikit-learn's usual number)


def centre_scores(x, centres):
    """[n, K] minus the squared distance of every image to every centre: the higher, the
    surer; the role q(y|x) plays for the AAE in the labelling rules of utils/metrics.py."""
    x = np.asarray(x, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    return 2.0 * x @ centres.T - (x * x).sum(axis=1, keepdims=True) - (centres * centres).sum(1)


def label_clusters(train_scores, y_train, valid_scores, y_valid, test_scores, y_test):
    """The test error by each of classify.py's labelling rules (pure numpy)."""
    rules = {"": cluster_labels(valid_scores, y_valid),
             "train_": cluster_labels(train_scores, y_train),
             "majority_": majority_cluster_labels(train_scores, y_train)}
    result = {"labelling_rule": "validation images (paper §6)"}
    for prefix, labels in rules.items():
        result[f"{prefix}cluster_labels"] = labels.tolist()
        name = "test_error" + (f"_{prefix[:-1]}_labels" if prefix else "")
        result[name] = labelled_clusters_error(labels, test_scores, y_test)
    result["test_category_sizes"] = np.bincount(np.argmax(test_scores, axis=1),
                                                minlength=test_scores.shape[1]).tolist()
    return result


def kmeans_baseline(k, data, seed, n_init, log):
    """Fit k-means with K = k on the training images; the test error by every rule."""
    from sklearn import __version__ as sklearn_version
    from sklearn.cluster import KMeans
    t0 = time.perf_counter()
    log.info("k-means with K = %d on %d training images (%d restarts, seed %d) ...", k,
             len(data["x_train"]), n_init, seed)
    kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(data["x_train"])
    scores = {part: centre_scores(data[f"x_{part}"], kmeans.cluster_centers_)
              for part in ("train", "valid", "test")}
    result = {"k": k, "seed": seed, "n_init": n_init, "inertia": float(kmeans.inertia_),
              "n_train": len(data["x_train"]), "n_valid": len(data["x_valid"]),
              "n_test": len(data["x_test"]),
              **label_clusters(scores["train"], data["y_train"], scores["valid"],
                               data["y_valid"], scores["test"], data["y_test"]),
              "sklearn": sklearn_version, "seconds": time.perf_counter() - t0}
    log.info("K = %d: test error %.2f%% (nearest validation image), %.2f%% (training "
             "images), %.2f%% (majority) in %.0f s", k, 100 * result["test_error"],
             100 * result["test_error_train_labels"], 100 * result["test_error_majority_labels"],
             result["seconds"])
    return result


def parse_args(argv):
    parser = config.build_parser("baselines.py", ["data_dir", "N_train", "seed", "logs_dir"],
                                 description=__doc__.split("\n")[0])
    parser.set_defaults(logs_dir="results/baselines")
    parser.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_K), metavar="K",
                        help=f"numbers of clusters (default: {' '.join(map(str, DEFAULT_K))})")
    parser.add_argument("--n_init", type=int, default=N_INIT,
                        help=f"k-means restarts, the best kept (default: {N_INIT})")
    args = parser.parse_args([] if argv is None else list(argv))
    args.k = list(dict.fromkeys(args.k))  # each K once, in the order given
    # the Config's checks of these options (batch_size 1: baselines.py takes no mini-batches)
    config.Config(data_dir=args.data_dir, N_train=args.N_train, seed=args.seed,
                  logs_dir=args.logs_dir, batch_size=1).validate()
    if any(k < 2 for k in args.k):
        raise UserError(f"--k must be at least 2 clusters, got {min(args.k)}")
    if any(k > args.N_train for k in args.k):
        raise UserError(f"--k {max(args.k)} is more clusters than the {args.N_train} training "
                        "images of --N_train")
    if args.n_init < 1:
        raise UserError(f"--n_init must be at least 1, got {args.n_init}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UserError("baselines.py needs scikit-learn: pip install -r requirements-dev.txt "
                        "(or pip install scikit-learn)") from None
    data = load_split(args.data_dir, n_train=args.N_train, parts=("train", "valid", "test"))
    ensure_folder(args.logs_dir, "--logs_dir")
    log = get_logger("baselines", os.path.join(args.logs_dir, "baselines.log"))
    results = {}
    for k in args.k:
        result = kmeans_baseline(k, data, args.seed, args.n_init, log)
        given = sys.argv[1:] if argv is None else list(argv)
        result["command"] = " ".join(["python baselines.py"] + given)
        write_result_json(os.path.join(args.logs_dir, f"kmeans_{k}.json"), result,
                          "k-means gave a result that is not a number")
        results[k] = result
    return results


if __name__ == "__main__":
    run_cli(main)
