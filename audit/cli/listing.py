"""The commands that list what the library has: datasets, models, analyzers, metrics, the default policy."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parsers(sub) -> None:
    sub.add_parser("datasets", help="list the built-in datasets").set_defaults(handler=datasets)
    sub.add_parser("models", help="list the registered architectures").set_defaults(handler=models)
    sub.add_parser("analyzers", help="list the analyzers and their options").set_defaults(handler=analyzers)
    sub.add_parser("metrics", help="list every gateable metric with its meaning and direction").set_defaults(
        handler=metrics)
    p: argparse.ArgumentParser = sub.add_parser(
        "policy", help="print the built-in default policy (its thresholds judge every run)")
    p.add_argument("--default", action="store_true", required=True,
                   help="the policy a run without --policy is judged by, as TOML with where each value comes from")
    p.set_defaults(handler=policy)


def datasets(args) -> int:
    from audit.io.builtin import list_datasets, load_dataset

    _print_table(("name", "rows", "modality", "target", "sensitive", "description"),
                 [(entry.name, f"{len(load_dataset(entry.name, 'all')):,}", entry.modality, entry.target,
                   ", ".join(entry.sensitive) or "-", entry.description) for entry in list_datasets()])
    return 0


def models(args) -> int:
    from audit.models import MODELS

    _print_table(("name", "modalities", "description"),
                 [(e.name, ", ".join(e.modalities), e.description) for e in MODELS.entries()])
    return 0


def analyzers(args) -> int:
    from audit.analyzers import ANALYZERS

    rows = []
    for cls in ANALYZERS.classes():
        options = ", ".join(f"{k}={v!r}" for k, v in cls().config().items()) or "-"
        rows.append((cls.name, "yes" if cls.default else "no", cls.description, options))
    _print_table(("name", "default", "what it does", "options (--set name.option=value)"), rows)
    return 0


def metrics(args) -> int:
    import audit.analyzers  # noqa: F401  (registers the analyzers, whose metrics the catalog lists)
    from audit.policy.gates import metric_catalog

    _print_table(("metric", "better", "interval", "meaning"),
                 [(name, spec.better, "yes" if spec.interval else "-", spec.description)
                  for name, spec in metric_catalog().items()])
    return 0


def policy(args) -> int:
    from audit.policy.thresholds import default_policy_toml

    print(default_policy_toml(), end="")
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
