"""`audit mitigate`: `audit.mitigate`, its fixed checkpoint and comparison reports written as one set."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from audit._util.paths import shown
from audit.cli.options import (add_checkpoint_options, add_console_options, add_engine_options, add_output_options,
                               add_resource_options, add_run_options, audit_settings)
from audit.cli.outputs import finish, open_tracker, printable, track, write_outputs
from audit.core.choices import CONSTRAINTS, FAIR_METHODS


def add_parser(sub) -> None:
    p = sub.add_parser("mitigate", help="fix a model that a fairness or robustness gate blocks (post-process or "
                                        "retrain it), then compare it with the original under the policy")
    p.add_argument("model", help="checkpoint (.pt) written by audit train")
    p.add_argument("--method", required=True, choices=["thresholds", *FAIR_METHODS, "pgd"],
                   help="thresholds: group-specific thresholds (fairlearn's ThresholdOptimizer) fitted on the "
                        "validation split; the fixed model needs the sensitive column at prediction time. "
                        f"{', '.join(FAIR_METHODS)}: the model retrained as its checkpoint records, with that method. "
                        "pgd: retrained with PGD adversarial training")
    p.add_argument("--sensitive", metavar="COL", help="the sensitive column to equalize over (fairness methods)")
    p.add_argument("--constraint", choices=CONSTRAINTS, help="what to equalize (required for thresholds; "
                                                             "training methods: default demographic_parity)")
    p.add_argument("--strength", type=float, help="penalty or adversary weight of a training method (default 1)")
    p.add_argument("--sweep", action="store_true",
                   help="fit or train over a grid of strengths, draw balanced accuracy against the disparity (with "
                        "intervals, Pareto front) in the report, and write the most accurate point whose disparity "
                        "upper bound is within --max-disparity (else the policy's gate on it). thresholds: "
                        "fairlearn's tol, demographic_parity only; lagrangian, adversarial_debiasing: the strength. "
                        "pgd: the training epsilon, clean against PGD accuracy, chosen by --min-robust-accuracy")
    p.add_argument("--grid", metavar="V1,V2,...", help="the values to sweep (default tol 1,0.2,0.1,0.05,0.02,0; "
                                                      "strength 0,0.25,0.5,1,2,4; epsilon 0, 0.5, 1 and 2 times "
                                                      "the robustness analyzer's)")
    p.add_argument("--max-disparity", type=float, metavar="D",
                   help="the limit a fairness sweep chooses by (default: the policy's gate on the swept disparity)")
    p.add_argument("--min-robust-accuracy", type=float, metavar="A",
                   help="the limit a pgd sweep chooses by (else the policy's min on robustness.pgd_accuracy)")
    p.add_argument("-o", "--output", required=True, metavar="FIXED.pt", help="the mitigated checkpoint to write")
    p.add_argument("--report", metavar="HTML", help="the comparison report (default: reports/<FIXED>-vs-<MODEL>.html)")
    p.add_argument("--validation", metavar="FILE", help="CSV or Parquet to fit on (default: the validation split "
                                                        "of the data the model was trained on)")
    p.add_argument("--data", metavar="FILE", help="CSV or Parquet to compare on (default: the test split)")
    p.add_argument("--target", help="label column of --validation and --data")
    add_output_options(p)
    add_run_options(p, positive_class="the favourable class (default: the second class)",
                    seed="drives every random choice, and the thresholds' draws (default 0)")
    add_checkpoint_options(p, trust_code=False)
    add_console_options(p)
    add_resource_options(p)
    add_engine_options(p)
    p.set_defaults(handler=run, trust_code=False)


def run(args) -> int:
    from audit._util.files import check_outputs
    from audit.io import checkpoint
    from audit.mitigation.workflow import mitigate

    settings = audit_settings(args)
    fixed_path = Path(args.output)
    html = Path(args.report or f"reports/{fixed_path.stem}-vs-{Path(args.model).stem}.html")
    if args.report is None:
        html.parent.mkdir(parents=True, exist_ok=True)
    reports = {"--report": html, "--json": args.json, "--junit": args.junit, "--markdown": args.markdown,
               "--model-card": args.model_card, "--evidence": args.evidence}
    outputs = check_outputs({"-o": fixed_path, **{k: v for k, v in reports.items() if v is not None}},
                            {"model": args.model, "--validation": args.validation, "--data": args.data,
                             "--policy": args.policy})
    tracker = open_tracker(args)
    mitigated = mitigate(args.model, method=args.method, sensitive=args.sensitive, constraint=args.constraint,
                         strength=args.strength, sweep=args.sweep, grid=args.grid, max_disparity=args.max_disparity,
                         min_robust_accuracy=args.min_robust_accuracy, data=args.data, validation=args.validation,
                         target=args.target, positive_class=args.positive_class, max_parameters=args.max_parameters,
                         quiet=args.quiet, **settings)
    # The checkpoint is written with the reports, as one set: until all are complete, the previous files stay.
    buffer = io.BytesIO()
    checkpoint.writer(mitigated.model)(buffer)
    fixed = buffer.getvalue()
    saved = {"path": shown(fixed_path), "sha256": hashlib.sha256(fixed).hexdigest()}
    comparison = mitigated.saved_as(saved).comparison
    write_outputs({"-o" if k == "--report" else k: v for k, v in outputs.items() if k != "-o"}, comparison,
                  comparison.candidate, name=f"{shown(args.model)} vs {shown(fixed_path)}", args=args,
                  files={outputs["-o"]: lambda f: f.write(fixed)})
    print(printable(f"{mitigated.done} -> {fixed_path}"))
    if mitigated.model.task.postprocessing is not None:
        print(printable(f"note: the model now needs the sensitive attribute {args.sensitive!r} at prediction time"))
    tracked = track(tracker, comparison, args, labels=("before", "after"),
                    tags={"audit.mitigation.method": args.method, "audit.mitigation": mitigated.done})
    return finish(comparison.candidate, html, failures=comparison.failures, label="candidate", tracked=tracked)
