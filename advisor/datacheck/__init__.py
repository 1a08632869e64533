"""Data readiness: validate and measure a fine-tuning dataset (JSONL) before anyone pays for a GPU.

``check_data(path, kind=None, eval_path=None, tokenizer=None, max_length=None) -> DataReport``

Every line is accounted for: it is either a valid example or an invalid line with one or more problems
(1-based line number, a code, and a reason that names the field and what to do). Nothing is skipped.

The package, in the order a check runs:

* ``formats``  the four dataset shapes (sft chat, dpo pairs, kto labels, text) and the validation of one line;
* ``tokens``   token counts: a labelled estimate, or exact with a local tokenizer (transformers imported only then);
* ``scan``     streams a file line by line, keeping ~28 bytes per example whatever its size;
* ``verdicts`` statistics (percentiles, duplicates, overlap, labels; numpy) and the findings, with the thresholds
  the rules use (``advisor/data/rules.yaml``);
* ``report``   the frozen ``DataReport`` and its JSON.

It computes; it prints nothing (``advisor/cli/data.py`` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from advisor.datacheck.formats import KINDS, NORMALISATION, detect_kind
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
        kind = detect_kind(train_file)
        source = "detected" if kind else None
    train = scan_file(train_file, kind, source, counter, max_length)
    ev = None
    if eval_file is not None:
        ev_kind, ev_source = (kind, "training file") if kind else (None, None)
        if ev_kind is None:
            ev_kind = detect_kind(eval_file)
            ev_source = "detected" if ev_kind else None
        ev = scan_file(eval_file, ev_kind, ev_source, counter, max_length)
    return build_report(train, ev, path_label=os.fspath(path), eval_label=os.fspath(eval_path) if ev else None)


def _existing_file(path: Any, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataCheckError(f"{what} '{path}' does not exist; pass the path of a JSONL file")
    if not p.is_file():
        raise DataCheckError(f"{what} '{path}' is not a file; pass the path of a JSONL file")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise DataCheckError(f"{what} '{path}' cannot be read ({e.strerror}); check its permissions") from None
    return p


__all__ = ["ESTIMATE_METHOD", "KINDS", "NORMALISATION", "DataCheckError", "DataReport", "LabelStats", "Problem",
           "TurnStats", "Verdict", "check_data"]
