"""Export a plan as ready-to-run training configs: one module per trainer, the multi-GPU launch files, a README.

``export_configs(plan, out_dir, formats=("all",), force=False) -> list[Path]``

Works from the typed plan (``advisor.contract.plan``: a ``Plan`` or the JSON of one, validated first). The shared
context (``context.build_context``) computes every value the trainers share once; each trainer's module
(``axolotl``, ``llamafactory``, ``trl``) adds its own values, renders its files from ``templates/<trainer>/`` and
registers itself with ``register_format``; the launch files (``launch``) and the README (``readme``) are their
own parts. Shared code names no trainer.

Each generated YAML, Python and Markdown file opens with a comment: the command that runs it, the advise version
and the rule ids behind the plan. JSON has no comment syntax, so ``dataset_info.json`` and the DeepSpeed config
are described in the README instead. The same plan gives byte-identical files; nothing is written outside
``out_dir``; a non-empty ``out_dir`` is only written into with ``force``, which replaces only the files advise
wrote there (its manifest, ``advisor.contract.files``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from advisor.contract.plan import Plan, as_plan
from reports.export import launch
from reports.export.context import build_context, compare_command, header, steps_and_serving
from reports.export.readme import readme
from reports.export.registry import FORMATS, ExportFormat, register_format, resolve_formats, validated_with
from reports.export.render import Renderer
from reports.export.write import write_files
from reports.export.yamltext import ExportError, Raw, sanitize_name, yaml_float, yaml_quote, yaml_scalar


def render_all(plan: Plan | Mapping[str, Any], formats: Iterable[str] = ("all",)) -> dict[str, str]:
    """Every file of the export, by relative path, in memory (nothing written)."""
    plan = as_plan(plan)
    chosen = resolve_formats(formats)
    ctx = build_context(plan, validated_with())
    ctx["_renderer"] = Renderer()
    files: dict[str, str] = {}
    exported: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    if ctx["kind"] == "train":
        for name in chosen:
            fmt = FORMATS[name]
            f = steps_and_serving(ctx, {"name": name, "title": fmt.title, "version": Raw(fmt.version),
                                        "readme": fmt.readme, "template_key": fmt.template_key,
                                        "launcher": fmt.launcher, "uses_accelerate": fmt.uses_accelerate,
                                        **fmt.context(ctx)})
            if f["stages"]:
                f["notes"] = fmt.notes(ctx, f)
                files.update(fmt.render(ctx, f))
                exported.append(f)
            else:
                skipped.append(f)
        files.update(launch.launch_files(ctx, exported, header))
        ev = ctx["evaluation"]
        if ev and exported:
            files[ev["script"]] = ctx["_renderer"].text_file(
                "export/compare.py.j2", ctx=ctx, ev=ev, header=header(compare_command(ev, "TUNED_MODEL"), ctx))
        if ctx["teacher"] and exported:
            t = ctx["teacher"]
            files[t["script"]] = ctx["_renderer"].text_file("export/label_with_teacher.py.j2", ctx=ctx,
                                                            header=header(t["command"], ctx))
    files["README.md"] = readme(ctx, exported, skipped)
    return dict(sorted(files.items()))


def export_configs(plan: Plan | Mapping[str, Any], out_dir: Path, formats: Iterable[str] = ("all",),
                   force: bool = False, inputs: Iterable[Any] = ()) -> list[Path]:
    """Write the plan's training configs under ``out_dir``; returns the files written, sorted.

    ``formats``: names from ``FORMATS`` or "all". Raises ``PlanError`` for a plan of another shape and
    ``ExportError``/``OutputError`` for a non-empty ``out_dir`` without ``force``, a path that would leave
    ``out_dir``, or a file there advise did not write (``inputs``: files the command read, never replaced).
    """
    files = render_all(plan, formats)  # everything is rendered before anything is written
    return write_files(files, Path(out_dir), force, inputs)


# the trainers register themselves on import, in this order
from reports.export import axolotl, llamafactory, trl  # noqa: E402, F401

__all__ = ["FORMATS", "ExportError", "ExportFormat", "export_configs", "register_format", "render_all",
           "resolve_formats", "sanitize_name", "validated_with", "yaml_float", "yaml_quote", "yaml_scalar"]
