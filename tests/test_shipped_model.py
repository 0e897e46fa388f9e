"""The shipped checkpoints in model/ and the figures the READMEs and docs/ quote from results/."""
import glob
import json
import os
import re

import numpy as np
import pytest

import classify
import config
import eval as evaluate
from conftest import ROOT
from utils import checkpoint

SHIPPED = os.path.join(ROOT, "model", "model199.npz")
HEADLINE = os.path.join(ROOT, "results", "seed0", "eval.json")
READMES = ("README.md", "README_cn.md")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def doc_pages():
    """docs/*.md, relative to the project folder: the long form of every experiment."""
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def reported_runs():
    """{run folder: eval.json} of every run in results/."""
    runs = {}
    folder = os.path.join(ROOT, "results")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "eval.json")
        if os.path.isfile(path):
            with open(path) as f:
                runs[name] = json.load(f)
    return runs


def test_shipped_model_is_weights_only_and_loads_without_pickle():
    meta, arrays = checkpoint.load(SHIPPED)  # np.load with allow_pickle=False underneath
    assert meta["epoch"] == 200 and meta["config"]["seed"] == 0
    assert meta["config"]["n_epochs"] == 200 and meta["config"]["N_train"] == 59000
    assert {k.split("/")[0] for k in arrays} == {"net"}  # no optimizer state ("opt/...")
    assert {k.split("/")[1] for k in arrays} == {"encoder", "decoder", "discriminator"}
    assert os.path.getsize(SHIPPED) < 40 * 2**20


@pytest.mark.slow
def test_shipped_model_reproduces_the_reported_likelihood(tmp_path, mnist_dir):
    """What a fresh clone gets from python data_maker.py && python eval.py."""
    with open(HEADLINE) as f:
        reported = json.load(f)
    result = evaluate.main(["--checkpoint", SHIPPED, "--data_dir", mnist_dir,
                            "--images_dir", str(tmp_path / "images"),
                            "--logs_dir", str(tmp_path / "logs")])
    assert result["sigma"] == pytest.approx(reported["sigma"])
    assert result["ll_mean"] == pytest.approx(reported["ll_mean"], abs=0.05)
    assert result["ll_mean"] >= 340.0


# the shipped categorical checkpoints: file in model/ -> (the classify.json of its table row,
# settings its saved config must hold)
SHIPPED_CATEGORICAL = {
    # the semi_1000 preset before its input noise (--input_noise 0)
    "semi_1000_model99.npz": ("results/semi_1000/classify.json",
                              {"labels": "semi_supervised", "n_labeled": 1000,
                               "input_noise": 0.0}),
    "semi_100_model99.npz": ("results/denoising/semi_100_input_noise0.3/classify.json",
                             {"labels": "semi_supervised", "n_labeled": 100,
                              "input_noise": 0.3}),
    "cluster_16_model99.npz": ("results/denoising/cluster_16_input_dropout0.2/classify.json",
                               {"labels": "clustering", "n_categories": 16,
                                "input_dropout": 0.2}),
    "cluster_30_model99.npz": ("results/denoising/cluster_30_input_dropout0.2/classify.json",
                               {"labels": "clustering", "n_categories": 30,
                                "input_dropout": 0.2}),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_CATEGORICAL))
def test_shipped_categorical_model_is_weights_only(name):
    meta, arrays = checkpoint.load(os.path.join(ROOT, "model", name))
    expected = SHIPPED_CATEGORICAL[name][1]
    assert meta["epoch"] == 100 and meta["config"]["seed"] == 0
    saved = config.Config.from_dict(meta["config"])  # as classify.py reads it (defaults filled)
    assert {k: getattr(saved, k) for k in expected} == expected
    assert {k.split("/")[0] for k in arrays} == {"net"}  # no optimizer state
    assert {k.split("/")[1] for k in arrays} == {"encoder", "decoder", "discriminator",
                                                "discriminator_y"}
    assert os.path.getsize(os.path.join(ROOT, "model", name)) < 40 * 2**20


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED_CATEGORICAL))
def test_shipped_categorical_model_reproduces_the_reported_error(name, tmp_path, mnist_dir):
    """python classify.py --checkpoint model/NAME gives its table row's classify.json, digit
    for digit (for a clustering model, by every labelling rule)."""
    with open(os.path.join(ROOT, SHIPPED_CATEGORICAL[name][0])) as f:
        reported = json.load(f)
    result = classify.main(["--checkpoint", os.path.join(ROOT, "model", name),
                            "--data_dir", mnist_dir, "--logs_dir", str(tmp_path / "logs")])
    assert result["n_test"] == 10000
    keys = [k for k in reported if k.startswith("test_error") or k.endswith("cluster_labels")]
    assert "test_error" in keys
    assert {k: result[k] for k in keys} == {k: reported[k] for k in keys}
    assert result["test_category_sizes"] == reported["test_category_sizes"]


def test_readmes_quote_every_reported_run():
    runs = reported_runs()
    assert "seed0" in runs
    for readme in ("README.md", "README_cn.md"):
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            text = f.read()
        for name, result in runs.items():
            figure = f"{result['ll_mean']:.2f} ± {result['ll_se']:.2f}"
            assert figure in text, (readme, name, figure)
    # and the seed mean the README states is the mean of the Table 1 model's seeds (results/seedN;
    # the other likelihood presets, e.g. likelihood_no_dropout, are rows of their own)
    means = [r["ll_mean"] for name, r in runs.items() if re.fullmatch(r"seed\d+", name)]
    if len(means) > 1:
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            assert re.search(rf"\b{np.mean(means):.2f}\b", f.read())


def test_every_reported_likelihood_has_an_agreeing_float64_check():
    """Each results/NAME/eval.json comes with check_parzen.json: check_parzen.py recomputed the
    figure in float64 from the saved samples, and it agrees to 0.01 nats."""
    runs = reported_runs()
    assert len(runs) >= 3
    for name, result in runs.items():
        with open(os.path.join(ROOT, "results", name, "check_parzen.json")) as f:
            checked = json.load(f)
        assert checked["ll_mean_reported"] == pytest.approx(result["ll_mean"], abs=1e-9), name
        assert abs(checked["ll_mean_float64"] - result["ll_mean"]) <= 0.01, name
        assert checked["n_samples"] == result["n_gen"] == 10000, name
        assert checked["n_test"] == 10000 and checked["agrees"], name


def test_readmes_and_docs_quote_every_classification_result():
    """Every test error in results/ (classify.json of the categorical runs) is quoted as a
    percentage with two decimals in docs/ (or in results/screens/README.md for the screens),
    later checkpoints included; the READMEs quote the Table 2-3 rows of results/table2_3.json,
    each seed's figure among them (their means: tests/test_table2_3.py)."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "results")):
        if "classify.json" in files:
            with open(os.path.join(folder, "classify.json")) as f:
                found.append((os.path.relpath(folder, ROOT), json.load(f)["test_error"]))
    reported = [(folder, error) for folder, error in found
                if os.path.dirname(folder) == "results" and folder != "results/screens"]
    assert len(reported) >= 8 and len(found) > len(reported)
    with open(os.path.join(ROOT, "results", "table2_3.json")) as f:
        rows = json.load(f)["rows"]
    for readme in READMES:
        text = read(readme)
        for row in rows:
            for seed in row["seeds"]:
                assert f"{seed['test_error_pct']:.2f}" in text, (readme, row["row"], seed)
    docs = "".join(read(page) for page in doc_pages() + [os.path.join(ROOT, "results",
                                                                        "screens", "README.md")])
    for folder, error in found:
        assert f"{100 * error:.2f}%" in docs, (folder, error)


def expand_braces(text):
    """'a{1,2}b' -> ['a1b', 'a2b'] (as the shell does)."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    return [x for option in m.group(1).split(",")
            for x in expand_braces(text[:m.start()] + option + text[m.end():])]


def headings(path):
    """The anchors GitHub gives the headings of a Markdown file."""
    text = re.sub(r"```.*?```", "", read(path), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_readmes_and_docs_point_at_files_that_exist():
    """Every relative link (figures included) and its #anchor resolves from the page it is on,
    and every results/ path the text names exists (NAME is a placeholder)."""
    checked = 0
    for page in READMES + tuple(doc_pages()) + (os.path.join("results", "screens", "README.md"),):
        text, folder = read(page), os.path.dirname(page)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(folder, path)) if path else page
            assert os.path.exists(os.path.join(ROOT, path)), (page, target)
            if anchor:
                assert anchor in headings(path), (page, target)
            checked += 1
        for name in re.findall(r"(?<![\w/.])results/[\w./{},*-]*", text):
            if "NAME" not in name:
                for path in expand_braces(name.rstrip(".,")):
                    assert glob.glob(os.path.join(ROOT, path)), (page, path)
                    checked += 1
    assert checked >= 100, checked
