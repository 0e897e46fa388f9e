"""Compare two .npy arrays (the TIPC chain: predict.py's dynamic output against infer.py's
static one); exit code 1 with one line when they differ by more than --atol.

    python test_tipc/compare_outputs.py predict.npy infer.npy --atol 1e-4
"""
import argparse
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dynamic")
    parser.add_argument("static")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    try:
        a, b = np.load(args.dynamic), np.load(args.static)
    except (OSError, ValueError) as err:
        print(f"error: cannot read the outputs to compare ({err})", file=sys.stderr)
        return 1
    if a.shape != b.shape:
        print(f"error: {args.dynamic} has shape {a.shape}, {args.static} {b.shape}",
              file=sys.stderr)
        return 1
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    agree = diff <= args.atol
    print(f"dynamic vs static: max |difference| = {diff:.3g} ({'within' if agree else 'above'} "
          f"{args.atol:g})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
