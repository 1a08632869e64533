"""Jinja2 environments for the exported files: YAML templates print values through ``yaml_scalar``; Markdown
templates (the READMEs) through ``md_text``, with ``code`` for code spans and ``path`` for a fixed relative path;
Python templates print them as they are (they only receive vocabulary values and the one-line header). Templates
live under ``templates/`` and only loop and branch."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reports.export.yamltext import ExportError, Raw, md_code, md_text, yaml_scalar

_PLAIN_PATH = re.compile(r"[A-Za-z0-9._/<>-]+")


def plain_path(value: Any) -> Raw:
    """A relative path the exporter made (``data/preference.jsonl``), printed as is inside hand-written code;
    anything else is refused (it would need quoting there)."""
    if not _PLAIN_PATH.fullmatch(str(value)):
        raise ExportError(f"refusing to print {str(value)[:60]!r} inside a README command: not a plain path")
    return Raw(str(value))

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


def _environment(finalize: Callable[[Any], str] | None) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False, finalize=finalize,
    )


class Renderer:
    def __init__(self) -> None:
        self.yaml = _environment(yaml_scalar)
        self.text = _environment(None)
        self.markdown = _environment(md_text)
        self.markdown.filters.update(code=md_code, cmd=lambda v: md_code(v, table=False), path=plain_path)

    def yaml_file(self, template: str, **values: Any) -> str:
        return self.yaml.get_template(template).render(**values)

    def text_file(self, template: str, **values: Any) -> str:
        return self.text.get_template(template).render(**values)

    def markdown_file(self, template: str, **values: Any) -> Raw:
        """A README (or a part of one): its values made inert Markdown; the result is printed as is elsewhere."""
        return Raw(self.markdown.get_template(template).render(**values))
