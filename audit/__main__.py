"""The `audit` command's entry point, for `audit ...` and `python -m audit ...`.

It imports nothing heavy itself: importing the command (torch, scikit-learn, shap) takes seconds,
up to minutes on a loaded machine, and Ctrl-C then must still give `interrupted`, exit 130. And the
OpenMP settings that torch reads once, when it loads, are made here.
"""

import signal
import sys


def main() -> int:
    try:
        from audit._util.threads import prepare_environment

        prepare_environment()  # before torch loads
        from audit import cli
        return cli.main()
    except KeyboardInterrupt:  # while importing; cli.main answers Ctrl-C itself once it runs
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
