"""Output methods shared by the documents a run produces (`AuditRun`, `Comparison`)."""

from __future__ import annotations

import json
from pathlib import Path

from audit._util.files import write_text_atomic


class Document:
    """A document renders to JSON and to self-contained HTML; subclasses give `to_dict` and `render_html`."""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def render_html(self, *, standalone: bool = True) -> str:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save_json(self, path: str | Path) -> Path:
        return write_text_atomic(path, self.to_json())

    def save_html(self, path: str | Path) -> Path:
        return write_text_atomic(path, self.render_html())

    def _repr_html_(self) -> str:
        return self.render_html(standalone=False)
