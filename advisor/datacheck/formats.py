"""The dataset formats ``advise data check`` reads, and the validation of one JSONL line of each.

* ``sft``  chat: ``{"messages": [{"role", "content"}, ...]}``, optionally ``"tools": [...]``
* ``dpo``  preference: ``{"prompt", "chosen", "rejected"}``, three strings or three message lists
* ``kto``  unpaired preference: ``{"prompt", "completion", "label": true|false}``, strings or message lists
* ``text`` raw text for continued pre-training: ``{"text"}``

``validate(obj, kind, problems)`` appends every problem of a line (a code and a reason that names the field and
what to do) and returns what a valid line contributes (``Example``). Messages quote values short and on one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advisor.contract.text import escape_unsafe
from advisor.contract.vocab import DATA_KINDS

KINDS = tuple(DATA_KINDS)
#: Required and optional top-level keys per kind.
KIND_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sft": (("messages",), ("tools",)),
    "dpo": (("prompt", "chosen", "rejected"), ()),
    "kto": (("prompt", "completion", "label"), ()),
    "text": (("text",), ()),
}
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content")
MESSAGE_OPTIONAL_KEYS = ("name", "tool_calls", "tool_call_id")
#: recognisable lines read to detect the kind when --kind is not given
DETECT_LINES = 1000
NORMALISATION = "case-folded, punctuation and symbols removed, whitespace collapsed"
#: The longest line parsed, in bytes (its line ending not counted); a longer line is a ``line_too_long`` problem,
#: read past in SKIP_CHUNK_BYTES pieces, never held. Parsing a line holds many times its size at the peak (its
#: bytes, its text, the parsed objects, the normalised text): ~5x for a line of text, up to ~25x for millions of
#: empty objects (measured: ~240 MiB at an 8 MiB cap), so this cap is what bounds the memory of a check on a
#: hostile file (one 1 GB line took 13 GB, a 200 MiB one 4.6 GiB). 4 MiB keeps that worst case near 130 MiB and is
#: still far above any example a trainer can use: the longest context in the catalog, 131,072 tokens, is ~0.5 MiB
#: of English at ~4 characters per token and ~1.2 MiB of CJK written with JSON \u escapes (6 bytes a character);
#: a DPO line holds a prompt and two answers that each fit that context with it (~2.3 MiB at most). A
#: continued-pre-training document over 4 MiB belongs on several lines (trainers cut it to the sequence length).
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_LINE_MIB = MAX_LINE_BYTES // (1024 * 1024)
#: the piece size in which the rest of a too-long line is read and dropped
SKIP_CHUNK_BYTES = 1024 * 1024
#: problems reported for one line (one message list of 3 million bad turns is one line's worth of reading); the
#: rest of the line is then left unchecked, and the line is invalid anyway
MAX_PROBLEMS_PER_LINE = 20
#: keys named in one message (a line can hold millions of extra keys)
MAX_KEYS_NAMED = 8
_PUNCT = re.compile(r"[^\w\s\x00]|_")
_ASCII_PUNCT = str.maketrans({chr(i): None for i in range(128) if _PUNCT.match(chr(i))})


def read_lines(path: Path) -> Iterator[tuple[int, bytes | int]]:
    """``(line number, line without its line ending)``; for a line longer than ``MAX_LINE_BYTES``, its length in
    bytes (an int) instead of its bytes: the rest of it is skipped in ``SKIP_CHUNK_BYTES`` pieces, never held."""
    with open(path, "rb") as f:
        n = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 2)  # the cap, and room for "\r\n"
            if not raw:
                return
            n += 1
            if len(raw) == MAX_LINE_BYTES + 2 and not raw.endswith(b"\n"):  # longer than the cap: skip the rest
                length, tail = len(raw), raw[-2:]
                del raw
                while True:
                    piece = f.readline(SKIP_CHUNK_BYTES)
                    length += len(piece)
                    tail = (tail + piece)[-2:]
                    if not piece or piece.endswith(b"\n"):
                        break
                yield n, length - (2 if tail == b"\r\n" else 1 if tail.endswith(b"\n") else 0)
                continue
            line = raw.rstrip(b"\r\n")
            yield n, (line if len(line) <= MAX_LINE_BYTES else len(line))


def kind_of(obj: dict[str, Any]) -> str | None:
    """The kind a JSON object's keys point to (None when they point to none)."""
    if "messages" in obj:
        return "sft"
    if "chosen" in obj or "rejected" in obj:
        return "dpo"
    if "completion" in obj or "label" in obj:
        return "kto"
    if "text" in obj:
        return "text"
    return None


def detect_kind(path: Path) -> str | None:
    """The most common kind among the first DETECT_LINES recognisable lines (ties: the earliest)."""
    counts: dict[str, list[int]] = {}
    seen = 0
    for n, line in read_lines(path):
        if isinstance(line, int):  # longer than MAX_LINE_BYTES: not parsed
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        k = kind_of(obj) if isinstance(obj, dict) else None
        if k is None:
            continue
        counts.setdefault(k, [0, n])[0] += 1
        seen += 1
        if seen >= DETECT_LINES:
            break
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k][0], counts[k][1]))


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def article(kind: str) -> str:
    return f"an {kind}" if kind == "sft" else f"a {kind}"


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def terminal_safe(text: str) -> str:
    """Text bound for a terminal (``advisor.contract.text.escape_unsafe``): controls, DEL, bidi overrides and
    isolates, line separators and lone surrogates become ``\\x1b`` / ``\\u202e`` style escapes; text that is
    already safe, such as ``show``'s output, comes back unchanged."""
    return escape_unsafe(text)


def show(text: Any, limit: int = 40) -> str:
    """A value from the data, on one line, short and terminal-safe, for a message (backslashes and double quotes
    escaped as in JSON, then ``terminal_safe``). Every value of the file that a message quotes goes through here."""
    text = text if isinstance(text, str) else str(text)
    s = terminal_safe(text[:limit].replace("\\", "\\\\").replace('"', '\\"'))  # escapes only lengthen it
    return s if len(s) <= limit and len(text) <= limit else s[: limit - 3] + "..."


def quoted(keys: Any, limit: int = MAX_KEYS_NAMED) -> str:
    keys = list(keys)
    named = ", ".join(f"'{show(k)}'" for k in keys[:limit])
    return named + (f" and {len(keys) - limit:,} more" if len(keys) > limit else "")


class DuplicateKeyError(ValueError):
    """A JSON object of the line names a key twice (Python's json would silently keep the last value)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class NonStandardNumberError(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON (RFC 8259) does not have them."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKeyError(k)
            seen.add(k)
    return obj


def _no_constant(literal: str) -> Any:
    raise NonStandardNumberError(literal)


# one decoder for every line (json.loads with hooks builds a new one per call: twice the parse time)
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def loads_strict(text: str) -> Any:
    """Standard JSON only: a duplicate key raises ``DuplicateKeyError``, NaN/Infinity ``NonStandardNumberError``;
    otherwise as ``json.loads`` (``ValueError`` on bad JSON, ``RecursionError`` on deep nesting)."""
    return _STRICT_DECODER.decode(text)


class Example:
    """What a valid line contributes: text segments, token plan, chat facts."""

    __slots__ = (
        "answer",
        "has_system",
        "has_tools",
        "kto_label",
        "n_assistant",
        "n_messages",
        "segments",
        "sequences",
    )

    def __init__(self) -> None:
        self.segments: list[str] = []  # texts, in order, for near-duplicate hashing
        # one entry per sequence the trainer builds: ("chat", messages, tools) | ("plain", [texts]) | ("text", t)
        self.sequences: list[tuple[Any, ...]] = []
        self.n_messages = 0
        self.n_assistant = 0
        self.has_system = False
        self.has_tools = False
        self.answer: str | None = None
        self.kto_label: bool | None = None


def _check_messages(value: Any, field: str, mode: str, out: list[tuple[str, str]]) -> list[dict] | None:
    """Check a message list. ``mode``: "full" (a whole conversation), "prompt" (ends on a user turn) or
    "completion" (assistant turns only, following a prompt). Appends problems; returns the list when valid."""
    if not isinstance(value, list):
        out.append(("wrong_type", f"'{field}' must be a list of messages, got {type_name(value)}"))
        return None
    if not value:
        out.append(("empty_content", f"'{field}' is an empty list; give at least one message"))
        return None
    start = len(out)
    roles: list[str | None] = []
    for i, m in enumerate(value):
        if len(out) - start >= MAX_PROBLEMS_PER_LINE:
            out.append(("too_many_problems", (f"{field}[{i}:] not checked: the line already has "
                        f"{MAX_PROBLEMS_PER_LINE} problems; fix those first")))
            return None
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            out.append(("wrong_type", f"{where} must be an object with 'role' and 'content', got {type_name(m)}"))
            roles.append(None)
            continue
        role = m.get("role")
        has_calls = "tool_calls" in m
        missing = [k for k in MESSAGE_KEYS if k not in m and not (k == "content" and has_calls)]
        if missing:
            out.append(("missing_key", f"{where} has no {quoted(missing)}"))
        extra = sorted(k for k in m if k not in MESSAGE_KEYS and k not in MESSAGE_OPTIONAL_KEYS)
        if extra:
            out.append(("extra_key", (f"{where} has extra key{'s' if len(extra) > 1 else ''} {quoted(extra)} "
                        f"(a message holds role, content and optionally {', '.join(MESSAGE_OPTIONAL_KEYS)}); "
                        "remove them")))
        if "role" in m:
            if not isinstance(role, str):
                out.append(("wrong_type", f"{where}.role must be a string, got {type_name(role)}"))
                role = None
            elif role not in ROLES:
                out.append(("unknown_role", f"{where}.role '{show(role)}' is not one of {', '.join(ROLES)}"))
                role = None
        roles.append(role)
        content = m.get("content")
        if has_calls:
            calls = m["tool_calls"]
            if role is not None and role != "assistant":
                out.append(("role_order", (f"{where} is a {role} turn with tool_calls; only assistant turns call "
                            "tools")))
            if not isinstance(calls, list) or not calls or not all(isinstance(c, dict) for c in calls):
                out.append(("wrong_type", (f"{where}.tool_calls must be a non-empty list of objects, got "
                            f"{type_name(calls)}")))
            if content is not None and not isinstance(content, str):
                out.append(("wrong_type", f"{where}.content must be a string or null, got {type_name(content)}"))
        elif "content" in m:
            if not isinstance(content, str):
                out.append(("wrong_type", f"{where}.content must be a string, got {type_name(content)}"))
            elif not content.strip():
                who = f" ({role})" if role else ""
                out.append(("empty_content", f"{where}.content{who} is empty; remove the turn or fill it in"))
        for k in ("name", "tool_call_id"):
            if k in m and not isinstance(m[k], str):
                out.append(("wrong_type", f"{where}.{k} must be a string, got {type_name(m[k])}"))
    if len(out) > start:
        return None
    _check_order(roles, field, mode, out)  # all roles are valid here
    return None if len(out) > start else value


def _check_order(roles: list[Any], field: str, mode: str, out: list[tuple[str, str]]) -> None:
    prev: str | None = None
    for i, role in enumerate(roles):
        where = f"{field}[{i}]"
        if mode == "completion":
            if role not in ("assistant", "tool"):
                out.append(("role_order", (f"{where} is a {role} turn; '{field}' holds only the answer "
                            "(assistant turns), the conversation before it goes in 'prompt'")))
                return
            if i == 0 and role != "assistant":
                out.append(("role_order", f"{where} is a tool turn; '{field}' starts with the assistant's turn"))
                return
        if role == "system" and i > 0:
            out.append(("role_order", (f"{where} is a system turn after the first turn; the system message "
                        "must come first")))
            return
        if role == "assistant" and prev in (None, "system") and mode != "completion":
            out.append(("role_order", (f"{where} is an assistant turn before any user turn; start the "
                        "conversation with a user turn")))
            return
        if role == "tool" and prev not in ("assistant", "tool") and not (mode == "completion" and i > 0):
            out.append(("role_order", f"{where} is a tool turn that does not follow an assistant turn"))
            return
        if role == prev and role in ("user", "assistant"):
            out.append(("role_order", (f"{field}[{i - 1}] and {where} are both {role} turns; roles must "
                        "alternate (merge them, or add the missing turn between them)")))
            return
        prev = role
    if mode == "full":
        if "assistant" not in roles:
            out.append(("no_assistant_turn", (f"'{field}' has no assistant turn: nothing to learn from; add the "
                        "answer")))
        elif prev == "user":
            out.append(("role_order", (f"'{field}' ends on a user turn ({field}[{len(roles) - 1}]); end on the "
                        "assistant's answer")))
    elif mode == "prompt":
        if prev != "user":
            out.append(("role_order", (f"'{field}' ends on a {prev} turn; a prompt ends on the user turn the "
                        "answer replies to")))
    elif "assistant" not in roles:
        out.append(("no_assistant_turn", f"'{field}' has no assistant turn"))


def _message_segments(msgs: list[dict], ex: Example) -> int:
    """Add a valid message list's texts to ``ex``; return their characters."""
    chars = 0
    for m in msgs:
        role = m["role"]
        c = m.get("content") or ""
        ex.segments.append(role)
        ex.segments.append(c)
        chars += len(c)
        if "tool_calls" in m:
            calls = json.dumps(m["tool_calls"], sort_keys=True, ensure_ascii=False)
            ex.segments.append(calls)
            chars += len(calls)
        ex.n_messages += 1
        if role == "assistant":
            ex.n_assistant += 1
        elif role == "system":
            ex.has_system = True
    return chars


def _check_keys(obj: dict[str, Any], kind: str, out: list[tuple[str, str]]) -> bool:
    required, optional = KIND_KEYS[kind]
    missing = [k for k in required if k not in obj]
    if missing:
        out.append(("missing_key", (f"missing key{'s' if len(missing) > 1 else ''} {quoted(missing)} "
                    f"({article(kind)} line holds {quoted(required)})")))
    extra = sorted(k for k in obj if k not in required and k not in optional)
    if extra:
        allowed = quoted(required) + (f" and optionally {quoted(optional)}" if optional else "")
        out.append(("extra_key", (f"extra key{'s' if len(extra) > 1 else ''} {quoted(extra)} ({article(kind)} line "
                    f"holds {allowed}); remove them")))
    return not missing


def validate(obj: dict[str, Any], kind: str, out: list[tuple[str, str]]) -> Example | None:
    start = len(out)
    if not _check_keys(obj, kind, out):
        return None
    ex = Example()
    if kind == "sft":
        msgs = _check_messages(obj["messages"], "messages", "full", out)
        tools = obj.get("tools")
        if "tools" in obj and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
            out.append(("wrong_type", f"'tools' must be a list of tool definitions (objects), got {type_name(tools)}"))
        if msgs is None or len(out) > start:
            return None
        _message_segments(msgs, ex)
        if tools:
            ex.has_tools = True
            ex.segments.append(json.dumps(tools, sort_keys=True, ensure_ascii=False))
        last = next((m for m in reversed(msgs) if m["role"] == "assistant"), None)
        ex.answer = last.get("content") if last is not None and "tool_calls" not in last else None
        ex.sequences.append(("chat", msgs, tools or None))
        return ex
    if kind == "text":
        t = obj["text"]
        if not isinstance(t, str):
            out.append(("wrong_type", f"'text' must be a string, got {type_name(t)}"))
        elif not t.strip():
            out.append(("empty_content", "'text' is empty; remove the line or fill it in"))
        if len(out) > start:
            return None
        ex.segments.append(t)
        ex.sequences.append(("text", t))
        return ex
    # dpo and kto: a prompt and one or two completions, all strings or all message lists
    answers = ("chosen", "rejected") if kind == "dpo" else ("completion",)
    fields = ("prompt", *answers)
    conversational = isinstance(obj["prompt"], list)
    for f in fields:
        v = obj[f]
        if isinstance(v, list) != conversational and isinstance(v, (str, list)):
            first = "a message list" if conversational else "a string"
            out.append(("wrong_type", (f"'prompt' is {first} but '{f}' is {type_name(v)}; give "
                        f"{quoted(fields)} in the same form (all strings or all message lists)")))
            return None
    if conversational:
        _check_messages(obj["prompt"], "prompt", "prompt", out)
        for f in answers:
            _check_messages(obj[f], f, "completion", out)
    else:
        for f in fields:
            v = obj[f]
            if not isinstance(v, str):
                out.append(("wrong_type", f"'{f}' must be a string or a list of messages, got {type_name(v)}"))
            elif not v.strip():
                out.append(("empty_content", f"'{f}' is empty; fill it in or remove the line"))
    if kind == "dpo" and len(out) == start and obj["chosen"] == obj["rejected"]:
        out.append(("chosen_equals_rejected", ("'chosen' and 'rejected' are identical: the pair teaches "
                    "nothing; fix or remove it")))
    if kind == "kto":
        label = obj["label"]
        if not isinstance(label, bool):
            out.append(("wrong_type", f"'label' must be true or false, got {type_name(label)} {_short(label)}"))
        else:
            ex.kto_label = label
    if len(out) > start:
        return None
    if conversational:
        _message_segments(obj["prompt"], ex)
        for f in answers:
            ex.segments.append(f)
            _message_segments(obj[f], ex)
            ex.sequences.append(("chat", obj["prompt"] + obj[f], None))
    else:
        ex.segments.append(obj["prompt"])
        for f in answers:
            ex.segments.append(f)
            ex.segments.append(obj[f])
            ex.sequences.append(("plain", obj["prompt"], obj[f]))
    if kind == "kto":
        ex.segments.append("desirable" if ex.kto_label else "undesirable")
    return ex


def _short(v: Any) -> str:
    s = f'"{show(v, 38)}"' if isinstance(v, str) else terminal_safe(json.dumps(v, ensure_ascii=False))
    return f"({s[:37]}...)" if len(s) > 40 else f"({s})"


def normalise(s: str) -> str:
    """Case-folded, punctuation and symbols removed, whitespace collapsed; NUL (the segment separator) kept."""
    s = s.casefold()
    s = s.translate(_ASCII_PUNCT) if s.isascii() else _PUNCT.sub("", s)  # same result; translate is ~8x faster
    return " ".join(s.split()).replace(" \x00", "\x00").replace("\x00 ", "\x00")
