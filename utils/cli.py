"""Command lines of the scripts: an argparse parser made from config fields, whose mistakes
are one line and exit code 2 (utils.errors.UserError), never a usage dump."""
import argparse

from utils.errors import UserError


def parse_bool(text):
    """argparse type for booleans: ``--resume false`` is False (argparse's bool() says True)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line naming the problem, exit code 2, no usage dump and no traceback.
        raise UserError(f"{message} (see python {self.prog} --help)")


def _arg_type(tp):
    def convert(text):
        try:
            return tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if tp is int else 'a number'}, got {text!r}") from None
    convert.__name__ = tp.__name__  # argparse names the type in its messages
    return convert


def build_parser(prog, typed_fields, presets=None, description="", explicit_only=False):
    """A parser with one option per (dataclass field, its plain type) of ``typed_fields``, its
    help the field's ``help`` metadata; ``presets`` ({name: (description, values)}) are listed
    after the options. ``explicit_only``: options not given are left out of the namespace."""
    epilog = ""
    if presets:  # one line each, after the options
        epilog = "presets:\n" + "\n".join(f"  {name:20s} {text}" for name, (text, _)
                                          in presets.items())
    parser = Parser(prog=prog, description=description, allow_abbrev=False,
                    usage=f"python {prog} [options]", epilog=epilog,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, tp in typed_fields:
        kwargs = {"help": f"{f.metadata['help']} (default: {f.default})",
                  "default": argparse.SUPPRESS if explicit_only else f.default}
        if tp is bool:
            # --resume alone means true; --resume false / --resume 0 are accepted too.
            kwargs.update(type=parse_bool, nargs="?", const=True, metavar="BOOL")
        elif tp in (int, float):
            kwargs["type"] = _arg_type(tp)
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
            kwargs["metavar"] = "{" + ",".join(map(str, f.metadata["choices"])) + "}"
            if f.name == "preset":
                kwargs["metavar"] = "NAME"
        parser.add_argument(f"--{f.name}", **kwargs)
    return parser
