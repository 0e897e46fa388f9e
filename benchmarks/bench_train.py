"""Speed of one AAE training step (the three phases) against the matmul roofline.

    python benchmarks/bench_train.py                    # paper config, batch 100
    python benchmarks/bench_train.py --steps 50 --repeats 7
    python benchmarks/bench_train.py --compare_torch    # also a plain PyTorch eager step
    python benchmarks/bench_train.py --preset semi_100  # that family's own step
    python benchmarks/bench_train.py --profile          # also ms per kind of kernel

Prints JSON: ms_per_step (median over repeats), epoch_seconds_estimate (59,000 images),
gflop_per_step (matmul FLOPs of the step, counted from the layer shapes), achieved_gflops,
matmul_roofline_gflops (the same matmuls, same shapes and transposes, timed alone on this
machine now), roofline_fraction = achieved / roofline. With --compare_torch, the plain
PyTorch step (benchmarks/torch_step.py, run in its own process) and the speed-up.

``--preset NAME`` times the step of that preset's family (semi-supervised, clustering,
supervised, ...) on random binary images with random labels, its matmuls counted from a step of
its own (every Linear call, its weight gradient and its input gradient). ``--profile`` runs further steps under paddle.profiler and adds ``profile``: ms per
step of the kernels by kind (matmul, optimizer, random numbers, other kernels) and the rest of
the profiled step (framework overhead: Python, dispatch, autograd bookkeeping); the profiler
slows the step, so its total is given beside the unprofiled ms_per_step.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import utils.cpu_env  # noqa: E402,F401  (before paddle)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import config  # noqa: E402
import families  # noqa: E402
from utils.run import seed_everything  # noqa: E402


def step_matmuls(model, x, y):
    """Every matmul of one training step of ``model`` (a family built by build_model) as
    (rows, in, out, kind), kind in fwd / dW / dX, read off the step itself: each Linear call
    runs its forward matmul, a weight gradient (dW) if gradients are recorded and its weight is
    not frozen, and a gradient to its input (dX) if that input needs one. The step runs once
    (it updates the weights), so any family and architecture is counted as it really runs."""
    ops = []

    def hook(layer, inputs, output):
        rows, (a, b) = inputs[0].shape[0], layer.weight.shape
        ops.append((rows, a, b, "fwd"))
        if paddle.is_grad_enabled():
            if not layer.weight.stop_gradient:
                ops.append((rows, a, b, "dW"))
            if not inputs[0].stop_gradient:
                ops.append((rows, a, b, "dX"))

    handles = [layer.register_forward_post_hook(hook) for net in model.nets.values()
               for layer in net.sublayers() if isinstance(layer, paddle.nn.Linear)]
    try:
        model.step(x, y, 0)
    finally:
        for handle in handles:
            handle.remove()
    return ops


def matmul_roofline(ops, repeats, inner=20):
    """Seconds per step spent by the step's matmuls alone at this machine's MKL rate."""
    shapes = {}
    for rows, a, b, kind in ops:
        shapes[(rows, a, b, kind)] = shapes.get((rows, a, b, kind), 0) + 1
    total = 0.0
    for (rows, a, b, kind), count in shapes.items():
        if kind == "fwd":        # [rows, a] @ [a, b]
            x, y, tx, ty = paddle.rand([rows, a]), paddle.rand([a, b]), False, False
        elif kind == "dX":       # [rows, b] @ [a, b]^T
            x, y, tx, ty = paddle.rand([rows, b]), paddle.rand([a, b]), False, True
        else:                    # dW: [rows, a]^T @ [rows, b]
            x, y, tx, ty = paddle.rand([rows, a]), paddle.rand([rows, b]), True, False
        for _ in range(3):
            paddle.matmul(x, y, tx, ty)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(inner):
                paddle.matmul(x, y, tx, ty)
            times.append((time.perf_counter() - t) / inner)
        total += count * min(times)  # the rate MKL reaches: best of the repeats
    return total


def fake_data(cfg, in_dim, seed=0):
    """Random binary images with balanced random labels, in load_split's layout: enough for
    any family's constructor (its labelled subset, its validation images)."""
    rng = np.random.default_rng(seed)
    # as many images as the family's labelled and unlabelled sets ask for (gmm_labels: 1,000
    # of each digit and 40,000 others), at most the 60,000 of MNIST
    n = max(1000, cfg.batch_size,
            min(cfg.n_labeled + cfg.n_unlabeled, config.MNIST_COUNTS["train"]))
    def images(rows):
        return (rng.random((rows, in_dim)) > 0.8).astype("float32")
    return {"x_train": images(n), "y_train": np.arange(n) % 10,
            "x_valid": images(100), "y_valid": np.arange(100) % 10}


def build_model(cfg, in_dim, seed=0):
    seed_everything(seed)
    data = fake_data(cfg, in_dim, seed)
    model = families.get(cfg.labels)(cfg, data)
    x = paddle.to_tensor(data["x_train"][:cfg.batch_size])
    y = paddle.to_tensor(data["y_train"][:cfg.batch_size])
    return model, x, y


def time_steps(cfg, in_dim, steps, repeats, seed=0):
    model, x, y = build_model(cfg, in_dim, seed)
    for step in range(10):  # warm-up: allocator, MKL buffers
        model.step(x, y, step)
    per_repeat = []
    for _ in range(repeats):
        t = time.perf_counter()
        for step in range(steps):
            model.step(x, y, step)
        per_repeat.append((time.perf_counter() - t) / steps)
    return per_repeat


KINDS = (("matmul", ("matmul",)), ("optimizer", ("adam", "momentum", "sgd")),
         ("random", ("randint", "uniform", "gaussian", "bernoulli", "dropout")))


def kernel_kind(name):
    """The kind of a kernel by its name (paddle.profiler's DygraphKernelLaunch events)."""
    for kind, prefixes in KINDS:
        if name.startswith(prefixes):
            return kind
    return "other_kernels"


def profile_steps(cfg, in_dim, steps, seed=0):
    """ms per step of each kind of kernel, and of the rest, over ``steps`` profiled steps."""
    import glob
    import tempfile
    import paddle.profiler as profiler
    model, x, y = build_model(cfg, in_dim, seed)
    for step in range(5):
        model.step(x, y, step)
    # the profiler prints a summary on stdout, where this script's JSON goes: send it to stderr
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                                 on_trace_ready=profiler.export_chrome_tracing(folder))
        prof.start()
        t = time.perf_counter()
        for step in range(steps):
            model.step(x, y, step)
            prof.step()
        wall = (time.perf_counter() - t) / steps
        prof.stop()
        with open(sorted(glob.glob(os.path.join(folder, "*.json")))[-1]) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    ms = {kind: 0.0 for kind, _ in KINDS}
    ms["other_kernels"] = 0.0
    kernels = {}
    for e in events:
        if e.get("ph") == "X" and e.get("cat") == "DygraphKernelLaunch":
            name = e["name"].split(" ")[0]
            ms[kernel_kind(name)] += e["dur"] / 1000.0 / steps  # microseconds -> ms per step
            kernels[name] = kernels.get(name, 0.0) + e["dur"] / 1000.0 / steps
    ms = {k: round(v, 2) for k, v in ms.items()}
    ms["framework_overhead"] = round(1000 * wall - sum(ms.values()), 2)
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:12]
    return {"profiled_ms_per_step": round(1000 * wall, 2), "ms_per_step_by_kind": ms,
            "top_kernels_ms": {k: round(v, 2) for k, v in top}, "steps": steps}


def run_torch(steps, repeats):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_step.py")
    proc = subprocess.run([sys.executable, script, "--steps", str(steps),
                           "--repeats", str(repeats)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--N", type=int, default=1200)
    parser.add_argument("--encoder", default="gaussian", choices=("gaussian", "deterministic"))
    parser.add_argument("--preset", choices=sorted(config.PRESETS),
                        help="time this preset's family and settings (its --N, --batch_size ...)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the step: ms per kind of kernel and the overhead")
    parser.add_argument("--compare_torch", action="store_true",
                        help="also time a plain PyTorch eager step (needs torch installed)")
    args = parser.parse_args(argv)
    if args.preset:
        cfg = config.Config(**config.PRESETS[args.preset][1]).validate()
    else:
        cfg = config.Config(batch_size=args.batch_size, N=args.N, encoder=args.encoder).validate()
    in_dim = 784
    paddle.set_device("cpu")

    per_step = time_steps(cfg, in_dim, args.steps, args.repeats)
    ms = 1000.0 * statistics.median(per_step)
    ops = step_matmuls(*build_model(cfg, in_dim))
    flop = matmul_seconds = None
    result = {
        "preset": args.preset,
        "ms_per_step": round(ms, 2),
        "ms_per_step_repeats": [round(1000 * s, 2) for s in per_step],
        "epoch_seconds_estimate": round(ms / 1000.0 * np.ceil(59000 / cfg.batch_size), 1),
        "config": {"batch_size": cfg.batch_size, "N": cfg.N, "latent_dim": cfg.latent_dim,
                   "encoder": cfg.encoder, "dropout": cfg.dropout, "labels": cfg.labels},
        "steps": args.steps, "repeats": args.repeats,
        "paddle": paddle.__version__, "python": platform.python_version(),
        "threads": utils.cpu_env.SETTINGS, "cpu": platform.processor() or platform.machine(),
    }
    if ops:
        flop = sum(2.0 * rows * a * b for rows, a, b, _ in ops)
        matmul_seconds = matmul_roofline(ops, args.repeats)
        roofline = flop / matmul_seconds / 1e9
        achieved = flop / (ms / 1000.0) / 1e9
        result.update({"gflop_per_step": round(flop / 1e9, 3),
                       "achieved_gflops": round(achieved, 1),
                       "matmul_roofline_gflops": round(roofline, 1),
                       "matmul_ms_per_step_at_roofline": round(1000 * matmul_seconds, 2),
                       "roofline_fraction": round(achieved / roofline, 3)})
    if args.profile:
        result["profile"] = profile_steps(cfg, in_dim, args.steps)
    if args.compare_torch:
        result["torch"] = run_torch(args.steps, args.repeats)
        if "ms_per_step" in result["torch"]:
            result["speedup_vs_torch"] = round(result["torch"]["ms_per_step"] / ms, 2)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
