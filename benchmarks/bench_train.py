"""Speed of one AAE training step (the three phases) against the matmul roofline.

    python benchmarks/bench_train.py                    # paper config, batch 100
    python benchmarks/bench_train.py --steps 50 --repeats 7
    python benchmarks/bench_train.py --compare_torch    # also a plain PyTorch eager step

Prints JSON: ms_per_step (median over repeats), epoch_seconds_estimate (59,000 images),
gflop_per_step (matmul FLOPs of the step, counted from the layer shapes), achieved_gflops,
matmul_roofline_gflops (the same matmuls, same shapes and transposes, timed alone on this
machine now), roofline_fraction = achieved / roofline. With --compare_torch, the plain
PyTorch step (benchmarks/torch_step.py, run in its own process) and the speed-up.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import utils.cpu_env  # noqa: E402,F401  (before paddle)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import config  # noqa: E402
import train  # noqa: E402
from utils.run import seed_everything  # noqa: E402


def step_matmuls(cfg, in_dim, batch):
    """Every matmul of one training step as (rows, in, out, kind), kind in fwd / dW / dX.

    Follows the phases in train.py: which layers run forward, which need weight gradients
    (dW) and which pass a gradient to their input (dX)."""
    n, d = cfg.N, cfg.latent_dim
    heads = [(n, d)] * (2 if cfg.encoder == "gaussian" else 1)
    enc = [(in_dim, n), (n, n)] + heads
    dec = [(d, n), (n, n), (n, in_dim)]
    disc = [(d, n), (n, n), (n, 1)]
    ops = []

    def layers(shapes, rows, fwd=True, dw=True, dx_from=0):
        for i, (a, b) in enumerate(shapes):
            if fwd:
                ops.append((rows, a, b, "fwd"))
            if dw:
                ops.append((rows, a, b, "dW"))
            if i >= dx_from:
                ops.append((rows, a, b, "dX"))

    # encoder: first layer's input is data (no dX); heads and second layer pass gradients
    layers(enc, batch, dx_from=1)                       # 1. reconstruction: encoder
    layers(dec, batch, dx_from=0)                       #    decoder (dX into the codes)
    layers(enc, batch, dw=False, dx_from=len(enc))      # 2. encoder forward, no gradients
    layers(disc, 2 * batch, dx_from=1)                  #    D on [prior; codes]
    layers(enc, batch, dx_from=1)                       # 3. generator: encoder
    layers(disc, batch, dw=False, dx_from=0)            #    D frozen, gradient to the codes
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


def time_steps(cfg, in_dim, steps, repeats, seed=0):
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    x_np = (rng.random((cfg.batch_size, in_dim)) > 0.8).astype("float32")
    model = train.LikelihoodAAE(cfg, {"x_train": x_np})
    x = paddle.to_tensor(x_np)

    for step in range(10):  # warm-up: allocator, MKL buffers
        model.step(x, None, step)
    per_repeat = []
    for _ in range(repeats):
        t = time.perf_counter()
        for step in range(steps):
            model.step(x, None, step)
        per_repeat.append((time.perf_counter() - t) / steps)
    return per_repeat


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
    parser.add_argument("--compare_torch", action="store_true",
                        help="also time a plain PyTorch eager step (needs torch installed)")
    args = parser.parse_args(argv)
    cfg = config.Config(batch_size=args.batch_size, N=args.N, encoder=args.encoder).validate()
    in_dim = 784
    paddle.set_device("cpu")

    per_step = time_steps(cfg, in_dim, args.steps, args.repeats)
    ms = 1000.0 * statistics.median(per_step)
    ops = step_matmuls(cfg, in_dim, cfg.batch_size)
    flop = sum(2.0 * rows * a * b for rows, a, b, _ in ops)
    matmul_seconds = matmul_roofline(ops, args.repeats)
    roofline = flop / matmul_seconds / 1e9
    achieved = flop / (ms / 1000.0) / 1e9
    result = {
        "ms_per_step": round(ms, 2),
        "ms_per_step_repeats": [round(1000 * s, 2) for s in per_step],
        "epoch_seconds_estimate": round(ms / 1000.0 * np.ceil(59000 / cfg.batch_size), 1),
        "gflop_per_step": round(flop / 1e9, 3),
        "achieved_gflops": round(achieved, 1),
        "matmul_roofline_gflops": round(roofline, 1),
        "matmul_ms_per_step_at_roofline": round(1000 * matmul_seconds, 2),
        "roofline_fraction": round(achieved / roofline, 3),
        "config": {"batch_size": cfg.batch_size, "N": cfg.N, "latent_dim": cfg.latent_dim,
                   "encoder": cfg.encoder, "dropout": cfg.dropout},
        "steps": args.steps, "repeats": args.repeats,
        "paddle": paddle.__version__, "python": platform.python_version(),
        "threads": utils.cpu_env.SETTINGS, "cpu": platform.processor() or platform.machine(),
    }
    if args.compare_torch:
        result["torch"] = run_torch(args.steps, args.repeats)
        if "ms_per_step" in result["torch"]:
            result["speedup_vs_torch"] = round(result["torch"]["ms_per_step"] / ms, 2)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
