"""Escaping per output format, for every string that comes from data, a model or a file name.

HTML escaping is jinja2's autoescape (`audit.report.html`); this module holds the other two:
Markdown, where data must stay inert text, and XML, where some characters cannot appear at all.
"""

from __future__ import annotations

import re

_ASCII_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_BACKTICK_RUNS = re.compile(r"`+")
# XML 1.0 `Char`: tab, newline, carriage return, and the rest of Unicode but other C0 controls,
# surrogates (a non-UTF-8 file name decodes to those) and U+FFFE/U+FFFF.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def markdown_inert(text: object, *, code: bool = False) -> str:
    """`text` as GitHub-flavoured Markdown that renders as exactly that text and nothing else.

    No image, link, autolink, HTML, emphasis or heading can come out of it, it does not end a
    table cell, and line breaks become spaces so it stays on its row. By default every ASCII
    punctuation character is backslash-escaped (which also splits every URL, domain and e-mail
    address, so no autolinker sees one). With `code=True` it is an inline code span instead,
    shown verbatim (`>=` stays `>=`); its pipes are escaped for a table cell, where GFM turns
    `\\|` back into `|`, so use code spans for data inside tables.
    """
    text = _LINE_BREAKS.sub(" ", str(text))
    if not code:
        return _ASCII_PUNCTUATION.sub(r"\\\1", text)
    if not text:
        return ""
    if "\\|" in text:  # cmark-gfm would read that backslash as escaping the pipe we escape: no span
        return markdown_inert(text)
    fence = "`" * (max((len(run) for run in _BACKTICK_RUNS.findall(text)), default=0) + 1)
    # CommonMark strips one space from each end of a code span that has both, and a span that
    # starts or ends with a backtick needs a space before the fence: pad in both cases.
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def xml_text(text: object) -> str:
    """`text` with the characters XML 1.0 cannot hold (control characters, surrogates) replaced by U+FFFD."""
    return _XML_INVALID.sub("\ufffd", str(text))
