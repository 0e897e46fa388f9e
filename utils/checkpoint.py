"""The project's one checkpoint format: a single ``.npz`` file, loaded without pickle.

Arrays are stored under ``net/<network>/<parameter>`` (e.g. ``net/encoder/model.0.weight``)
and, for resumable training checkpoints, ``opt/<optimizer>/<parameter>/<slot>`` (Adam's
moments and beta powers). ``__meta__`` holds a JSON string: the resolved config, the epoch and
step reached, running sums and anything else the trainer records. Optimizer slots are keyed by
the structured parameter names, not by Paddle's process-global names (``linear_3.w_0``), so a
checkpoint resumes in any process.

Files are written to a temporary name in the same folder, fsynced and renamed: an interrupted
save leaves the previous checkpoint intact and never a half-written file under the real name.
"""
import json
import os
import re
import tempfile
import zipfile

import numpy as np

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


def _umask():
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as err:
        raise UserError(f"cannot write to {folder}: {err.strerror}; choose a writable folder")
    try:
        # mkstemp makes the file private (0600); give it the mode of any new file instead
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise UserError(f"cannot write {path}: {err.strerror}") from None
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# The temporary names atomic_write gives the checkpoints of train.py
_TEMPORARY = re.compile(r"(last|model\d+)\.npz\.[a-z0-9_]{8}\.tmp")  # mkstemp's 8 characters


def remove_stale_temporaries(folder):
    """Delete the temporary checkpoint files a killed save left in ``folder`` (only those:
    other files, the user's own ``*.tmp`` included, stay)."""
    if not os.path.isdir(folder):
        return []
    stale = [name for name in os.listdir(folder) if _TEMPORARY.fullmatch(name)]
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale


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
    atomic_write(path, lambda f: np.savez(f, **arrays))


def starts_like_zip(path):
    """True if the file begins as a zip archive (an .npz does), even one cut short."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load(path):
    """Read a checkpoint: returns (meta dict, {array name: numpy array}). Runs no code."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} not found")
    if not starts_like_zip(path):  # else numpy's message would suggest unpickling it
        raise UserError(f"{path} is not an .npz checkpoint of this project (for a pickled "
                        "checkpoint such as the reference's model199.pkl, name it *.pkl and "
                        "pass --trust_pickle true)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
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


def restore_networks(networks, arrays, path):
    """Load every network's weights; refuse any missing, extra or mis-shaped array."""
    for net_name, layer in networks.items():
        state = layer.state_dict()
        expected = {key: value.shape for key, value in state.items()}
        found = _check_and_collect(f"net/{net_name}/", expected, arrays, path)
        layer.set_state_dict({key: found[key] for key in state})


def restore_optimizers(optimizers, arrays, path):
    """Load Adam's state saved by ``save``; mapped back to this process's parameter names."""
    for opt_name, (optimizer, layer) in optimizers.items():
        prefix = f"opt/{opt_name}/"
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
