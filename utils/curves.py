"""Figures read off a run's learning curve: the lowest, highest and mean value of one column of
train.py's ``loss.csv`` over a range of epochs. The README's "between X% and Y% (mean Z%) over
epochs A-B" sentences come from this, so each can be re-derived from the committed logs:

    python -m utils.curves results/semi_100/loss.csv --epochs 35-66
    python -m utils.curves results/semi_1000/loss.csv --epochs 5-99 --column class_loss
"""
import argparse
import os
import statistics

from utils.errors import UserError, run_cli
from utils.log import read_loss_csv


def parse_epochs(text):
    """'A-B' (inclusive) or 'A' -> (A, B); raises ValueError on anything else."""
    parts = text.split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--epochs must be A-B or A with whole numbers A <= B, got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    if first > last:
        raise ValueError(f"--epochs {text}: the first epoch is after the last")
    return first, last


def summarize(rows, column, first, last):
    """{min, max, mean, median, argmin, argmax, n} of ``column`` over the rows with
    first <= epoch <= last. Raises ValueError if the column is missing or the range holds no row."""
    if rows and column not in rows[0]:
        names = ", ".join(k for k in rows[0] if k != "epoch")
        raise ValueError(f"no column {column!r}; the file has: {names}")
    picked = [r for r in rows if first <= r["epoch"] <= last]
    if not picked:
        epochs = f"{rows[0]['epoch']}-{rows[-1]['epoch']}" if rows else "none"
        raise ValueError(f"no epoch in {first}-{last}; the file has epochs {epochs}")
    values = [r[column] for r in picked]
    low = min(range(len(values)), key=values.__getitem__)
    high = max(range(len(values)), key=values.__getitem__)
    return {"column": column, "first": picked[0]["epoch"], "last": picked[-1]["epoch"],
            "n": len(values), "min": values[low], "argmin": picked[low]["epoch"],
            "max": values[high], "argmax": picked[high]["epoch"],
            "mean": statistics.fmean(values), "median": statistics.median(values)}


def describe(summary):
    """One line; error columns (fractions) in percent, others as they are."""
    as_percent = summary["column"].endswith("error")
    fmt = (lambda v: f"{100 * v:.2f}%") if as_percent else (lambda v: f"{v:.6g}")
    return (f"{summary['column']} over epochs {summary['first']}-{summary['last']} "
            f"({summary['n']} epochs): min {fmt(summary['min'])} (epoch {summary['argmin']}), "
            f"max {fmt(summary['max'])} (epoch {summary['argmax']}), mean {fmt(summary['mean'])}, "
            f"median {fmt(summary['median'])}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("loss_csv", help="a run's logs/loss.csv (or a copy in results/)")
    parser.add_argument("--column", default="valid_error",
                        help="the column to summarize (default: valid_error)")
    parser.add_argument("--epochs", default=None,
                        help="A-B, both included (default: every epoch in the file)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.loss_csv):
        raise UserError(f"{args.loss_csv}: file not found; give a run's logs/loss.csv")
    try:
        rows = read_loss_csv(args.loss_csv)
    except ValueError as err:
        raise UserError(f"{args.loss_csv}: not a loss.csv written by train.py ({err})") from None
    if rows and "epoch" not in rows[0]:
        raise UserError(f"{args.loss_csv}: no epoch column; not a loss.csv written by train.py")
    if not rows:
        raise UserError(f"{args.loss_csv}: holds no epoch yet")
    try:
        first, last = (parse_epochs(args.epochs) if args.epochs
                       else (rows[0]["epoch"], rows[-1]["epoch"]))
        summary = summarize(rows, args.column, first, last)
    except ValueError as err:
        raise UserError(f"{args.loss_csv}: {err}") from None
    print(describe(summary))
    return summary


if __name__ == "__main__":
    run_cli(main)
