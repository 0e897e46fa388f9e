"""The project's one checkpoint format: a single ``.npz`` file, loaded without pickle.

Arrays are stored under ``net/<network>/<parameter>`` (e.g. ``net/encoder/model.0.weight``)
and, for resumable training checkpoints, ``opt/<optimizer>/<parameter>/<slot>`` (Adam's
moments and beta powers). ``__meta__`` holds a JSON string: the resolved config, the epoch and
step reached, running sums and anything else the trainer records. Optimizer slots are keyed by
the structured parameter names, not by Paddle's process-global names (``linear_3.w_0``), so a
checkpoint resumes in any process.

Files are written to a temporary name in the same folder, fsynced and renamed: an interrupted
save leaves the previous checkpoint intact and never a half-written file under the real name.
The rename replaces a symbolic link of that name by the new file, never the file the link points
to. Within ``all_or_nothing`` the renames wait for the end of the block, so that several outputs
(an epoch's, an evaluation's) appear together or not at all.

Reading runs no code and trusts no size the file declares: every array's header is checked
(no object arrays, a size that matches the bytes stored) before anything is allocated.
"""
import contextlib
import json
import math
import os
import re
import signal
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


# The all_or_nothing blocks in progress, innermost last: each a list of (temporary, path).
_STAGES = []


def _remove_quietly(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def _fsync_folder(folder):
    """Make the renames in ``folder`` durable (where the system allows it)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait until the block is done (then arrive as usual)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # not on POSIX
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _commit(pending):
    """Rename every (temporary, path) of ``pending`` in order; if one fails, the rest are
    removed and that file is named (the renamed ones are complete files)."""
    with _signals_held():
        for i, (tmp, path) in enumerate(pending):
            try:
                os.replace(tmp, path)
            except OSError as err:
                for later, _ in pending[i:]:
                    _remove_quietly(later)
                raise UserError(f"cannot write {path}: {err.strerror}") from None
        for folder in dict.fromkeys(os.path.dirname(os.path.abspath(p)) for _, p in pending):
            _fsync_folder(folder)


@contextlib.contextmanager
def all_or_nothing():
    """Within the block, ``atomic_write`` leaves each file under its temporary name; when the
    block ends normally they all take their real names (Ctrl-C and SIGTERM held back for the
    few renames), and when it ends by an error, a full disk or a signal raised as an exception
    they are all removed: the folders keep the earlier outputs, or get every new one. A file
    written within the block cannot be read back under its name until the block ends."""
    pending = []
    _STAGES.append(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _remove_quietly(tmp)
        raise
    finally:
        _STAGES.remove(pending)
    if _STAGES:  # nested: the outer block decides
        _STAGES[-1].extend(pending)
    else:
        _commit(pending)


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, rename over ``path``
    (inside ``all_or_nothing``: at the end of that block). A symbolic link named ``path`` is
    replaced by the file; its target is never written."""
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
        if _STAGES:
            stage = _STAGES[-1]
            for earlier in [entry for entry in stage if entry[1] == path]:
                stage.remove(earlier)  # written twice in the block: the later one counts
                _remove_quietly(earlier[0])
            stage.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise UserError(f"cannot write {path}: {err.strerror or err}") from None
        if isinstance(err, MemoryError):
            raise UserError(f"cannot write {path}: out of memory") from None
        raise
    _fsync_folder(folder)  # make the rename itself durable


# The temporary names atomic_write gives the checkpoints of train.py
_TEMPORARY = re.compile(r"(last|best|model\d+)\.npz\.[a-z0-9_]{8}\.tmp")  # mkstemp's 8 characters


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
