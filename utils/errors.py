"""User-facing errors: one clear line on stderr, a non-zero exit code, no traceback."""
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
