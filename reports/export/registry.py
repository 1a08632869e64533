"""One registration point for the output formats (like PEFT's ``register_peft_method``): names are unique.

A format is one module under ``reports/export/`` that ends with ``register_format(ExportFormat(...))``. Shared code
never names a format: it loops over ``FORMATS`` and reads what each declares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from advisor.contract.errors import UnknownNameError
from reports.export.yamltext import SAFE_NAME


@dataclass(frozen=True)
class ExportFormat:
    """One trainer.

    ``context(ctx)`` computes its values from the shared context: the stages it can run (each with its config
    path, output folder, run and merge commands), the ones it cannot and why (``missing``), extra files, its
    install line and how to serve what it produced. ``render(ctx, values)`` returns ``{relative path: text}``.
    ``notes(ctx, values)`` are the README notes this trainer needs. ``readme`` is its README template (Jinja
    macros ``run`` and optionally ``data``, under ``templates/``). ``template_key`` names the config key that
    holds the chat template; ``launcher``: ``accelerate`` when several GPUs start through ``accelerate launch``,
    otherwise the sentence that says how the trainer starts them itself.
    """

    name: str
    title: str
    version: str  # the release the exported configs were validated against
    context: Callable[[Mapping[str, Any]], dict[str, Any]]
    render: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, str]]
    readme: str
    template_key: str
    launcher: str = "accelerate"
    notes: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]] = field(default=lambda ctx, f: [])

    @property
    def uses_accelerate(self) -> bool:
        return self.launcher == "accelerate"


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` to ``FORMATS``; a name can be registered once."""
    if not SAFE_NAME.fullmatch(fmt.name) or fmt.name == "all":
        raise ValueError(f"format name {fmt.name!r}: use lower-case letters, digits, '.', '_' or '-' (not 'all')")
    if fmt.name in FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


#: the torch the tests run the trainers' parsers and TRL's CPU training on (.ci/run: pip install torch==2.13.0;
#: tests/test_repo.py keeps the two equal). No CUDA build is exercised by the tests.
TESTED_TORCH = "2.13.0"


def validated_with() -> dict[str, str]:
    """Each registered trainer and the release its configs were validated against."""
    return {name: f.version for name, f in FORMATS.items()}


def resolve_formats(formats: Iterable[str] | str) -> list[str]:
    """Format names in registry order, without repeats; "all" (or nothing) is every format."""
    names = [formats] if isinstance(formats, str) else list(formats)
    if not names or "all" in names:
        return list(FORMATS)
    out = []
    for n in names:
        if n not in FORMATS:
            raise UnknownNameError("format", n, [*FORMATS, "all"], hint=f"(formats: {', '.join([*FORMATS, 'all'])})")
        if n not in out:
            out.append(n)
    return out
