"""The one configuration object of the project.

``Config`` holds every setting of data_maker.py, train.py and eval.py with the reference
reproduction's values as defaults (keil555/AAE_paddle, which follows Makhzani et al. 2015, §5
and Appendix A for MNIST). Each script accepts the subset of fields it uses as command-line
options under the same names as the reference (``--n_epochs``, ``--N_train``, ``--load_epoch``,
...). Unknown options, wrong types and impossible values are refused before any work starts,
with a message naming the option.
"""
import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Optional

from utils.errors import UserError


def _f(default, help, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class Config:
    # ---- data -------------------------------------------------------------------------
    data_dir: str = _f("data", "folder holding the split written by data_maker.py")
    N_train: int = _f(59000, "training images used (reference: 59,000 of MNIST's 60k)")
    N_valid: int = _f(1000, "validation images, used only to choose the Parzen sigma (reference)")
    N_test: int = _f(10000, "test images the log-likelihood is reported on (reference: all 10k)")
    # ---- model ------------------------------------------------------------------------
    N: int = _f(1200, "hidden units per layer (paper Appendix A; reference)")
    latent_dim: int = _f(8, "size of the code z (paper §5: 8-d for the MNIST likelihood)")
    std: float = _f(5.0, "std of the Gaussian prior p(z) = N(0, std^2 I) (paper Appendix A)")
    dropout: float = _f(0.2, "dropout rate after each hidden layer (reference; not in the paper)",
                        low=0.0, high=0.99)
    encoder: str = _f("gaussian", "gaussian: z = mu + exp(logvar/2) * eps (reference); "
                      "deterministic: z = mu (the paper's choice)",
                      choices=("gaussian", "deterministic"))
    eps_std: float = _f(5.0, "std of eps in the Gaussian encoder; the reference draws eps from "
                        "N(0, 5^2), a standard VAE from N(0, 1)")
    # ---- training ---------------------------------------------------------------------
    n_epochs: int = _f(200, "training epochs (reference)")
    batch_size: int = _f(100, "mini-batch size (paper Appendix A; reference)")
    gen_lr: float = _f(2e-4, "Adam learning rate of the reconstruction phase (reference)")
    reg_lr: float = _f(1e-4, "Adam learning rate of both regularization phases (reference)")
    seed: int = _f(0, "seed of every random draw in training or evaluation", low=0)
    save_every: int = _f(50, "keep model/model{epoch} every this many epochs (reference: 50)")
    sample_every: int = _f(1, "write images/epoch{epoch}.png every this many epochs")
    resume: bool = _f(False, "continue from model/last.npz (same config required)")
    device: str = _f("auto", "auto: GPU if Paddle has CUDA and sees one, else CPU",
                     choices=("auto", "cpu", "gpu"))
    model_dir: str = _f("model", "where checkpoints go")
    images_dir: str = _f("images", "where sample grids and plots go")
    logs_dir: str = _f("logs", "where logs, CSVs and JSON results go")
    visualdl: bool = _f(False, "also log each epoch's losses, images/s and sample grid for "
                        "VisualDL in <logs_dir>/vdl (optional: pip install visualdl)")
    # ---- evaluation -------------------------------------------------------------------
    load_epoch: int = _f(199, "evaluate model/model{load_epoch}.npz (reference)", low=0)
    checkpoint: Optional[str] = _f(None, "evaluate this checkpoint file instead of load_epoch's")
    trust_pickle: bool = _f(False, "allow --checkpoint to be a pickle (.pkl, e.g. the reference's "
                            "model199.pkl); pickles can run code when loaded")
    N_gen: int = _f(10000, "samples drawn from the model for the Parzen window (reference)")
    sigma: Optional[float] = _f(None, "Parzen window width; default: cross-validate on the "
                                "validation split")
    sigma_min: float = _f(-1.0, "log10 of the smallest sigma tried (reference: 0.1)", low=None)
    sigma_max: float = _f(-0.3, "log10 of the largest sigma tried (reference: ~0.5)", low=None)
    sigma_num: int = _f(20, "number of sigmas tried, log-spaced (reference)")
    save_samples: Optional[str] = _f(None, "also save the generated samples to this .npy file")
    interpolate: bool = _f(False, "also write images/interpolation.png: pairs of test digits "
                           "encoded, the line between their codes decoded (not in the paper; "
                           "shows whether the code space is smooth)")

    # ---------------------------------------------------------------------------------
    def validate(self):
        """Refuse impossible values; the message names the option."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, (bool, str)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"--{f.name} must be a finite number, got {value}")
            low = f.metadata.get("low", "positive")
            if low == "positive" and value <= 0:
                raise UserError(f"--{f.name} must be positive, got {value}")
            if low not in ("positive", None) and value < low:
                raise UserError(f"--{f.name} must be >= {low}, got {value}")
            high = f.metadata.get("high")
            if high is not None and value > high:
                raise UserError(f"--{f.name} must be <= {high}, got {value}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise UserError(f"--{f.name} must be one of {', '.join(choices)}, "
                                f"got {getattr(self, f.name)!r}")
        if self.sigma_min > self.sigma_max:
            raise UserError(f"--sigma_min ({self.sigma_min}) must not exceed --sigma_max "
                            f"({self.sigma_max}); both are log10 of sigma")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values, where="config"):
        """Build from a dict (e.g. a checkpoint's); unknown keys and wrong types are refused."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        kwargs = {}
        for name, value in values.items():
            kwargs[name] = _coerce(name, value, _field_type(known[name]), where)
        return cls(**kwargs).validate()


def _field_type(f):
    """The plain type of a field: int, float, str or bool (Optional[...] unwrapped)."""
    hints = typing.get_type_hints(Config)
    tp = hints[f.name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _coerce(name, value, tp, where):
    if value is None:
        if Config.__dataclass_fields__[name].default is None:
            return None
        raise UserError(f"{where}: {name} must not be empty")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise UserError(f"{where}: {name} must be {tp.__name__}, got {value!r}")


def parse_bool(text):
    """argparse type for booleans: ``--resume false`` is False (argparse's bool() says True)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line naming the problem, exit code 2, no usage dump and no traceback.
        raise UserError(f"{message} (see python {self.prog} --help)")


def _arg_type(tp, name):
    def convert(text):
        try:
            return tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if tp is int else 'a number'}, got {text!r}") from None
    convert.__name__ = tp.__name__  # argparse names the type in its messages
    return convert


def build_parser(prog, keys, description=""):
    parser = _Parser(prog=prog, description=description, allow_abbrev=False)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for key in keys:
        f = fields[key]
        tp = _field_type(f)
        kwargs = {"help": f"{f.metadata['help']} (default: {f.default})", "default": f.default}
        if tp is bool:
            # --resume alone means true; --resume false / --resume 0 are accepted too.
            kwargs.update(type=parse_bool, nargs="?", const=True, metavar="BOOL")
        elif tp in (int, float):
            kwargs["type"] = _arg_type(tp, key)
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(f"--{key}", **kwargs)
    return parser


def parse_config(prog, keys, argv=None, description=""):
    """Defaults, overridden by the command line; refuses unknown options and bad values."""
    parser = build_parser(prog, keys, description)
    args = parser.parse_args([] if argv is None else list(argv))
    return Config(**vars(args)).validate()


def sigma_grid(cfg):
    """The sigmas tried by cross-validation: logspace(sigma_min, sigma_max, sigma_num)."""
    import numpy as np
    return np.logspace(cfg.sigma_min, cfg.sigma_max, cfg.sigma_num)
