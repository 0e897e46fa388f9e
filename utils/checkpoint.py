"""The project's one checkpoint format: a single ``.npz`` file, loaded without pickle.

Arrays are stored under ``net/<network>/<parameter>`` (e.g. ``net/encoder/model.0.weight``)
and, for resumable training checkpoints, ``opt/<optimizer>/<parameter>/<slot>`` (Adam's
moments and beta powers). ``__meta__`` holds a JSON string: the resolved config, the epoch and
step reached, running sums and anything else the trainer records. Optimizer slots are keyed by
the structured parameter names, not by Paddle's process-global names (``linear_3.w_0``), so a
checkpoint resumes in any process.

Files are written by ``utils.files.atomic_write``: an interrupted save leaves the previous
checkpoint intact and never a half-written file under the real name.

Reading runs no code and trusts no size the file declares: every array's header is checked
(no object arrays, a size that matches the bytes stored) before anything is allocated.
"""
import json
import math
import os
import zipfile

import numpy as np

from utils import files
from utils.errors import UserError

FORMAT = "aae-paddle-checkpoint"
VERSION = 1


def _param_names(layer):
    """Paddle's global parameter name -> the name inside ``layer`` (``model.0.weight``)."""
    return {p.name: name for name, p in layer.named_parameters()}


def _optimizer_arrays(opt_name, optimizer, layer):
    arrays = {}
    names = _param_names(layer)
    for key, value in optimizer.state_dict().items():
        if not hasattr(value, "numpy"):
            continue  # e.g. an empty LR_Scheduler dict: nothing to restore for a fixed lr
        for global_name, local_name in names.items():
            if key.startswith(global_name + "_"):
                slot = key[len(global_name) + 1:]
                arrays[f"opt/{opt_name}/{local_name}/{slot}"] = value.numpy()
                break
        else:
            raise RuntimeError(f"optimizer {opt_name}: state {key!r} matches no parameter")
    return arrays


# The names of train.py's checkpoints, whose temporaries a resumed or new run removes
CHECKPOINT_NAMES = r"(?:last|best|model\d+)\.npz"


def remove_stale_temporaries(folder):
    """Delete the temporary checkpoint files a killed save left in ``folder`` (only those)."""
    return files.remove_stale_temporaries(folder, CHECKPOINT_NAMES)


def refuse_to_replace_unfinished(path):
    """A new run must not replace the resume point ``path`` of a run that has not finished."""
    try:
        meta, _ = load(path)
        done, total = meta["epoch"], meta["config"]["n_epochs"]
        unfinished = done < total or meta.get("batch", 0)
    except (UserError, KeyError, TypeError):
        return  # unreadable: nothing to continue from
    if unfinished:
        raise UserError(f"{path} holds an unfinished run (epoch {done} of {total}); continue it "
                        "with --resume, or choose another --model_dir, or delete it")


def save(path, networks, meta, optimizers=None):
    """Write a checkpoint.

    networks: {name: paddle.nn.Layer}; optimizers: {name: (optimizer, layer it updates)} or
    None for a weights-only file; meta: JSON-serialisable dict (config, epoch, ...).
    """
    arrays = {}
    for net_name, layer in networks.items():
        for key, value in layer.state_dict().items():
            arrays[f"net/{net_name}/{key}"] = value.numpy()
    for opt_name, (optimizer, layer) in (optimizers or {}).items():
        arrays.update(_optimizer_arrays(opt_name, optimizer, layer))
    record = {"format": FORMAT, "version": VERSION, **meta}
    arrays["__meta__"] = np.array(json.dumps(record, sort_keys=True))
    files.atomic_write(path, lambda f: np.savez(f, **arrays))


def starts_like_zip(path):
    """True if the file begins as a zip archive (an .npz does), even one cut short."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _machine_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gigabytes(n_bytes):
    return f"{n_bytes / 1e9:.3g} GB"


def _array_header(f, name, path):
    """(shape, fortran_order, dtype) of the .npy member ``name`` open as ``f``."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"{name} has .npy format version {version[0]}.{version[1]}, which this "
                     "project does not write")


def read_npz(path):
    """The arrays of an .npz file, read without pickle and without trusting its headers: an
    object array (its elements would be unpickled: code could run) or an array whose declared
    shape does not match the bytes stored (a forged header could ask for any amount of memory)
    is refused with a UserError naming the array, before its data is read."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        declared = sum(info.file_size for info in members)
        memory = _machine_memory()
        if memory and declared > memory:
            raise UserError(f"{path} declares {_gigabytes(declared)} of arrays, more than the "
                            f"{_gigabytes(memory)} of this machine: a damaged or forged file, "
                            "not a checkpoint of this project")
        for info in members:
            name = info.filename
            if not name.endswith(".npy"):
                raise UserError(f"{path} holds {name!r}, which is not an array: not a "
                                "checkpoint of this project")
            key = name[:-len(".npy")]
            with archive.open(info) as f:
                shape, fortran, dtype = _array_header(f, name, path)
                if dtype.hasobject:
                    raise UserError(f"{path}: its array {key} holds Python objects, which only "
                                    "unpickling (running code from the file) could read; this "
                                    "project never writes those: not one of its checkpoints")
                n_bytes = math.prod(shape) * dtype.itemsize
                stored = info.file_size - f.tell()
                if n_bytes != stored:
                    raise UserError(f"{path}: its array {key} declares shape {list(shape)} "
                                    f"({n_bytes} bytes) but stores {stored} bytes: a damaged "
                                    "or forged file, not a checkpoint of this project")
                data = f.read(n_bytes)
            if len(data) != n_bytes:
                raise ValueError(f"{name} ends after {len(data)} of {n_bytes} bytes")
            array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
            arrays[key] = array.copy()  # writable, as np.load gives it
    return arrays


def load(path):
    """Read a checkpoint: returns (meta dict, {array name: numpy array}). Runs no code."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} not found")
    if not starts_like_zip(path):  # else numpy's message would suggest unpickling it
        raise UserError(f"{path} is not an .npz checkpoint of this project (for a pickled "
                        "checkpoint such as the reference's model199.pkl, name it *.pkl and "
                        "pass --trust_pickle true)")
    try:
        arrays = read_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path} is not a readable checkpoint ({err}); it may be truncated "
                        "or not made by this project") from None
    if "__meta__" not in arrays:
        raise UserError(f"{path} has no __meta__ record: not a checkpoint of this project")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: its __meta__ record is damaged: not a checkpoint of this "
                        "project, or a damaged one")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(f"{path}: unsupported checkpoint format "
                        f"{meta.get('format')!r} version {meta.get('version')!r}")
    return meta, arrays


def _check_and_collect(prefix, expected, arrays, path):
    """Arrays under ``prefix`` whose names and shapes must equal ``expected`` {name: shape}."""
    found = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    problems = []
    for name, shape in expected.items():
        if name not in found:
            problems.append(f"{prefix}{name} missing")
        elif tuple(found[name].shape) != tuple(shape):
            problems.append(f"{prefix}{name} has shape {list(found[name].shape)}, "
                            f"the model expects {list(shape)}")
    problems += [f"{prefix}{name} unexpected" for name in found if name not in expected]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more"
                                           if len(problems) > 6 else "")
        raise UserError(f"{path} does not fit this model ({shown}); was it made with another "
                        "config (N, latent_dim, encoder)?")
    return found


def _paddle_dtype_name(value):
    return str(value.dtype).replace("paddle.", "")


def check_values(found, state, prefix, path):
    """Refuse arrays ``found`` of another dtype than the model's ``state`` (float16, integers:
    not written by this project, and Paddle would convert or reject them silently) or holding
    NaN or infinite numbers (a diverged or damaged model)."""
    for key, value in state.items():
        array, wanted = found[key], _paddle_dtype_name(value)
        if array.dtype.name != wanted:
            raise UserError(f"{path}: {prefix}{key} holds {array.dtype.name} numbers, the "
                            f"model's are {wanted}: not a checkpoint written by this project "
                            "(convert it, or use the checkpoint train.py wrote)")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise UserError(f"{path}: {prefix}{key} holds {bad} NaN or infinite number(s): "
                            "the model diverged or the file is damaged; use an earlier "
                            "checkpoint")


def restore_networks(networks, arrays, path):
    """Load every network's weights; refuse any missing, extra or mis-shaped array, one of
    another dtype or with NaN or infinite numbers."""
    for net_name, layer in networks.items():
        state = layer.state_dict()
        expected = {key: value.shape for key, value in state.items()}
        found = _check_and_collect(f"net/{net_name}/", expected, arrays, path)
        check_values(found, state, f"net/{net_name}/", path)
        layer.set_state_dict({key: found[key] for key in state})


# Optimizers saved under another name by earlier versions: {today's name: the old one}
LEGACY_OPTIMIZER_NAMES = {"encoder_adversarial": "generator"}


def restore_optimizers(optimizers, arrays, path):
    """Load Adam's state saved by ``save``; mapped back to this process's parameter names."""
    for opt_name, (optimizer, layer) in optimizers.items():
        prefix = f"opt/{opt_name}/"
        if not any(k.startswith(prefix) for k in arrays) and opt_name in LEGACY_OPTIMIZER_NAMES:
            prefix = f"opt/{LEGACY_OPTIMIZER_NAMES[opt_name]}/"
        found = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if not found:
            raise UserError(f"{path} holds no optimizer state ({opt_name}): it is a "
                            "weights-only file and cannot be resumed from")
        state = {}
        for global_name, local_name in _param_names(layer).items():
            for key, value in found.items():
                if key.startswith(local_name + "/"):
                    state[f"{global_name}_{key[len(local_name) + 1:]}"] = value
        optimizer.set_state_dict(state)


# ---------------------------------------------------------------------------------------
# Resume points of train.py
# ---------------------------------------------------------------------------------------
def load_resume_point(path, names):
    """The record and arrays of a resume point ``path``, refused unless it is one (a
    weights-only model*.npz, a damaged record) for a model with the losses ``names``."""
    try:
        meta, arrays = load(path)
    except UserError as err:
        raise UserError(f"--resume: {err}; restore it, or start a new run in another "
                        "--model_dir") from None
    fields = {"config": dict, "epoch": int, "batch": int, "partial_sums": list}
    bad = [k for k, kind in fields.items() if not isinstance(meta.get(k), kind)]
    if bad:
        raise UserError(f"--resume: {path} is not a resume point ({', '.join(bad)} missing or "
                        "damaged; a weights-only model*.npz cannot be resumed); restore it, or "
                        "start a new run in another --model_dir")
    if len(meta["partial_sums"]) != len(names):
        raise UserError(f"--resume: {path} holds {len(meta['partial_sums'])} running losses, "
                        f"this model has {len(names)} ({', '.join(names)}): it is another "
                        "model's; start a new run in another --model_dir")
    return meta, arrays


def check_same_split(meta, split, path, log):
    """Refuse to resume on other images than the run was trained on."""
    if "split" not in meta:  # checkpoints made before the split was recorded
        log.info("%s records no data split (an older checkpoint); assuming the current one", path)
    elif meta["split"] != split:
        saved = meta["split"] if isinstance(meta["split"], dict) else {}
        differ = [k for k in split if saved.get(k) != split[k]] or ["record"]
        raise UserError(f"--resume: {path} was trained on another data split (its "
                        f"{', '.join(differ)} differ from those of the split in --data_dir): "
                        "remake that split with data_maker.py, or start a new run without "
                        "--resume")


def split_record(meta, n_train):
    """What identifies the training images: the split's seed, sizes, validation indices and
    the idx files it was made from."""
    return {"seed": meta.get("seed"), "n_valid": meta.get("n_valid"), "n_train": n_train,
            "valid_indices_sha256": meta.get("valid_indices_sha256"),
            "sha256": meta.get("sha256")}


# ---------------------------------------------------------------------------------------
# Checkpoints of the reference reproduction (keil555/AAE_paddle): pickles written by
# paddle.save({'encoder': ..., 'decoder': ..., 'discriminator': ..., <optimizers>}).
# ---------------------------------------------------------------------------------------
LEGACY_NETWORKS = ("encoder", "decoder", "discriminator")


def is_pickle_checkpoint(path):
    return path.endswith((".pkl", ".pdparams", ".pickle"))


def load_legacy_pickle(path, trusted, warn=print):
    """Read a reference-style pickled checkpoint as (meta, arrays) in this project's layout.

    Unpickling can run arbitrary code, so this refuses unless ``trusted`` is true. The
    reference's unused ``direct`` encoder head is dropped; its architecture is this project's
    default config, which is recorded as the checkpoint's config.
    """
    if not trusted:
        raise UserError(f"{path} is a pickle file, and loading a pickle can run any code it "
                        "contains; if you trust where it came from, pass --trust_pickle true")
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} not found")
    warn(f"warning: unpickling {path} because --trust_pickle was given; pickles can run code")
    import paddle
    try:
        state = paddle.load(path)
    except Exception as err:  # paddle/pickle raise many types for a bad file
        raise UserError(f"{path} could not be read as a Paddle pickle ({err})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not the reference's dict of "
                        f"{', '.join(LEGACY_NETWORKS)} weights")
    missing = [name for name in LEGACY_NETWORKS if name not in state]
    if missing:
        raise UserError(f"{path} lacks the reference's {', '.join(missing)} entries")
    arrays = {}
    for net_name in LEGACY_NETWORKS:
        for key, value in state[net_name].items():
            if net_name == "encoder" and key.startswith("direct."):
                continue  # defined but never used by the reference
            arrays[f"net/{net_name}/{key}"] = np.asarray(value)
    from config import Config
    meta = {"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
            "legacy_pickle": os.path.abspath(path)}
    return meta, arrays
