"""Run a trained AAE on one picture of a digit, or decode samples of its prior.

    python predict.py --image images/mnist_test_0.png            # model/model199.npz
    python predict.py --image my_digit.jpg --checkpoint model/semi_100_model99.npz
    python predict.py --samples 64                               # prior samples as a grid

``--image``: any PNG or JPG, colour or grey, any size, becomes a 28x28 MNIST-like input (grey,
white digit on black, scaled to [0, 1]; the digit's box resized to 20x20 and centred by its
centre of mass, as MNIST's digits are; a 28x28 grey image with a dark border is taken as it
is: utils/digits.py). Prints its code (the encoder's mean mu(x): the Gaussian encoder's noise,
of std 5, would hide the digit) and writes the input and its reconstruction side by side to
<output_dir>/predict_<name>.png. A categorical checkpoint (model/semi_100_model99.npz,
model/cluster_16_model99.npz, ...) also prints the predicted class, or the cluster and its
label (the validation image it is most sure of, paper §6), with its probability q(y|x).

``--samples N``: N codes of the prior decoded (the first N that eval.py decodes for the same
--seed; a categorical decoder gets the categories in turn), written to
<output_dir>/predict_samples.png. ``--save_npy FILE``: the reconstruction (with --image; else
the samples) as a .npy array [n, 784]. Nothing is written unless everything succeeds.
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import os

import numpy as np
import paddle

import config
from eval import generate, load_model
from export_model import DEFAULT_CHECKPOINT, clusters_labelled, deployed_layers
from utils import deploy, files
from utils.digits import HOW, load_digit
from utils.errors import UserError, check_path_length, ensure_folder, run_cli
from utils.paddle_save_image import save_image
from utils.run import select_device

PREDICT_KEYS = ["checkpoint", "data_dir", "seed", "device"]
PICTURE_SCALE = 4  # pixels of the PNG per image pixel: a 28x28 digit is shown at 112x112
MAX_SAMPLES = 10000  # --samples at most (eval.py's N_gen)


def run_layers(layers, x):
    """The deployed networks (export_model.deployed_layers) on images x [n, pixels]:
    {"code", "probs" (categorical models), "recon"} as numpy arrays."""
    with paddle.no_grad():
        images = paddle.to_tensor(x)
        code = layers["encoder"][0](images)
        out = {"code": code.numpy()}
        if "classifier" in layers:
            probs = layers["classifier"][0](images)
            out["probs"] = probs.numpy()
            out["recon"] = layers["decoder"][0](code, probs).numpy()
        else:
            out["recon"] = layers["decoder"][0](code).numpy()
    return out


def format_code(code):
    return "[" + ", ".join(f"{v:.4f}" for v in np.asarray(code).reshape(-1)) + "]"


def output_name(image_path, prefix="predict"):
    """predict_<file name without extension>.png"""
    return f"{prefix}_{os.path.splitext(os.path.basename(image_path))[0]}.png"


def check_npy_path(path, option="--save_npy"):
    if not path.endswith(".npy"):
        raise UserError(f"{option} {path}: the file name must end in .npy")
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder: give a file name ending in .npy")
    check_path_length(path, option, reserve=files.TEMPORARY_RESERVE)


def save_array(path, array, option="--save_npy"):
    """``array`` as a .npy file, atomically; a full disk or a refused write is one line."""
    try:
        files.atomic_write(path, lambda f: np.save(f, array))
    except UserError as err:
        raise UserError(f"{err}; nothing was saved (choose another {option}, or make room "
                        "there)") from None


def parse_args(argv):
    parser = config.build_parser("predict.py", PREDICT_KEYS, description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=None, metavar="FILE",
                        help=f"a PNG or JPG of a digit; it is made MNIST-like: {HOW}")
    parser.add_argument("--samples", type=int, default=None, metavar="N",
                        help="decode N samples of the prior to <output_dir>/predict_samples.png")
    parser.add_argument("--output_dir", default="images",
                        help="where the pictures go (default: images)")
    parser.add_argument("--save_npy", default=None, metavar="FILE",
                        help="also save the reconstruction (or the samples) as a .npy file")
    args = parser.parse_args([] if argv is None else list(argv))
    if args.image is None and args.samples is None:
        raise UserError("give --image FILE (a picture of a digit, e.g. images/mnist_test_0.png)"
                        " or --samples N (see python predict.py --help)")
    if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
        raise UserError(f"--samples must be between 1 and {MAX_SAMPLES}, got {args.samples}")
    if args.checkpoint is None:
        args.checkpoint = DEFAULT_CHECKPOINT
    return args


def main(argv=None):
    args = parse_args(argv)
    path = args.checkpoint
    if os.path.isdir(path) or not os.path.isfile(path):
        problem = "is a folder" if os.path.isdir(path) else "not found"
        raise UserError(f"--checkpoint {path} {problem}; give a checkpoint file (the shipped "
                        "models are in model/)")
    check_path_length(args.output_dir, "--output_dir")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UserError(f"--output_dir {args.output_dir} is a file: give a folder")
    if args.save_npy:
        check_npy_path(args.save_npy)
    x = load_digit(args.image) if args.image is not None else None  # checked before any work
    select_device(args.device)
    nets, train_cfg, meta = load_model(path)
    layers = deployed_layers(nets, train_cfg, path)
    n_pixels = nets["decoder"].out_dim
    if x is not None and x.shape[1] != n_pixels:
        raise UserError(f"{path} takes images of {n_pixels} pixels, not {x.shape[1]}")
    result = {"checkpoint": path, "labels": train_cfg.labels}
    pictures = []  # (images, file, images per row), written at the end
    if x is not None:
        result.update(run_layers(layers, x))
        result["input"] = x
        print(f"code: {format_code(result['code'])}")
        if "probs" in result:
            result["cluster_labels"] = clusters_labelled(nets, train_cfg, args.data_dir)
            line = deploy.describe_prediction(result["probs"][0], train_cfg.labels,
                                              result["cluster_labels"])
            result["prediction"] = line
            print(line)
        picture = os.path.join(args.output_dir, output_name(args.image))
        pictures.append((np.concatenate([x, result["recon"]]), picture, 2))
        result["picture"] = picture
    if args.samples is not None:
        samples = generate(nets["decoder"], train_cfg, args.samples, args.seed)
        result["samples"] = samples
        grid = os.path.join(args.output_dir, "predict_samples.png")
        pictures.append((samples, grid, nets["decoder"].label_dim or 10))
        result["samples_picture"] = grid
    ensure_folder(args.output_dir, "--output_dir")
    if args.save_npy:
        ensure_folder(os.path.dirname(args.save_npy) or ".", "--save_npy")
        save_array(args.save_npy, result["recon"] if x is not None else result["samples"])
    for images, file, per_row in pictures:
        save_image(images, file, nrow=per_row, scale=PICTURE_SCALE)
        print(f"wrote {file}")
    return result


if __name__ == "__main__":
    run_cli(main, all_or_nothing="predict.py")
