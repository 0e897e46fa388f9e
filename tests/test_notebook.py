"""AAE_paddle.ipynb: committed without outputs, and runs headless end to end on a tiny config.

The notebook reads its sizes and folders from AAE_NB_* environment variables; here they point
every output into tmp_path and the data split at the session's split, so nothing is written into
the repository.
"""
import json
import math
import os
import re

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(ROOT, "AAE_paddle.ipynb")
TINY = {"AAE_NB_EPOCHS": "2", "AAE_NB_N_TRAIN": "300", "AAE_NB_N_GEN": "300",
        "AAE_NB_N_VALID": "200", "AAE_NB_N_TEST": "200", "AAE_NB_SEED": "0"}
LL_LINE = re.compile(r"LL = (\S+) ± (\S+) \(sigma = (\S+)\)")


def printed(nb):
    """What the executed notebook printed to stdout (the log lines go to stderr)."""
    return "\n".join(out["text"] for cell in nb.cells for out in cell.get("outputs", [])
                     if out["output_type"] == "stream" and out["name"] == "stdout")


def test_committed_notebook_is_small_and_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert os.path.getsize(NOTEBOOK) < 50_000
    # utils.cpu_env must be imported before paddle
    setup = next(c.source for c in code_cells if "import paddle" in c.source)
    assert setup.index("import utils.cpu_env") < setup.index("import paddle")


def test_notebook_runs_on_a_tiny_config(tmp_path, mnist_dir, monkeypatch):
    out_dir = tmp_path / "notebook_run"
    repo_out = os.path.join(ROOT, "notebook_run")
    repo_out_before = os.path.exists(repo_out)
    env = dict(TINY, AAE_NB_OUT=str(out_dir), AAE_NB_DATA_DIR=mnist_dir,
               # stands in for the shipped model/model199.npz: the checkpoint the notebook trains
               AAE_NB_PRETRAINED=str(out_dir / "model" / "model1.npz"),
               IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter_runtime"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": ROOT}})
    client.execute()  # raises CellExecutionError if any cell fails

    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out["output_type"] == "error"]
    assert errors == []
    for name in ["images/epoch0.png", "images/epoch1.png", "images/loss_curve.png",
                 "images/sigma_cv.png", "images/eval_samples.png", "model/model1.npz",
                 "logs/train_config.json", "logs/eval.json", "logs/data_maker.log",
                 "pretrained/images/eval_samples.png", "pretrained/logs/eval.json"]:
        assert (out_dir / name).is_file(), name
    assert os.path.exists(repo_out) == repo_out_before, "the notebook wrote into the repository"

    # the environment variables were honoured
    train_cfg = json.loads((out_dir / "logs/train_config.json").read_text())
    assert train_cfg["n_epochs"] == 2 and train_cfg["N_train"] == 300
    result = json.loads((out_dir / "logs/eval.json").read_text())
    assert (result["n_gen"], result["n_valid"], result["n_test"]) == (300, 200, 200)
    assert math.isfinite(result["ll_mean"]) and result["ll_se"] > 0

    # the LL line is printed, agrees with eval.json, and is finite; likewise for the pretrained cell
    lines = LL_LINE.findall(printed(nb))
    assert len(lines) == 2, lines
    ll_mean, ll_se, sigma = (float(v) for v in lines[0])
    assert math.isfinite(ll_mean) and ll_se > 0
    assert ll_mean == pytest.approx(result["ll_mean"], abs=0.006)
    assert sigma == pytest.approx(result["sigma"], abs=1e-4)
    pretrained = json.loads((out_dir / "pretrained/logs/eval.json").read_text())
    assert float(lines[1][0]) == pytest.approx(pretrained["ll_mean"], abs=0.006)
    # same checkpoint, same seed and sizes: the same figure
    assert pretrained["ll_mean"] == pytest.approx(result["ll_mean"], rel=1e-6)

    # the pictures are shown inline: two sample grids, the loss curve, the sigma curve and the
    # pretrained model's samples
    shown = [out for cell in nb.cells for out in cell.get("outputs", [])
             if "image/png" in out.get("data", {})]
    assert len(shown) == 5
