"""The name this package is installed under, and the install hints that use it.

The index name `audit` belongs to an unrelated 2010 project (a Django audit trail), so the distribution is
`torch-model-audit`; the import package and the command stay `audit`. Light: `audit --version` reads this.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "torch-model-audit"


def install_hint(extra: str) -> str:
    """The pip command that adds `extra`, quoted so that shells do not expand the brackets."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def version() -> str:
    """The installed distribution's version; the source tree's when it runs uninstalled (PYTHONPATH)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from audit import __version__

        return __version__
