"""The quoting layer of the exporters: every value that lands in a YAML config, a comment, a Markdown README,
a shell line or a file name.

YAML scalars read back as the value they were made from (``yaml_scalar``: Jinja's ``finalize`` for the YAML
templates), one-line comments cannot break out of the comment (``one_line``), Markdown prose cannot open HTML,
links, headings or table cells (``md_text``: the README templates' ``finalize``), code spans cannot be closed
from inside (``md_code``: their ``code`` filter), shell words are quoted (``shell_word``: ``shlex.quote``), and
names from free text are plain ASCII file names (``sanitize_name``).
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from advisor.contract.errors import AdviseError

SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_YAML_PLAIN = re.compile(r"[A-Za-z_./][A-Za-z0-9_./+-]*")


class ExportError(AdviseError):
    """The plan cannot be exported (an unsafe output path, a value with no YAML form). One line."""


class Raw(str):
    """Text a template emits as it is (a comment block), not as a YAML scalar."""


def sanitize_name(text: str, fallback: str = "run") -> str:
    """A file or folder name from free text: lower-case ASCII letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^a-z0-9._-]+", "-", str(text).lower())
    name = re.sub(r"\.{2,}", ".", name).strip("-._")[:64].strip("-._")
    return name or fallback


def one_line(text: Any, limit: int = 120) -> str:
    """User text made safe for a one-line comment: printable characters, whitespace collapsed, cut at ``limit``."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3].rstrip() + "..."


#: what opens a Markdown block when it starts a line: headings, quotes, lists, rules, tables, HTML
_MD_LINE_START = re.compile(r"^(\s*)([#>+*=|-]|\d+[.)])")
_MD_INLINE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "[": "\\[", "]": "\\]", "\\": "\\\\"}


def md_text(value: Any) -> str:
    """A value as inert Markdown prose (Jinja's ``finalize`` for the README templates): no HTML (``<``, ``&``
    become entities), no links, no table cells, no block opened at the start of a line. ``Raw`` passes as is."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return ""
    text = one_line(value, limit=2000) if not isinstance(value, (int, float)) else str(value)
    text = "".join(_MD_INLINE.get(ch, ch) for ch in text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def md_code(value: Any, table: bool = True) -> Raw:
    """A Markdown code span holding ``value`` literally: fenced with more backticks than it holds, table pipes
    escaped (GitHub tables split cells on ``|`` even inside code). ``table=False`` (the ``cmd`` filter) is for a
    command outside a table: there a backslash inside a code span is printed, so ``|`` stays as it is and the
    command copies as it runs."""
    text = one_line(value, limit=2000)
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    body = text.replace("|", chr(92) + "|") if table else text
    return Raw(f"{fence}{pad}{body}{pad}{fence}")


def shell_word(value: Any) -> str:
    """One shell word (``shlex.quote``): a path or id with spaces, ``$(...)`` or quotes stays one inert word."""
    return shlex.quote(str(value))


def yaml_float(x: float) -> str:
    """A float YAML 1.1 (PyYAML) reads back as the same float: it needs a '.' and a signed exponent."""
    if not math.isfinite(x):
        raise ExportError(f"cannot write {x!r} as a training value")
    s = repr(float(x))
    if "e" not in s:
        return s
    mantissa, exponent = s.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}"


def yaml_scalar(value: Any) -> str:
    """The YAML text of a prepared value (Jinja's ``finalize`` for the YAML templates)."""
    import yaml

    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return yaml_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        if _YAML_PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
            return value
        return yaml_quote(value)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _yaml_char(ch: str) -> str:
    code = ord(ch)
    if ch in '"\\':
        return "\\" + ch
    # printable and not a YAML 1.1 line break or BOM (YAML 1.1 spec, 5.1 and 5.4): written as it is
    if 0x20 <= code <= 0x7E or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029)) \
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF) or code >= 0x10000:
        return ch
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def yaml_quote(text: str) -> str:
    """A YAML double-quoted scalar that reads back as ``text`` (escapes per the YAML 1.1 spec, 5.7)."""
    return '"' + "".join(_yaml_char(ch) for ch in text) + '"'
