"""``advise report``: the plan's JSON (and optionally a profile) as one self-contained HTML page.

A thin layer over ``reports.html.render_report``: read the files, render, write. plotly and jinja2 are
imported inside the command only, so ``advise --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from advisor.cli.common import domain_errors, echo, load_catalog


@click.command()
@click.argument("plan_file", metavar="PLAN.json", type=click.Path(dir_okay=False))
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False),
              help="A profile from `advise profile`: adds measured against estimated memory and speed.")
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (a new file, or a report advise wrote; never a plan or your own file).")
@click.option("--cdn", is_flag=True,
              help="Load plotly.js from cdn.plot.ly (a small file that needs the network) instead of inlining it.")
@click.pass_context
@domain_errors
def report(ctx: click.Context, plan_file: str, profile_file: str | None, out_file: str, cdn: bool) -> None:
    """Write the plan as one HTML page: summary, decision path, charts, data, risks, serving, assumptions."""
    from advisor.contract.files import (
        REPORT_MARK,
        check_target,
        file_starts_with,
        write_file,
    )
    from advisor.contract.plan import load_plan
    from reports.html import render_report

    plan = load_plan(plan_file)
    profile = None
    if profile_file:
        from profiler.schema import load_profile

        profile = load_profile(profile_file)
    out = Path(out_file)
    inputs = (plan_file, profile_file, *((ctx.find_root().obj or {}).get("catalog_files", ())))
    check_target(out, "-o", inputs, file_starts_with(REPORT_MARK))  # before the work: a refusal costs nothing
    html = render_report(plan, profile=profile, cdn=cdn, catalog=load_catalog(ctx))
    write_file(out, html, "-o", inputs, file_starts_with(REPORT_MARK))
    echo(f"Wrote {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB{', plotly.js from the CDN' if cdn else ''})")
