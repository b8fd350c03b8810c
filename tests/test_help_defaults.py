"""`audit X --help` states the default of every option that has one, and the defaults it states are the code's."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from audit.cli import build_parser
from audit.cli.train import TRAINING_DEFAULTS


def options():
    """(command, action) for every option of every command."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield command, action


def test_every_option_with_a_default_states_it():
    unstated = [f"audit {command} {action.option_strings[0]}" for command, action in options()
                if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in (action.help or "")]
    assert unstated == []


@pytest.mark.parametrize("command", ["report", "compare", "mitigate"])
def test_samples_states_the_analyzers_own_defaults(command):
    from audit.analyzers import ANALYZERS
    from audit.analyzers.robustness.analyzer import DEFAULT_SAMPLES

    help_text = next(a.help for c, a in options() if c == command and a.option_strings == ["--samples"])
    assert "default" in help_text
    for name in ("saliency", "shap", "lime", "explanation_quality"):
        assert f"{name} {ANALYZERS.get(name)().samples}" in help_text
    assert f"robustness {DEFAULT_SAMPLES['tabular']} (text {DEFAULT_SAMPLES['text']})" in help_text
    assert DEFAULT_SAMPLES["image"] == DEFAULT_SAMPLES["tabular"]
    assert f"probe {ANALYZERS.get('fairness')().samples} sentences" in help_text


def test_train_help_states_the_training_defaults():
    from audit.models.training import TrainConfig

    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert TRAINING_DEFAULTS == {name: fields[name] for name in TRAINING_DEFAULTS}
    helps = {a.option_strings[0]: a.help for c, a in options() if c == "train"}
    for name, value in TRAINING_DEFAULTS.items():
        assert re.search(rf"else {value:g}\)", helps[f"--{name.replace('_', '-')}"])
