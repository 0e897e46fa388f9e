"""User-facing errors: one clear line on stderr, a non-zero exit code, no traceback."""
import os
import sys


class UserError(Exception):
    """A problem the user can fix (bad option, missing file, ...). The message says what to do."""

    exit_code = 2


def run_cli(main):
    """Run ``main(sys.argv[1:])`` as a command: user errors become one line and exit code 2,
    a file the system refuses to write or read (full disk, no permission) one line and exit
    code 1, Ctrl-C exits with 130 (the script has already saved what it could)."""
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
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def ensure_folder(folder, option):
    """Create ``folder``; refuse with one line naming it (and ``option``) when that fails."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(f"{folder}: cannot create the folder ({err.strerror}); "
                        f"choose another {option}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{folder}: folder is not writable; choose another {option} "
                        "or fix its permissions")
