"""Serve an exported AAE with Paddle Inference: the outputs of predict.py, without the network
code (only the folder export_model.py wrote, and utils/digits.py's image handling).

    python export_model.py --save_dir inference
    python infer.py --model_dir inference --image images/mnist_test_0.png --save_npy recon.npy

Each network of <model_dir>/inference.json (utils/deploy.py) is loaded with
``paddle.inference.Config`` and ``create_predictor``; the picture is made MNIST-like as
predict.py makes it. Prints the code (and a categorical model's class, or cluster and its
label, with its probability), writes the input and its reconstruction side by side to
<output_dir>/infer_<name>.png and, with ``--save_npy``, the reconstruction [1, 784]. Its
outputs agree with predict.py's to 1e-4 (tests/test_deploy.py).
"""
import utils.cpu_env  # noqa: F401  (sets MKL/OpenMP threads; must precede the paddle import)

import contextlib
import os

import numpy as np

from utils import cli, deploy, files
from utils.digits import HOW, load_digit
from utils.errors import UserError, check_path_length, ensure_folder, run_cli
from utils.paddle_save_image import save_image

PICTURE_SCALE = 4  # as predict.py


def process_threads():
    """The math-library threads this process started with (OMP_NUM_THREADS, which
    utils/cpu_env.py sets to the usable cores where the user has not)."""
    return int(os.environ["OMP_NUM_THREADS"])


@contextlib.contextmanager
def keeping_process_threads():
    """Paddle Inference sets the process-wide MKL/OpenMP thread count to its predictor's when
    it builds or runs one; set it back to ``process_threads()`` afterwards, so that
    dynamic-graph code in the same process (predict.py, training in a notebook) computes as it
    did before, with the same threads and therefore the same sums."""
    try:
        yield
    finally:
        from paddle.base import core
        core.set_num_threads(process_threads())


def make_predictor(folder, name, threads):
    """A Paddle Inference predictor of network ``name`` of an exported ``folder`` (CPU)."""
    from paddle import inference
    program = deploy.program_file(folder, name)
    params = os.path.join(folder, name + deploy.PARAMS_SUFFIX)
    cfg = inference.Config(program, params)
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(threads)
    cfg.disable_glog_info()
    try:
        with keeping_process_threads():
            return inference.create_predictor(cfg)
    except Exception as err:  # Paddle raises several types for a damaged program or weights
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:160]
        raise UserError(f"{folder}: the {name} files cannot be loaded by Paddle Inference "
                        f"({reason}); export it again with python export_model.py --save_dir "
                        f"{folder}") from None


def run_predictor(predictor, inputs):
    """Outputs (a list of numpy arrays) of ``predictor`` for ``inputs`` (numpy arrays, in the
    predictor's input order)."""
    for name, value in zip(predictor.get_input_names(), inputs):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(value.shape))
        handle.copy_from_cpu(np.ascontiguousarray(value, dtype=np.float32))
    with keeping_process_threads():
        predictor.run()
    return [predictor.get_output_handle(name).copy_to_cpu()
            for name in predictor.get_output_names()]


def check_inputs(predictor, described, folder, name):
    """Refuse a program whose inputs are not the ones inference.json describes (files of
    another model put in the folder)."""
    names = predictor.get_input_names()
    wanted = [t["name"] for t in described]
    if names != wanted:
        raise UserError(f"{folder}: the {name} program takes {', '.join(names)}, "
                        f"{deploy.SPEC_FILE} says {', '.join(wanted)}: files of another export; "
                        f"export it again with python export_model.py --save_dir {folder}")


def load_predictors(folder, spec, threads=1):
    predictors = {}
    for name in deploy.MODEL_NAMES:
        if name in spec["models"]:
            predictors[name] = make_predictor(folder, name, threads)
            check_inputs(predictors[name], spec["models"][name]["inputs"], folder, name)
    return predictors


def run_checked(predictors, name, inputs, spec, folder):
    """The one output of network ``name``, refused unless it has the width inference.json
    gives (a program of another model put in the folder)."""
    again = ("files of another export; export it again with python export_model.py "
             f"--save_dir {folder}")
    try:
        out = run_predictor(predictors[name], inputs)[0]
    except Exception:  # a program made for other input widths
        raise UserError(f"{folder}: the {name} program refuses inputs of the widths "
                        f"{deploy.SPEC_FILE} gives ({', '.join(str(v.shape) for v in inputs)}): "
                        f"{again}") from None
    width = spec["models"][name]["outputs"][0]["shape"][1]
    if out.ndim != 2 or out.shape[1] != width:
        raise UserError(f"{folder}: the {name} program returns {list(out.shape)}, "
                        f"{deploy.SPEC_FILE} says [-1, {width}]: {again}")
    return out


def infer(predictors, x, spec, folder):
    """{"code", "probs" (categorical models), "recon"} for images x [n, pixels]."""
    code = run_checked(predictors, "encoder", [x], spec, folder)
    out = {"code": code}
    decoder_inputs = [code]
    if "classifier" in predictors:
        out["probs"] = run_checked(predictors, "classifier", [x], spec, folder)
        decoder_inputs.append(out["probs"])
    out["recon"] = run_checked(predictors, "decoder", decoder_inputs, spec, folder)
    return out


def main(argv=None):
    parser = cli.Parser(prog="infer.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model_dir", default="inference",
                        help="a folder written by export_model.py (default: inference)")
    parser.add_argument("--image", required=True, metavar="FILE",
                        help=f"a PNG or JPG of a digit; it is made MNIST-like: {HOW}")
    parser.add_argument("--output_dir", default="images",
                        help="where the picture goes (default: images)")
    parser.add_argument("--save_npy", default=None, metavar="FILE",
                        help="also save the reconstruction as a .npy file")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of each predictor (default: 1)")
    args = parser.parse_args([] if argv is None else list(argv))
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    check_path_length(args.output_dir, "--output_dir")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UserError(f"--output_dir {args.output_dir} is a file: give a folder")
    if args.save_npy:
        if not args.save_npy.endswith(".npy") or os.path.isdir(args.save_npy):
            raise UserError(f"--save_npy {args.save_npy}: give a file name ending in .npy")
        check_path_length(args.save_npy, "--save_npy", reserve=files.TEMPORARY_RESERVE)
    spec = deploy.read_spec(args.model_dir)
    x = load_digit(args.image, spec["pixels"])
    predictors = load_predictors(args.model_dir, spec, args.threads)
    result = infer(predictors, x, spec, args.model_dir)
    result["input"] = x
    print(f"code: [{', '.join(f'{v:.4f}' for v in result['code'].reshape(-1))}]")
    if "probs" in result:
        line = deploy.describe_prediction(result["probs"][0], spec["labels"],
                                          spec.get("cluster_labels"))
        result["prediction"] = line
        print(line)
    picture = os.path.join(args.output_dir,
                           f"infer_{os.path.splitext(os.path.basename(args.image))[0]}.png")
    ensure_folder(args.output_dir, "--output_dir")
    if args.save_npy:
        ensure_folder(os.path.dirname(args.save_npy) or ".", "--save_npy")
        files.atomic_write(args.save_npy, lambda f: np.save(f, result["recon"]))
    save_image(np.concatenate([x, result["recon"]]), picture, nrow=2, scale=PICTURE_SCALE)
    print(f"wrote {picture}")
    result["picture"] = picture
    return result


if __name__ == "__main__":
    run_cli(main, all_or_nothing="infer.py")
