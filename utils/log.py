"""Logging to the console and to a file, one line per event, fixed format; and reading back
train.py's per-epoch ``loss.csv``; writing a script's results as JSON."""
import csv
import errno
import json
import logging
import os
import sys

from utils import files
from utils.errors import UserError, refuse_non_finite


class _AppendingFileHandler(logging.FileHandler):
    """A FileHandler that does not follow a symbolic link of the log's name (O_NOFOLLOW): a
    log is never appended to a file outside the chosen folder through a link. A line that
    cannot be written is an error (``handleError``)."""

    def _open(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.baseFilename, flags, 0o666)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record):
        """A log line the system refuses (a full disk, a file-size limit) stops the script
        with one line, instead of logging's traceback on stderr for every later line."""
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise UserError(f"cannot write the log {self.baseFilename}: {err.strerror}; make "
                            "room there or choose another logs folder") from None
        super().handleError(record)


def get_logger(name, log_file=None, level=logging.INFO):
    """A logger writing to stderr and, if given, to ``log_file`` (appending; a symbolic link of
    that name is refused, see ``_AppendingFileHandler``).

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
        try:
            file_handler = _AppendingFileHandler(log_file, encoding="utf-8")
        except OSError as err:
            if err.errno == errno.ELOOP or os.path.islink(log_file):
                raise UserError(f"{log_file} is a symbolic link: logs are not written through "
                                "links; remove the link, or choose another logs folder") from None
            raise UserError(f"cannot write the log {log_file}: {err.strerror}; choose a "
                            "writable logs folder") from None
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
    files.atomic_write(path, lambda f: f.write(text.encode()))
    return path
