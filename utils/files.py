"""Writing a file so that no reader ever sees half of it: the project's one atomic writer.

``atomic_write`` writes to a temporary name beside the file, fsyncs and renames; an
interrupted write (crash, Ctrl-C, full disk) leaves the previous file or the new one, never
half a file, and a symbolic link of that name is replaced, never followed. Within
``all_or_nothing`` the renames wait for the end of the block, so that several outputs (an
epoch's, an evaluation's) appear together or not at all. ``remove_stale_temporaries`` deletes
the temporary files a killed process left behind.
"""
import contextlib
import os
import re
import signal
import tempfile

from utils.errors import UserError

# What atomic_write's temporary name adds to a path: ".<process id>.<8 characters>.tmp" (a
# Linux process id has at most 7 digits); scripts keep paths short enough for it.
TEMPORARY_RESERVE = len(".4194304.abcdefgh.tmp")


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


def atomic_write(path, write, hint=None):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, rename over ``path``
    (inside ``all_or_nothing``: at the end of that block). A symbolic link named ``path`` is
    replaced by the file; its target is never written. ``hint``: what the user can do when
    the write fails (default: choose a writable folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        # <name>.<process id>.<8 characters>.tmp: remove_stale_temporaries reads the id
        fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.{os.getpid()}.",
                                   suffix=".tmp", dir=folder)
    except OSError as err:
        raise UserError(f"cannot write to {folder}: {err.strerror}; "
                        f"{hint or 'choose a writable folder'}") from None
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
            raise UserError(f"cannot write {path}: {err.strerror or err}"
                            + (f"; {hint}" if hint else "")) from None
        if isinstance(err, MemoryError):
            raise UserError(f"cannot write {path}: out of memory") from None
        raise
    _fsync_folder(folder)  # make the rename itself durable


def _process_running(pid):
    """Whether another process with this id runs (this process writes none before its clean-up;
    in a container a new run often gets the id a killed one had)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def remove_stale_temporaries(folder, targets):
    """Delete the temporary files of ``atomic_write`` that a process no longer running left
    in ``folder`` (killed with SIGKILL, or by a power cut) for the file names the regular
    expression ``targets`` matches; other files, the user's own ``*.tmp`` included, and those
    of another process still writing stay. Names without a process id (written by earlier
    versions) count as stale. Call it before this process writes any of those files. Returns
    the names removed."""
    pattern = re.compile(rf"(?:{targets})\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if not match or (match["pid"] and _process_running(int(match["pid"]))):
            continue
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed
