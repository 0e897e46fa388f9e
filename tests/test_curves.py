"""utils/curves.py: the figures the READMEs and docs/ read off a learning curve."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from utils import curves

ROWS = [{"epoch": e, "valid_error": v, "recon_loss": 1.0 / (e + 1)}
        for e, v in enumerate([0.10, 0.05, 0.03, 0.04, 0.02])]


def test_summarize_a_range_by_hand():
    s = curves.summarize(ROWS, "valid_error", 1, 3)
    assert (s["first"], s["last"], s["n"]) == (1, 3, 3)
    assert (s["min"], s["argmin"]) == (0.03, 2)
    assert (s["max"], s["argmax"]) == (0.05, 1)
    assert s["mean"] == pytest.approx(0.04)
    assert s["median"] == pytest.approx(0.04)
    assert curves.summarize(ROWS, "valid_error", 0, 3)["median"] == pytest.approx(0.045)
    assert "min 3.00% (epoch 2), max 5.00% (epoch 1), mean 4.00%" in curves.describe(s)
    assert "mean 0.25" in curves.describe(curves.summarize(ROWS, "recon_loss", 3, 3))


@pytest.mark.parametrize("text,expected", [("3-7", (3, 7)), ("4", (4, 4))])
def test_parse_epochs(text, expected):
    assert curves.parse_epochs(text) == expected


@pytest.mark.parametrize("text", ["7-3", "a-b", "1-2-3", "-1", ""])
def test_parse_epochs_refuses(text):
    with pytest.raises(ValueError):
        curves.parse_epochs(text)


def test_summarize_refuses_a_missing_column_or_an_empty_range():
    with pytest.raises(ValueError, match="recon_loss"):
        curves.summarize(ROWS, "class_loss", 0, 4)
    with pytest.raises(ValueError, match="epochs 0-4"):
        curves.summarize(ROWS, "valid_error", 10, 20)


def test_cli_on_a_file_and_its_errors(tmp_path):
    path = tmp_path / "loss.csv"
    path.write_text("epoch,recon_loss,valid_error\n"
                    + "".join(f"{r['epoch']},{r['recon_loss']},{r['valid_error']}\n" for r in ROWS))
    assert curves.main([str(path), "--epochs", "2-4"])["mean"] == pytest.approx(0.03)
    for argv, message in [([str(tmp_path / "none.csv")], "file not found"),
                          ([str(path), "--epochs", "9-12"], "no epoch in 9-12"),
                          ([str(path), "--column", "d_loss"], "no column 'd_loss'")]:
        proc = subprocess.run([sys.executable, "-m", "utils.curves", *argv],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert message in proc.stderr and "Traceback" not in proc.stderr


def documents(root):
    """The READMEs, the pages of docs/ and the screens' page: where the figures and their
    commands live."""
    docs = os.path.join(root, "docs")
    return ([os.path.join(root, "README.md"), os.path.join(root, "README_cn.md")]
            + sorted(os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md"))
            + [os.path.join(root, "results", "screens", "README.md")])


def test_documented_curve_figures_are_what_the_committed_logs_give():
    """Each `python -m utils.curves ... # figures` line in the READMEs, docs/*.md and the
    screens' page prints
    those figures from the committed loss.csv."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checked = 0
    for path in documents(root):
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"python -m utils\.curves (.+?)\s+# (.+)$", line.strip())
                if not m:
                    continue
                out = curves.describe(curves.main(
                    [os.path.join(root, a) if a.startswith("results/") else a
                     for a in shlex.split(m.group(1))]))
                for figure in m.group(2).split(", "):
                    assert figure in out, (path, line, out)
                checked += 1
    # docs/categorical.md and results/screens/README.md quote 80 such lines: finding
    # fewer means some were lost or broken
    assert checked >= 75, checked
