"""Full disks, symbolic links, signals, memory limits, hostile checkpoints and odd
environments: every refusal is one line naming the file or option, nothing is half-written,
earlier outputs stay as they were and no file outside the chosen folders is touched."""
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import classify
import config
import eval as evaluate
import plot
import train
from conftest import ROOT, interrupt, run_dirs
from families import build_networks
from test_robustness_scripts import (QUICK, assert_one_line_error, earlier_result,
                                     file_size_limit, run_script, tiny_checkpoint)
from utils import checkpoint, errors
from utils.errors import UserError

TINY = ["--N", "16", "--N_train", "200", "--batch_size", "50", "--sample_every", "100"]


def listing(folder):
    """Every name under ``folder`` (hidden ones too), relative, sorted."""
    return sorted(os.path.relpath(os.path.join(top, name), folder)
                  for top, dirs, files in os.walk(folder) for name in dirs + files)


def cli(monkeypatch, capsys, script, argv, all_or_nothing=None):
    """Run ``script.main`` as its command line does: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [script.__name__ + ".py"] + argv)
    with pytest.raises(SystemExit) as stopped:
        errors.run_cli(script.main, all_or_nothing)
    return stopped.value.code, capsys.readouterr().err


def error_line(stderr):
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


# ---- 1. a full disk in training: no output of the failed epoch, no lock file ------------
def test_full_disk_in_training_leaves_no_epoch_output_and_no_lock(tmp_path, mnist_dir,
                                                                  monkeypatch, capsys):
    args = TINY + ["--N", "64", "--n_epochs", "1", "--data_dir", mnist_dir] + run_dirs(tmp_path)
    # model0.npz (~0.5 MB of weights) fits, last.npz (weights and Adam's moments) does not
    with file_size_limit(1_000_000):
        code, stderr = cli(monkeypatch, capsys, train, args)
    assert code != 0
    assert error_line(stderr) == f"error: cannot write {tmp_path}/run/model/last.npz: File too large"
    # nothing of the epoch: the weights, the loss row and the images appear with the resume
    # point or not at all; and the lock files are gone
    assert listing(tmp_path / "run") == ["images", "logs", "logs/train.log",
                                         "logs/train_config.json", "model"]
    result = train.main(args)  # the next run in the folder is neither refused nor confused
    assert result["epochs"] == 1
    assert ".train.lock" not in os.listdir(tmp_path / "run/model")
    assert {"last.npz", "model0.npz"} <= set(os.listdir(tmp_path / "run/model"))


# ---- 2. output names that are symbolic links ------------------------------------------------
def test_symbolic_links_among_outputs_are_replaced_or_refused_never_followed(tmp_path,
                                                                             mnist_dir):
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = {}
    for name in ("eval.json", "picture.png", "weights.npz", "loss.csv", "log.txt", "lock"):
        (outside / name).write_text(f"the user's own {name}")
        targets[name] = f"the user's own {name}"
    run = tmp_path / "run"
    for folder in ("model", "images", "logs"):
        (run / folder).mkdir(parents=True)
    links = {"logs/eval.json": "eval.json", "images/eval_samples.png": "picture.png",
             "model/model0.npz": "weights.npz", "logs/loss.csv": "loss.csv"}
    for name, target in links.items():
        os.symlink(outside / target, run / name)

    # append-only files are refused: a log, the run lock
    os.symlink(outside / "log.txt", run / "logs/eval.log")
    path = tiny_checkpoint(tmp_path)
    with pytest.raises(UserError, match=r"logs/eval.log is a symbolic link: logs are not "
                                        r"written through links; remove the link"):
        evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir] + run_dirs(tmp_path))
    os.remove(run / "logs/eval.log")
    os.symlink(outside / "lock", run / "model/.train.lock")
    train_args = TINY + ["--n_epochs", "1", "--data_dir", mnist_dir] + run_dirs(tmp_path)
    with pytest.raises(UserError, match=r"model/.train.lock is a symbolic link: .* remove it"):
        train.main(train_args)
    os.remove(run / "model/.train.lock")

    # files written whole are written beside the link and renamed over it
    train.main(train_args)
    evaluate.main(QUICK + ["--sigma", "0.2", "--checkpoint", str(run / "model/model0.npz"),
                           "--data_dir", mnist_dir] + run_dirs(tmp_path))
    for name in targets:  # nothing outside the chosen folders changed
        assert (outside / name).read_text() == targets[name], name
    for name in links:  # the links are now the new outputs
        assert not os.path.islink(run / name) and os.path.isfile(run / name), name
    assert json.loads((run / "logs/eval.json").read_text())["sigma"] == 0.2
    checkpoint.load(str(run / "model/model0.npz"))


# ---- 3. SIGINT / SIGTERM: no partial output, earlier outputs intact --------------------------
def wait_for(condition, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.005)


def temporaries(*folders):
    return [name for folder in folders if os.path.isdir(folder)
            for name in os.listdir(folder) if name.endswith(".tmp")]


@pytest.mark.parametrize("script, sig", [("eval.py", signal.SIGTERM), ("plot.py", signal.SIGINT),
                                         ("classify.py", signal.SIGTERM),
                                         ("data_maker.py", signal.SIGINT)])
def test_signal_leaves_no_partial_output_and_earlier_outputs_intact(tmp_path, mnist_dir, script,
                                                                    sig):
    images, logs = tmp_path / "images", tmp_path / "logs"
    images.mkdir()
    logs.mkdir()
    earlier = {logs / "eval.json": "{}", logs / "plot.json": "{}", logs / "classify.json": "{}",
               images / "latent.png": "old", images / "eval_samples.png": "old"}
    for file, text in earlier.items():
        file.write_text(text)
    if script == "data_maker.py":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        split = data_dir / "mnist_split.npz"
        split.write_bytes(b"an earlier split")
        args = ["--data_dir", str(data_dir), "--logs_dir", str(logs), "--source",
                os.path.join(ROOT, "data", "mnist")]
        watched = [str(data_dir)]
        earlier[split] = "an earlier split"
    else:
        labels = {"classify.py": "clustering"}.get(script, "none")
        cfg = {"labels": labels, "encoder": "deterministic"} if labels != "none" else {}
        # (classify.py labels the clusters with the model's 59,000 training images: time to stop it)
        path = tiny_checkpoint(tmp_path, **cfg, **({"N_train": 59000} if cfg else {}))
        args = ["--checkpoint", path, "--data_dir", mnist_dir, "--logs_dir", str(logs)]
        if script != "classify.py":
            args += ["--images_dir", str(images)]
        if script == "eval.py":
            args += ["--N_gen", "3000"]
        watched = [str(images), str(logs)]
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script)] + args, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if script == "classify.py":  # its one output is written at the end: stop it at work
        wait_for(lambda: "classifying with" in (logs / "classify.log").read_text()
                 if (logs / "classify.log").exists() else False, proc)
    else:  # stop it once it has written some outputs (still under temporary names)
        wait_for(lambda: temporaries(*watched), proc)
    code, stderr = interrupt(proc, sig, script)
    assert code == (143 if sig == signal.SIGTERM else 130)
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: " if sig == signal.SIGTERM else "interrupted"), stderr
    assert not temporaries(*watched, str(tmp_path))
    for file, text in earlier.items():
        assert file.read_text() == text, file
    new = set(os.listdir(images)) - {"latent.png", "eval_samples.png"}
    assert not new, new  # none of the new figures appeared


# ---- 4. a file-size or memory limit hit during eval or training ------------------------------
def test_size_or_memory_limit_is_one_line_and_nothing_is_half_written(tmp_path, mnist_dir,
                                                                      monkeypatch, capsys):
    path = tiny_checkpoint(tmp_path)
    before = earlier_result(tmp_path)
    # 8000 sigmas: eval.log grows past the limit (a line per sigma) after the sample grid
    # is written; the figures alone are far smaller
    args = QUICK + ["--sigma_num", "8000", "--checkpoint", path, "--data_dir", mnist_dir] \
        + run_dirs(tmp_path)
    with file_size_limit(300_000):
        code, stderr = cli(monkeypatch, capsys, evaluate, args, "eval.py")
    assert code == 2
    assert error_line(stderr) == (f"error: cannot write the log {tmp_path}/run/logs/eval.log: "
                                  "File too large; make room there or choose another logs "
                                  "folder")
    assert os.listdir(tmp_path / "run/images") == []  # not even the sample grid, written before
    assert before.read_text() == '{"ll_mean": 123.0}'

    def no_memory(*a, **kw):
        raise MemoryError("Unable to allocate 7.45 GiB for an array")
    monkeypatch.setattr(evaluate, "parzen_log_likelihood", no_memory)
    code, stderr = cli(monkeypatch, capsys, evaluate, args, "eval.py")
    assert code == 1
    line = error_line(stderr)
    assert line.startswith("error: out of memory (Unable to allocate 7.45 GiB")
    assert "none of its outputs were written" in line and "ulimit -v" in line
    assert os.listdir(tmp_path / "run/images") == [] and before.read_text() == '{"ll_mean": 123.0}'

    train_args = TINY + ["--n_epochs", "2", "--data_dir", mnist_dir] + run_dirs(tmp_path, "t")
    real_step, calls = train.LikelihoodAAE.step, {"n": 0}

    def step_out_of_memory(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 6:  # in epoch 1
            raise MemoryError
        return real_step(self, *a, **kw)
    monkeypatch.setattr(train.LikelihoodAAE, "step", step_out_of_memory)
    code, stderr = cli(monkeypatch, capsys, train, train_args)
    assert code == 1 and error_line(stderr).startswith("error: out of memory (MemoryError)")
    meta, _ = checkpoint.load(str(tmp_path / "t/model/last.npz"))
    assert meta["epoch"] == 1  # epoch 0's outputs whole, nothing of epoch 1
    assert sorted(os.listdir(tmp_path / "t/model")) == ["last.npz"]


# ---- 5. hostile or odd checkpoints -----------------------------------------------------------
class RunsCode:
    """An object that creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def forged_header_npz(path, shape):
    """An .npz whose one array declares ``shape`` but stores 16 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("net/encoder/model.0.weight.npy", header.getvalue() + bytes(16))


def rewrite(path, change):
    """The checkpoint ``path`` with ``change(arrays)`` applied, saved as written by np.savez."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    np.savez(path, **arrays)


def cast_all(dtype):
    def change(arrays):
        for key in arrays:
            if key.startswith("net/"):
                arrays[key] = arrays[key].astype(dtype)
    return change


def set_first(value):
    def change(arrays):
        arrays["net/decoder/model.0.weight"][0, 0] = value
    return change


def object_array(marker):
    def change(arrays):
        arrays["net/encoder/model.0.weight"] = np.array([RunsCode(marker)], dtype=object)
    return change


def last_bias_a_scalar(arrays):
    last = max(int(k.split(".")[1]) for k in arrays if k.startswith("net/decoder/model."))
    arrays[f"net/decoder/model.{last}.bias"] = np.array(1, np.float32)


def another_family(arrays):  # a classifier's weights under the likelihood model's record
    for key in [k for k in arrays if k.startswith("net/decoder/")]:
        del arrays[key]


@pytest.mark.parametrize("kind, words", [
    ("object array", "net/encoder/model.0.weight holds Python objects, which only unpickling"),
    ("raw pickle", "is not an .npz checkpoint of this project (for a pickled checkpoint"),
    ("pickle without opt-in", "is a pickle file, and loading a pickle can run any code it "
                              "contains; if you trust where it came from, pass --trust_pickle"),
    ("huge shape", "net/encoder/model.0.weight declares shape [1000000000000] (4000000000000 "
                   "bytes) but stores 16 bytes: a damaged or forged file"),
    ("huge total", "GB of arrays, more than the"),
    ("nan", "net/decoder/model.0.weight holds 1 NaN or infinite number(s): the model diverged"),
    ("inf", "net/decoder/model.0.weight holds 1 NaN or infinite number(s)"),
    ("float16", "holds float16 numbers, the model's are float32: not a checkpoint written by "
                "this project"),
    ("int32", "holds int32 numbers, the model's are float32"),
    ("another family", "does not fit this model (net/decoder/model.0.weight missing"),
    ("scalar bias", "does not fit this model (net/encoder/model.0.weight has shape [784, 16]"),
])
def test_hostile_or_odd_checkpoint_is_refused_naming_file_and_what_it_is(tmp_path, kind, words,
                                                                        mnist_dir, monkeypatch):
    marker = tmp_path / "code_ran"
    path = tiny_checkpoint(tmp_path)
    if kind == "raw pickle":
        with open(path, "wb") as f:
            pickle.dump({"encoder": RunsCode(str(marker))}, f)
    elif kind == "pickle without opt-in":
        path = str(tmp_path / "model199.pkl")
        with open(path, "wb") as f:
            pickle.dump({"encoder": RunsCode(str(marker))}, f)
    elif kind == "huge shape":
        forged_header_npz(path, (10**12,))
    elif kind == "huge total":
        monkeypatch.setattr(checkpoint, "_machine_memory", lambda: 1000)
    else:
        rewrite(path, {"object array": object_array(str(marker)), "nan": set_first(np.nan),
                       "inf": set_first(-np.inf), "float16": cast_all(np.float16),
                       "int32": cast_all(np.int32), "another family": another_family,
                       "scalar bias": last_bias_a_scalar}[kind])
    logs, images = str(tmp_path / "run" / "logs"), str(tmp_path / "run" / "images")
    for script in (evaluate, classify, plot):  # the one loader of all three
        outputs = ["--logs_dir", logs] + (["--images_dir", images] if script is not classify
                                          else [])
        with pytest.raises(UserError) as err:
            script.main(["--N_test", "100", "--checkpoint", path, "--data_dir", mnist_dir] + outputs)
        message = str(err.value)
        assert path in message and words in message, message
        assert "\n" not in message
    assert not marker.exists()  # no code from the file ran
    assert not (tmp_path / "run" / "logs" / "eval.json").exists()


def test_hostile_checkpoint_on_the_command_line_is_one_line(tmp_path, mnist_dir):
    path = tiny_checkpoint(tmp_path)
    forged_header_npz(path, (10**12,))
    for script in ("eval.py", "classify.py"):
        proc = run_script(script, ["--checkpoint", path, "--data_dir", mnist_dir], cwd=tmp_path,
                          OMP_NUM_THREADS="1")
        assert proc.returncode == 2
        assert_one_line_error(proc, path, "declares shape [1000000000000]")


# ---- 6. the environment --------------------------------------------------------------------
def test_odd_environment_gets_a_fallback_or_a_one_line_error(tmp_path, mnist_dir, monkeypatch):
    for threads in ("abc", "0"):
        proc = run_script("eval.py", ["--checkpoint", str(tmp_path)], cwd=tmp_path,
                          OMP_NUM_THREADS=threads)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 2, proc.stderr  # no complaint of OpenMP's own
        assert lines[0].startswith(f"warning: OMP_NUM_THREADS={threads!r} is not a positive "
                                   "whole number; using ")
        assert lines[1].startswith("error: checkpoint") and "is a folder" in lines[1]

    import paddle
    if not (paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0):
        with pytest.raises(UserError, match="--device gpu: this Paddle has no usable GPU"):
            evaluate.main(["--checkpoint", tiny_checkpoint(tmp_path), "--device", "gpu"])

    # a read-only working folder, as the system reports it (root may write anywhere, so the
    # refusal is simulated where the folders are made)
    monkeypatch.chdir(tmp_path)

    def read_only(path, *a, **kw):
        raise OSError(30, os.strerror(30), path)
    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(UserError, match=r"^model: cannot create the folder \(Read-only file "
                                        r"system\); choose another --model_dir$"):
        train.main(TINY + ["--n_epochs", "1", "--data_dir", mnist_dir])
    assert not os.path.exists(tmp_path / "model")
