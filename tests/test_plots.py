"""The figures (utils/plots.py), eval.py's latent scatter and interpolations, train.py's
optional VisualDL log."""
import json
import os
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

import config
import eval as evaluate
import train
from conftest import run_dirs
from network import Encoder
from utils import resume, run
from utils.errors import UserError
from utils.log import read_loss_csv
from utils.plots import (DPI, latent_view, plot_error_curves, plot_image_files,
                         plot_interpolations, plot_latent_scatter, plot_losses,
                         plot_samples_by_epoch, plot_sigma_curve, principal_components,
                         progress_epochs)

TINY = ["--N", "64", "--N_train", "500", "--batch_size", "100"]
FAST_EVAL = ["--N_gen", "200", "--N_valid", "100", "--sigma", "0.2"]


def planar_codes(n=400, dim=8, seed=0):
    """Codes on a 2-d plane in dim-d space, plus their in-plane coordinates: centred,
    uncorrelated in the sample and spread 3 and 1, so those axes are the principal ones."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))  # [dim, 2], orthonormal columns
    raw = rng.normal(size=(n, 2))
    left, _, _ = np.linalg.svd(raw - raw.mean(axis=0), full_matrices=False)
    coords = left * np.sqrt(n) * [3.0, 1.0]  # orthogonal columns of mean 0
    return coords @ basis.T + rng.normal(size=dim), coords


def pairwise_distances(points):
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def png_size(path):
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 0, f"{path} is blank"
    return image.size


# ---- principal components ----------------------------------------------------------------
def test_principal_components_recover_a_plane_up_to_rotation():
    codes, coords = planar_codes()
    points, explained = principal_components(codes)
    assert points.shape == (400, 2)
    # The plane holds all the variance, and the projection is an isometry of it.
    np.testing.assert_allclose(explained.sum(), 1.0, atol=1e-9)
    np.testing.assert_allclose(pairwise_distances(points), pairwise_distances(coords),
                               atol=1e-8)
    np.testing.assert_allclose(explained, [0.9, 0.1], atol=1e-9)  # variances 9 and 1
    # With unequal spreads the axes are the generating directions themselves, up to sign.
    for k in range(2):
        np.testing.assert_allclose(np.abs(points[:, k]), np.abs(coords[:, k]), atol=1e-8)


def test_principal_components_of_degenerate_codes():
    points, explained = principal_components(np.ones((5, 8)))  # no variance at all
    assert np.all(points == 0) and np.all(explained == 0)
    points, explained = principal_components(np.arange(8.0)[None])  # one code: rank 0
    assert points.shape == (1, 2) and np.all(np.isfinite(points))
    line = np.outer(np.arange(6.0), np.ones(8))  # rank 1: the second axis is empty
    points, explained = principal_components(line)
    np.testing.assert_allclose(explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-12)


def test_latent_view_says_what_it_shows():
    codes, _ = planar_codes(n=50)
    labels = np.arange(50) % 10
    points, _, title = latent_view(codes[:, :2], labels)
    np.testing.assert_array_equal(points, codes[:, :2])  # 2-d codes are drawn as they are
    assert "2-d" in title and "principal" not in title
    points, axes, title = latent_view(codes, labels)
    assert "principal components of the 8-d codes" in title and "100% of the variance" in title
    assert axes[0].startswith("PC1") and points.shape == (50, 2)
    points, axes, _ = latent_view(codes[:, :1], labels)
    np.testing.assert_array_equal(points[:, 1], labels)  # 1-d: one row per digit
    assert axes == ("z", "digit")


# ---- the PNGs ------------------------------------------------------------------------------
def test_plots_write_pngs_of_their_figure_size(tmp_path):
    history = [{"epoch": e, "recon_loss": 0.3 / (e + 1), "d_loss": 1.3, "g_loss": 0.7 + e / 10}
               for e in range(5)]
    sigmas = np.logspace(-1, -0.3, 6)
    codes, _ = planar_codes(n=200)
    labels = np.arange(200) % 10
    written = {
        "loss.png": (plot_losses(history, str(tmp_path / "loss.png")), (10, 3.5)),
        "sigma.png": (plot_sigma_curve(sigmas, -np.abs(np.log(sigmas / 0.2)), 0.2,
                                       str(tmp_path / "sigma.png")), (5.5, 3.8)),
        "z2.png": (plot_latent_scatter(codes[:, :2], labels, str(tmp_path / "z2.png")),
                   (6.5, 5.5)),
        "z8.png": (plot_latent_scatter(codes, labels, str(tmp_path / "z8.png")), (6.5, 5.5)),
    }
    for name, (path, (width, height)) in written.items():
        assert path == str(tmp_path / name)
        assert png_size(path) == (round(width * DPI), round(height * DPI)), name


def test_error_curves_read_loss_csvs_and_refuse_one_without_errors(tmp_path):
    good = tmp_path / "semi.csv"
    good.write_text("epoch,recon_loss,valid_error,seconds\n0,0.2,0.08,1.0\n1,0.1,0.05,1.0\n")
    path = plot_error_curves([str(good), str(good)], ["a", "b"], str(tmp_path / "err.png"),
                             paper_error=0.016)
    assert png_size(path) == (round(6.5 * DPI), round(4 * DPI))
    bad = tmp_path / "likelihood.csv"
    bad.write_text("epoch,recon_loss,d_loss,g_loss,seconds\n0,0.2,1.3,0.7,1.0\n")
    with pytest.raises(ValueError, match="likelihood.csv has no valid_error column"):
        plot_error_curves([str(bad)], ["x"], str(tmp_path / "bad.png"))
    assert not (tmp_path / "bad.png").exists()


def test_samples_by_epoch_shows_the_first_tenth_half_and_last_grids(tmp_path):
    assert progress_epochs(200) == [0, 20, 100, 199]
    assert progress_epochs(5) == [0, 2, 4] and progress_epochs(1) == [0]
    assert plot_samples_by_epoch(str(tmp_path), 200, str(tmp_path / "none.png")) is None
    for epoch in (0, 20, 199):  # epoch 100's grid missing: left out
        Image.new("L", (62, 62), color=epoch).save(tmp_path / f"epoch{epoch}.png")
    path = plot_samples_by_epoch(str(tmp_path), 200, str(tmp_path / "progress.png"))
    assert png_size(path) == (round(3 * 3 * DPI), round(3.3 * DPI))  # three panels


def test_image_files_side_by_side_leave_room_for_titles_of_two_lines(tmp_path):
    files = []
    for shade in (0, 255):
        files.append(str(tmp_path / f"grid{shade}.png"))
        Image.new("L", (62, 62), color=shade).save(files[-1])
    path = plot_image_files(files, ["one\ntwo", "three"], str(tmp_path / "both.png"), size=2)
    assert png_size(path) == (round(2 * 2 * DPI), round((2 + 2 * 0.3) * DPI))


def test_interpolation_grid_has_a_row_per_pair_and_a_column_per_step(tmp_path):
    images = np.random.default_rng(0).random((3 * 7, 784))
    path = plot_interpolations(images, 7, str(tmp_path / "interp.png"))
    # save_image: cells of 28 + 2 padding pixels, 2 more at the edge, all enlarged twice
    assert png_size(path) == ((7 * 30 + 2) * 2, (3 * 30 + 2) * 2)


# ---- eval.py: codes and interpolations --------------------------------------------------------
def test_line_points_and_interpolation_pairs():
    z_start, z_end = np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[1.0, 1.0], [3.0, -2.0]])
    points = evaluate.line_points(z_start, z_end, 5).reshape(2, 5, 2)
    np.testing.assert_array_equal(points[:, 0], z_start)
    np.testing.assert_array_equal(points[:, -1], z_end)
    np.testing.assert_allclose(points[:, 2], (z_start + z_end) / 2)
    np.testing.assert_allclose(np.diff(points, axis=1), np.diff(points, axis=1)[:, :1]
                               .repeat(4, axis=1))  # evenly spaced
    pairs = evaluate.interpolation_pairs(100, seed=3)
    assert pairs.shape == (evaluate.INTERPOLATION_PAIRS, 2)
    assert len(set(pairs.ravel())) == pairs.size  # no image used twice
    np.testing.assert_array_equal(pairs, evaluate.interpolation_pairs(100, seed=3))
    assert not np.array_equal(pairs, evaluate.interpolation_pairs(100, seed=4))
    assert evaluate.interpolation_pairs(5, seed=0).shape == (2, 2)  # as many as there are


def test_encode_means_are_the_noise_free_codes():
    paddle.seed(0)
    encoder = Encoder(12, 16, 3, kind="gaussian", eps_std=5.0)
    x = np.random.default_rng(0).random((7, 12)).astype("float32")
    means = evaluate.encode_means(encoder, x)
    assert means.shape == (7, 3)
    np.testing.assert_array_equal(means, evaluate.encode_means(encoder, x))
    with paddle.no_grad():
        noisy = encoder(paddle.to_tensor(x)).numpy()  # codes with eps: not what is plotted
        mu = encoder.mu(encoder.model(paddle.to_tensor(x))).numpy()
    np.testing.assert_allclose(means, mu, rtol=1e-6)
    assert np.abs(noisy - means).max() > 0.1


def test_eval_writes_latent_scatter_and_interpolations(tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    train.main(TINY + ["--n_epochs", "1", "--data_dir", mnist_dir] + dirs)
    run = tmp_path / "run"
    common = ["--load_epoch", "0", "--data_dir", mnist_dir] + FAST_EVAL + dirs

    plain = evaluate.main(common + ["--N_test", "40"])
    assert plain["interpolation"] is None and plain["n_latent"] == 40
    assert not (run / "images/interpolation.png").exists()
    assert png_size(plain["latent_scatter"]) == (650, 550)

    # 7 test images make 3 pairs: 3 rows of INTERPOLATION_STEPS decoded points.
    result = evaluate.main(common + ["--N_test", "7", "--interpolate"])
    assert result["interpolation"] == str(run / "images/interpolation.png")
    steps = evaluate.INTERPOLATION_STEPS
    assert png_size(result["interpolation"]) == ((steps * 30 + 2) * 2, (3 * 30 + 2) * 2)
    saved = json.loads((run / "logs/eval.json").read_text())
    assert saved["interpolation"] == result["interpolation"]
    assert saved["latent_scatter"] == str(run / "images/latent_scatter.png")
    assert saved["n_latent"] == 7

    with pytest.raises(UserError, match="--interpolate needs at least 2 test images"):
        evaluate.main(common + ["--N_test", "1", "--interpolate"])


# ---- train.py --visualdl -----------------------------------------------------------------------
def test_visualdl_logs_every_epoch_once_across_a_resumption(tmp_path, mnist_dir):
    visualdl = pytest.importorskip("visualdl")
    args = TINY + ["--data_dir", mnist_dir, "--visualdl"] + run_dirs(tmp_path)
    train.main(args + ["--n_epochs", "2"])
    train.main(args + ["--n_epochs", "3", "--resume"])
    vdl_dir = tmp_path / "run/logs/vdl"
    assert os.listdir(vdl_dir) == [run.VISUALDL_FILE]  # one file: VisualDL shows one
    reader = visualdl.LogReader(file_path=str(vdl_dir / run.VISUALDL_FILE))

    def steps(component, tag):
        return [record.id for record in reader.get_data(component, tag)]

    losses = read_loss_csv(str(tmp_path / "run/logs/loss.csv"), 3)
    for name in train.LOSS_NAMES:
        assert steps("scalar", f"loss/{name}") == [0, 1, 2]
        np.testing.assert_allclose([r.value for r in reader.get_data("scalar", f"loss/{name}")],
                                   [row[name] for row in losses], rtol=1e-6)
    assert steps("image", "samples") == [0, 1, 2]  # epochs 0, 1 replayed from their PNGs
    assert steps("scalar", "speed/images_per_s") == [2]  # not kept for the replayed epochs


def test_visualdl_missing_is_reported_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "visualdl", None)  # "import visualdl" now fails
    with pytest.raises(UserError, match=r"--visualdl needs VisualDL: pip install visualdl"):
        train.main(TINY + ["--data_dir", str(tmp_path / "no_data"), "--visualdl"]
                   + run_dirs(tmp_path))
    assert os.listdir(tmp_path) == []  # no folder made, no data read


def test_resume_accepts_checkpoints_older_than_a_setting():
    cfg = config.Config(N=32).validate()
    older = {k: v for k, v in cfg.to_dict().items() if k not in ("visualdl", "input_noise")}
    resume.check_resumable(older, cfg, "last.npz")  # missing settings had their defaults
    with pytest.raises(UserError, match="input_noise: 0.0 there, 0.3 now"):
        resume.check_resumable(older, config.Config(
            N=32, labels="clustering", encoder="deterministic", input_noise=0.3).validate(),
            "last.npz")
    # evaluation-only settings do not matter to training
    resume.check_resumable(older, config.Config(N=32, interpolate=True).validate(), "last.npz")
