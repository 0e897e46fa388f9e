"""Interruption, bad options, untrusted files: nothing is lost, nothing half-written, no code
runs that the user did not ask for."""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

import config
import eval as evaluate
import train
from conftest import ROOT, interrupt, run_dirs
from network import build_networks
from utils import checkpoint, files
from utils.errors import UserError

TINY = ["--N", "64", "--N_train", "1000", "--batch_size", "50", "--sample_every", "100"]


def weights(path):
    _, arrays = checkpoint.load(str(path))
    return arrays


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def start_training(args, cwd):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py")] + args, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(csv_path, n, proc, timeout=120):
    """Until the run's loss.csv has n epoch rows (or the process ends)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if os.path.isfile(csv_path):
            with open(csv_path) as f:
                if len(f.read().splitlines()) - 1 >= n:
                    return
        time.sleep(0.02)
    raise AssertionError(f"{csv_path} did not reach {n} epochs")


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, mnist_dir):
    common = TINY + ["--n_epochs", "6", "--data_dir", mnist_dir]
    train.main(common + run_dirs(tmp_path, "straight"))

    killed = common + run_dirs(tmp_path, "killed")
    proc = start_training(killed, tmp_path)
    wait_for_epochs(str(tmp_path / "killed/logs/loss.csv"), 2, proc)
    time.sleep(0.13)  # somewhere inside a later epoch, possibly inside a checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # whatever the moment, the resume point is a complete, loadable checkpoint
    meta, _ = checkpoint.load(str(tmp_path / "killed/model/last.npz"))
    # (loss.csv is written before the resume point moves: it may be one epoch ahead)
    assert 1 <= meta["epoch"] <= 6
    result = train.main(killed + ["--resume"])
    # a write cut off by the kill leaves only a temporary file, which the resumed run removes
    assert not [f for f in os.listdir(tmp_path / "killed/model") if f.endswith(".tmp")]
    assert [row["epoch"] for row in result["history"]] == list(range(6))
    assert_same_weights(tmp_path / "straight/model/model5.npz", tmp_path / "killed/model/model5.npz")


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_the_current_step_and_resume_matches(tmp_path, mnist_dir, sig,
                                                                     exit_code):
    """Ctrl-C exits 130 and SIGTERM 143 (128 + the signal, as the other scripts), both once
    the step in progress is saved."""
    common = TINY + ["--n_epochs", "3", "--data_dir", mnist_dir]
    train.main(common + run_dirs(tmp_path, "straight"))
    args = common + run_dirs(tmp_path, "stopped")
    proc = start_training(args, tmp_path)
    wait_for_epochs(str(tmp_path / "stopped/logs/loss.csv"), 1, proc)
    code, stderr = interrupt(proc, sig, "the run")
    assert code == exit_code
    assert "continue with --resume" in stderr
    train.main(args + ["--resume"])
    assert_same_weights(tmp_path / "straight/model/model2.npz", tmp_path / "stopped/model/model2.npz")


def test_non_finite_loss_stops_with_epoch_and_batch(tmp_path, mnist_dir, monkeypatch):
    args = TINY + ["--n_epochs", "3", "--data_dir", mnist_dir] + run_dirs(tmp_path)
    real_step = train.LikelihoodAAE.step
    calls = {"n": 0}

    def step_that_diverges(self, *a, **kw):
        calls["n"] += 1
        losses = real_step(self, *a, **kw)
        return dict(losses, recon_loss=float("nan")) if calls["n"] == 25 else losses

    monkeypatch.setattr(train.LikelihoodAAE, "step", step_that_diverges)
    with pytest.raises(UserError, match=r"non-finite loss at epoch 1, batch 4"):
        train.main(args)
    meta, _ = checkpoint.load(str(tmp_path / "run/model/last.npz"))
    assert meta["epoch"] == 1 and meta["batch"] == 0  # the last good state: after epoch 0


def test_unwritable_output_folder_is_refused(tmp_path, mnist_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the folder.*--model_dir"):
        train.main(TINY + ["--n_epochs", "1", "--data_dir", mnist_dir,
                           "--model_dir", str(blocker / "model")])


def test_batch_larger_than_data_is_refused(mnist_dir):
    with pytest.raises(UserError, match="--batch_size 600 is larger than the 500"):
        train.main(["--N_train", "500", "--batch_size", "600", "--data_dir", mnist_dir])


@pytest.mark.parametrize("argv,message", [
    (["--N_test", "20000"], "--N_test 20000 exceeds"),
    (["--N_valid", "5000"], "--N_valid 5000 exceeds"),
    (["--sigma_num", "0"], "--sigma_num must be positive"),
    (["--sigma", "-1"], "--sigma must be positive"),
    (["--device", "tpu"], "invalid choice"),
])
def test_eval_options_are_checked_before_work(tmp_path, mnist_dir, argv, message):
    cfg = config.Config(N=16).validate()
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, build_networks(cfg, 784), {"config": cfg.to_dict()})
    with pytest.raises(UserError, match=message):
        evaluate.main(argv + ["--checkpoint", path, "--data_dir", mnist_dir] + run_dirs(tmp_path))


class RunsCode:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_is_not_loaded_unless_trusted(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model199.pkl"
    with open(path, "wb") as f:
        pickle.dump({"encoder": RunsCode(str(marker))}, f)
    with pytest.raises(UserError, match="pickle .* can run any code"):
        evaluate.load_model(str(path), trust_pickle=False)
    assert not marker.exists()


def test_reference_pickle_loads_when_trusted(tmp_path):
    cfg = config.Config()
    paddle.seed(0)
    nets = build_networks(cfg, 784)
    state = {name: net.state_dict() for name, net in nets.items()}
    # the reference's encoder also has an unused 'direct' head
    state["encoder"]["direct.weight"] = paddle.zeros([cfg.N, cfg.latent_dim])
    state["encoder"]["direct.bias"] = paddle.zeros([cfg.latent_dim])
    path = str(tmp_path / "model199.pkl")
    paddle.save(state, path)
    loaded, loaded_cfg, meta = evaluate.load_model(path, trust_pickle=True)
    assert loaded_cfg == cfg and meta["legacy_pickle"].endswith("model199.pkl")
    z = paddle.rand([3, cfg.latent_dim])
    nets["decoder"].eval()
    np.testing.assert_array_equal(loaded["decoder"](z).numpy(), nets["decoder"](z).numpy())


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result is readable like any
    file the user creates (mode 0666 minus the umask), not left private."""
    previous = os.umask(0o022)
    try:
        files.atomic_write(str(tmp_path / "a.json"), lambda f: f.write(b"{}"))
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.json").read_bytes() == b"{}"


def test_truncated_checkpoint_is_refused(tmp_path):
    cfg = config.Config(N=16).validate()
    path = tmp_path / "m.npz"
    checkpoint.save(str(path), build_networks(cfg, 20), {"config": cfg.to_dict()})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load(str(path))
