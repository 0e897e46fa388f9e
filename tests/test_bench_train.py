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


def forward_rows_in_out(cfg, in_dim=784):
    """(rows, in, out) of every Linear call during one step of the family, via hooks."""
    model, x, y = bench_train.build_model(cfg, in_dim)
    calls = []

    def hook(layer, inputs, output):
        calls.append((inputs[0].shape[0], layer.weight.shape[0], layer.weight.shape[1]))

    handles = [layer.register_forward_post_hook(hook) for net in model.nets.values()
               for layer in net.sublayers() if isinstance(layer, paddle.nn.Linear)]
    model.step(x, y, 0)
    for h in handles:
        h.remove()
    return sorted(calls)


@pytest.mark.parametrize("preset", ["likelihood", "likelihood_deterministic", "semi_100",
                                    "cluster_16", "semi_100_paper"])
def test_counted_forward_matmuls_are_the_ones_the_step_runs(preset):
    cfg = config.Config(**{**config.PRESETS[preset][1], "N": 24, "batch_size": 8}).validate()
    if cfg.labels == "none":
        ops = bench_train.step_matmuls(cfg, 784, cfg.batch_size)
    else:
        ops = bench_train.categorical_step_matmuls(cfg, 784, cfg.batch_size)
    counted = sorted((rows, a, b) for rows, a, b, kind in ops if kind == "fwd")
    assert counted == forward_rows_in_out(cfg)


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
