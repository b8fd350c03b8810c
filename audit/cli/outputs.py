"""What an audit command writes: its output paths checked before anything loads, the documents written as one
set, and the summary it prints."""

from __future__ import annotations

import sys
from pathlib import Path

from audit._util.files import check_outputs, text_writer, write_together


def check_audit_outputs(args, html: Path, models: dict[str, str]) -> dict[str, Path]:
    """Every output path of an audit, checked before any model is loaded: an audit takes minutes."""
    if args.output is None:
        html.parent.mkdir(parents=True, exist_ok=True)  # the default reports/ folder
    outputs = {"-o": html, "--json": args.json, "--junit": args.junit, "--markdown": args.markdown}
    return check_outputs({k: v for k, v in outputs.items() if v is not None},
                         {**models, "--data": args.data, "--policy": args.policy})


def write_outputs(outputs: dict[str, Path], document, gated, *, name: str) -> None:
    """HTML and JSON of the whole `document`, JUnit and Markdown of the `gated` run, written as one set."""
    from audit.report.ci import render_compare_markdown, render_junit, render_markdown

    render = {"-o": document.render_html, "--json": document.to_json,
              "--junit": lambda: render_junit(gated.verdict, gated.results, name=name),
              "--markdown": lambda: render_markdown(gated) if document is gated else render_compare_markdown(document)}
    write_together({path: text_writer(render[option]()) for option, path in outputs.items()})


def finish(gated, output: Path, *, failures=None, label: str = "") -> int:
    """The verdict, the failed gates and the high and medium findings on the first lines; the exit code.
    audit compare passes its `failures` (the failed gates told apart: newly failing, or failing as the baseline
    did) and labels the gated run's lines "candidate"."""
    who = f"{label} " if label else ""
    print(f"{gated.verdict.summary} -> {output}")
    if failures is None:
        for gate in gated.verdict.failed:
            print(f"  {gate.status}: {gate.message}")
    else:
        if failures.summary:
            print(f"  {failures.summary}")
        for kind, gates in (("newly fails", failures.new), ("fails as the baseline did", failures.as_baseline)):
            for gate in gates:
                print(f"  {kind} ({gate.status}): {gate.message}")
    for finding in gated.verdict.findings:
        if finding.severity in ("high", "medium"):
            print(f"  {who}{finding.severity}: {finding.sentence}")
    for r in gated.results:
        if r.status == "error":
            print(f"  {who}analyzer {r.analyzer} errored: {r.error}", file=sys.stderr)
    return gated.verdict.exit_code
