"""The paper's model families beside the likelihood AAE of train.py, one module each, all
trained by train.py's loop and saved in its one checkpoint format:

- ``labels.py``: the label-conditioned AAEs: label regularization (§2.3, Figures 3-4) and the
  supervised AAE (§4, Figures 6-7);
- ``categorical.py``: the semi-supervised, clustering and dimensionality-reduction AAEs
  (§5-7, Figures 8-11, Tables 2-3), and Table 2's baseline: their encoder trained by the
  classification phase alone.

A family is a class with the interface of ``train.LikelihoodAAE``. ``--labels`` names it.
"""
import network
from families.categorical import CategoricalAAE, SupervisedClassifier
from families.labels import LabelRegularizedAAE, SupervisedAAE

FAMILIES = {
    "regularization": LabelRegularizedAAE,
    "supervised": SupervisedAAE,
    "semi_supervised": CategoricalAAE,
    "clustering": CategoricalAAE,
    "classifier": SupervisedClassifier,
}


def build_networks(cfg, in_dim, n_classes=10):
    """The networks of any family for a Config (eval.py, classify.py and plot.py load every
    kind of checkpoint); ``n_classes`` matters only with labels."""
    if cfg.labels in FAMILIES:
        return FAMILIES[cfg.labels].build_networks(cfg, in_dim, n_classes)
    return network.build_networks(cfg, in_dim)
