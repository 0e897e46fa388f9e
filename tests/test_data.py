"""data_maker.py: idx parsing, refusal of damaged files, the seeded split, the split file, load_split.

Damaged and synthetic files are built in tmp_path; nothing is written into the repository.
"""
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import data_maker
from utils.errors import UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_MNIST = os.path.join(REPO_ROOT, "data", "mnist")
# Label histograms of the original MNIST training and test sets.
MNIST_TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---- helpers -----------------------------------------------------------------------------------
def idx_images(images, magic=2051, side=(28, 28)):
    images = np.asarray(images, dtype=np.uint8)
    return struct.pack(">IIII", magic, len(images), *side) + images.tobytes()


def idx_labels(labels, magic=2049):
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack(">II", magic, len(labels)) + labels.tobytes()


def write_source(folder, files, gz=True):
    """Write {stem: bytes} as idx files (gzipped when ``gz``); return the folder."""
    os.makedirs(folder, exist_ok=True)
    for stem, data in files.items():
        if gz:
            with open(os.path.join(folder, stem + ".gz"), "wb") as f:
                f.write(gzip.compress(data, mtime=0))
        else:
            with open(os.path.join(folder, stem), "wb") as f:
                f.write(data)
    return str(folder)


def small_files(n_train=3, n_test=2, seed=0):
    """Four tiny, valid idx files (not MNIST, so their checksums differ)."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_train, 784))),
        "train-labels-idx1-ubyte": idx_labels(rng.integers(0, 10, n_train)),
        "t10k-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_test, 784))),
        "t10k-labels-idx1-ubyte": idx_labels(rng.integers(0, 10, n_test)),
    }


def run_main(source, data_dir, logs_dir, *extra):
    return data_maker.main(["--source", str(source), "--data_dir", str(data_dir),
                            "--logs_dir", str(logs_dir), *extra])


def read_raw_split(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def decode_index(images):
    """Original training index stored in the first two pixels by ``full_size_source``."""
    return images[:, 0].astype(np.int64) * 256 + images[:, 1]


@pytest.fixture(scope="module")
def full_size_source(tmp_path_factory):
    """Synthetic uncompressed idx files of MNIST's sizes; image i carries i in its first two
    pixels and label i % 10, so the split written from them can be traced back."""
    folder = tmp_path_factory.mktemp("synthetic_mnist")
    files = {}
    for split, (images_stem, labels_stem) in data_maker.MNIST_FILES.items():
        n = data_maker.MNIST_COUNTS[split]
        index = np.arange(n)
        images = np.zeros((n, 784), dtype=np.uint8)
        images[:, 0], images[:, 1] = index // 256, index % 256
        files[images_stem] = idx_images(images)
        files[labels_stem] = idx_labels(index % 10)
    return write_source(folder, files, gz=False)


@pytest.fixture(scope="module")
def synthetic_split(full_size_source, tmp_path_factory):
    """One data_maker run (seed 0) on the synthetic source: (result, data_dir, logs_dir)."""
    out = tmp_path_factory.mktemp("synthetic_split")
    result = run_main(full_size_source, out / "data", out / "logs", "--allow_checksum_mismatch")
    return result, out / "data", out / "logs"


# ---- idx parsing -------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    files = small_files()
    source = write_source(tmp_path / "src", files, gz=gz)
    arrays, sha256, verified = data_maker.read_mnist(source, allow_checksum_mismatch=True,
                                                     counts=None)
    images, labels = arrays["train"]
    assert images.dtype == np.uint8 and images.shape == (3, 784)
    assert images.tobytes() == files["train-images-idx3-ubyte"][16:]
    assert labels.tobytes() == files["train-labels-idx1-ubyte"][8:]
    assert arrays["test"][0].shape == (2, 784) and arrays["test"][1].shape == (2,)
    assert sha256 == {stem: hashlib.sha256(data).hexdigest() for stem, data in files.items()}
    assert verified is False


def _truncate_gzip(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _flip_gzip_crc(path):
    data = bytearray(open(path, "rb").read())
    data[-8] ^= 0xFF  # the CRC32 of the gzip trailer
    open(path, "wb").write(bytes(data))


def _raw_bytes_named_gz(path):
    open(path, "wb").write(gzip.decompress(open(path, "rb").read()))


def _replace(data):
    def damage(path):
        open(path, "wb").write(gzip.compress(data, mtime=0))
    return damage


# (name, file damaged, damage, words the message must contain)
DAMAGES = [
    ("truncated gzip", "train-images-idx3-ubyte", _truncate_gzip, "truncated gzip stream"),
    ("corrupt gzip", "t10k-images-idx3-ubyte", _flip_gzip_crc, "corrupt gzip stream"),
    ("not gzip", "t10k-labels-idx1-ubyte", _raw_bytes_named_gz, "not a gzip file"),
    ("wrong magic", "train-labels-idx1-ubyte",
     _replace(idx_labels([1, 2, 3], magic=2051)), "magic number 2051"),
    ("wrong shape", "train-images-idx3-ubyte",
     _replace(idx_images(np.zeros((3, 27 * 28)), side=(27, 28))), "27x28"),
    ("count mismatch", "train-labels-idx1-ubyte",
     _replace(idx_labels([1, 2])), "holds 2 labels"),
    ("label out of range", "t10k-labels-idx1-ubyte",
     _replace(idx_labels([3, 10])), "label 10 at index 1"),
    ("pixels cut short", "t10k-images-idx3-ubyte",
     _replace(idx_images(np.zeros((2, 784)))[:-5]), "truncated or padded"),
    ("header too short", "t10k-labels-idx1-ubyte", _replace(b"\x00\x00"), "too short"),
]


@pytest.mark.parametrize("name,stem,damage,words", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_damaged_file_is_refused_by_name(tmp_path, name, stem, damage, words):
    source = write_source(tmp_path / "src", small_files())
    path = os.path.join(source, stem + ".gz")
    damage(path)
    with pytest.raises(UserError) as err:
        data_maker.read_mnist(source, allow_checksum_mismatch=True, counts=None)
    message = str(err.value)
    assert message.startswith(path + ":"), message
    assert words in message
    assert "\n" not in message


def test_count_differing_from_mnist_is_refused(tmp_path):
    source = write_source(tmp_path / "src", small_files(n_train=3))
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz: holds 3 images, "
                                         r"expected 60000"):
        data_maker.read_mnist(source, allow_checksum_mismatch=True)


def test_gzipped_file_without_gz_name_is_refused(tmp_path):
    source = write_source(tmp_path / "src", small_files(), gz=False)
    path = os.path.join(source, "train-labels-idx1-ubyte")
    open(path, "wb").write(gzip.compress(open(path, "rb").read()))
    with pytest.raises(UserError, match="rename it to train-labels-idx1-ubyte.gz"):
        data_maker.read_mnist(source, allow_checksum_mismatch=True, counts=None)


def test_missing_files_are_each_named(tmp_path):
    source = write_source(tmp_path / "src", small_files())
    os.remove(os.path.join(source, "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(UserError) as err:
        run_main(source, tmp_path / "data", tmp_path / "logs")
    message = str(err.value)
    assert message.startswith(source + ":")
    assert "t10k-labels-idx1-ubyte.gz" in message and "--source" in message
    assert "train-images" not in message  # only what is actually missing
    assert not os.path.exists(tmp_path / "data" / data_maker.SPLIT_FILE)


def test_checksum_mismatch_is_refused_unless_allowed(tmp_path):
    source = write_source(tmp_path / "src", small_files())
    with pytest.raises(UserError) as err:
        data_maker.read_mnist(source, counts=None)
    assert str(err.value).startswith(os.path.join(source, "train-images-idx3-ubyte.gz") + ":")
    assert "sha256" in str(err.value) and "--allow_checksum_mismatch" in str(err.value)
    _, _, verified = data_maker.read_mnist(source, allow_checksum_mismatch=True, counts=None)
    assert verified is False


# ---- the split ---------------------------------------------------------------------------------
def test_split_indices_are_disjoint_complete_and_seeded():
    train, valid = data_maker.split_indices(60000, 1000, seed=0)
    assert len(train) == 59000 and len(valid) == 1000
    assert not set(train) & set(valid)
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(60000))
    again_train, again_valid = data_maker.split_indices(60000, 1000, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(valid, again_valid)
    _, other_valid = data_maker.split_indices(60000, 1000, seed=1)
    assert not np.array_equal(np.sort(valid), np.sort(other_valid))


def test_split_file_contents(synthetic_split):
    result, data_dir, logs_dir = synthetic_split
    path = str(data_dir / data_maker.SPLIT_FILE)
    assert result == {"path": path, "n_train": 59000, "n_valid": 1000, "n_test": 10000,
                      "seed": 0, "written": True}
    split = read_raw_split(path)
    for part, n in (("train", 59000), ("valid", 1000), ("test", 10000)):
        assert split[f"x_{part}"].dtype == np.uint8 and split[f"x_{part}"].shape == (n, 784)
        assert split[f"y_{part}"].dtype == np.uint8 and split[f"y_{part}"].shape == (n,)
    train_idx, valid_idx = decode_index(split["x_train"]), decode_index(split["x_valid"])
    assert not set(train_idx) & set(valid_idx)
    assert np.array_equal(np.sort(np.concatenate([train_idx, valid_idx])), np.arange(60000))
    assert np.array_equal(split["y_train"], train_idx % 10)  # images kept with their labels
    assert np.array_equal(decode_index(split["x_test"]), np.arange(10000))  # test untouched
    meta = split["meta"]
    assert meta["format_version"] == 1 and meta["seed"] == 0
    assert (meta["n_train"], meta["n_valid"], meta["n_test"]) == (59000, 1000, 10000)
    assert meta["checksums_verified"] is False  # --allow_checksum_mismatch is recorded
    assert meta["valid_indices_sha256"] == data_maker.indices_sha256(valid_idx)
    assert sorted(meta["sha256"]) == sorted(data_maker.MNIST_SHA256)
    assert os.listdir(data_dir) == [data_maker.SPLIT_FILE]  # no temporary file left
    assert "wrote" in open(logs_dir / "data_maker.log").read()


def test_checksum_mismatch_refused_by_main(full_size_source, tmp_path):
    with pytest.raises(UserError, match="--allow_checksum_mismatch"):
        run_main(full_size_source, tmp_path / "data", tmp_path / "logs")
    assert not os.path.exists(tmp_path / "data" / data_maker.SPLIT_FILE)


def test_same_seed_same_split_other_seed_other_split(full_size_source, synthetic_split, tmp_path):
    first = read_raw_split(synthetic_split[0]["path"])
    run_main(full_size_source, tmp_path / "same", tmp_path / "logs", "--allow_checksum_mismatch")
    same = read_raw_split(tmp_path / "same" / data_maker.SPLIT_FILE)
    for key in data_maker.SPLIT_ARRAYS:
        assert np.array_equal(first[key], same[key]), key
    assert same["meta"] == first["meta"]
    run_main(full_size_source, tmp_path / "other", tmp_path / "logs", "--allow_checksum_mismatch",
             "--seed", "1")
    other = read_raw_split(tmp_path / "other" / data_maker.SPLIT_FILE)
    assert not np.array_equal(first["x_valid"], other["x_valid"])
    assert other["meta"]["valid_indices_sha256"] != first["meta"]["valid_indices_sha256"]


def test_second_run_rewrites_nothing(full_size_source, tmp_path):
    args = (full_size_source, tmp_path / "data", tmp_path / "logs", "--allow_checksum_mismatch")
    assert run_main(*args)["written"] is True
    path = tmp_path / "data" / data_maker.SPLIT_FILE
    before = os.stat(path)
    assert run_main(*args)["written"] is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    changed = run_main(*args, "--N_valid", "500")
    assert changed["written"] is True and changed["n_train"] == 59500
    assert read_raw_split(path)["meta"]["n_valid"] == 500


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = str(tmp_path / data_maker.SPLIT_FILE)
    data_maker.write_npz_atomically(path, {"a": np.arange(3)})

    def savez_then_disk_full(f, **arrays):
        f.write(b"half an archive")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(data_maker.np, "savez", savez_then_disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        data_maker.write_npz_atomically(path, {"a": np.arange(5)})

    def savez_interrupted(f, **arrays):
        f.write(b"half an archive")
        raise KeyboardInterrupt
    monkeypatch.setattr(data_maker.np, "savez", savez_interrupted)
    with pytest.raises(KeyboardInterrupt):
        data_maker.write_npz_atomically(path, {"a": np.arange(5)})
    assert os.listdir(tmp_path) == [data_maker.SPLIT_FILE]
    with np.load(path) as npz:
        assert np.array_equal(npz["a"], np.arange(3))


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    data_dir = blocker / "data"
    with pytest.raises(UserError) as err:
        run_main(REPO_MNIST, data_dir, tmp_path / "logs")
    assert str(err.value).startswith(f"{data_dir}:") and "--data_dir" in str(err.value)


@pytest.mark.parametrize("argv,words", [
    (["--N_valid", "60000"], "--N_valid 60000 leaves no training images"),
    (["--N_valid", "0"], "--N_valid must be positive"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--seed", "abc"], "--seed"),
    (["--N_train", "100"], "unrecognized arguments: --N_train"),
])
def test_bad_options_are_refused(tmp_path, argv, words):
    with pytest.raises(UserError, match=words):
        data_maker.main(argv + ["--data_dir", str(tmp_path / "d"), "--logs_dir", str(tmp_path)])
    assert not os.path.exists(tmp_path / "d")  # refused before any work


def test_source_defaults_and_fallback(tmp_path):
    assert data_maker.resolve_source(str(tmp_path), "elsewhere") == "elsewhere"
    filled = write_source(tmp_path / "full" / "mnist", small_files())
    assert data_maker.resolve_source(str(tmp_path / "full")) == filled
    shared = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "mnist"))
    expected = shared if os.path.isdir(shared) else str(tmp_path / "empty" / "mnist")
    assert data_maker.resolve_source(str(tmp_path / "empty")) == expected


# ---- load_split --------------------------------------------------------------------------------
def write_small_split(data_dir, meta_changes=None, array_changes=None, drop=()):
    """A valid little split file (8/4/6 images of 9 pixels, 3x3), optionally spoiled."""
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 8), ("valid", 4), ("test", 6)):
        arrays[f"x_{part}"] = rng.integers(0, 256, (n, 9), dtype=np.uint8)
        arrays[f"y_{part}"] = rng.integers(0, 10, n, dtype=np.uint8)
    meta = {"format_version": 1, "seed": 0, "n_train": 8, "n_valid": 4, "n_test": 6}
    meta.update(meta_changes or {})
    arrays.update(array_changes or {})
    arrays["meta"] = np.array(json.dumps(meta))
    for key in drop:
        del arrays[key]
    os.makedirs(data_dir, exist_ok=True)
    np.savez(os.path.join(data_dir, data_maker.SPLIT_FILE), **arrays)
    return arrays


def test_load_split_scales_and_slices(tmp_path):
    stored = write_small_split(tmp_path)
    split = data_maker.load_split(str(tmp_path), n_train=5)
    assert split["x_train"].dtype == np.float32 and split["y_train"].dtype == np.int64
    assert split["x_train"].shape == (5, 9) and split["x_valid"].shape == (4, 9)
    assert np.array_equal(split["x_train"], stored["x_train"][:5].astype(np.float32) / 255)
    assert np.array_equal(split["y_test"], stored["y_test"])
    assert 0.0 <= split["x_test"].min() and split["x_test"].max() <= 1.0
    assert split["meta"]["n_train"] == 8


@pytest.mark.parametrize("spoil,words", [
    (lambda d: None, "not found; run `python data_maker.py"),
    (lambda d: open(os.path.join(d, data_maker.SPLIT_FILE), "wb").write(b"garbage" * 10),
     "not an npz archive"),
    (lambda d: np.save(os.path.join(d, "plain.npy"), np.arange(3)) or os.replace(
        os.path.join(d, "plain.npy"), os.path.join(d, data_maker.SPLIT_FILE)), "not an npz"),
    (lambda d: write_small_split(d, drop=("y_test",)), "lacks y_test"),
    (lambda d: write_small_split(d, array_changes={"x_train": np.zeros((8, 5), np.float32)}),
     "expected uint8"),
    (lambda d: write_small_split(d, array_changes={"y_valid": np.zeros(3, np.uint8)}),
     "x_valid has shape"),
    (lambda d: write_small_split(d, meta_changes={"format_version": 2}), "format_version 2"),
    (lambda d: write_small_split(d, meta_changes={"n_test": 7}), "meta n_test=7"),
])
def test_load_split_refuses_bad_files(tmp_path, spoil, words):
    data_dir = tmp_path / "data"
    os.makedirs(data_dir)
    spoil(str(data_dir))
    with pytest.raises(UserError) as err:
        data_maker.load_split(str(data_dir))
    assert words in str(err.value)
    assert "python data_maker.py" in str(err.value)


@pytest.mark.parametrize("kwargs,words", [
    ({"n_train": 9}, "--N_train 9 exceeds the 8 training images in"),
    ({"n_valid": 5}, "--N_valid 5 exceeds the 4 validation images"),
    ({"n_test": 70000}, "--N_test 70000 exceeds the 6 test images"),
    ({"n_train": 0}, "--N_train must be a positive integer"),
])
def test_load_split_refuses_too_many_rows(tmp_path, kwargs, words):
    write_small_split(tmp_path)
    with pytest.raises(UserError, match=words):
        data_maker.load_split(str(tmp_path), **kwargs)


# ---- real MNIST and the command line -----------------------------------------------------------
def test_real_mnist(tmp_path):
    result = run_main(REPO_MNIST, tmp_path / "data", tmp_path / "logs")
    assert (result["n_train"], result["n_valid"], result["n_test"]) == (59000, 1000, 10000)
    split = data_maker.load_split(str(tmp_path / "data"))
    assert split["meta"]["checksums_verified"] is True
    assert split["meta"]["sha256"] == data_maker.MNIST_SHA256
    train_and_valid = np.concatenate([split["y_train"], split["y_valid"]])
    assert np.bincount(train_and_valid, minlength=10).tolist() == MNIST_TRAIN_HISTOGRAM
    assert np.bincount(split["y_test"], minlength=10).tolist() == MNIST_TEST_HISTOGRAM
    assert split["x_train"].shape == (59000, 784) and split["x_train"].dtype == np.float32
    assert split["x_train"].min() == 0.0 and split["x_train"].max() == 1.0


def test_unknown_option_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "data_maker.py", "--bogus"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--bogus" in lines[0]
    assert "Traceback" not in proc.stderr
