"""``advise export``: a plan (``plan.json``) -> ready-to-run training configs, one folder per registered trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advisor.cli.common import domain_errors, echo


class FormatChoice(click.ParamType):
    """A registered export format or "all"; the registry (``reports.export``) is read only when needed."""

    name = "format"

    @staticmethod
    def choices() -> list[str]:
        from reports.export import FORMATS

        return [*FORMATS, "all"]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in self.choices():
            return value
        self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices()))}", param, ctx)


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(dir_okay=False),
              help="The plan JSON (`advise plan --out DIR` writes DIR/plan.json; or `advise plan --json`).")
@click.option("--format", "formats", multiple=True, type=FormatChoice(), default=("all",),
              show_default=True, help="Trainer to export for; repeat for several.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the configs and their README.md into.")
@click.option("--force", is_flag=True, help="Overwrite the files in a non-empty --out directory.")
@domain_errors
def export(plan_file: str, formats: tuple[str, ...], out_dir: str, force: bool) -> None:
    """Ready-to-run training configs from a plan: Axolotl, LLaMA-Factory, TRL, multi-GPU launch files, README."""
    from advisor.contract.plan import load_plan
    from reports.export import export_configs

    plan = load_plan(plan_file, what="--plan")
    written = export_configs(plan, Path(out_dir), formats=formats, force=force, inputs=(plan_file,))
    for p in written:
        echo(str(p))
    echo(f"\nWrote {len(written)} file(s); start with {Path(out_dir) / 'README.md'}")
