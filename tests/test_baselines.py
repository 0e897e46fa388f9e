"""baselines.py: k-means on the pixels, its clusters labelled by classify.py's rules; checked
on separable synthetic clusters, on a small part of the real split, for its refusals, and
against the committed results."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import baselines
from conftest import ROOT
from utils.errors import UserError
from utils.log import get_logger

pytest.importorskip("sklearn")


def blobs(n_per_class, seed, classes=(3, 7, 5)):
    """Far-apart clusters of (len(classes) + 1)-pixel images, one per digit label of
    ``classes``."""
    rng = np.random.default_rng(seed)
    pixels = len(classes) + 1
    centres = np.eye(pixels)[:len(classes)] * 10
    x = np.concatenate([c + rng.normal(0, 0.3, (n_per_class, pixels)) for c in centres])
    return x.astype(np.float32), np.repeat(classes, n_per_class)


def blob_split(classes=(3, 7, 5)):
    """A train / valid / test split of ``blobs`` shaped like load_split's."""
    data = {}
    for part, n, seed in (("train", 50, 0), ("valid", 5, 1), ("test", 20, 2)):
        data[f"x_{part}"], data[f"y_{part}"] = blobs(n, seed, classes)
    return data


def quiet_log(tmp_path):
    return get_logger("baselines_test", str(tmp_path / "baselines.log"))


RULES = ("test_error", "test_error_train_labels", "test_error_majority_labels")


def test_centre_scores_rank_by_distance():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    centres = np.array([[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(baselines.centre_scores(x, centres), [[0, -9], [-25, -16]])


def test_separable_clusters_are_labelled_right_by_every_rule():
    from sklearn.cluster import KMeans
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = (blobs(n, s) for n, s in
                                                                 ((50, 0), (5, 1), (20, 2)))
    centres = KMeans(n_clusters=3, n_init=3, random_state=0).fit(x_train).cluster_centers_
    scores = [baselines.centre_scores(x, centres) for x in (x_train, x_valid, x_test)]
    result = baselines.label_clusters(scores[0], y_train, scores[1], y_valid, scores[2], y_test)
    assert result["test_error"] == result["test_error_train_labels"] == \
        result["test_error_majority_labels"] == 0.0
    assert sorted(result["cluster_labels"]) == [3, 5, 7]  # the digits, whatever the order
    assert sorted(result["test_category_sizes"]) == [20, 20, 20]
    # labels swapped on the test images: every rule now errs on those two clusters
    swapped = np.where(y_test == 3, 7, np.where(y_test == 7, 3, y_test))
    wrong = baselines.label_clusters(scores[0], y_train, scores[1], y_valid, scores[2], swapped)
    assert wrong["test_error"] == pytest.approx(2 / 3)


def test_a_small_run_on_the_real_split_writes_its_result(tmp_path, mnist_dir):
    out = baselines.main(["--k", "10", "--N_train", "2000", "--n_init", "1", "--data_dir",
                          mnist_dir, "--logs_dir", str(tmp_path)])
    saved = json.loads((tmp_path / "kmeans_10.json").read_text())
    assert saved["test_error"] == out[10]["test_error"]
    assert 0.2 < saved["test_error"] < 0.6  # k-means on pixels: far better than chance (0.9)
    assert saved["n_train"] == 2000 and len(saved["cluster_labels"]) == 10
    assert sum(saved["test_category_sizes"]) == saved["n_test"] == 10000


@pytest.mark.parametrize("argv,message", [
    (["--k", "1"], "--k must be at least 2"),
    (["--k", "16", "--N_train", "10"], "more clusters than the 10 training images"),
    (["--n_init", "0"], "--n_init must be at least 1"),
    (["--k", "x"], "invalid int value"),
])
def test_bad_options_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        baselines.parse_args(argv)


def test_bad_option_is_one_line_on_the_command_line():
    done = subprocess.run([sys.executable, "baselines.py", "--k", "0"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: --k must be at least 2")


def test_the_whole_fit_gets_separable_clusters_right_by_every_rule(tmp_path):
    result = baselines.kmeans_baseline(3, blob_split(), seed=0, n_init=2,
                                       log=quiet_log(tmp_path))
    for rule in RULES:
        assert result[rule] == 0.0, rule
    assert result["k"] == 3 and result["n_init"] == 2 and result["inertia"] > 0
    assert (result["n_train"], result["n_valid"], result["n_test"]) == (150, 15, 60)
    assert "K = 3: test error 0.00%" in (tmp_path / "baselines.log").read_text()


def test_permuted_digit_labels_are_recovered(tmp_path):
    """The same images under a permutation of the ten digits: every rule labels each cluster
    with the permuted digit, and the errors stay 0."""
    classes = np.arange(10)
    permutation = np.random.default_rng(3).permutation(10)
    data = blob_split(tuple(classes))
    permuted = {key: (permutation[value] if key.startswith("y_") else value)
                for key, value in data.items()}
    log = quiet_log(tmp_path)
    plain = baselines.kmeans_baseline(10, data, seed=0, n_init=3, log=log)
    moved = baselines.kmeans_baseline(10, permuted, seed=0, n_init=3, log=log)
    for rule in RULES:
        assert plain[rule] == moved[rule] == 0.0, rule
    for key in ("cluster_labels", "train_cluster_labels", "majority_cluster_labels"):
        assert sorted(plain[key]) == list(range(10))  # one cluster per digit
        assert moved[key] == permutation[plain[key]].tolist(), key


def test_each_k_is_run_once():
    assert baselines.parse_args(["--k", "30", "16", "30"]).k == [30, 16]


def test_missing_split_is_one_line_on_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "baselines.py", "--k", "16", "--data_dir",
                           str(tmp_path / "nowhere"), "--logs_dir", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "mnist_split.npz not found" in last
    assert not (tmp_path / "out" / "kmeans_16.json").exists()


COMMITTED = [("kmeans_16.json", 16, 0), ("kmeans_30.json", 30, 0),
             (os.path.join("seed1", "kmeans_16.json"), 16, 1)]


@pytest.mark.parametrize("name,k,seed", COMMITTED)
def test_committed_results_are_whole(name, k, seed, tmp_path):
    folder = os.path.join(ROOT, "results", "baselines")
    with open(os.path.join(folder, name)) as f:
        saved = json.load(f)
    # the keys the script writes now, re-derived from a small run
    fresh = baselines.kmeans_baseline(3, blob_split(), seed=0, n_init=1,
                                      log=quiet_log(tmp_path))
    assert set(saved) == set(fresh) | {"command"}
    assert saved["k"] == k and saved["seed"] == seed and saved["n_init"] >= 10
    assert (saved["n_train"], saved["n_valid"], saved["n_test"]) == (59000, 1000, 10000)
    for key in ("cluster_labels", "train_cluster_labels", "majority_cluster_labels"):
        assert len(saved[key]) == k and set(saved[key]) <= set(range(10)), key
    assert len(saved["test_category_sizes"]) == k
    assert sum(saved["test_category_sizes"]) == saved["n_test"]
    for key in RULES + ("inertia", "seconds"):
        assert np.isfinite(saved[key]) and saved[key] > 0, key
    for rule in RULES:  # an error is a multiple of 1 / n_test
        assert 0.0 < saved[rule] < 1.0
        wrong = saved[rule] * saved["n_test"]
        assert wrong == pytest.approx(round(wrong))
    # the recorded command gives back this K, seed, restarts and folder, and the README names it
    command = saved["command"].split()
    assert command[:2] == ["python", "baselines.py"]
    args = baselines.parse_args(command[2:])
    assert k in args.k and args.seed == seed and args.n_init == saved["n_init"]
    assert os.path.normpath(os.path.join(ROOT, args.logs_dir)) == \
        os.path.dirname(os.path.join(folder, name))
    with open(os.path.join(folder, "README.md")) as f:
        assert f"`OMP_NUM_THREADS=1 {saved['command']}`" in f.read()
