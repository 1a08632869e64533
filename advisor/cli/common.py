"""Helpers shared by the ``advise`` commands: domain errors at the edge, catalog loading, JSON output.

Library code raises typed errors (``advisor.contract.errors.AdviseError``); ``domain_errors`` turns them into
one-line ``Error: ...`` messages with exit code 2. Numbers are formatted by ``advisor.contract.units``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

import click


def terminal_text(text: str) -> str:
    """``text`` with every control and bidi character shown as its escape (``\\x1b``, ``\\u202e``); tabs and
    line feeds stay (``advisor.contract.text``)."""
    from advisor.contract.text import escape_unsafe

    return escape_unsafe(text, keep="\t\n")


def echo(message: Any = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo`` of text made inert for the terminal (``terminal_text``): every command prints with it."""
    click.echo(terminal_text(str(message)), err=err, nl=nl)


class AdviseUsageError(click.UsageError):
    """A domain error shown as ``Error: <message>`` with exit code 2 (no usage text)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {terminal_text(self.format_message())}", err=True, file=file)


class FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` that also refuses ``nan`` and ``inf`` (which a bare range lets through)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def domain_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's ``AdviseError`` into a one-line CLI error with exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from advisor.contract.errors import AdviseError

        try:
            return fn(*args, **kwargs)
        except AdviseError as e:
            raise AdviseUsageError(str(e)) from None

    return wrapper


def load_catalog(ctx: click.Context):
    """The catalog with the user's ``--catalog`` files merged in."""
    from estimators.catalog import Catalog

    root = ctx.find_root()
    return Catalog.load((root.obj or {}).get("catalog_files", ()))


def dump_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))
