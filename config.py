"""The one configuration object of the project.

``Config`` holds every setting of data_maker.py, train.py and eval.py with the reference
reproduction's values as defaults (keil555/AAE_paddle, which follows Makhzani et al. 2015, §3
and Appendix A for MNIST). Each script accepts the subset of fields it uses as command-line
options under the same names as the reference (``--n_epochs``, ``--N_train``, ``--load_epoch``,
...). Unknown options, wrong types and impossible values are refused before any work starts,
with a message naming the option. ``PRESETS`` (presets.py) names the settings of each
experiment of the paper (``python train.py --preset gmm_labels``); options given on the
command line win.
"""
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Optional

from presets import PRESETS
from utils import cli, memory
from utils.errors import UserError


N_CLASSES = 10  # MNIST's digits: the label units of every labelled model
IMAGE_SIDE = 28  # MNIST's images are 28x28 (data_maker.py refuses other sizes)
MNIST_COUNTS = {"train": 60000, "test": 10000}  # images in MNIST's idx files
CATEGORICAL_MODES = ("semi_supervised", "clustering")  # --labels of the Figure 8 model
# --labels whose encoder has a categorical q(y|x) (classify.py reports their test error)
CLASSIFYING_MODES = CATEGORICAL_MODES + ("classifier",)

# The settings train.py takes (the rest of Config serves evaluation).
TRAIN_KEYS = [
    "data_dir", "N_train", "N", "latent_dim", "std", "dropout", "architecture", "encoder",
    "eps_std",
    "disc_noise", "n_epochs", "batch_size", "gen_lr", "reg_lr", "seed", "save_every",
    "sample_every", "resume", "device", "model_dir", "images_dir", "logs_dir", "visualdl",
    "prior", "n_components", "gmm_radius", "gmm_radial_std", "gmm_tangential_std",
    "swiss_roll_radius", "swiss_roll_turns", "labels", "label_critic", "n_labeled", "n_unlabeled",
    "preset", "n_categories", "cluster_heads", "cluster_head_eta", "class_lr", "optimizer",
    "gen_momentum", "reg_momentum", "class_momentum", "lr_decay_epochs", "input_noise",
    "input_dropout", "encoder_batchnorm", "recon_reduction", "disc_codes",
]

# Options that only served screens which were tried and rejected (docs/categorical.md), with
# the one value the code still implements. They ran at commit 3d09a1f. A checkpoint that
# records such a key is read when it holds that value, and refused otherwise.
RETIRED = {"adam_beta1": 0.9, "adam_decay_epochs": ""}


def check_retired(values, where):
    """Refuse a saved config that used a retired option at another value than today's."""
    for key, value in RETIRED.items():
        if key in values and values[key] != value:
            raise UserError(f"{where} was made with {key} = {values[key]!r}, an option retired "
                            f"after commit 3d09a1f; check out that commit to use it")


def cli_text(value):
    """A value as it is typed on the command line (booleans as true / false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _f(default, help, **meta):
    return field(default=default, metadata={"help": help, **meta})



# A setting that only one prior, label mode, encoder or optimizer uses: refused with the others
# when changed from its default (no option is silently ignored), and left out of the log.
USED_ONLY_WITH = {
    "std": ("prior", "gaussian"),
    "n_components": ("prior", ("gmm", "swiss_roll")),
    "gmm_radius": ("prior", "gmm"), "gmm_radial_std": ("prior", "gmm"),
    "gmm_tangential_std": ("prior", "gmm"),
    "swiss_roll_radius": ("prior", "swiss_roll"),
    "swiss_roll_turns": ("prior", "swiss_roll"),
    "n_labeled": ("labels", ("regularization", "semi_supervised", "classifier")),
    "n_categories": ("labels", ("semi_supervised", "clustering", "classifier")),
    "n_unlabeled": ("labels", "regularization"),
    "cluster_heads": ("labels", ("semi_supervised", "clustering")),
    **{name: ("labels", ("semi_supervised", "clustering", "classifier"))
       for name in ("input_noise", "input_dropout", "encoder_batchnorm")},
    "recon_reduction": ("labels", ("semi_supervised", "clustering")),
    "disc_codes": ("labels", ("semi_supervised", "clustering")),
    "label_critic": ("labels", "supervised"),
    "eps_std": ("encoder", "gaussian"),
    "architecture": ("labels", "none"),
    # Table 2's classifier baseline has no decoder, no discriminator and no reconstruction
    **{name: ("labels", ("none", "regularization", "supervised", "semi_supervised",
                         "clustering")) for name in ("disc_noise", "gen_lr", "reg_lr")},
    "cluster_head_eta": ("cluster_heads", True),
    "class_lr": ("labels", ("semi_supervised", "classifier")),
    "gen_momentum": ("optimizer", "momentum"),
    "reg_momentum": ("optimizer", "momentum"),
    "class_momentum": ("optimizer", "momentum"),
    "lr_decay_epochs": ("optimizer", "momentum"),
}


def _applies(cfg, name):
    """Whether setting ``name`` is used by a Config (see USED_ONLY_WITH)."""
    if name not in USED_ONLY_WITH:
        return True
    switch, wanted = USED_ONLY_WITH[name]
    return getattr(cfg, switch) in (wanted if isinstance(wanted, tuple) else (wanted,))



@dataclass
class Config:
    # ---- data -------------------------------------------------------------------------
    data_dir: str = _f("data", "folder holding the split written by data_maker.py")
    N_train: int = _f(59000, "training images used (reference: 59,000 of MNIST's 60k)")
    N_valid: int = _f(1000, "validation images: they choose the Parzen sigma (reference) and give "
                      "the categorical models' error after each epoch")
    N_test: int = _f(10000, "test images the log-likelihood is reported on (reference: all 10k)")
    # ---- model ------------------------------------------------------------------------
    N: int = _f(1200, "hidden units per layer (paper Appendix A; reference)")
    latent_dim: int = _f(8, "size of the code z (paper §3: 8-d for the MNIST likelihood)")
    std: float = _f(5.0, "std of the Gaussian prior p(z) = N(0, std^2 I) (paper Appendix A)")
    dropout: float = _f(0.2, "dropout rate after each hidden layer (reference; not in the paper)",
                        low=0.0, high=0.99)
    disc_noise: float = _f(0.0, "std of the Gaussian noise added, in training, to every code and "
                           "prior sample a discriminator sees (0 = none, as the paper and the "
                           "reference; 0.3 in musyoku/adversarial-autoencoder's categorical "
                           "models)", low=0.0)
    input_noise: float = _f(0.0, "with --labels semi_supervised, clustering or classifier: std of "
                            "the "
                            "Gaussian noise added, in training, to the images the encoder sees "
                            "(the reconstruction target stays clean; 0 = none, as the reference; "
                            "a lever for q(y|x), which fits 1,000 labels within a few "
                            "epochs, docs/categorical.md)", low=0.0)
    input_dropout: float = _f(0.0, "with --labels semi_supervised, clustering or classifier: "
                              "each pixel the encoder sees is zeroed with this probability in "
                              "training (the target stays clean; 0 = none; 0.2 in the paper's "
                              "clustering appendix as public implementations read it)", low=0.0,
                              high=0.99)
    encoder_batchnorm: bool = _f(False, "with --labels semi_supervised, clustering or "
                                 "classifier: batch normalization after each hidden layer of "
                                 "the encoder (the paper's clustering appendix as public "
                                 "implementations read it; off as the reference)")
    recon_reduction: str = _f("pixel_mean", "with --labels semi_supervised or clustering: the "
                              "reconstruction loss SGD steps on: pixel_mean = the BCE averaged "
                              "over the 784 pixels (the reference's scale); image_sum = summed "
                              "over an image's pixels, 784 times larger, the scale the paper's "
                              "SGD rates are set for (docs/deviations.md); the logged "
                              "recon_loss is per pixel either way",
                              choices=("pixel_mean", "image_sum"))
    disc_codes: str = _f("eval", "with --labels semi_supervised or clustering: the codes the "
                         "discriminators learn from: eval = the encoder in eval mode (no input "
                         "noise, input dropout or dropout); train = in train mode, as the "
                         "generator phase shows them (the paper does not say)",
                         choices=("eval", "train"))
    architecture: str = _f("reference", "reference: the layers of network.py (paper Appendix A, "
                           "the reference's dropout); pytorch_gan: those of "
                           "eriklindernoren/PyTorch-GAN's aae.py at --N units (LeakyReLU, "
                           "batch norm, no dropout), for the likelihood model",
                           choices=("reference", "pytorch_gan"))
    encoder: str = _f("gaussian", "gaussian: z = mu + exp(logvar/2) * eps (reference); "
                      "deterministic: z = mu (the paper's choice)",
                      choices=("gaussian", "deterministic"))
    eps_std: float = _f(5.0, "std of eps in the Gaussian encoder; the reference draws eps from "
                        "N(0, 5^2), a standard VAE from N(0, 1)")
    # ---- prior p(z) and labels (paper §2, §2.3, §4; Figures 2-7) ------------------------
    prior: str = _f("gaussian", "p(z): gaussian = N(0, std^2 I) (paper §3); gmm = 2-d mixture of "
                    "n_components Gaussians on a circle (Figures 2b, 4a); swiss_roll = 2-d spiral "
                    "in n_components sections (Figure 4c)",
                    choices=("gaussian", "gmm", "swiss_roll"))
    n_components: int = _f(10, "mixture components / swiss roll sections (paper Figures 2-4: one "
                           "per digit)")
    gmm_radius: float = _f(1.4, "distance of the mixture means from the origin (chosen to give the "
                           "petal shape of the paper's Figure 2b, which states no numbers; the "
                           "value of musyoku/adversarial-autoencoder)", low=0.0)
    gmm_radial_std: float = _f(0.5, "std of each mixture component along its radius (chosen as "
                               "gmm_radius)")
    gmm_tangential_std: float = _f(0.05, "std of each mixture component across its radius "
                                   "(chosen as gmm_radius)")
    swiss_roll_radius: float = _f(3.0, "outer radius of the swiss roll (chosen as gmm_radius: the "
                                  "paper states no numbers; musyoku's value)")
    swiss_roll_turns: float = _f(2.0, "turns of the swiss roll (chosen as swiss_roll_radius)")
    labels: str = _f("none", "none; regularization: the discriminator also sees a one-hot label "
                     "with an extra 'unlabeled' slot (paper §2.3, Figures 3-4); supervised: the "
                     "decoder sees the one-hot label, the code learns the style (paper §4, "
                     "Figures 6-7); semi_supervised: the encoder also outputs a categorical "
                     "q(y|x), the decoder sees [z, y], y and z are both regularized, and "
                     "q(y|x) is trained on the labelled images (paper §5, Figure 8); "
                     "clustering: the same without labels (paper §6, Table 3); classifier: "
                     "the semi-supervised model's encoder trained by its classification phase "
                     "alone (a baseline for Table 2, not in the paper)",
                     choices=("none", "regularization", "supervised", "semi_supervised",
                              "clustering", "classifier"))
    label_critic: bool = _f(False, "with --labels supervised: the discriminator also sees each "
                            "code's one-hot label, next to prior samples drawn whatever the "
                            "label, so a style code that still tells the class is penalised "
                            "(not in the paper; docs/code_space.md, Figures 6-7)")
    n_labeled: int = _f(10000, "with --labels regularization, semi_supervised or classifier: "
                        "training images "
                        "that keep their label, the same number from each class (paper §2.3, "
                        "Figure 4: 10k; §5, Table 2: 100, 1000); semi_supervised with at least "
                        "--N_train: every image")
    n_categories: int = _f(10, "with --labels semi_supervised, clustering or classifier: "
                           "categories of y "
                           "(paper §5: one per digit; §6, Table 3: 16 or 30 clusters)", low=2)
    cluster_heads: bool = _f(False, "with --labels semi_supervised or clustering: the decoder "
                             "gets r = y W + z instead of [z, y], W holding one learned cluster "
                             "head per category in the code space, so that r is a low-"
                             "dimensional map of the digits (paper §7, Figures 10-11: "
                             "dimensionality reduction)")
    cluster_head_eta: float = _f(4.0, "with --cluster_heads: two heads closer than this are "
                                 "pushed apart, the cost growing linearly below it (paper §7; "
                                 "its value chosen: 4 style stds keeps neighbouring clusters "
                                 "apart)")
    n_unlabeled: int = _f(40000, "with --labels regularization: training images used without "
                          "their label (paper §2.3, Figure 4: 40k)", low=0)
    # ---- training ---------------------------------------------------------------------
    n_epochs: int = _f(200, "training epochs (reference)")
    batch_size: int = _f(100, "mini-batch size (paper Appendix A; reference)")
    gen_lr: float = _f(2e-4, "learning rate of the reconstruction phase (reference's Adam)")
    reg_lr: float = _f(1e-4, "learning rate of both regularization phases (reference's Adam)")
    class_lr: float = _f(2e-4, "with --labels semi_supervised or classifier: learning rate of the "
                         "classification phase (with Adam chosen as gen_lr)")
    optimizer: str = _f("adam", "adam: Adam in every phase (the reference's); momentum: SGD "
                        "with momentum, every rate divided by 10 at each of lr_decay_epochs "
                        "(the schedule of the paper's semi-supervised experiments)",
                        choices=("adam", "momentum"))
    gen_momentum: float = _f(0.9, "with --optimizer momentum: momentum of the reconstruction "
                             "phase", low=0.0, high=0.999)
    reg_momentum: float = _f(0.1, "with --optimizer momentum: momentum of the regularization "
                             "phases", low=0.0, high=0.999)
    class_momentum: float = _f(0.9, "with --optimizer momentum: momentum of the "
                               "classification phase", low=0.0, high=0.999)
    lr_decay_epochs: str = _f("50,1000", "with --optimizer momentum: comma-separated epochs at "
                              "which every learning rate is divided by 10")
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
    # ---- presets ----------------------------------------------------------------------
    preset: Optional[str] = _f(None, "a named set of the settings above, one per experiment of "
                               "the paper (listed below); options given on the command line "
                               "win", choices=tuple(PRESETS))

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
            value = getattr(self, f.name)
            if choices and value not in choices and not (value is None and f.default is None):
                raise UserError(f"--{f.name} must be one of {', '.join(choices)}, "
                                f"got {value!r}")
        self._validate_prior_and_labels()
        self.decay_epochs()  # refuses a malformed --lr_decay_epochs
        if self.sigma_min > self.sigma_max:
            raise UserError(f"--sigma_min ({self.sigma_min}) must not exceed --sigma_max "
                            f"({self.sigma_max}); both are log10 of sigma")
        self._validate_limits()
        return self

    def _validate_prior_and_labels(self):
        """The prior's dimension, and a setting that only one prior or label mode uses is
        refused with the others when changed from its default: no option is silently
        ignored."""
        if self.prior != "gaussian" and self.latent_dim != 2:
            raise UserError(f"--prior {self.prior} is 2-d: it needs --latent_dim 2, got "
                            f"{self.latent_dim}")
        if self.labels in CLASSIFYING_MODES:
            if self.prior != "gaussian":
                raise UserError(f"--labels {self.labels}: the style code has a Gaussian prior "
                                "(the categorical prior of y is built in): use --prior gaussian")
            if self.encoder != "deterministic":
                raise UserError(f"--labels {self.labels}: its encoder is deterministic (paper "
                                "Figure 8): use --encoder deterministic")
        if self.labels == "regularization" and self.prior == "gaussian":
            raise UserError("--labels regularization routes each label to its own mixture "
                            "component or swiss roll section: use --prior gmm or swiss_roll")
        if self.labels == "regularization" and self.n_components != N_CLASSES:
            raise UserError(f"--labels regularization gives each of the {N_CLASSES} digits its "
                            f"own part of the prior: --n_components must be {N_CLASSES}, got "
                            f"{self.n_components}")
        if self.labels in ("semi_supervised", "classifier") and self.n_categories != N_CLASSES:
            raise UserError(f"--labels {self.labels}: q(y|x) has one category per digit: "
                            f"--n_categories must be {N_CLASSES}, got {self.n_categories}")
        if self.architecture == "pytorch_gan" and self.dropout != 0:
            raise UserError("--architecture pytorch_gan has no dropout layers: use --dropout 0")
        if self.batch_size > self.N_train:
            raise UserError(f"--batch_size {self.batch_size} is larger than the {self.N_train} "
                            f"training images of --N_train")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, (switch, wanted) in USED_ONLY_WITH.items():
            if not _applies(self, name) and getattr(self, name) != defaults[name]:
                wanted = wanted if isinstance(wanted, tuple) else (wanted,)
                raise UserError(f"--{name} is used only with --{switch} "
                                f"{' or '.join(map(cli_text, wanted))} (--{switch} is "
                                f"{cli_text(getattr(self, switch))})")

    def decay_epochs(self):
        """The epochs where every rate drops tenfold with momentum SGD (--lr_decay_epochs), as
        a tuple of increasing positive epochs; none with Adam (the reference's constant
        rates)."""
        if self.optimizer != "momentum":
            return ()
        text = self.lr_decay_epochs
        try:
            epochs = tuple(int(e) for e in text.split(",") if e.strip())
        except ValueError:
            epochs = None
        if epochs is None or any(e <= 0 for e in epochs) or list(epochs) != sorted(set(epochs)):
            raise UserError(f"--lr_decay_epochs must be increasing positive epochs separated by "
                            f"commas (e.g. 50,1000), got {text!r}")
        return epochs

    def lr_factor(self, epoch):
        """The factor of every learning rate in ``epoch``: 0.1 ** (the decay epochs reached)."""
        return 0.1 ** sum(epoch >= e for e in self.decay_epochs())

    def applicable(self, keys):
        """{key: value} of the settings among ``keys`` that this run uses (a setting of another
        prior, label mode or optimizer is left out)."""
        return {k: getattr(self, k) for k in keys if _applies(self, k)}

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values, where="config"):
        """Build from a dict (e.g. a checkpoint's); unknown keys and wrong types are refused."""
        check_retired(values, where)
        values = {k: v for k, v in values.items() if k not in RETIRED}
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        kwargs = {}
        for name, value in values.items():
            kwargs[name] = _coerce(name, value, _field_type(known[name]), where)
        return cls(**kwargs).validate()

    def _validate_limits(self):
        """Values the libraries or this machine cannot handle, refused before any work with
        the option and what to do: an empty path, a seed Paddle does not take, a Parzen
        width whose square (or, for --sigma_min / --sigma_max, whose 10**x) over- or
        underflows, and sizes whose run would need more memory than the machine has."""
        for name, fix in (("checkpoint", "give the path of a checkpoint file, or leave the "
                           "option out to use <model_dir>/model<load_epoch>.npz"),
                          ("save_samples", "give a file name ending in .npy, or leave the "
                           "option out"),
                          ("data_dir", "give a folder (. for the current one)"),
                          ("model_dir", "give a folder (. for the current one)"),
                          ("images_dir", "give a folder (. for the current one)"),
                          ("logs_dir", "give a folder (. for the current one)")):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise UserError(f"--{name} is empty: {fix}")

        max_seed = 2**63 - 1  # paddle.seed takes a signed 64-bit integer
        if self.seed > max_seed:
            raise UserError(f"--seed must be at most {max_seed} (2**63 - 1, the largest seed "
                            f"paddle.seed takes), got {self.seed}")

        # The Parzen window computes -1 / (2 sigma^2) in float32 and sigma^2 * 784 in float64:
        # beyond 1e-15 .. 1e15 these over- or underflow (pixels lie in [0, 1]; useful widths
        # are about 0.01 to 1).
        low, high = -15, 15
        if self.sigma is not None and not 10.0**low <= self.sigma <= 10.0**high:
            raise UserError(f"--sigma must be between 1e{low} and 1e{high}, got {self.sigma:g} "
                            f"(its square over- or underflows beyond; pixels lie in [0, 1], "
                            f"useful widths are about 0.01 to 1)")
        for name in ("sigma_min", "sigma_max"):
            value = getattr(self, name)
            if not low <= value <= high:
                raise UserError(f"--{name} must be between {low} and {high} (it is log10 of "
                                f"sigma: 10**{value:g} over- or underflows), got {value:g}")

    def check_memory(self):
        """Refuse, before any work, sizes whose run would need more memory than this machine
        has (checked for the options a user gives, not for a checkpoint's saved config)."""
        memory.refuse_too_large(self, pixels=IMAGE_SIDE * IMAGE_SIDE, most_rows=MNIST_COUNTS,
                                label_units=_label_units)


def _label_units(cfg):
    """(label units beside a code, discriminators) of a Config's networks (utils/memory.py)."""
    if cfg.labels in CATEGORICAL_MODES:
        return cfg.n_categories, 2
    return (N_CLASSES + 1 if cfg.labels != "none" else 0), 1


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


def build_parser(prog, keys, description="", explicit_only=False):
    """An argparse parser for the Config fields ``keys`` (utils/cli.py). ``explicit_only``:
    the parsed namespace holds only the options given on the command line (so that they can
    win over a preset); the defaults come from Config."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    return cli.build_parser(prog, [(fields[key], _field_type(fields[key])) for key in keys],
                            PRESETS if "preset" in keys else None, description, explicit_only)


def parse_config(prog, keys, argv=None, description=""):
    """Defaults, overridden by ``--preset``'s settings, overridden by the options given;
    refuses unknown options and bad values."""
    parser = build_parser(prog, keys, description, explicit_only=True)
    given = vars(parser.parse_args([] if argv is None else list(argv)))
    return resolve(given)


def resolve(given):
    """The Config of defaults < the preset named in ``given`` (if any) < ``given``."""
    preset = given.get("preset")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"--preset {preset!r} is unknown; presets: {', '.join(PRESETS)}")
    values = dict(PRESETS[preset][1]) if preset is not None else {}
    values.update(given)
    cfg = Config(**values).validate()
    cfg.check_memory()
    return cfg


def sigma_grid(cfg):
    """The sigmas tried by cross-validation: logspace(sigma_min, sigma_max, sigma_num)."""
    import numpy as np
    return np.logspace(cfg.sigma_min, cfg.sigma_max, cfg.sigma_num)
