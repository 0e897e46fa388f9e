"""What an exported folder holds and how to check it: the contract between export_model.py,
which writes it, and infer.py, which serves it with Paddle Inference (no network code here).

A folder written by ``python export_model.py --save_dir DIR`` holds, per network, the static
program and its weights (``paddle.jit.save``: ``<name>.json`` and ``<name>.pdiparams`` with
Paddle 3's program format, ``<name>.pdmodel`` with the older one), and ``inference.json``:

    {"format": "aae-paddle-inference", "version": 1, "checkpoint": ..., "labels": ...,
     "pixels": 784, "side": 28, "latent_dim": 8, "n_categories": null, "cluster_labels": null,
     "models": {"encoder": {"files": [...], "inputs": [{"name": "x", "shape": [-1, 784],
     "dtype": "float32", "meaning": ...}], "outputs": [...]}, "decoder": {...}, ...}}

The batch dimension is -1 (any number of images per call).
"""
import json
import os

from utils.errors import UserError

FORMAT = "aae-paddle-inference"
VERSION = 1
SPEC_FILE = "inference.json"
PROGRAM_SUFFIXES = (".json", ".pdmodel")  # Paddle 3 (PIR) programs, older ones
PARAMS_SUFFIX = ".pdiparams"
# the networks infer.py runs, in order; 'classifier' only for a categorical q(y|x)
MODEL_NAMES = ("encoder", "classifier", "decoder")


def program_file(folder, name):
    """The static program of network ``name`` in ``folder`` (either suffix), or None."""
    for suffix in PROGRAM_SUFFIXES:
        path = os.path.join(folder, name + suffix)
        if os.path.isfile(path):
            return path
    return None


def read_spec(folder, option="--model_dir"):
    """inference.json of an exported ``folder``, checked: its format, and every file it lists
    present. Refused with one line saying what to do."""
    again = "export it again with python export_model.py --save_dir " + folder
    if not os.path.isdir(folder):
        raise UserError(f"{option} {folder} is not a folder; export a model first with "
                        f"python export_model.py --save_dir {folder}")
    path = os.path.join(folder, SPEC_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{option} {folder} holds no {SPEC_FILE}: it is not a folder written "
                        f"by export_model.py; {again}")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({err}); {again}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UserError(f"{path} does not describe a model exported by export_model.py "
                        f"(format {spec.get('format') if isinstance(spec, dict) else None!r}, "
                        f"expected {FORMAT!r}); {again}")
    if spec.get("version") != VERSION:
        raise UserError(f"{path} is of version {spec.get('version')!r}, this infer.py reads "
                        f"version {VERSION}; {again}")
    models = spec.get("models")
    if not isinstance(models, dict) or "encoder" not in models or "decoder" not in models:
        raise UserError(f"{path} lists no encoder and decoder; {again}")
    for name in models:
        if name not in MODEL_NAMES:
            raise UserError(f"{path} lists a network {name!r} infer.py does not know; {again}")
        if program_file(folder, name) is None:
            raise UserError(f"{folder}: missing inference file {name}.json (the {name}'s "
                            f"program); {again}")
        if not os.path.isfile(os.path.join(folder, name + PARAMS_SUFFIX)):
            raise UserError(f"{folder}: missing inference file {name}{PARAMS_SUFFIX} (the "
                            f"{name}'s weights); {again}")
    return spec


def write_spec(folder, spec):
    with open(os.path.join(folder, SPEC_FILE), "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


def describe_prediction(probs, labels_kind, cluster_labels=None):
    """The line predict.py and infer.py print for a categorical model's q(y|x) ``probs``
    [K] of one image: the class (semi-supervised) or the cluster and its label (clustering)."""
    k = int(probs.argmax())
    p = float(probs[k])
    if labels_kind == "clustering":
        label = (f"label {cluster_labels[k]}" if cluster_labels is not None else
                 "label unknown: no split to label the clusters with, run python data_maker.py")
        return f"cluster {k} ({label}), probability {p:.4f}"
    return f"class {k}, probability {p:.4f}"
