"""What an audit command writes: its output paths checked before anything loads, the documents written as one
set, and the summary it prints."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from audit._util.errors import AuditInputError
from audit._util.files import Writer, check_outputs, text_writer, write_together

# Control characters (ESC starts a terminal escape sequence) and the marks that reorder text on screen, as they
# come in group, column and file names: shown as escapes, so a CI log shows what the data holds and nothing else.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Matplotlib warns once per character a font lacks, with the character in the message: a hostile name's escapes.


def printable(text: object) -> str:
    r"""`text` for the terminal: each control character as its escape (`\x1b`), the rest as it is."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def check_audit_outputs(args, html: Path, models: dict[str, str]) -> dict[str, Path]:
    """Every output path of an audit, checked before any model is loaded: an audit takes minutes."""
    if args.output is None:
        html.parent.mkdir(parents=True, exist_ok=True)  # the default reports/ folder
    outputs = {"-o": html, "--json": args.json, "--junit": args.junit, "--markdown": args.markdown,
               "--model-card": args.model_card, "--evidence": args.evidence,
               "--examples": getattr(args, "examples", None)}
    return check_outputs({k: v for k, v in outputs.items() if v is not None},
                         {**models, "--data": args.data, "--policy": args.policy})


def write_outputs(outputs: dict[str, Path], document, gated, *, name: str, args=None,
                  files: Mapping[Path, Writer] | None = None) -> None:
    """HTML and JSON of the whole `document`; JUnit, Markdown, the model card (with the intended and out-of-scope
    use in `args`), the evidence map and the per-example Parquet of the `gated` run; and any other `files`, written
    as one set."""
    from audit.report.ci import render_compare_markdown, render_junit, render_markdown

    render = {"-o": document.render_html, "--json": document.to_json,
              "--junit": lambda: render_junit(gated.verdict, gated.results, name=name),
              "--markdown": lambda: render_markdown(gated) if document is gated else render_compare_markdown(document),
              "--model-card": lambda: gated.to_model_card(intended_use=getattr(args, "intended_use", None),
                                                          out_of_scope=getattr(args, "out_of_scope", None)),
              "--evidence": lambda: _evidence(gated, outputs["--evidence"])}
    binary = {path: gated.write_examples for option, path in outputs.items() if option == "--examples"}
    write_together({**(files or {}), **binary,
                    **{path: text_writer(render[option]()) for option, path in outputs.items() if option in render}})


def _evidence(run, path: Path) -> str:
    evidence = run.to_evidence()
    return evidence.to_json() if path.suffix.lower() == ".json" else evidence.to_markdown()


def open_tracker(args):
    """The MLflow experiment that --mlflow logs to, opened before any model loads; None without --mlflow."""
    if not args.mlflow:
        if args.mlflow_uri or args.mlflow_experiment:
            raise AuditInputError("--mlflow-uri and --mlflow-experiment go with --mlflow")
        return None
    from audit.report.tracking import Tracker

    return Tracker.open(args.mlflow_uri, args.mlflow_experiment)


def track(tracker, document, args, *, labels: tuple[str, str] = ("baseline", "candidate"),
          tags: Mapping[str, str] | None = None) -> str:
    """`document` logged by `tracker` (None: not logged): a run, or a comparison as a parent run with a child
    run per model named by `labels`. The line `finish` prints."""
    if tracker is None:
        return ""
    from audit.executor.compare import Comparison

    card = dict(intended_use=args.intended_use, out_of_scope=args.out_of_scope)
    if isinstance(document, Comparison):
        run_id = tracker.log_comparison(document, labels=labels, tags=tags, **card)
    else:
        run_id = tracker.log_run(document, tags=tags, **card)
    return f"MLflow run {run_id} in experiment {tracker.experiment!r} at {tracker.uri}"


def finish(gated, output: Path, *, failures=None, label: str = "", tracked: str = "") -> int:
    """The verdict, the failed gates and the high and medium findings on the first lines; the exit code.
    audit compare passes its `failures` (the failed gates told apart: newly failing, or failing as the baseline
    did) and labels the gated run's lines "candidate"; `tracked` says where --mlflow logged it. Every line is
    printable: no control character from data."""
    who = f"{label} " if label else ""
    print(printable(f"{gated.verdict.summary} -> {output}"))
    if failures is None:
        for gate in gated.verdict.failed:
            print(printable(f"  {gate.status}: {gate.message}"))
    else:
        if failures.summary:
            print(printable(f"  {failures.summary}"))
        for kind, gates in (("newly fails", failures.new), ("fails as the baseline did", failures.as_baseline)):
            for gate in gates:
                print(printable(f"  {kind} ({gate.status}): {gate.message}"))
    for finding in gated.verdict.findings:
        if finding.severity in ("high", "medium"):
            print(printable(f"  {who}{finding.severity}: {finding.sentence}"))
    if tracked:
        print(printable(f"  {tracked}"))
    for r in gated.results:
        if r.status == "error":
            print(printable(f"  {who}analyzer {r.analyzer} errored: {r.error}"), file=sys.stderr)
    return gated.verdict.exit_code
