"""Bring clustering results written before the headline rule changed to today's names.

classify.py and baselines.py now report the paper's §6 rule (each cluster labelled by the
validation image it is most sure of) as ``test_error``; before, ``test_error`` was the same
rule with the training images and the paper's rule sat beside it as
``test_error_valid_labels``. Both figures were always computed and saved; this script only
renames them, so every committed file reads the same way:

    test_error               -> test_error_train_labels
    cluster_labels           -> train_cluster_labels
    test_error_valid_labels  -> test_error
    valid_cluster_labels     -> cluster_labels
    nearest_head_error       -> nearest_head_error_train_labels   (its heads took the same labels)

    python results/relabel_clustering_rule.py            # every results/**/classify.json, kmeans_*.json
    python results/relabel_clustering_rule.py --table    # a Markdown table of every clustering result by each rule

A file already in today's names is left as it is (the script can be run twice).
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.files import atomic_write  # noqa: E402

RENAMES = (("test_error", "test_error_train_labels"), ("cluster_labels", "train_cluster_labels"),
           ("test_error_valid_labels", "test_error"), ("valid_cluster_labels", "cluster_labels"))
RULE = "validation images (paper §6)"


def relabel(result):
    """The result in today's names, or None if it needs no change."""
    if "test_error_valid_labels" not in result:
        return None
    old = dict(result)
    new = {k: v for k, v in old.items() if k not in {a for a, _ in RENAMES}}
    for before, after in RENAMES:
        if before in old:
            new[after] = old[before]
    if "nearest_head_error" in old:  # its heads were labelled by the training images too
        new["nearest_head_error_train_labels"] = new.pop("nearest_head_error")
    new["labelling_rule"] = RULE
    return new


def main(root):
    changed = 0
    paths = sorted(glob.glob(os.path.join(root, "**", "classify.json"), recursive=True)
                   + glob.glob(os.path.join(root, "**", "kmeans_*.json"), recursive=True))
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        new = relabel(result)
        if new is None:
            continue
        text = json.dumps(new, indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        changed += 1
        print(f"{path}: test_error {100 * new['test_error']:.2f}% (was "
              f"{100 * new['test_error_train_labels']:.2f}%)")
    print(f"{changed} of {len(paths)} files renamed")


def table(root):
    """Every clustering result under ``root`` by each labelling rule, as Markdown rows."""
    print("| result | paper's rule (validation images) | training images | majority |")
    print("| --- | --- | --- | --- |")
    paths = sorted(glob.glob(os.path.join(root, "**", "classify.json"), recursive=True)
                   + glob.glob(os.path.join(root, "**", "kmeans_*.json"), recursive=True))
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        if "test_error_train_labels" not in result:
            continue  # a semi-supervised result: one rule only
        name = os.path.relpath(path, os.path.dirname(root))
        majority = result.get("test_error_majority_labels")  # older files lack it
        print(f"| `{name}` | {100 * result['test_error']:.2f}% | "
              f"{100 * result['test_error_train_labels']:.2f}% | "
              + (f"{100 * majority:.2f}% |" if majority is not None else "— |"))


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.argv[1:] == ["--table"]:
        table(here)
    else:
        main(here)
