"""The deployment path: pictures made MNIST-like (utils/digits.py), predict.py, export_model.py,
infer.py (Paddle Inference agrees with the dynamic networks), hubconf.py, and the one-line
refusals of bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import export_model
import infer
import predict
from eval import generate, load_model
from utils import deploy
from utils.digits import SIDE, load_digit, mnist_like
from utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "images", "mnist_test_0.png")
SHIPPED = os.path.join(ROOT, "model", "model199.npz")
CLUSTERS = os.path.join(ROOT, "model", "cluster_16_model99.npz")
SEMI = os.path.join(ROOT, "model", "semi_100_model99.npz")
TOLERANCE = 1e-4  # predict.py against infer.py (the bound; measured ~1e-6)


@pytest.fixture(scope="module")
def lite_split(tmp_path_factory):
    """The TIPC lite split (300 / 100 / 100 images), made from test_tipc/lite_data."""
    sys.path.insert(0, os.path.join(ROOT, "test_tipc"))
    import make_lite_data
    folder = tmp_path_factory.mktemp("lite")
    make_lite_data.make_lite_split(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """model199 and cluster_16 exported once for the module."""
    base = tmp_path_factory.mktemp("exported")
    folders = {}
    for name, path in (("aae", SHIPPED), ("cluster_16", CLUSTERS)):
        folders[name] = str(base / name)
        export_model.main(["--checkpoint", path, "--save_dir", folders[name]])
    return folders


def cli(script, *args):
    """(exit code, stdout, stderr) of a script run as a command."""
    done = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return done.returncode, done.stdout, done.stderr


# ---- pictures ---------------------------------------------------------------------------
def test_demo_digit_is_the_mnist_test_image(lite_split):
    """images/mnist_test_0.png is test image 0 of MNIST (a 7), read back exactly."""
    from data_maker import read_mnist
    arrays, _, _ = read_mnist(os.path.join(ROOT, "data", "mnist"))
    images, labels = arrays["test"]
    assert labels[0] == 7
    np.testing.assert_array_equal(load_digit(DEMO)[0], images[0].astype(np.float32) / 255)


def test_any_picture_becomes_mnist_like():
    """A large colour picture, dark ink on white, comes out as the digit it shows: white on
    black, brightest pixel 1, centred, close to the MNIST digit it was drawn from."""
    digit = load_digit(DEMO)[0].reshape(SIDE, SIDE)
    ink = Image.fromarray((255 - digit * 255).astype(np.uint8)).resize((150, 200))
    photo = Image.merge("RGB", [ink, ink, ink])
    x = mnist_like(np.asarray(photo.convert("L"), np.float32) / 255).reshape(SIDE, SIDE)
    assert x.max() == pytest.approx(1.0) and x.min() == 0.0
    assert np.median(np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])) == 0.0
    ys, xs = np.indices(x.shape)
    assert abs((ys * x).sum() / x.sum() - SIDE / 2) < 1.5
    assert abs((xs * x).sum() / x.sum() - SIDE / 2) < 1.5
    assert np.corrcoef(x.ravel(), digit.ravel())[0, 1] > 0.7


def test_transparent_drawing_uses_its_alpha(tmp_path):
    digit = load_digit(DEMO)[0].reshape(SIDE, SIDE)
    rgba = np.zeros((SIDE * 3, SIDE * 3, 4), np.uint8)
    rgba[..., 3] = np.kron(digit, np.ones((3, 3))) * 255  # black ink, drawn by its alpha
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawn.png")
    x = load_digit(str(tmp_path / "drawn.png"))[0]
    assert x.max() == pytest.approx(1.0) and np.corrcoef(x, digit.ravel())[0, 1] > 0.7


@pytest.mark.parametrize("content, words", [
    (b"not an image at all", "not an image"),
    (None, "not found"),
])
def test_bad_pictures_are_refused(tmp_path, content, words):
    path = tmp_path / "digit.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        load_digit(str(path))


def test_blank_and_truncated_pictures_are_refused(tmp_path):
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    with pytest.raises(UserError, match="no digit"):
        load_digit(str(tmp_path / "blank.png"))
    Image.open(DEMO).convert("RGB").resize((200, 200)).save(tmp_path / "big.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "big.jpg").read_bytes()[:300])
    with pytest.raises(UserError, match="--image"):
        load_digit(str(tmp_path / "cut.jpg"))


# ---- predict.py, export_model.py, infer.py -----------------------------------------------
@pytest.mark.parametrize("name", ["aae", "cluster_16"])
def test_infer_agrees_with_predict(exported, tmp_path, name):
    """Paddle Inference on the exported folder gives predict.py's code, q(y|x) and
    reconstruction to 1e-4, and the same printed prediction."""
    path = SHIPPED if name == "aae" else CLUSTERS
    dynamic = predict.main(["--checkpoint", path, "--image", DEMO, "--output_dir",
                            str(tmp_path / "p"), "--save_npy", str(tmp_path / "p.npy")])
    static = infer.main(["--model_dir", exported[name], "--image", DEMO, "--output_dir",
                         str(tmp_path / "i"), "--save_npy", str(tmp_path / "i.npy")])
    for key in ("code", "recon") + (("probs",) if name == "cluster_16" else ()):
        assert dynamic[key].shape == static[key].shape
        assert np.abs(dynamic[key] - static[key]).max() < TOLERANCE, key
    assert np.abs(np.load(tmp_path / "p.npy") - np.load(tmp_path / "i.npy")).max() < TOLERANCE
    assert dynamic.get("prediction") == static.get("prediction")
    for picture in (dynamic["picture"], static["picture"]):
        with Image.open(picture) as image:  # input | reconstruction, 4x enlarged
            assert image.size == (4 * (2 * SIDE + 6), 4 * (SIDE + 4))
    if name == "cluster_16":
        assert dynamic["prediction"].startswith("cluster ") and "label 7" in dynamic["prediction"]


def test_export_describes_a_dynamic_batch(exported):
    spec = deploy.read_spec(exported["cluster_16"])
    assert set(spec["models"]) == {"encoder", "classifier", "decoder"}
    assert spec["models"]["decoder"]["inputs"][1]["shape"] == [-1, 16]
    assert len(spec["cluster_labels"]) == 16
    aae = deploy.read_spec(exported["aae"])
    assert set(aae["models"]) == {"encoder", "decoder"}
    assert aae["models"]["encoder"]["inputs"][0]["shape"] == [-1, 784]
    predictors = infer.load_predictors(exported["aae"], aae)
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    for n in (1, 5):  # any batch size through the same predictor
        out = infer.infer(predictors, x[:n], aae, exported["aae"])
        assert out["code"].shape == (n, 8) and out["recon"].shape == (n, 784)


def test_semi_supervised_model_names_the_digit(tmp_path):
    result = predict.main(["--checkpoint", SEMI, "--image", DEMO, "--output_dir",
                           str(tmp_path)])
    assert result["prediction"].startswith("class 7, probability")
    assert result["probs"].shape == (1, 10)


def test_samples_are_eval_samples(tmp_path):
    result = predict.main(["--samples", "12", "--output_dir", str(tmp_path), "--save_npy",
                           str(tmp_path / "s.npy")])
    nets, train_cfg, _ = load_model(SHIPPED)
    np.testing.assert_allclose(result["samples"], generate(nets["decoder"], train_cfg, 12, 0),
                               atol=1e-6)
    assert np.load(tmp_path / "s.npy").shape == (12, 784)
    with Image.open(tmp_path / "predict_samples.png") as image:  # 10 per row, 2 rows
        assert image.size == (4 * (10 * (SIDE + 2) + 2), 4 * (2 * (SIDE + 2) + 2))


def test_infer_refuses_folders_of_another_model(exported, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(exported["cluster_16"], mixed)
    for suffix in (".json", ".pdiparams"):  # the likelihood model's decoder put in
        shutil.copy(os.path.join(exported["aae"], "decoder" + suffix), mixed)
    with pytest.raises(UserError, match="another export"):
        infer.main(["--model_dir", str(mixed), "--image", DEMO, "--output_dir",
                    str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    os.remove(mixed / "decoder.pdiparams")
    with pytest.raises(UserError, match="missing inference file decoder.pdiparams"):
        infer.main(["--model_dir", str(mixed), "--image", DEMO])
    os.remove(mixed / deploy.SPEC_FILE)
    with pytest.raises(UserError, match="not a folder written by export_model.py"):
        infer.main(["--model_dir", str(mixed), "--image", DEMO])
    spec = dict(deploy.read_spec(exported["aae"]), format="something-else")
    (mixed / deploy.SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(UserError, match="format"):
        infer.main(["--model_dir", str(mixed), "--image", DEMO])


def test_export_refuses_and_leaves_nothing(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="--save_dir .* is a file"):
        export_model.main(["--save_dir", str(tmp_path / "a_file")])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files"):
        export_model.main(["--save_dir", str(tmp_path / "busy")])
    with pytest.raises(UserError, match="not found"):
        export_model.main(["--checkpoint", str(tmp_path / "none.npz"), "--save_dir",
                           str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
    assert sorted(os.listdir(tmp_path)) == ["a_file", "busy"]


@pytest.mark.parametrize("script, args, words", [
    ("predict.py", ["--image", "README.md"], "--image README.md is not an image"),
    ("predict.py", [], "give --image FILE"),
    ("predict.py", ["--samples", "0"], "--samples must be between"),
    ("predict.py", ["--image", DEMO, "--save_npy", "out.txt"], "--save_npy out.txt"),
    ("infer.py", ["--model_dir", "model", "--image", DEMO], "--model_dir model holds no"),
    ("export_model.py", ["--checkpoint", "README.md"], "README.md"),
])
def test_commands_refuse_bad_input_in_one_line(tmp_path, script, args, words):
    out = tmp_path / "out"
    code, stdout, stderr = cli(script, *args, *(["--output_dir", str(out)]
                                                if script != "export_model.py" else
                                                ["--save_dir", str(out)]))
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(lines) == 1 and words in lines[0], stderr
    assert "Traceback" not in stderr and not out.exists()


# ---- paddle.hub -------------------------------------------------------------------------
def test_hub_entries_load_the_shipped_models():
    import paddle
    entries = paddle.hub.list(ROOT, source="local")
    assert entries == ["aae", "cluster_16", "cluster_30", "semi_100", "semi_1000"]
    model = paddle.hub.load(ROOT, "aae", source="local", pretrained=True)
    assert isinstance(model, paddle.nn.Layer)
    code, recon = model(paddle.to_tensor(load_digit(DEMO)))
    expected = predict.run_layers(export_model.deployed_layers(*load_model(SHIPPED)[:2],
                                                               SHIPPED), load_digit(DEMO))
    np.testing.assert_allclose(code.numpy(), expected["code"], atol=1e-6)
    np.testing.assert_allclose(recon.numpy(), expected["recon"], atol=1e-6)
    fresh = paddle.hub.load(ROOT, "semi_100", source="local", pretrained=False)
    code, probs, recon = fresh(paddle.to_tensor(load_digit(DEMO)))
    assert probs.shape == [1, 10] and recon.shape == [1, 784]


# ---- the READMEs ------------------------------------------------------------------------
@pytest.mark.parametrize("readme", ["README.md", "README_cn.md"])
def test_readmes_show_the_deployment_path(readme):
    with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
        text = f.read()
    assert len(text) < 20000, len(text)
    assert "python predict.py --image images/mnist_test_0.png" in text
    for command in ("export_model.py", "infer.py", "test_train_inference_python.sh",
                    "paddle.hub.load"):
        assert command in text, command
    top = text[:text.index("## ")]  # before the first section: the pictures
    for figure in ("docs/figures/predict_mnist_test_0.png", "docs/figures/predict_samples.png"):
        assert f"]({figure})" in top and os.path.isfile(os.path.join(ROOT, figure))


_SAME_STEP_AFTER_INFERENCE = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import infer, train
from utils import checkpoint, deploy
tiny = ["--N", "64", "--N_train", "1000", "--batch_size", "50", "--sample_every", "100",
        "--n_epochs", "2", "--data_dir", {data!r}]
def weights(name):
    out = {tmp!r} + "/" + name
    train.main(tiny + ["--model_dir", out + "/model", "--images_dir", out + "/images",
                       "--logs_dir", out + "/logs"])
    return checkpoint.load(out + "/model/model1.npz")[1]
before = weights("before")
spec = deploy.read_spec({folder!r})
predictors = infer.load_predictors({folder!r}, spec, threads=1)
infer.infer(predictors, np.zeros((1, 784), np.float32), spec, {folder!r})
after = weights("after")
print("same" if all(np.array_equal(before[k], after[k]) for k in before) else "differs")
"""


def test_inference_leaves_the_process_threads_as_they_were(tmp_path, exported, mnist_dir):
    """A one-thread predictor built and run in a two-thread process (a notebook, the test
    suite) does not leave the process on one thread: a training run after it computes the
    same weights, bit for bit, as one before it (Paddle Inference sets the process-wide thread
    count; with one thread instead of two some sums come out in another order)."""
    code = _SAME_STEP_AFTER_INFERENCE.format(root=ROOT, data=mnist_dir, tmp=str(tmp_path),
                                             folder=exported["aae"])
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "same"
