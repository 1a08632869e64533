"""The ``advise`` command line: one thin click layer over the library, one module per command.

Library code raises typed errors (``advisor.contract.errors.AdviseError``); ``advisor.cli.common`` turns them
into one-line ``Error: ...`` messages with exit code 2. Every command lives in its own module here and is
registered below, in one place; those modules import only click and ``advisor.cli.common`` at load time. Heavy
imports (torch, transformers, plotly, jinja2) happen only inside the commands that need them, so
``advise --help`` stays fast. Nothing outside this package imports it.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import click

from advisor import __version__
from advisor.cli.catalog import apis, gpus, models
from advisor.cli.data import data
from advisor.cli.estimate import estimate
from advisor.cli.export import export
from advisor.cli.plan import plan
from advisor.cli.profile import profile
from advisor.cli.report import report


class AdviseGroup(click.Group):
    """The group with one error line for everything the user or the machine got wrong: click's own usage errors
    (no usage block), a full disk or a closed pipe on output, each with its exit code (2 for errors)."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from advisor.cli.common import terminal_text

        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            click.echo(f"Error: {terminal_text(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except OSError as e:  # writing the output itself failed: a full disk, a closed pipe
            if e.errno == errno.EPIPE:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
                sys.exit(1)
            from advisor.contract.files import os_reason

            click.echo(f"Error: cannot write the output ({os_reason(e)})", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=AdviseGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="advise")
@click.option("--catalog", "catalog_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra YAML with models, gpus, apis or hosted_finetuning entries (adds or overrides).")
@click.pass_context
def main(ctx: click.Context, catalog_files: tuple[str, ...]) -> None:
    """Should you fine-tune an LLM, how, on what, and for how much? advise tells you, with reasons."""
    ctx.ensure_object(dict)
    ctx.obj["catalog_files"] = catalog_files


# ---- every command, registered in one place ------------------------------------------------------------------
for _command in (plan, estimate, data, profile, report, export, models, gpus, apis):
    main.add_command(_command)
