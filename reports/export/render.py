"""Jinja2 environments for the exported files: YAML templates print values through ``yaml_scalar``; text
templates (README, Python) print them as they are. Templates live under ``templates/`` and only loop and branch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reports.export.yamltext import yaml_scalar

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

    def yaml_file(self, template: str, **values: Any) -> str:
        return self.yaml.get_template(template).render(**values)

    def text_file(self, template: str, **values: Any) -> str:
        return self.text.get_template(template).render(**values)
