"""results/table2_3.json is what its committed classify.json files say, and the README's
Table 2-3 rows quote it (mean ± sd over the seeds, and the seed count)."""
import importlib.util
import json
import os
import re

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("semi_100", "semi_1000", "semi_all", "cluster_16", "cluster_30")


def load_table():
    with open(os.path.join(ROOT, "results", "table2_3.json")) as f:
        return {row["row"]: row for row in json.load(f)["rows"]}


def builder():
    spec = importlib.util.spec_from_file_location("table2_3",
                                                  os.path.join(ROOT, "results", "table2_3.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_is_there_with_its_seeds():
    table = load_table()
    assert tuple(table) == ROWS
    for name, row in table.items():
        assert row["n_seeds"] == len(row["seeds"]) >= 1
        assert len({s["seed"] for s in row["seeds"]}) == row["n_seeds"]


@pytest.mark.parametrize("name", ROWS)
def test_each_figure_is_its_classify_json(name):
    """Each seed's figure is the test_error of a committed classify.json of that preset and
    seed, the mean and sd are theirs, and the baseline is its file's test_error."""
    row = load_table()[name]
    errors = []
    for seed in row["seeds"]:
        with open(os.path.join(ROOT, seed["classify_json"])) as f:
            result = json.load(f)
        assert result["train_config"]["preset"] == name
        assert result["train_config"]["seed"] == seed["seed"]
        assert result["trained_epochs"] == seed["epochs"]
        assert seed["test_error_pct"] == round(100 * result["test_error"], 2)
        if name.startswith("cluster"):  # the paper's rule is the headline
            assert result["labelling_rule"] == "validation images (paper §6)"
            assert "test_error_train_labels" in result
        errors.append(100 * result["test_error"])
    assert row["mean_pct"] == round(float(np.mean(errors)), 2)
    if len(errors) > 1:
        assert row["sd_pct"] == round(float(np.std(errors, ddof=1)), 2)
    with open(os.path.join(ROOT, row["baseline"]["result_json"])) as f:
        assert row["baseline"]["test_error_pct"] == round(100 * json.load(f)["test_error"], 2)
    if row["shipped_checkpoint"]:
        assert os.path.exists(os.path.join(ROOT, row["shipped_checkpoint"]))
        with open(os.path.join(ROOT, row["shipped_classify_json"])) as f:
            assert row["shipped_test_error_pct"] == round(100 * json.load(f)["test_error"], 2)


def test_the_file_is_what_the_builder_writes():
    module = builder()
    fresh = [module.build_row(name, *spec) for name, spec in module.ROWS.items()]
    assert fresh == list(load_table().values())


@pytest.mark.parametrize("readme", ("README.md", "README_cn.md"))
def test_readme_rows_quote_the_table(readme):
    """The README's result-table line of each row gives its mean (± sd) and seed count."""
    with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
        lines = [line for line in f if line.startswith("| Table 2") or
                 line.startswith("| Table 3")]
    for name, row in load_table().items():
        mine = [line for line in lines if f"`{name}`" in line.split("|")[1]]
        assert len(mine) == 1, (readme, name)
        figure = f"{row['mean_pct']:.2f}%"
        if row["sd_pct"] is not None:
            figure += f" ± {row['sd_pct']:.2f}"
        seeds = f"{row['n_seeds']} seed" + ("s" if row["n_seeds"] > 1 else "")
        cell = mine[0].split("|")[4]  # | what | paper | baseline | ours | ...
        assert figure in cell and seeds in cell, (readme, name, figure, seeds, cell)
        assert f"{row['baseline']['test_error_pct']:.2f}%" in mine[0].split("|")[3]
        assert re.search(rf"\b{row['paper_pct']:.2f}%", mine[0].split("|")[2])
