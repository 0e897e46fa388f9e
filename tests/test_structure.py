"""The shape of the code: one family registry whose entries all implement families/base.py,
what the scripts learn from a family, the record of what built a checkpoint's networks, and
no import cycle between the project's modules."""
import ast
import json
import os

import numpy as np
import pytest

import config
import eval as evaluate
import families
import train
from conftest import ROOT, run_dirs
from families.base import ModelFamily
from utils import checkpoint
from utils.errors import UserError

TINY = ["--N", "16", "--N_train", "200", "--batch_size", "50", "--n_epochs", "1",
        "--sample_every", "100"]


def test_every_labels_choice_names_one_family_of_the_interface():
    choices = [f for f in config.dataclasses.fields(config.Config) if f.name == "labels"][0]
    assert set(families.FAMILIES) == set(choices.metadata["choices"])
    for labels in families.FAMILIES:
        family = families.get(labels)
        assert issubclass(family, ModelFamily), labels
        # each implements what the loop calls
        for method in ("build_networks", "__init__", "step"):
            assert getattr(family, method) is not getattr(ModelFamily, method), (labels, method)
    assert families.get("none") is train.LikelihoodAAE


@pytest.mark.parametrize("labels, classifies, clusters, decoder_label, has_decoder", [
    ("none", False, False, None, True),
    ("regularization", False, False, None, True),
    ("supervised", False, False, "class", True),
    ("semi_supervised", True, False, "category", True),
    ("clustering", True, True, "category", True),
    ("classifier", True, False, None, False),
])
def test_what_the_scripts_ask_a_family(labels, classifies, clusters, decoder_label, has_decoder):
    family = families.get(labels)
    assert (family.classifies, family.clusters, family.decoder_label, family.has_decoder) == (
        classifies, clusters, decoder_label, has_decoder)
    # the answers match the networks it builds
    preset = {"none": {}, "regularization": {"prior": "gmm", "latent_dim": 2},
              "supervised": {}}.get(labels, {"encoder": "deterministic"})
    cfg = config.Config(N=8, labels=labels, **preset).validate()
    nets = family.build_networks(cfg, 20)
    assert ("decoder" in nets) == has_decoder
    if has_decoder:
        assert bool(nets["decoder"].label_dim) == (decoder_label is not None)
    assert hasattr(nets["encoder"], "logits") == classifies


def test_checkpoints_record_what_builds_their_networks(tmp_path, mnist_dir):
    train.main(TINY + ["--data_dir", mnist_dir, "--preset", "cluster_16"]
               + run_dirs(tmp_path))
    for name in ("model0.npz", "last.npz", "best.npz"):
        meta, _ = checkpoint.load(str(tmp_path / "run/model" / name))
        assert meta["networks"] == {"family": "clustering", "in_dim": 784, "n_classes": 10}
    nets, train_cfg, _ = evaluate.load_model(str(tmp_path / "run/model/model0.npz"))
    assert nets["decoder"].label_dim == 16 and nets["decoder"].out_dim == 784


def test_a_damaged_networks_record_is_refused_and_old_checkpoints_still_load(tmp_path):
    cfg = config.Config(N=16).validate()
    nets = families.build_networks(cfg, 784)
    path = str(tmp_path / "m.npz")
    for record in ({"family": "none", "in_dim": -3, "n_classes": 10},
                   {"family": "clustering", "in_dim": 784, "n_classes": 10}, "784"):
        checkpoint.save(path, nets, {"config": cfg.to_dict(), "networks": record})
        with pytest.raises(UserError, match="record of the networks"):
            evaluate.load_model(path)
    # no record (checkpoints written before it existed, as the shipped ones): the sizes come
    # from the weights
    checkpoint.save(path, nets, {"config": cfg.to_dict()})
    loaded, _, _ = evaluate.load_model(path)
    np.testing.assert_array_equal(loaded["decoder"].model[-1].bias.numpy(),
                                  nets["decoder"].model[-1].bias.numpy())


def project_modules():
    """{module name: path} of the project's own Python modules (tests left out)."""
    modules = {}
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in
                         ("tests", "runs", "__pycache__")]
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, ".")
                modules[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = \
                    os.path.join(folder, name)
    return modules


def module_level_imports(path, modules):
    """The project modules that ``path`` imports at its top level (not inside functions)."""
    found = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def test_no_import_cycle_between_the_projects_modules():
    modules = project_modules()
    graph = {name: module_level_imports(path, modules) - {name}
             for name, path in modules.items()}
    assert {"config", "train", "families", "utils.files"} <= set(graph)
    state = {}  # name -> "open" while on the path being followed, "done" after

    def visit(name, path):
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path + [other]))
            if other not in state:
                visit(other, path + [other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_a_resume_point_with_the_old_optimizer_name_continues_the_same_run(tmp_path, mnist_dir):
    """Resume points written before the encoder's regularization optimizer was renamed
    (opt/generator/... for opt/encoder_adversarial/...) resume to the same weights."""
    common = TINY[:-4] + ["--sample_every", "100", "--data_dir", mnist_dir]
    train.main(common + ["--n_epochs", "2"] + run_dirs(tmp_path, "straight"))
    train.main(common + ["--n_epochs", "1"] + run_dirs(tmp_path, "old"))
    last = str(tmp_path / "old/model/last.npz")
    meta, arrays = checkpoint.load(last)
    renamed = {k.replace("opt/encoder_adversarial/", "opt/generator/"): v
               for k, v in arrays.items()}
    assert any(k.startswith("opt/generator/") for k in renamed)
    np.savez(last, **renamed, __meta__=np.array(json.dumps(meta)))
    train.main(common + ["--n_epochs", "2", "--resume"] + run_dirs(tmp_path, "old"))
    _, straight = checkpoint.load(str(tmp_path / "straight/model/model1.npz"))
    _, resumed = checkpoint.load(str(tmp_path / "old/model/model1.npz"))
    for key in straight:
        np.testing.assert_array_equal(straight[key], resumed[key], err_msg=key)
