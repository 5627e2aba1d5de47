"""The `spectraseg` command: global options, one sub-command per verb, and the error policy.

A `SpectrasegError` is the user's problem: one line on stderr, exit code 2, no traceback unless
`--debug`. Anything else is a bug in spectraseg and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from spectraseg.cli import commands
from spectraseg.errors import SpectrasegError, SpectrasegWarning
from spectraseg.io.rasters import limit_gdal_cache
from spectraseg.version import __version__

# The order verbs are listed in `--help`: the workflow's order. Every module in
# spectraseg/cli/commands is a verb (its name with "_" as "-"); unlisted ones come last.
VERB_ORDER = (
    "demo",
    "run",
    "sample",
    "init",
    "info",
    "train",
    "search",
    "predict",
    "vectorize",
    "evaluate",
    "config",
)

EXIT_USER_ERROR = 2

# What the user can do about an operating-system error, by errno.
_OS_FIXES = {
    errno.ENOSPC: "the disk is full; free space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up; free space or write somewhere else",
    errno.EROFS: "the file system is read-only; choose another output location",
    errno.EACCES: "permission denied; choose a location you may write to",
    errno.EPERM: "operation not permitted; choose a location you may write to",
    errno.EISDIR: "this is a folder; give a file path",
    errno.ENOTDIR: "a part of this path is a file, not a folder; fix the path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or give fewer inputs",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def without_unsafe_hints(message: str) -> str:
    """Drop sentences suggesting `weights_only=False`: spectraseg never loads pickles."""
    sentences = re.split(r"(?<=[.;])\s+", message)
    return " ".join(part for part in sentences if "weights_only" not in part).strip()


def os_error_line(error: OSError) -> str:
    """One line for an OSError: the file, the problem, the fix."""
    name = error.filename
    if name is None:  # rasterio and friends put the path in the message
        return " ".join(str(error).split()) or type(error).__name__
    fix = _OS_FIXES.get(error.errno or 0, error.strerror or type(error).__name__)
    return f"{name}: {fix}."


def _add_global_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool) -> None:
    """The options accepted both before and after the verb.

    The copy on each sub-parser uses SUPPRESS defaults so that a value given before the verb is
    not reset by the sub-parser's default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress_defaults else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show tracebacks for user errors too",
    )
    group.add_argument(
        "--overwrite", action="store_true", default=default(False), help="replace existing outputs"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more log output (repeat for debug logs)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="only warnings and errors, no progress bars",
    )
    group.add_argument(
        "--accelerator",
        choices=("cpu", "cuda", "auto"),
        default=default("auto"),
        help="where to run models (default: auto, a GPU when present)",
    )


def discover_verbs() -> list[str]:
    """Verb names from the modules in spectraseg/cli/commands, in workflow order."""
    found = [info.name for info in pkgutil.iter_modules(commands.__path__)]
    verbs = [name.replace("_", "-") for name in found if not name.startswith("_")]
    rank = {name: position for position, name in enumerate(VERB_ORDER)}
    return sorted(verbs, key=lambda verb: (rank.get(verb, len(rank)), verb))


def _load_command(verb: str) -> ModuleType:
    return importlib.import_module(f"spectraseg.cli.commands.{verb.replace('-', '_')}")


def verb_summary(verb: str) -> str:
    """The one-line help of a verb, from its module docstring, read without importing it.

    Importing a verb's module imports torch and GDAL (seconds); `spectraseg --help` should not.
    """
    path = Path(commands.__path__[0]) / f"{verb.replace('-', '_')}.py"
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first_line = docstring.split("\n", 1)[0]
    return first_line.split("`: ", 1)[-1].rstrip(".")


def chosen_verb(argv: Sequence[str]) -> str | None:
    """The verb on the command line, if any (global option values are never verb names)."""
    verbs = set(discover_verbs())
    return next((token for token in argv if token in verbs), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen verb's module is imported, the others are listed by name."""
    chosen = chosen_verb(sys.argv[1:] if argv is None else argv)
    parser = OneLineParser(
        prog="spectraseg",
        description="Semantic segmentation of multispectral satellite imagery with U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"spectraseg {__version__}")
    _add_global_options(parser, suppress_defaults=False)
    subparsers = parser.add_subparsers(dest="command", metavar="VERB", required=True)
    for verb in discover_verbs():
        if verb == chosen:
            module = _load_command(verb)
            module.add_parser(subparsers)
            subparsers.choices[verb].set_defaults(handler=module.run)
        else:
            subparsers.add_parser(verb, help=verb_summary(verb))
    for subparser in subparsers.choices.values():
        _add_global_options(subparser, suppress_defaults=True)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    # The console shows `level`; the loggers pass INFO on, so log files (train.log, run.log)
    # keep their record under -q too.
    console = logging.StreamHandler()
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.basicConfig(level=min(level, logging.INFO), handlers=[console], force=True)
    # Libraries' own INFO lines ("Created 76 records") are noise next to ours.
    for library in ("pyogrio", "rasterio", "matplotlib", "PIL"):
        logging.getLogger(library).setLevel(max(level, logging.WARNING))
    # GDAL's own ERROR lines repeat what the raised error says; -vv shows them.
    if verbose < 2:
        logging.getLogger("rasterio._env").setLevel(logging.CRITICAL)
    # A log line that cannot be written (train.log on a full disk) must not print logging's
    # traceback; the next output write fails too and says what happened in one line.
    logging.raiseExceptions = False
    # Warnings about the user's input read as one log line each, not as Python warnings.
    warnings.simplefilter("default", SpectrasegWarning)
    warnings.showwarning = _log_warning


def _log_warning(
    message: Warning | str, category: type[Warning], *args: object, **kw: object
) -> None:
    logging.getLogger("spectraseg").warning("%s", message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    # OpenMP threads that spin while waiting steal the cores from each other and from anything
    # else running: a training step measured 6x slower on a loaded 2-core machine. It must be
    # set before torch loads, which building the parser does.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    limit_gdal_cache()
    try:
        result: int = args.handler(args)
    except SpectrasegError as error:
        if args.debug:
            raise
        return _user_error(args.command, " ".join(str(error).split("\n")))
    except OSError as error:
        # The environment's fault (full disk, read-only folder, a folder where a file should
        # be): the user can fix it, so it is a user error too.
        if args.debug:
            raise
        return _user_error(args.command, os_error_line(error))
    except MemoryError:
        if args.debug:
            raise
        return _user_error(
            args.command,
            "out of memory for these settings; use a smaller --window, --batch or --size, or "
            "fewer inputs at once.",
        )
    except KeyboardInterrupt:
        print("spectraseg: interrupted; outputs written so far are complete.", file=sys.stderr)
        return 130
    return result


def _user_error(command: str, message: str) -> int:
    print(f"spectraseg {command}: error: {without_unsafe_hints(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def entry_point() -> None:
    sys.exit(main())
