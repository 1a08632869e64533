"""The error base of the whole project. Library code raises these; the CLI turns them into one line, exit code 2.

Each package derives its own (``CatalogError``, ``EstimateError``, ``RulesError``, ``ExportError``, ...) so a caller
can tell them apart; the CLI catches the base.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AdviseError(Exception):
    """A problem the user can fix (bad name, bad value, bad file). Its message is one line."""


class UnknownNameError(AdviseError, LookupError):
    """A lookup of a name failed; the message carries a did-you-mean when one is close."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        msg = f"'{name}' is not a known {kind}"
        if close:
            msg += f"; did you mean '{close[0]}'?"
        else:
            msg += f" (run `advise {kind}s` to list them)" if kind in ("model", "gpu") else ""
        if hint:
            msg += f" {hint}"
        super().__init__(msg)
        self.kind, self.name, self.suggestion = kind, name, close[0] if close else None
