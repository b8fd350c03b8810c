"""The `audit` command: thin commands over the library, mapped to exit codes.

Exit codes: 0 pass (or no policy), 1 a gate failed, 2 bad usage or bad input,
3 a gate's analyzer errored or did not run, 4 an internal error (a bug).

Each command is a module (listing, train, report, compare, mitigate) that declares its parser from light
constants and imports the library inside its handler: `audit --help` and `audit --version` load no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from audit._util.distribution import DISTRIBUTION, version
from audit._util.errors import AuditInputError
from audit._util.paths import MAX_INPUT_BYTES, input_size_limit
from audit._util.threads import configure_threads
from audit.cli import compare, listing, mitigate, report, train
from audit.cli.options import Parser
from audit.cli.outputs import printable

EXIT_USAGE = 2  # as audit.policy.gates.EXIT_USAGE, which loads the analyzers' registry
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with _sigterm_raises():
            args = parser.parse_args(argv)
            from audit._util.progress import quiet
            from audit.engine import running_on

            if hasattr(args, "threads"):
                configure_threads(args.threads)
            with quiet(getattr(args, "quiet", False)), \
                    input_size_limit(getattr(args, "max_input_size", MAX_INPUT_BYTES)), \
                    running_on(getattr(args, "engine", None), address=getattr(args, "ray_address", None)):
                return args.handler(args)
    except AuditInputError as exc:
        if debug:
            raise
        print(printable(f"error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, unless --debug
        if debug:
            raise
        print(printable(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"),
              file=sys.stderr)
        return EXIT_INTERNAL


class _Version(argparse.Action):
    """`--version`: the installed version is looked up only when asked for (it reads the package's metadata)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{DISTRIBUTION} {version()}")
        parser.exit()


def build_parser() -> Parser:
    parser = Parser(prog="audit", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action=_Version, nargs=0, help="show the distribution name and version, and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    listing.add_parsers(sub)
    for command in (train, report, compare, mitigate):
        command.add_parser(sub)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised where the process is so that half-written files are cleaned up on the way out."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum, frame):
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
