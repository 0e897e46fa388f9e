"""test_tipc/: the lite data, the chain train -> eval -> export -> infer -> compare with one
results line per stage, and train.log's throughput lines (TIPC's benchmark fields)."""
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from data_maker import read_mnist
from utils.run import ThroughputLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "test_tipc", "test_train_inference_python.sh")
CONFIG = os.path.join(ROOT, "test_tipc", "configs", "aae", "train_infer_python.txt")
STAGES = ("make_lite_data.py", "train.py", "eval.py", "export_model.py", "infer.py",
          "predict.py", "compare_outputs.py")
FIELDS = ("epoch", "iter", "recon_loss", "avg_reader_cost", "avg_batch_cost", "avg_samples",
          "ips")


def run_chain(tmp_path, config=CONFIG):
    done = subprocess.run(["bash", SCRIPT, config, "lite_train_lite_infer"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TIPC_OUTPUT": str(tmp_path),
                               "OMP_NUM_THREADS": "1"})
    folder = tmp_path / "aae" / "lite_train_lite_infer"
    with open(folder / "results_python.log") as f:
        return done, folder, f.read().splitlines()


def test_lite_data_is_mnist_idx():
    """The shipped lite data: MNIST's idx format (read by data_maker.py's own checks), a few
    hundred original digits of every class."""
    arrays, _, verified = read_mnist(os.path.join(ROOT, "test_tipc", "lite_data"),
                                     allow_checksum_mismatch=True, counts=None)
    assert not verified
    assert [len(arrays[s][0]) for s in ("train", "test")] == [400, 100]
    originals, _, _ = read_mnist(os.path.join(ROOT, "data", "mnist"))
    train = {row.tobytes() for row in originals["train"][0]}
    assert all(row.tobytes() in train for row in arrays["train"][0])
    assert set(arrays["train"][1].tolist()) == set(range(10))


def test_chain_passes_every_stage(tmp_path):
    done, folder, results = run_chain(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(results) == len(STAGES)
    for line, stage in zip(results, STAGES):
        assert line.startswith("Run successfully with command - aae - ") and stage in line
    compared = (folder / "compare.log").read_text()
    difference = float(re.search(r"max \|difference\| = (\S+)", compared).group(1))
    assert difference <= 1e-4
    throughput = [line for line in (folder / "logs" / "train.log").read_text().splitlines()
                  if "ips:" in line]
    assert len(throughput) == 3  # 2 epochs of 30 steps, a line every 20 steps
    for field in FIELDS:
        assert f"{field}: " in throughput[0], field
    assert "iter: [20/30]" in throughput[0] and "avg_samples: 10.0" in throughput[0]


def test_chain_reports_a_failed_stage(tmp_path):
    config = tmp_path / "train_infer_python.txt"
    text = open(CONFIG).read().replace("--image:./images/mnist_test_0.png",
                                       "--image:./images/no_such_digit.png")
    config.write_text(text)
    done, folder, results = run_chain(tmp_path / "out", str(config))
    assert done.returncode != 0
    failed = [line for line in results if line.startswith("Run failed")]
    assert len(failed) == 3  # infer, predict and so the comparison
    assert "infer.py" in failed[0] and "predict.py" in failed[1]
    assert sum(line.startswith("Run successfully") for line in results) == 4


def test_throughput_line_every_interval():
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    log = logging.getLogger("aae.test_throughput")
    log.addHandler(Collect())
    log.setLevel(logging.INFO)
    meter = ThroughputLog(log, every=3, n_epochs=2, batches_per_epoch=5)
    for batch in range(5):
        meter.begin()
        meter.batch_ready()
        meter.step_done(0, batch, {"recon_loss": 0.5, "d_loss": 1.25}, rows=8)
    assert len(records) == 1
    line = records[0]
    assert line.startswith("epoch: [0/2], iter: [3/5], recon_loss: 0.500000, d_loss: 1.250000")
    values = dict(re.findall(r"(avg_\w+|ips): ([\d.]+)", line))
    assert float(values["avg_samples"]) == 8.0
    assert float(values["avg_batch_cost"]) >= float(values["avg_reader_cost"]) >= 0
    assert float(values["ips"]) > 0
