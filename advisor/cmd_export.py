"""``advise export``: a plan (``plan.json``) -> ready-to-run training configs for Axolotl, LLaMA-Factory and TRL."""

from __future__ import annotations

from pathlib import Path

import click

from advisor.clitools import AdviseUsageError, domain_errors

FORMAT_CHOICES = ("axolotl", "llamafactory", "trl", "all")


def load_plan(path: str) -> dict:
    """The plan JSON at ``path``; a missing, unreadable or malformed file is a one-line usage error."""
    import json

    p = Path(path)
    if not p.is_file():
        raise AdviseUsageError(f"--plan {path}: file not found; create one with `advise plan --out DIR` "
                               f"(DIR/plan.json) or `advise plan --json > plan.json`")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AdviseUsageError(f"--plan {path}: cannot read it ({type(e).__name__}); give the UTF-8 plan.json "
                               f"that `advise plan` wrote") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as e:
        raise AdviseUsageError(f"--plan {path}: line {e.lineno}: not valid JSON ({e.msg}); give the plan.json "
                               f"that `advise plan` wrote") from None
    if not isinstance(plan, dict):
        raise AdviseUsageError(f"--plan {path}: expected a JSON object (a plan from `advise plan --json`), got "
                               f"{type(plan).__name__}")
    return plan


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(dir_okay=False),
              help="The plan JSON (`advise plan --out DIR` writes DIR/plan.json; or `advise plan --json`).")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMAT_CHOICES), default=("all",),
              show_default=True, help="Trainer to export for; repeat for several.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the configs and their README.md into.")
@click.option("--force", is_flag=True, help="Overwrite the files in a non-empty --out directory.")
@domain_errors
def export(plan_file: str, formats: tuple[str, ...], out_dir: str, force: bool) -> None:
    """Ready-to-run training configs from a plan: Axolotl, LLaMA-Factory, TRL, multi-GPU launch files, README."""
    from reports.export import export_configs

    plan = load_plan(plan_file)
    written = export_configs(plan, Path(out_dir), formats=formats, force=force)
    for p in written:
        click.echo(str(p))
    click.echo(f"\nWrote {len(written)} file(s); start with {Path(out_dir) / 'README.md'}")
