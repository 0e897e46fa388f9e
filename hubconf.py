"""Entries for ``paddle.hub``: the shipped models as ``paddle.nn.Layer``s.

    import paddle
    paddle.hub.list("path/to/AAE_paddle", source="local")
    model = paddle.hub.load("path/to/AAE_paddle", "aae", source="local", pretrained=True)
    code, x_recon = model(paddle.rand([4, 784]))     # images [B, 784] in [0, 1]

Each entry returns export_model.TrainedAAE: ``forward(x)`` gives the code (the encoder's mean)
and the reconstruction's pixel means, and for the categorical models q(y|x) between them;
``model.networks`` holds the checkpoint's networks (discriminators too), ``model.config`` its
training config. ``pretrained=False``: the same networks, freshly initialised.
"""
import os as _os

# imported now: paddle.hub puts the repository on sys.path only while it imports this file
import export_model as _export_model
from eval import load_model as _load_model
from families import build_networks as _build_networks

dependencies = ["paddle", "numpy", "PIL"]

_ROOT = _os.path.dirname(_os.path.abspath(__file__))
# entry -> (shipped checkpoint, what it is); the README's result table gives each its command
_SHIPPED = {
    "aae": ("model199.npz", "Table 1: the likelihood AAE, 8-d Gaussian code"),
    "semi_100": ("semi_100_model99.npz", "Table 2: semi-supervised AAE, 100 labels"),
    "semi_1000": ("semi_1000_model99.npz", "Table 2: semi-supervised AAE, 1000 labels"),
    "cluster_16": ("cluster_16_model99.npz", "Table 3: clustering AAE, 16 clusters"),
    "cluster_30": ("cluster_30_model99.npz", "Table 3: clustering AAE, 30 clusters"),
}


def _load(name, pretrained):
    path = _os.path.join(_ROOT, "model", _SHIPPED[name][0])
    nets, train_cfg, _ = _load_model(path)
    if not pretrained:  # the architecture of the checkpoint, new weights
        nets = _build_networks(train_cfg, in_dim=nets["decoder"].out_dim)
    return _export_model.TrainedAAE(nets, train_cfg, path)


def aae(pretrained=True):
    """The Table 1 likelihood AAE (model/model199.npz): code = mu(x), 8 dimensions."""
    return _load("aae", pretrained)


def semi_100(pretrained=True):
    """Table 2's semi-supervised AAE trained with 100 labels (model/semi_100_model99.npz)."""
    return _load("semi_100", pretrained)


def semi_1000(pretrained=True):
    """Table 2's semi-supervised AAE trained with 1000 labels (model/semi_1000_model99.npz)."""
    return _load("semi_1000", pretrained)


def cluster_16(pretrained=True):
    """Table 3's clustering AAE with 16 clusters (model/cluster_16_model99.npz)."""
    return _load("cluster_16", pretrained)


def cluster_30(pretrained=True):
    """Table 3's clustering AAE with 30 clusters (model/cluster_30_model99.npz)."""
    return _load("cluster_30", pretrained)
