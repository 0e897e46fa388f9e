"""Make the MNIST split used by train.py and eval.py: 59,000 train / 1,000 validation / 10,000 test.

Reads the four original MNIST idx files (gzipped or not), checks them (gzip integrity, idx header,
28x28 images, counts, labels 0..9, sha256 of the decompressed bytes), splits the 60,000 training
images into N_train = 60000 - N_valid training and N_valid validation images with a seeded
permutation (the reference reproduction's 59k/1k split; the validation images serve only to choose
the Parzen window width), keeps the 10,000 test images, and writes all of it as uint8 to one
uncompressed, pickle-free ``<data_dir>/mnist_split.npz``. ``load_split`` reads it back as floats.

    python data_maker.py                          # data/mnist/*.gz -> data/mnist_split.npz
    python data_maker.py --source DIR --seed 0 --N_valid 1000

Pure numpy + stdlib: no Paddle, no network access.
"""
import gzip
import hashlib
import json
import math
import os
import re
import struct
import zipfile
import zlib

import numpy as np

import config
from utils import cli, files
from utils.errors import UserError, ensure_folder, run_cli, sigterm_raises
from utils.log import get_logger

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
SPLIT_FILE = "mnist_split.npz"
FORMAT_VERSION = 1  # bump when the npz layout changes; load_split refuses other versions
CONFIG_KEYS = ["data_dir", "N_valid", "seed", "logs_dir"]

# sha256 of the *decompressed* idx files (the original MNIST bytes; data/mnist/README.md).
# Checking the content rather than the .gz accepts an official download, a recompressed copy
# and an uncompressed copy alike.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FILES = {  # split -> (images file, labels file), without the optional .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_COUNTS = config.MNIST_COUNTS
IMAGE_SIDE = config.IMAGE_SIDE
N_CLASSES = config.N_CLASSES
# idx magic numbers: 0x08 = unsigned bytes, then the number of dimensions (3 for images, 1 for labels)
IDX_MAGIC = {"images": 2051, "labels": 2049}
IDX_HEADER_BYTES = {"images": 16, "labels": 8}
GZIP_MAGIC = b"\x1f\x8b"

SPLIT_ARRAYS = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")
SPLIT_OPTIONS = {"train": "--N_train", "valid": "--N_valid", "test": "--N_test"}

FIX_HINT = ("replace it with an original MNIST file (copy it again from the project's data/mnist, "
            "or download it from http://yann.lecun.com/exdb/mnist/)")


# ---- reading and checking the idx files --------------------------------------------------------
def find_idx_file(source, stem):
    """Path of ``stem`` in ``source``, gzipped (.gz) or not; None when neither is there."""
    for name in (stem + ".gz", stem):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            return path
    return None


def missing_files(source):
    """The idx files (without .gz) that ``source`` lacks."""
    return [stem for stems in MNIST_FILES.values() for stem in stems
            if find_idx_file(source, stem) is None]


def resolve_source(data_dir, source=None):
    """Where to read MNIST from.

    An explicit ``--source`` is used as given (no silent fallback to other data). Otherwise
    ``<data_dir>/mnist``, or, if that folder lacks files, the shared copy at ``../shared/mnist``
    next to the repository (where CI keeps it). When neither is complete the default folder is
    returned, so that ``require_files`` tells the user to fill it.
    """
    if source is not None:
        return source
    default = os.path.join(data_dir, "mnist")
    if not missing_files(default):
        return default
    shared = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "mnist"))
    if os.path.isdir(shared) and not missing_files(shared):
        return shared
    return default


def require_files(source):
    """Refuse, naming every absent file and where to put it."""
    missing = missing_files(source)
    if missing:
        where = source if os.path.isdir(source) else f"{source} (folder not found)"
        raise UserError(f"{where}: missing {', '.join(m + '.gz' for m in missing)}; put the four "
                        "MNIST idx files there (gzipped or not; the project ships them in "
                        "data/mnist, originals at http://yann.lecun.com/exdb/mnist/), "
                        "or pass --source DIR")


def read_decompressed(path):
    """The bytes of an idx file, decompressed when it ends in .gz.

    The gzip magic is checked against the name both ways because browsers often decompress
    a download and keep the .gz name (or the reverse); the message then says how to rename it.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    if not path.endswith(".gz"):
        if raw[:2] == GZIP_MAGIC:
            raise UserError(f"{path}: is gzip-compressed but its name lacks .gz; "
                            f"rename it to {os.path.basename(path)}.gz")
        return raw
    if raw[:2] != GZIP_MAGIC:
        raise UserError(f"{path}: not a gzip file; if it is an already decompressed idx file, "
                        f"rename it to {os.path.basename(path)[:-3]}, else {FIX_HINT}")
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise UserError(f"{path}: truncated gzip stream; {FIX_HINT}") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise UserError(f"{path}: corrupt gzip stream ({err}); {FIX_HINT}") from None


def parse_idx(data, path, kind, expected_count=None):
    """Check an idx file's bytes and return its contents as uint8.

    kind: "images" -> [count, 784] (rows flattened), "labels" -> [count]. ``path`` only names the
    file in messages. ``expected_count`` None skips the count check (for synthetic test files).
    """
    header_bytes = IDX_HEADER_BYTES[kind]
    if len(data) < header_bytes:
        raise UserError(f"{path}: only {len(data)} bytes, too short for an idx header; {FIX_HINT}")
    magic, count = struct.unpack(">II", data[:8])
    if magic != IDX_MAGIC[kind]:
        raise UserError(f"{path}: idx magic number {magic}, expected {IDX_MAGIC[kind]} for {kind} "
                        f"(wrong or damaged file); {FIX_HINT}")
    item_shape = ()
    if kind == "images":
        rows, cols = struct.unpack(">II", data[8:16])
        if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
            raise UserError(f"{path}: images are {rows}x{cols}, expected "
                            f"{IMAGE_SIDE}x{IMAGE_SIDE} (not MNIST); {FIX_HINT}")
        item_shape = (rows * cols,)
    if expected_count is not None and count != expected_count:
        raise UserError(f"{path}: holds {count} {kind}, expected {expected_count}; {FIX_HINT}")
    item_bytes = int(np.prod(item_shape))
    body_bytes = len(data) - header_bytes
    if body_bytes != count * item_bytes:
        raise UserError(f"{path}: header announces {count} {kind} ({count * item_bytes} bytes) "
                        f"but {body_bytes} bytes follow (truncated or padded); {FIX_HINT}")
    values = np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape((count,) + item_shape)
    if kind == "labels" and count and values.max() >= N_CLASSES:
        bad = int(np.argmax(values >= N_CLASSES))
        raise UserError(f"{path}: label {values[bad]} at index {bad} is outside 0..{N_CLASSES - 1}; "
                        f"{FIX_HINT}")
    return values


def read_mnist(source, allow_checksum_mismatch=False, counts=MNIST_COUNTS):
    """Read and check the four idx files in ``source``.

    Returns (arrays, sha256, checksums_verified): arrays maps "train"/"test" to (images uint8
    [n, 784], labels uint8 [n]); sha256 maps each file name (without .gz) to the hex digest of its
    decompressed bytes; checksums_verified says whether all four are the original MNIST bytes.
    A digest differing from MNIST's is refused unless ``allow_checksum_mismatch``.
    ``counts`` None skips the 60000/10000 count checks (for small synthetic files).
    """
    require_files(source)
    arrays, sha256 = {}, {}
    for split, stems in MNIST_FILES.items():
        parsed = []
        for stem, kind in zip(stems, ("images", "labels")):
            path = find_idx_file(source, stem)
            data = read_decompressed(path)
            parsed.append(parse_idx(data, path, kind, None if counts is None else counts[split]))
            sha256[stem] = hashlib.sha256(data).hexdigest()
            if sha256[stem] != MNIST_SHA256[stem] and not allow_checksum_mismatch:
                raise UserError(f"{path}: sha256 of the decompressed bytes is {sha256[stem]}, "
                                f"not MNIST's {MNIST_SHA256[stem]}; use an original copy, or pass "
                                "--allow_checksum_mismatch to accept this one")
        images, labels = parsed
        if len(images) != len(labels):
            raise UserError(f"{find_idx_file(source, stems[1])}: holds {len(labels)} labels but "
                            f"{find_idx_file(source, stems[0])} holds {len(images)} images; "
                            f"{FIX_HINT}")
        arrays[split] = (images, labels)
    checksums_verified = all(sha256[stem] == MNIST_SHA256[stem] for stem in sha256)
    return arrays, sha256, checksums_verified


# ---- the split ---------------------------------------------------------------------------------
def split_indices(n_total, n_valid, seed):
    """(train_indices, valid_indices) of a seeded permutation of range(n_total).

    Both keep the permuted order, so the first n rows of either split are a uniformly random
    subset: a smaller --N_train in train.py is then a fair subsample, not the first writers.
    """
    order = np.random.default_rng(seed).permutation(n_total)
    return order[n_valid:], order[:n_valid]


def indices_sha256(indices):
    """sha256 of the indices as little-endian int64 bytes (fixed dtype, so it is portable)."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def make_split(arrays, n_valid, seed):
    """The six arrays of the split file and the validation indices."""
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    train_idx, valid_idx = split_indices(len(train_images), n_valid, seed)
    split = {
        "x_train": train_images[train_idx], "y_train": train_labels[train_idx],
        "x_valid": train_images[valid_idx], "y_valid": train_labels[valid_idx],
        "x_test": np.array(test_images), "y_test": np.array(test_labels),
    }
    return split, valid_idx


def build_meta(split, seed, source, sha256, checksums_verified, valid_idx):
    return {
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "n_train": len(split["x_train"]),
        "n_valid": len(split["x_valid"]),
        "n_test": len(split["x_test"]),
        "source": os.path.abspath(source),
        "sha256": dict(sorted(sha256.items())),
        "checksums_verified": bool(checksums_verified),
        "valid_indices_sha256": indices_sha256(valid_idx),
    }


# ---- the split file ----------------------------------------------------------------------------
def _remake_hint(data_dir):
    suffix = "" if os.path.normpath(data_dir) == "data" else f" --data_dir {data_dir}"
    return f"run `python data_maker.py{suffix}` to (re)make it"


def read_split_file(path):
    """(uint8 arrays, meta dict) of a split file, with every structural check.

    Raises UserError saying how to remake the file when it is missing, unreadable, incomplete,
    of the wrong dtype/shape, or of another format_version.
    """
    hint = _remake_hint(os.path.dirname(path) or ".")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; {hint}")
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # what np.load raises
    with open(path, "rb") as f:  # an .npz starts as a zip archive, even one cut short;
        is_zip = f.read(4) == b"PK\x03\x04"  # otherwise numpy's message suggests unpickling
    if not is_zip:
        raise UserError(f"{path}: not an npz archive; {hint}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except unreadable as err:
        raise UserError(f"{path}: unreadable ({err}); {hint}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
        raise UserError(f"{path}: not an npz archive; {hint}")
    with loaded as npz:
        missing = [k for k in SPLIT_ARRAYS + ("meta",) if k not in npz.files]
        if missing:
            raise UserError(f"{path}: lacks {', '.join(missing)}; {hint}")
        try:
            arrays = {k: npz[k] for k in SPLIT_ARRAYS}
            meta_array = npz["meta"]
        except unreadable as err:  # damaged member (bad CRC, cut short) or pickled objects
            raise UserError(f"{path}: unreadable ({err}); {hint}") from None
    _check_split_arrays(path, arrays, hint)
    meta = _parse_meta(path, meta_array, hint)
    for part in ("train", "valid", "test"):
        if meta.get(f"n_{part}") != len(arrays[f"x_{part}"]):
            raise UserError(f"{path}: meta n_{part}={meta.get(f'n_{part}')} but x_{part} holds "
                            f"{len(arrays[f'x_{part}'])} images; {hint}")
    _check_split_content(path, arrays, hint)
    return arrays, meta


def _check_split_arrays(path, arrays, hint):
    n_pixels = arrays["x_train"].shape[-1] if arrays["x_train"].ndim == 2 else None
    for part in ("train", "valid", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise UserError(f"{path}: x_{part}/y_{part} are {x.dtype}/{y.dtype}, expected uint8; "
                            f"{hint}")
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or x.shape[1] != n_pixels:
            raise UserError(f"{path}: x_{part} has shape {x.shape} and y_{part} {y.shape}, expected "
                            f"[n, {n_pixels}] and [n]; {hint}")


def _check_split_content(path, arrays, hint):
    """What the scripts rely on beyond the layout: square images (the image grids and plots
    draw them as side x side) and labels 0..9 (classify.py would count others as errors)."""
    n_pixels = arrays["x_train"].shape[1]
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise UserError(f"{path}: images of {n_pixels} pixels are not square (28x28 = 784 for "
                        f"MNIST); {hint}")
    for part in ("train", "valid", "test"):
        y = arrays[f"y_{part}"]
        outside = y >= N_CLASSES  # uint8: never below 0
        if outside.any():
            bad = int(np.argmax(outside))
            raise UserError(f"{path}: y_{part} holds {int(np.count_nonzero(outside))} label(s) "
                            f"outside 0..{N_CLASSES - 1} (the first: {y[bad]} at row {bad}); "
                            f"{hint}")


def _parse_meta(path, meta_array, hint):
    if meta_array.ndim != 0 or meta_array.dtype.kind != "U":
        raise UserError(f"{path}: meta is not a JSON string; {hint}")
    try:
        meta = json.loads(str(meta_array))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: meta is not valid JSON ({err}); {hint}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: meta is not a JSON object; {hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: format_version {meta.get('format_version')!r}, this code reads "
                        f"{FORMAT_VERSION}; {hint}")
    return meta


def same_split(old_meta, new_meta):
    """True when two metas describe the same split; the source folder may differ (same bytes)."""
    def essentials(meta):
        return {k: v for k, v in meta.items() if k != "source"}
    return essentials(old_meta) == essentials(new_meta)


def existing_split_matches(path, meta):
    """True when ``path`` holds an intact split file whose meta matches ``meta``."""
    if not os.path.isfile(path):
        return False
    try:
        _, old_meta = read_split_file(path)
    except UserError:
        return False  # damaged or old format: simply rewrite it
    return same_split(old_meta, meta)


def write_npz_atomically(path, arrays):
    """np.savez through the project's one atomic writer (utils/files.py): an interrupted run
    (crash, Ctrl-C, full disk) leaves either the old file or the new one, never half a file."""
    files.atomic_write(path, lambda f: np.savez(f, **arrays),
                       hint="free some space or choose another --data_dir")


def remove_stale_temporaries(folder, target=SPLIT_FILE):
    """Delete the temporary files of ``target`` in ``folder`` that a process no longer running
    left behind (killed with SIGKILL, or by a power cut); a running data_maker.py's file is
    left alone. Returns the names removed."""
    return files.remove_stale_temporaries(folder, re.escape(target))


# ---- the reader used by train.py and eval.py ---------------------------------------------------
def load_split(data_dir="data", n_train=None, n_valid=None, n_test=None,
               parts=("train", "valid", "test")):
    """The split written by data_maker.py, pixels as float32 in [0, 1] (uint8 / 255, like
    paddle's ToTensor in the reference) and labels as int64.

    n_train / n_valid / n_test take the first n rows of each split (None = all); since the rows
    are in a seeded random order, that is a random subset. Returns x_train, y_train, x_valid,
    y_valid, x_test, y_test and meta (dict); only the ``parts`` asked for are converted
    (eval.py needs no training images).
    """
    path = os.path.join(data_dir, SPLIT_FILE)
    arrays, meta = read_split_file(path)
    wanted = {"train": n_train, "valid": n_valid, "test": n_test}
    out = {"meta": meta}
    for part, n in wanted.items():
        if part not in parts:
            continue
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        n = _checked_count(n, len(x), part, path)
        pixels = x[:n].astype(np.float32)
        pixels /= 255  # in place: one float copy of the training set is ~185 MB
        out[f"x_{part}"] = pixels
        out[f"y_{part}"] = y[:n].astype(np.int64)
    return out


def _checked_count(n, available, part, path):
    if n is None:
        return available
    option = SPLIT_OPTIONS[part]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise UserError(f"{option} must be a positive integer, got {n!r}")
    if n > available:
        fix = (f"rerun `python data_maker.py --N_valid {n}` for a larger validation split"
               if part == "valid" else f"use at most {available}")
        raise UserError(f"{option} {n} exceeds the {available} {_part_name(part)} images in "
                        f"{path}; {fix}")
    return int(n)


def _part_name(part):
    return {"train": "training", "valid": "validation", "test": "test"}[part]


# ---- command line ------------------------------------------------------------------------------
def parse_args(argv):
    """(Config, source, allow_checksum_mismatch); unknown options and bad values are refused."""
    parser = config.build_parser("data_maker.py", CONFIG_KEYS,
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, metavar="DIR",
                        help="folder holding the four MNIST idx files, .gz or not (default: "
                             "<data_dir>/mnist, else ../shared/mnist next to the repository)")
    parser.add_argument("--allow_checksum_mismatch", type=cli.parse_bool, nargs="?",
                        const=True, default=False, metavar="BOOL",
                        help="accept idx files whose decompressed sha256 differs from the "
                             "original MNIST; recorded as checksums_verified=false in the meta")
    args = vars(parser.parse_args([] if argv is None else list(argv)))
    source = args.pop("source")
    allow_checksum_mismatch = args.pop("allow_checksum_mismatch")
    cfg = config.Config(**args).validate()
    if cfg.N_valid >= MNIST_COUNTS["train"]:
        raise UserError(f"--N_valid {cfg.N_valid} leaves no training images; it must be below "
                        f"{MNIST_COUNTS['train']}")
    return cfg, source, allow_checksum_mismatch


def make_logger(logs_dir):
    ensure_folder(logs_dir, "--logs_dir")
    return get_logger("data_maker", os.path.join(logs_dir, "data_maker.log"))


def main(argv=None):
    # SIGTERM (kill, a job scheduler) stops it like an error: the temporary file of a write
    # in progress is removed and the old split file, if any, stays as it was
    with sigterm_raises("data_maker.py was terminated (SIGTERM) before it finished; its "
                        "temporary file is removed and any earlier split file is unchanged: "
                        "run it again"):
        return _main(argv)


def _main(argv):
    cfg, source_arg, allow_checksum_mismatch = parse_args(argv)
    log = make_logger(cfg.logs_dir)
    ensure_folder(cfg.data_dir, "--data_dir")  # before the slow reading, to fail early
    out_path = os.path.join(cfg.data_dir, SPLIT_FILE)
    stale = remove_stale_temporaries(cfg.data_dir)
    if stale:
        log.info("removed %s, left by an interrupted run", ", ".join(stale))

    source = resolve_source(cfg.data_dir, source_arg)
    require_files(source)
    log.info("reading MNIST from %s", source)
    arrays, sha256, checksums_verified = read_mnist(source, allow_checksum_mismatch)
    if not checksums_verified:
        odd = [stem for stem in sorted(sha256) if sha256[stem] != MNIST_SHA256[stem]]
        log.warning("accepted non-original files (--allow_checksum_mismatch): %s", ", ".join(odd))

    split, valid_idx = make_split(arrays, cfg.N_valid, cfg.seed)
    meta = build_meta(split, cfg.seed, source, sha256, checksums_verified, valid_idx)
    for part in ("train", "valid", "test"):
        histogram = np.bincount(split[f"y_{part}"], minlength=N_CLASSES)
        log.info("%s: %d images, labels 0..9: %s", part, len(split[f"x_{part}"]),
                 " ".join(str(c) for c in histogram))

    written = not existing_split_matches(out_path, meta)
    if written:
        write_npz_atomically(out_path, {**split, "meta": np.array(json.dumps(meta, sort_keys=True))})
        log.info("wrote %s (%d train / %d valid / %d test, seed %d, checksums verified: %s)",
                 out_path, meta["n_train"], meta["n_valid"], meta["n_test"], cfg.seed,
                 checksums_verified)
    else:
        log.info("%s is already up to date (same seed, N_valid and source checksums); "
                 "not rewritten", out_path)
    return {"path": out_path, "n_train": meta["n_train"], "n_valid": meta["n_valid"],
            "n_test": meta["n_test"], "seed": cfg.seed, "written": written}


if __name__ == "__main__":
    run_cli(main)
