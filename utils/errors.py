"""User-facing errors: one clear line on stderr, a non-zero exit code, no traceback."""
import math
import os
import signal
import sys


class UserError(Exception):
    """A problem the user can fix (bad option, missing file, ...). The message says what to do."""

    exit_code = 2


class Terminated(UserError):
    """SIGTERM arrived inside ``sigterm_raises``: exit status 143 (128 + SIGTERM, as a shell
    reports a process ended by that signal) after the ``finally`` clauses have cleaned up."""

    exit_code = 128 + signal.SIGTERM


def _out_of_memory(err):
    """Whether ``err`` says that memory ran out: numpy's and Python's MemoryError, or Paddle's
    allocation failure (ResourceExhaustedError, which reaches Python as a MemoryError or a
    RuntimeError depending on where it happened)."""
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and ("ResourceExhausted" in str(err)
                                           or "Out of memory" in str(err)))


def run_cli(main, all_or_nothing=None):
    """Run ``main(sys.argv[1:])`` as a command: user errors become one line and exit code 2,
    a file the system refuses to write or read (full disk, no permission) one line and exit
    code 1, memory running out (the machine's, or a limit such as ``ulimit -v``) one line and
    exit code 1, Ctrl-C exits with 130 (the script has already saved what it could).

    ``all_or_nothing``: the script's name, for a script whose outputs must appear together or
    not at all: it then runs within ``files.all_or_nothing`` and ``sigterm_raises``, so a
    refusal, a full disk, Ctrl-C or SIGTERM leaves none of its outputs and the earlier ones as
    they were."""
    if all_or_nothing is not None:
        from utils import files  # (utils.files imports this module)
        inner, kept = main, "none of its outputs were written, earlier ones are unchanged"

        def main(argv):
            with sigterm_raises(f"{all_or_nothing} was terminated (SIGTERM): {kept}; run it "
                                "again"), files.all_or_nothing():
                return inner(argv)
    try:
        main(sys.argv[1:])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except OSError as err:
        if err.filename is None:
            raise
        print(f"error: {err.filename}: {err.strerror}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted" + (f": {kept}" if all_or_nothing is not None else ""),
              file=sys.stderr)
        sys.exit(130)
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        written = ("; none of its outputs were written" if all_or_nothing is not None else
                   "; files being written were left as they were")
        what = (str(err).strip().splitlines() or ["MemoryError"])[0][:160]
        print(f"error: out of memory ({what}){written}: free memory, raise the memory limit (ulimit -v) or use smaller "
              "sizes (--N_gen, --N_test, --batch_size, --N)", file=sys.stderr)
        sys.exit(1)


class sigterm_raises:
    """Within the block, SIGTERM (``kill``, a job scheduler ending a job) raises ``Terminated``
    where the program is, instead of ending the process at once: ``finally`` clauses run, so
    temporary files are removed, and ``run_cli`` prints ``message`` as one line. Outside the
    main thread (where Python cannot set handlers) nothing changes."""

    def __init__(self, message):
        self.message = message
        self._previous = None

    def _handle(self, signum, frame):
        raise Terminated(self.message)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


# ---- paths ---------------------------------------------------------------------------------
def _nearest_existing(path):
    """``path`` itself or its nearest ancestor that exists (the root at worst)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_path_length(path, option, reserve=0):
    """Refuse, before anything is created, a path the file system cannot hold: a name (one
    folder or file) longer than it allows, or a whole path longer than the system's limit.
    ``reserve``: bytes the last name must leave free (for a temporary file named after it)."""
    absolute = os.path.abspath(path)
    try:
        where = _nearest_existing(absolute)
        name_max = os.pathconf(where, "PC_NAME_MAX")
        path_max = os.pathconf(where, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no such limits here (or no pathconf)
        return
    names = absolute.split(os.sep)
    for i, name in enumerate(names):
        length = len(os.fsencode(name)) + (reserve if i == len(names) - 1 else 0)
        if name_max and length > name_max:
            shown = name if len(name) <= 40 else name[:20] + "..." + name[-10:]
            allowed = name_max - (reserve if i == len(names) - 1 else 0)
            raise UserError(f"{option}: the name {shown!r} is {len(os.fsencode(name))} bytes "
                            f"long, the file system allows at most {allowed} here; choose a "
                            f"shorter {option}")
    if path_max and len(os.fsencode(absolute)) + reserve >= path_max:
        raise UserError(f"{option}: the path is {len(os.fsencode(absolute))} bytes long, the "
                        f"system allows at most {path_max - 1 - reserve} here; choose a "
                        f"shorter {option}")


def ensure_folder(folder, option):
    """Create ``folder``; refuse with one line naming it (and ``option``) when that fails.
    Folders created on the way to one that could not be created are removed again."""
    check_path_length(folder, option)
    missing = []  # the folder and its ancestors that do not exist yet, innermost first
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        for path in missing:  # only empty folders: another process may have filled one
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise UserError(f"{folder}: cannot create the folder ({err.strerror}); "
                        f"choose another {option}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{folder}: folder is not writable; choose another {option} "
                        "or fix its permissions")


# ---- results -------------------------------------------------------------------------------
def non_finite_entries(value, where=""):
    """The entries of a result (nested dicts and lists of numbers, strings, ...) that are
    NaN or infinite, named like ``valid_ll[3]`` or ``prior_fit.mean_shift``."""
    if isinstance(value, dict):
        return [bad for key, item in value.items()
                for bad in non_finite_entries(item, f"{where}.{key}" if where else str(key))]
    if isinstance(value, (list, tuple)):
        return [bad for i, item in enumerate(value)
                for bad in non_finite_entries(item, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or 'the result'} = {value}"]
    return []


def refuse_non_finite(result, path, hint):
    """Refuse to write ``result`` to ``path`` when a number in it is NaN or infinite (JSON has
    no such numbers, and a result that is not a number must not pass for one): one line naming
    the entries, the earlier file left as it was, ``hint`` saying what to do."""
    bad = non_finite_entries(result)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        kept = "left as it was" if os.path.exists(path) else "not written"
        raise UserError(f"the result is not a finite number ({shown}): {path} {kept}; {hint}")
