"""Every JUnit file the tests write is checked against tests/junit.xsd (the Jenkins/Ant JUnit format).

Import with `from junit_schema import valid_junit` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.etree import ElementTree as ET

import xmlschema

XSD = Path(__file__).with_name("junit.xsd")


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(XSD)


def valid_junit(source: str | Path) -> ET.Element:
    """The root of a JUnit document (XML text or a file), after asserting it is well-formed and schema-valid."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    root = ET.fromstring(text.encode("utf-8"))  # raises ParseError on characters XML cannot hold
    errors = [str(e.reason) for e in _schema().iter_errors(text)]
    assert errors == [], errors
    return root
