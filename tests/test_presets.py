"""The experiments beyond Table 1: presets and their refusals, the labelled/unlabelled split,
label regularization routing digits to their own component on a tiny synthetic problem, and
every preset training a few steps and writing its figures (train.py -> plot.py)."""
import json

import numpy as np
import paddle
import pytest
from PIL import Image

import config
import eval as evaluate
import plot
import train
from conftest import run_dirs
from families import build_networks
from families.labels import LabelRegularizedAAE, SupervisedAAE, labeled_subset
from priors import UNLABELED, build_prior, component_accuracy, grid_codes
from utils import resume
from utils.errors import UserError
from utils.metrics import class_centroids, nearest_centroid, style_spread
from utils.run import stream
from utils.steps import one_hot

# train.py options for a few steps of any preset: 3 batches of 100 images, tiny layers
TINY = ["--N", "32", "--N_train", "300", "--n_epochs", "1"]
TINY_LABELS = ["--n_labeled", "100", "--n_unlabeled", "200"]  # all 300 images


def parse(argv, keys=train.TRAIN_KEYS):
    return config.parse_config("train.py", keys, argv)


# ---- presets ------------------------------------------------------------------------------
def test_presets_have_one_line_descriptions_and_valid_settings():
    assert {"likelihood", "gmm_2d", "gmm_labels", "swiss_roll_labels", "supervised_15d",
            "supervised_2d"} <= set(config.PRESETS)
    for name, (description, overrides) in config.PRESETS.items():
        assert description and "\n" not in description, name
        assert set(overrides) <= set(config.Config().to_dict()), name
        cfg = parse(["--preset", name])
        assert cfg.preset == name
        for key, value in overrides.items():
            assert getattr(cfg, key) == value, (name, key)
    # the likelihood preset is the defaults, apart from its name
    assert dict(parse(["--preset", "likelihood"]).to_dict(), preset=None) == \
        config.Config().to_dict()


def test_options_given_win_over_the_preset():
    cfg = parse(["--preset", "gmm_labels", "--N", "64", "--n_labeled", "500",
                 "--model_dir", "elsewhere"])
    assert (cfg.prior, cfg.labels, cfg.latent_dim) == ("gmm", "regularization", 2)
    assert (cfg.N, cfg.n_labeled, cfg.model_dir) == (64, 500, "elsewhere")
    assert parse(["--preset", "supervised_15d", "--latent_dim", "4"]).latent_dim == 4


def test_unknown_preset_is_refused_with_the_list_of_names():
    with pytest.raises(UserError) as err:
        parse(["--preset", "gmm_lables"])
    for name in config.PRESETS:
        assert name in str(err.value)
    with pytest.raises(UserError, match="presets: likelihood, "):
        config.resolve({"preset": "nope"})


@pytest.mark.parametrize("argv,message", [
    (["--prior", "gmm"], "--prior gmm is 2-d: it needs --latent_dim 2"),
    (["--prior", "swiss_roll", "--latent_dim", "2", "--labels", "regularization",
      "--std", "1"], "--std is used only with --prior gaussian"),
    (["--labels", "regularization"], "use --prior gmm or swiss_roll"),
    (["--gmm_radius", "2"], "--gmm_radius is used only with --prior gmm"),
    (["--n_labeled", "500"], "--n_labeled is used only with --labels regularization"),
    (["--preset", "gmm_2d", "--swiss_roll_turns", "3"], "--swiss_roll_turns is used only"),
    (["--labels", "semi"], "invalid choice: 'semi'"),
    (["--preset", "gmm_labels", "--label_critic", "true"],
     "--label_critic is used only with --labels supervised"),
])
def test_inconsistent_settings_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        parse(argv)


def test_a_preset_run_is_resumed_only_with_its_settings():
    saved = parse(["--preset", "gmm_labels"]).to_dict()
    resume.check_resumable(saved, parse(["--preset", "gmm_labels", "--n_epochs", "300"]),
                          "last.npz")
    with pytest.raises(UserError, match="prior: 'gmm' there, 'gaussian' now"):
        resume.check_resumable(saved, parse([]), "last.npz")


def test_label_critic_shows_the_discriminator_each_codes_label(monkeypatch):
    paddle.seed(0)
    cfg = parse(["--preset", "supervised_2d", "--N", "16", "--label_critic", "true"])
    y = np.array([0, 3, 9])
    model = SupervisedAAE(cfg, {"x_train": np.zeros((3, 20), "float32"), "y_train": y})
    nets = model.nets
    assert nets["discriminator"].model[0].weight.shape == [2 + 10, 16]  # [z, one-hot y]
    drawn_for, seen = [], []

    def sample_prior(n, labels=None):
        drawn_for.append(labels)
        return paddle.randn([n, 2])

    monkeypatch.setattr(model, "sample_prior", sample_prior)
    forward = nets["discriminator"].forward
    monkeypatch.setattr(nets["discriminator"], "forward",
                        lambda z, y=None: seen.append(y.numpy()) or forward(z, y))
    model.step(paddle.rand([3, 20]), y, 0)
    assert drawn_for == [None]  # prior samples drawn whatever the labels
    labels = np.eye(10)[y]
    np.testing.assert_array_equal(seen[0], np.concatenate([labels, labels]))  # D's update
    np.testing.assert_array_equal(seen[1], labels)  # the encoder's update against D


def test_label_inputs_of_the_networks():
    supervised = build_networks(parse(["--preset", "supervised_2d", "--N", "16"]), 20, 10)
    regularized = build_networks(parse(["--preset", "gmm_labels", "--N", "16"]), 20, 10)
    plain = build_networks(parse(["--preset", "gaussian_2d", "--N", "16"]), 20, 10)
    assert supervised["decoder"].model[0].weight.shape == [2 + 10, 16]  # [z, one-hot y]
    # the supervised presets' label critic: D(z, y) with the 10 digits, no 'unlabelled' unit
    assert supervised["discriminator"].model[0].weight.shape == [2 + 10, 16]
    assert regularized["discriminator"].model[0].weight.shape == [2 + 11, 16]
    assert regularized["decoder"].label_dim == 0
    assert plain["decoder"].model[0].weight.shape == [2, 16]
    z = paddle.zeros([3, 2])
    y = one_hot([0, 9, 4], 10)
    assert supervised["decoder"](z, y).shape == [3, 20]
    with pytest.raises(ValueError, match="needs a one-hot label of 10 units"):
        supervised["decoder"](z)
    with pytest.raises(ValueError, match="takes no label input"):
        plain["decoder"](z, y)
    with pytest.raises(ValueError, match="labels must be in"):
        one_hot([UNLABELED], 10)  # 'unlabelled' must be mapped to its slot first


# ---- the labelled / unlabelled split ---------------------------------------------------------
def test_labeled_subset_is_balanced_disjoint_and_fixed_by_the_seed():
    y = np.random.default_rng(0).integers(0, 10, 3000)
    used, seen = labeled_subset(y, 1000, 1500, 10, seed=0)
    assert len(used) == len(set(used)) == 2500
    labelled = seen != UNLABELED
    assert labelled.sum() == 1000 and (~labelled).sum() == 1500
    np.testing.assert_array_equal(seen[labelled], y[used[labelled]])  # true labels kept
    np.testing.assert_array_equal(np.bincount(seen[labelled], minlength=10), 100)
    again = labeled_subset(y, 1000, 1500, 10, seed=0)
    np.testing.assert_array_equal(again[0], used)
    other = labeled_subset(y, 1000, 1500, 10, seed=1)
    assert set(other[0][other[1] != UNLABELED]) != set(used[labelled])
    # not a multiple of the classes: the first ones get one more
    _, seen = labeled_subset(y, 23, 0, 10, seed=0)
    np.testing.assert_array_equal(np.bincount(seen, minlength=10), [3, 3, 3] + [2] * 7)
    with pytest.raises(UserError, match="exceed the --N_train 3000 training images"):
        labeled_subset(y, 1000, 2001, 10, seed=0)
    with pytest.raises(UserError, match="images of class"):
        labeled_subset(y, 2990, 0, 10, seed=0)


def test_default_sample_grid_is_the_former_fixed_prior_samples():
    # the default run's epoch grids decode the same codes as before priors were selectable
    cfg = config.Config()
    z, labels, columns = grid_codes(build_prior(cfg), stream(5, "sample_grid"))
    former = np.random.default_rng([5, 2**32 - 1]).normal(0.0, 5.0, (100, 8))
    np.testing.assert_array_equal(z, former)
    assert labels is None and columns == 10
    z, labels, columns = grid_codes(build_prior(cfg), stream(5, "sample_grid"), 10)
    assert z.shape == (100, 8) and columns == 10
    np.testing.assert_array_equal(z[:10], np.repeat(z[:1], 10, axis=0))  # a row: one style
    np.testing.assert_array_equal(labels[:10], np.arange(10))  # a column per class


# ---- label regularization on a tiny synthetic problem -----------------------------------------
@pytest.mark.parametrize("prior_name", ["gmm", "swiss_roll"])
def test_label_regularization_routes_labelled_codes_to_their_component(prior_name):
    """Ten classes of 20-pixel patterns; class c is given the label (3c + 1) % 10, a mapping
    that moves every class, for 80% of the images (the rest unlabelled). After 600 steps of
    the model's step the codes of each class lie in the component of its label, not of its class.
    Seen on seeds 0-3: 0.78-0.90 of the codes in the right component."""
    cfg = config.Config(N=64, latent_dim=2, dropout=0.0, encoder="deterministic",
                        prior=prior_name, labels="regularization", gen_lr=1e-3,
                        reg_lr=3e-3, n_labeled=100, n_unlabeled=0).validate()
    rng = np.random.default_rng(0)
    patterns = np.repeat(np.eye(10, dtype="float32"), 2, axis=1)  # [10 classes, 20 pixels]
    label_of_class = (3 * np.arange(10) + 1) % 10

    def batch(n):
        classes = rng.integers(0, 10, n)
        flips = rng.random((n, 20)) < 0.05
        return np.abs(patterns[classes] - flips).astype("float32"), classes

    paddle.seed(0)
    model = LabelRegularizedAAE(cfg, {"x_train": np.zeros((100, 20), "float32"),
                                      "y_train": np.arange(100) % 10})
    assert model.nets["discriminator"].label_dim == 11  # 10 classes + 'unlabelled'
    prior = model.prior
    for step in range(600):
        x, classes = batch(100)
        y = np.where(rng.random(100) < 0.8, label_of_class[classes], UNLABELED)
        paddle.seed(1000 + step)
        model.step(paddle.to_tensor(x), y, step)
    x, classes = batch(1000)
    codes = evaluate.encode_means(model.nets["encoder"], x)
    assert component_accuracy(prior, codes, label_of_class[classes]) > 0.6  # chance: 0.1
    assert component_accuracy(prior, codes, classes) < 0.1  # not where the class alone would be


# ---- every preset: a few steps, then its figures ------------------------------------------------
FIGURES = {
    "likelihood": ["latent.png", "prior_samples.png"],
    **{name: ["latent.png", "prior_samples.png"] for name in (
        "likelihood_no_dropout", "likelihood_pytorch_gan", "likelihood_deterministic")},
    "gaussian_2d": ["latent.png", "prior_samples.png", "manifold.png"],
    "gmm_2d": ["latent.png", "prior_samples.png"] + [f"manifold_component{k}.png"
                                                      for k in range(10)],
    "gmm_labels": ["latent.png", "prior_samples.png"] + [f"manifold_component{k}.png"
                                                          for k in range(10)],
    "swiss_roll_labels": ["latent.png", "prior_samples.png", "swiss_roll_walk.png"],
    "supervised_15d": ["latent.png", "style_by_class.png"],
    "supervised_2d": ["latent.png", "style_by_class.png"],
    # the semi-supervised / clustering AAE: a row per style, a column per category of y
    **{name: ["latent.png", "style_by_class.png"]
       for name in ("semi_100", "semi_1000", "semi_all", "cluster_16", "cluster_30",
                    "semi_1000_sgd", "dimred_1000", "dimred_unsupervised",
                    "semi_100_paper", "semi_1000_paper", "semi_all_paper", "cluster_16_paper",
                    "cluster_30_paper")},
}


def png_pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


# Table 2's classifier baselines have no decoder, hence no figures (tests/test_semi_supervised.py)
DRAWN_PRESETS = sorted(name for name, (_, values) in config.PRESETS.items()
                       if values.get("labels") != "classifier")


def test_every_preset_has_its_figures_listed():
    assert set(FIGURES) == set(DRAWN_PRESETS)


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_every_preset_trains_and_writes_its_figures(preset, tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    labels = TINY_LABELS if config.PRESETS[preset][1].get("labels") == "regularization" else []
    out = train.main(["--preset", preset, "--data_dir", mnist_dir] + TINY + labels + dirs)
    assert out["steps"] == 3 and np.isfinite([out[k] for k in train.LOSS_NAMES]).all()
    saved = json.loads((tmp_path / "run/logs/train_config.json").read_text())
    assert saved["preset"] == preset
    assert (tmp_path / "run/images/epoch0.png").is_file()

    result = plot.main(["--load_epoch", "0", "--N_test", "200", "--data_dir", mnist_dir]
                       + dirs)
    assert sorted(result["figures"]) == sorted(FIGURES[preset])
    for name, path in result["figures"].items():
        assert path == str(tmp_path / "run/images" / name)
        assert png_pixels(path).std() > 0, name  # not blank
    if preset == "supervised_2d":  # a row per style, a column per digit: 10 x 10 cells
        assert png_pixels(result["figures"]["style_by_class.png"]).shape == \
            ((10 * 30 + 2) * 2,) * 2
    if config.PRESETS[preset][1].get("labels") == "supervised":  # style/class measures
        assert result["style_digits"] == 200
        assert 0.0 <= result["label_control"] <= 1.0 and result["style_spread"] >= 0.0
        assert 0.5 < result["centroid_accuracy"] < 1.0  # class means of the training images
    else:
        assert "label_control" not in result
    fit = result["prior_fit"]  # the codes z against their prior (r = yW + z has none)
    if config.PRESETS[preset][1].get("cluster_heads"):
        assert fit is None
    elif config.PRESETS[preset][1].get("prior") == "swiss_roll":
        assert 0.0 <= fit["share_distance"] <= 0.9 and "code_log_prob" not in fit
    else:
        assert np.isfinite(fit["code_log_prob"]) and np.isfinite(fit["prior_sample_log_prob"])
    accuracy = result["component_accuracy"]
    if preset.endswith("_labels"):
        assert 0.0 <= accuracy <= 1.0
    else:
        assert accuracy is None
    assert json.loads((tmp_path / "run/logs/plot.json").read_text())["figures"] == \
        result["figures"]


def test_style_measures_on_hand_examples():
    x = np.array([[0, 0], [0, 2], [4, 4], [4, 6]], np.float32)
    labels = np.array([0, 0, 1, 1])
    centroids = class_centroids(x, labels, 2)
    np.testing.assert_allclose(centroids, [[0, 1], [4, 5]])
    assert nearest_centroid(centroids, np.array([[1, 1], [3, 5], [0, -3]])).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        class_centroids(x, labels, 3)
    # decodes [styles, classes, pixels]: every style the same image -> 0; the two styles
    # varying like the real digits of each class -> 1
    same = np.repeat(centroids[None], 2, axis=0)
    assert style_spread(same, x, labels) == 0.0
    real_like = np.stack([x[[0, 2]], x[[1, 3]]])  # style s of class k is the k-th image s
    assert style_spread(real_like, x, labels) == pytest.approx(1.0)


@pytest.mark.parametrize("preset", ["gmm_labels", "supervised_2d"])
def test_eval_generates_from_the_presets_prior(preset, tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    labels = TINY_LABELS if preset == "gmm_labels" else []
    train.main(["--preset", preset, "--data_dir", mnist_dir] + TINY + labels + dirs)
    result = evaluate.main(["--load_epoch", "0", "--N_gen", "200", "--N_valid", "50",
                            "--N_test", "50", "--sigma", "0.2", "--interpolate",
                            "--data_dir", mnist_dir] + dirs)
    assert np.isfinite(result["ll_mean"])
    assert result["train_config"]["preset"] == preset


def test_label_runs_resume_exactly(tmp_path, mnist_dir):
    common = (["--preset", "gmm_labels", "--data_dir", mnist_dir] + TINY[:4] + TINY_LABELS)
    straight = train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "a"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "b"))
    resumed = train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "b"))
    assert [r["recon_loss"] for r in resumed["history"]] == \
        [r["recon_loss"] for r in straight["history"]]
    assert [r["d_loss"] for r in resumed["history"]] == \
        [r["d_loss"] for r in straight["history"]]


# ---- the reference's comparison: its model without dropout, and PyTorch-GAN's network -----------
def test_comparison_presets_change_only_what_they_name():
    base = parse([]).to_dict()
    for preset, changed in (("likelihood_no_dropout", {"dropout": 0.0}),
                            ("likelihood_deterministic", {"encoder": "deterministic"}),
                            ("likelihood_pytorch_gan", {"architecture": "pytorch_gan", "N": 512,
                                                        "dropout": 0.0, "eps_std": 1.0})):
        values = parse(["--preset", preset]).to_dict()
        differ = {k: v for k, v in values.items()
                  if v != base[k] and k not in ("preset", "model_dir", "images_dir", "logs_dir")}
        assert differ == changed, preset


def test_pytorch_gan_networks_have_its_layers():
    import paddle.nn as nn
    cfg = parse(["--preset", "likelihood_pytorch_gan"])
    nets = build_networks(cfg, 784)
    kinds = {name: [type(layer).__name__ for layer in net.model] for name, net in nets.items()}
    assert kinds["encoder"] == ["Linear", "LeakyReLU", "Linear", "BatchNorm1D", "LeakyReLU"]
    assert kinds["decoder"] == ["Linear", "LeakyReLU", "Linear", "BatchNorm1D", "LeakyReLU",
                                "Linear"]
    assert kinds["discriminator"] == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    assert nets["discriminator"].model[2].weight.shape == [512, 256]
    assert nets["encoder"].mu.weight.shape == [512, 8] and nets["encoder"].eps_std == 1.0
    assert all(layer.extra_repr().startswith("negative_slope=0.2") for net in nets.values()
               for layer in net.model if isinstance(layer, nn.LeakyReLU))
    with pytest.raises(UserError, match="has no dropout layers: use --dropout 0"):
        parse(["--architecture", "pytorch_gan"])
    with pytest.raises(UserError, match="--architecture is used only with --labels none"):
        parse(["--preset", "cluster_16", "--architecture", "pytorch_gan", "--dropout", "0"])
