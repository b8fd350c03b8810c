"""The options that several commands share, declared once, and what they turn into before anything loads.

Only light modules are imported here: `audit --help` builds every parser without torch, numpy or pandas.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence

from audit._util.distribution import install_hint
from audit._util.documents import MAX_DEPTH, toml_depth
from audit._util.durations import parse_duration
from audit._util.errors import AuditInputError
from audit._util.paths import MAX_INPUT_BYTES, format_size, parse_size, shown
from audit._util.threads import THREADS_VARIABLE
from audit.io.limits import MAX_PARAMETERS, STREAM_ABOVE


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise AuditInputError(f"{self.prog}: {message}")


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="a CSV or Parquet table, an NPZ of images (arrays x, y), or a folder of images "
                                  "in class folders (DIR/CLASS/FILE.png; per-image sensitive columns in "
                                  "DIR/metadata.csv, one row per file_name)")
    p.add_argument("--target", help="label column of --data")
    p.add_argument("--sensitive", nargs="+", default=[], metavar="COL", help="sensitive attribute columns")
    p.add_argument("--text-column", help="text column of --data (text models)")
    add_resource_options(p)


def add_resource_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, metavar="N",
                   help=f"threads for torch and BLAS (default: ${THREADS_VARIABLE}, else the CPUs this process may "
                        "use, or OMP_NUM_THREADS when set)")
    p.add_argument("--max-input-size", type=_argument(parse_size), default=MAX_INPUT_BYTES, metavar="SIZE",
                   help=f"refuse larger model, data and policy files before reading them; they are read whole "
                        f"(default {format_size(MAX_INPUT_BYTES)}; e.g. 4G)")


def add_memory_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", type=_argument(_memory_budget), metavar="SIZE",
                   help="keep the audit's memory under this: every analyzer sizes its passes to fit, and says where "
                        "one had to shrink (default: what the process holds plus half the memory available at the "
                        "start; e.g. 2G)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help=f"where the batch work runs: this process, or Ray tasks ({install_hint('ray')}); same "
                        "numbers (default: local)")
    p.add_argument("--ray-address", metavar="ADDRESS", help="an existing Ray cluster (with --engine ray; default: "
                                                             "a local Ray started for the run)")


def add_run_options(p: argparse.ArgumentParser, *, positive_class: str, seed: str) -> None:
    """What an audit is judged by and how it runs: policy, analyzers and their options, seed, sample size."""
    p.add_argument("--policy", help="TOML file of gates; the exit code follows its verdict")
    p.add_argument("--analyzers", help="comma-separated analyzers to run (default: all that apply)")
    p.add_argument("--set", action="append", default=[], metavar="ANALYZER.OPTION=VALUE",
                   help="an analyzer option, e.g. --set performance.bins=15")
    p.add_argument("--positive-class", help=positive_class)
    p.add_argument("--seed", type=int, default=0, help=seed)
    p.add_argument("--samples", type=int, metavar="N",
                   help="examples each per-example analyzer works on (default: each analyzer's own samples option: "
                        "saliency 32, shap 16, lime 10, explanation_quality 16, robustness 256 (text 32), fairness's "
                        "text probe 500 sentences; `audit analyzers` lists them)")


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """How long an audit may take: the plan made before the work fits it."""
    p.add_argument("--budget", type=_argument(parse_duration), metavar="TIME",
                   help="the time the audit may take, e.g. 90s, 5m or 1h: the per-example analyzers work on fewer "
                        "examples until the plan made before the work fits it; the report says what was cut and how "
                        "much wider each interval became (default: no limit)")
    p.add_argument("--precision", type=_width, metavar="WIDTH",
                   help="stop adding examples to an analyzer once the interval of its headline metric is at most "
                        "this wide (robustness: the robust accuracy's 95%% interval), in rounds of 32, 64, ... "
                        "examples up to its samples, e.g. 0.1 (default: all its samples)")


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", help="also write the JSON document here")
    p.add_argument("--junit", help="also write JUnit XML here (one testcase per gate)")
    p.add_argument("--markdown", help="also write a Markdown summary here (pull-request comment, job summary)")
    p.add_argument("--model-card", metavar="README.md", help="also write a Hugging Face model card here (model-index "
                   "results and the audit's evidence; into a copy of a model folder, never the input)")
    p.add_argument("--intended-use", metavar="TEXT",
                   help="the model card's intended use (default: the model spec's, else not stated)")
    p.add_argument("--out-of-scope", metavar="TEXT",
                   help="the model card's out-of-scope use (default: the model spec's, else not stated)")
    p.add_argument("--evidence", help="also write an evidence map for a reviewer here: EU AI Act and NIST AI RMF "
                                      "items covered, partly covered or not (FILE.json: JSON, else Markdown)")
    add_tracking_options(p)


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", action="store_true",
                   help="also log the audit to MLflow: one run per audited model with its parameters, metrics and "
                        "their intervals, the verdict and the documents; compare and mitigate add a parent run "
                        f"({install_hint('mlflow')})")
    p.add_argument("--mlflow-uri", metavar="URI", help="the MLflow tracking URI, or a directory to keep a file store "
                   "in (default: $MLFLOW_TRACKING_URI, else MLflow's default)")
    p.add_argument("--mlflow-experiment", metavar="NAME",
                   help="the MLflow experiment, created if new (default: $MLFLOW_EXPERIMENT_NAME, else Default)")


def add_checkpoint_options(p: argparse.ArgumentParser, *, trust_code: bool) -> None:
    if trust_code:
        p.add_argument("--trust-code", "--trust-pickle", dest="trust_code", action="store_true",
                       help="allow model files that carry code, TorchScript and pickles (the code runs: only for "
                            "files you trust)")
    p.add_argument("--max-parameters", type=int, default=MAX_PARAMETERS, metavar="N",
                   help=f"refuse checkpoints declaring more parameters (default {MAX_PARAMETERS:,})")


TASK_FLAGS = {"modality": "--modality", "classes": "--classes", "feature_names": "--feature-names",
              "input_shape": "--input-shape", "layout": "--layout", "mean": "--mean", "std": "--std"}


def add_task_options(p: argparse.ArgumentParser) -> None:
    """The task of a model file that carries none (a pickled module with --trust-code), as `audit.wrap` takes it."""
    g = p.add_argument_group("task of a model file that carries none (a pickled module with --trust-code)")
    g.add_argument("--modality", choices=["tabular", "image"], help="what the model reads")
    g.add_argument("--classes", nargs="+", metavar="NAME", help="class names, in the order of the model's outputs")
    g.add_argument("--feature-names", nargs="+", metavar="COL",
                   help="tables: the columns the model reads, in order (default: every column of --data but the "
                        "target and sensitive ones)")
    g.add_argument("--input-shape", nargs=3, type=int, metavar=("C", "H", "W"),
                   help="images: the (C, H, W) the model reads; other shapes are refused in one line (default: "
                        "any)")
    g.add_argument("--layout", choices=["NCHW", "NHWC"],
                   help="images: the layout the module reads; data are NCHW pixels in [0, 1] (default NCHW)")
    g.add_argument("--mean", nargs="+", type=float, metavar="M",
                   help="images: per-channel mean the module normalises by, with --std (default: none)")
    g.add_argument("--std", nargs="+", type=float, metavar="S", help="images: per-channel std, with --mean")


def add_console_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_audit_options(p: argparse.ArgumentParser, *, default_output: str) -> None:
    """The options of the commands that audit a model: report and compare."""
    add_data_options(p)
    p.add_argument("--dataset", help="audit on the test split of a built-in dataset (audit datasets) instead of "
                                     "--data (default: the data the model was trained on)")
    p.add_argument("-o", "--output", help=f"HTML report to write (default: {default_output})")
    add_output_options(p)
    add_run_options(p, positive_class="the class fairness takes as the positive (favourable) outcome (default: "
                                      "the second class)", seed="drives every random choice (default 0)")
    add_checkpoint_options(p, trust_code=True)
    add_task_options(p)
    add_console_options(p)
    add_engine_options(p)


STREAM_HELP = (f"read --data (or --predictions) in chunks, in bounded memory (automatic when the data would take "
               f"over {format_size(STREAM_ABOVE)} in memory); the per-example analyzers run on a seeded sample")


def _argument(parse):
    """An argparse type from a parser that raises AuditInputError: argparse prints its message as one line."""
    def convert(text: str):
        try:
            return parse(text)
        except AuditInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _width(text: str) -> float:
    try:
        width = float(text)
    except ValueError:
        width = None
    if width is None or not 0 < width < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval width: expected a number between 0 and 1, "
                                         "e.g. 0.1")
    return width


def _memory_budget(text: str) -> int:
    from audit._util.memory import as_bytes

    return as_bytes(text)


# -- what the options turn into, checked before any model loads ----------------------------------


def audit_settings(args) -> dict:
    """Everything about an audit that the command line sets, checked before any model is loaded."""
    from audit.analyzers import ANALYZERS
    from audit.policy.gates import Policy

    policy = Policy.from_toml(args.policy) if args.policy else None
    names = [n.strip() for n in args.analyzers.split(",") if n.strip()] if args.analyzers else None
    for name in names or []:
        ANALYZERS.get(name)
    if args.samples is not None and args.samples < 1:
        raise AuditInputError(f"--samples must be at least 1, found {args.samples}")
    options = parse_analyzer_options(args.set)
    if args.positive_class is not None and (names is None or "fairness" in names):
        options.setdefault("fairness", {})["positive_class"] = args.positive_class
    return dict(analyzers=names, seed=args.seed, policy=policy, samples=args.samples,
                options=options, command=" ".join(shown(a) for a in ["audit", *sys.argv[1:]]))


def check_positive_class(positive_class: str | None, classes: Sequence[str]) -> None:
    """Refuse a --positive-class that is not a class, before the data is read and anything runs."""
    if positive_class is not None and str(positive_class) not in classes:
        raise AuditInputError(f"--positive-class {positive_class!r} is not a class of the model {list(classes)}")


def load_options(args) -> dict:
    return dict(trust_code=args.trust_code, max_parameters=args.max_parameters, task=task_options(args))


def task_options(args) -> dict | None:
    """The task the task flags give (None: none given), checked when the model loads (`audit.io.tasks`)."""
    given = {key: getattr(args, key) for key in TASK_FLAGS if getattr(args, key, None) is not None}
    if not given:
        return None
    missing = [TASK_FLAGS[k] for k in ("modality", "classes") if k not in given]
    if missing:
        shown_flags = ", ".join(TASK_FLAGS[k] for k in given)
        raise AuditInputError(f"{shown_flags} describe a model file that carries no task; give "
                              f"{' and '.join(missing)} too")
    return given


def audit_data(args, model):
    """The data `args` name (--data, --dataset), else the test split of the data `model` was trained on."""
    from audit.io.locate import audit_data as located

    trained_on = dict(model.task.dataset)
    if args.dataset:
        if args.data:
            raise AuditInputError("give --data FILE or --dataset NAME, not both")
        trained_on = {"builtin": args.dataset}
    return located(trained_on, data=args.data, target=args.target, sensitive=args.sensitive,
                   text_column=args.text_column, classes=model.classes)


def parse_assignments(items: Sequence[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AuditInputError(f"--set {item!r}: expected {what} as NAME=VALUE")
        out[key.strip()] = _parse_value(value.strip())
    return out


def parse_analyzer_options(items: Sequence[str]) -> dict[str, dict]:
    from audit.analyzers import ANALYZERS

    options: dict[str, dict] = {}
    for key, value in parse_assignments(items, "analyzer option").items():
        analyzer, sep, option = key.partition(".")
        if not sep:
            raise AuditInputError(f"--set {key}: expected ANALYZER.OPTION=VALUE, e.g. performance.bins=15")
        ANALYZERS.get(analyzer)
        options.setdefault(analyzer, {})[option] = value
    return options


def _parse_value(text: str):
    if toml_depth(text) > MAX_DEPTH:
        raise AuditInputError(f"--set value {text[:40]!r}...: nested deeper than {MAX_DEPTH} levels")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
