"""The training step: the fast phases are the reference's algorithm, each phase updates only
what it owns, and the dropout layer is an exact inverted dropout."""
import copy

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import config
import train
from network import Dropout, build_networks
from utils.errors import UserError
from utils.steps import make_optimizers


def small_config(**overrides):
    values = dict(N=64, latent_dim=4, dropout=0.2)
    values.update(overrides)
    return config.Config(**values).validate()


def make_model(cfg, in_dim=36, seed=0):
    paddle.seed(seed)
    nets = build_networks(cfg, in_dim)
    return nets, make_optimizers(cfg, nets, train.LikelihoodAAE.optimizer_plan(cfg))


def make_aae(cfg, in_dim=36, seed=0):
    """train.py's Table 1 model on a stand-in training set of ``in_dim``-pixel images."""
    paddle.seed(seed)
    return train.LikelihoodAAE(cfg, {"x_train": np.zeros((4, in_dim), dtype="float32")})


def batch(n=16, in_dim=36, seed=1):
    rng = np.random.default_rng(seed)
    return paddle.to_tensor((rng.random((n, in_dim)) > 0.7).astype("float32"))


def snapshot(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def changed(before, layer):
    after = snapshot(layer)
    return {k for k in before if not np.array_equal(before[k], after[k])}


def plain_reference_step(x, nets, opts, std, latent_dim):
    """The step as the reference reproduction writes it: sigmoid outputs with log losses,
    two separate discriminator passes, no skipped gradients, every gradient cleared."""
    enc, dec, disc = nets["encoder"], nets["decoder"], nets["discriminator"]
    all_opts = [o for o, _ in opts.values()]
    tiny = 1e-15

    def clear():
        for o in all_opts:
            o.clear_grad()

    enc.train(), dec.train(), disc.train()
    x_recon = F.sigmoid(dec(enc(x)))
    recon = F.binary_cross_entropy(x_recon + tiny, x + tiny)
    recon.backward()
    opts["decoder"].optimizer.step()
    opts["encoder"].optimizer.step()
    clear()

    enc.eval()
    z_real = paddle.normal(0.0, std, [x.shape[0], latent_dim])
    z_fake = enc(x)
    z_fake.stop_gradient = True
    d_real, d_fake = F.sigmoid(disc(z_real)), F.sigmoid(disc(z_fake))
    d_loss = -paddle.mean(paddle.log(d_real + tiny) + paddle.log(1 - d_fake + tiny))
    d_loss.backward()
    opts["discriminator"].optimizer.step()
    clear()

    enc.train()
    g_loss = -paddle.mean(paddle.log(F.sigmoid(disc(enc(x))) + tiny))
    g_loss.backward()
    opts["encoder_adversarial"].optimizer.step()
    clear()
    return float(recon), float(d_loss), float(g_loss)


@pytest.mark.parametrize("encoder_kind", ["gaussian", "deterministic"])
def test_fast_step_equals_plain_reference_step(encoder_kind):
    # Dropout off so that both steps consume the same random numbers (the fast step passes
    # prior samples and codes through D as one batch, which draws D's masks in another order).
    cfg = small_config(dropout=0.0, encoder=encoder_kind)
    model = make_aae(cfg)
    nets_fast = model.nets
    nets_ref, opts_ref = make_model(cfg)
    for name in nets_fast:
        nets_ref[name].set_state_dict(copy.deepcopy(nets_fast[name].state_dict()))

    for step in range(6):
        x = batch(seed=step)
        paddle.seed(100 + step)
        fast = model.step(x, None, step)
        assert list(fast) == ["recon_loss", "d_loss", "g_loss"]
        paddle.seed(100 + step)
        ref = plain_reference_step(x, nets_ref, opts_ref, cfg.std, cfg.latent_dim)
        np.testing.assert_allclose(list(fast.values()), ref, rtol=2e-5, atol=1e-6)
    for name in nets_fast:
        for key, value in nets_fast[name].state_dict().items():
            np.testing.assert_allclose(value.numpy(), nets_ref[name].state_dict()[key].numpy(),
                                       rtol=1e-4, atol=2e-6, err_msg=f"{name}.{key}")


def test_each_phase_updates_only_what_it_owns():
    cfg = small_config()
    nets, opts = make_model(cfg)
    enc, dec, disc = nets["encoder"], nets["decoder"], nets["discriminator"]
    x = batch()

    before = {name: snapshot(layer) for name, layer in nets.items()}
    train.reconstruction_phase(x, nets, opts)
    assert changed(before["encoder"], enc) == set(before["encoder"])
    assert changed(before["decoder"], dec) == set(before["decoder"])
    assert not changed(before["discriminator"], disc)

    before = {name: snapshot(layer) for name, layer in nets.items()}
    z_prior = paddle.normal(0.0, cfg.std, [x.shape[0], cfg.latent_dim])
    train.discriminator_phase(x, z_prior, nets, opts)
    assert changed(before["discriminator"], disc) == set(before["discriminator"])
    assert not changed(before["encoder"], enc)
    assert not changed(before["decoder"], dec)

    before = {name: snapshot(layer) for name, layer in nets.items()}
    train.generator_phase(x, nets, opts)
    assert changed(before["encoder"], enc) == set(before["encoder"])
    assert not changed(before["discriminator"], disc)
    assert not changed(before["decoder"], dec)
    # D's weights are trainable again after the generator phase
    assert all(not p.stop_gradient for p in disc.parameters())


def test_reconstruction_loss_falls_on_fixed_data():
    # Deterministic codes: with the reference's eps ~ N(0, 5^2) an untrained encoder's codes
    # are mostly noise and 36-pixel random patterns take far longer to learn.
    cfg = small_config(gen_lr=2e-3, encoder="deterministic")
    nets, opts = make_model(cfg)
    x = batch(n=32)
    losses = [float(train.reconstruction_phase(x, nets, opts)) for _ in range(100)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_dropout_is_inverted_bernoulli_and_masks_gradients():
    paddle.seed(3)
    layer = Dropout(0.2)
    x = paddle.ones([400, 500])
    x.stop_gradient = False
    y = layer(x)
    values = np.unique(y.numpy())
    np.testing.assert_allclose(values, [0.0, 1.25], rtol=1e-6)
    keep = (y.numpy() > 0).mean()
    assert abs(keep - 0.8) < 0.005  # 200k draws: 4.5 standard deviations
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # d(x * mask)/dx = mask
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_dropout_same_seed_same_mask():
    layer = Dropout(0.5)
    x = paddle.ones([8, 8])
    paddle.seed(5)
    first = layer(x).numpy()
    paddle.seed(5)
    np.testing.assert_array_equal(layer(x).numpy(), first)


def test_gaussian_encoder_noise_has_configured_std():
    cfg = small_config(dropout=0.0, eps_std=5.0)
    nets, _ = make_model(cfg)
    enc = nets["encoder"]
    enc.eval()
    x = batch(n=1).tile([4000, 1])
    with paddle.no_grad():
        z = enc(x).numpy()
        h = enc.model(x[:1])
        mu, scale = enc.mu(h).numpy()[0], np.exp(0.5 * enc.logvar(h).numpy()[0])
    np.testing.assert_allclose(z.mean(0), mu, atol=5 * 5.0 * scale.max() / np.sqrt(4000))
    np.testing.assert_allclose(z.std(0), 5.0 * scale, rtol=0.06)


def test_discriminator_input_noise_only_in_training_and_with_its_std():
    disc = build_networks(small_config(dropout=0.0, disc_noise=0.5), 20)["discriminator"]
    plain = build_networks(small_config(dropout=0.0), 20)["discriminator"]
    plain.set_state_dict(disc.state_dict())
    z = paddle.rand([2000, 4])
    disc.eval()
    np.testing.assert_array_equal(disc(z).numpy(), plain(z).numpy())  # eval: no noise
    disc.train()
    paddle.seed(3)
    noisy = disc(z).numpy()
    paddle.seed(3)
    noise = paddle.normal(0.0, 0.5, z.shape)  # the same draw, made by hand
    np.testing.assert_allclose(noisy, plain(z + noise).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(noisy, plain(z).numpy())
    assert abs(float(noise.std()) - 0.5) < 0.02
    with pytest.raises(UserError, match="--disc_noise must be >= 0"):
        config.parse_config("train.py", train.TRAIN_KEYS, ["--disc_noise", "-1"])


def test_network_shapes():
    cfg = small_config(latent_dim=3)
    nets, _ = make_model(cfg, in_dim=20)
    x = batch(n=5, in_dim=20)
    z = nets["encoder"](x)
    assert z.shape == [5, 3]
    assert nets["decoder"](z).shape == [5, 20]
    probs = nets["decoder"].probs(z).numpy()
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert nets["discriminator"](z).shape == [5, 1]


def test_reference_parameter_names():
    # Same names as the reference's checkpoints, so its weights can be read.
    cfg = config.Config(N=16)
    nets = build_networks(cfg, 784)
    assert sorted(nets["encoder"].state_dict()) == sorted(
        ["model.0.weight", "model.0.bias", "model.3.weight", "model.3.bias",
         "mu.weight", "mu.bias", "logvar.weight", "logvar.bias"])
    assert sorted(nets["decoder"].state_dict()) == sorted(
        f"model.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias"))
