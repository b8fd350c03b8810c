"""Matplotlib figures rendered to PNG bytes for inlining in reports (no display needed)."""

from __future__ import annotations

import io
import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from audit.core.result import Figure  # noqa: E402


# Names and texts from data are drawn as they are: a "$" must not start matplotlib's math mode.
PLAIN_TEXT = {"text.parse_math": False}
# A character the fonts lack (a hostile group name) is drawn as a box, which says enough: no warning on stderr.
MISSING_GLYPH = r"Glyph \d+ \((?s:.)*\) missing from font"


def wrapped(name, width: int) -> str:
    """A group, feature or class name on lines of at most `width` characters: shown whole, never cut."""
    return "\n".join(textwrap.wrap(str(name), width) or [""])


def new_figure(width: float = 5.0, height: float = 3.6, **kwargs):
    return plt.subplots(figsize=(width, height), **kwargs)


def to_figure(fig, *, title: str, caption: str, gallery: bool = False) -> Figure:
    """Render and close `fig`; `gallery`: per-example panels, which a report shows folded."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MISSING_GLYPH, category=UserWarning)
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Figure(title=title, caption=caption, png=buf.getvalue(), gallery=gallery)
