"""--resume continues the same run or refuses, and a new run never destroys an unfinished one:
the data split is recorded and checked, a finished run is not 'resumed' into nothing, only the
training settings are compared, a damaged loss.csv is a one-line error, loss.csv is written
before the resume point advances, one run per folder at a time, and only the project's own
temporary files are cleaned up."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import data_maker
import train
from conftest import ROOT, run_dirs
from utils import checkpoint, run
from utils.errors import UserError

TINY = ["--N", "32", "--N_train", "300", "--n_epochs", "1"]


def base_args(mnist_dir, tmp_path, *extra):
    return TINY + ["--data_dir", mnist_dir, *extra] + run_dirs(tmp_path)


def diverge_at(monkeypatch, call):
    """Make the likelihood model's step return a NaN loss at its ``call``-th call."""
    real_step = train.LikelihoodAAE.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        losses = real_step(self, *args, **kwargs)
        return dict(losses, recon_loss=float("nan")) if calls["n"] == call else losses

    monkeypatch.setattr(train.LikelihoodAAE, "step", step)


def test_resume_refuses_another_data_split(tmp_path, mnist_dir):
    other = tmp_path / "other_split"
    data_maker.main(["--data_dir", str(other), "--seed", "1", "--logs_dir", str(other / "logs"),
                     "--source", os.path.join(ROOT, "data", "mnist")])
    train.main(base_args(mnist_dir, tmp_path))
    resumed = TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", str(other)]
    with pytest.raises(UserError, match="was trained on another data split"):
        train.main(resumed + run_dirs(tmp_path))
    meta, _ = checkpoint.load(str(tmp_path / "run/model/last.npz"))
    assert meta["split"]["seed"] == 0 and meta["split"]["n_train"] == 300


def test_resume_of_a_run_already_trained_that_far_is_refused_and_writes_nothing(
        tmp_path, mnist_dir):
    train.main(base_args(mnist_dir, tmp_path))
    logs = tmp_path / "run/logs"
    before = {name: (logs / name).read_bytes() for name in ("train_config.json", "loss.csv")}
    with pytest.raises(UserError, match="has already trained 1 epochs; pass --n_epochs larger"):
        train.main(base_args(mnist_dir, tmp_path, "--resume"))
    assert {name: (logs / name).read_bytes() for name in before} == before


def test_a_preset_run_resumes_with_its_settings_spelled_out(tmp_path, mnist_dir):
    train.main(["--preset", "gaussian_2d"] + base_args(mnist_dir, tmp_path))
    # a mismatch names the options that reproduce the run, preset included
    with pytest.raises(UserError, match=r"resume it with: python train\.py --resume "
                                        r"--preset gaussian_2d .*--N 32"):
        train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
                   + run_dirs(tmp_path))
    spelled = ["--latent_dim", "2", "--encoder", "deterministic"]  # what the preset sets
    out = train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
                     + spelled + run_dirs(tmp_path))
    assert [row["epoch"] for row in out["history"]] == [0, 1]


@pytest.mark.parametrize("damage", ["epoch,recon_loss\n0,abc\n", "epoch\n", "garbage,\n\x00\n"])
def test_damaged_loss_csv_is_a_one_line_error(tmp_path, mnist_dir, damage):
    train.main(base_args(mnist_dir, tmp_path))
    (tmp_path / "run/logs/loss.csv").write_text(damage)
    with pytest.raises(UserError, match="loss.csv"):
        train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
                   + run_dirs(tmp_path))


def test_loss_csv_is_written_before_the_resume_point_advances(tmp_path, mnist_dir,
                                                              monkeypatch):
    """A failure while writing loss.csv leaves the resume point where the row is still
    missing, so the epoch is trained again and no row is lost."""
    real_write = run.write_loss_csv
    calls = {"n": 0}

    def failing_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise UserError("disk full (simulated)")
        return real_write(*args, **kwargs)

    args = TINY[:-2] + ["--n_epochs", "2", "--data_dir", mnist_dir] + run_dirs(tmp_path)
    monkeypatch.setattr(run, "write_loss_csv", failing_write)
    with pytest.raises(UserError, match="simulated"):
        train.main(args)
    meta, _ = checkpoint.load(str(tmp_path / "run/model/last.npz"))
    assert meta["epoch"] == 1  # not advanced past the epoch whose row was not written
    out = train.main(args + ["--resume"])
    assert [row["epoch"] for row in out["history"]] == [0, 1]


def test_a_new_run_does_not_replace_an_unfinished_one(tmp_path, mnist_dir, monkeypatch):
    diverge_at(monkeypatch, 5)  # epoch 1 of 2: the resume point holds epoch 0's end
    args = TINY[:-2] + ["--n_epochs", "2", "--data_dir", mnist_dir] + run_dirs(tmp_path)
    with pytest.raises(UserError, match="the last good state is in .*last.npz"):
        train.main(args)
    last = tmp_path / "run/model/last.npz"
    kept = last.read_bytes()
    monkeypatch.undo()
    with pytest.raises(UserError, match="holds an unfinished run \\(epoch 1 of 2\\); continue "
                                        "it with --resume"):
        train.main(args)
    assert last.read_bytes() == kept
    train.main(args + ["--resume"])  # it can still be finished
    train.main(args)  # and a finished run may be replaced by a new one


def test_a_run_that_diverges_before_any_resume_point_says_so(tmp_path, mnist_dir, monkeypatch):
    diverge_at(monkeypatch, 2)
    with pytest.raises(UserError, match="this run saved no resume point yet"):
        train.main(base_args(mnist_dir, tmp_path))


def test_two_runs_in_one_folder_are_refused(tmp_path, mnist_dir):
    model_dir = tmp_path / "run/model"
    model_dir.mkdir(parents=True)
    with run.RunLock(str(model_dir)):  # as another train.py holds it
        with pytest.raises(UserError, match="another train.py is using .*model"):
            train.main(base_args(mnist_dir, tmp_path))
    assert not (tmp_path / "run/logs/loss.csv").exists()
    train.main(base_args(mnist_dir, tmp_path))  # released: the folder is usable again


def test_only_the_projects_own_temporaries_are_removed_and_only_once_resuming(
        tmp_path, mnist_dir):
    train.main(base_args(mnist_dir, tmp_path))
    model_dir = tmp_path / "run/model"
    mine, theirs = model_dir / "last.npz.x1y2z3w4.tmp", model_dir / "notes.tmp"
    also_theirs = model_dir / "last.npz.mine.tmp"  # not a name the project's writes use
    # today's names carry the writer's process id; best.npz's were once missed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    also_mine = [model_dir / f"best.npz.{dead}.a1b2c3d4.tmp",
                 model_dir / f"model0.npz.{dead}.e5f6g7h8.tmp", model_dir / "best.npz.q9r8s7t6.tmp"]
    for path in also_mine:
        path.write_bytes(b"half a checkpoint")
    mine.write_bytes(b"half a checkpoint")
    theirs.write_text("the user's own file")
    also_theirs.write_text("the user's own file")
    with pytest.raises(UserError, match="trained with other settings"):  # refused: no clean-up
        train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--seed", "5", "--data_dir",
                                mnist_dir] + run_dirs(tmp_path))
    assert mine.exists() and theirs.exists()
    train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
               + run_dirs(tmp_path))
    assert not mine.exists() and theirs.read_text() == "the user's own file"
    assert not any(path.exists() for path in also_mine)
    assert also_theirs.read_text() == "the user's own file"


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, mnist_dir):
    common = TINY[:-2] + ["--data_dir", mnist_dir]
    straight = train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "a"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "b"))
    resumed = train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "b"))
    assert resumed["history"][1]["recon_loss"] == straight["history"][1]["recon_loss"]
    a, b = (np.load(tmp_path / name / "model/model1.npz") for name in ("a", "b"))
    for key in a.files:
        if key != "__meta__":
            np.testing.assert_array_equal(a[key], b[key])


def test_two_runs_sharing_a_logs_folder_are_refused(tmp_path, mnist_dir):
    logs = tmp_path / "shared_logs"
    logs.mkdir()
    with run.RunLock(str(logs)):  # another run writes its loss.csv there
        with pytest.raises(UserError, match="another train.py is using .*shared_logs"):
            train.main(TINY + ["--data_dir", mnist_dir, "--model_dir", str(tmp_path / "m"),
                               "--images_dir", str(tmp_path / "i"), "--logs_dir", str(logs)])


@pytest.mark.parametrize("spoil", ["weights_only", "short_sums", "bad_record"])
def test_a_file_that_is_no_resume_point_is_refused(tmp_path, mnist_dir, spoil):
    train.main(base_args(mnist_dir, tmp_path))
    last, kept = tmp_path / "run/model/last.npz", tmp_path / "run/model/model0.npz"
    meta, arrays = checkpoint.load(str(last))
    if spoil == "weights_only":
        last.write_bytes(kept.read_bytes())
    elif spoil == "short_sums":
        meta["partial_sums"] = meta["partial_sums"][:1]
        np.savez(str(last), __meta__=np.array(json.dumps(meta)), **arrays)
    else:
        np.savez(str(last), __meta__=np.array("{not json"), **arrays)
    with pytest.raises(UserError, match="--resume: .*last.npz"):
        train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
                   + run_dirs(tmp_path))


def test_a_loss_csv_of_another_model_is_refused(tmp_path, mnist_dir):
    train.main(base_args(mnist_dir, tmp_path))
    csv_path = tmp_path / "run/logs/loss.csv"
    csv_path.write_text("epoch,class_loss,valid_error,seconds\n0,0.5,0.2,1.0\n")
    with pytest.raises(UserError, match="it is another run's"):
        train.main(TINY[:-2] + ["--n_epochs", "2", "--resume", "--data_dir", mnist_dir]
                   + run_dirs(tmp_path))


def test_a_failed_epoch_output_keeps_every_file_and_the_epoch_is_trained_again(
        tmp_path, mnist_dir):
    """The resume point is written last: when the sample grid cannot be written, the kept
    checkpoint of that epoch exists and the resumed run trains the epoch again."""
    args = TINY[:-2] + ["--n_epochs", "2", "--save_every", "1", "--data_dir", mnist_dir]
    (tmp_path / "run/images/epoch1.png").mkdir(parents=True)  # in the way of the grid
    with pytest.raises(UserError, match="epoch1.png"):
        train.main(args + run_dirs(tmp_path))
    assert (tmp_path / "run/model/model1.npz").is_file()
    meta, _ = checkpoint.load(str(tmp_path / "run/model/last.npz"))
    assert meta["epoch"] == 1
    (tmp_path / "run/images/epoch1.png").rmdir()
    out = train.main(args + ["--resume"] + run_dirs(tmp_path))
    assert [row["epoch"] for row in out["history"]] == [0, 1]
