"""The lite data of the TIPC chain (test_tipc/): a few hundred MNIST digits in MNIST's own idx
format, and the split train.py reads made from them.

    python test_tipc/make_lite_data.py                     # data/mnist -> test_tipc/lite_data
    python test_tipc/make_lite_data.py --split DIR         # lite_data -> DIR/mnist_split.npz

The first command picks, by a seeded permutation (seed 0), 400 of the 60,000 training images
and 100 of the 10,000 test images of the original files, and writes the four
``*-idx?-ubyte.gz`` files (gzip time stamp 0, so the same bytes every time). The second makes
the 300 / 100 / 100 train / validation / test split of them with data_maker.py's own reader
and split (the counts and the checksums are not MNIST's, so those two checks are left out).
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import data_maker  # noqa: E402
from utils.errors import ensure_folder, run_cli  # noqa: E402

LITE_DIR = os.path.join(ROOT, "test_tipc", "lite_data")
COUNTS = {"train": 400, "test": 100}  # images taken from each original file
N_VALID = 100  # of the 400 training images, as data_maker.py's --N_valid
SEED = 0


def idx_bytes(values, kind):
    """MNIST's idx layout: the magic number, the count (and 28 x 28 for images), the bytes."""
    header = struct.pack(">II", data_maker.IDX_MAGIC[kind], len(values))
    if kind == "images":
        header += struct.pack(">II", data_maker.IMAGE_SIDE, data_maker.IMAGE_SIDE)
    return header + np.ascontiguousarray(values, dtype=np.uint8).tobytes()


def make_lite_data(source, out_dir=LITE_DIR):
    arrays, _, _ = data_maker.read_mnist(source)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for split, (images_stem, labels_stem) in data_maker.MNIST_FILES.items():
        images, labels = arrays[split]
        rows = np.sort(rng.permutation(len(images))[:COUNTS[split]])
        for stem, values, kind in ((images_stem, images[rows], "images"),
                                   (labels_stem, labels[rows], "labels")):
            with open(os.path.join(out_dir, stem + ".gz"), "wb") as f:
                f.write(gzip.compress(idx_bytes(values, kind), mtime=0))
    return {split: COUNTS[split] for split in COUNTS}


def make_lite_split(data_dir, source=LITE_DIR):
    """data_maker.py's split of the lite idx files, written to ``data_dir``/mnist_split.npz."""
    arrays, sha256, verified = data_maker.read_mnist(source, allow_checksum_mismatch=True,
                                                     counts=None)
    split, valid_idx = data_maker.make_split(arrays, N_VALID, SEED)
    meta = data_maker.build_meta(split, SEED, source, sha256, verified, valid_idx)
    ensure_folder(data_dir, "--split")
    path = os.path.join(data_dir, data_maker.SPLIT_FILE)
    data_maker.write_npz_atomically(path, {**split, "meta": np.array(json.dumps(meta,
                                                                               sort_keys=True))})
    return {"path": path, "n_train": meta["n_train"], "n_valid": meta["n_valid"],
            "n_test": meta["n_test"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=os.path.join(ROOT, "data", "mnist"),
                        help="the original MNIST idx files (default: data/mnist)")
    parser.add_argument("--split", metavar="DIR", default=None,
                        help="instead: make the split of test_tipc/lite_data in DIR")
    args = parser.parse_args(argv)
    if args.split:
        result = make_lite_split(args.split)
        print(f"wrote {result['path']}: {result['n_train']} train / {result['n_valid']} valid"
              f" / {result['n_test']} test images")
    else:
        result = make_lite_data(args.source)
        print(f"wrote {LITE_DIR}: {result['train']} training and {result['test']} test images")
    return result


if __name__ == "__main__":
    run_cli(main)
