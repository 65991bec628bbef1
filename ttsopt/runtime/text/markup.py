"""SSML-looking markup in the text to speak: removed before cutting, so it is never read aloud.

Clients built for cloud TTS send ``<speak>Hello <break time="500ms"/> world.</speak>``; the official front end
would read "speak Hello break time five hundred m s world". ttsopt does not interpret SSML: tags are removed
(with a note once per text), a ``<break>`` and the end of a ``<p>`` or ``<s>`` become a sentence end (so the
pause between sentences falls there) and XML entities (``&amp;``) are decoded. Text without tags is left as it
is, so plain text stays exactly what the official front end gets.
"""

from __future__ import annotations

import html
import logging
import re

log = logging.getLogger("ttsopt")

# A tag as XML writes it: <name>, </name>, <name/>, <name attr="v" ...>; "a < b" or "<3" are not tags.
_TAG = re.compile(r"""<\s*(?P<close>/)?\s*(?P<name>[A-Za-z][\w:.-]*)(?:\s+[\w:.-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'))*\s*/?\s*>""")
# Tags whose place is a sentence boundary.
_BOUNDARY = {"break", "p", "s", "paragraph", "sentence"}


def strip_markup(text: str, closing: str) -> str:
    """``text`` without its tags; ``closing`` (the language's sentence mark) where a tag is a boundary."""
    names: list[str] = []

    def replace(match: re.Match) -> str:
        name = match["name"].lower().rpartition(":")[2]
        names.append(name)
        if name == "break" or (match["close"] and name in _BOUNDARY):
            return "\x00"
        return ""

    stripped = _TAG.sub(replace, text)
    if not names:
        return text
    stripped = re.sub(r"\s*\x00[\s\x00]*", closing + " ", stripped).strip()
    log.warning("SSML is not interpreted: %d tag(s) removed (%s)%s", len(names), ", ".join(sorted(set(names))),
                "; <break> taken as a sentence end" if "break" in names else "")
    return html.unescape(stripped)
