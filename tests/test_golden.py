"""The training step of every model family computes what it computed when these figures were
recorded: a few steps on the real data from a fixed seed give the same losses.

A change that keeps the math (a rename, a refactoring, another order of independent
optimizer updates) passes; one that changes which random numbers feed which layer, a rate, a
loss or the order of the phases fails. The tolerance allows for the last bits that other
processors' float kernels may change; the exact check for a refactoring is
``python -m utils.fingerprint`` before and after on one machine.

The figures: ``python tests/test_golden.py`` prints them (the epoch-0 row of loss.csv after 3
steps on 300 images, 64-unit layers), recorded with the code of commit 3d09a1f (before the model families
moved to families/) and unchanged since.
"""
import math
import sys

import pytest

from conftest import run_dirs  # first: it puts the project folder on sys.path
import train  # noqa: E402  (isort: skip)

TINY = ["--N", "64", "--N_train", "300", "--n_epochs", "1", "--seed", "3"]
RUNS = {
    "likelihood": [],
    "gmm_labels": ["--preset", "gmm_labels", "--n_labeled", "100", "--n_unlabeled", "200"],
    "supervised_2d": ["--preset", "supervised_2d"],
    "semi_100": ["--preset", "semi_100"],
    "dimred_unsupervised": ["--preset", "dimred_unsupervised"],
}
GOLDEN = {
    'likelihood': {
        'recon_loss': 0.7231629888216654,
        'd_loss': 3.3480234940846763,
        'g_loss': 3.353729724884033,
    },
    'gmm_labels': {
        'recon_loss': 0.6929832100868225,
        'd_loss': 1.3275461196899414,
        'g_loss': 0.6657613317171732,
    },
    'supervised_2d': {
        'recon_loss': 0.6924677093823751,
        'd_loss': 1.4189605315526326,
        'g_loss': 0.6827901601791382,
    },
    'semi_100': {
        'recon_loss': 0.6924375693003336,
        'd_loss': 1.4317489862442017,
        'g_loss': 0.6093145807584127,
        'd_y_loss': 1.3814816077550252,
        'g_y_loss': 0.6782393455505371,
        'class_loss': 2.361237049102783,
        'valid_error': 0.881,
    },
    'dimred_unsupervised': {
        'recon_loss': 0.6928900082906088,
        'd_loss': 1.3694662650426228,
        'g_loss': 0.6072584986686707,
        'd_y_loss': 1.3943373759587605,
        'g_y_loss': 0.6745445132255554,
        'head_loss': 51.58873621622721,
        'valid_error': 0.901,
    },
}


def first_epoch(name, mnist_dir, folder):
    out = train.main(TINY + RUNS[name] + ["--data_dir", mnist_dir] + run_dirs(folder))
    return {k: v for k, v in out["history"][0].items() if k not in ("epoch", "seconds")}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_few_steps_give_the_recorded_losses(name, mnist_dir, tmp_path):
    row = first_epoch(name, mnist_dir, tmp_path)
    assert list(row) == list(GOLDEN[name])  # the same losses, in the same order
    for key, value in GOLDEN[name].items():
        assert math.isclose(row[key], value, rel_tol=1e-4, abs_tol=1e-6), (key, row[key], value)


if __name__ == "__main__":  # print the figures for GOLDEN
    import os
    import pathlib
    import tempfile

    import data_maker
    from conftest import ROOT
    with tempfile.TemporaryDirectory() as scratch:
        data_maker.main(["--data_dir", scratch, "--logs_dir", os.path.join(scratch, "logs"),
                         "--source", os.path.join(ROOT, "data", "mnist")])
        for run_name in RUNS:
            print(f"    {run_name!r}: {first_epoch(run_name, scratch, pathlib.Path(scratch) / run_name)},")
    sys.exit(0)
