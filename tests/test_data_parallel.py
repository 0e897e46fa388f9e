"""Data parallelism (python -m paddle.distributed.launch train.py), run here as two CPU
processes over gloo: averaged shard gradients equal the whole batch's, and only the first
process writes."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import config
import train
from conftest import ROOT
from network import build_networks
from utils.steps import make_optimizers, no_sync

STEPS = 3
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Paddle's gloo backend is Linux-only")


def small_model():
    # No dropout and a deterministic encoder: then the only random numbers are the prior
    # samples, which the test fixes, and both sides compute the same function.
    cfg = config.Config(N=32, latent_dim=4, dropout=0.0, encoder="deterministic").validate()
    paddle.seed(0)
    nets = build_networks(cfg, 20)
    return nets, make_optimizers(cfg, nets, train.LikelihoodAAE.optimizer_plan(cfg))


def table1_step(x, z_prior, nets, opts, sync=no_sync):
    """train.py's three phases with given prior samples (the model's step draws its own)."""
    train.reconstruction_phase(x, nets, opts, sync)
    train.discriminator_phase(x, z_prior, nets, opts, sync)
    train.generator_phase(x, nets, opts, sync)


def fixed_batch(n=8):
    rng = np.random.default_rng(1)
    return ((rng.random((n, 20)) > 0.6).astype("float32"),
            rng.normal(0, 5, (n, 4)).astype("float32"))


def launch(args, log_dir, cwd):
    return subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                           "2", "--log_dir", str(log_dir)] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_two_processes_equal_one_process_on_the_whole_batch(tmp_path):
    out = tmp_path / "weights.npz"
    proc = launch([os.path.join(ROOT, "tests", "dp_worker.py"), str(out)], tmp_path / "log",
                  os.path.join(ROOT, "tests"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parallel = np.load(out)

    nets, opts = small_model()
    x_full, z_full = fixed_batch()
    for _ in range(STEPS):
        table1_step(paddle.to_tensor(x_full), paddle.to_tensor(z_full), nets, opts)
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            np.testing.assert_allclose(parallel[f"{name}/{key}"], value.numpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=f"{name}/{key}")


def test_launched_training_writes_from_one_process(tmp_path, mnist_dir):
    run = tmp_path / "run"
    proc = launch([os.path.join(ROOT, "train.py"), "--N", "64", "--N_train", "400",
                   "--batch_size", "100", "--n_epochs", "2", "--data_dir", mnist_dir,
                   "--model_dir", str(run / "model"), "--images_dir", str(run / "images"),
                   "--logs_dir", str(run / "logs")], tmp_path / "log", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = (run / "logs" / "loss.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs, written once
    assert (run / "model" / "model1.npz").is_file()
    log = (run / "logs" / "train.log").read_text()
    assert "x 2 process(es)" in log and log.count("[Epoch 1/2]") == 1
    worker1 = (tmp_path / "log" / "workerlog.1").read_text()
    assert "saved" not in worker1 and "[Epoch" not in worker1

    # the same options without 'launch' are refused when shards would be unequal
    bad = launch([os.path.join(ROOT, "train.py"), "--N_train", "450", "--batch_size", "100",
                  "--n_epochs", "1", "--data_dir", mnist_dir, "--model_dir", str(run / "m2")],
                 tmp_path / "log2", str(tmp_path))
    assert bad.returncode != 0
    assert "equal shards" in (tmp_path / "log2" / "workerlog.0").read_text()
