"""`acoustic-kd <command>`: one subcommand per pipeline step.

Commands are discovered from `acoustic_kd/commands/*.py`; each module defines
`NAME` (optional, defaults to the module name with '_' -> '-'), `HELP`,
`add_arguments(parser)` and `run(args) -> int`. The logic lives in the step modules.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import AcousticKDError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        yield importlib.import_module(f"{commands.__name__}.{info.name}")


class _Parser(argparse.ArgumentParser):
    """An option error is one line naming the option and what it takes (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="acoustic-kd",
        description="Speech acoustic-model distillation: recipes from corpus to exported student.")
    parser.add_argument("--version", action="version", version=f"acoustic_kd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for mod in _command_modules():
        name = getattr(mod, "NAME", mod.__name__.rsplit(".", 1)[1].replace("_", "-"))
        p = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or mod.HELP).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except AcousticKDError as e:
        print(f"acoustic-kd {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, read-only or unwritable output: name the path, not a traceback
        where = e.filename or "<output>"
        print(f"acoustic-kd {args.command}: error: {where}: {e.strerror or e} (fix: check the path, free "
              "disk space or choose a writable output dir, then re-run: finished work is kept)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
