"""`audit compare`: a baseline and a candidate audited on the same data; the candidate gated against it."""

from __future__ import annotations

from pathlib import Path

from audit._util.paths import shown
from audit.cli.options import add_audit_options, audit_data, audit_settings, check_positive_class, load_options
from audit.cli.outputs import check_audit_outputs, finish, open_tracker, track, write_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="audit a baseline and a candidate model on the same data")
    p.add_argument("baseline", help="the model in use (checkpoint)")
    p.add_argument("candidate", help="the model that would replace it (checkpoint)")
    add_audit_options(p, default_output="reports/<baseline>-vs-<candidate>.html")
    p.set_defaults(handler=run)


def run(args) -> int:
    from audit.executor.compare import compare
    from audit.models.checkpoint import load as load_model

    settings = audit_settings(args)
    output = Path(args.output or f"reports/{Path(args.baseline).stem}-vs-{Path(args.candidate).stem}.html")
    outputs = check_audit_outputs(args, output, {"baseline": args.baseline, "candidate": args.candidate})
    tracker = open_tracker(args)
    baseline = load_model(args.baseline, **load_options(args))
    candidate = load_model(args.candidate, **load_options(args))
    check_positive_class(args.positive_class, candidate.classes)
    comparison = compare(baseline, candidate, audit_data(args, candidate), **settings)
    # The candidate's run carries the comparison's verdict.
    write_outputs(outputs, comparison, comparison.candidate,
                  name=f"{shown(args.baseline)} vs {shown(args.candidate)}", args=args)
    return finish(comparison.candidate, output, failures=comparison.failures, label="candidate",
                  tracked=track(tracker, comparison, args))
