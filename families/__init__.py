"""The model families, all trained by train.py's loop and saved in its one checkpoint format;
``--labels`` names the family (families/base.py says what a family is):

- ``none``: the likelihood AAE of Table 1 (paper §2-3), in train.py itself;
- ``labels.py``: the label-conditioned AAEs: label regularization (§2.3, Figures 3-4) and the
  supervised AAE (§4, Figures 6-7);
- ``categorical.py``: the semi-supervised and clustering AAEs (§5-7, Figures 8-11, Tables 2-3;
  with ``--cluster_heads`` the dimensionality-reduction AAE) and Table 2's baseline, their
  encoder trained by the classification phase alone.

Adding a family: a ModelFamily subclass in a module of its own, one line here, and its name
among config.py's ``--labels`` choices (with the options only it uses in USED_ONLY_WITH).
"""
import importlib

from config import N_CLASSES

# --labels value: (module, class). Imported when asked for, so that train.py, which holds the
# Table 1 model, can itself import this registry (under ``python train.py`` the loop thus
# trains the class of the module ``train``, the same code as the running script's).
FAMILIES = {
    "none": ("train", "LikelihoodAAE"),
    "regularization": ("families.labels", "LabelRegularizedAAE"),
    "supervised": ("families.labels", "SupervisedAAE"),
    "semi_supervised": ("families.categorical", "SemiSupervisedAAE"),
    "clustering": ("families.categorical", "ClusteringAAE"),
    "classifier": ("families.categorical", "SupervisedClassifier"),
}


def get(labels):
    """The ModelFamily subclass that ``--labels labels`` names."""
    module, name = FAMILIES[labels]
    return getattr(importlib.import_module(module), name)


def build_networks(cfg, in_dim, n_classes=N_CLASSES):
    """The networks of a Config's family (eval.py, classify.py and plot.py load every kind of
    checkpoint); ``n_classes`` matters only with labels."""
    return get(cfg.labels).build_networks(cfg, in_dim, n_classes)
