"""Characters that must not reach a terminal, a file header or a one-line value raw, in one place.

C0 and C1 controls and DEL (escape sequences, carriage returns), the bidirectional formatting characters (U+061C,
U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: "Trojan Source", CVE-2021-42574) and the line and paragraph
separators (U+2028, U+2029). Contracts refuse them in names and texts (``PLAIN_PATTERN``); what is printed shows
them as escapes (``escape_unsafe``).
"""

from __future__ import annotations

import re

#: the characters, as a regex class body (escapes, so it also serves as a pydantic ``pattern``)
UNSAFE_CLASS = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
#: a value with none of them (pydantic ``pattern``)
PLAIN_PATTERN = f"^[^{UNSAFE_CLASS}]*$"
#: a multi-line text: tabs and line feeds allowed, nothing else of the class
TEXT_PATTERN = "^[^" + UNSAFE_CLASS.replace(r"\x00-\x1f", r"\x00-\x08\x0b-\x1f") + "]*$"
#: the class plus lone surrogates (JSON escapes can spell them; they do not encode), for escaping
UNSAFE = re.compile(f"[{UNSAFE_CLASS}\\ud800-\\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_unsafe(text: str, keep: str = "") -> str:
    """``text`` with every unsafe character (except those in ``keep``) shown as its escape: ``\\x1b``, ``\\u202e``,
    ``\\n``. Text with none comes back unchanged."""

    def one(m: re.Match[str]) -> str:
        c = m.group()
        if c in keep:
            return c
        o = ord(c)
        return _NAMED.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")

    return UNSAFE.sub(one, text)
