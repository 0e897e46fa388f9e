"""Test error of a semi-supervised or clustering AAE (paper §5 Table 2, §6 Table 3).

The encoder's categorical head q(y|x) classifies the 10,000 test digits:

- semi-supervised (``--labels semi_supervised``): the predicted class is argmax_y q(y|x); the
  error is the fraction of test digits whose prediction is not their label (Table 2);
- clustering (``--labels clustering``): cluster k is given the label of the validation image
  with the highest q(y=k|x) (the paper's §6 rule); a test digit goes to its cluster
  argmax_k q(y=k|x) and takes that cluster's label (Table 3): ``test_error``. Beside it, under
  their own names: ``test_error_train_labels``, the same rule with the training images the
  model was trained on (the first N_train of the split) in place of the 1,000 validation
  images; and ``test_error_majority_labels``, each cluster labelled by the most common label
  of the training images it holds (not a rule of the paper, a diagnostic: its gap to the
  others is what labelling a cluster by a single image costs, the rest is the clusters
  themselves mixing digits);
- with cluster heads (``--cluster_heads``, paper §7): also ``nearest_head_error``, each test
  digit's representation r = q(y|x) W + z taking the label of its nearest cluster head (head
  k has category k's label, as above).

    python classify.py --preset semi_1000          # runs/semi_1000/model/model99.npz
    python classify.py --preset cluster_16 --load_epoch 49
    python classify.py --checkpoint runs/semi_100/model/model99.npz

Writes logs/classify.log and logs/classify.json (the error, the number of test digits in each
category and how many of each digit it holds, and what it was computed on).
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import os
import time

import numpy as np

import config
from data_maker import load_split
from eval import check_output_folders, checkpoint_path, load_model
import families
from config import N_CLASSES
from utils.run import select_device
from utils.errors import UserError, ensure_folder, run_cli
from utils.log import get_logger, write_result_json
from utils.metrics import (class_probabilities, classification_error, cluster_labels,
                           clustering_error, labelled_clusters_error, majority_cluster_labels,
                           nearest_head_error, representations)

CLASSIFY_KEYS = ["data_dir", "N_test", "load_epoch", "checkpoint", "device", "model_dir",
                 "logs_dir", "preset"]


def main(argv=None):
    cfg = config.parse_config("classify.py", CLASSIFY_KEYS, argv,
                              description=__doc__.split("\n")[0])
    t0 = time.perf_counter()
    path = checkpoint_path(cfg)
    check_output_folders(cfg, ("logs_dir",))
    select_device(cfg.device)
    nets, train_cfg, meta = load_model(path)
    family = families.get(train_cfg.labels)
    if not family.classifies:
        able = [name for name in families.FAMILIES if families.get(name).classifies]
        raise UserError(f"{path} was trained with --labels {train_cfg.labels}: classify.py "
                        f"needs a model with a categorical q(y|x) (--labels "
                        f"{' or '.join(able)})")
    clustering = family.clusters
    parts = ("train", "valid", "test") if clustering else ("test",)
    data = load_split(cfg.data_dir, n_test=cfg.N_test, parts=parts)
    if clustering:  # the training-image rule and the majority diagnostic use its training images
        available = len(data["x_train"])
        if train_cfg.N_train > available:
            raise UserError(f"{path} was trained on N_train = {train_cfg.N_train} images, but "
                            f"{cfg.data_dir} holds {available} training images: classify.py "
                            f"labels the clusters with the images the model was trained on; "
                            f"give the --data_dir of the split it was trained with")
        data["x_train"] = data["x_train"][:train_cfg.N_train]
        data["y_train"] = data["y_train"][:train_cfg.N_train]
    ensure_folder(cfg.logs_dir, "--logs_dir")
    log = get_logger("classify", os.path.join(cfg.logs_dir, "classify.log"))
    log.info("classifying with %s (trained %s epochs, --labels %s, %d categories)", path,
             meta.get("epoch"), train_cfg.labels, train_cfg.n_categories)

    test_probs = class_probabilities(nets["encoder"], data["x_test"])
    category = test_probs.argmax(axis=1)
    result = {"checkpoint": path, "trained_epochs": meta.get("epoch"),
              "labels": train_cfg.labels, "n_categories": train_cfg.n_categories,
              "n_test": len(data["y_test"]), "train_config": train_cfg.to_dict(),
              # test digits per category (argmax q(y|x)): shows a q(y|x) that left categories
              # unused or put every digit in one
              "test_category_sizes": np.bincount(category,
                                                 minlength=train_cfg.n_categories).tolist(),
              # row k: how many test digits of each class category k holds; shows which
              # digits a cluster mixes
              "test_category_digits": [
                  np.bincount(data["y_test"][category == k], minlength=N_CLASSES).tolist()
                  for k in range(train_cfg.n_categories)]}
    if clustering:
        # the paper's rule (§6): each cluster takes the label of the validation image it is
        # most sure of; the training images' version and the majority vote are diagnostics
        valid_probs = class_probabilities(nets["encoder"], data["x_valid"])
        labels_of_category = cluster_labels(valid_probs, data["y_valid"])
        result["labelling_rule"] = "validation images (paper §6)"
        result["cluster_labels"] = labels_of_category.tolist()
        result["n_valid"] = len(data["y_valid"])
        result["test_error"] = clustering_error(valid_probs, data["y_valid"], test_probs,
                                                data["y_test"])
        train_probs = class_probabilities(nets["encoder"], data["x_train"])
        result["n_train"] = len(data["y_train"])
        result["train_cluster_labels"] = cluster_labels(train_probs, data["y_train"]).tolist()
        result["test_error_train_labels"] = clustering_error(train_probs, data["y_train"],
                                                             test_probs, data["y_test"])
        majority = majority_cluster_labels(train_probs, data["y_train"])
        result["majority_cluster_labels"] = majority.tolist()
        result["test_error_majority_labels"] = labelled_clusters_error(majority, test_probs,
                                                                       data["y_test"])
    else:
        labels_of_category = np.arange(train_cfg.n_categories)
        result["n_labeled"] = train_cfg.n_labeled
        result["test_error"] = classification_error(test_probs, data["y_test"])
    if train_cfg.cluster_heads:
        decoder = nets["decoder"]
        r = representations(nets["encoder"], decoder, data["x_test"])
        result["nearest_head_error"] = nearest_head_error(
            r, decoder.cluster_heads.numpy(), labels_of_category, data["y_test"])
    result["seconds"] = time.perf_counter() - t0
    write_result_json(os.path.join(cfg.logs_dir, "classify.json"), result,
                      "the encoder's q(y|x) may hold NaN (a diverged training run): classify "
                      "with an earlier checkpoint")
    line = f"test error = {100 * result['test_error']:.2f}% on {result['n_test']} test images"
    if "nearest_head_error" in result:
        line += (f"; nearest cluster head of r = y W + z: "
                 f"{100 * result['nearest_head_error']:.2f}%")
    if clustering:
        line += (f" (clusters labelled by the {len(data['y_valid'])} validation images, the "
                 f"paper's rule; by the training images: "
                 f"{100 * result['test_error_train_labels']:.2f}%; by the majority label "
                 f"of each cluster's training images: "
                 f"{100 * result['test_error_majority_labels']:.2f}%)")
    log.info("%s (%s)", line, train_cfg.labels)
    print(line)
    return result


if __name__ == "__main__":
    run_cli(main, all_or_nothing="classify.py")
