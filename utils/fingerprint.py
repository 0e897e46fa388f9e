"""Digests of what a short training run leaves behind, to show that a change of the code keeps
the training step bit-identical.

    python -m utils.fingerprint --out before.json          # on one commit
    python -m utils.fingerprint --out after.json           # on another, same OMP_NUM_THREADS
    python -m utils.fingerprint --compare before.json after.json

For the default config and every preset, ``train.py`` runs for one epoch on the first 1,000
training images in a scratch folder; the digest covers every network weight and optimizer slot
of the resume point and the losses of loss.csv. Equal digests mean the same computation.
Float results depend on the processor and the thread count, so compare digests made on the
same machine with the same ``OMP_NUM_THREADS``.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from utils.checkpoint import LEGACY_OPTIMIZER_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (name, extra train.py options); every run: 1 epoch on the first 1,000 training images
RUNS = [
    ("default", []),
    ("gaussian_2d", ["--preset", "gaussian_2d"]),
    ("gmm_2d", ["--preset", "gmm_2d"]),
    ("gmm_labels", ["--preset", "gmm_labels", "--n_labeled", "500", "--n_unlabeled", "400"]),
    ("swiss_roll_labels", ["--preset", "swiss_roll_labels", "--n_labeled", "500",
                           "--n_unlabeled", "400"]),
    ("supervised_15d", ["--preset", "supervised_15d"]),
    ("supervised_2d", ["--preset", "supervised_2d"]),
    ("semi_100", ["--preset", "semi_100", "--input_noise", "0"]),
    ("semi_100_input_noise", ["--preset", "semi_100"]),
    ("semi_1000", ["--preset", "semi_1000", "--input_noise", "0"]),
    ("semi_all", ["--preset", "semi_all", "--input_noise", "0"]),
    ("cluster_16", ["--preset", "cluster_16", "--input_dropout", "0"]),
    ("cluster_16_input_dropout", ["--preset", "cluster_16"]),
    ("cluster_16_input_noise", ["--preset", "cluster_16", "--input_noise", "0.3",
                                "--input_dropout", "0"]),
    ("cluster_30", ["--preset", "cluster_30", "--input_dropout", "0"]),
    ("semi_1000_sgd", ["--preset", "semi_1000_sgd"]),
    ("dimred_1000", ["--preset", "dimred_1000"]),
    ("dimred_unsupervised", ["--preset", "dimred_unsupervised"]),
    ("semi_100_paper", ["--preset", "semi_100_paper"]),
    ("cluster_16_paper", ["--preset", "cluster_16_paper"]),
    ("semi_100_disc_codes_train", ["--preset", "semi_100", "--disc_codes", "train"]),
]


# Optimizer names of earlier versions -> today's (as utils/checkpoint.py reads them)
RENAMED = {f"opt/{old}/": f"opt/{new}/" for new, old in LEGACY_OPTIMIZER_NAMES.items()}


def today_name(key):
    for old, new in RENAMED.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def digest_run(folder):
    """sha256 of the resume point's arrays (names and bytes) and of loss.csv's losses."""
    h = hashlib.sha256()
    with np.load(os.path.join(folder, "model", "last.npz"), allow_pickle=False) as data:
        # under today's names (an optimizer renamed since keeps the digest of its numbers)
        names = {today_name(k): k for k in data.files if k != "__meta__"}
        for name in sorted(names):
            h.update(name.encode())
            h.update(np.ascontiguousarray(data[names[name]]).tobytes())
    with open(os.path.join(folder, "logs", "loss.csv")) as f:
        header, *rows = [line.strip().split(",") for line in f if line.strip()]
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    for row in rows:
        h.update(",".join(row[i] for i in keep).encode())
    return h.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the digests to this JSON file")
    parser.add_argument("--only", nargs="*", help="names of RUNS to do (default: all)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="compare two digest files instead of running")
    args = parser.parse_args(argv)
    if args.compare:
        a, b = (json.load(open(p)) for p in args.compare)
        differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        print(f"{len(set(a) & set(b))} runs compared, {len(differ)} differ: {differ}")
        return 1 if differ else 0
    digests = {}
    for name, extra in RUNS:
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            cmd = [sys.executable, "train.py", "--N_train", "1000", "--n_epochs", "1",
                   "--model_dir", f"{scratch}/model", "--images_dir", f"{scratch}/images",
                   "--logs_dir", f"{scratch}/logs"] + extra
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{name}: train.py failed:\n{done.stderr[-2000:]}")
            digests[name] = digest_run(scratch)
        print(f"{name:24s} {digests[name][:16]}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(digests, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
