"""Wall time of each stage of `python eval.py` with the default sizes.

    python benchmarks/bench_eval.py                         # a freshly initialised paper model
    python benchmarks/bench_eval.py --checkpoint model/model199.npz --repeats 3

Runs eval.main (10,000 generated samples, 20-sigma cross-validation on the 1,000 validation
images, log-likelihood of the 10,000 test images) and prints JSON: the median seconds of each
stage over the repeats (load, generate, cross_validate, test), the whole of eval.main (after
Paddle is imported), and the process's peak resident memory. Needs the split of
`python data_maker.py`. Outputs go to a temporary folder.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import utils.cpu_env  # noqa: E402,F401  (before paddle)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import paddle  # noqa: E402

import config  # noqa: E402
import eval as evaluate  # noqa: E402
from network import build_networks  # noqa: E402
from utils import checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to evaluate (default: an untrained paper-config model; "
                             "the timings do not depend on the weights)")
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "data"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint
        if path is None:
            cfg = config.Config()
            paddle.seed(0)
            path = os.path.join(tmp, "untrained.npz")
            checkpoint.save(path, build_networks(cfg, 784), {"config": cfg.to_dict()})
        stages, totals, result = {}, [], None
        for _ in range(args.repeats):
            t = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON only
                result = evaluate.main(["--checkpoint", path, "--data_dir", args.data_dir,
                                        "--images_dir", tmp, "--logs_dir", tmp])
            totals.append(time.perf_counter() - t)
            for stage, seconds in result["timings"].items():
                stages.setdefault(stage, []).append(seconds)
    return {
        "seconds_per_stage": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "eval_main_seconds": round(statistics.median(totals), 3),
        "eval_main_seconds_repeats": [round(t, 3) for t in totals],
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_gen": result["n_gen"], "n_valid": result["n_valid"], "n_test": result["n_test"],
        "sigmas": len(result["sigma_grid"] or []),
        "ll_mean": round(result["ll_mean"], 3), "checkpoint": args.checkpoint or "untrained",
        "threads": utils.cpu_env.SETTINGS,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
