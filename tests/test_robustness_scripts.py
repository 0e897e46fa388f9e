"""eval.py, check_parzen.py, classify.py, plot.py and data_maker.py on bad input: every
refusal is one line naming the file or option and what to do, before any work where it can
be, with nothing half-written and no earlier result overwritten."""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest

import check_parzen
import classify
import config
import data_maker
import eval as evaluate
import network
import plot
from conftest import ROOT, interrupt, run_dirs
from families import build_networks
from utils import checkpoint, errors, plots
from utils.errors import UserError, ensure_folder
from utils.log import write_result_json
from utils.paddle_save_image import save_image

QUICK = ["--N_gen", "300", "--N_valid", "100", "--N_test", "100"]
LONG_NAME = "x" * 300  # longer than any file system's name limit (255 bytes on Linux)


def tiny_checkpoint(tmp_path, name="m.npz", in_dim=784, **settings):
    cfg = config.Config(N=16, **settings).validate()
    path = str(tmp_path / name)
    checkpoint.save(path, build_networks(cfg, in_dim), {"config": cfg.to_dict(), "epoch": 0})
    return path


def earlier_result(tmp_path, name="eval.json"):
    """A result file of an earlier run, which a refused run must leave as it is."""
    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / name).write_text('{"ll_mean": 123.0}')
    return logs / name


@contextmanager
def file_size_limit(n_bytes):
    """Writes beyond ``n_bytes`` fail as on a full disk (EFBIG; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def run_script(script, args, cwd=ROOT, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=environment)


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ---- 1. impossible numbers, refused before any work -------------------------------------
@pytest.mark.parametrize("argv,message", [
    (["--sigma", "1e200"], r"--sigma must be between 1e-15 and 1e15, got 1e\+200"),
    (["--sigma", "1e-200"], r"--sigma must be between 1e-15 and 1e15, got 1e-200"),
    (["--sigma", "1e-160"], r"--sigma must be between"),  # once gave LL = nan, exit 0
    (["--sigma_min", "-400"], r"--sigma_min must be between -15 and 15 .*got -400"),
    (["--sigma_max", "400"], r"--sigma_max must be between -15 and 15 .*got 400"),
    (["--N_gen", str(10**12)], r"--N_gen 1000000000000: the run would need about .* of "
                               r"memory, more than the .* of this machine"),
    (["--sigma_num", str(10**12)], r"--sigma_num 1000000000000: the run would need about"),
    (["--seed", "99999999999999999999"], r"--seed must be at most 9223372036854775807"),
    (["--checkpoint", ""], r"--checkpoint is empty: give the path of a checkpoint file"),
    (["--save_samples", ""], r"--save_samples is empty"),
    (["--images_dir", ""], r"--images_dir is empty"),
])
def test_impossible_eval_numbers_are_refused_before_any_work(tmp_path, mnist_dir, argv,
                                                            message):
    path = tiny_checkpoint(tmp_path)
    before = earlier_result(tmp_path)
    args = ["--checkpoint", path] if "--checkpoint" not in argv else []
    with pytest.raises(UserError, match=message):
        evaluate.main(args + ["--data_dir", mnist_dir] + run_dirs(tmp_path) + argv)
    assert before.read_text() == '{"ll_mean": 123.0}'
    assert not (tmp_path / "run" / "images").exists()  # refused before any work


@pytest.mark.parametrize("argv,message", [
    (["--N", str(10**12)], r"--N 1000000000000: the run would need about"),
    (["--latent_dim", str(10**10)], r"--latent_dim 10000000000: the run would need about"),
    (["--seed", str(2**63)], r"--seed must be at most 9223372036854775807"),
    (["--model_dir", " "], r"--model_dir is empty"),
])
def test_impossible_training_numbers_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        config.parse_config("train.py", config.TRAIN_KEYS, argv)


def test_largest_accepted_values_still_work():
    cfg = config.resolve({"seed": 2**63 - 1, "sigma": 1e-15, "sigma_min": -15,
                          "sigma_max": 15, "N_gen": 20000})
    assert cfg.seed == 2**63 - 1
    for preset in config.PRESETS:  # every experiment fits
        config.resolve({"preset": preset})


def test_non_finite_log_likelihood_is_refused_and_eval_json_kept(tmp_path, mnist_dir,
                                                                  monkeypatch):
    path = tiny_checkpoint(tmp_path)
    before = earlier_result(tmp_path)
    monkeypatch.setattr(evaluate, "parzen_log_likelihood",
                        lambda x, *a, **kw: np.full(len(x), np.nan))
    with pytest.raises(UserError, match=r"not a finite number \(ll_mean = nan.*eval.json "
                                        r"left as it was"):
        evaluate.main(QUICK + ["--sigma", "0.2", "--checkpoint", path, "--data_dir", mnist_dir]
                      + run_dirs(tmp_path))
    assert before.read_text() == '{"ll_mean": 123.0}'


def test_nan_cross_validation_is_one_line(tmp_path, mnist_dir, monkeypatch):
    path = tiny_checkpoint(tmp_path)
    before = earlier_result(tmp_path)
    real = evaluate.cross_validate_sigma

    def nan_samples(samples, *a, **kw):
        return real(np.full_like(samples, np.nan), *a, **kw)
    monkeypatch.setattr(evaluate, "cross_validate_sigma", nan_samples)
    with pytest.raises(UserError, match=r"cannot choose sigma \(a validation mean"):
        evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir] + run_dirs(tmp_path))
    assert before.read_text() == '{"ll_mean": 123.0}'
    assert not (tmp_path / "run" / "images" / "sigma_cv.png").exists()


def test_nan_samples_are_refused_and_not_saved(tmp_path, mnist_dir, monkeypatch):
    path = tiny_checkpoint(tmp_path)
    monkeypatch.setattr(evaluate, "generate", lambda decoder, cfg, n, *a: np.full((n, 784), np.nan,
                                                                                  np.float32))
    samples = tmp_path / "samples.npy"
    with pytest.raises(UserError, match="pixel values that are not numbers.*diverged"):
        evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir, "--save_samples",
                               str(samples)] + run_dirs(tmp_path))
    assert not samples.exists()


def test_result_json_with_nan_is_refused(tmp_path):
    path = tmp_path / "plot.json"
    write_result_json(str(path), {"a": 1.0}, "fix it")
    with pytest.raises(UserError, match=r"prior_fit.shift = nan, valid_ll\[1\] = inf\): .* left "
                                        r"as it was; fix it"):
        write_result_json(str(path), {"prior_fit": {"shift": float("nan")},
                                      "valid_ll": [1.0, float("inf")]}, "fix it")
    assert json.loads(path.read_text()) == {"a": 1.0}
    assert os.listdir(tmp_path) == ["plot.json"]


# ---- 2. disk and file system --------------------------------------------------------------
def test_full_disk_under_save_samples_is_a_proper_message(tmp_path, mnist_dir):
    path = tiny_checkpoint(tmp_path)
    samples = tmp_path / "out" / "samples.npy"
    with file_size_limit(200_000):  # 300 samples of 784 float32 pixels are 940 kB
        with pytest.raises(UserError) as err:
            evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir,
                                   "--save_samples", str(samples)] + run_dirs(tmp_path))
    message = str(err.value)
    assert "None" not in message
    assert f"cannot write {samples}: File too large" in message
    assert "--save_samples" in message
    assert os.listdir(tmp_path / "out") == []  # no half-written file, no temporary file


def test_image_writers_go_through_atomic_write(tmp_path, monkeypatch):
    """A full disk while a PNG is written: one line, the earlier image kept, no temporary."""
    images = np.random.default_rng(0).random((20, 784))
    grid = str(tmp_path / "grid.png")
    save_image(images, grid)
    earlier = open(grid, "rb").read()
    with file_size_limit(1000):  # the grid is larger
        with pytest.raises(UserError, match=f"cannot write {grid}: File too large"):
            save_image(images[::-1], grid)
    assert open(grid, "rb").read() == earlier

    def disk_full(self, f, *args, **kwargs):
        f.write(b"half a figure")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, "savefig", disk_full)
    curve = str(tmp_path / "sigma_cv.png")
    with pytest.raises(UserError, match=f"cannot write {curve}: No space left on device"):
        plots.plot_sigma_curve([0.1, 0.2], [-1.0, -2.0], 0.1, curve)
    assert sorted(os.listdir(tmp_path)) == ["grid.png"]


def test_too_long_folder_name_is_refused_without_leaving_folders(tmp_path):
    folder = tmp_path / "new" / "deeper" / LONG_NAME / "images"
    with pytest.raises(UserError, match=r"--images_dir: the name 'x{20}\.\.\.x{10}' is 300 "
                                        r"bytes long, the file system allows at most"):
        ensure_folder(str(folder), "--images_dir")
    assert os.listdir(tmp_path) == []


def test_folders_made_before_a_failure_are_removed(tmp_path, monkeypatch):
    """Whatever stops the creation half-way (here the name checked only by the system),
    the folders created on the way are removed again; existing ones are kept."""
    monkeypatch.setattr(errors, "check_path_length", lambda *a, **kw: None)
    (tmp_path / "kept").mkdir()
    with pytest.raises(UserError, match="cannot create the folder .*File name too long.*"
                                        "choose another --logs_dir"):
        ensure_folder(str(tmp_path / "kept" / "a" / "b" / LONG_NAME), "--logs_dir")
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(tmp_path / "kept") == []


def test_eval_refuses_too_long_output_paths_before_work(tmp_path, mnist_dir):
    path = tiny_checkpoint(tmp_path)
    with pytest.raises(UserError, match="--images_dir: the name"):
        evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir, "--images_dir",
                               str(tmp_path / "a" / LONG_NAME), "--logs_dir",
                               str(tmp_path / "logs")])
    with pytest.raises(UserError, match="--save_samples: the name"):
        evaluate.main(QUICK + ["--checkpoint", path, "--data_dir", mnist_dir, "--save_samples",
                               str(tmp_path / "b" / (LONG_NAME[:250] + ".npy"))]
                      + run_dirs(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_data_maker_removes_its_temporary_file_on_sigterm(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "data_maker.py"), "--data_dir",
                             str(data_dir), "--logs_dir", str(tmp_path / "logs"), "--source",
                             os.path.join(ROOT, "data", "mnist")],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(name.endswith(".tmp") for name in os.listdir(data_dir)):
            break
        time.sleep(0.005)
    code, stderr = interrupt(proc, signal.SIGTERM, "data_maker.py")
    assert code == 143
    assert stderr.strip().splitlines()[-1].startswith("error: data_maker.py was terminated")
    assert not [name for name in os.listdir(data_dir) if name.endswith(".tmp")]


def test_data_maker_removes_stale_temporaries_of_its_own(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True)
    dead = int(finished.stdout)  # a process that has ended
    stale = f"{data_maker.SPLIT_FILE}.{dead}.0123abcd.tmp"
    # this process writes none before its clean-up: a file with its id is a killed run's
    # (in a container a new run often gets the id of the one before)
    mine = f"{data_maker.SPLIT_FILE}.{os.getpid()}.4567cdef.tmp"
    other_run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = f"{data_maker.SPLIT_FILE}.{other_run.pid}.89abcdef.tmp"  # a run in progress
        other = "notes.tmp"
        for name in (stale, mine, running, other):
            (tmp_path / name).write_bytes(b"x")
        assert data_maker.remove_stale_temporaries(str(tmp_path)) == sorted([stale, mine])
        assert sorted(os.listdir(tmp_path)) == sorted([running, other])
    finally:
        other_run.kill()
        other_run.wait()


# ---- 3. a damaged split is caught when it is loaded -----------------------------------------
def write_split(data_dir, pixels=9, changes=None):
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 8), ("valid", 4), ("test", 6)):
        arrays[f"x_{part}"] = rng.integers(0, 256, (n, pixels), dtype=np.uint8)
        arrays[f"y_{part}"] = rng.integers(0, 10, n, dtype=np.uint8)
    arrays.update(changes or {})
    meta = {"format_version": 1, "seed": 0, "n_train": 8, "n_valid": 4, "n_test": 6}
    arrays["meta"] = np.array(json.dumps(meta))
    os.makedirs(data_dir, exist_ok=True)
    np.savez(os.path.join(data_dir, data_maker.SPLIT_FILE), **arrays)


@pytest.mark.parametrize("pixels,changes,words", [
    (780, None, "images of 780 pixels are not square"),
    (9, {"y_test": np.array([1, 2, 10, 3, 255, 4], np.uint8)},
     "y_test holds 2 label(s) outside 0..9 (the first: 10 at row 2)"),
    (9, {"y_train": np.full(8, 12, np.uint8)}, "y_train holds 8 label(s) outside 0..9"),
])
def test_damaged_split_is_refused_when_loaded(tmp_path, pixels, changes, words):
    write_split(tmp_path / "data", pixels, changes)
    with pytest.raises(UserError) as err:
        data_maker.load_split(str(tmp_path / "data"))
    assert words in str(err.value) and "python data_maker.py" in str(err.value)


def test_square_split_with_labels_0_to_9_loads(tmp_path):
    write_split(tmp_path / "data", 9)
    assert data_maker.load_split(str(tmp_path / "data"))["x_train"].shape == (8, 9)


# ---- 4. messages that send the user the right way ----------------------------------------
@pytest.mark.parametrize("script", [evaluate, classify, plot])
def test_untrained_preset_hint_names_the_preset(tmp_path, script, mnist_dir):
    with pytest.raises(UserError, match=r"semi_1000/model/model99.npz not found; train one "
                                        r"with python train.py --preset semi_1000$"):
        script.main(["--preset", "semi_1000", "--data_dir", mnist_dir])
    model_dir = str(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"train one with python train.py --preset semi_1000 "
                                        rf"--model_dir {model_dir}$"):
        script.main(["--preset", "semi_1000", "--model_dir", model_dir, "--data_dir", mnist_dir])
    with pytest.raises(UserError, match=r"model/model12345.npz not found; train one with "
                                        r"python train.py$"):
        script.main(["--model_dir", "model", "--load_epoch", "12345", "--data_dir", mnist_dir])


def test_folder_as_checkpoint_is_called_a_folder(tmp_path, mnist_dir):
    tiny_checkpoint(tmp_path, "model7.npz")
    with pytest.raises(UserError, match=rf"checkpoint {tmp_path} is a folder, not a file: give "
                                        r"the path of a checkpoint file \(it holds model7.npz\)"):
        evaluate.main(["--checkpoint", str(tmp_path), "--data_dir", mnist_dir])


def test_classify_names_no_option_it_lacks(tmp_path):
    path = tiny_checkpoint(tmp_path, labels="clustering", encoder="deterministic",
                           latent_dim=2, N_train=1000)
    write_split(tmp_path / "data", 784)  # 8 training images
    with pytest.raises(UserError) as err:
        classify.main(["--checkpoint", path, "--data_dir", str(tmp_path / "data"),
                       "--N_test", "6", "--logs_dir", str(tmp_path / "logs")])
    message = str(err.value)
    assert "--N_train" not in message
    assert "trained on N_train = 1000 images" in message and "holds 8 training images" in message
    assert "--data_dir" in message


@pytest.fixture
def saved_eval(tmp_path):
    """A small split of 784-pixel images, an eval.json and its samples file."""
    write_split(tmp_path / "data", 784)
    logs = tmp_path / "logs"
    logs.mkdir()
    samples = logs / "samples.npy"
    np.save(samples, np.random.default_rng(0).random((5, 784)).astype(np.float32))
    result = {"samples": str(samples), "sigma": 0.2, "n_test": 6, "ll_mean": -1.0}
    (logs / "eval.json").write_text(json.dumps(result))
    return tmp_path, result


@pytest.mark.parametrize("edit,words", [
    (lambda r: r.pop("sigma"), "eval.json lacks sigma: not eval.py's record; run python eval.py"),
    (lambda r: r.update(sigma="abc"), "sigma is 'abc', not a number from 1e-15 to 1e15"),
    (lambda r: r.update(sigma=0.0), "sigma is 0.0, not a number"),
    (lambda r: r.update(n_test=1.5), "n_test is 1.5, not a positive whole number"),
    (lambda r: r.update(n_test=True), "n_test is True, not a positive whole number"),
    (lambda r: r.update(ll_mean=None), "ll_mean is None, not a number"),
    (lambda r: r.update(samples=5), "samples is 5, not a file name"),
    (lambda r: r.update(samples=None), "was written without --save_samples"),
    (lambda r: r.update(n_test=99), "reports 99 test images, "),
    (lambda r: [1, 2], "holds a JSON list, not eval.py's record"),
])
def test_check_parzen_refuses_a_hand_edited_eval_json(saved_eval, edit, words):
    tmp_path, result = saved_eval
    edited = edit(result)
    (tmp_path / "logs" / "eval.json").write_text(json.dumps(
        edited if isinstance(edited, list) else result))
    with pytest.raises(UserError) as err:
        check_parzen.main(["--data_dir", str(tmp_path / "data"), "--logs_dir",
                           str(tmp_path / "logs")])
    assert words in str(err.value)


@pytest.mark.parametrize("content,words", [
    (b"", "cannot be read (it is empty)"),
    (np.zeros((0, 784), np.float32), "holds an array of shape (0, 784)"),
    (np.full((3, 784), np.nan, np.float32), "not finite numbers"),
    (np.array([["a"] * 784]), "holds <U1 values, not pixel values"),
])
def test_check_parzen_refuses_a_bad_samples_file(saved_eval, content, words):
    tmp_path, result = saved_eval
    if isinstance(content, bytes):
        (tmp_path / "logs" / "samples.npy").write_bytes(content)
    else:
        np.save(tmp_path / "logs" / "samples.npy", content)
    with pytest.raises(UserError) as err:
        check_parzen.main(["--data_dir", str(tmp_path / "data"), "--logs_dir",
                           str(tmp_path / "logs")])
    assert words in str(err.value)
    assert not (tmp_path / "logs" / "check_parzen.json").exists()


def test_no_paddle_warnings_on_stderr(tmp_path):
    """Paddle prints two lines about OMP_NUM_THREADS at import when it is above 1, which the
    project sets on purpose, and a UserWarning about ccache: neither reaches stderr, and the
    thread setting is left as it was."""
    proc = run_script("eval.py", ["--checkpoint", str(tmp_path)], OMP_NUM_THREADS="2")
    assert_one_line_error(proc, "is a folder")
    probe = subprocess.run(
        [sys.executable, "-c", "import os, utils.cpu_env, paddle; "
                               "print(os.environ['OMP_NUM_THREADS'])"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert probe.returncode == 0 and probe.stderr == "", probe.stderr
    assert probe.stdout.strip() == "2"


@pytest.mark.parametrize("args,words", [
    (["--sigma", "1e-200"], ["--sigma must be between"]),
    (["--N_gen", str(10**12)], ["--N_gen 1000000000000", "memory"]),
    (["--seed", "99999999999999999999"], ["--seed must be at most"]),
    (["--checkpoint", ""], ["--checkpoint is empty"]),
])
def test_cli_refusals_are_one_line(args, words):
    assert_one_line_error(run_script("eval.py", args, OMP_NUM_THREADS="1"), *words)


# ---- 5. the decoder's output layer is found, not hard-coded ---------------------------------
def test_output_size_does_not_depend_on_the_layer_index(tmp_path, monkeypatch):
    real_stack = network.hidden_stack

    def three_hidden_layers(in_dim, hidden, dropout):
        return real_stack(in_dim, hidden, dropout) + [network.nn.Linear(hidden, hidden),
                                                     network.nn.ReLU()]
    monkeypatch.setattr(network, "hidden_stack", three_hidden_layers)
    path = tiny_checkpoint(tmp_path, in_dim=20)
    nets, _, _ = evaluate.load_model(path)
    assert len(nets["decoder"].model) == 9
    assert nets["decoder"].out_dim == 20
    assert evaluate.saved_output_size(checkpoint.load(path)[1]) == 20
