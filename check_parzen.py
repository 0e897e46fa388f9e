"""Re-derive eval.py's log-likelihood from its saved samples with a plain float64 estimator.

eval.py computes the Parzen window in float32 with a distance expansion (fast, utils/
parzen_ll.py). This script recomputes the figure it reported from the samples it saved, with
``parzen_log_likelihood_direct``: explicit float64 differences x_i - g_j, no expansion, no
float32 (slow: a few minutes for 10,000 x 10,000 images on 2 cores).

    python eval.py --save_samples logs/samples.npy
    python check_parzen.py                    # reads logs/eval.json, logs/samples.npy

It uses the sigma, the samples file and the number of test images recorded in
<logs_dir>/eval.json, prints both figures and their difference, writes
<logs_dir>/check_parzen.json, and exits with status 1 if they differ by more than 0.01 nats.
"""
import json
import math
import os
import time

import numpy as np

import config
from data_maker import load_split
from utils.errors import UserError, run_cli
from utils.log import write_result_json
from utils.parzen_ll import mean_and_standard_error, parzen_log_likelihood_direct

CHECK_KEYS = ["data_dir", "logs_dir"]
TOLERANCE_NATS = 0.01
POINTS_PER_UPDATE = 100  # test images per progress-bar update


def read_eval_result(logs_dir):
    """eval.json of ``logs_dir``, which must name the samples file eval.py saved."""
    path = os.path.join(logs_dir, "eval.json")
    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run python eval.py --logs_dir {logs_dir} "
                        f"--save_samples {os.path.join(logs_dir, 'samples.npy')} first")
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({err}); run eval.py again") from None
    again = (f"run python eval.py --logs_dir {logs_dir} --save_samples "
             f"{os.path.join(logs_dir, 'samples.npy')} again")
    if not isinstance(result, dict):
        raise UserError(f"{path} holds a JSON {type(result).__name__}, not eval.py's record; "
                        f"{again}")
    if "samples" in result and not result["samples"]:
        raise UserError(f"{path} was written without --save_samples: {again}")
    missing = [key for key in ("samples", "sigma", "n_test", "ll_mean") if key not in result]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: not eval.py's record; {again}")

    def number(key):
        value = result[key]
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))

    problems = []
    if not isinstance(result["samples"], str):
        problems.append(f"samples is {result['samples']!r}, not a file name")
    if not (number("sigma") and 1e-15 <= result["sigma"] <= 1e15):  # eval.py's --sigma range
        problems.append(f"sigma is {result['sigma']!r}, not a number from 1e-15 to 1e15")
    if not (isinstance(result["n_test"], int) and not isinstance(result["n_test"], bool)
            and result["n_test"] > 0):
        problems.append(f"n_test is {result['n_test']!r}, not a positive whole number")
    if not number("ll_mean"):
        problems.append(f"ll_mean is {result['ll_mean']!r}, not a number")
    if problems:
        raise UserError(f"{path}: {'; '.join(problems)}; {again}")
    return result


def read_samples(path, n_pixels):
    """The samples eval.py saved: a non-empty [n, n_pixels] array of finite numbers."""
    fix = "run eval.py again with --save_samples"
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = "it is empty" if isinstance(err, EOFError) else err
        raise UserError(f"samples file {path} (named in eval.json) cannot be read "
                        f"({reason}); {fix}") from None
    if not isinstance(samples, np.ndarray):  # an .npz archive
        samples.close()
        raise UserError(f"samples file {path} is an .npz archive, not eval.py's .npy; {fix}")
    if samples.ndim != 2 or samples.shape[1] != n_pixels or len(samples) == 0:
        raise UserError(f"{path} holds an array of shape {samples.shape}, not [n, {n_pixels}] "
                        f"images (n > 0); {fix}")
    if samples.dtype.kind not in "fiub":
        raise UserError(f"{path} holds {samples.dtype} values, not pixel values; {fix}")
    if not np.isfinite(samples).all():
        raise UserError(f"{path} holds values that are not finite numbers (NaN or inf); {fix}")
    return samples


def main(argv=None):
    cfg = config.parse_config("check_parzen.py", CHECK_KEYS, argv,
                              description=__doc__.split("\n")[0])
    t0 = time.perf_counter()
    reported = read_eval_result(cfg.logs_dir)
    x_test = load_split(cfg.data_dir, parts=("test",))["x_test"]
    if reported["n_test"] > len(x_test):
        raise UserError(f"eval.json in {cfg.logs_dir} reports {reported['n_test']} test images, "
                        f"{cfg.data_dir} holds {len(x_test)}: give the --data_dir eval.py used")
    x_test = x_test[:reported["n_test"]]
    samples = read_samples(reported["samples"], x_test.shape[1])

    from tqdm import tqdm
    ll = []
    with tqdm(total=len(x_test), desc="float64 Parzen", disable=None) as bar:
        for start in range(0, len(x_test), POINTS_PER_UPDATE):
            block = x_test[start:start + POINTS_PER_UPDATE]
            ll.append(parzen_log_likelihood_direct(block, samples, reported["sigma"]))
            bar.update(len(block))
    mean, se = mean_and_standard_error(np.concatenate(ll))
    difference = mean - reported["ll_mean"]
    result = {"ll_mean_float64": mean, "ll_se_float64": se,
              "ll_mean_reported": reported["ll_mean"], "difference": difference,
              "sigma": reported["sigma"], "n_test": len(x_test),
              "n_samples": len(samples), "samples": reported["samples"],
              "agrees": abs(difference) <= TOLERANCE_NATS,
              "seconds": time.perf_counter() - t0}
    write_result_json(os.path.join(cfg.logs_dir, "check_parzen.json"), result,
                      "check the samples and the sigma recorded in eval.json (run eval.py "
                      "again with --save_samples)")
    print(f"float64: LL = {mean:.4f} ± {se:.2f}; eval.py reported {reported['ll_mean']:.4f}; "
          f"difference {difference:+.4f} nats (sigma = {reported['sigma']:.4f})")
    return result


class Mismatch(UserError):
    """The float64 figure differs from the reported one: exit status 1, not a usage error."""
    exit_code = 1


def check(argv=None):
    """The command: ``main``, then a non-zero exit status when the two figures disagree."""
    if not main(argv)["agrees"]:
        raise Mismatch(f"the two differ by more than {TOLERANCE_NATS} nats")


if __name__ == "__main__":
    run_cli(check)
