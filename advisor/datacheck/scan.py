"""Streams one JSONL file: per-line validation and compact per-example numbers.

Each line is read as bytes and decoded on its own (so a non-UTF-8 byte is reported on its line). Per example only
compact numbers are kept: two 8-byte BLAKE2b digests (the raw line, for exact duplicates; the normalised text, for
near duplicates and train/eval overlap), its length in tokens, its line number and its message count, i.e. about 28
bytes per example whatever its size. Problems are counted in full but only the first ``PROBLEMS_KEPT`` are stored;
answer labels are counted for at most ``LABEL_TRACK_DISTINCT`` distinct values. A line longer than
``formats.MAX_LINE_BYTES`` is a ``line_too_long`` problem, read past without being held, so the memory a line
costs is bounded too; lines are parsed as standard JSON (no duplicate keys, no NaN/Infinity).
"""

from __future__ import annotations

import hashlib
from array import array
from pathlib import Path
from typing import Any

from advisor.datacheck.formats import (
    DETECT_LINES,
    MAX_LINE_MIB,
    DuplicateKeyError,
    Example,
    NonStandardNumberError,
    article,
    first_line,
    kind_of,
    loads_strict,
    normalise,
    quoted,
    read_lines,
    show,
    terminal_safe,
    type_name,
    validate,
)
from advisor.datacheck.report import DataCheckError, Problem
from advisor.datacheck.tokens import TOKENIZE_BATCH, TokenCounter

# ---- bounds on what is kept in memory ---------------------------------------------------------------------
PROBLEMS_KEPT = 1000  # problems stored with their line; all are counted
SAMPLES_KEPT = 20  # example line numbers kept for duplicates, overlap, over-length
LABEL_TRACK_DISTINCT = 64  # distinct final answers counted before the data stops looking like classification
#: a final answer longer than this does not look like a label (classification-like data: short, few, repeated)
LABEL_MAX_CHARS = 40


class Scan:
    """Streams one file: per-line validation and compact per-example numbers."""

    def __init__(self, path: Path, kind: str | None, kind_source: str | None, counter: TokenCounter,
                 max_length: int | None) -> None:
        self.path, self.kind, self.kind_source, self.counter, self.max_length = (
            path, kind, kind_source, counter, max_length)
        self.file_bytes = path.stat().st_size
        self.lines_total = self.valid = self.invalid = 0
        self.problems: list[Problem] = []
        self.problems_total = 0
        self.problem_counts: dict[str, int] = {}
        self.other_kinds: dict[str, list[int]] = {}  # kind -> [lines, first line]
        self.raw_digests = array("Q")
        self.norm_digests = array("Q")
        self.example_lines = array("I")
        self.lengths = array("I")
        self.messages = array("I")
        self.total_tokens = 0
        self.over = 0
        self.truncated = 0
        self.over_lines: list[int] = []
        self.multi_turn = self.with_system = self.with_tools = 0
        self.labels: dict[str, int] = {}
        self.label_overflow = False
        self.long_answers = 0
        self.kto = [0, 0]  # desirable, undesirable
        self._pending: list[tuple[int, Any]] = []

    def problem(self, line: int, code: str, reason: str) -> None:
        self.problems_total += 1
        self.problem_counts[code] = self.problem_counts.get(code, 0) + 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(Problem(line, code, reason))

    def run(self) -> Scan:
        try:
            for n, line in read_lines(self.path):
                self.lines_total += 1
                if isinstance(line, int):  # longer than MAX_LINE_BYTES: skipped, not held
                    found = [("line_too_long", (f"longer than {MAX_LINE_MIB} MiB ({line:,} bytes); not parsed: "
                              "one line holds one example, split or shorten it"))]
                else:
                    try:
                        found = self._line(n, line)
                    except RecursionError:  # nesting that parsed but is too deep to walk
                        found = [("too_deep", "JSON nested too deeply to check; flatten it")]
                if found:
                    self.invalid += 1
                    for code, reason in found:
                        self.problem(n, code, reason)
        except OSError as e:
            raise DataCheckError(f"'{terminal_safe(str(self.path))}' cannot be read ({e.strerror or e}); check the "
                                 "file") from None
        self._flush()
        self.valid = len(self.example_lines)
        return self

    def _line(self, n: int, line: bytes) -> list[tuple[str, str]]:
        if not line.strip():
            return [("blank_line", "blank line; remove it (JSONL holds one JSON object per line)")]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return [("invalid_utf8", (f"byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line is not UTF-8; "
                     "re-encode the file as UTF-8"))]
        if n == 1 and text.startswith("\ufeff"):
            return [("utf8_bom", "the file starts with a UTF-8 byte order mark; save it as UTF-8 without BOM")]
        try:
            obj = loads_strict(text)
        except RecursionError:
            return [("too_deep", "JSON nested too deeply to parse; flatten it")]
        except DuplicateKeyError as e:
            return [("duplicate_key", (f"key '{show(e.key)}' appears twice in one object; JSON readers keep one of "
                     "the values (Python's the last) and drop the other silently: remove one"))]
        except NonStandardNumberError as e:
            return [("non_standard_json", (f"{e.literal} is not valid JSON (only JavaScript and Python write it); "
                     "use a number or null"))]
        except ValueError as e:
            msg = getattr(e, "msg", None)
            col = getattr(e, "colno", None)
            reason = (f"invalid JSON: {msg} at column {col}" if msg and col else
                      f"invalid JSON: {terminal_safe(first_line(e))}")
            if n == 1 and text.lstrip().startswith("["):
                reason += " (the file looks like a JSON array; JSONL holds one object per line)"
            return [("invalid_json", reason)]
        if not isinstance(obj, dict):
            return [("not_object", (f"the line is {type_name(obj)}, not a JSON object; each line holds one example "
                     "object"))]
        line_kind = kind_of(obj)
        if self.kind is None:
            keys = quoted(sorted(obj)) or "no keys"
            return [("unknown_format", (f"keys {keys} match no format (messages | prompt, chosen, rejected | "
                     "prompt, completion, label | text)"))]
        if line_kind is not None and line_kind != self.kind:
            entry = self.other_kinds.setdefault(line_kind, [0, n])
            entry[0] += 1
            src = "--kind" if self.kind_source == "given" else (
                "the training file's kind" if self.kind_source == "training file" else
                f"detected from the first {DETECT_LINES} lines")
            return [("mixed_kind", (f"{article(line_kind)} line (keys {quoted(sorted(obj))}) in "
                     f"{article(self.kind)} file ({src}); keep one kind per file"))]
        found: list[tuple[str, str]] = []
        ex = validate(obj, self.kind, found)
        if ex is None:
            return found
        try:
            if "\\ud" in text or "\\uD" in text:  # JSON escapes can spell lone surrogates; UTF-8 cannot
                for s in ex.segments:
                    s.encode("utf-8")
            norm = normalise("\x00".join(ex.segments)).encode("utf-8")
        except UnicodeEncodeError:
            return [("invalid_unicode", ("a string holds an unpaired surrogate escape (such as \\ud800), which is "
                     "not valid Unicode; fix the text"))]
        try:
            plan = self.counter.plan(ex)
        except Exception as e:  # noqa: BLE001 - a chat template that raises on this conversation
            return [("chat_template_error", ("the tokenizer's chat template refused this example: "
                     f"{terminal_safe(first_line(e))}"))]
        self.raw_digests.frombytes(hashlib.blake2b(line.strip(), digest_size=8).digest())
        self.norm_digests.frombytes(hashlib.blake2b(norm, digest_size=8).digest())
        self.example_lines.append(n)
        self._account(ex)
        self._pending.append((n, plan))
        if len(self._pending) >= TOKENIZE_BATCH:
            self._flush()
        return found

    def _account(self, ex: Example) -> None:
        if self.kind == "sft":
            self.messages.append(ex.n_messages)
            self.multi_turn += ex.n_assistant > 1
            self.with_system += ex.has_system
            self.with_tools += ex.has_tools
            a = ex.answer.strip() if ex.answer is not None else None
            if a is None or len(a) > LABEL_MAX_CHARS:
                self.long_answers += 1
            elif a in self.labels:
                self.labels[a] += 1
            elif len(self.labels) < LABEL_TRACK_DISTINCT:
                self.labels[a] = 1
            else:
                self.label_overflow = True
        elif self.kind == "kto":
            self.kto[0 if ex.kto_label else 1] += 1

    def _flush(self) -> None:
        if not self._pending:
            return
        lens = self.counter.lengths([plan for _, plan in self._pending])
        for (n, _), seqs in zip(self._pending, lens):
            longest = max(seqs)
            self.lengths.append(longest)
            self.total_tokens += sum(seqs)
            if self.max_length is not None and longest > self.max_length:
                self.over += 1
                self.truncated += sum(max(0, s - self.max_length) for s in seqs)
                if len(self.over_lines) < SAMPLES_KEPT:
                    self.over_lines.append(n)
        self._pending.clear()


def scan_file(path: Path, kind: str | None, source: str | None, counter: TokenCounter, max_length: int | None) -> Scan:
    return Scan(path, kind, source, counter, max_length).run()
