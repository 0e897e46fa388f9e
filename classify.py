"""Test error of a semi-supervised or clustering AAE (paper §5 Table 2, §6 Table 3).

The encoder's categorical head q(y|x) classifies the 10,000 test digits:

- semi-supervised (``--labels semi_supervised``): the predicted class is argmax_y q(y|x); the
  error is the fraction of test digits whose prediction is not their label (Table 2);
- clustering (``--labels clustering``): cluster k is given the label of the training image
  with the highest q(y=k|x) (the paper's §6: "we assign the label of the training point with
  the highest probability to the whole cluster"); a test digit goes to its cluster
  argmax_k q(y=k|x) and takes that cluster's label (Table 3). The training images are the
  first N_train of the split, the ones the model was trained on (its config's N_train);
- with cluster heads (``--cluster_heads``, paper §7): also ``nearest_head_error``, each test
  digit's representation r = q(y|x) W + z taking the label of its nearest cluster head (head
  k has category k's label, as above).

    python classify.py --preset semi_1000          # runs/semi_1000/model/model199.npz
    python classify.py --preset cluster_16 --load_epoch 99
    python classify.py --checkpoint runs/semi_100/model/model199.npz

Writes logs/classify.log and logs/classify.json (the error and what it was computed on).
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import json
import os
import time

import numpy as np
import paddle
import paddle.nn.functional as F

import config
from data_maker import load_split
from eval import GENERATION_BATCH, checkpoint_path, load_model
from network import CATEGORICAL_MODES
from train import select_device
from utils import checkpoint
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger

CLASSIFY_KEYS = ["data_dir", "N_test", "load_epoch", "checkpoint", "device", "model_dir",
                 "logs_dir", "preset"]


# ---- metrics: pure numpy --------------------------------------------------------------
def classification_error(probs, labels):
    """The fraction of rows whose most probable class (argmax of probs [n, K]) is not the
    label [n]."""
    probs, labels = np.asarray(probs), np.asarray(labels).reshape(-1)
    if len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"need as many (> 0) rows of probabilities as labels, got "
                         f"{len(probs)} and {len(labels)}")
    return float(np.mean(probs.argmax(axis=1) != labels))


def cluster_labels(train_probs, train_labels):
    """[K] the label of each cluster k: that of the training image with the highest
    q(y=k|x) (paper §6)."""
    train_probs = np.asarray(train_probs)
    return np.asarray(train_labels).reshape(-1)[train_probs.argmax(axis=0)]


def clustering_error(train_probs, train_labels, test_probs, test_labels):
    """The test error when each test image takes the label of its most probable cluster,
    clusters labelled by ``cluster_labels`` (paper §6, Table 3)."""
    labels_of_cluster = cluster_labels(train_probs, train_labels)
    predicted = labels_of_cluster[np.asarray(test_probs).argmax(axis=1)]
    return float(np.mean(predicted != np.asarray(test_labels).reshape(-1)))


def nearest_head_error(representations, heads, head_labels, labels):
    """The test error when each representation r [n, d] takes the label (``head_labels`` [K])
    of its nearest cluster head (rows of ``heads`` [K, d]): the dimensionality-reduction AAE
    read as a nearest-centre classifier (paper §7)."""
    r, heads = np.asarray(representations, np.float64), np.asarray(heads, np.float64)
    distance = ((r[:, None, :] - heads[None, :, :]) ** 2).sum(axis=-1)  # [n, K]
    predicted = np.asarray(head_labels)[distance.argmin(axis=1)]
    return float(np.mean(predicted != np.asarray(labels).reshape(-1)))


# ---- the model's q(y|x) ---------------------------------------------------------------
def class_probabilities(encoder, x):
    """q(y|x) [n, K] of images x [n, pixels] (eval mode, no gradients)."""
    encoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), GENERATION_BATCH):
            logits = encoder.logits(paddle.to_tensor(x[start:start + GENERATION_BATCH]))
            out.append(F.softmax(logits, axis=1).numpy())
    return np.concatenate(out)


def representations(encoder, decoder, x):
    """r = q(y|x) W + z [n, d] of images x [n, pixels]: the dimensionality-reduction AAE's
    low-dimensional map (paper §7; the decoder holds the cluster heads W)."""
    encoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), GENERATION_BATCH):
            y_probs, z = encoder(paddle.to_tensor(x[start:start + GENERATION_BATCH]))
            out.append(decoder.representation(z, y_probs).numpy())
    return np.concatenate(out)


def main(argv=None):
    cfg = config.parse_config("classify.py", CLASSIFY_KEYS, argv,
                              description=__doc__.split("\n")[0])
    t0 = time.perf_counter()
    path = checkpoint_path(cfg)
    select_device(cfg.device)
    nets, train_cfg, meta = load_model(path)
    if train_cfg.labels not in CATEGORICAL_MODES:
        raise UserError(f"{path} was trained with --labels {train_cfg.labels}: classify.py "
                        f"needs a model with a categorical q(y|x) (--labels "
                        f"{' or '.join(CATEGORICAL_MODES)})")
    clustering = train_cfg.labels == "clustering"
    parts = ("train", "test") if clustering else ("test",)
    data = load_split(cfg.data_dir, n_train=train_cfg.N_train if clustering else None,
                      n_test=cfg.N_test, parts=parts)
    ensure_folder(cfg.logs_dir, "--logs_dir")
    log = get_logger("classify", os.path.join(cfg.logs_dir, "classify.log"))
    log.info("classifying with %s (trained %s epochs, --labels %s, %d categories)", path,
             meta.get("epoch"), train_cfg.labels, train_cfg.n_categories)

    test_probs = class_probabilities(nets["encoder"], data["x_test"])
    result = {"checkpoint": path, "trained_epochs": meta.get("epoch"),
              "labels": train_cfg.labels, "n_categories": train_cfg.n_categories,
              "n_test": len(data["y_test"]), "train_config": train_cfg.to_dict()}
    if clustering:
        train_probs = class_probabilities(nets["encoder"], data["x_train"])
        labels_of_category = cluster_labels(train_probs, data["y_train"])
        result["cluster_labels"] = labels_of_category.tolist()
        result["n_train"] = len(data["y_train"])
        result["test_error"] = clustering_error(train_probs, data["y_train"], test_probs,
                                                data["y_test"])
    else:
        labels_of_category = np.arange(train_cfg.n_categories)
        result["n_labeled"] = train_cfg.n_labeled
        result["test_error"] = classification_error(test_probs, data["y_test"])
    decoder = nets["decoder"]
    if decoder.cluster_heads is not None:
        r = representations(nets["encoder"], decoder, data["x_test"])
        result["nearest_head_error"] = nearest_head_error(
            r, decoder.cluster_heads.numpy(), labels_of_category, data["y_test"])
    result["seconds"] = time.perf_counter() - t0
    checkpoint.atomic_write(os.path.join(cfg.logs_dir, "classify.json"),
                            lambda f: f.write(json.dumps(result, indent=2).encode()))
    line = f"test error = {100 * result['test_error']:.2f}% on {result['n_test']} test images"
    if "nearest_head_error" in result:
        line += (f"; nearest cluster head of r = y W + z: "
                 f"{100 * result['nearest_head_error']:.2f}%")
    log.info("%s (%s)", line, train_cfg.labels)
    print(line)
    return result


if __name__ == "__main__":
    run_cli(main)
