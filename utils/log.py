"""Logging to the console and to a file, one line per event, fixed format; and reading back
train.py's per-epoch ``loss.csv``; writing a script's results as JSON."""
import csv
import json
import logging
import os

from utils import checkpoint
from utils.errors import refuse_non_finite


def get_logger(name, log_file=None, level=logging.INFO):
    """A logger writing to stderr and, if given, to ``log_file`` (appending).

    Handlers are replaced on every call, so calling ``main`` twice in one process (tests,
    notebooks) does not duplicate lines.
    """
    logger = logging.getLogger(f"aae.{name}")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s",
                            datefmt="%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler()
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    return logger


def read_loss_csv(path, before_epoch=None):
    """The rows of train.py's ``loss.csv`` as dicts ("epoch" an int, every other column a
    float), those before ``before_epoch`` if given; [] if the file does not exist."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]
    return [row for row in rows if before_epoch is None or row["epoch"] < before_epoch]


def write_result_json(path, result, hint):
    """Write a script's ``result`` (a dict) to ``path`` as indented JSON, atomically (the
    earlier file stays whole until the new one is complete). A NaN or infinite number in it is
    refused with one line naming it and ``hint`` (what to do), and nothing is written."""
    refuse_non_finite(result, path, hint)
    text = json.dumps(result, indent=2, allow_nan=False)
    checkpoint.atomic_write(path, lambda f: f.write(text.encode()))
    return path
