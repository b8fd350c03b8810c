"""Gates on metric names, read from TOML, and the verdict they give a run.

    [gates."fairness.demographic_parity_difference"]
    max = 0.1
    use = "upper"      # "value" (default), "upper" or "lower" bound of the interval

Exit codes: 0 every gate passes (or no gates), 1 a gate failed, 3 a gate could not be
evaluated because its analyzer errored or did not run (fail closed).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from audit.analyzers.base import ANALYZERS, MetricSpec
from audit.errors import AuditInputError

if TYPE_CHECKING:
    from audit.runner import AuditRun

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
USES = ("value", "upper", "lower")


def metric_catalog() -> dict[str, MetricSpec]:
    """Every gateable metric of every registered analyzer (names may hold <placeholders>)."""
    return {name: spec for cls in ANALYZERS.classes() for name, spec in cls.metrics.items()}


def find_metric_spec(name: str) -> MetricSpec | None:
    for pattern, spec in metric_catalog().items():
        regex = re.sub(r"<[^>]+>", r"[^.]+", re.escape(pattern).replace(r"\<", "<").replace(r"\>", ">"))
        if re.fullmatch(regex, name):
            return spec
    return None


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max: float | None = None
    use: str = "value"

    def describe(self) -> str:
        bound = " and ".join(
            s for s in (f">= {self.min:g}" if self.min is not None else "",
                        f"<= {self.max:g}" if self.max is not None else "") if s)
        what = self.metric if self.use == "value" else f"{self.use} bound of {self.metric}"
        return f"{what} {bound}"


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    status: str  # "pass", "fail" or "error"
    value: float | None
    message: str

    def to_dict(self) -> dict:
        return {"metric": self.gate.metric, "use": self.gate.use, "min": self.gate.min, "max": self.gate.max,
                "status": self.status, "value": self.value, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    status: str  # "pass", "fail", "error" or "ungated"
    gates: tuple[GateResult, ...] = ()
    errored_analyzers: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return {"fail": EXIT_FAIL, "error": EXIT_ERROR}.get(self.status, EXIT_PASS)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if g.status != "pass")

    @property
    def summary(self) -> str:
        if self.status == "ungated":
            note = f"; analyzers that errored: {', '.join(self.errored_analyzers)}" if self.errored_analyzers else ""
            return f"no gates were set{note}"
        passed = sum(g.status == "pass" for g in self.gates)
        return f"{self.status.upper()}: {passed} of {len(self.gates)} gates passed"

    def to_dict(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "summary": self.summary,
                "gates": [g.to_dict() for g in self.gates], "errored_analyzers": list(self.errored_analyzers)}


@dataclass(frozen=True)
class Policy:
    gates: tuple[Gate, ...] = ()
    source: str = ""
    analyzers: tuple[str, ...] | None = field(default=None)

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        path = Path(path)
        if not path.is_file():
            raise AuditInputError(f"{path}: no such policy file")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AuditInputError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: Mapping, *, source: str = "policy") -> Policy:
        unknown_keys = sorted(set(doc) - {"gates"})
        if unknown_keys:
            raise AuditInputError(f"{source}: unknown section(s) {unknown_keys}; a policy has [gates.\"<metric>\"]")
        gates = []
        for metric, spec in doc.get("gates", {}).items():
            if find_metric_spec(metric) is None:
                raise AuditInputError(f"{source}: unknown metric {metric!r} in gates; `audit metrics` lists them")
            if not isinstance(spec, Mapping):
                raise AuditInputError(f"{source}: gate {metric!r} must be a table with min and/or max")
            extra = sorted(set(spec) - {"min", "max", "use"})
            if extra:
                raise AuditInputError(f"{source}: gate {metric!r} has unknown key(s) {extra}; use min, max, use")
            if "min" not in spec and "max" not in spec:
                raise AuditInputError(f"{source}: gate {metric!r} needs min or max")
            use = spec.get("use", "value")
            if use not in USES:
                raise AuditInputError(f"{source}: gate {metric!r} has use = {use!r}; expected one of {USES}")
            for key in ("min", "max"):
                if key in spec and not isinstance(spec[key], (int, float)):
                    raise AuditInputError(f"{source}: gate {metric!r} {key} must be a number, found {spec[key]!r}")
            gates.append(Gate(metric, spec.get("min"), spec.get("max"), use))
        return cls(tuple(gates), source)

    def evaluate(self, run: AuditRun) -> Verdict:
        errored = tuple(r.analyzer for r in run.results if r.status == "error")
        if not self.gates:
            return Verdict("ungated", (), errored)
        results = tuple(self._check(gate, run) for gate in self.gates)
        statuses = {r.status for r in results}
        status = "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"
        return Verdict(status, results, errored)

    def _check(self, gate: Gate, run: AuditRun) -> GateResult:
        prefix = gate.metric.split(".", 1)[0]
        owner = next((r for r in run.results if r.analyzer_prefix == prefix), None)
        if owner is None or owner.status != "ok":
            why = "did not run" if owner is None else (
                f"errored: {owner.error}" if owner.status == "error" else "was skipped")
            return GateResult(gate, "error", None, f"{gate.metric}: its analyzer {why}; the gate fails closed")
        if gate.use == "value":
            value = owner.metrics.get(gate.metric)
        else:
            interval = owner.intervals.get(gate.metric)
            value = None if interval is None else interval[1 if gate.use == "upper" else 0]
        if value is None or not math.isfinite(value):
            return GateResult(gate, "error", None,
                              f"{gate.metric}: no {'value' if gate.use == 'value' else 'interval'} in this run; "
                              "the gate fails closed")
        ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
        message = f"{gate.describe()}: value {value:.4g} {'passes' if ok else 'fails'}"
        return GateResult(gate, "pass" if ok else "fail", float(value), message)
