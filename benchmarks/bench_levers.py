"""What the step's non-matmul levers could save, each measured side by side in one process.

    python benchmarks/bench_levers.py               # the paper config's networks, batch 100
    python benchmarks/bench_levers.py --repeats 9   # more repeats on a noisy machine

Prints JSON, ms per training step for each pair (the step's own count of calls):
- ``adam``: the four optimizers' updates as they are (one Adam call per weight tensor, 32 a
  step) against the same number of parameters held as one flat tensor per optimizer (what a
  flat parameter buffer would give);
- ``dropout_masks``: the step's ten mask draws of [batch, hidden] integers against one draw of
  all of them (the same distribution, other random numbers);
- ``dispatch``: the Table 1 step on tiny layers (8 units, batch 4), where the kernels do
  almost nothing: what Python, operator dispatch and autograd cost a step by themselves;
- ``memory_traffic``: the Adam updates' bytes (read parameter, gradient and two moments, write
  three) and the time they would take at the speed of a large copy on this machine, against
  which the measured Adam shows whether it is bound by memory.
Each figure is the minimum over repeats of the mean over ``--inner`` calls, and the order of
the two sides alternates, so a neighbour's load hits both alike. A lever worth building saves
several ms of a ~60-90 ms step; the JSON says how many.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import utils.cpu_env  # noqa: E402,F401  (before paddle)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import config  # noqa: E402
import network  # noqa: E402
from utils.steps import aae_optimizer_plan  # noqa: E402


def best_ms(fn, inner, repeats):
    """min over ``repeats`` of the mean ms of ``inner`` calls of ``fn`` (after a warm-up)."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t) / inner * 1000.0)
    return best


def side_by_side(a, b, inner, repeats):
    """(ms of a, ms of b), measured in alternating blocks."""
    ms_a = ms_b = float("inf")
    for i in range(repeats):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        t1, t2 = best_ms(first, inner, 1), best_ms(second, inner, 1)
        if i % 2 == 0:
            ms_a, ms_b = min(ms_a, t1), min(ms_b, t2)
        else:
            ms_a, ms_b = min(ms_a, t2), min(ms_b, t1)
    return ms_a, ms_b


def with_gradients(params):
    """Give every parameter a gradient (ones), as after a backward pass."""
    for p in params:
        (p * 1.0).sum().backward()
    return params


def adam_lever(cfg, inner, repeats):
    nets = network.build_networks(cfg, 784)
    plan = aae_optimizer_plan(cfg)
    groups = [with_gradients(nets[net].parameters()) for net, _, _ in plan.values()]
    per_tensor = [paddle.optimizer.Adam(1e-4, parameters=g) for g in groups]
    sizes = [sum(int(np.prod(p.shape)) for p in g) for g in groups]
    flats = [with_gradients([paddle.create_parameter([n], "float32")]) for n in sizes]
    flat = [paddle.optimizer.Adam(1e-4, parameters=f) for f in flats]
    ms_tensors, ms_flat = side_by_side(lambda: [o.step() for o in per_tensor],
                                       lambda: [o.step() for o in flat], inner, repeats)
    return {"calls_per_step": sum(len(g) for g in groups), "parameters_per_step": sum(sizes),
            "per_tensor_ms": round(ms_tensors, 3), "one_flat_tensor_per_optimizer_ms":
            round(ms_flat, 3), "saving_ms": round(ms_tensors - ms_flat, 3)}, sum(sizes)


def mask_lever(cfg, inner, repeats, draws=10):
    shape = [cfg.batch_size, cfg.N]
    resolution = 1 << 24  # network.py's

    def many():
        for _ in range(draws):
            paddle.randint(0, resolution, shape, dtype="int32")

    def one():
        paddle.randint(0, resolution, [draws] + shape, dtype="int32")

    ms_many, ms_one = side_by_side(many, one, inner, repeats)
    return {"draws_per_step": draws, "shape": shape, "separate_draws_ms": round(ms_many, 3),
            "one_draw_ms": round(ms_one, 3), "saving_ms": round(ms_many - ms_one, 3)}


def dispatch_cost(inner, repeats):
    """ms per step of the Table 1 step's operators with (almost) no arithmetic in them."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_train
    cfg = config.Config(N=8, batch_size=4).validate()
    model, x, _ = bench_train.build_model(cfg, 784)
    x = x[:cfg.batch_size]
    steps = iter(range(10 ** 9))
    return {"tiny_step_ms": round(best_ms(lambda: model.step(x, None, next(steps)), inner,
                                          repeats), 3), "N": cfg.N, "batch_size": cfg.batch_size}


def memory_traffic(parameters, inner, repeats):
    """Adam's bytes a step, and their time at the speed of a large float32 copy."""
    src = paddle.rand([8_000_000])
    dst = paddle.zeros([8_000_000])
    ms_copy = best_ms(lambda: paddle.assign(src, dst), inner, repeats)
    gb_per_s = 2 * 4 * 8_000_000 / (ms_copy / 1000.0) / 1e9  # read + write
    adam_bytes = 7 * 4 * parameters
    return {"copy_gb_per_s": round(gb_per_s, 1), "adam_bytes_per_step": adam_bytes,
            "adam_ms_at_copy_speed": round(adam_bytes / gb_per_s / 1e6, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inner", type=int, default=20, help="calls per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="blocks per side; the best counts")
    args = parser.parse_args(argv)
    if args.inner < 1 or args.repeats < 1:
        parser.error("--inner and --repeats must be >= 1")
    paddle.set_device("cpu")
    cfg = config.Config().validate()  # the paper config
    adam, parameters = adam_lever(cfg, args.inner, args.repeats)
    return {"adam": adam, "dropout_masks": mask_lever(cfg, args.inner, args.repeats),
            "dispatch": dispatch_cost(args.inner, args.repeats),
            "memory_traffic": memory_traffic(parameters, args.inner, args.repeats),
            "threads": utils.cpu_env.SETTINGS, "paddle": paddle.__version__}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
