"""Time the Parzen-window evaluation at the paper's sizes on synthetic MNIST-like data.

    python benchmarks/bench_parzen.py [--n_gen 10000 --n_valid 1000 --n_test 10000
                                       --sigmas 20 --repeats 3 --block_size 0 --n_threads 0
                                       --check_points 100]

Stages timed (median of --repeats):
  cross_validation: valid x samples for all sigmas (logspace(-1, -0.3, sigmas), as eval.py);
  test_ll:          test x samples at the chosen sigma.
Accuracy: the largest |LL_fast - LL_float64| over --check_points test points, at every sigma
(the smallest sigma is the hardest case). Prints the figures as JSON.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from utils.parzen_ll import (cross_validate_sigma, default_block_size,  # noqa: E402
                             default_threads, parzen_log_likelihood,
                             parzen_log_likelihood_direct)


def mnist_like(n, rng, side=28, n_classes=10, n_strokes=3):
    """[n, side*side] float32 images in [0, 1] shaped roughly like MNIST digits.

    Each class is a fixed set of line segments; an image is its class's strokes, shifted and
    jittered by ``rng``, drawn ~2.5 pixels thick with a soft edge. About 16% of pixels are
    non-zero (MNIST: 19%), about half of those at 1, and an image's nearest neighbour among
    10,000 others is much closer than a typical image, as in real data.
    """
    stroke_rng = np.random.default_rng(12345)  # the class shapes are the same for every call
    strokes = stroke_rng.uniform(7, side - 7, size=(n_classes, n_strokes, 2, 2))
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    labels = rng.integers(0, n_classes, n)
    images = np.empty((n, side * side), np.float32)
    for i, label in enumerate(labels):
        img = np.zeros((side, side), np.float32)
        shift = rng.normal(0.0, 1.5, size=2)
        for start, end in strokes[label]:
            start = start + shift + rng.normal(0.0, 1.0, 2)
            end = end + shift + rng.normal(0.0, 1.0, 2)
            seg = end - start
            # distance of every pixel to the segment start-end
            t = np.clip(((rows - start[0]) * seg[0] + (cols - start[1]) * seg[1])
                        / (seg @ seg + 1e-6), 0.0, 1.0)
            dist = np.hypot(rows - (start[0] + t * seg[0]), cols - (start[1] + t * seg[1]))
            img = np.maximum(img, np.clip(2.5 - dist, 0.0, 1.0))
        images[i] = img.ravel()
    return images


def _median_seconds(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_gen", type=int, default=10000, help="generated samples (centres)")
    parser.add_argument("--n_valid", type=int, default=1000, help="validation points")
    parser.add_argument("--n_test", type=int, default=10000, help="test points")
    parser.add_argument("--sigmas", type=int, default=20, help="sigmas cross-validated")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per stage")
    parser.add_argument("--block_size", type=int, default=0,
                        help="rows of x per block; 0 = the library's default")
    parser.add_argument("--n_threads", type=int, default=0,
                        help="worker threads; 0 = usable cores")
    parser.add_argument("--check_points", type=int, default=100,
                        help="test points compared with the float64 direct computation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    samples = mnist_like(args.n_gen, rng)
    valid = mnist_like(args.n_valid, rng)
    test = mnist_like(args.n_test, rng)
    sigmas = np.logspace(-1.0, -0.3, args.sigmas)
    n_threads = args.n_threads or default_threads()
    opts = dict(block_size=args.block_size or None, n_threads=n_threads)

    cv_s, cv_all, cv = _median_seconds(
        lambda: cross_validate_sigma(samples, valid, sigmas, **opts), args.repeats)
    test_s, test_all, test_ll = _median_seconds(
        lambda: parzen_log_likelihood(test, samples, cv["sigma"], **opts), args.repeats)

    check = test[:args.check_points]
    fast = parzen_log_likelihood(check, samples, sigmas, **opts)
    exact = parzen_log_likelihood_direct(check, samples, sigmas)
    err_per_sigma = np.abs(fast - exact).max(axis=1)

    return dict(
        sizes=dict(n_gen=args.n_gen, n_valid=args.n_valid, n_test=args.n_test,
                   dim=int(samples.shape[1]), sigmas=args.sigmas),
        n_threads=n_threads,
        block_size=dict(cross_validation=args.block_size or default_block_size(
                            args.n_valid, args.n_gen, n_threads),
                        test_ll=args.block_size or default_block_size(
                            args.n_test, args.n_gen, n_threads)),
        cross_validation_s=round(cv_s, 3),
        test_ll_s=round(test_s, 3),
        total_s=round(cv_s + test_s, 3),
        runs_s=dict(cross_validation=[round(t, 3) for t in cv_all],
                    test_ll=[round(t, 3) for t in test_all]),
        best_sigma=cv["sigma"],
        # sigma chosen on the check points alone, by each method: should agree
        check_points_best_sigma=dict(fast=float(sigmas[int(np.argmax(fast.mean(axis=1)))]),
                                     float64=float(sigmas[int(np.argmax(exact.mean(axis=1)))])),
        test_ll_mean=float(test_ll.mean()),
        check_points=len(check),
        max_abs_error_nats=float(err_per_sigma.max()),
        max_abs_error_at_sigma=float(sigmas[int(np.argmax(err_per_sigma))]),
        max_abs_error_at_largest_sigma=float(err_per_sigma[-1]),
    )


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
