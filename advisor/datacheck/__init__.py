"""Data readiness: validate and measure a fine-tuning dataset (JSONL) before anyone pays for a GPU.

``check_data(path, kind=None, eval_path=None, tokenizer=None, max_length=None) -> DataReport``

Every line is accounted for: it is either a valid example or an invalid line with one or more problems
(1-based line number, a code, and a reason that names the field and what to do). Nothing is skipped.

The package, in the order a check runs:

* ``formats``  the four dataset shapes (sft chat, dpo pairs, kto labels, text) and the validation of one line;
* ``tokens``   token counts: a labelled estimate, or exact with a local tokenizer (transformers imported only then);
* ``scan``     streams a file line by line, keeping ~28 bytes per example whatever its size (a line over
  ``MAX_LINE_BYTES`` is a problem, skipped unread);
* ``verdicts`` statistics (percentiles, duplicates, overlap, labels; numpy) and the findings, with the thresholds
  the rules use (``advisor/data/rules.yaml``);
* ``report``   the frozen ``DataReport`` and its JSON.

It computes; it prints nothing (``advisor/cli/data.py`` does).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from advisor.datacheck.formats import KINDS, MAX_LINE_BYTES, NORMALISATION, detect_kind, terminal_safe
from advisor.datacheck.report import (
    DataCheckError,
    DataReport,
    LabelStats,
    Problem,
    TurnStats,
    Verdict,
)
from advisor.datacheck.scan import scan_file
from advisor.datacheck.tokens import ESTIMATE_METHOD, TokenCounter
from advisor.datacheck.verdicts import build_report


def check_data(
    path: str | os.PathLike[str],
    kind: str | None = None,
    eval_path: str | os.PathLike[str] | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
) -> DataReport:
    """Validate and measure a JSONL dataset (and its eval set), streaming.

    ``kind``: ``sft|dpo|kto|text``, or None to detect it from the first lines (lines of another kind are
    then problems). ``tokenizer``: a local tokenizer directory (loaded with transformers, offline), an
    already loaded tokenizer, or None for a labelled ~4 characters/token estimate. ``max_length``: tokens
    per sequence the trainer keeps (share over it and tokens truncated are reported).
    """
    if kind is not None and kind not in KINDS:
        raise DataCheckError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 1):
        raise DataCheckError(f"max_length must be a positive whole number of tokens, got {max_length!r}")
    train_file = _existing_file(path, "data file")
    eval_file = _existing_file(eval_path, "eval file") if eval_path is not None else None
    counter = TokenCounter.make(tokenizer)

    source = "given" if kind else None
    if kind is None:
        kind = _detect(train_file)
        source = "detected" if kind else None
    train = scan_file(train_file, kind, source, counter, max_length)
    ev = None
    if eval_file is not None:
        ev_kind, ev_source = (kind, "training file") if kind else (None, None)
        if ev_kind is None:
            ev_kind = _detect(eval_file)
            ev_source = "detected" if ev_kind else None
        ev = scan_file(eval_file, ev_kind, ev_source, counter, max_length)
    return build_report(train, ev, path_label=os.fspath(path), eval_label=os.fspath(eval_path) if ev else None)


#: what a file that is not UTF-8 text at all starts with (checked on its first ``SNIFF_BYTES``)
NOT_TEXT_MAGIC = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte order mark); re-encode it as UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte order mark); re-encode it as UTF-8"),
    (b"\xff\xfe", "UTF-16 text (byte order mark); re-encode it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (byte order mark); re-encode it as UTF-8"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive; extract the JSONL file from it"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first (zstd -d)"),
    (b"BZh", "bzip2-compressed; decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it first (unxz)"),
    (b"PAR1", "a Parquet file; export it to JSONL first"),
)
SNIFF_BYTES = 4096


def _existing_file(path: Any, what: str) -> Path:
    """The path of a readable regular file, or a one-line ``DataCheckError`` that says what it is instead: missing,
    a directory, a FIFO or device (reading /dev/zero or a pipe never ends), a symlink loop, unreadable, or not UTF-8
    text at all (UTF-16/32, compressed, Parquet)."""
    p = Path(path)
    name = f"{what} '{terminal_safe(os.fspath(path))}'"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        dangling = " (a symlink to a missing file)" if os.path.islink(p) else ""
        raise DataCheckError(f"{name} does not exist{dangling}; pass the path of a JSONL file") from None
    except NotADirectoryError:
        raise DataCheckError(f"{name} does not exist (a part of the path is a file); pass the path of a JSONL "
                             "file") from None
    except ValueError:  # a NUL character in the path
        raise DataCheckError(f"{name} is not a valid path; pass the path of a JSONL file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataCheckError(f"{name} is a symlink loop; point it at a JSONL file") from None
        raise DataCheckError(f"{name} cannot be read ({e.strerror or e}); check its path and permissions") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise DataCheckError(f"{name} is {kind}, not a regular file; pass the path of a JSONL file")
    try:
        # O_NONBLOCK: should the path turn into a FIFO after the check above, opening it does not hang
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise DataCheckError(f"{name} is not a regular file; pass the path of a JSONL file")
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise DataCheckError(f"{name} cannot be read ({e.strerror or e}); check its permissions") from None
    for magic, what_it_is in NOT_TEXT_MAGIC:
        if head.startswith(magic):
            raise DataCheckError(f"{name} is not UTF-8 text: it is {what_it_is}")
    if head and head.count(0) * 4 >= len(head):  # JSON text holds no NUL byte; UTF-16/32 text is 50-75% NUL
        raise DataCheckError(f"{name} is not UTF-8 text: {head.count(0):,} of its first {len(head):,} bytes are NUL "
                             "(UTF-16 or UTF-32 text, or binary data); re-encode it as UTF-8")
    return p


def _detect(path: Path) -> str | None:
    try:
        return detect_kind(path)
    except OSError as e:
        raise DataCheckError(f"'{terminal_safe(str(path))}' cannot be read ({e.strerror or e}); check the "
                             "file") from None


__all__ = ["ESTIMATE_METHOD", "KINDS", "MAX_LINE_BYTES", "NORMALISATION", "DataCheckError", "DataReport", "LabelStats",
           "Problem", "TurnStats", "Verdict", "check_data"]
