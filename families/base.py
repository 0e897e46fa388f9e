"""What a model family is: the interface train.py's loop trains and the other scripts ask.

A family is a subclass of ``ModelFamily``. Its class attributes say what it needs and what it
can do, so that eval.py, classify.py, plot.py, predict.py and export_model.py ask the family
of a checkpoint instead of comparing ``--labels`` names; its methods are the training step the
loop calls. The loop itself (train.py) knows nothing else about a family:

    model = Family(cfg, data)            # picks its training images, builds nets and opts
    for each mini-batch:
        losses = model.step(x, y, step)  # {loss name: float}, the names of model.loss_names
    row.update(model.epoch_metrics(x_train))
    codes, labels, columns = model.grid(seed)  # the sample grid of each epoch (or None)

The Table 1 model (train.LikelihoodAAE) is one; the others live in this package, a module per
group of related families, and ``families.FAMILIES`` names them all.
"""
from config import N_CLASSES
from utils.steps import aae_optimizer_plan, no_sync


class ModelFamily:
    """The interface of a model family; subclasses override what differs."""

    # ---- what it needs -------------------------------------------------------------------
    data_parts = ("train",)  # the parts of the split train.py loads for it
    data_parallel = True  # whether its mini-batches can be sharded over processes
    metric_names = ()  # what epoch_metrics returns: loss.csv columns after the losses
    select_by = None  # a metric (lower is better) whose best epoch is kept as model/best.npz

    # ---- what the scripts may ask of its checkpoints ---------------------------------------
    has_decoder = True  # eval.py, plot.py, predict.py, export_model.py need one
    classifies = False  # an encoder head q(y|x) over categories: classify.py measures it
    clusters = False  # its categories are clusters, named by labelled images (paper §6)
    # what the decoder sees beside the code: None, "class" (a one-hot class label, paper §4)
    # or "category" (the softmax of q(y|x), paper §5-6)
    decoder_label = None
    label_prior = False  # each class has its own part of the prior (paper §2.3)

    @classmethod
    def build_networks(cls, cfg, in_dim, n_classes=N_CLASSES):
        """{name: Layer} for a Config and images of ``in_dim`` pixels, built in a fixed order
        (the order fixes which random numbers initialise which weights)."""
        raise NotImplementedError

    @classmethod
    def saved_n_classes(cls, train_cfg, arrays):
        """The number of classes a checkpoint's label inputs were made for, from its arrays
        (eval.py builds the networks with it; only for checkpoints without the ``networks``
        record train.py writes)."""
        return N_CLASSES

    @classmethod
    def optimizer_plan(cls, cfg):
        """{optimizer: (network it updates, learning rate, momentum)}: one optimizer per phase
        (utils.steps.make_optimizers builds them); the Table 1 model's by default."""
        return aae_optimizer_plan(cfg)

    # ---- training --------------------------------------------------------------------------
    def __init__(self, cfg, data):
        """Pick the training images (``self.x_train``, and ``self.y_train``: the labels the
        model is given, or None) from the split ``data`` (data_maker.load_split's dict) and
        build ``self.nets``, ``self.opts`` and ``self.loss_names``."""
        raise NotImplementedError

    def step(self, x, y, step, sync=no_sync):
        """Train on one mini-batch (``x`` a tensor, ``y`` its labels or None, ``step`` the
        global step, ``sync`` the data-parallel gradient average); returns {loss name:
        float}."""
        raise NotImplementedError

    def epoch_metrics(self, x_train):
        """Figures measured after each epoch ({name: float}; ``x_train`` the training images
        as one tensor)."""
        return {}

    def grid(self, seed):
        """(codes, decoder labels or None, images per row) of the sample grid drawn after each
        epoch; None without a decoder."""
        return None

    def describe(self):
        """A line for train.log about the data it trains on, or None."""
        return None
