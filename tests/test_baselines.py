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

pytest.importorskip("sklearn")


def blobs(n_per_class, seed, classes=(3, 7, 5)):
    """Three far-apart 4-pixel clusters whose digit labels are ``classes``."""
    rng = np.random.default_rng(seed)
    centres = np.eye(4)[:len(classes)] * 10
    x = np.concatenate([c + rng.normal(0, 0.3, (n_per_class, 4)) for c in centres])
    return x.astype(np.float32), np.repeat(classes, n_per_class)


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
    assert result["test_error"] == result["test_error_valid_labels"] == \
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


@pytest.mark.parametrize("k", [16, 30])
def test_committed_results_are_whole(k):
    with open(os.path.join(ROOT, "results", "baselines", f"kmeans_{k}.json")) as f:
        saved = json.load(f)
    assert saved["k"] == k and saved["seed"] == 0 and saved["n_train"] == 59000
    assert len(saved["cluster_labels"]) == len(saved["majority_cluster_labels"]) == k
    for name in ("test_error", "test_error_valid_labels", "test_error_majority_labels"):
        assert 0.0 < saved[name] < 1.0
