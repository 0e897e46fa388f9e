"""The semi-supervised and clustering AAE (paper §5-6, Figure 8, Tables 2-3): the labelled
subset and its mini-batches, the categorical prior, the two error measures on hand-computed
examples, the networks and phases, and every new preset training a few steps and writing its
test error (train.py -> classify.py)."""
import json

import numpy as np
import paddle
import pytest

import classify
import config
import train
from conftest import run_dirs
from data_maker import load_split
import families
from families import build_networks, categorical
from families.categorical import CategoricalEncoder
from priors import CategoricalPrior, PaddleRandom
from utils import checkpoint, metrics, resume
from utils.errors import UserError
from utils.steps import make_optimizers, set_learning_rates

TINY = ["--N", "32", "--N_train", "300", "--n_epochs", "1"]
NEW_PRESETS = ("semi_100", "semi_1000", "semi_all", "cluster_16", "cluster_30",
               "semi_1000_sgd", "dimred_1000", "dimred_unsupervised")


def parse(argv):
    return config.parse_config("train.py", train.TRAIN_KEYS, argv)


def plan(cfg):
    return families.get(cfg.labels).optimizer_plan(cfg)


def optimizers(cfg, nets):
    return make_optimizers(cfg, nets, plan(cfg))


# ---- presets and their settings ------------------------------------------------------------
def test_new_presets_set_the_papers_model():
    for name, n_labeled in (("semi_100", 100), ("semi_1000", 1000)):
        cfg = parse(["--preset", name])
        assert (cfg.labels, cfg.n_labeled, cfg.n_categories) == ("semi_supervised", n_labeled, 10)
        assert cfg.encoder == "deterministic" and cfg.prior == "gaussian"
    assert parse(["--preset", "semi_all"]).n_labeled >= 60000  # more than MNIST holds
    for name, k in (("cluster_16", 16), ("cluster_30", 30)):
        cfg = parse(["--preset", name])
        assert (cfg.labels, cfg.n_categories) == ("clustering", k)
        assert cfg.model_dir == f"runs/{name}/model"
        assert cfg.disc_noise == 0.3  # the clustering runs' discriminators see noisy inputs
        assert cfg.input_dropout == 0.2  # and their encoder a masked image
        assert parse(["--preset", name, "--input_dropout", "0"]).input_dropout == 0.0
    assert parse(["--preset", "semi_1000"]).disc_noise == 0.0
    for name in ("semi_100", "semi_1000", "dimred_unsupervised"):
        assert parse(["--preset", name]).input_dropout == 0.0
    # the semi-supervised encoders and their classifier baselines see Gaussian input noise
    for name in ("semi_100", "semi_1000", "semi_all", "classifier_100", "classifier_all"):
        assert parse(["--preset", name]).input_noise == 0.3
        assert parse(["--preset", name, "--input_noise", "0"]).input_noise == 0.0
    for name in ("semi_1000_sgd", "dimred_1000", "cluster_16"):
        assert parse(["--preset", name]).input_noise == 0.0


@pytest.mark.parametrize("argv,message", [
    (["--n_categories", "16"], "--n_categories is used only with --labels semi_supervised or "
                               "clustering"),
    (["--preset", "cluster_16", "--n_labeled", "100"], "--n_labeled is used only with"),
    (["--labels", "clustering"], "use --encoder deterministic"),
    (["--preset", "semi_100", "--n_categories", "1"], "--n_categories must be >= 2"),
])
def test_inconsistent_categorical_settings_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        parse(argv)


# ---- the optimizer: Adam, or the paper's SGD with momentum and its step schedule -------------
def test_momentum_schedule_divides_every_rate_by_ten_at_each_decay_epoch():
    cfg = parse(["--preset", "semi_1000_sgd"])
    assert [cfg.lr_factor(e) for e in (0, 49, 50, 999, 1000, 1999)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert parse(["--preset", "semi_1000"]).lr_factor(1000) == 1.0  # Adam: constant
    nets = build_networks(cfg, 20)
    opts = optimizers(cfg, nets)
    assert all(isinstance(opt, paddle.optimizer.Momentum) for opt, _ in opts.values())
    assert set(opts) == {"encoder", "decoder", "discriminator", "encoder_adversarial",
                         "discriminator_y", "classifier"}
    set_learning_rates(cfg, opts, plan(cfg), 50)
    rates = {name: opt.get_lr() for name, (opt, _) in opts.items()}
    assert rates == pytest.approx({"encoder": 1e-3, "decoder": 1e-3, "discriminator": 1e-2,
                                   "encoder_adversarial": 1e-2, "discriminator_y": 1e-2,
                                   "classifier": 1e-2})


def test_momentum_sgd_step_is_the_heavy_ball_update():
    """One classification step twice with momentum m: v1 = g1, v2 = m v1 + g2, w -= lr v."""
    cfg, nets, _ = tiny_model("semi_1000_sgd", "--class_lr", "0.5", "--class_momentum", "0.5")
    opts = optimizers(cfg, nets)
    encoder = nets["encoder"]
    x = paddle.to_tensor(np.random.default_rng(0).random((6, 20)).astype("float32"))
    y = paddle.to_tensor(np.arange(6) % 10)
    w0 = encoder.class_logits.bias.numpy().copy()
    grads = []
    for _ in range(2):
        grads.append(paddle.grad(paddle.nn.functional.cross_entropy(
            encoder.logits(x), y.reshape([-1, 1])), encoder.class_logits.bias)[0].numpy())
        categorical.classification_phase(x, y, nets, opts)
    expected = w0 - 0.5 * grads[0] - 0.5 * (0.5 * grads[0] + grads[1])
    np.testing.assert_allclose(encoder.class_logits.bias.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_image_sum_steps_on_the_per_image_cost():
    """--recon_reduction image_sum: the first SGD step on the reconstruction moves every weight
    in_dim (20 here) times as far as pixel_mean, and the logged loss is per pixel both ways."""
    x = paddle.to_tensor(np.random.default_rng(1).random((6, 20)).astype("float32"))
    moves, logged = {}, {}
    for reduction in ("pixel_mean", "image_sum"):
        cfg, nets, opts = tiny_model("semi_100_paper", "--recon_reduction", reduction,
                                     "--input_noise", "0")
        before = nets["decoder"].model[-1].bias.numpy().copy()
        loss, _ = categorical.reconstruction_phase(x, nets, opts,
                                                   image_sum=reduction == "image_sum")
        moves[reduction] = nets["decoder"].model[-1].bias.numpy() - before
        logged[reduction] = float(loss)
    np.testing.assert_allclose(moves["image_sum"], 20 * moves["pixel_mean"], rtol=1e-4,
                               atol=1e-9)
    assert logged["image_sum"] == pytest.approx(logged["pixel_mean"], rel=1e-6)
    assert np.abs(moves["pixel_mean"]).max() > 0


def test_disc_codes_train_shows_the_discriminators_corrupted_codes():
    """--disc_codes train: the discriminators learn from the train-mode codes. With input
    noise that is another update than the eval-mode codes'; without any corruption or dropout
    the two modes give the same codes, so the same update."""
    x = paddle.to_tensor(np.random.default_rng(2).random((6, 20)).astype("float32"))
    prior_z = paddle.to_tensor(np.random.default_rng(3).normal(size=(6, 10)).astype("float32"))
    prior_y = paddle.to_tensor(np.eye(10, dtype="float32")[np.arange(6)])

    def d_weights(noise, train_codes):
        cfg, nets, opts = tiny_model("semi_100_paper", "--input_noise", noise)
        paddle.seed(5)  # the same noise draw in both modes
        categorical.discriminator_phase(x, prior_z, prior_y, nets, opts, train_codes=train_codes)
        return [p.numpy() for p in nets["discriminator"].parameters()]

    for noise, same in (("0", True), ("0.5", False)):
        a, b = d_weights(noise, False), d_weights(noise, True)
        assert all(np.array_equal(u, v) for u, v in zip(a, b)) == same, noise
    with pytest.raises(UserError, match="--disc_codes is used only with --labels"):
        parse(["--disc_codes", "train"])


def test_recon_reduction_belongs_to_the_categorical_models():
    with pytest.raises(UserError, match="--recon_reduction is used only with --labels"):
        parse(["--recon_reduction", "image_sum"])
    assert parse(["--preset", "cluster_16_paper"]).recon_reduction == "image_sum"
    assert parse(["--preset", "semi_100"]).recon_reduction == "pixel_mean"


def test_retired_adam_options_are_refused_and_read_back_only_at_their_value():
    for option in ("--adam_beta1", "--adam_decay_epochs"):
        with pytest.raises(UserError, match=f"unrecognized arguments: {option}"):
            parse(["--preset", "cluster_16", option, "1"])
    saved = parse(["--preset", "cluster_16"]).to_dict()
    older = dict(saved, adam_beta1=0.9, adam_decay_epochs="")  # what they always did
    assert config.Config.from_dict(older).to_dict() == saved
    with pytest.raises(UserError, match="adam_beta1 = 0.5, an option retired"):
        config.Config.from_dict(dict(saved, adam_beta1=0.5), where="last.npz")
    with pytest.raises(UserError, match="an option retired"):
        resume.check_resumable(dict(saved, adam_decay_epochs="65"),
                              parse(["--preset", "cluster_16"]), "last.npz")
    default = optimizers(parse([]), build_networks(parse([]), 20))
    assert all(opt._beta1 == 0.9 for opt, _ in default.values())


@pytest.mark.parametrize("argv,message", [
    (["--gen_momentum", "0.5"], "--gen_momentum is used only with --optimizer momentum"),
    (["--optimizer", "momentum", "--lr_decay_epochs", "100,50"], "--lr_decay_epochs must be"),
    (["--optimizer", "momentum", "--lr_decay_epochs", "fifty"], "--lr_decay_epochs must be"),
    (["--class_lr", "0.1"], "--class_lr is used only with --labels semi_supervised"),
    (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
])
def test_bad_optimizer_settings_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        parse(argv)


def test_momentum_run_resumes_exactly_across_a_decay(tmp_path, mnist_dir):
    common = (["--preset", "semi_1000_sgd", "--data_dir", mnist_dir, "--lr_decay_epochs", "1",
               "--n_labeled", "100"] + TINY[:4])
    straight = train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "a"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "b"))
    resumed = train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "b"))
    for name in ("recon_loss", "class_loss", "d_y_loss"):
        assert [r[name] for r in resumed["history"]] == [r[name] for r in straight["history"]]


# ---- the labelled subset and its mini-batches ------------------------------------------------
def test_label_budget_is_balanced_and_fixed_by_the_seed():
    y = np.random.default_rng(0).integers(0, 10, 3000)
    for budget in (100, 1000):
        rows = categorical.semi_supervised_subset(y, budget, 10, seed=0)
        assert len(rows) == len(set(rows)) == budget
        np.testing.assert_array_equal(np.bincount(y[rows], minlength=10), budget // 10)
        np.testing.assert_array_equal(categorical.semi_supervised_subset(y, budget, 10, seed=0), rows)
        assert set(categorical.semi_supervised_subset(y, budget, 10, seed=1)) != set(rows)
    # 'all': every training image keeps its label
    np.testing.assert_array_equal(categorical.semi_supervised_subset(y, 10**9, 10, seed=0),
                                  np.arange(3000))
    with pytest.raises(UserError, match="images of class"):
        categorical.semi_supervised_subset(y, 2990, 10, seed=0)


def test_labelled_batches_cycle_through_the_whole_set():
    n, size = 250, 100  # 2 whole mini-batches a pass (the last 50 of a pass's order wait)
    first_pass = [categorical.labeled_batch_indices(n, size, step, seed=3) for step in range(2)]
    assert all(len(rows) == size for rows in first_pass)
    assert len(set(np.concatenate(first_pass))) == 2 * size  # no repeat within a pass
    np.testing.assert_array_equal(categorical.labeled_batch_indices(n, size, 1, seed=3),
                                  first_pass[1])  # a function of the step: resumable
    second_pass = np.concatenate([categorical.labeled_batch_indices(n, size, s, 3) for s in (2, 3)])
    assert set(second_pass) != set(np.concatenate(first_pass))  # a new order each pass
    covered = np.concatenate([categorical.labeled_batch_indices(n, size, s, 3) for s in range(40)])
    assert set(covered) == set(range(n))
    # fewer labels than a batch: every step sees all of them
    assert sorted(categorical.labeled_batch_indices(30, 100, 7, seed=0)) == list(range(30))


# ---- the categorical prior -----------------------------------------------------------------
@pytest.mark.parametrize("rng", [np.random.default_rng(0), PaddleRandom()])
def test_categorical_prior_draws_uniform_one_hot_rows(rng):
    paddle.seed(0)
    prior = CategoricalPrior(16)
    y = prior.sample(32000, rng)
    assert y.shape == (32000, 16)
    assert set(np.unique(y)) == {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    counts = y.sum(axis=0)  # 2000 expected per category, std ~43
    assert np.abs(counts - 2000).max() < 200
    with pytest.raises(ValueError, match="no components"):
        prior.sample(3, rng, labels=np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 categories"):
        CategoricalPrior(1)


# ---- the error measures ----------------------------------------------------------------------
def test_classification_error_on_a_hand_example():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.4, 0.1]])
    assert classify.classification_error(probs, [0, 2, 0, 1]) == 0.5  # rows 2 and 3 wrong
    with pytest.raises(ValueError, match="as many"):
        classify.classification_error(probs, [0, 1])


def test_clustering_error_on_a_hand_example():
    # 3 clusters, 5 training images. Cluster 0 is most probable for image 1 (0.9): label 7;
    # cluster 1 for image 3 (0.8): label 2; cluster 2 for image 4 (0.6): label 7.
    train_probs = np.array([[0.5, 0.3, 0.2],
                            [0.9, 0.05, 0.05],
                            [0.4, 0.4, 0.2],
                            [0.1, 0.8, 0.1],
                            [0.2, 0.2, 0.6]])
    train_labels = np.array([2, 7, 5, 2, 7])
    np.testing.assert_array_equal(classify.cluster_labels(train_probs, train_labels), [7, 2, 7])
    # test images go to clusters 0, 1, 2, 2 -> predicted 7, 2, 7, 7; the true labels 7, 5, 7, 1
    test_probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    assert classify.clustering_error(train_probs, train_labels, test_probs,
                                     [7, 5, 7, 1]) == 0.5


def test_majority_cluster_labels_on_a_hand_example():
    # images fall in clusters 0, 0, 0, 2, 2, 2 (cluster 1 gets none, cluster 3 one)
    train_probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.5, 0.3, 0.1, 0.1],
                            [0.1, 0.2, 0.6, 0.1], [0.1, 0.1, 0.7, 0.1], [0.3, 0.1, 0.5, 0.1],
                            [0.1, 0.1, 0.1, 0.7]])
    train_labels = np.array([4, 9, 4, 3, 8, 8, 5])
    labels = metrics.majority_cluster_labels(train_probs, train_labels)
    np.testing.assert_array_equal(labels, [4, -1, 8, 5])
    # test images in clusters 0, 2, 1, 3: predicted 4, 8, -1 (always wrong), 5
    test_probs = np.eye(4)[[0, 2, 1, 3]]
    assert metrics.labelled_clusters_error(labels, test_probs, [4, 3, 1, 5]) == 0.5


# ---- networks and phases -----------------------------------------------------------------------
def tiny_model(preset, *argv):
    cfg = parse(["--preset", preset, "--N", "16", "--dropout", "0", *argv])
    paddle.seed(0)
    nets = build_networks(cfg, 20)
    return cfg, nets, optimizers(cfg, nets)


def snapshot(nets):
    return {name: [p.numpy().copy() for p in layer.parameters()] for name, layer in nets.items()}


def changed(before, nets):
    return {name for name, layer in nets.items()
            if any(not np.array_equal(a, p.numpy()) for a, p in zip(before[name],
                                                                    layer.parameters()))}


def test_nearest_head_error_on_a_hand_example():
    heads = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]
    r = [[1.0, 1.0], [9.0, -1.0], [1.0, 8.0], [6.0, 0.0]]  # nearest: heads 0, 1, 2, 1
    # heads 0 and 2 were given the same label (clustering), head 1 another
    assert classify.nearest_head_error(r, heads, [7, 3, 7], [7, 3, 7, 7]) == 0.25
    assert classify.nearest_head_error(r, heads, [0, 1, 2], [0, 1, 2, 1]) == 0.0


# ---- the dimensionality-reduction AAE's cluster heads (paper §7) ------------------------------
def test_cluster_head_cost_is_linear_below_eta_and_pushes_close_heads_apart():
    heads = paddle.to_tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]], stop_gradient=False)
    cost = categorical.cluster_head_cost(heads, 4.0)
    assert float(cost) == pytest.approx(3.0)  # only the pair 1 apart: 4 - 1
    cost.backward()
    np.testing.assert_allclose(heads.grad.numpy(), [[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]],
                               atol=1e-6)  # descending the gradient moves 0 and 1 apart
    far = paddle.to_tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    assert float(categorical.cluster_head_cost(far, 4.0)) == 0.0


def test_decoder_with_cluster_heads_decodes_head_plus_style():
    cfg, nets, _ = tiny_model("dimred_1000")
    decoder = nets["decoder"]
    heads = decoder.cluster_heads.numpy()
    assert heads.shape == (10, 2) and decoder.model[0].weight.shape == [2, 16]
    decoder.eval()
    z = paddle.to_tensor(np.random.default_rng(0).normal(size=(4, 2)).astype("float32"))
    y = paddle.to_tensor(np.eye(10, dtype=np.float32)[[0, 3, 3, 9]])
    r = z.numpy() + heads[[0, 3, 3, 9]]
    np.testing.assert_allclose(decoder.representation(z, y).numpy(), r, rtol=1e-6)
    np.testing.assert_allclose(decoder(z, y).numpy(),
                               decoder.model(paddle.to_tensor(r)).numpy(), rtol=1e-5, atol=1e-6)


def test_cluster_heads_are_learned_in_the_reconstruction_phase():
    cfg, nets, opts = tiny_model("dimred_unsupervised", "--cluster_head_eta", "100")
    x = paddle.to_tensor((np.random.default_rng(0).random((8, 20)) > 0.5).astype("float32"))
    before = nets["decoder"].cluster_heads.numpy().copy()
    spread = float(categorical.cluster_head_cost(nets["decoder"].cluster_heads, 100.0))
    for _ in range(20):
        recon, head_cost = categorical.reconstruction_phase(x, nets, opts,
                                                            cluster_head_eta=100.0)
    assert not np.array_equal(before, nets["decoder"].cluster_heads.numpy())
    # every pair is closer than eta = 100: the cost only falls as the heads spread out
    assert float(head_cost) < spread


def test_categorical_networks_shapes():
    cfg, nets, opts = tiny_model("cluster_16")
    assert isinstance(nets["encoder"], CategoricalEncoder)
    assert nets["decoder"].model[0].weight.shape == [10 + 16, 16]  # [z, y]
    assert nets["discriminator_y"].model[0].weight.shape == [16, 16]
    assert nets["discriminator"].model[0].weight.shape == [10, 16]
    assert "classifier" not in opts and "discriminator_y" in opts
    y_probs, z = nets["encoder"](paddle.rand([5, 20]))
    assert y_probs.shape == [5, 16] and z.shape == [5, 10]
    np.testing.assert_allclose(y_probs.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert "classifier" in tiny_model("semi_100")[2]


def test_each_categorical_phase_changes_only_what_it_owns():
    cfg, nets, opts = tiny_model("semi_100")
    x = paddle.to_tensor((np.random.default_rng(0).random((8, 20)) > 0.5).astype("float32"))
    y = paddle.to_tensor(np.arange(8) % 10)
    z_prior = paddle.normal(0.0, 1.0, [8, 10])
    y_prior = paddle.to_tensor(CategoricalPrior(10).sample(8, np.random.default_rng(0))
                               .astype("float32"))
    before = snapshot(nets)
    categorical.reconstruction_phase(x, nets, opts)
    assert changed(before, nets) == {"encoder", "decoder"}
    before = snapshot(nets)
    d_losses = categorical.discriminator_phase(x, z_prior, y_prior, nets, opts)
    assert changed(before, nets) == {"discriminator", "discriminator_y"}
    before = snapshot(nets)
    g_losses = categorical.generator_phase(x, nets, opts)
    assert changed(before, nets) == {"encoder"}
    before = snapshot(nets)
    class_loss = categorical.classification_phase(x, y, nets, opts)
    assert changed(before, nets) == {"encoder"}
    # the style head takes no part in classification
    assert np.array_equal(before["encoder"][-1], nets["encoder"].style.bias.numpy())
    assert np.isfinite([float(v) for v in (*d_losses, *g_losses, class_loss)]).all()


def test_encoder_input_noise_only_in_training_and_the_target_stays_clean():
    """--input_noise: the encoder sees x + N(0, s^2) noise in train mode only, and the
    reconstruction phase still scores the decoding against the clean x."""
    cfg, nets, opts = tiny_model("semi_1000", "--input_noise", "0.5")
    _, plain, _ = tiny_model("semi_1000", "--input_noise", "0")
    for name in nets:
        plain[name].set_state_dict(nets[name].state_dict())
    x = paddle.to_tensor((np.random.default_rng(0).random((8, 20)) > 0.5).astype("float32"))
    nets["encoder"].eval()
    np.testing.assert_array_equal(nets["encoder"].logits(x).numpy(),
                                  plain["encoder"].logits(x).numpy())  # eval: no noise
    paddle.seed(5)
    noise = paddle.normal(0.0, 0.5, x.shape)  # the draw the phase below makes first
    assert abs(float(noise.std()) - 0.5) < 0.1
    plain["decoder"].train()
    plain["encoder"].train()
    y_probs, z = plain["encoder"](x + noise)
    expected = paddle.nn.functional.binary_cross_entropy_with_logits(
        plain["decoder"](z, y_probs), x)
    paddle.seed(5)
    recon, _ = categorical.reconstruction_phase(x, nets, opts)
    assert float(recon) == pytest.approx(float(expected), rel=1e-5)
    y_clean, z_clean = plain["encoder"](x)
    clean = paddle.nn.functional.binary_cross_entropy_with_logits(
        plain["decoder"](z_clean, y_clean), x)
    assert float(recon) != pytest.approx(float(clean), rel=1e-3)  # the noise did reach it
    with pytest.raises(UserError, match="--input_noise is used only with --labels"):
        parse(["--input_noise", "0.3"])
    with pytest.raises(UserError, match="--input_noise must be >= 0"):
        parse(["--preset", "semi_1000", "--input_noise", "-0.1"])


def test_encoder_input_dropout_masks_pixels_only_in_training():
    """--input_dropout p: in train mode each pixel the encoder sees is zeroed with probability
    p and the others scaled by 1 / (1 - p); in eval mode the encoder is the plain one."""
    cfg, nets, _ = tiny_model("cluster_16", "--input_dropout", "0.25")
    _, plain, _ = tiny_model("cluster_16", "--input_dropout", "0")
    encoder = nets["encoder"]
    plain["encoder"].set_state_dict(encoder.state_dict())
    x = paddle.ones([200, 20])
    encoder.train()
    masked = encoder.input_dropout(x).numpy()
    assert set(np.unique(masked)) == {0.0, np.float32(1 / 0.75)}
    assert abs((masked == 0).mean() - 0.25) < 0.02
    encoder.eval()
    plain["encoder"].eval()
    np.testing.assert_array_equal(encoder.logits(x).numpy(), plain["encoder"].logits(x).numpy())
    with pytest.raises(UserError, match="--input_dropout is used only with --labels"):
        parse(["--input_dropout", "0.2"])


def test_encoder_batchnorm_normalizes_hidden_layers_and_its_statistics_are_saved(tmp_path,
                                                                                 mnist_dir):
    """--encoder_batchnorm: a BatchNorm1D after each hidden linear layer; training moves its
    running statistics, the checkpoint keeps them, and classify.py reads the model back."""
    cfg, nets, _ = tiny_model("cluster_16", "--encoder_batchnorm")
    norms = [m for m in nets["encoder"].model if isinstance(m, paddle.nn.BatchNorm1D)]
    assert len(norms) == 2
    assert not any(isinstance(m, paddle.nn.BatchNorm1D) for m in tiny_model("cluster_16")[1][
        "encoder"].model)
    dirs = run_dirs(tmp_path)
    train.main(["--preset", "cluster_16", "--encoder_batchnorm", "--data_dir", mnist_dir]
               + TINY + dirs)
    loaded, _, _ = classify.load_model(str(tmp_path / "run/model/model0.npz"))
    means = [m._mean.numpy() for m in loaded["encoder"].model
             if isinstance(m, paddle.nn.BatchNorm1D)]
    assert len(means) == 2 and all(np.abs(m).max() > 0 for m in means)  # moved from zero
    result = classify.main(["--load_epoch", "0", "--N_test", "200", "--data_dir", mnist_dir,
                            "--model_dir", str(tmp_path / "run/model"),
                            "--logs_dir", str(tmp_path / "run/logs")])
    assert 0.0 <= result["test_error"] <= 1.0
    with pytest.raises(UserError, match="--encoder_batchnorm is used only with --labels"):
        parse(["--encoder_batchnorm"])


def test_classification_phase_learns_the_labels():
    """Ten classes of 20-pixel patterns: 100 classification steps (lr 1e-2) classify all."""
    cfg, nets, opts = tiny_model("semi_100", "--class_lr", "1e-2")
    classes = np.arange(50) % 10
    x = paddle.to_tensor((np.repeat(np.eye(10), 2, axis=1)[classes]).astype("float32"))
    y = paddle.to_tensor(classes)
    losses = [float(categorical.classification_phase(x, y, nets, opts)) for _ in range(100)]
    probs = classify.class_probabilities(nets["encoder"], x.numpy())
    assert losses[-1] < 0.5 * losses[0]
    assert classify.classification_error(probs, classes) == 0.0


# ---- every new preset: a few steps, then its test error ----------------------------------------
@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_new_preset_trains_and_classify_writes_its_error(preset, tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    out = train.main(["--preset", preset, "--data_dir", mnist_dir] + TINY + dirs)
    names = [k for k in out["history"][0] if k not in ("epoch", "seconds", "valid_error")]
    assert names[:5] == ["recon_loss", "d_loss", "g_loss", "d_y_loss", "g_y_loss"]
    assert out["steps"] == 3 and np.isfinite([out[k] for k in names]).all()
    header = (tmp_path / "run/logs/loss.csv").read_text().splitlines()[0]
    assert header == "epoch," + ",".join(names) + ",valid_error,seconds"
    assert 0.0 <= out["valid_error"] <= 1.0
    cfg = parse(["--preset", preset])
    assert ("class_loss" in names) == (cfg.labels == "semi_supervised")
    assert ("head_loss" in names) == cfg.cluster_heads

    result = classify.main(["--load_epoch", "0", "--N_test", "200", "--data_dir", mnist_dir,
                            "--model_dir", str(tmp_path / "run/model"),
                            "--logs_dir", str(tmp_path / "run/logs")])
    saved = json.loads((tmp_path / "run/logs/classify.json").read_text())
    assert saved["test_error"] == result["test_error"]
    assert 0.0 <= result["test_error"] <= 1.0 and result["n_test"] == 200
    sizes = saved["test_category_sizes"]
    assert len(sizes) == cfg.n_categories and sum(sizes) == 200 and min(sizes) >= 0
    digits = np.array(saved["test_category_digits"])  # row k: category k's digits by class
    assert digits.shape == (cfg.n_categories, 10) and digits.sum(axis=1).tolist() == sizes
    y_test = load_split(mnist_dir, n_test=200, parts=("test",))["y_test"]
    assert digits.sum(axis=0).tolist() == np.bincount(y_test, minlength=10).tolist()
    if cfg.labels == "clustering":
        assert len(saved["cluster_labels"]) == cfg.n_categories
        assert saved["n_train"] == 300
        # the headline is the paper's rule (§6): clusters labelled by the validation images
        nets, _, _ = classify.load_model(str(tmp_path / "run/model/model0.npz"))
        data = load_split(mnist_dir, n_train=300, n_test=200, parts=("train", "valid", "test"))
        valid_probs = classify.class_probabilities(nets["encoder"], data["x_valid"])
        test_probs = classify.class_probabilities(nets["encoder"], data["x_test"])
        assert saved["cluster_labels"] == \
            classify.cluster_labels(valid_probs, data["y_valid"]).tolist()
        assert saved["test_error"] == classify.clustering_error(
            valid_probs, data["y_valid"], test_probs, data["y_test"])
        assert saved["n_valid"] == len(data["y_valid"])
        # beside it: the same rule with the training images
        train_probs = classify.class_probabilities(nets["encoder"], data["x_train"])
        assert saved["train_cluster_labels"] == \
            classify.cluster_labels(train_probs, data["y_train"]).tolist()
        assert saved["test_error_train_labels"] == classify.clustering_error(
            train_probs, data["y_train"], test_probs, data["y_test"])
        # the diagnostic: clusters labelled by the majority of their training images
        train_probs = classify.class_probabilities(nets["encoder"], data["x_train"])
        majority = metrics.majority_cluster_labels(train_probs, data["y_train"])
        assert saved["majority_cluster_labels"] == majority.tolist()
        assert saved["test_error_majority_labels"] == metrics.labelled_clusters_error(
            majority, test_probs, data["y_test"])
    else:
        assert "test_error_train_labels" not in saved
    assert ("nearest_head_error" in saved) == cfg.cluster_heads
    if cfg.cluster_heads:
        assert 0.0 <= saved["nearest_head_error"] <= 1.0


def test_semi_supervised_run_resumes_exactly(tmp_path, mnist_dir):
    common = ["--preset", "semi_100", "--data_dir", mnist_dir] + TINY[:4]
    straight = train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "a"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "b"))
    resumed = train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "b"))
    assert [r["class_loss"] for r in resumed["history"]] == \
        [r["class_loss"] for r in straight["history"]]
    assert [r["d_y_loss"] for r in resumed["history"]] == \
        [r["d_y_loss"] for r in straight["history"]]


def test_best_checkpoint_is_the_epoch_of_the_lowest_validation_error(tmp_path, mnist_dir,
                                                                     monkeypatch):
    # scripted validation errors: the lowest, 0.3, after epochs 1 and 2 (a tie: the later
    # one is kept); a run resumed after epoch 2 that forgot the lowest of its loss.csv would
    # keep epoch 4 (0.35, the lowest it saw itself)
    errors = [0.5, 0.3, 0.3, 0.4, 0.35]
    scripted = []
    monkeypatch.setattr(categorical.CategoricalAAE, "epoch_metrics",
                        lambda self, x: {"valid_error": scripted.pop(0)})
    common = ["--preset", "cluster_16", "--data_dir", mnist_dir, "--save_every", "1"] + TINY[:4]
    scripted[:] = errors
    train.main(common + ["--n_epochs", "5"] + run_dirs(tmp_path, "a"))
    meta, arrays = checkpoint.load(str(tmp_path / "a/model/best.npz"))
    assert (meta["epoch"], meta["valid_error"]) == (3, 0.3)  # epoch 2, counted from 1
    _, same = checkpoint.load(str(tmp_path / "a/model/model2.npz"))
    assert sorted(arrays) == sorted(same)
    assert all(np.array_equal(arrays[k], same[k]) for k in arrays)
    # stopped after 3 epochs and resumed: the same best.npz
    scripted[:] = errors[:3]
    train.main(common + ["--n_epochs", "3"] + run_dirs(tmp_path, "b"))
    scripted[:] = errors[3:]
    train.main(common + ["--n_epochs", "5", "--resume"] + run_dirs(tmp_path, "b"))
    meta_b, arrays_b = checkpoint.load(str(tmp_path / "b/model/best.npz"))
    assert (meta_b["epoch"], meta_b["valid_error"]) == (3, 0.3)
    assert all(np.array_equal(arrays[k], arrays_b[k]) for k in arrays)
    result = classify.main(["--checkpoint", str(tmp_path / "a/model/best.npz"), "--N_test", "200",
                            "--data_dir", mnist_dir, "--logs_dir", str(tmp_path / "a/best")])
    assert result["trained_epochs"] == 3


def test_classify_refuses_a_model_without_categories(tmp_path, mnist_dir):
    dirs = run_dirs(tmp_path)
    train.main(["--data_dir", mnist_dir] + TINY + dirs)
    with pytest.raises(UserError, match="needs a model with a categorical q"):
        classify.main(["--load_epoch", "0", "--data_dir", mnist_dir,
                       "--model_dir", str(tmp_path / "run/model"),
                       "--logs_dir", str(tmp_path / "run/logs")])


def test_semi_supervised_needs_one_category_per_class(tmp_path, mnist_dir):
    with pytest.raises(UserError, match="--n_categories must be 10"):
        train.main(["--preset", "semi_100", "--n_categories", "12", "--data_dir", mnist_dir]
                   + TINY + run_dirs(tmp_path))


# ---- Table 2's baseline: the encoder trained by the classification phase alone ------------------
@pytest.mark.parametrize("n", ["100", "1000", "all"])
def test_classifier_baseline_is_the_semi_supervised_encoder_without_the_aae(n, tmp_path,
                                                                           mnist_dir):
    cfg = parse(["--preset", f"classifier_{n}"])
    semi = parse(["--preset", f"semi_{n}"])
    assert (cfg.n_labeled, cfg.dropout, cfg.class_lr, cfg.n_epochs, cfg.N) == \
        (semi.n_labeled, semi.dropout, semi.class_lr, semi.n_epochs, semi.N)
    # the same first network from the same seed: the same initial encoder weights
    paddle.seed(0)
    alone = build_networks(cfg, 20)
    paddle.seed(0)
    with_aae = build_networks(semi, 20)
    assert set(alone) == {"encoder"}
    for key, value in alone["encoder"].state_dict().items():
        np.testing.assert_array_equal(value.numpy(), with_aae["encoder"].state_dict()[key].numpy())
    assert set(optimizers(cfg, alone)) == {"classifier"}

    dirs = run_dirs(tmp_path)
    out = train.main(["--preset", f"classifier_{n}", "--data_dir", mnist_dir] + TINY + dirs)
    assert [k for k in out["history"][0] if k not in ("epoch", "seconds")] == \
        ["class_loss", "valid_error"]
    assert not (tmp_path / "run/images/epoch0.png").exists()  # no decoder, no sample grid
    result = classify.main(["--load_epoch", "0", "--N_test", "200", "--data_dir", mnist_dir,
                            "--model_dir", str(tmp_path / "run/model"),
                            "--logs_dir", str(tmp_path / "run/logs")])
    assert 0.0 <= result["test_error"] <= 1.0 and result["n_test"] == 200
    import eval as evaluate
    with pytest.raises(UserError, match="without a decoder: it generates nothing"):
        evaluate.main(["--load_epoch", "0", "--data_dir", mnist_dir] + dirs)


def test_classifier_baseline_step_changes_only_the_classification_path(mnist_dir):
    cfg = parse(["--preset", "classifier_100", "--N", "16"])
    data = load_split(mnist_dir, n_train=300, parts=("train", "valid"))
    paddle.seed(0)
    model = families.get(cfg.labels)(cfg, data)
    before = snapshot(model.nets)
    losses = model.step(None, None, 0)
    assert list(losses) == ["class_loss"] and np.isfinite(losses["class_loss"])
    assert changed(before, model.nets) == {"encoder"}
    # the style head takes no part in classification
    assert np.array_equal(before["encoder"][-1], model.nets["encoder"].style.bias.numpy())
