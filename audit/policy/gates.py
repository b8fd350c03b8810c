"""Gates on metric names, read from TOML, and the verdict they give a run.

    [gates."fairness.demographic_parity_difference"]
    max = 0.1
    use = "upper"          # "value" (default), "upper" or "lower" bound of the interval
    max_increase = 0.02    # audit compare: candidate - baseline may rise at most this much
    if_applicable = true   # n/a (not an error) when the metric does not exist for this kind of model or data
                           # (no such column, another modality); a metric the data left undefined still fails

    [thresholds]
    error_rate_gap_max = 0.1   # overrides one threshold of the built-in default policy

Exit codes: 0 every gate passes (or no gates), 1 a gate failed, 3 a gate could not be
evaluated because its analyzer errored or did not run, or any analyzer errored: the run is
incomplete, with or without gates (fail closed). Findings (judged by the thresholds) make the
verdict of a complete run without gates; they never change the exit code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from audit.analyzers import ANALYZERS  # the package registers every analyzer: the catalog is theirs

from audit.core.result import Finding, MetricSpec
from audit._util.documents import read_toml
from audit._util.errors import AuditInputError
from audit.core.result import by_severity
from audit.policy.thresholds import DEFAULT_VALUES

if TYPE_CHECKING:
    from audit.executor.runner import AuditRun

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
USES = ("value", "upper", "lower")
NOT_APPLICABLE = "its analyzer does not apply to this model and data"
ABSENT = "the metric is not in this run"
UNDEFINED = ("not a finite number on this data (it is undefined here, e.g. fewer than two groups large enough; "
             "see the analyzer's warnings)")
GATE_KEYS = ("min", "max", "use", "max_increase", "max_decrease", "if_applicable")


def metric_catalog() -> dict[str, MetricSpec]:
    """Every gateable metric of every registered analyzer (names may hold <placeholders>)."""
    return {name: spec for cls in ANALYZERS.classes() for name, spec in cls.metrics.items()}


def metric_pattern(name: str) -> re.Pattern:
    """A catalog name as a regex: each <placeholder> stands for a non-empty part (a column name may hold dots and
    line breaks)."""
    return re.compile(re.sub(r"<[^>]+>", r"(?s:.+)", re.escape(name).replace(r"\<", "<").replace(r"\>", ">")))


def find_metric_spec(name: str) -> MetricSpec | None:
    return next((spec for pattern, spec in metric_catalog().items() if metric_pattern(pattern).fullmatch(name)), None)


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max: float | None = None
    use: str = "value"
    max_increase: float | None = None
    max_decrease: float | None = None
    if_applicable: bool = False

    @property
    def on_change(self) -> bool:
        return self.max_increase is not None or self.max_decrease is not None

    @property
    def on_value(self) -> bool:
        return self.min is not None or self.max is not None

    def describe(self) -> str:
        what = self.metric if self.use == "value" else f"{self.use} bound of {self.metric}"
        bounds = [f">= {self.min:g}" if self.min is not None else "",
                  f"<= {self.max:g}" if self.max is not None else "",
                  f"rises <= {self.max_increase:g}" if self.max_increase is not None else "",
                  f"falls <= {self.max_decrease:g}" if self.max_decrease is not None else ""]
        return f"{what} {' and '.join(b for b in bounds if b)}"


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    status: str  # "pass", "fail", "error" or "n/a"
    value: float | None
    message: str
    baseline: float | None = None

    def to_dict(self) -> dict:
        return {"metric": self.gate.metric, "use": self.gate.use, "min": self.gate.min, "max": self.gate.max,
                "max_increase": self.gate.max_increase, "max_decrease": self.gate.max_decrease,
                "status": self.status, "value": self.value, "baseline": self.baseline, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    status: str  # "pass", "fail", "error" (a gate could not be evaluated), "incomplete" (an analyzer errored) or
    # "ungated" (no gates: the findings judge)
    gates: tuple[GateResult, ...] = ()
    errored_analyzers: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()  # every analyzer's, high severity first

    @property
    def exit_code(self) -> int:
        return {"fail": EXIT_FAIL, "error": EXIT_ERROR, "incomplete": EXIT_ERROR}.get(self.status, EXIT_PASS)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if g.status in ("fail", "error"))

    @property
    def judgement(self) -> str:
        """The findings in one phrase: "2 high, 1 medium findings" or "no high or medium findings"."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in ("high", "medium")}
        shown = [f"{n} {s}" for s, n in counts.items() if n]
        return f"{', '.join(shown)} finding{'s' if sum(counts.values()) > 1 else ''}" if shown else \
            "no high or medium findings"

    @property
    def summary(self) -> str:
        """One line, the status first: an errored analyzer is named before the findings' judgement."""
        errored = f"analyzer(s) {', '.join(self.errored_analyzers)} errored" if self.errored_analyzers else ""
        if not self.gates:
            if errored:
                return f"INCOMPLETE: {errored}; {self.judgement} (no gates were set)"
            concern = "CONCERNS" if any(f.severity in ("high", "medium") for f in self.findings) else "NO CONCERNS"
            return f"{concern}: {self.judgement} (no gates were set)"
        counted = [g for g in self.gates if g.status != "n/a"]
        passed = sum(g.status == "pass" for g in counted)
        skipped = len(self.gates) - len(counted)
        note = f" ({skipped} not applicable)" if skipped else ""
        gates = f"{passed} of {len(counted)} gates passed{note}"
        if self.status == "incomplete":
            return f"INCOMPLETE: {errored}; {gates}; {self.judgement}"
        return f"{self.status.upper()}: {gates}; {self.judgement}" + (f"; {errored}" if errored else "")

    def to_dict(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "summary": self.summary,
                "gates": [g.to_dict() for g in self.gates], "errored_analyzers": list(self.errored_analyzers),
                "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class Policy:
    """Gates (the exit code) and the thresholds findings are judged by (the built-in defaults,
    each overridable); `Policy()` is the built-in default policy."""

    gates: tuple[Gate, ...] = ()
    source: str = ""
    analyzers: tuple[str, ...] | None = field(default=None)
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_VALUES))

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        path = Path(path)
        doc = read_toml(path, what="policy file")
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: Mapping, *, source: str = "policy") -> Policy:
        unknown_keys = sorted(set(doc) - {"gates", "thresholds"})
        if unknown_keys:
            raise AuditInputError(f"{source}: unknown section(s) {unknown_keys}; a policy has [gates.\"<metric>\"] "
                                  "and [thresholds]")
        tables = doc.get("gates", {})
        if not isinstance(tables, Mapping):
            raise AuditInputError(f"{source}: gates must be tables, one per metric ([gates.\"<metric>\"]), "
                                  f"found {tables!r}")
        thresholds = _thresholds(doc.get("thresholds", {}), source)
        gates = []
        for metric, spec in tables.items():
            catalogued = find_metric_spec(metric)
            if catalogued is None:
                raise AuditInputError(f"{source}: unknown metric {metric!r} in gates; `audit metrics` lists them")
            if not isinstance(spec, Mapping):
                raise AuditInputError(f"{source}: gate {metric!r} must be a table with min and/or max")
            extra = sorted(set(spec) - set(GATE_KEYS))
            if extra:
                raise AuditInputError(f"{source}: gate {metric!r} has unknown key(s) {extra}; known: {list(GATE_KEYS)}")
            if not {"min", "max", "max_increase", "max_decrease"} & set(spec):
                raise AuditInputError(f"{source}: gate {metric!r} needs min, max, max_increase or max_decrease")
            use = spec.get("use", "value")
            if use not in USES:
                raise AuditInputError(f"{source}: gate {metric!r} has use = {use!r}; expected one of {USES}")
            if use != "value" and not catalogued.interval:
                raise AuditInputError(f"{source}: gate {metric!r} has use = {use!r}, but {metric} has no interval; "
                                      "drop use")
            for key in ("min", "max", "max_increase", "max_decrease"):
                value = spec.get(key, 0.0)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise AuditInputError(f"{source}: gate {metric!r} {key} must be a finite number, found {value!r}")
            if not isinstance(spec.get("if_applicable", False), bool):
                raise AuditInputError(f"{source}: gate {metric!r} if_applicable must be true or false")
            gates.append(Gate(metric, **{k: spec[k] for k in GATE_KEYS if k in spec}))
        return cls(tuple(gates), source, thresholds=thresholds)

    def evaluate(self, run: AuditRun, baseline: AuditRun | None = None) -> Verdict:
        """The verdict on `run`; with a `baseline` (audit compare) change gates apply too. An analyzer that
        errored in either run makes the verdict at best incomplete: never a pass or "no concerns"."""
        errored = tuple(dict.fromkeys(r.analyzer for each in (run, baseline) if each is not None
                                      for r in each.results if r.status == "error"))
        findings = by_severity(f for r in run.results for f in r.findings)
        if not self.gates:
            return Verdict("incomplete" if errored else "ungated", (), errored, findings)
        results = tuple(self._check(gate, run, baseline) for gate in self.gates)
        statuses = {r.status for r in results}
        status = ("error" if "error" in statuses else "fail" if "fail" in statuses else
                  "incomplete" if errored else "pass")
        return Verdict(status, results, errored, findings)

    def _check(self, gate: Gate, run: AuditRun, baseline: AuditRun | None) -> GateResult:
        if gate.on_change and not gate.on_value and baseline is None:
            return GateResult(gate, "n/a", None, f"{gate.metric}: a change gate; it applies in audit compare")
        value, problem = _gate_value(gate, run)
        if problem in (NOT_APPLICABLE, ABSENT) and gate.if_applicable:
            return GateResult(gate, "n/a", None, f"{gate.metric}: {problem}")
        if problem == UNDEFINED:  # the metric applies, but this data gave it no value: never a pass
            return GateResult(gate, "fail", None, f"{gate.metric}: {problem}")
        if problem:
            return GateResult(gate, "error", None, f"{gate.metric}: {problem}; the gate fails closed")
        failures = []
        if gate.min is not None and value < gate.min:
            failures.append(f"below the minimum {gate.min:g}")
        if gate.max is not None and value > gate.max:
            failures.append(f"above the maximum {gate.max:g}")
        base = None
        if gate.on_change and baseline is not None:
            base, problem = _gate_value(gate, baseline)
            if problem:
                return GateResult(gate, "error", value, f"{gate.metric}: in the baseline, {problem}; "
                                  "the gate fails closed")
            change = value - base
            if gate.max_increase is not None and change > gate.max_increase:
                failures.append(f"rose by {change:.4g} from {base:.4g} (at most {gate.max_increase:g})")
            if gate.max_decrease is not None and -change > gate.max_decrease:
                failures.append(f"fell by {-change:.4g} from {base:.4g} (at most {gate.max_decrease:g})")
        message = f"{gate.describe()}: value {value:.4g} " + ("; ".join(failures) if failures else "passes")
        return GateResult(gate, "fail" if failures else "pass", value, message, base)


def _thresholds(table, source: str) -> dict[str, float]:
    """The default thresholds with a policy's [thresholds] table laid over them."""
    if not isinstance(table, Mapping):
        raise AuditInputError(f"{source}: [thresholds] must be a table of name = number")
    unknown = sorted(set(table) - set(DEFAULT_VALUES))
    if unknown:
        raise AuditInputError(f"{source}: unknown threshold(s) {unknown}; known: {sorted(DEFAULT_VALUES)} "
                              "(`audit policy --default` prints them)")
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AuditInputError(f"{source}: threshold {name} must be a finite number, found {value!r}")
    return {**DEFAULT_VALUES, **{k: float(v) for k, v in table.items()}}


def _gate_value(gate: Gate, run: AuditRun) -> tuple[float | None, str | None]:
    """The number a gate reads from a run, or why there is none."""
    prefix = gate.metric.split(".", 1)[0]
    owner = next((r for r in run.results if r.analyzer_prefix == prefix), None)
    if owner is None:
        return None, "its analyzer did not run"
    if owner.status == "error":
        return None, f"its analyzer errored ({owner.error})"
    if owner.status == "skipped":
        return None, NOT_APPLICABLE
    if gate.use == "value":
        value = owner.metrics.get(gate.metric)
    else:
        interval = owner.intervals.get(gate.metric)
        value = None if interval is None else interval[1 if gate.use == "upper" else 0]
    if value is None:
        return None, ABSENT
    if not math.isfinite(value):
        return None, UNDEFINED
    return float(value), None
