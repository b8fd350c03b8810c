"""The `audit` command: thin commands over the library, mapped to exit codes.

Exit codes: 0 pass (or no policy), 1 a gate failed, 2 bad usage or bad input,
3 a gate's analyzer errored or did not run, 4 an internal error (a bug).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from audit.io import checkpoint
from audit.models.checkpoint import load as load_model
from audit.analyzers import ANALYZERS
from audit.executor.compare import compare
from audit.io.builtin import list_datasets, load_dataset
from audit.io.locate import audit_data, streamed_source
from audit._util.errors import AuditInputError
from audit.policy.thresholds import default_policy_toml
from audit.models import MODELS
from audit.models.spec import ModelSpec
from audit._util.paths import MAX_INPUT_BYTES, format_size, input_size_limit, parse_size, shown
from audit.models.training import TrainConfig, train
from audit.policy.gates import EXIT_USAGE, Policy, metric_catalog
from audit.executor.predictions import from_predictions
from audit._util.progress import set_quiet
from audit._util.files import check_outputs, text_writer, write_together
from audit.models.adversarial_training import AdversarialTraining
from audit.models.fair_training import METHODS as FAIR_METHODS
from audit.models.fair_training import Mitigation
from audit.mitigation.postprocess import with_thresholds
from audit.mitigation.retrain import recorded_adversarial, retrain, training_hook
from audit.mitigation.sweep import DISPARITY, ROBUST, check_sweepable, gate_limit, parse_grid, sweep
from audit.core.postprocessing import CONSTRAINTS
from audit.report.ci import render_compare_markdown, render_junit, render_markdown
from audit.engine import running_on
from audit.executor.runner import AuditRun, run
from audit.executor.stream import run_stream
from audit.io.sources import STREAM_ABOVE
from audit._util.threads import THREADS_VARIABLE, configure_threads

EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise AuditInputError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with _sigterm_raises():
            args = parser.parse_args(argv)
            set_quiet(getattr(args, "quiet", False))
            if hasattr(args, "threads"):
                configure_threads(args.threads)
            with input_size_limit(getattr(args, "max_input_size", MAX_INPUT_BYTES)), \
                    running_on(getattr(args, "engine", None), address=getattr(args, "ray_address", None)):
                return args.handler(args)
    except AuditInputError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
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
        print(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="audit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.set_defaults(handler=cmd_datasets)

    p = sub.add_parser("models", help="list the registered architectures")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("analyzers", help="list the analyzers and their options")
    p.set_defaults(handler=cmd_analyzers)

    p = sub.add_parser("metrics", help="list every gateable metric with its meaning and direction")
    p.set_defaults(handler=cmd_metrics)

    p = sub.add_parser("policy", help="print the built-in default policy (its thresholds judge every run)")
    p.add_argument("--default", action="store_true", required=True,
                   help="the policy a run without --policy is judged by, as TOML with where each value comes from")
    p.set_defaults(handler=cmd_policy)

    p = sub.add_parser("train", help="train an architecture, or a model spec (models/*.toml)")
    p.add_argument("what", help="an architecture name (audit models) or a spec file NAME.toml")
    _add_data_options(p)
    p.add_argument("--dataset", help="a built-in dataset (audit datasets)")
    p.add_argument("-o", "--output", help="checkpoint to write (default: models/<dataset>-<arch>.pt)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="an architecture option, e.g. --set hidden=[128,64]")
    p.add_argument("--mitigate", choices=FAIR_METHODS, metavar="METHOD",
                   help=f"fairness-aware training ({', '.join(FAIR_METHODS)}) over the one --sensitive column")
    p.add_argument("--constraint", choices=CONSTRAINTS, help="what --mitigate equalizes (default demographic_parity)")
    p.add_argument("--strength", type=float, help="penalty weight (lagrangian) or adversary weight "
                                                   "(adversarial_debiasing), default 1")
    p.add_argument("--adversarial", choices=["pgd"], help="adversarial training against PGD (Madry et al.)")
    p.add_argument("--epsilon", type=float, help="PGD L-inf epsilon (default: the robustness analyzer's)")
    p.add_argument("--attack-steps", type=int, help="PGD steps per adversarial example (default 10)")
    p.add_argument("--adversarial-share", type=float, help="share of each batch made adversarial (default 0.5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("report", help="audit a model (or its predictions) and write the HTML report")
    p.add_argument("model", nargs="?", help="checkpoint (.pt) written by audit train, a TorchScript file, or a "
                   "Hugging Face model directory (save_pretrained; needs audit[transformers])")
    _add_audit_options(p, default_output="reports/<model>.html")
    p.add_argument("--predictions", metavar="FILE", help="audit predictions that already exist instead of a model: "
                   "a CSV or Parquet table with --target, --prediction-column or --score-columns, --sensitive "
                   "(performance and fairness run; the rest need the model)")
    p.add_argument("--prediction-column", help="column of predicted labels in --predictions")
    p.add_argument("--score-columns", help="comma-separated per-class score columns in --predictions, in class "
                   "order (binary: one column, the second class's probability)")
    p.add_argument("--stream", action="store_true", help="read --data (or --predictions) in chunks, in bounded "
                   f"memory (automatic above {format_size(STREAM_ABOVE)}); the per-example analyzers run on a seeded "
                   "sample")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("compare", help="audit a baseline and a candidate model on the same data")
    p.add_argument("baseline", help="the model in use (checkpoint)")
    p.add_argument("candidate", help="the model that would replace it (checkpoint)")
    _add_audit_options(p, default_output="reports/<baseline>-vs-<candidate>.html")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("mitigate", help="fix a model that a fairness or robustness gate blocks (post-process or retrain it), then "
                                        "compare it with the original under the policy")
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
    p.add_argument("--max-disparity", type=float, metavar="D", help="the limit a fairness sweep chooses by")
    p.add_argument("--min-robust-accuracy", type=float, metavar="A",
                   help="the limit a pgd sweep chooses by (else the policy's min on robustness.pgd_accuracy)")
    p.add_argument("-o", "--output", required=True, metavar="FIXED.pt", help="the mitigated checkpoint to write")
    p.add_argument("--report", metavar="HTML", help="the comparison report (default: reports/<FIXED>-vs-<MODEL>.html)")
    p.add_argument("--validation", metavar="FILE", help="CSV or Parquet to fit on (default: the validation split "
                                                        "of the data the model was trained on)")
    p.add_argument("--data", metavar="FILE", help="CSV or Parquet to compare on (default: the test split)")
    p.add_argument("--target", help="label column of --validation and --data")
    for flag, text in (("--json", "the comparison's JSON document"), ("--junit", "JUnit XML of the gates"),
                       ("--markdown", "a Markdown summary of the comparison")):
        p.add_argument(flag, help=f"also write {text} here")
    p.add_argument("--policy", help="TOML file of gates; the exit code says whether the fixed model passes them")
    p.add_argument("--analyzers", help="comma-separated analyzers of the comparison (default: all that apply)")
    p.add_argument("--set", action="append", default=[], metavar="ANALYZER.OPTION=VALUE", help="an analyzer option")
    p.add_argument("--positive-class", help="the favourable class (default: the second class)")
    p.add_argument("--seed", type=int, default=0, help="drives every random choice, and the thresholds' draws")
    p.add_argument("--samples", type=int, help="examples the per-example analyzers work on")
    p.add_argument("--max-parameters", type=int, default=checkpoint.MAX_PARAMETERS, metavar="N",
                   help=f"refuse checkpoints declaring more parameters (default {checkpoint.MAX_PARAMETERS:,})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_resource_options(p)
    _add_engine_options(p)
    p.set_defaults(handler=cmd_mitigate, trust_code=False)
    return parser


def _add_audit_options(p: argparse.ArgumentParser, *, default_output: str) -> None:
    _add_data_options(p)
    p.add_argument("--dataset", help="audit on the test split of a built-in dataset (audit datasets) instead of "
                                     "--data (default: the data the model was trained on)")
    p.add_argument("-o", "--output", help=f"HTML report to write (default: {default_output})")
    p.add_argument("--json", help="also write the JSON document here")
    p.add_argument("--junit", help="also write JUnit XML here (one testcase per gate)")
    p.add_argument("--markdown", help="also write a Markdown summary here (pull-request comment, job summary)")
    p.add_argument("--policy", help="TOML file of gates; the exit code follows its verdict")
    p.add_argument("--analyzers", help="comma-separated analyzers to run (default: all that apply)")
    p.add_argument("--set", action="append", default=[], metavar="ANALYZER.OPTION=VALUE",
                   help="an analyzer option, e.g. --set performance.bins=15")
    p.add_argument("--positive-class", help="the class fairness takes as the positive (favourable) outcome "
                                            "(default: the second class)")
    p.add_argument("--seed", type=int, default=0, help="drives every random choice (default 0)")
    p.add_argument("--samples", type=int, help="examples the per-example analyzers work on")
    p.add_argument("--trust-code", "--trust-pickle", dest="trust_code", action="store_true",
                   help="allow model files that carry code, TorchScript and pickles (the code runs: only for "
                        "files you trust)")
    p.add_argument("--max-parameters", type=int, default=checkpoint.MAX_PARAMETERS, metavar="N",
                   help=f"refuse checkpoints declaring more parameters (default {checkpoint.MAX_PARAMETERS:,})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_engine_options(p)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the batch work runs: this process, or Ray tasks (pip install audit[ray]); same numbers")
    p.add_argument("--ray-address", metavar="ADDRESS", help="an existing Ray cluster (with --engine ray; default: "
                                                             "a local Ray started for the run)")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="a CSV or Parquet table, an NPZ of images (arrays x, y), or a folder of images "
                                  "in class folders (DIR/CLASS/FILE.png; per-image sensitive columns in "
                                  "DIR/metadata.csv, one row per file_name)")
    p.add_argument("--target", help="label column of --data")
    p.add_argument("--sensitive", nargs="+", default=[], metavar="COL", help="sensitive attribute columns")
    p.add_argument("--text-column", help="text column of --data (text models)")
    _add_resource_options(p)


def _add_resource_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, metavar="N",
                   help=f"threads for torch and BLAS (default: ${THREADS_VARIABLE}, else the CPUs this process may "
                        "use, or OMP_NUM_THREADS when set)")
    p.add_argument("--max-input-size", type=_size, default=MAX_INPUT_BYTES, metavar="SIZE",
                   help=f"refuse larger model, data and policy files before reading them; they are read whole "
                        f"(default {format_size(MAX_INPUT_BYTES)}; e.g. 4G)")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except AuditInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- commands -----------------------------------------------------------------------------------


def cmd_datasets(args) -> int:
    rows = []
    for entry in list_datasets():
        rows.append((entry.name, f"{len(load_dataset(entry.name, 'all')):,}", entry.modality, entry.target,
                     ", ".join(entry.sensitive) or "-", entry.description))
    _print_table(("name", "rows", "modality", "target", "sensitive", "description"), rows)
    return 0


def cmd_models(args) -> int:
    _print_table(("name", "modalities", "description"),
                 [(e.name, ", ".join(e.modalities), e.description) for e in MODELS.entries()])
    return 0


def cmd_analyzers(args) -> int:
    rows = []
    for cls in ANALYZERS.classes():
        options = ", ".join(f"{k}={v!r}" for k, v in cls().config().items()) or "-"
        rows.append((cls.name, "yes" if cls.default else "no", cls.description, options))
    _print_table(("name", "default", "what it does", "options (--set name.option=value)"), rows)
    return 0


def cmd_metrics(args) -> int:
    _print_table(("metric", "better", "interval", "meaning"),
                 [(name, spec.better, "yes" if spec.interval else "-", spec.description)
                  for name, spec in metric_catalog().items()])
    return 0


def cmd_policy(args) -> int:
    print(default_policy_toml(), end="")
    return 0


def cmd_train(args) -> int:
    if args.what.endswith(".toml"):
        if args.dataset or args.data:
            raise AuditInputError("a spec file names its own data; drop --dataset/--data or train an architecture")
        spec = ModelSpec.from_toml(args.what)
    else:
        MODELS.get(args.what)
        name = args.dataset or (Path(args.data).stem if args.data else "data")
        spec = ModelSpec(architecture=args.what, output=Path(args.output or f"models/{name}-{args.what}.pt"),
                         dataset=args.dataset, data=Path(args.data) if args.data else None, target=args.target,
                         sensitive=tuple(args.sensitive), text_column=args.text_column)
    overrides = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                   "seed": args.seed}.items() if v is not None}
    config = TrainConfig.from_dict({**spec.training.__dict__, **overrides})
    model_config = {**spec.model, **_parse_assignments(args.set, "architecture option")}
    output = Path(args.output) if args.output else spec.output
    if args.output is None:
        output.parent.mkdir(parents=True, exist_ok=True)
    check_outputs({"-o": output}, {"--data": spec.data, "spec": args.what if args.what.endswith(".toml") else None})
    mitigation, adversarial = _training_mitigations(args, spec)
    splits = spec.splits(seed=config.seed)
    outcome = train(spec.architecture, *splits, config=config, model_config=model_config,
                    hook=training_hook(mitigation, adversarial), quiet=args.quiet)
    checkpoint.save(outcome.model, output)
    print(f"{spec.architecture} on {splits[0].name}: test accuracy {outcome.test_accuracy:.4f} "
          f"(validation {outcome.validation_accuracy:.4f}, best epoch {outcome.epochs}), "
          f"trained in {outcome.seconds:.1f} s -> {output}")
    return 0


def _training_mitigations(args, spec: ModelSpec) -> tuple[Mitigation | None, AdversarialTraining | None]:
    """The spec's [mitigation] and [adversarial] tables, with the command line's flags over them."""
    mitigation, adversarial = spec.mitigation, spec.adversarial
    if args.mitigate or (mitigation and (args.constraint or args.strength is not None)):
        base = mitigation.to_dict() if mitigation else {}
        if args.mitigate:
            if len(args.sensitive) != 1:
                raise AuditInputError("--mitigate needs the one sensitive column to train for: --sensitive COL")
            base.update(method=args.mitigate, sensitive=args.sensitive[0])
        given = {"constraint": args.constraint, "strength": args.strength}
        mitigation = Mitigation.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
    elif args.constraint or args.strength is not None:
        raise AuditInputError("--constraint and --strength go with --mitigate METHOD")
    flags = {"epsilon": args.epsilon, "steps": args.attack_steps, "share": args.adversarial_share}
    if args.adversarial or (adversarial and any(v is not None for v in flags.values())):
        base = adversarial.to_dict() if adversarial else {"attack": args.adversarial}
        adversarial = AdversarialTraining.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    elif any(v is not None for v in flags.values()):
        raise AuditInputError("--epsilon, --attack-steps and --adversarial-share go with --adversarial pgd")
    return mitigation, adversarial


def cmd_report(args) -> int:
    settings = _audit_settings(args)
    if (args.model is None) == (args.predictions is None):
        raise AuditInputError("report: give a model checkpoint or --predictions FILE (one of them)")
    if args.predictions is not None:
        return _report_predictions(args, settings)
    output = Path(args.output or f"reports/{Path(args.model).stem}.html")
    outputs = _check_outputs(args, output, {"model": args.model})
    model = load_model(args.model, **_load_options(args))
    source = streamed_source(dict(model.task.dataset), data=args.data, stream=args.stream, target=args.target,
                             sensitive=args.sensitive, text_column=args.text_column)
    result = run_stream(model, source, **settings) if source else run(model, _audit_data(args, model), **settings)
    _write_outputs(outputs, result, result, name=shown(args.model))
    return _finish(result, output)


def _report_predictions(args, settings: dict) -> int:
    if not args.target:
        raise AuditInputError("--predictions needs --target, the label column")
    if args.data or args.text_column:
        raise AuditInputError("--predictions holds the rows; drop --data/--text-column")
    output = Path(args.output or f"reports/{Path(args.predictions).stem}.html")
    outputs = _check_outputs(args, output, {"--predictions": args.predictions})
    scores = [c.strip() for c in (args.score_columns or "").split(",") if c.strip()]
    settings = {k: v for k, v in settings.items() if k != "samples"}  # no per-example analyzer runs
    result = from_predictions(args.predictions, target=args.target, prediction=args.prediction_column,
                              scores=scores, sensitive=args.sensitive, stream=args.stream, **settings)
    _write_outputs(outputs, result, result, name=shown(args.predictions))
    return _finish(result, output)


def cmd_compare(args) -> int:
    settings = _audit_settings(args)
    output = Path(args.output or f"reports/{Path(args.baseline).stem}-vs-{Path(args.candidate).stem}.html")
    outputs = _check_outputs(args, output, {"baseline": args.baseline, "candidate": args.candidate})
    baseline = load_model(args.baseline, **_load_options(args))
    candidate = load_model(args.candidate, **_load_options(args))
    data = _audit_data(args, candidate)
    comparison = compare(baseline, candidate, data, **settings)
    # The candidate's run carries the comparison's verdict.
    _write_outputs(outputs, comparison, comparison.candidate, name=f"{shown(args.baseline)} vs {shown(args.candidate)}")
    return _finish(comparison.candidate, output)


def cmd_mitigate(args) -> int:
    settings = _audit_settings(args)
    if not 0 <= args.seed < 2**32:
        raise AuditInputError(f"--seed must be from 0 to {2**32 - 1} for mitigate, found {args.seed}")
    fixed_path = Path(args.output)
    html = Path(args.report or f"reports/{fixed_path.stem}-vs-{Path(args.model).stem}.html")
    if args.report is None:
        html.parent.mkdir(parents=True, exist_ok=True)
    reports = {"--report": html, "--json": args.json, "--junit": args.junit, "--markdown": args.markdown}
    outputs = check_outputs({"-o": fixed_path, **{k: v for k, v in reports.items() if v is not None}},
                            {"model": args.model, "--validation": args.validation, "--data": args.data,
                             "--policy": args.policy})
    if args.method == "thresholds" and args.constraint is None:
        raise AuditInputError("--method thresholds needs --constraint (demographic_parity or equalized_odds)")
    if args.method == "thresholds" and args.strength is not None:
        raise AuditInputError("--strength goes with a training method, not thresholds")
    if args.method != "thresholds" and args.validation:
        raise AuditInputError("--validation goes with --method thresholds; retraining uses the recorded splits")
    if args.method == "pgd" and (args.constraint or args.strength is not None):
        raise AuditInputError("--constraint and --strength go with a fairness method, not pgd")
    if args.method != "pgd" and args.sensitive is None:
        raise AuditInputError(f"--method {args.method} needs --sensitive COL, the column to equalize over")
    grid, limit = _sweep_options(args, settings["policy"])
    model = load_model(args.model, max_parameters=args.max_parameters)
    where, sensitive = dict(model.task.dataset), [args.sensitive] if args.sensitive else []
    test = audit_data(where, data=args.data, target=args.target, sensitive=sensitive, classes=model.classes)
    validation = audit_data(where, data=args.validation, target=args.target, sensitive=sensitive,
                            classes=model.classes, split="validation") if args.method == "thresholds" else None
    sections = ()
    if args.sweep:
        swept = sweep(model, test, method=args.method, column=args.sensitive, limit=limit,
                      constraint=args.constraint or "demographic_parity", grid=grid, validation=validation,
                      adversarial=recorded_adversarial(model), samples=args.samples,
                      epsilon=settings["options"].get("robustness", {}).get("epsilon"),
                      confidence=settings["options"].get("fairness", {}).get("confidence", 0.95), seed=args.seed,
                      positive_class=args.positive_class)
        fixed, sections, done = swept.model, (swept.result(),), swept.summary()
    elif args.method == "pgd":
        outcome = retrain(model, adversarial=recorded_adversarial(model), quiet=args.quiet)
        fixed = outcome.model
        done = (f"retrained with PGD adversarial training (epsilon {fixed.task.training['adversarial']['epsilon']:.3g})"
                f" in {outcome.seconds:.1f} s")
    elif args.method == "thresholds":
        fixed, _ = with_thresholds(model, validation, column=args.sensitive, constraint=args.constraint,
                                   seed=args.seed, positive_class=args.positive_class)
        done = f"thresholds by {args.sensitive} ({args.constraint}) fitted on {len(validation):,} rows"
    else:
        given = {"constraint": args.constraint, "strength": args.strength}
        mitigation = Mitigation.from_dict({"method": args.method, "sensitive": args.sensitive,
                                           **{k: v for k, v in given.items() if v is not None}})
        outcome = retrain(model, mitigation, quiet=args.quiet)
        fixed = outcome.model
        done = f"retrained with {args.method} on {args.sensitive} ({mitigation.constraint}) in {outcome.seconds:.1f} s"
    checkpoint.save(fixed, outputs.pop("-o"))
    try:
        fixed = load_model(fixed_path, max_parameters=args.max_parameters)
        comparison = dataclasses.replace(compare(model, fixed, test, **settings), sections=sections)
        _write_outputs({"-o" if k == "--report" else k: v for k, v in outputs.items()}, comparison,
                       comparison.candidate, name=f"{shown(args.model)} vs {shown(fixed_path)}")
    except BaseException:
        fixed_path.unlink(missing_ok=True)  # all outputs or none
        raise
    print(f"{done} -> {fixed_path}")
    if fixed.task.postprocessing is not None:
        print(f"note: the model now needs the sensitive attribute {args.sensitive!r} at prediction time")
    return _finish(comparison.candidate, html)


def _sweep_options(args, policy: Policy | None) -> tuple[tuple[float, ...] | None, float | None]:
    """--grid and the limit a sweep chooses by (--max-disparity or --min-robust-accuracy, else the policy's gate
    on the sweep's measure)."""
    if not args.sweep:
        if args.grid is not None or args.max_disparity is not None or args.min_robust_accuracy is not None:
            raise AuditInputError("--grid, --max-disparity and --min-robust-accuracy go with --sweep")
        return None, None
    if args.strength is not None:
        raise AuditInputError("--sweep varies the strength: give its values with --grid, not --strength")
    knob = check_sweepable(args.method, args.constraint or "demographic_parity")
    grid = parse_grid(args.grid, knob) if args.grid is not None else None
    robust = args.method == "pgd"
    given, other = (args.min_robust_accuracy, "--max-disparity") if robust else (args.max_disparity,
                                                                                  "--min-robust-accuracy")
    if (args.max_disparity if robust else args.min_robust_accuracy) is not None:
        raise AuditInputError(f"{other} goes with a {'fairness' if robust else 'pgd'} sweep, not {args.method}")
    metric = ROBUST if robust else DISPARITY[args.constraint or "demographic_parity"]
    limit = given if given is not None else gate_limit(policy, metric, args.sensitive)
    if limit is None:
        flag, gate = (("--min-robust-accuracy A", f"min on robustness.{metric}") if robust else
                      ("--max-disparity D", f"max on fairness.{args.sensitive}.{metric}"))
        raise AuditInputError(f"--sweep needs a limit to choose by: {flag}, or a --policy gate with {gate}")
    if not 0 <= limit <= 1:
        raise AuditInputError(f"the sweep's limit must be from 0 to 1, found {limit:g}")
    return grid, limit


def _audit_settings(args) -> dict:
    """Everything about an audit that the command line sets, checked before any model is loaded."""
    policy = Policy.from_toml(args.policy) if args.policy else None
    names = [n.strip() for n in args.analyzers.split(",") if n.strip()] if args.analyzers else None
    for name in names or []:
        ANALYZERS.get(name)
    if args.samples is not None and args.samples < 1:
        raise AuditInputError(f"--samples must be at least 1, found {args.samples}")
    options = _parse_analyzer_options(args.set)
    if args.positive_class is not None and (names is None or "fairness" in names):
        options.setdefault("fairness", {})["positive_class"] = args.positive_class
    return dict(analyzers=names, seed=args.seed, policy=policy, samples=args.samples,
                options=options, command=" ".join(shown(a) for a in ["audit", *sys.argv[1:]]))


def _load_options(args) -> dict:
    return dict(trust_code=args.trust_code, max_parameters=args.max_parameters)


def _audit_data(args, model):
    trained_on = dict(model.task.dataset)
    if args.dataset:
        if args.data:
            raise AuditInputError("give --data FILE or --dataset NAME, not both")
        trained_on = {"builtin": args.dataset}
    return audit_data(trained_on, data=args.data, target=args.target, sensitive=args.sensitive,
                      text_column=args.text_column, classes=model.classes)


def _check_outputs(args, html: Path, models: dict[str, str]) -> dict[str, Path]:
    """Every output path of an audit, checked before any model is loaded: an audit takes minutes."""
    if args.output is None:
        html.parent.mkdir(parents=True, exist_ok=True)  # the default reports/ folder
    outputs = {"-o": html, "--json": args.json, "--junit": args.junit, "--markdown": args.markdown}
    return check_outputs({k: v for k, v in outputs.items() if v is not None},
                         {**models, "--data": args.data, "--policy": args.policy})


def _write_outputs(outputs: dict[str, Path], document, gated: AuditRun, *, name: str) -> None:
    """HTML and JSON of the whole document, JUnit and Markdown of the gated run, written as one set."""
    render = {"-o": document.render_html, "--json": document.to_json,
              "--junit": lambda: render_junit(gated.verdict, gated.results, name=name),
              "--markdown": lambda: render_markdown(gated) if document is gated else render_compare_markdown(document)}
    write_together({path: text_writer(render[option]()) for option, path in outputs.items()})


def _finish(gated: AuditRun, output: Path) -> int:
    print(f"{gated.verdict.summary} -> {output}")
    for gate in gated.verdict.failed:
        print(f"  {gate.status}: {gate.message}")
    for finding in gated.verdict.findings:
        if finding.severity in ("high", "medium"):
            print(f"  {finding.severity}: {finding.sentence}")
    for r in gated.results:
        if r.status == "error":
            print(f"  analyzer {r.analyzer} errored: {r.error}", file=sys.stderr)
    return gated.verdict.exit_code


# -- helpers ------------------------------------------------------------------------------------


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_assignments(items: Sequence[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AuditInputError(f"--set {item!r}: expected {what} as NAME=VALUE")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _parse_analyzer_options(items: Sequence[str]) -> dict[str, dict]:
    options: dict[str, dict] = {}
    for key, value in _parse_assignments(items, "analyzer option").items():
        analyzer, sep, option = key.partition(".")
        if not sep:
            raise AuditInputError(f"--set {key}: expected ANALYZER.OPTION=VALUE, e.g. performance.bins=15")
        ANALYZERS.get(analyzer)
        options.setdefault(analyzer, {})[option] = value
    return options


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
