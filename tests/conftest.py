import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils.cpu_env  # noqa: F401  (must precede paddle)

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: needs the full dataset or minutes of compute")


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """The real 59k/1k/10k MNIST split, made once per test session outside the repo."""
    import data_maker
    folder = tmp_path_factory.mktemp("mnist_split")
    data_maker.main(["--data_dir", str(folder), "--source", os.path.join(ROOT, "data", "mnist"),
                     "--logs_dir", str(folder / "logs")])
    return str(folder)


def run_dirs(tmp_path, name="run"):
    """--model_dir/--images_dir/--logs_dir options pointing into tmp_path."""
    base = tmp_path / name
    return ["--model_dir", str(base / "model"), "--images_dir", str(base / "images"),
            "--logs_dir", str(base / "logs")]


def interrupt(proc, sig, what):
    """Send ``sig`` to the running script ``proc`` and wait for it: (exit code, stderr), with
    no traceback; the test is skipped if ``what`` had finished before the signal arrived."""
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip(f"{what} finished before the signal arrived")
    assert "Traceback" not in stderr
    return proc.returncode, stderr
