"""data_maker -> train -> eval on a real MNIST subset, resumption, checkpoints, CLI errors."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import check_parzen
import config
import eval as evaluate
import train
from conftest import ROOT, run_dirs
from network import build_networks
from utils import checkpoint
from utils.errors import UserError
from utils.steps import make_optimizers

SMALL = ["--N", "256", "--N_train", "3000", "--batch_size", "100"]


def test_train_then_eval_end_to_end(tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    (tmp_path / "run/model").mkdir(parents=True)
    (tmp_path / "run/model/best.npz").write_bytes(b"an earlier run's")  # not this run's
    out = train.main(SMALL + ["--n_epochs", "5", "--data_dir", mnist_dir] + dirs)
    history = out["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3, 4]
    assert all(np.isfinite([row[k] for row in history for k in train.LOSS_NAMES]))
    assert history[-1]["recon_loss"] < 0.9 * history[0]["recon_loss"]
    run = tmp_path / "run"
    for name in ["model/model4.npz", "model/last.npz", "images/epoch0.png", "images/epoch4.png",
                 "images/loss_curve.png", "images/samples_by_epoch.png", "logs/loss.csv",
                 "logs/train.log",
                 "logs/train_config.json"]:
        assert (run / name).is_file(), name
    assert json.loads((run / "logs/train_config.json").read_text())["N_train"] == 3000
    assert not (run / "model/best.npz").exists()  # removed; no validation error to choose by

    samples_path = tmp_path / "samples.npy"
    result = evaluate.main(["--load_epoch", "4", "--N_gen", "500", "--N_test", "400",
                            "--data_dir", mnist_dir, "--save_samples", str(samples_path)] + dirs)
    saved = json.loads((run / "logs/eval.json").read_text())
    for key in ["ll_mean", "ll_se", "sigma", "sigma_grid", "valid_ll", "n_gen", "n_test", "seed",
                "checkpoint"]:
        assert key in saved, key
    assert saved["n_gen"] == 500 and saved["n_test"] == 400
    assert len(saved["valid_ll"]) == len(saved["sigma_grid"]) == 20
    assert saved["sigma"] == saved["sigma_grid"][int(np.argmax(saved["valid_ll"]))]
    assert np.isfinite(result["ll_mean"]) and result["ll_se"] > 0
    assert (run / "images/sigma_cv.png").is_file()

    # The reported figure agrees with an independent float64 computation on the saved samples
    # (check_parzen.py, the command the README gives for this).
    samples = np.load(samples_path)
    assert samples.shape == (500, 784) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert saved["samples"] == str(samples_path)
    checked = check_parzen.main(["--data_dir", mnist_dir, "--logs_dir", str(run / "logs")])
    assert checked["agrees"] and abs(checked["difference"]) < 0.01
    assert (checked["n_test"], checked["n_samples"]) == (400, 500)
    assert checked["ll_mean_reported"] == saved["ll_mean"]
    assert json.loads((run / "logs/check_parzen.json").read_text()) == checked
    # ... and a tampered report is caught
    (run / "logs/eval.json").write_text(json.dumps(dict(saved, ll_mean=saved["ll_mean"] + 1)))
    with pytest.raises(check_parzen.Mismatch, match="differ by more than 0.01 nats"):
        check_parzen.check(["--data_dir", mnist_dir, "--logs_dir", str(run / "logs")])


def test_check_parzen_needs_an_eval_that_saved_its_samples(tmp_path, mnist_dir):
    logs = tmp_path / "logs"
    with pytest.raises(UserError, match="eval.json not found: run python eval.py"):
        check_parzen.main(["--data_dir", mnist_dir, "--logs_dir", str(logs)])
    logs.mkdir()
    (logs / "eval.json").write_text(json.dumps({"ll_mean": 1.0, "sigma": 0.2, "n_test": 10,
                                                "samples": None}))
    with pytest.raises(UserError, match="without --save_samples"):
        check_parzen.main(["--data_dir", mnist_dir, "--logs_dir", str(logs)])
    (logs / "eval.json").write_text(json.dumps({"ll_mean": 1.0, "sigma": 0.2, "n_test": 10,
                                                "samples": str(tmp_path / "gone.npy")}))
    with pytest.raises(UserError, match="gone.npy .named in eval.json. cannot be read"):
        check_parzen.main(["--data_dir", mnist_dir, "--logs_dir", str(logs)])


def test_resume_repeats_an_uninterrupted_run(tmp_path, mnist_dir):
    common = SMALL + ["--N_train", "1000", "--data_dir", mnist_dir]
    straight = train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "a"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "b"))
    resumed = train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "b"))
    assert resumed["history"] == [dict(r, seconds=s["seconds"]) for r, s in
                                  zip(straight["history"], resumed["history"])]
    _, a = checkpoint.load(str(tmp_path / "a/model/model1.npz"))
    _, b = checkpoint.load(str(tmp_path / "b/model/model1.npz"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_refuses_another_config(tmp_path, mnist_dir):
    common = ["--N_train", "500", "--data_dir", mnist_dir, "--n_epochs", "1"] + run_dirs(tmp_path)
    train.main(["--N", "64"] + common)
    with pytest.raises(UserError, match="N: 64 there, 128 now"):
        train.main(["--N", "128", "--resume"] + common)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    cfg = config.Config(N=32, latent_dim=3, encoder="deterministic").validate()
    paddle.seed(1)
    nets = build_networks(cfg, 20)
    opts = make_optimizers(cfg, nets, train.LikelihoodAAE.optimizer_plan(cfg))
    path = str(tmp_path / "ck.npz")
    checkpoint.save(path, nets, {"config": cfg.to_dict()}, opts)
    meta, arrays = checkpoint.load(path)
    assert meta["config"] == cfg.to_dict()
    paddle.seed(2)
    fresh = build_networks(cfg, 20)
    checkpoint.restore_networks(fresh, arrays, path)
    x = paddle.rand([4, 20])
    for net in list(nets.values()) + list(fresh.values()):
        net.eval()
    np.testing.assert_array_equal(nets["decoder"](nets["encoder"](x)).numpy(),
                                  fresh["decoder"](fresh["encoder"](x)).numpy())
    assert not [p for p in os.listdir(tmp_path) if p != "ck.npz"]  # no temporary files left


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    small = build_networks(config.Config(N=32).validate(), 20)
    path = str(tmp_path / "ck.npz")
    checkpoint.save(path, small, {"config": {}})
    _, arrays = checkpoint.load(path)
    other = build_networks(config.Config(N=48).validate(), 20)
    with pytest.raises(UserError, match=r"net/encoder/model.0.weight has shape \[20, 32\]"):
        checkpoint.restore_networks(other, arrays, path)


@pytest.mark.parametrize("script,args,message", [
    ("train.py", ["--n_epoch", "1"], "unrecognized arguments: --n_epoch"),
    ("train.py", ["--resume", "maybe"], "expected true or false"),
    ("train.py", ["--batch_size", "0"], "--batch_size must be positive"),
    ("eval.py", ["--sigma", "abc"], "expected a number"),
    ("eval.py", ["--checkpoint", "nowhere.npz"], "nowhere.npz not found"),
])
def test_cli_errors_are_one_line_without_traceback(script, args, message):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + args, cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
