"""`audit report`: a model, or predictions that already exist, audited; the report written."""

from __future__ import annotations

from pathlib import Path

from audit._util.errors import AuditInputError
from audit._util.paths import shown
from audit.cli.options import (STREAM_HELP, add_audit_options, add_memory_option, add_plan_options, audit_data,
                                audit_settings, check_positive_class, load_options)
from audit.cli.outputs import check_audit_outputs, finish, open_tracker, track, write_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="audit a model (or its predictions) and write the HTML report")
    p.add_argument("model", nargs="?", help="checkpoint (.pt) written by audit train, a model spec (.toml) naming "
                   "your factory and safetensors weights (audit.save_model(..., factory=...)), an ExportedProgram (.pt2: "
                   "audit.save_exported), a pickled module or TorchScript file (with --trust-code), or a Hugging Face "
                   "model directory (save_pretrained; needs the transformers extra)")
    add_audit_options(p, default_output="reports/<model>.html")
    p.add_argument("--predictions", metavar="FILE", help="audit predictions that already exist instead of a model: "
                   "a CSV or Parquet table with --target, --prediction-column or --score-columns, --sensitive "
                   "(performance and fairness run; the rest need the model)")
    p.add_argument("--prediction-column", help="column of predicted labels in --predictions")
    p.add_argument("--score-columns", help="comma-separated per-class score columns in --predictions, in class "
                   "order (binary: one column, the second class's probability)")
    p.add_argument("--examples", metavar="FILE.parquet", help="also write one row per audited example here: "
                   "prediction, label, probability, group values, attack outcomes and flip epsilon, corruptions, top "
                   "attributed features (every row of the data; the per-example analyzers' columns on the rows "
                   "they read, null elsewhere)")
    p.add_argument("--stream", action="store_true", help=STREAM_HELP)
    add_plan_options(p)
    add_memory_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    settings = {**audit_settings(args), "budget": args.budget, "precision": args.precision}
    if (args.model is None) == (args.predictions is None):
        raise AuditInputError("report: give a model checkpoint or --predictions FILE (one of them)")
    if args.predictions is not None:
        return _predictions(args, settings)
    from audit.executor.runner import run as run_audit
    from audit.executor.stream import run_stream
    from audit.models.checkpoint import load as load_model
    from audit.io.locate import streamed_source

    output = Path(args.output or f"reports/{Path(args.model).stem}.html")
    outputs = check_audit_outputs(args, output, {"model": args.model})
    tracker = open_tracker(args)
    model = load_model(args.model, **load_options(args))
    check_positive_class(args.positive_class, model.classes)
    source = streamed_source(dict(model.task.dataset), data=args.data, stream=args.stream, target=args.target,
                             sensitive=args.sensitive, text_column=args.text_column)
    settings["max_memory"] = args.max_memory
    result = run_stream(model, source, examples=args.examples is not None, **settings) if source else \
        run_audit(model, audit_data(args, model), **settings)
    write_outputs(outputs, result, result, name=shown(args.model), args=args)
    return finish(result, output, tracked=track(tracker, result, args))


def _predictions(args, settings: dict) -> int:
    from audit.executor.predictions import from_predictions

    if not args.target:
        raise AuditInputError("--predictions needs --target, the label column")
    if args.data or args.text_column:
        raise AuditInputError("--predictions holds the rows; drop --data/--text-column")
    if args.examples:
        raise AuditInputError("--examples needs the model: per-example results come from the analyzers that run it")
    output = Path(args.output or f"reports/{Path(args.predictions).stem}.html")
    outputs = check_audit_outputs(args, output, {"--predictions": args.predictions})
    tracker = open_tracker(args)
    scores = [c.strip() for c in (args.score_columns or "").split(",") if c.strip()]
    # no per-example analyzer runs
    settings = {k: v for k, v in settings.items() if k not in ("samples", "budget", "precision")}
    result = from_predictions(args.predictions, target=args.target, prediction=args.prediction_column,
                              scores=scores, sensitive=args.sensitive, stream=args.stream, **settings)
    write_outputs(outputs, result, result, name=shown(args.predictions), args=args)
    return finish(result, output, tracked=track(tracker, result, args))
