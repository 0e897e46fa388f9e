"""benchmarks/bench_train.py counts the matmuls each family's step really runs, and its
profile sorts the kernels by kind."""
import os
import sys

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import bench_train  # noqa: E402
import config  # noqa: E402


def layer_matmuls(ops, shapes, rows, dw=True, dx_from=0):
    """Append the matmuls of a stack of Linear layers of ``shapes`` [(in, out)] on ``rows``
    rows: each forward, its weight gradient (``dw``), and the gradient to its input for the
    layers from index ``dx_from`` on (len(shapes): none)."""
    for i, (a, b) in enumerate(shapes):
        ops.append((rows, a, b, "fwd"))
        if dw:
            ops.append((rows, a, b, "dW"))
        if i >= dx_from:
            ops.append((rows, a, b, "dX"))


def likelihood_phases(cfg, in_dim, batch):
    """The Table 1 step's matmuls derived by hand from train.py's three phases."""
    n, d = cfg.N, cfg.latent_dim
    enc = [(in_dim, n), (n, n)] + [(n, d)] * (2 if cfg.encoder == "gaussian" else 1)
    dec, disc = [(d, n), (n, n), (n, in_dim)], [(d, n), (n, n), (n, 1)]
    ops = []
    layer_matmuls(ops, enc, batch, dx_from=1)                 # 1. encoder (input: data)
    layer_matmuls(ops, dec, batch)                            #    decoder, dX into the codes
    layer_matmuls(ops, enc, batch, dw=False, dx_from=len(enc))  # 2. codes under no_grad
    layer_matmuls(ops, disc, 2 * batch, dx_from=1)            #    D on [prior; codes]
    layer_matmuls(ops, enc, batch, dx_from=1)                 # 3. generator: encoder
    layer_matmuls(ops, disc, batch, dw=False)                 #    D frozen, dX to the codes
    return ops


def categorical_phases(cfg, in_dim, batch):
    """The same for families/categorical.py's four phases."""
    n, d, k = cfg.N, cfg.latent_dim, cfg.n_categories
    enc = [(in_dim, n), (n, n), (n, k), (n, d)]
    dec = [(d + k, n), (n, n), (n, in_dim)]
    disc_z, disc_y = [(d, n), (n, n), (n, 1)], [(k, n), (n, n), (n, 1)]
    ops = []
    layer_matmuls(ops, enc, batch, dx_from=1)                 # 1. reconstruction
    layer_matmuls(ops, dec, batch)
    layer_matmuls(ops, enc, batch, dw=False, dx_from=4)       # 2. codes under no_grad
    layer_matmuls(ops, disc_z, 2 * batch, dx_from=1)          #    D_z, D_y on [prior; codes]
    layer_matmuls(ops, disc_y, 2 * batch, dx_from=1)
    layer_matmuls(ops, enc, batch, dx_from=1)                 # 3. generator
    layer_matmuls(ops, disc_z, batch, dw=False)               #    both D frozen
    layer_matmuls(ops, disc_y, batch, dw=False)
    if cfg.labels == "semi_supervised":                       # 4. classification: q(y|x)
        layer_matmuls(ops, enc[:3], batch, dx_from=1)
    return ops


@pytest.mark.parametrize("preset", ["likelihood", "likelihood_deterministic", "semi_100",
                                    "cluster_16", "semi_100_paper"])
def test_counted_matmuls_are_the_phases_of_the_paper(preset):
    """The benchmark reads each matmul off a real step; for the Table 1 model and the
    categorical AAE the count (forward, weight and input gradients) is the one derived by hand
    from their phases (paper §2 and §5-6)."""
    cfg = config.Config(**{**config.PRESETS[preset][1], "N": 24, "batch_size": 8}).validate()
    phases = likelihood_phases if cfg.labels == "none" else categorical_phases
    expected = phases(cfg, 784, cfg.batch_size)
    assert sorted(bench_train.step_matmuls(*bench_train.build_model(cfg, 784))) == \
        sorted(expected)


def test_counted_matmuls_follow_the_family_and_architecture():
    """Families without a hand count get theirs from the step too: the label-conditioned
    discriminator sees 11 more inputs (§2.3), PyTorch-GAN's discriminator narrows to N/2, the
    classifier baseline runs only its encoder's hidden layers and q(y|x) head."""
    def counted(preset):
        cfg = config.Config(**{**config.PRESETS[preset][1], "N": 24, "batch_size": 8}).validate()
        return cfg, bench_train.step_matmuls(*bench_train.build_model(cfg, 784))

    cfg, ops = counted("gmm_labels")
    assert (16, cfg.latent_dim + 11, 24, "fwd") in ops
    cfg, ops = counted("likelihood_pytorch_gan")
    assert (8, 24, 12, "fwd") in ops and (8, 12, 1, "fwd") in ops
    cfg, ops = counted("classifier_100")
    assert sorted({(a, b) for _, a, b, _ in ops}) == [(24, 10), (24, 24), (784, 24)]
    assert all(kind != "dX" or a != 784 for _, a, _, kind in ops)  # no gradient to the images


def test_kernels_are_sorted_by_kind():
    kinds = {name: bench_train.kernel_kind(name) for name in
             ("matmul", "matmul_grad", "adam", "momentum", "randint", "uniform", "relu", "add")}
    assert kinds == {"matmul": "matmul", "matmul_grad": "matmul", "adam": "optimizer",
                     "momentum": "optimizer", "randint": "random", "uniform": "random",
                     "relu": "other_kernels", "add": "other_kernels"}


def test_profile_finds_matmuls_and_optimizer_updates():
    cfg = config.Config(N=32, batch_size=16).validate()
    profile = bench_train.profile_steps(cfg, 784, steps=2)
    by_kind = profile["ms_per_step_by_kind"]
    assert by_kind["matmul"] > 0 and by_kind["optimizer"] > 0 and by_kind["random"] > 0
    assert "adam" in profile["top_kernels_ms"]
    assert sum(by_kind.values()) == pytest.approx(profile["profiled_ms_per_step"], abs=0.1)


def test_preset_table_counts_the_batches_train_py_runs(mnist_dir):
    """bench_presets.py's seconds per epoch use the batches of the epoch train.py runs: 590 for
    the 59,000 images at batch 100, fewer where a family keeps fewer images (gmm_labels'
    labelled-prior subset, paper §2.3) or a preset sets a larger batch."""
    import bench_presets
    counts = {name: bench_presets.batches_per_epoch(config.PRESETS[name][1], mnist_dir)[0]
              for name in ("likelihood", "semi_100", "classifier_100", "cluster_16",
                           "gmm_labels", "gaussian_2d")}
    assert counts["likelihood"] == counts["semi_100"] == counts["classifier_100"] == 590
    assert counts["cluster_16"] == 590
    assert counts["gmm_labels"] == 500
    cfg = config.Config(**config.PRESETS["gaussian_2d"][1]).validate()
    assert counts["gaussian_2d"] == -(-59000 // cfg.batch_size)


def test_preset_table_refuses_an_unknown_preset(capsys):
    import bench_presets
    with pytest.raises(SystemExit) as stop:
        bench_presets.main(["--presets", "likelihood", "no_such_preset"])
    assert stop.value.code == 2
    assert "--presets: unknown no_such_preset" in capsys.readouterr().err


def test_lever_benchmark_counts_the_steps_own_updates():
    """bench_levers.py times the updates the step makes: the four optimizers' 28 weight
    tensors and all 8.65 M parameters they touch (the encoder's twice), and Adam's memory
    traffic is seven float32 passes over them."""
    import bench_levers
    import network
    result = bench_levers.main(["--inner", "1", "--repeats", "1"])
    nets = network.build_networks(config.Config().validate(), 784)
    sizes = {name: sum(int(np.prod(p.shape)) for p in net.parameters())
             for name, net in nets.items()}
    adam = result["adam"]
    assert adam["calls_per_step"] == 2 * len(nets["encoder"].parameters()) + \
        len(nets["decoder"].parameters()) + len(nets["discriminator"].parameters()) == 28
    assert adam["parameters_per_step"] == 2 * sizes["encoder"] + sizes["decoder"] + \
        sizes["discriminator"]
    assert result["memory_traffic"]["adam_bytes_per_step"] == 28 * adam["parameters_per_step"]
    assert result["dropout_masks"]["draws_per_step"] == 10


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_every_preset_builds_and_steps_on_the_benchmarks_data(preset):
    """bench_presets.py times every preset: the benchmark's made-up data must satisfy each
    family (gmm_labels asks for 1,000 labelled images of each digit and 40,000 others)."""
    cfg = config.Config(**{**config.PRESETS[preset][1], "N": 8}).validate()
    model, x, y = bench_train.build_model(cfg, 784)
    losses = model.step(x, y, 0)
    assert losses and all(np.isfinite(v) for v in losses.values())
