"""MLflow tracking of an audit: one MLflow run per audited model, with its parameters (model and data hashes, seed,
analyzers and their options, policy), every metric of its JSON with `_lower`/`_upper` for its interval, the verdict
and finding counts as tags and its documents as artifacts; a comparison as a parent run with one child run per model.

MLflow is an optional extra, imported here only when a tracker opens. Its keys allow letters, digits and a few
marks only: a metric or column name from data is mapped by `tracking_key`, and `tracking_keys.json` holds the names
that needed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from audit._util.distribution import install_hint
from audit._util.errors import AuditInputError
from audit.report.ci import render_compare_markdown, render_markdown

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from audit.executor.compare import Comparison
    from audit.executor.runner import AuditRun

# MLflow's limits (mlflow.utils.validation): key length, parameter and tag value lengths.
KEY_LENGTH, PARAM_LENGTH, TAG_LENGTH = 250, 6000, 8000
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.\-]")
# A tracking URI without a scheme that is not a path: MLflow's names for a Databricks workspace.
_NAMED_STORES = ("databricks", "databricks-uc", "uc")
SEVERITIES = ("high", "medium", "low", "info")
GATE_STATUS = {"pass": "passed", "fail": "failed", "error": "error", "n/a": "not_applicable"}
# The names whose keys `tracking_key` changed: key -> name.
KEYS_ARTIFACT = "tracking_keys.json"


def tracking_key(name: str, suffix: str = "") -> str:
    """The MLflow key of `name` followed by `suffix`: letters, digits, `_`, `.` and `-` are kept, any other
    character becomes `_`, leading dots go; a name that needed any change, or that is too long, ends in a digest
    of itself, so that two such names do not share a key."""
    key = _UNSAFE_KEY.sub("_", name).lstrip(".")
    if key and key == name and len(key) + len(suffix) <= KEY_LENGTH:
        return key + suffix
    digest = hashlib.sha256(name.encode("utf-8", "backslashreplace")).hexdigest()[:10]
    return f"{key[:KEY_LENGTH - len(suffix) - len(digest) - 1]}-{digest}{suffix}"


def import_mlflow():
    """The `mlflow` module, or one line saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise AuditInputError(f"MLflow tracking needs MLflow, which is not installed: {install_hint('mlflow')}") \
            from None
    return mlflow


def tracking_uri(uri: str | None = None) -> str:
    """`uri`, else MLflow's own (`MLFLOW_TRACKING_URI`, else its default); a plain directory path becomes a
    `file://` URI of the absolute path, so that runs and their artifacts land where it names."""
    uri = str(uri) if uri is not None else import_mlflow().get_tracking_uri()
    if not urlparse(uri).scheme and uri not in _NAMED_STORES:
        return Path(uri).expanduser().resolve().as_uri()
    return uri


@dataclass(frozen=True)
class Tracker:
    """An open MLflow experiment that audits are logged to (`Tracker.open`)."""

    client: MlflowClient
    uri: str
    experiment_id: str
    experiment: str

    @classmethod
    def open(cls, uri: str | None = None, experiment: str | None = None) -> Tracker:
        """The experiment named `experiment` (default: `MLFLOW_EXPERIMENT_NAME`, else MLflow's "Default"),
        created if it does not exist, in the store at `uri` (`tracking_uri`). A file store, which MLflow 3 only
        opens when asked to, is opened: the user named a directory. Anything that fails is one line."""
        mlflow = import_mlflow()
        from mlflow.exceptions import MlflowException

        uri = tracking_uri(uri)
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
        with _store_opened(uri), _one_line(f"MLflow store {uri}", MlflowException, ImportError):
            client = mlflow.MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(name)
            if found is not None and found.lifecycle_stage == "deleted":
                raise AuditInputError(f"MLflow experiment {name!r} is deleted: restore it or name another")
            experiment_id = found.experiment_id if found else client.create_experiment(name)
        return cls(client, uri, experiment_id, name)

    def log_run(self, run: AuditRun, *, name: str | None = None, parent: str | None = None,
                tags: Mapping[str, str] | None = None, intended_use: str | None = None,
                out_of_scope: str | None = None) -> str:
        """One MLflow run of `run` (a child of the run `parent`, when given); its id. The model card carries
        `intended_use` and `out_of_scope`."""
        document = run.to_dict()
        artifacts = {"report.html": run.render_html, "audit.json": run.to_json,
                     "summary.md": lambda: render_markdown(run),
                     "model_card.md": lambda: run.to_model_card(intended_use=intended_use, out_of_scope=out_of_scope),
                     "evidence.md": lambda: run.to_evidence().to_markdown()}
        return self._log(name or _model_name(document["model"]), parent=parent, params=run_params(document),
                         metrics=run_metrics(document), tags={**run_tags(document["verdict"]), **(tags or {})},
                         artifacts=artifacts)

    def log_comparison(self, comparison: Comparison, *, labels: tuple[str, str] = ("baseline", "candidate"),
                       name: str | None = None, tags: Mapping[str, str] | None = None, intended_use: str | None = None,
                       out_of_scope: str | None = None) -> str:
        """A parent run of `comparison` (its verdict, the failed gates told apart, its HTML, JSON and Markdown)
        with one child run per model, named by `labels`; the parent's id."""
        document = comparison.to_dict()
        models = {label: doc["model"] for label, doc in zip(labels, (document["baseline"], document["candidate"]))}
        params = {k: v for k, v in run_params(document["candidate"]).items() if not k.startswith("model.")}
        params.update({f"{label}.{k}": v for label, model in models.items() for k, v in _model_params(model).items()})
        failures = document["failures"]
        verdict_tags = {**run_tags(document["verdict"]), "audit.gates.newly_failed": str(len(failures["new"])),
                        "audit.gates.failed_as_baseline": str(len(failures["as_baseline"]))}
        artifacts = {"compare.html": comparison.render_html, "compare.json": comparison.to_json,
                     "summary.md": lambda: render_compare_markdown(comparison)}
        shown = name or " vs ".join(_model_name(model) for model in models.values())
        parent = self._log(shown, parent=None, params=params, metrics={}, tags={**verdict_tags, **(tags or {})},
                           artifacts=artifacts)
        for label, audited in zip(labels, (comparison.baseline, comparison.candidate)):
            self.log_run(audited, name=label, parent=parent, tags={"audit.role": label}, intended_use=intended_use,
                         out_of_scope=out_of_scope)
        return parent

    def _log(self, name: str, *, parent: str | None, params: Mapping[str, object],
             metrics: Mapping[tuple[str, str], float], tags: Mapping[str, str],
             artifacts: Mapping[str, Callable[[], str]]) -> str:
        """One MLflow run; what fails is one line, and the run is marked failed."""
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        stamp = int(time.time() * 1000)
        keyed = {tracking_key(metric, suffix): (metric + suffix, value) for (metric, suffix), value in metrics.items()}
        keyed_params = {tracking_key(param): (param, _text(value)) for param, value in params.items()
                        if value is not None and value != ""}
        renamed = {key: original for key, (original, _) in (keyed | keyed_params).items() if key != original}
        tags = {**tags, **({MLFLOW_PARENT_RUN_ID: parent} if parent else {})}
        with _store_opened(self.uri), _one_line(f"MLflow store {self.uri}", MlflowException):
            run_id = self.client.create_run(self.experiment_id, run_name=_value(name, TAG_LENGTH),
                                            tags={k: _value(v, TAG_LENGTH) for k, v in tags.items()}).info.run_id
            try:
                self.client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, (_, v) in keyed.items()],
                                      params=[Param(k, _value(v, PARAM_LENGTH)) for k, (_, v) in keyed_params.items()])
                if renamed:
                    self.client.log_dict(run_id, renamed, KEYS_ARTIFACT)
                for path, render in artifacts.items():
                    self.client.log_text(run_id, render(), path)
            except BaseException:
                self.client.set_terminated(run_id, "FAILED")
                raise
            self.client.set_terminated(run_id, "FINISHED")
        return run_id


def run_metrics(document: dict) -> dict[tuple[str, str], float]:
    """Every metric of a run's JSON that has a value, as (metric, ""), and each bound of its interval, as
    (metric, "_lower") and (metric, "_upper"): the key is `tracking_key(metric, suffix)`."""
    metrics = {(name, ""): value for name, value in document["metrics"].items() if value is not None}
    for name, bounds in document["intervals"].items():
        metrics.update({(name, suffix): bound for suffix, bound in zip(("_lower", "_upper"), bounds)
                        if bound is not None})
    return metrics


def run_params(document: dict) -> dict[str, object]:
    """What a run of `document` (a run's JSON) is reproduced from: the model and data, the seed, the analyzers
    (each option as `<analyzer>.<option>`, as `--set` takes it), the policy and where it ran."""
    data, provenance = document["data"], document["provenance"]
    params = {**_model_params(document["model"]), "data.name": data.get("name"), "data.sha256": data.get("sha256"),
              "data.rows": data.get("rows"), "data.target": data.get("target"),
              "data.sensitive": ",".join(map(str, data.get("sensitive", []))), "seed": document["seed"],
              "analyzers": ",".join(document["results"]), "policy": provenance.get("policy"),
              "engine": provenance.get("engine"), "device": provenance.get("device")}
    for analyzer, result in document["results"].items():
        params.update({f"{analyzer}.{option}": value for option, value in result["config"].items()})
    return params


def run_tags(verdict: dict) -> dict[str, str]:
    """The verdict of a run's JSON as tags: its status, exit code and summary (also the run's description), the
    gates by status and the findings by severity."""
    tags = {"audit.verdict": verdict["status"], "audit.exit_code": str(verdict["exit_code"]),
            "audit.summary": verdict["summary"], "mlflow.note.content": verdict["summary"]}
    tags.update({f"audit.gates.{word}": str(sum(g["status"] == status for g in verdict["gates"]))
                 for status, word in GATE_STATUS.items()})
    tags.update({f"audit.findings.{severity}": str(sum(f["severity"] == severity for f in verdict["findings"]))
                 for severity in SEVERITIES})
    if verdict["errored_analyzers"]:
        tags["audit.errored_analyzers"] = ",".join(verdict["errored_analyzers"])
    return tags


def _model_params(model: dict) -> dict[str, object]:
    return {f"model.{k}": model.get(k) for k in ("path", "sha256", "architecture", "modality")}


def _model_name(model: dict) -> str:
    """The file name of the model (its path is a parameter), else its architecture."""
    return Path(model["path"]).name if model.get("path") else str(model.get("architecture") or "model")


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _value(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@contextlib.contextmanager
def _one_line(what: str, *errors: type[BaseException]) -> Iterator[None]:
    """`errors` (and OSError) raised inside as one `AuditInputError` line: `what`, then the first line."""
    try:
        yield
    except (*errors, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuditInputError(f"{what}: {first}") from None


@contextlib.contextmanager
def _store_opened(uri: str) -> Iterator[None]:
    """MLflow 3 opens a file store only with `MLFLOW_ALLOW_FILE_STORE` set: set while a file store is used."""
    if urlparse(uri).scheme != "file":
        yield
        return
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_ALLOW_FILE_STORE"]
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before
