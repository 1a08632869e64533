"""The ``advise`` command line: one thin click layer over the library, one module per command.

Library code raises typed errors (``advisor.contract.errors.AdviseError``); ``advisor.cli.common`` turns them
into one-line ``Error: ...`` messages with exit code 2. Every command lives in its own module here and is
registered below, in one place; those modules import only click and ``advisor.cli.common`` at load time. Heavy
imports (torch, transformers, plotly, jinja2) happen only inside the commands that need them, so
``advise --help`` stays fast. Nothing outside this package imports it.
"""

from __future__ import annotations

import click

from advisor import __version__
from advisor.cli.catalog import gpus, models
from advisor.cli.data import data
from advisor.cli.estimate import estimate
from advisor.cli.export import export
from advisor.cli.plan import plan
from advisor.cli.profile import profile
from advisor.cli.report import report


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="advise")
@click.option("--catalog", "catalog_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra YAML with models, gpus, apis or hosted_finetuning entries (adds or overrides).")
@click.pass_context
def main(ctx: click.Context, catalog_files: tuple[str, ...]) -> None:
    """Should you fine-tune an LLM, how, on what, and for how much? advise tells you, with reasons."""
    ctx.ensure_object(dict)
    ctx.obj["catalog_files"] = catalog_files


# ---- every command, registered in one place ------------------------------------------------------------------
for _command in (plan, estimate, data, profile, report, export, models, gpus):
    main.add_command(_command)
