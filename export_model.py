"""Export a trained AAE as static inference models for Paddle Inference (infer.py).

    python export_model.py                                        # model/model199.npz
    python export_model.py --checkpoint model/semi_100_model99.npz --save_dir inference/semi_100

Writes, with ``paddle.jit.save``, one static program and its weights per network into
``--save_dir`` (default ``inference/``), the batch dimension left free:

- ``encoder``: images x [B, 784] in [0, 1] -> the code [B, latent_dim]: the encoder's mean
  mu(x) (the Gaussian encoder's noise left out, as predict.py does), the style code z of a
  categorical AAE;
- ``classifier`` (categorical AAEs only): x [B, 784] -> q(y|x) [B, K], the softmax;
- ``decoder``: the code z [B, latent_dim] (and, for a categorical AAE, y [B, K]: q(y|x) or a
  one-hot category) -> the pixel means [B, 784] in [0, 1];

and ``inference.json`` (utils/deploy.py) saying what each expects and returns, the checkpoint
it came from and, for a clustering AAE, the label of each cluster (by the validation images,
the paper's §6 rule, as classify.py). The folder is written beside its final name and renamed
into place, so it is complete or absent; an earlier export there is replaced.
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import os
import shutil
import tempfile

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

import config
import families
from data_maker import load_split
from eval import load_model
from utils import deploy
from utils.errors import UserError, check_path_length, ensure_folder, run_cli
from utils.metrics import class_probabilities, cluster_labels
from utils.paddle_save_image import image_side
from utils.run import select_device

DEFAULT_CHECKPOINT = os.path.join("model", "model199.npz")
EXPORT_KEYS = ["checkpoint", "data_dir", "device"]


# ---------------------------------------------------------------------------------------
# The networks as they are deployed: eval mode, images flat, outputs in [0, 1]. predict.py
# runs these same layers, so the dynamic and the static outputs come from one definition.
# ---------------------------------------------------------------------------------------
class Code(nn.Layer):
    """x [B, pixels] -> the code [B, latent_dim]: mu(x) for the likelihood AAE's encoder,
    the style z for the categorical one (both ``mean``)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder.mean(x)


class ClassProbabilities(nn.Layer):
    """x [B, pixels] -> q(y|x) [B, K] (a categorical AAE)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return F.softmax(self.encoder.logits(x), axis=1)


class PixelMeans(nn.Layer):
    """z [B, latent_dim] -> the decoder's pixel means [B, pixels]."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        return self.decoder.probs(z)


class CategoryPixelMeans(PixelMeans):
    """(z [B, latent_dim], y [B, K]) -> the categorical AAE's pixel means [B, pixels]."""

    def forward(self, z, y):
        return self.decoder.probs(z, y)


def tensor(name, width, meaning):
    return {"name": name, "shape": [-1, int(width)], "dtype": "float32", "meaning": meaning}


def deployed_layers(nets, train_cfg, path):
    """{name: (layer in eval mode, inputs, outputs)} of the networks predict.py runs and
    export_model.py exports (inputs and outputs as inference.json describes them); refuses
    the families without an image -> code -> image path of their own."""
    family = families.get(train_cfg.labels)
    if not family.has_decoder:
        raise UserError(f"{path} is a --labels {train_cfg.labels} model without a decoder: it "
                        "reconstructs nothing; give its test error with classify.py")
    encoder, decoder = nets["encoder"], nets["decoder"]
    categorical = family.decoder_label == "category"
    if family.decoder_label == "class":
        raise UserError(f"{path} is a --labels {train_cfg.labels} model: its decoder also "
                        "needs the digit's class, which an image alone does not give; "
                        "predict.py and export_model.py take the likelihood and the "
                        "categorical AAEs")
    pixels, latent = decoder.out_dim, train_cfg.latent_dim
    image = tensor("x", pixels, "images, pixels in [0, 1], white digit on black")
    code = tensor("z", latent, "the code: the encoder's mean mu(x) (style code z of a "
                  "categorical AAE)")
    recon = tensor("x_recon", pixels, "the decoder's pixel means in [0, 1]")
    layers = {"encoder": (Code(encoder), [image], [code])}
    if categorical:
        k = train_cfg.n_categories
        probs = tensor("y", k, "q(y|x): the probability of each category (softmax)")
        layers["classifier"] = (ClassProbabilities(encoder), [image], [probs])
        layers["decoder"] = (CategoryPixelMeans(decoder), [code, probs], [recon])
    else:
        layers["decoder"] = (PixelMeans(decoder), [code], [recon])
    for layer, _, _ in layers.values():
        layer.eval()
    return layers


class TrainedAAE(nn.Layer):
    """A trained AAE as one Layer (what hubconf.py's entries return): ``forward(x)`` on images
    [B, pixels] in [0, 1] returns (code, reconstruction), and for a categorical AAE (code,
    q(y|x), reconstruction), as predict.py computes them; ``networks`` holds every network of
    the checkpoint (the discriminators too) and ``config`` its training Config."""

    def __init__(self, nets, train_cfg, path):
        super().__init__()
        self.config = train_cfg
        self.networks = nn.LayerDict(nets)
        layers = deployed_layers(nets, train_cfg, path)
        self.code = layers["encoder"][0]
        self.classifier = layers["classifier"][0] if "classifier" in layers else None
        self.pixel_means = layers["decoder"][0]
        self.eval()

    def forward(self, x):
        code = self.code(x)
        if self.classifier is None:
            return code, self.pixel_means(code)
        probs = self.classifier(x)
        return code, probs, self.pixel_means(code, probs)


def clusters_labelled(nets, train_cfg, data_dir):
    """[K] the label of each cluster of a clustering AAE (paper §6: the validation image it
    is most sure of), or None for other models or when there is no split to label them with."""
    if not families.get(train_cfg.labels).clusters:
        return None
    try:
        data = load_split(data_dir, parts=("valid",))
    except UserError:
        return None
    return cluster_labels(class_probabilities(nets["encoder"], data["x_valid"]),
                          data["y_valid"]).tolist()


def export(layers, folder):
    """``paddle.jit.save`` of each deployed layer into ``folder``; returns inference.json's
    "models" part."""
    from paddle.static import InputSpec
    models = {}
    for name, (layer, inputs, outputs) in layers.items():
        specs = [InputSpec(t["shape"], t["dtype"], t["name"]) for t in inputs]
        paddle.jit.save(layer, os.path.join(folder, name), input_spec=specs)
        files = sorted(f for f in os.listdir(folder) if os.path.splitext(f)[0] == name)
        models[name] = {"files": files, "inputs": inputs, "outputs": outputs}
    return models


def replace_folder(staged, folder):
    """Move the complete ``staged`` folder to ``folder``, replacing an earlier export."""
    if os.path.isdir(folder):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(folder)))
        os.rename(folder, os.path.join(old, "export"))
        os.rename(staged, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, folder)


def check_save_dir(folder):
    """Refuse a --save_dir that is a file, or a folder with other things than an export."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--save_dir {folder} is a file: give a folder name")
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(
            os.path.join(folder, deploy.SPEC_FILE)):
        raise UserError(f"--save_dir {folder} holds other files than an export (no "
                        f"{deploy.SPEC_FILE}); choose an empty or new folder")
    # the export is staged as .<name>.<8 characters> beside it
    check_path_length(folder, "--save_dir", reserve=len("." + ".12345678"))


def main(argv=None):
    parser = config.build_parser("export_model.py", EXPORT_KEYS,
                                 description=__doc__.split("\n")[0])
    parser.add_argument("--save_dir", default="inference",
                        help="folder for the static models and inference.json (default: "
                             "inference)")
    args = parser.parse_args([] if argv is None else list(argv))
    path = args.checkpoint or DEFAULT_CHECKPOINT
    if not os.path.isfile(path):
        raise UserError(f"--checkpoint {path} not found; check the path (the shipped models "
                        "are in model/)")
    folder = args.save_dir.rstrip("/") or args.save_dir
    check_save_dir(folder)
    select_device(args.device)
    nets, train_cfg, meta = load_model(path)
    layers = deployed_layers(nets, train_cfg, path)
    spec = {"format": deploy.FORMAT, "version": deploy.VERSION,
            "checkpoint": os.path.normpath(path), "trained_epochs": meta.get("epoch"),
            "labels": train_cfg.labels, "pixels": nets["decoder"].out_dim,
            "side": image_side(nets["decoder"].out_dim),
            "latent_dim": train_cfg.latent_dim,
            "n_categories": train_cfg.n_categories if "classifier" in layers else None,
            "cluster_labels": clusters_labelled(nets, train_cfg, args.data_dir),
            "paddle": paddle.__version__}
    parent = os.path.dirname(os.path.abspath(folder))
    ensure_folder(parent, "--save_dir")
    staged = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(folder))}.",
                              dir=parent)
    try:
        spec["models"] = export(layers, staged)
        deploy.write_spec(staged, spec)
        replace_folder(staged, folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    print(f"exported {path} to {folder}: " + ", ".join(
        f"{name} ({' + '.join(t['name'] for t in m['inputs'])} -> "
        f"{' + '.join(t['name'] for t in m['outputs'])})" for name, m in spec["models"].items()))
    return {"save_dir": folder, "spec": spec}


if __name__ == "__main__":
    run_cli(main)
